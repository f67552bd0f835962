/**
 * Federation correctness: the router in-process over the five-subgraph shop of
 * `src/fixtures/federation` (see its README for the schemas and the data). Every expectation is
 * the response a correct federation gateway returns for that data: GraphQL null propagation,
 * error paths in the client's terms, response keys in the order of the query's selections.
 * Fetch counts come from what the subgraphs actually received.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { composeSupergraph } from '@edfs/operator';
import { createGateway } from '@edfs/router';
import {
  startFederationGraph,
  type FederationGraph,
  type RecordedRequest,
  type SubgraphName,
} from '../src/fixtures/federation/index.js';

interface Response {
  data?: unknown;
  errors?: readonly unknown[];
}

let graph: FederationGraph;
let gateway: ReturnType<typeof createGateway>;

beforeAll(async () => {
  graph = await startFederationGraph();
  const composed = composeSupergraph(
    graph.subgraphs.map(({ name, url, sdl }) => ({ name, routingUrl: url, sdl })),
  );
  if (!composed.ok)
    throw new Error(`the test graph does not compose:\n${JSON.stringify(composed.errors, null, 2)}`);
  gateway = createGateway(composed.config, { subgraphTimeoutMs: 5_000 });
});

afterAll(async () => {
  await (gateway as { close?: () => Promise<void> } | undefined)?.close?.();
  await graph?.close();
});

beforeEach(() => graph.reset());

async function run(
  query: string,
  variables?: Record<string, unknown>,
  operationName?: string,
): Promise<Response> {
  const prepared = gateway.prepare({ query, variables, operationName });
  if (prepared.kind === 'errors') return { errors: prepared.errors };
  return prepared.execute();
}

/** The whole response must equal `expected`; `data` must also list its keys in the same order. */
function expectResponse(actual: Response, expected: Response): void {
  expect(actual).toEqual(expected);
  if (expected.data !== undefined) expect(JSON.stringify(actual.data)).toBe(JSON.stringify(expected.data));
}

const requestsTo = (subgraph: SubgraphName): RecordedRequest[] => graph.requests.get(subgraph) ?? [];

/** How many requests each subgraph received (subgraphs with none are left out). */
function requestCounts(): Partial<Record<SubgraphName, number>> {
  const counts: Partial<Record<SubgraphName, number>> = {};
  for (const [name, list] of graph.requests) if (list.length > 0) counts[name] = list.length;
  return counts;
}

/** The representations of an `_entities` request, wherever in its variables the router put them. */
function representationsOf(request: RecordedRequest | undefined): unknown[] {
  if (!request) throw new Error('no such request');
  for (const value of Object.values(request.variables)) {
    if (Array.isArray(value) && value.every((v) => typeof v === 'object' && v !== null && '__typename' in v))
      return value;
  }
  throw new Error(`no representations in the variables of ${JSON.stringify(request)}`);
}

/** The representations of the single `_entities` request `subgraph` received. */
function onlyEntityRequest(subgraph: SubgraphName): unknown[] {
  const entityRequests = requestsTo(subgraph).filter((r) => r.query.includes('_entities'));
  expect(entityRequests).toHaveLength(1);
  return representationsOf(entityRequests[0]);
}

/** `actual` holds exactly `expected`, in any order (representation order is not observable). */
function expectSameItems(actual: unknown[], expected: unknown[]): void {
  expect(actual).toHaveLength(expected.length);
  expect(actual).toEqual(expect.arrayContaining(expected));
}

