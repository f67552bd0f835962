/**
 * Federation micro-benchmark: plan time and execution overhead per query for a 3-hop query
 * (reviews -> products -> inventory) with the subgraphs on loopback. The baseline issues the
 * same three subgraph requests directly (pre-built queries, same HTTP client), so the difference
 * is what the router adds: parsing/validation cache lookups, planning, representation building,
 * merging and response shaping.
 *
 * Second part, entity fetch batching: a list query with N entity joins per subgraph (N aliases of
 * `topReviews { product { name price stock } }`), run by two gateways in the same process, one
 * batching (the default: one request per subgraph per planning step) and one with batching
 * switched off (one `_entities` request per path, as before). Printed side by side: subgraph
 * requests per query and latency (median, p99), with ratios. Nothing here is asserted.
 *
 * Third part, gateways under HTTP load (federation/load.ts): our router as its command runs it,
 * Hive Gateway and the direct-subgraph floor on Apollo's classic four-subgraph graph.
 */
import http from 'node:http';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse, graphql, type GraphQLSchema } from 'graphql';
import { Pool } from 'undici';
import { createGateway, planOperation } from '@edfs/router';
import { composeSupergraph } from '@edfs/operator';
import { median, percentile, sample, table } from './stats.js';
import { runLoadBench } from './federation/load.js';

const LINK =
  'extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key", "@shareable"])\n';
const N = 20;

const subgraphs = {
  reviews: {
    sdl: `${LINK}type Query { topReviews(first: Int = ${N}): [Review!]! }
type Review @key(fields: "id") { id: ID! body: String! product: Product! }
type Product @key(fields: "upc") { upc: ID! }`,
    resolvers: {
      Query: {
        topReviews: (_: unknown, { first }: { first: number }) =>
          Array.from({ length: first }, (_, i) => ({
            id: `r${i}`,
            body: `review ${i}`,
            product: { upc: `p${i % 10}` },
          })),
      },
    },
  },
  products: {
    sdl: `${LINK}type Product @key(fields: "upc") { upc: ID! name: String! price: Int! }`,
    resolvers: {
      Product: {
        __resolveReference: (r: { upc: string }) => ({ upc: r.upc, name: `Product ${r.upc}`, price: 10 }),
      },
    },
  },
  inventory: {
    sdl: `${LINK}type Product @key(fields: "upc") { upc: ID! stock: Stock! }
type Stock { available: Int! warehouse: String! }`,
    resolvers: {
      Product: {
        __resolveReference: (r: { upc: string }) => ({
          upc: r.upc,
          stock: { available: 3, warehouse: 'west' },
        }),
      },
    },
  },
};

const QUERY = `query Top { topReviews { id body product { name price stock { available warehouse } } } }`;

async function serve(schema: GraphQLSchema): Promise<{ url: string; server: http.Server }> {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    const respond = async (): Promise<void> => {
      const { query, variables } = JSON.parse(body);
      const result = await graphql({ schema, source: query, variableValues: variables });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(result));
    };
    req.on('end', () => void respond());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address() as { port: number };
  return { url: `http://127.0.0.1:${addr.port}/graphql`, server };
}

