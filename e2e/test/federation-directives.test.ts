/**
 * Federation correctness, the directives that shape a query plan: `@requires` (flat, nested, of an
 * `@inaccessible` field), `@provides`, `@shareable` and `@inaccessible`. The router runs
 * in-process over the shop of `src/fixtures/federation` (see its README for which directive is
 * where and the data); see fixtures/federation/gateway.ts for what every expectation means.
 */
import { describe, expect, it } from '@jest/globals';
import { expectResponse, expectSameItems, useShopGateway } from '../src/fixtures/federation/gateway.js';

const shop = useShopGateway();

describe('federation: @requires, @provides, @shareable, @inaccessible', () => {
  it('@requires: sends the required price and weight from products in the shipping representations', async () => {
    const result = await shop.run(`{ topProducts { name shippingEstimate } }`);
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
    expectSameItems(shop.onlyEntityRequest('shipping'), [
      { __typename: 'Product', upc: '1', price: 899, weight: 20.5 },
      { __typename: 'Product', upc: '2', price: 149, weight: 6 },
      { __typename: 'Product', upc: '3', price: 39, weight: 1.2 },
      { __typename: 'Product', upc: '4', price: 120, weight: 4.5 },
    ]);
  });

  it('@requires with a nested selection: sends dimensions { width height depth }', async () => {
    const result = await shop.run(`{ topProducts { name packageSize } }`);
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
    expectSameItems(shop.onlyEntityRequest('shipping'), [
      { __typename: 'Product', upc: '1', dimensions: { width: 120, height: 75, depth: 80 } },
      { __typename: 'Product', upc: '2', dimensions: { width: 50, height: 90, depth: 50 } },
      { __typename: 'Product', upc: '3', dimensions: { width: 20, height: 45, depth: 20 } },
      { __typename: 'Product', upc: '4', dimensions: { width: 200, height: 30, depth: 30 } },
    ]);
  });

  it('@requires of an @inaccessible field, on a field with arguments fetched twice under aliases', async () => {
    const result = await shop.run(
      `{ product(upc: "1") { name customsFee(country: "US") domestic: customsFee(country: "DE") } }`,
    );
    expectResponse(result, { data: { product: { name: 'Table', customsFee: 45, domestic: 0 } } });
    expectSameItems(shop.onlyEntityRequest('shipping'), [
      { __typename: 'Product', upc: '1', hsCode: '9403.60', price: 899 },
    ]);
  });

  it('@provides: usernames provided by reviews need no request to accounts', async () => {
    const result = await shop.run(`{ reviews { rating author { username } } }`);
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
    expect(shop.requestCounts()).toEqual({ reviews: 1 });
  });

  it('a field outside @provides is fetched from its owner, once per distinct user', async () => {
    const result = await shop.run(`{ reviews { author { username name } } }`);
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
    expectSameItems(shop.onlyEntityRequest('accounts'), [
      { __typename: 'User', id: 'u1' },
      { __typename: 'User', id: 'u2' },
      { __typename: 'User', id: 'u3' },
    ]);
  });

  it('@shareable: a field two subgraphs resolve has the same value from either', async () => {
    const result = await shop.run(`{ reviews(first: 2) { product { name } } product(upc: "2") { name } }`);
    expectResponse(result, {
      data: {
        reviews: [{ product: { name: 'Table' } }, { product: { name: 'Chair' } }],
        product: { name: 'Chair' },
      },
    });
  });

  it('@inaccessible: the field cannot be queried and no subgraph is called', async () => {
    const result = await shop.run(`{ topProducts { hsCode } }`);
    expectResponse(result, {
      errors: [
        { message: 'Cannot query field "hsCode" on type "Product".', locations: [{ line: 1, column: 17 }] },
      ],
    });
    expect(shop.graph.timeline).toEqual([]);
  });

  it('@inaccessible: the field is absent from introspection', async () => {
    const result = await shop.run(`{ __type(name: "Product") { fields { name } } }`);
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