describe('federation: joining subgraphs', () => {
  it('answers root fields of every subgraph in one operation', async () => {
    const result = await run(`{
      topProducts(first: 2) { name }
      me { username }
      reviews(first: 1) { body }
      lowStock { sku name }
      warehouses { name city }
    }`);
    expectResponse(result, {
      data: {
        topProducts: [{ name: 'Table' }, { name: 'Chair' }],
        me: { username: 'ada' },
        reviews: [{ body: 'Solid oak, rock steady.' }],
        lowStock: [{ sku: 'CHR-2', name: 'Chair' }],
        warehouses: [
          { name: 'Central', city: 'Berlin' },
          { name: 'North', city: 'Hamburg' },
          { name: 'South', city: 'Munich' },
        ],
      },
    });
    for (const name of ['accounts', 'inventory', 'products', 'reviews', 'shipping'] as const) {
      expect(requestsTo(name).length).toBeGreaterThan(0);
    }
  });

  it('joins an entity from another subgraph through _entities with its @key', async () => {
    const result = await run(`{ me { username name email reviews { rating body } } }`);
    expectResponse(result, {
      data: {
        me: {
          username: 'ada',
          name: 'Ada Lovelace',
          email: 'ada@example.com',
          reviews: [
            { rating: 5, body: 'Solid oak, rock steady.' },
            { rating: 5, body: 'Comfortable for long days.' },
          ],
        },
      },
    });
    expect(onlyEntityRequest('reviews')).toEqual([{ __typename: 'User', id: 'u1' }]);
  });

  it('fetches an entity through its composite key (id sku)', async () => {
    const result = await run(`{ product(upc: "1") { name inStock stock { quantity } } }`);
    expectResponse(result, {
      data: { product: { name: 'Table', inStock: true, stock: [{ quantity: 12 }, { quantity: 3 }] } },
    });
    expect(onlyEntityRequest('inventory')).toEqual([{ __typename: 'Product', id: 'p1', sku: 'TBL-1' }]);
  });

  it('joins an entity that two subgraphs know by different keys via the subgraph that has both', async () => {
    // inventory knows Product by `id sku`, reviews and shipping by `upc`: products bridges them.
    const result = await run(`{ lowStock(threshold: 10) { sku name averageRating shippingEstimate } }`);
    expectResponse(result, {
      data: {
        lowStock: [
          { sku: 'CHR-2', name: 'Chair', averageRating: 3.5, shippingEstimate: 12 },
          { sku: 'RUG-4', name: 'Rug', averageRating: null, shippingEstimate: 10 },
        ],
      },
    });
    expectSameItems(onlyEntityRequest('reviews'), [
      { __typename: 'Product', upc: '2' },
      { __typename: 'Product', upc: '4' },
    ]);
  });

  it('follows a chain review -> product -> inventory -> warehouse across four subgraphs, one fetch each', async () => {
    const result = await run(`{
      reviews(first: 2) {
        body
        product { name stock { quantity warehouse { name city } } }
      }
    }`);
    expectResponse(result, {
      data: {
        reviews: [
          {
            body: 'Solid oak, rock steady.',
            product: {
              name: 'Table',
              stock: [
                { quantity: 12, warehouse: { name: 'Central', city: 'Berlin' } },
                { quantity: 3, warehouse: { name: 'North', city: 'Hamburg' } },
              ],
            },
          },
          {
            body: 'Wobbles after a week.',
            product: {
              name: 'Chair',
              stock: [
                { quantity: 0, warehouse: { name: 'Central', city: 'Berlin' } },
                { quantity: 0, warehouse: { name: 'North', city: 'Hamburg' } },
              ],
            },
          },
        ],
      },
    });
    expect(requestCounts()).toEqual({ reviews: 1, products: 1, inventory: 1, shipping: 1 });
    // Four stock levels in two warehouses: two representations.
    expectSameItems(onlyEntityRequest('shipping'), [
      { __typename: 'Warehouse', id: 'w1' },
      { __typename: 'Warehouse', id: 'w2' },
    ]);
  });

  it('batches five reviews of two products into one _entities request with two representations', async () => {
    const result = await run(`{ reviews { rating product { price } } }`);
    expectResponse(result, {
      data: {
        reviews: [
          { rating: 5, product: { price: 899 } },
          { rating: 2, product: { price: 149 } },
          { rating: 4, product: { price: 899 } },
          { rating: 5, product: { price: 149 } },
          { rating: 3, product: { price: 899 } },
        ],
      },
    });
    expect(requestsTo('products')).toHaveLength(1);
    expectSameItems(onlyEntityRequest('products'), [
      { __typename: 'Product', upc: '1' },
      { __typename: 'Product', upc: '2' },
    ]);
  });

  it('passes arguments to root fields and to entity fields', async () => {
    const result = await run(`{
      topProducts(first: 1) { name reviews(minRating: 4) { rating } }
      lowStock(threshold: 10) { sku }
    }`);
    expectResponse(result, {
      data: {
        topProducts: [{ name: 'Table', reviews: [{ rating: 5 }, { rating: 4 }] }],
        lowStock: [{ sku: 'CHR-2' }, { sku: 'RUG-4' }],
      },
    });
  });
});