export async function runFederationBench(): Promise<Record<string, unknown>> {
  const running: Record<string, { url: string; server: http.Server }> = {};
  for (const [name, def] of Object.entries(subgraphs))
    running[name] = await serve(
      buildSubgraphSchema({ typeDefs: parse(def.sdl), resolvers: def.resolvers as never }),
    );
  const composed = composeSupergraph(
    Object.entries(subgraphs).map(([name, def]) => ({ name, routingUrl: running[name]!.url, sdl: def.sdl })),
  );
  if (!composed.ok) throw new Error(composed.errors.map((e) => e.message).join('\n'));
  const gateway = createGateway(composed.config);
  const document = parse(QUERY);
  const operation = document.definitions[0] as never;

  const planUs = await sample(2000, 200, () => planOperation(gateway.supergraph, operation, {}, {}));
  const prepareUs = await sample(2000, 200, () => gateway.prepare({ query: QUERY }));
  const check = await gateway.execute({ query: QUERY });
  if (check.errors) throw new Error(`benchmark query failed: ${JSON.stringify(check.errors)}`);

  // Baseline: the same three requests, pre-built, sent directly with a keep-alive pool.
  const pools = Object.fromEntries(
    Object.entries(running).map(([n, r]) => [n, { pool: new Pool(new URL(r.url).origin), path: '/graphql' }]),
  );
  const post = async (name: string, query: string, variables: unknown) => {
    const { pool, path } = pools[name]!;
    const res = await pool.request({
      method: 'POST',
      path,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query, variables }),
    });
    return (await res.body.json()) as { data: Record<string, any> };
  };
  const direct = async () => {
    const r1 = await post('reviews', '{ topReviews { __typename id body product { __typename upc } } }', {});
    const upcs = [...new Set(r1.data.topReviews.map((r: any) => r.product.upc))].map((upc) => ({
      __typename: 'Product',
      upc,
    }));
    const q =
      'query($representations: [_Any!]!) { _entities(representations: $representations) { ... on Product { name price } } }';
    const q2 =
      'query($representations: [_Any!]!) { _entities(representations: $representations) { ... on Product { stock { available warehouse } } } }';
    await Promise.all([
      post('products', q, { representations: upcs }),
      post('inventory', q2, { representations: upcs }),
    ]);
  };
  const ITER = 1500;
  // Interleave the two to share the machine's noise fairly.
  const routerUs: number[] = [];
  const directUs: number[] = [];
  for (let round = 0; round < 5; round++) {
    directUs.push(...(await sample(ITER / 5, 50, direct)));
    routerUs.push(...(await sample(ITER / 5, 50, () => gateway.execute({ query: QUERY }))));
  }
  const fetches = (gateway.prepare({ query: QUERY }) as { kind: string }).kind;
  void fetches;
  await gateway.close();
  const batching = await runBatchingBench(composed.config);
  await Promise.all(Object.values(pools).map((p) => p.pool.close()));
  for (const r of Object.values(running)) r.server.close();

  const result = {
    query: QUERY,
    reviews: N,
    plan_us_median: median(planUs),
    prepare_cached_us_median: median(prepareUs),
    router_execute_us_median: median(routerUs),
    router_execute_us_p99: percentile(routerUs, 99),
    direct_us_median: median(directUs),
    direct_us_p99: percentile(directUs, 99),
    overhead_us_median: median(routerUs) - median(directUs),
    ratio_router_to_direct: median(routerUs) / median(directUs),
  };
  console.log(
    '\nFederation: 3-hop query (reviews -> products + inventory), 20 reviews, 10 distinct products',
  );
  console.log(
    table([
      ['measure', 'median µs', 'p99 µs'],
      ['plan (uncached)', result.plan_us_median, percentile(planUs, 99)],
      ['prepare (cached plan)', result.prepare_cached_us_median, percentile(prepareUs, 99)],
      ['direct subgraph calls (baseline)', result.direct_us_median, result.direct_us_p99],
      ['router execute (in-process)', result.router_execute_us_median, result.router_execute_us_p99],
      ['router overhead per query', result.overhead_us_median, ''],
    ]),
  );
  console.log(`router/direct ratio: ${result.ratio_router_to_direct.toFixed(2)}x`);
  printBatching(batching);
  const load = await runLoadBench();
  return { ...result, batching, load };
}

interface BatchingRow {
  joins: number;
  requests_off: number;
  requests_on: number;
  off_us_median: number;
  on_us_median: number;
  off_us_p99: number;
  on_us_p99: number;
  latency_ratio_off_to_on: number;
}

/** Batching on vs off for N entity joins per subgraph, in the same run (see the module header). */
async function runBatchingBench(config: Record<string, unknown>): Promise<BatchingRow[]> {
  const quick = process.env.BENCH_QUICK === '1';
  let requests = 0;
  const count = () => void requests++;
  const on = createGateway(config, { onSubgraphRequest: count });
  // As routers without batching do: one request per path, identical ones too.
  const off = createGateway(config, {
    onSubgraphRequest: count,
    entityBatching: false,
    deduplicateRequests: { all: false },
  });
  const rows: BatchingRow[] = [];
  try {
    for (const joins of quick ? [1, 10, 50] : [1, 10, 100]) {
      const query = `{ ${Array.from(
        { length: joins },
        (_, i) => `a${i}: topReviews { id product { name price stock { available } } }`,
      ).join(' ')} }`;
      const perQuery = async (gateway: typeof on) => {
        requests = 0;
        const result = await gateway.execute({ query });
        if (result.errors)
          throw new Error(`batching benchmark query failed: ${JSON.stringify(result.errors)}`);
        return requests;
      };
      const requestsOn = await perQuery(on);
      const requestsOff = await perQuery(off);
      // Fewer rounds when one query is hundreds of requests; interleaved to share the noise.
      const iterations = Math.max(20, Math.round((quick ? 300 : 1000) / joins));
      const onUs: number[] = [];
      const offUs: number[] = [];
      for (let round = 0; round < 5; round++) {
        offUs.push(...(await sample(Math.ceil(iterations / 5), 5, () => off.execute({ query }))));
        onUs.push(...(await sample(Math.ceil(iterations / 5), 5, () => on.execute({ query }))));
      }
      rows.push({
        joins,
        requests_off: requestsOff,
        requests_on: requestsOn,
        off_us_median: median(offUs),
        on_us_median: median(onUs),
        off_us_p99: percentile(offUs, 99),
        on_us_p99: percentile(onUs, 99),
        latency_ratio_off_to_on: median(offUs) / median(onUs),
      });
    }
  } finally {
    await on.close();
    await off.close();
  }
  return rows;
}

function printBatching(rows: BatchingRow[]): void {
  console.log(
    `\nEntity fetch batching: N aliases of topReviews(first: ${N}) { product { name price stock } } (N entity joins per subgraph), batching off vs on`,
  );
  console.log(
    table([
      [
        'N joins',
        'requests off',
        'requests on',
        'off median µs',
        'on median µs',
        'off p99 µs',
        'on p99 µs',
        'off/on',
      ],
      ...rows.map((r) => [
        String(r.joins),
        String(r.requests_off),
        String(r.requests_on),
        r.off_us_median,
        r.on_us_median,
        r.off_us_p99,
        r.on_us_p99,
        `${r.latency_ratio_off_to_on.toFixed(2)}x`,
      ]),
    ]),
  );
}
