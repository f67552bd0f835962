/**
 * A subgraph as the benchmarks serve it, in a process of its own: GraphQL over HTTP on
 * 127.0.0.1 over a graphql-js schema, documents parsed and validated once per text (as a
 * production subgraph server caches them, so the subgraph is cheap and the same for every system
 * measured), and counters the bench reads between windows.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { execute, parse, validate, type DocumentNode, type GraphQLSchema } from 'graphql';

type Parsed = DocumentNode | readonly { message: string }[];

/** Distinct documents kept; a load that sends more starts the cache over. */
const MAX_DOCUMENTS = 1000;

export interface SubgraphServer {
  /** Starts listening; resolves with the GraphQL URL. */
  listen(): Promise<string>;
  /** Requests served so far, and those whose document asks for `_entities`. */
  readonly requests: number;
  readonly entityRequests: number;
}

/** Serves `schema()` (read at the first request, so a process may build it once told which). */
export function subgraphServer(schema: () => GraphQLSchema): SubgraphServer {
  const documents = new Map<string, Parsed>();
  const counts = { requests: 0, entityRequests: 0 };

  const documentFor = (query: string): Parsed => {
    let doc = documents.get(query);
    if (!doc) {
      try {
        const parsed = parse(query);
        const errors = validate(schema(), parsed);
        doc = errors.length > 0 ? errors.map((e) => ({ message: e.message })) : parsed;
      } catch (err) {
        doc = [{ message: (err as Error).message }];
      }
      if (documents.size >= MAX_DOCUMENTS) documents.clear();
      documents.set(query, doc);
    }
    return doc;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    counts.requests++;
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
      query: string;
      variables?: Record<string, unknown>;
      operationName?: string;
    };
    if (body.query.includes('_entities')) counts.entityRequests++;
    const doc = documentFor(body.query);
    const result =
      'kind' in doc
        ? await execute({
            schema: schema(),
            document: doc,
            variableValues: body.variables,
            operationName: body.operationName,
          })
        : { errors: doc };
    const text = JSON.stringify(result);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 60_000;

  return {
    async listen() {
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
    },
    get requests() {
      return counts.requests;
    },
    get entityRequests() {
      return counts.entityRequests;
    },
  };
}
