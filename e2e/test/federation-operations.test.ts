/**
 * Federation correctness, the shape of the client's operation: aliases, fragments, variables with
 * defaults, `@include`/`@skip`, operationName, and mutation root fields run one after another in
 * document order. The router runs in-process over the shop of `src/fixtures/federation` (see its
 * README for the data); see fixtures/federation/gateway.ts for what every expectation means.
 */
import { describe, expect, it } from '@jest/globals';
import { expectResponse, useShopGateway } from '../src/fixtures/federation/gateway.js';

const shop = useShopGateway();

describe('federation: operations', () => {
  it('aliases rename fields, also entity fields fetched with different arguments', async () => {
    const result = await shop.run(`{
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
    const result = await shop.run(`
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
    expectResponse(await shop.run(query, {}), {
      data: {
        topProducts: [
          { name: 'Table', reviews: [{ rating: 5 }, { rating: 4 }] },
          { name: 'Chair', reviews: [{ rating: 5 }] },
        ],
      },
    });
    expectResponse(await shop.run(query, { first: 1, minRating: 1 }), {
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
    expectResponse(await shop.run(query, { withStock: false }), { data: { product: { name: 'Chair' } } });
    expect(shop.requestCounts()).toEqual({ products: 1 });

    expectResponse(await shop.run(query, { withStock: true, brief: false }), {
      data: { product: { name: 'Chair', inStock: false, price: 149, restockDate: '2024-07-01' } },
    });
  });

  it('operationName selects the operation to run', async () => {
    const result = await shop.run(
      `query A { me { username } } query B { warehouses { name } }`,
      undefined,
      'B',
    );
    expectResponse(result, {
      data: { warehouses: [{ name: 'Central' }, { name: 'North' }, { name: 'South' }] },
    });
    expect(shop.requestCounts()).toEqual({ shipping: 1 });
  });
});

describe('federation: mutations', () => {
  it('runs mutation root fields one after another, in document order', async () => {
    const result = await shop.run(`mutation {
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
      await shop.run(`{ cart { revision totalQuantity items { quantity product { name price } } } }`),
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
    const result = await shop.run(`mutation {
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
    expect(shop.graph.timeline.slice(0, 3)).toEqual(['inventory', 'shipping', 'accounts']);
    expect(shop.requestsTo('accounts')[0]?.query).toContain('addToCart');
  });
});