describe('federation: @requires, @provides, @shareable, @inaccessible', () => {
  it('@requires: sends the required price and weight from products in the shipping representations', async () => {
    const result = await run(`{ topProducts { name shippingEstimate } }`);
    expectResponse(result, {
      data: {
        topProducts: [
          { name: 'Table', shippingEstimate: 0 },
          { name: 'Chair', shippingEstimate: 12 },
          { name: 'Lamp', shippingEstimate: 4 },
          { name: 'Rug', shippingEstimate: 10 },
        ],
      },
    });
    expectSameItems(onlyEntityRequest('shipping'), [
      { __typename: 'Product', upc: '1', price: 899, weight: 20.5 },
      { __typename: 'Product', upc: '2', price: 149, weight: 6 },
      { __typename: 'Product', upc: '3', price: 39, weight: 1.2 },
      { __typename: 'Product', upc: '4', price: 120, weight: 4.5 },
    ]);
  });

  it('@requires with a nested selection: sends dimensions { width height depth }', async () => {
    const result = await run(`{ topProducts { name packageSize } }`);
    expectResponse(result, {
      data: {
        topProducts: [
          { name: 'Table', packageSize: 'L' },
          { name: 'Chair', packageSize: 'M' },
          { name: 'Lamp', packageSize: 'S' },
          { name: 'Rug', packageSize: 'M' },
        ],
      },
    });
    expectSameItems(onlyEntityRequest('shipping'), [
      { __typename: 'Product', upc: '1', dimensions: { width: 120, height: 75, depth: 80 } },
      { __typename: 'Product', upc: '2', dimensions: { width: 50, height: 90, depth: 50 } },
      { __typename: 'Product', upc: '3', dimensions: { width: 20, height: 45, depth: 20 } },
      { __typename: 'Product', upc: '4', dimensions: { width: 200, height: 30, depth: 30 } },
    ]);
  });

  it('@requires of an @inaccessible field, on a field with arguments fetched twice under aliases', async () => {
    const result = await run(
      `{ product(upc: "1") { name customsFee(country: "US") domestic: customsFee(country: "DE") } }`,
    );
    expectResponse(result, { data: { product: { name: 'Table', customsFee: 45, domestic: 0 } } });
    expectSameItems(onlyEntityRequest('shipping'), [
      { __typename: 'Product', upc: '1', hsCode: '9403.60', price: 899 },
    ]);
  });

  it('@provides: usernames provided by reviews need no request to accounts', async () => {
    const result = await run(`{ reviews { rating author { username } } }`);
    expectResponse(result, {
      data: {
        reviews: [
          { rating: 5, author: { username: 'ada' } },
          { rating: 2, author: { username: 'alan' } },
          { rating: 4, author: { username: 'grace' } },
          { rating: 5, author: { username: 'ada' } },
          { rating: 3, author: { username: 'alan' } },
        ],
      },
    });
    expect(requestCounts()).toEqual({ reviews: 1 });
  });

  it('a field outside @provides is fetched from its owner, once per distinct user', async () => {
    const result = await run(`{ reviews { author { username name } } }`);
    expectResponse(result, {
      data: {
        reviews: [
          { author: { username: 'ada', name: 'Ada Lovelace' } },
          { author: { username: 'alan', name: 'Alan Turing' } },
          { author: { username: 'grace', name: 'Grace Hopper' } },
          { author: { username: 'ada', name: 'Ada Lovelace' } },
          { author: { username: 'alan', name: 'Alan Turing' } },
        ],
      },
    });
    expectSameItems(onlyEntityRequest('accounts'), [
      { __typename: 'User', id: 'u1' },
      { __typename: 'User', id: 'u2' },
      { __typename: 'User', id: 'u3' },
    ]);
  });

  it('@shareable: a field two subgraphs resolve has the same value from either', async () => {
    const result = await run(`{ reviews(first: 2) { product { name } } product(upc: "2") { name } }`);
    expectResponse(result, {
      data: {
        reviews: [{ product: { name: 'Table' } }, { product: { name: 'Chair' } }],
        product: { name: 'Chair' },
      },
    });
  });

  it('@inaccessible: the field cannot be queried and no subgraph is called', async () => {
    const result = await run(`{ topProducts { hsCode } }`);
    expectResponse(result, {
      errors: [
        { message: 'Cannot query field "hsCode" on type "Product".', locations: [{ line: 1, column: 17 }] },
      ],
    });
    expect(graph.timeline).toEqual([]);
  });

  it('@inaccessible: the field is absent from introspection', async () => {
    const result = await run(`{ __type(name: "Product") { fields { name } } }`);
    const names = ((result.data as { __type: { fields: { name: string }[] } }).__type.fields ?? []).map(
      (f) => f.name,
    );
    expect(result.errors).toBeUndefined();
    expect([...names].sort()).toEqual(
      [
        'upc',
        'id',
        'sku',
        'name',
        'price',
        'weight',
        'dimensions',
        'seller',
        'category',
        'inStock',
        'stock',
        'restockDate',
        'reviews',
        'reviewCount',
        'averageRating',
        'shippingEstimate',
        'packageSize',
        'customsFee',
      ].sort(),
    );
  });
});

