/**
 * One subgraph of the classic graph as its own process (forked by the bench, one per subgraph,
 * so subgraph work never runs on the gateway's event loop): `@apollo/subgraph` over graphql-js,
 * GraphQL over HTTP on 127.0.0.1, and a request counter the bench reads between windows, which
 * is how it counts subgraph requests per client request for every gateway alike.
 *
 * Documents are parsed and validated once per text, as a production subgraph server caches them.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { execute, parse, validate, type DocumentNode, type GraphQLSchema } from 'graphql';
import { serveRequests } from '../common/ipc.js';
import { RESOLVERS, SDL, type SubgraphName } from './graph.js';

let schema: GraphQLSchema;
const documents = new Map<string, DocumentNode | readonly { message: string }[]>();
let requests = 0;

function documentFor(query: string): DocumentNode | readonly { message: string }[] {
  let doc = documents.get(query);
  if (!doc) {
    try {
      const parsed = parse(query);
      const errors = validate(schema, parsed);
      doc = errors.length > 0 ? errors.map((e) => ({ message: e.message })) : parsed;
    } catch (err) {
      doc = [{ message: (err as Error).message }];
    }
    // Bounded: the varied-variables load sends few distinct documents, but stay safe.
    if (documents.size > 1000) documents.clear();
    documents.set(query, doc);
  }
  return doc;
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  requests++;
  const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
    query: string;
    variables?: Record<string, unknown>;
    operationName?: string;
  };
  const doc = documentFor(body.query);
  const result =
    'kind' in doc
      ? await execute({
          schema,
          document: doc,
          variableValues: body.variables,
          operationName: body.operationName,
        })
      : { errors: doc };
  const text = JSON.stringify(result);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const server = createServer((req, res) => {
  handle(req, res).catch((err: unknown) => {
    if (!res.headersSent) res.writeHead(500).end(String(err));
    else res.destroy();
  });
});
server.keepAliveTimeout = 60_000;

serveRequests({
  async start(payload: { name: SubgraphName }) {
    schema = buildSubgraphSchema({
      typeDefs: parse(SDL[payload.name]),
      resolvers: RESOLVERS[payload.name] as never,
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql` };
  },
  stats: () => ({ requests }),
});
