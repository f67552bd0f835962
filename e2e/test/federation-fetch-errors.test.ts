/**
 * Subgraph fetches that fail (the subgraph is down): the router in-process over the shop of
 * `src/fixtures/federation`, plus an event-driven subgraph whose `productChanged` events are
 * resolved the way the subscription engine resolves them. Every field a failed fetch was to fill
 * is null with the fetch's error at that field's path (list indices included), as GraphQL
 * execution reports a field error; everything else is returned. See docs/federation-errors.md.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { composeSupergraph } from '@edfs/operator';
import { createGateway } from '@edfs/router';
import {
  startFederationGraph,
  type FederationGraph,
  type SubgraphName,
} from '../src/fixtures/federation/index.js';

interface Response {
  data?: unknown;
  errors?: readonly unknown[];
}

const EVENTS_SDL = /* GraphQL */ `
  type Subscription {
    productChanged: Product! @edfs__natsSubscribe(subjects: ["products"], providerId: "default")
  }
  type Product @key(fields: "upc", resolvable: false) {
    upc: ID! @external
  }
`;

let graph: FederationGraph;
let gateway: ReturnType<typeof createGateway>;
const stopped: SubgraphName[] = [];

beforeAll(async () => {
  graph = await startFederationGraph();
  const composed = composeSupergraph([
    ...graph.subgraphs.map(({ name, url, sdl }) => ({ name, routingUrl: url, sdl })),
    { name: 'events', sdl: EVENTS_SDL },
  ]);
  if (!composed.ok)
    throw new Error(`the test graph does not compose:\n${JSON.stringify(composed.errors, null, 2)}`);
  gateway = createGateway(composed.config, { subgraphTimeoutMs: 5_000 });
});

afterEach(async () => {
  for (const name of stopped.splice(0)) await graph.start(name);
  graph.reset();
});

afterAll(async () => {
  await gateway?.close();
  await graph?.close();
});

const stop = async (name: SubgraphName) => {
  stopped.push(name);
  await graph.stop(name);
};

const run = (query: string): Promise<Response> => gateway.execute({ query });

/**
 * The error of a fetch to `subgraph` that found it down, at `path`: refused, or closed when the
 * request went out on a keep-alive connection the stopped server had just closed.
 */
const down = (subgraph: SubgraphName, path: (string | number)[]) => ({
  message: expect.stringMatching(
    new RegExp(`^Failed to fetch from subgraph "${subgraph}": connection (refused|closed)$`),
  ),
  path,
  extensions: { code: 'SUBGRAPH_FETCH_FAILED', serviceName: subgraph },
});

/** The whole response must equal `expected`; `data` must also list its keys in the same order. */
function expectResponse(actual: Response, expected: Response): void {
  expect(actual).toEqual(expected);
  if (expected.data !== undefined) expect(JSON.stringify(actual.data)).toBe(JSON.stringify(expected.data));
}

describe('a subgraph that is down: the error is at each field its fetch was to fill', () => {
  it('root fields: one error per root field of the failed fetch, aliases as the client wrote them', async () => {
    await stop('accounts');
    expectResponse(
      await run(`{ me { username } ada: user(id: "u1") { name } topProducts(first: 1) { name } }`),
      {
        errors: [down('accounts', ['me']), down('accounts', ['ada'])],
        data: { me: null, ada: null, topProducts: [{ name: 'Table' }] },
      },
    );
  });

  it('an entity field: at the field, not at the entity', async () => {
    await stop('reviews');
    expectResponse(await run(`{ product(upc: "1") { name price averageRating } }`), {
      errors: [down('reviews', ['product', 'averageRating'])],
      data: { product: { name: 'Table', price: 899, averageRating: null } },
    });
  });

  it('several fields of one entity fetch: one error each; a non-null one nulls its parent, once', async () => {
    await stop('reviews');
    expectResponse(await run(`{ product(upc: "1") { name averageRating reviewCount } }`), {
      errors: [down('reviews', ['product', 'averageRating']), down('reviews', ['product', 'reviewCount'])],
      data: { product: null },
    });
  });

  it('entities in a list: at the field of every item, with its index', async () => {
    await stop('reviews');
    expectResponse(await run(`{ topProducts(first: 3) { name averageRating } }`), {
      errors: [0, 1, 2].map((i) => down('reviews', ['topProducts', i, 'averageRating'])),
      data: {
        topProducts: [
          { name: 'Table', averageRating: null },
          { name: 'Chair', averageRating: null },
          { name: 'Lamp', averageRating: null },
        ],
      },
    });
  });

  it('@requires: the subgraph of the requiring field is down', async () => {
    await stop('shipping');
    expectResponse(await run(`{ topProducts(first: 2) { name customsFee(country: "US") } }`), {
      errors: [0, 1].map((i) => down('shipping', ['topProducts', i, 'customsFee'])),
      data: {
        topProducts: [
          { name: 'Table', customsFee: null },
          { name: 'Chair', customsFee: null },
        ],
      },
    });
  });

  it('@requires: the subgraph of the required fields is down, so the requiring field cannot be fetched', async () => {
    // reviews -> products (hsCode, price) -> shipping (customsFee): products is down.
    await stop('products');
    const result = await run(`{ reviews(first: 2) { id product { upc customsFee(country: "US") } } }`);
    expectResponse(result, {
      errors: [0, 1].map((i) => down('products', ['reviews', i, 'product', 'customsFee'])),
      data: {
        reviews: [
          { id: 'r1', product: { upc: '1', customsFee: null } },
          { id: 'r2', product: { upc: '2', customsFee: null } },
        ],
      },
    });
    expect(graph.requests.get('shipping')).toEqual([]);
  });

  it("a subscription event whose entity fetch fails: the event's other fields are delivered", async () => {
    await stop('reviews');
    const prepared = gateway.prepare({
      query: 'subscription { productChanged { upc name averageRating } }',
    });
    if (prepared.kind !== 'operation' || !prepared.subscription) throw new Error('not a subscription');
    expectResponse(await prepared.subscription.resolve({ __typename: 'Product', upc: '2' }), {
      errors: [down('reviews', ['productChanged', 'averageRating'])],
      data: { productChanged: { upc: '2', name: 'Chair', averageRating: null } },
    });
  });
});