describe('federation: abstract types', () => {
  it('interface: dispatches each item on __typename to the subgraph that owns its implementation', async () => {
    const result = await run(`{
      topRated {
        __typename
        averageRating
        reviewCount
        ... on Product { name price }
        ... on Seller { name since }
      }
    }`);
    expectResponse(result, {
      data: {
        topRated: [
          { __typename: 'Seller', averageRating: 4.5, reviewCount: 2, name: 'Oak & Co', since: 2015 },
          { __typename: 'Product', averageRating: 4, reviewCount: 3, name: 'Table', price: 899 },
          { __typename: 'Product', averageRating: 3.5, reviewCount: 2, name: 'Chair', price: 149 },
        ],
      },
    });
    expect(onlyEntityRequest('accounts')).toEqual([{ __typename: 'Seller', id: 's1' }]);
    expectSameItems(onlyEntityRequest('products'), [
      { __typename: 'Product', upc: '1' },
      { __typename: 'Product', upc: '2' },
    ]);
  });

  it('union: dispatches members on __typename and fetches entity fields only for products', async () => {
    const result = await run(`{
      search(term: "l") {
        __typename
        ... on Product { name inStock }
        ... on Category { name products { upc } }
      }
    }`);
    expectResponse(result, {
      data: {
        search: [
          { __typename: 'Product', name: 'Table', inStock: true },
          { __typename: 'Product', name: 'Lamp', inStock: true },
          { __typename: 'Category', name: 'Lighting', products: [{ upc: '3' }] },
          { __typename: 'Category', name: 'Textiles', products: [{ upc: '4' }] },
        ],
      },
    });
    expectSameItems(onlyEntityRequest('inventory'), [
      { __typename: 'Product', id: 'p1', sku: 'TBL-1' },
      { __typename: 'Product', id: 'p3', sku: 'LMP-3' },
    ]);
  });
});

