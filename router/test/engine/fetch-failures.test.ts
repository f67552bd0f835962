/**
 * A subgraph fetch that fails: the field it was to fill is null with an error at that field's
 * path, and the error says what failed (refused, HTTP status, not GraphQL, connection closed) in
 * words safe for a client: never a URL, an address or an exception's text, which go to the log.
 * Two HTTP subgraphs in this process: books (`Query.book`, `Book.title`) and ratings
 * (`Book.avgRating`), whose answer each test chooses.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { execute, parse } from 'graphql';
import type { Logger } from 'pino';
import { composeSupergraph } from '@edfs/operator';
import { createGateway, type Gateway } from '../../src/engine/gateway.js';
import { SubgraphClient, SubgraphFetchError } from '../../src/engine/subgraph-client.js';

const LINK = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])';
const BOOKS_SDL = `${LINK}
  type Query { book(id: ID!): Book }
  type Book @key(fields: "id") { id: ID! title: String! }
`;
const RATINGS_SDL = `${LINK}
  type Book @key(fields: "id") { id: ID! avgRating: Float }
`;

const schemas = {
  books: buildSubgraphSchema({
    typeDefs: parse(BOOKS_SDL),
    resolvers: { Query: { book: (_: unknown, a: { id: string }) => ({ id: a.id, title: 'Dune' }) } } as never,
  }),
  ratings: buildSubgraphSchema({
    typeDefs: parse(RATINGS_SDL),
    resolvers: {
      Book: { __resolveReference: (r: { id: string }) => ({ id: r.id, avgRating: 4.5 }) },
    } as never,
  }),
};

/** How the ratings server answers. */
let ratings: 'graphql' | 'bad gateway' | 'not graphql' | 'hang up' = 'graphql';
const servers: Server[] = [];
const urls: Record<string, string> = {};
let closedUrl: string;
const logger = { debug: jest.fn(), error: jest.fn() };
let gateway: Gateway;

const listen = async (server: Server) => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
};

beforeAll(async () => {
  for (const [name, schema] of Object.entries(schemas)) {
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      const respond = async (): Promise<void> => {
        if (name === 'ratings' && ratings === 'bad gateway') {
          res.statusCode = 502;
          res.setHeader('content-type', 'text/html');
          res.end('<html>502 Bad Gateway from proxy 10.0.0.7</html>');
          return;
        }
        if (name === 'ratings' && ratings === 'hang up') {
          res.socket?.destroy();
          return;
        }
        const { query, variables } = JSON.parse(body) as {
          query: string;
          variables: Record<string, unknown>;
        };
        const result =
          name === 'ratings' && ratings === 'not graphql'
            ? { status: 'ok' }
            : await execute({ schema, document: parse(query), variableValues: variables });
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(result));
      };
      req.on('end', () => void respond());
    });
    urls[name] = await listen(server);
    servers.push(server);
  }
  // A port nothing listens on: connections to it are refused.
  const closed = createServer();
  closedUrl = await listen(closed);
  await new Promise((r) => closed.close(r));
  gateway = gatewayWith(urls.ratings!);
});

afterAll(async () => {
  await gateway?.close();
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

beforeEach(() => {
  ratings = 'graphql';
  logger.debug.mockClear();
  logger.error.mockClear();
});

function gatewayWith(ratingsUrl: string, options: Parameters<typeof createGateway>[1] = {}): Gateway {
  const composed = composeSupergraph([
    { name: 'books', routingUrl: urls.books!, sdl: BOOKS_SDL },
    { name: 'ratings', routingUrl: ratingsUrl, sdl: RATINGS_SDL },
  ]);
  if (!composed.ok) throw new Error(JSON.stringify(composed.errors));
  return createGateway(composed.config, { logger: logger as unknown as Logger, ...options });
}

const QUERY = '{ book(id: "1") { title avgRating } }';

/** The response to QUERY when the ratings fetch failed for `reason`. */
const ratingsFailed = (reason: string) => ({
  errors: [
    {
      message: `Failed to fetch from subgraph "ratings": ${reason}`,
      path: ['book', 'avgRating'],
      extensions: { code: 'SUBGRAPH_FETCH_FAILED', serviceName: 'ratings' },
    },
  ],
  data: { book: { title: 'Dune', avgRating: null } },
});

describe('a failed entity fetch: an error at the field it was to fill, saying what failed', () => {
  it('both subgraphs answer', async () => {
    expect(await gateway.execute({ query: QUERY })).toEqual({
      data: { book: { title: 'Dune', avgRating: 4.5 } },
    });
  });

  it('unreachable: connection refused', async () => {
    const down = gatewayWith(closedUrl);
    try {
      expect(await down.execute({ query: QUERY })).toEqual(ratingsFailed('connection refused'));
    } finally {
      await down.close();
    }
  });

  it('an HTTP error with a body that is not GraphQL: the status, not the body', async () => {
    ratings = 'bad gateway';
    expect(await gateway.execute({ query: QUERY })).toEqual(ratingsFailed('HTTP 502, response is not JSON'));
  });

  it('a JSON answer that is not a GraphQL response', async () => {
    ratings = 'not graphql';
    expect(await gateway.execute({ query: QUERY })).toEqual(
      ratingsFailed('HTTP 200, response is not a GraphQL response'),
    );
  });

  it('the connection closed before an answer: no exception text', async () => {
    ratings = 'hang up';
    expect(await gateway.execute({ query: QUERY })).toEqual(ratingsFailed('connection closed'));
    expect(logger.debug).toHaveBeenCalledWith(
      expect.objectContaining({ subgraph: 'ratings', err: expect.any(SubgraphFetchError) }),
      'subgraph fetch failed',
    );
  });

  it('a fault in the router: named as such to the client, its detail only in the log', async () => {
    const fault = new Error('metrics registry at 10.0.0.7 is gone');
    const faulty = gatewayWith(urls.ratings!, {
      onSubgraphRequest: (subgraph) => {
        if (subgraph === 'ratings') throw fault;
      },
    });
    try {
      expect(await faulty.execute({ query: QUERY })).toEqual(
        ratingsFailed('internal error (see the router log)'),
      );
      expect(logger.error).toHaveBeenCalledWith(
        { err: fault, subgraph: 'ratings' },
        'subgraph fetch failed in the router',
      );
    } finally {
      await faulty.close();
    }
  });
});

describe('SubgraphClient', () => {
  it('an invalid routing URL: the reason names no URL, the cause has it', async () => {
    const client = new SubgraphClient();
    const failure = await client.post('ratings', 'http//ratings.internal:4002', '{}', 1000).catch((e) => e);
    expect(failure).toBeInstanceOf(SubgraphFetchError);
    expect((failure as SubgraphFetchError).message).toBe(
      'Failed to fetch from subgraph "ratings": invalid routing URL',
    );
    expect(String((failure as SubgraphFetchError).cause)).toContain('Invalid URL');
    await client.close();
  });
});
