/**
 * The `messages` subgraph as its own process (forked by the bench): GraphQL over HTTP on
 * 127.0.0.1, answering any message id, and counting requests so the bench can report subgraph
 * requests per event. Documents are parsed and validated once per query text, as a production
 * subgraph server would cache them, so the subgraph is cheap and the same for every system.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { execute, parse, validate, type DocumentNode } from 'graphql';
import { MESSAGES_SDL, messageEntity } from './graph.js';
import { serveRequests } from '../common/ipc.js';

const schema = buildSubgraphSchema({
  typeDefs: parse(MESSAGES_SDL),
  resolvers: {
    Query: { message: (_: unknown, { id }: { id: string }) => messageEntity(id) },
    Message: { __resolveReference: (ref: { id: string }) => messageEntity(ref.id) },
  },
});

const documents = new Map<string, DocumentNode | readonly { message: string }[]>();
let requests = 0;
let entityRequests = 0;

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
  if (body.query.includes('_entities')) entityRequests++;
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
  async start() {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql` };
  },
  stats: () => ({ requests, entityRequests }),
});