describe('federation: errors from subgraphs', () => {
  it('a nullable field whose resolver throws is null, with the error at its path in the list', async () => {
    const result = await run(`{ topProducts { name restockDate } }`);
    expectResponse(result, {
      errors: [{ message: 'supplier feed unavailable for LMP-3', path: ['topProducts', 2, 'restockDate'] }],
      data: {
        topProducts: [
          { name: 'Table', restockDate: null },
          { name: 'Chair', restockDate: '2024-07-01' },
          { name: 'Lamp', restockDate: null },
          { name: 'Rug', restockDate: null },
        ],
      },
    });
  });

  it('a non-null field whose resolver throws nulls the nearest nullable parent', async () => {
    // phone: String! -> warehouse: Warehouse! -> StockLevel! in [StockLevel!] -> stock (nullable) is null.
    const result = await run(`{ product(upc: "3") { name stock { quantity warehouse { name phone } } } }`);
    expectResponse(result, {
      errors: [
        {
          message: 'phone number of warehouse w3 is not verified',
          path: ['product', 'stock', 1, 'warehouse', 'phone'],
        },
      ],
      data: { product: { name: 'Lamp', stock: null } },
    });
  });

  it('an error of a nullable root field keeps the other root fields and forwards its extensions', async () => {
    const result = await run(`{ warehouseReport topProducts(first: 1) { name } }`);
    expectResponse(result, {
      errors: [
        {
          message: 'warehouse report is being regenerated',
          path: ['warehouseReport'],
          extensions: { code: 'REPORT_UNAVAILABLE' },
        },
      ],
      data: { warehouseReport: null, topProducts: [{ name: 'Table' }] },
    });
  });

  it('a subgraph that is down costs only its fields: the rest is returned with an error at the field', async () => {
    await graph.stop('reviews');
    try {
      const result = await run(`{ product(upc: "1") { name price averageRating } }`);
      expectResponse(result, {
        errors: [
          {
            message: expect.stringContaining('reviews'),
            path: ['product', 'averageRating'],
            extensions: { code: 'SUBGRAPH_FETCH_FAILED', serviceName: 'reviews' },
          },
        ],
        data: { product: { name: 'Table', price: 899, averageRating: null } },
      });
    } finally {
      await graph.start('reviews');
    }
  });

  it('a root field of a subgraph that is down is null with an error, and works again once it is back', async () => {
    const query = `{ me { username } topProducts(first: 1) { name } }`;
    await graph.stop('accounts');
    try {
      expectResponse(await run(query), {
        errors: [
          {
            message: expect.stringContaining('accounts'),
            path: ['me'],
            extensions: { code: 'SUBGRAPH_FETCH_FAILED', serviceName: 'accounts' },
          },
        ],
        data: { me: null, topProducts: [{ name: 'Table' }] },
      });
    } finally {
      await graph.start('accounts');
    }
    expectResponse(await run(query), { data: { me: { username: 'ada' }, topProducts: [{ name: 'Table' }] } });
  });
});

