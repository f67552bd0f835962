/**
 * Federation correctness, what the router answers from the composed schema alone: introspection
 * (`__schema`, `__type`, `__typename`) and request validation errors, without calling a subgraph
 * unless the operation also selects subgraph data. The router runs in-process over the shop of
 * `src/fixtures/federation`; see fixtures/federation/gateway.ts for what every expectation means.
 */
import { describe, expect, it } from '@jest/globals';
import { expectResponse, useShopGateway } from '../src/fixtures/federation/gateway.js';

const shop = useShopGateway();

describe('federation: introspection', () => {
  it('__schema names the root types without calling a subgraph', async () => {
    const result = await shop.run(
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
    expect(shop.graph.timeline).toEqual([]);
  });

  it('__type describes types of the composed schema, null for unknown names', async () => {
    const result = await shop.run(`{
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
    const result = await shop.run(`{
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
    const result = await shop.run(`{ me { username } __schema { queryType { name } } }`);
    expectResponse(result, { data: { me: { username: 'ada' }, __schema: { queryType: { name: 'Query' } } } });
  });
});

describe('federation: request validation', () => {
  it('a syntax error is reported with its location', async () => {
    expectResponse(await shop.run(`{ topProducts { name }`), {
      errors: [
        { message: 'Syntax Error: Expected Name, found <EOF>.', locations: [{ line: 1, column: 23 }] },
      ],
    });
    expect(shop.graph.timeline).toEqual([]);
  });

  it('an unknown field is reported as graphql-js words it', async () => {
    expectResponse(await shop.run(`{ topProducts { name colour } }`), {
      errors: [
        { message: 'Cannot query field "colour" on type "Product".', locations: [{ line: 1, column: 22 }] },
      ],
    });
  });

  it('a missing required argument is reported', async () => {
    expectResponse(await shop.run(`{ product { name } }`), {
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
      await shop.run(`query ($first: Int) { topProducts(first: $first) { name } }`, { first: 'two' }),
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
    expect(shop.graph.timeline).toEqual([]);
  });

  it('a missing required variable is reported', async () => {
    expectResponse(await shop.run(`query ($upc: ID!) { product(upc: $upc) { name } }`, {}), {
      errors: [
        {
          message: 'Variable "$upc" of required type "ID!" was not provided.',
          locations: [{ line: 1, column: 8 }],
        },
      ],
    });
    expect(shop.graph.timeline).toEqual([]);
  });
});
