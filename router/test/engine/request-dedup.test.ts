/**
 * Identical requests in flight are sent once. Two HTTP subgraphs in this process, books
 * (`Query.book`, `Mutation.addBook`, `Book.title`) and ratings (`Book.avgRating`), count what
 * they receive and hold their answers until the test releases them, so "concurrent" is exact:
 * every client request has either joined the request in flight or sent its own before the
 * subgraph answers (the dedup callbacks and metrics say which). Waits are for those counts,
 * never for wall-clock time.
 *
 * Subgraph requests are shared when subgraph, operation text, variables and forwarded headers
 * are the same; for queries and subscription events, never for mutations; a failure reaches
 * every waiter; a waiter that gives up does not cancel the others. `router.yaml` switches it off
 * per subgraph (`traffic_shaping.subgraphs.NAME.deduplicate_requests`), and turns on the
 * inbound variant (`traffic_shaping.router.deduplicate_requests`): identical client queries with
 * the same headers share one execution.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { execute, parse, type GraphQLSchema } from 'graphql';
import { composeSupergraph } from '@edfs/operator';
import { resolveRouterConfig } from '../../src/config/load.js';
import { createGateway, type Gateway, type GatewayOptions } from '../../src/engine/gateway.js';
import { SubgraphClient } from '../../src/engine/subgraph-client.js';
import type { RequestContext } from '../../src/engine/types.js';
import { startRouter, type RunningRouter } from '../../src/main.js';
import { createLogger } from '../../src/observability/logger.js';

const LINK =
  'extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@external"])';
const BOOKS_SDL = `${LINK}
  type Query { book(id: ID!): Book }
  type Mutation { addBook(title: String!): Book }
  type Book @key(fields: "id") { id: ID! title: String! }
`;
const RATINGS_SDL = `${LINK}
  type Book @key(fields: "id") { id: ID! avgRating: Float }
`;
const EVENTS_SDL = `
  type Subscription { bookAdded: Book! @edfs__natsSubscribe(subjects: ["books"], providerId: "default") }
  type Book @key(fields: "id", resolvable: false) { id: ID! @external }
`;

const TITLES: Record<string, string> = { '1': 'Dune', '2': 'Emma' };
const schemas: Record<string, GraphQLSchema> = {
  books: buildSubgraphSchema({
    typeDefs: parse(BOOKS_SDL),
    resolvers: {
      Query: { book: (_: unknown, a: { id: string }) => ({ id: a.id, title: TITLES[a.id] }) },
      Mutation: { addBook: (_: unknown, a: { title: string }) => ({ id: '3', title: a.title }) },
      Book: { __resolveReference: (r: { id: string }) => ({ id: r.id, title: TITLES[r.id] }) },
    },
  } as never),
  ratings: buildSubgraphSchema({
    typeDefs: parse(RATINGS_SDL),
    resolvers: { Book: { __resolveReference: (r: { id: string }) => ({ id: r.id, avgRating: 4.5 }) } },
  } as never),
};

/** One HTTP subgraph: what it received, whether it holds its answers, and whether it fails. */
class Subgraph {
  readonly received: { query: string; variables: Record<string, unknown>; headers: IncomingHttpHeaders }[] =
    [];
  /** Requests whose connection the router closed before the answer (cancelled). */
  cancelled = 0;
  failing = false;
  private holding = false;
  private readonly held: (() => void)[] = [];
  server!: Server;
  url = '';

  constructor(private readonly schema: GraphQLSchema) {}

  hold(): void {
    this.holding = true;
  }

  release(): void {
    this.holding = false;
    for (const answer of this.held.splice(0)) answer();
  }