describe('federation: operations', () => {
  it('aliases rename fields, also entity fields fetched with different arguments', async () => {
    const result = await run(`{
      table: product(upc: "1") {
        title: name
        cost: price
        best: reviews(minRating: 5) { stars: rating }
        all: reviews { stars: rating }
        delivery: shippingEstimate
      }
      lamp: product(upc: "3") { title: name cost: price delivery: shippingEstimate }
    }`);
    expectResponse(result, {
      data: {
        table: {
          title: 'Table',
          cost: 899,
          best: [{ stars: 5 }],
          all: [{ stars: 5 }, { stars: 4 }, { stars: 3 }],
          delivery: 0,
        },
        lamp: { title: 'Lamp', cost: 39, delivery: 4 },
      },
    });
  });

  it('named fragments and inline fragments on objects, interfaces and unions', async () => {
    const result = await run(`
      query {
        topProducts(first: 2) { ...Card }
        search(term: "l") {
          __typename
          ... on Category { name }
          ...Card
        }
      }
      fragment Card on Product {
        upc
        name
        ... on Product { price }
        ... { inStock }
        ...Rating
      }
      fragment Rating on Reviewable { averageRating reviewCount }
    `);
    const table = { upc: '1', name: 'Table', price: 899, inStock: true, averageRating: 4, reviewCount: 3 };
    expectResponse(result, {
      data: {
        topProducts: [
          table,
          { upc: '2', name: 'Chair', price: 149, inStock: false, averageRating: 3.5, reviewCount: 2 },
        ],
        search: [
          { __typename: 'Product', ...table },
          {
            __typename: 'Product',
            upc: '3',
            name: 'Lamp',
            price: 39,
            inStock: true,
            averageRating: null,
            reviewCount: 0,
          },
          { __typename: 'Category', name: 'Lighting' },
          { __typename: 'Category', name: 'Textiles' },
        ],
      },
    });
  });

  it('variables with defaults are used in root and entity field arguments', async () => {
    const query = `query Top($first: Int = 2, $minRating: Int = 4) {
      topProducts(first: $first) { name reviews(minRating: $minRating) { rating } }
    }`;
    expectResponse(await run(query, {}), {
      data: {
        topProducts: [
          { name: 'Table', reviews: [{ rating: 5 }, { rating: 4 }] },
          { name: 'Chair', reviews: [{ rating: 5 }] },
        ],
      },
    });
    expectResponse(await run(query, { first: 1, minRating: 1 }), {
      data: { topProducts: [{ name: 'Table', reviews: [{ rating: 5 }, { rating: 4 }, { rating: 3 }] }] },
    });
  });

  it('@include and @skip follow variables, and a skipped subgraph is not called', async () => {
    const query = `query Product($withStock: Boolean!, $brief: Boolean = true) {
      product(upc: "2") {
        name
        inStock @include(if: $withStock)
        price @skip(if: $brief)
        ... @include(if: $withStock) { restockDate }
      }
    }`;
    expectResponse(await run(query, { withStock: false }), { data: { product: { name: 'Chair' } } });
    expect(requestCounts()).toEqual({ products: 1 });

    expectResponse(await run(query, { withStock: true, brief: false }), {
      data: { product: { name: 'Chair', inStock: false, price: 149, restockDate: '2024-07-01' } },
    });
  });

  it('operationName selects the operation to run', async () => {
    const result = await run(`query A { me { username } } query B { warehouses { name } }`, undefined, 'B');
    expectResponse(result, {
      data: { warehouses: [{ name: 'Central' }, { name: 'North' }, { name: 'South' }] },
    });
    expect(requestCounts()).toEqual({ shipping: 1 });
  });
});

describe('federation: mutations', () => {
  it('runs mutation root fields one after another, in document order', async () => {
    const result = await run(`mutation {
      __typename
      first: addToCart(upc: "1") { revision totalQuantity items { quantity product { upc } } }
      second: addToCart(upc: "2", quantity: 2) { revision totalQuantity items { quantity product { upc name } } }
    }`);
    expectResponse(result, {
      data: {
        __typename: 'Mutation',
        first: { revision: 1, totalQuantity: 1, items: [{ quantity: 1, product: { upc: '1' } }] },
        second: {
          revision: 2,
          totalQuantity: 3,
          items: [
            { quantity: 1, product: { upc: '1', name: 'Table' } },
            { quantity: 2, product: { upc: '2', name: 'Chair' } },
          ],
        },
      },
    });

    expectResponse(
      await run(`{ cart { revision totalQuantity items { quantity product { name price } } } }`),
      {
        data: {
          cart: {
            revision: 2,
            totalQuantity: 3,
            items: [
              { quantity: 1, product: { name: 'Table', price: 899 } },
              { quantity: 2, product: { name: 'Chair', price: 149 } },
            ],
          },
        },
      },
    );
  });

  it('finishes a mutation field, entity fetches included, before the next one starts on another subgraph', async () => {
    const result = await run(`mutation {
      restock(sku: "CHR-2", warehouseId: "w1", quantity: 4) { sku inStock stock { quantity warehouse { name } } }
      addToCart(upc: "2") { totalQuantity items { product { name inStock } } }
    }`);
    expectResponse(result, {
      data: {
        restock: {
          sku: 'CHR-2',
          inStock: true,
          stock: [
            { quantity: 4, warehouse: { name: 'Central' } },
            { quantity: 0, warehouse: { name: 'North' } },
          ],
        },
        addToCart: { totalQuantity: 1, items: [{ product: { name: 'Chair', inStock: true } }] },
      },
    });
    // restock (inventory), its warehouse names (shipping), then addToCart (accounts).
    expect(graph.timeline.slice(0, 3)).toEqual(['inventory', 'shipping', 'accounts']);
    expect(requestsTo('accounts')[0]?.query).toContain('addToCart');
  });
});

