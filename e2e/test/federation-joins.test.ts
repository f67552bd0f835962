/**
 * Federation correctness, joining subgraphs: root fields of every subgraph in one operation,
 * entities joined through `_entities` by their keys (composite keys, different keys in different
 * subgraphs, a chain over four subgraphs), batching, and arguments on root and entity fields.
 * The router runs in-process over the shop of `src/fixtures/federation` (see its README for the
 * schemas and the data); see fixtures/federation/gateway.ts for what every expectation means.
 */
import { describe, expect, it } from '@jest/globals';
import { expectResponse, expectSameItems, useShopGateway } from '../src/fixtures/federation/gateway.js';

const shop = useShopGateway();

describe('federation: joining subgraphs', () => {
  it('answers root fields of every subgraph in one operation', async () => {
    const result = await shop.run(`{
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
      expect(shop.requestsTo(name).length).toBeGreaterThan(0);
    }
  });

  it('joins an entity from another subgraph through _entities with its @key', async () => {
    const result = await shop.run(`{ me { username name email reviews { rating body } } }`);
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
    expect(shop.onlyEntityRequest('reviews')).toEqual([{ __typename: 'User', id: 'u1' }]);
  });

  it('fetches an entity through its composite key (id sku)', async () => {
    const result = await shop.run(`{ product(upc: "1") { name inStock stock { quantity } } }`);
    expectResponse(result, {
      data: { product: { name: 'Table', inStock: true, stock: [{ quantity: 12 }, { quantity: 3 }] } },
    });
    expect(shop.onlyEntityRequest('inventory')).toEqual([{ __typename: 'Product', id: 'p1', sku: 'TBL-1' }]);
  });

  it('joins an entity that two subgraphs know by different keys via the subgraph that has both', async () => {
    // inventory knows Product by `id sku`, reviews and shipping by `upc`: products bridges them.
    const result = await shop.run(`{ lowStock(threshold: 10) { sku name averageRating shippingEstimate } }`);
    expectResponse(result, {
      data: {
        lowStock: [
          { sku: 'CHR-2', name: 'Chair', averageRating: 3.5, shippingEstimate: 12 },
          { sku: 'RUG-4', name: 'Rug', averageRating: null, shippingEstimate: 10 },
        ],
      },
    });
    expectSameItems(shop.onlyEntityRequest('reviews'), [
      { __typename: 'Product', upc: '2' },
      { __typename: 'Product', upc: '4' },
    ]);
  });

  it('follows a chain review -> product -> inventory -> warehouse across four subgraphs, one fetch each', async () => {
    const result = await shop.run(`{
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
    expect(shop.requestCounts()).toEqual({ reviews: 1, products: 1, inventory: 1, shipping: 1 });
    // Four stock levels in two warehouses: two representations.
    expectSameItems(shop.onlyEntityRequest('shipping'), [
      { __typename: 'Warehouse', id: 'w1' },
      { __typename: 'Warehouse', id: 'w2' },
    ]);
  });

  it('batches five reviews of two products into one _entities request with two representations', async () => {
    const result = await shop.run(`{ reviews { rating product { price } } }`);
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
    expect(shop.requestsTo('products')).toHaveLength(1);
    expectSameItems(shop.onlyEntityRequest('products'), [
      { __typename: 'Product', upc: '1' },
      { __typename: 'Product', upc: '2' },
    ]);
  });

  it('passes arguments to root fields and to entity fields', async () => {
    const result = await shop.run(`{
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