  reset(): void {
    this.release();
    this.received.length = 0;
    this.cancelled = 0;
    this.failing = false;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const { query, variables } = JSON.parse(body) as {
          query: string;
          variables: Record<string, unknown>;
        };
        this.received.push({ query, variables, headers: req.headers });
        res.on('close', () => {
          if (!res.writableFinished) this.cancelled++;
        });
        const answer = () => {
          if (this.failing) {
            res.statusCode = 502;
            res.end('<html>bad gateway</html>');
            return;
          }
          void Promise.resolve(
            execute({ schema: this.schema, document: parse(query), variableValues: variables }),
          ).then((result) => {
            res.setHeader('content-type', 'application/json');
            res.end(JSON.stringify(result));
          });
        };
        if (this.holding) this.held.push(answer);
        else answer();
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/graphql`;
  }

  async close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

const books = new Subgraph(schemas.books!);
const ratings = new Subgraph(schemas.ratings!);
let config: Record<string, unknown>;
/** Subgraph requests answered by an identical one, per subgraph (the gateway's callback). */
const deduplicated: Record<string, number> = {};
const gateways: Gateway[] = [];

function gateway(options: GatewayOptions = {}): Gateway {
  const g = createGateway(config, {
    onSubgraphRequestDeduplicated: (s) => (deduplicated[s] = (deduplicated[s] ?? 0) + 1),
    ...options,
  });
  gateways.push(g);
  return g;
}

/** Waits until `condition` holds (polling; the condition, not the time, decides). */
async function until(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (await condition()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`still waiting for ${what}`);
}

const BOOK = '{ book(id: "1") { title avgRating } }';
const BOOK_ROOT = '{ book(id: "1") { title } }';
const ANSWER = { data: { book: { title: 'Dune', avgRating: 4.5 } } };

beforeAll(async () => {
  await books.start();
  await ratings.start();
  const composed = composeSupergraph([
    { name: 'books', routingUrl: books.url, sdl: BOOKS_SDL },
    { name: 'ratings', routingUrl: ratings.url, sdl: RATINGS_SDL },
    { name: 'events', sdl: EVENTS_SDL },
  ]);
  if (!composed.ok) throw new Error(JSON.stringify(composed.errors));
  config = composed.config;
});

beforeEach(() => {
  books.reset();
  ratings.reset();
  for (const k of Object.keys(deduplicated)) delete deduplicated[k];
});

afterAll(async () => {
  for (const g of gateways) await g.close();
  await books.close();
  await ratings.close();
});

describe('identical subgraph requests in flight', () => {
  it('concurrent identical queries share one request per subgraph, and each client gets the whole answer', async () => {
    const g = gateway();
    books.hold();
    const results = Array.from({ length: 5 }, () => g.execute({ query: BOOK }));
    await until('4 queries joined the first', () => deduplicated.books === 4);
    ratings.hold();
    books.release();
    await until('the ratings request to be shared too', () => deduplicated.ratings === 4);
    ratings.release();
    expect(await Promise.all(results)).toEqual(Array.from({ length: 5 }, () => ANSWER));
    expect(books.received).toHaveLength(1);
    expect(ratings.received).toHaveLength(1);
  });

  it('identical queries share one execution until its first answer; a query after that runs its own', async () => {
    const g = gateway();
    books.hold();
    ratings.hold();
    const early = [g.execute({ query: BOOK }), g.execute({ query: BOOK })];
    await until('the second query joined the first', () => deduplicated.books === 1);
    books.release();
    await until('the execution to reach ratings', () => ratings.received.length === 1);
    // The execution now holds books data fetched before this query came: it gets its own.
    const late = g.execute({ query: BOOK });
    await until('its books request sent', () => books.received.length === 2);
    await until('its ratings request joined the one in flight', () => deduplicated.ratings === 2);
    ratings.release();
    const [a, b] = await Promise.all(early);
    expect(a).toBe(b);
    expect(a).toEqual(ANSWER);
    expect(await late).toEqual(ANSWER);
    expect(await late).not.toBe(a);
    expect(ratings.received).toHaveLength(1);
    expect(deduplicated).toEqual({ books: 1, ratings: 2 });
  });

  it('each execution reading a shared answer gets its own copy, so what one merges into it no other sees', async () => {
    const client = new SubgraphClient();
    const reply = await client.request('books', books.url, JSON.stringify({ query: BOOK_ROOT }), 1000);
    const first = reply.take() as { data: { book: Record<string, unknown> } };
    first.data.book.avgRating = 1;
    expect(reply.take()).toEqual({ data: { book: { title: 'Dune' } } });
    expect(reply.take()).not.toBe(reply.take());
    await client.close();
  });

  it('requests with different variables are not shared', async () => {
    const g = gateway();
    books.hold();
    const query = 'query ($id: ID!) { book(id: $id) { title } }';
    const results = [
      g.execute({ query, variables: { id: '1' } }),
      g.execute({ query, variables: { id: '2' } }),
    ];
    await until(
      'both requests sent or shared',
      () => books.received.length + (deduplicated.books ?? 0) === 2,
    );
    books.release();
    expect(await Promise.all(results)).toEqual([
      { data: { book: { title: 'Dune' } } },
      { data: { book: { title: 'Emma' } } },
    ]);
    expect(books.received.map((r) => r.variables)).toEqual([{ id: '1' }, { id: '2' }]);
    expect(deduplicated.books).toBeUndefined();
  });

  it('requests that forward different headers are not shared; the same headers are', async () => {
    const g = gateway({
      headerRules: { all: [{ op: 'propagate', named: 'Authorization' }], subgraphs: {} },
    });
    const as = (token: string): RequestContext => ({ headers: { authorization: token } });
    books.hold();
    const results = [
      g.execute({ query: '{ book(id: "1") { title } }' }, as('Bearer alice')),
      g.execute({ query: '{ book(id: "1") { title } }' }, as('Bearer bob')),
      g.execute({ query: '{ book(id: "1") { title } }' }, as('Bearer alice')),
    ];
    await until('all three sent or shared', () => books.received.length + (deduplicated.books ?? 0) === 3);
    books.release();
    await Promise.all(results);
    expect(books.received.map((r) => r.headers.authorization)).toEqual(['Bearer alice', 'Bearer bob']);
    expect(deduplicated.books).toBe(1);
  });

  it('mutations are never shared, nor are the fetches that follow them', async () => {
    const g = gateway();
    books.hold();
    const mutation = 'mutation { addBook(title: "Dune") { id title avgRating } }';
    const results = [g.execute({ query: mutation }), g.execute({ query: mutation })];
    await until(
      'both mutations sent or shared',
      () => books.received.length + (deduplicated.books ?? 0) === 2,
    );
    ratings.hold();
    books.release();
    await until(
      'both ratings fetches sent or shared',
      () => ratings.received.length + (deduplicated.ratings ?? 0) === 2,
    );
    ratings.release();
    const expected = { data: { addBook: { id: '3', title: 'Dune', avgRating: 4.5 } } };
    expect(await Promise.all(results)).toEqual([expected, expected]);
    expect(books.received).toHaveLength(2);
    expect(ratings.received).toHaveLength(2);
    expect(deduplicated).toEqual({});
  });

  it('a failed request fails every client that waited for it', async () => {
    const g = gateway();
    books.hold();
    books.failing = true;
    const results = Array.from({ length: 3 }, () => g.execute({ query: BOOK }));
    await until('2 queries joined the first', () => deduplicated.books === 2);
    books.release();
    for (const result of await Promise.all(results))
      expect(result).toEqual({
        data: { book: null },
        errors: [
          {
            message: 'Failed to fetch from subgraph "books": HTTP 502, response is not JSON',
            path: ['book'],
            extensions: { code: 'SUBGRAPH_FETCH_FAILED', serviceName: 'books' },
          },
        ],
      });
    expect(books.received).toHaveLength(1);
  });

  it('a client that gives up does not cancel the request the others wait for', async () => {
    const g = gateway();
    books.hold();
    const leaving = new AbortController();
    const gone = g.execute({ query: BOOK }, { signal: leaving.signal });
    const staying = g.execute({ query: BOOK }, { signal: new AbortController().signal });
    await until('the second query joined the first', () => deduplicated.books === 1);
    leaving.abort(new Error('client closed the connection'));
    expect((await gone).errors?.[0]?.message).toBe(
      'Failed to fetch from subgraph "books": the request was cancelled',
    );
    books.release();
    expect(await staying).toEqual(ANSWER);
    expect(books.received).toHaveLength(1);
    expect(books.cancelled).toBe(0);
  });

  it('a request every waiting client gave up on is cancelled, and the next identical query sends a new one', async () => {
    const g = gateway();
    books.hold();
    const clients = [new AbortController(), new AbortController()];
    const results = clients.map((c) => g.execute({ query: BOOK }, { signal: c.signal }));
    await until('the second query joined the first', () => deduplicated.books === 1);
    for (const c of clients) c.abort(new Error('client closed the connection'));
    await Promise.all(results);
    await until('the subgraph to see its request cancelled', () => books.cancelled === 1);
    books.release();
    expect(await g.execute({ query: BOOK })).toEqual(ANSWER);
    expect(books.received).toHaveLength(2);
  });

  it('subscription events share entity fetches in flight across events and groups', async () => {
    const g = gateway();
    const prepared = g.prepare({ query: 'subscription { bookAdded { id title avgRating } }' });
    if (prepared.kind !== 'operation' || !prepared.subscription) throw new Error('not a subscription');
    const { subscription } = prepared;
    books.hold();
    ratings.hold();
    // Two events of one Trigger (each with its own per-event table), and a second group of the first.
    const first = new Map<string, Promise<unknown>>();
    const results = [
      subscription.resolve({ __typename: 'Book', id: '1' }, first),
      subscription.resolve({ __typename: 'Book', id: '1' }, new Map()),
      subscription.resolve({ __typename: 'Book', id: '1' }, first),
    ];
    await until(
      'every entity fetch sent or shared',
      () => deduplicated.books === 2 && deduplicated.ratings === 2,
    );
    books.release();
    ratings.release();
    const event = { data: { bookAdded: { id: '1', title: 'Dune', avgRating: 4.5 } } };
    expect(await Promise.all(results)).toEqual([event, event, event]);
    expect(books.received).toHaveLength(1);
    expect(ratings.received).toHaveLength(1);
  });
});

describe('router.yaml: traffic_shaping deduplicate_requests', () => {
  const routers: RunningRouter[] = [];
  afterAll(async () => {
    for (const r of routers) await r.close();
  });

  async function router(
    trafficShaping: Record<string, unknown>,
    logger = createLogger({ level: 'silent' }),
  ): Promise<RunningRouter> {
    const r = await startRouter(
      resolveRouterConfig({
        listen_addr: '127.0.0.1:0',
        execution_config: { file: { path: 'config.json', watch: false } },
        events: { providers: { nats: [{ id: 'default', url: 'memory://dedup' }] } },
        telemetry: { metrics: { prometheus: { enabled: false } } },
        traffic_shaping: trafficShaping,
      }),
      { executionConfig: config, logger },
    );
    routers.push(r);
    return r;
  }

  const post = (r: RunningRouter, query: string, headers: Record<string, string> = {}) =>
    fetch(r.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ query }),
    }).then((res) => res.json());

  async function count(
    metric: { get(): Promise<{ values: { value: number; labels: object }[] }> },
    labels = {},
  ) {
    const { values } = await metric.get();
    return values
      .filter((v) => Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x))
      .reduce((n, v) => n + v.value, 0);
  }

  it('subgraphs.NAME.deduplicate_requests: false sends every request to that subgraph; the others still share', async () => {
    const r = await router({ subgraphs: { books: { deduplicate_requests: false } } });
    const shared = () => count(r.metrics.subgraphRequestsDeduplicated, { subgraph: 'ratings' });
    books.hold();
    ratings.hold();
    const results = [post(r, BOOK), post(r, BOOK)];
    await until('both books requests sent', () => books.received.length === 2);
    books.release();
    await until('the ratings request shared', async () => (await shared()) === 1);
    ratings.release();
    expect(await Promise.all(results)).toEqual([ANSWER, ANSWER]);
    expect(ratings.received).toHaveLength(1);
    expect(await count(r.metrics.subgraphRequestsDeduplicated, { subgraph: 'books' })).toBe(0);
  });

  it('a subgraph name the execution config does not have is logged as a warning naming the key', async () => {
    const lines: string[] = [];
    await router(
      { subgraphs: { bookz: { deduplicate_requests: false } } },
      createLogger({ level: 'warn', destination: { write: (line: string) => void lines.push(line) } }),
    );
    const warnings = lines.map((l) => JSON.parse(l) as { level: string; msg: string });
    expect(warnings).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        msg: 'router.yaml: traffic_shaping.subgraphs.bookz: execution config has no subgraph "bookz"; the setting does nothing until one is served',
      }),
    );
  });

  it('router.deduplicate_requests: identical queries with the same headers share one execution; other headers and mutations do not', async () => {
    const r = await router({ all: { deduplicate_requests: false }, router: { deduplicate_requests: true } });
    const joined = () => count(r.metrics.httpRequestsDeduplicated);
    books.hold();
    const results = [
      post(r, BOOK, { 'x-client': 'a' }),
      post(r, BOOK, { 'x-client': 'a' }),
      post(r, BOOK, { 'x-client': 'a' }),
      post(r, BOOK, { 'x-client': 'b' }),
    ];
    await until(
      'two executions, two clients joined',
      async () => books.received.length === 2 && (await joined()) === 2,
    );
    books.release();
    expect(await Promise.all(results)).toEqual([ANSWER, ANSWER, ANSWER, ANSWER]);
    expect(ratings.received).toHaveLength(2);

    books.hold();
    const mutation = 'mutation { addBook(title: "Dune") { id } }';
    const mutations = [post(r, mutation), post(r, mutation)];
    await until('both mutations sent', () => books.received.length === 4);
    books.release();
    expect(await Promise.all(mutations)).toEqual([
      { data: { addBook: { id: '3' } } },
      { data: { addBook: { id: '3' } } },
    ]);
    expect(await joined()).toBe(2);
  });
});