describe('federation: introspection', () => {
  it('__schema names the root types without calling a subgraph', async () => {
    const result = await run(
      `{ __schema { queryType { name } mutationType { name } subscriptionType { name } } }`,
    );
    expectResponse(result, {
      data: {
        __schema: {
          queryType: { name: 'Query' },
          mutationType: { name: 'Mutation' },
          subscriptionType: null,
        },
      },
    });
    expect(graph.timeline).toEqual([]);
  });

  it('__type describes types of the composed schema, null for unknown names', async () => {
    const result = await run(`{
      dimensions: __type(name: "Dimensions") { name kind fields { name type { kind ofType { name } } } }
      searchResult: __type(name: "SearchResult") { kind possibleTypes { name } }
      missing: __type(name: "Nope") { name }
    }`);
    const nonNullInt = { kind: 'NON_NULL', ofType: { name: 'Int' } };
    expectResponse(result, {
      data: {
        dimensions: {
          name: 'Dimensions',
          kind: 'OBJECT',
          fields: [
            { name: 'width', type: nonNullInt },
            { name: 'height', type: nonNullInt },
            { name: 'depth', type: nonNullInt },
          ],
        },
        searchResult: { kind: 'UNION', possibleTypes: [{ name: 'Product' }, { name: 'Category' }] },
        missing: null,
      },
    });
  });

  it('__typename at the root, nested, under an alias and on abstract types', async () => {
    const result = await run(`{
      __typename
      topProducts(first: 1) { __typename seller { __typename name } }
      topRated(first: 1) { __typename }
      kind: __typename
    }`);
    expectResponse(result, {
      data: {
        __typename: 'Query',
        topProducts: [{ __typename: 'Product', seller: { __typename: 'Seller', name: 'Oak & Co' } }],
        topRated: [{ __typename: 'Seller' }],
        kind: 'Query',
      },
    });
  });

  it('introspection and subgraph data in one operation', async () => {
    const result = await run(`{ me { username } __schema { queryType { name } } }`);
    expectResponse(result, { data: { me: { username: 'ada' }, __schema: { queryType: { name: 'Query' } } } });
  });
});

describe('federation: request validation', () => {
  it('a syntax error is reported with its location', async () => {
    expectResponse(await run(`{ topProducts { name }`), {
      errors: [
        { message: 'Syntax Error: Expected Name, found <EOF>.', locations: [{ line: 1, column: 23 }] },
      ],
    });
    expect(graph.timeline).toEqual([]);
  });

  it('an unknown field is reported as graphql-js words it', async () => {
    expectResponse(await run(`{ topProducts { name colour } }`), {
      errors: [
        { message: 'Cannot query field "colour" on type "Product".', locations: [{ line: 1, column: 22 }] },
      ],
    });
  });

  it('a missing required argument is reported', async () => {
    expectResponse(await run(`{ product { name } }`), {
      errors: [
        {
          message: 'Field "product" argument "upc" of type "ID!" is required, but it was not provided.',
          locations: [{ line: 1, column: 3 }],
        },
      ],
    });
  });

  it('a variable of the wrong type is reported', async () => {
    expectResponse(
      await run(`query ($first: Int) { topProducts(first: $first) { name } }`, { first: 'two' }),
      {
        errors: [
          {
            message:
              'Variable "$first" got invalid value "two"; Int cannot represent non-integer value: "two"',
            locations: [{ line: 1, column: 8 }],
          },
        ],
      },
    );
    expect(graph.timeline).toEqual([]);
  });

  it('a missing required variable is reported', async () => {
    expectResponse(await run(`query ($upc: ID!) { product(upc: $upc) { name } }`, {}), {
      errors: [
        {
          message: 'Variable "$upc" of required type "ID!" was not provided.',
          locations: [{ line: 1, column: 8 }],
        },
      ],
    });
    expect(graph.timeline).toEqual([]);
  });
});
