/**
 * Federation correctness, errors from subgraphs: GraphQL null propagation, error paths in the
 * client's terms, forwarded extensions, and a subgraph that is down costing only its fields. The
 * router runs in-process over the shop of `src/fixtures/federation` (see its README for which
 * resolver throws); see fixtures/federation/gateway.ts for what every expectation means.
 */
import { describe, expect, it } from '@jest/globals';
import { expectResponse, useShopGateway } from '../src/fixtures/federation/gateway.js';

const shop = useShopGateway();

describe('federation: errors from subgraphs', () => {
  it('a nullable field whose resolver throws is null, with the error at its path in the list', async () => {
    const result = await shop.run(`{ topProducts { name restockDate } }`);
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
    const result = await shop.run(
      `{ product(upc: "3") { name stock { quantity warehouse { name phone } } } }`,
    );
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
    const result = await shop.run(`{ warehouseReport topProducts(first: 1) { name } }`);
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
    await shop.graph.stop('reviews');
    try {
      const result = await shop.run(`{ product(upc: "1") { name price averageRating } }`);
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
      await shop.graph.start('reviews');
    }
  });

  it('a root field of a subgraph that is down is null with an error, and works again once it is back', async () => {
    const query = `{ me { username } topProducts(first: 1) { name } }`;
    await shop.graph.stop('accounts');
    try {
      expectResponse(await shop.run(query), {
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
      await shop.graph.start('accounts');
    }
    expectResponse(await shop.run(query), {
      data: { me: { username: 'ada' }, topProducts: [{ name: 'Table' }] },
    });
  });
});
