/**
 * Federation correctness, abstract types: an interface whose implementations are owned by
 * different subgraphs and a union, each item dispatched on `__typename`. The router runs
 * in-process over the shop of `src/fixtures/federation` (see its README for the schemas and the
 * data); see fixtures/federation/gateway.ts for what every expectation means.
 */
import { describe, expect, it } from '@jest/globals';
import { expectResponse, expectSameItems, useShopGateway } from '../src/fixtures/federation/gateway.js';

const shop = useShopGateway();

describe('federation: abstract types', () => {
  it('interface: dispatches each item on __typename to the subgraph that owns its implementation', async () => {
    const result = await shop.run(`{
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
    expect(shop.onlyEntityRequest('accounts')).toEqual([{ __typename: 'Seller', id: 's1' }]);
    expectSameItems(shop.onlyEntityRequest('products'), [
      { __typename: 'Product', upc: '1' },
      { __typename: 'Product', upc: '2' },
    ]);
  });

  it('union: dispatches members on __typename and fetches entity fields only for products', async () => {
    const result = await shop.run(`{
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
    expectSameItems(shop.onlyEntityRequest('inventory'), [
      { __typename: 'Product', id: 'p1', sku: 'TBL-1' },
      { __typename: 'Product', id: 'p3', sku: 'LMP-3' },
    ]);
  });
});
