/**
 * Operations no subgraph can answer are refused when they are planned: a request error (no
 * `data`, HTTP 400 for `application/graphql-response+json`) with one error that names the field,
 * its path and why it cannot be resolved, `extensions.code` QUERY_PLANNING_FAILED, and not one
 * subgraph request. Each graph is a few types composed with `composeSupergraph` and isolates one
 * reason; the resolvability check of composition is switched off where it would refuse the graph
 * itself (graphs composed elsewhere, or with that check off, reach the router all the same), and
 * the few refusals only a hand-written execution config can cause edit the composed config.
 * Subscriptions are refused when they start (a graphql-transport-ws `error`), not per event.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { execute, parse } from 'graphql';
import { composeSupergraph } from '@edfs/operator';
import { parseRouterConfig } from '../../src/config/load.js';
import { startRouter, type RunningRouter } from '../../src/main.js';
import { createLogger } from '../../src/observability/logger.js';
import { RawClient } from '../protocols/harness.js';

const LINK =
  'extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@external", "@requires", "@shareable", "@interfaceObject"])';

interface TestSubgraph {
  name: string;
  sdl: string;
  resolvers?: Record<string, unknown>;
  /** An event-driven subgraph: composed without a routing URL, never served over HTTP. */
  events?: boolean;
}

interface Options {
  /** Compose with the resolvability check off (the check would refuse the graph). */
  unchecked?: boolean;
  /** Changes the composed execution config (a config composition would not write). */
  edit?: (config: ExecutionConfig) => void;
}

interface DatasourceJson {
  id: string;
  rootNodes?: { typeName: string; fieldNames: string[] }[];
  keys?: { typeName: string; selectionSet: string }[];
}
interface ExecutionConfig {
  engineConfig: {
    datasourceConfigurations: DatasourceJson[];
    fieldConfigurations?: { typeName: string; fieldName: string; subscriptionFilterCondition?: unknown }[];
  };
  subgraphs: { id: string; name: string }[];
}

const CODE = 'QUERY_PLANNING_FAILED';

/** Starts `subgraphs` and a router over them for the enclosing describe block. */
function useGraph(subgraphs: TestSubgraph[], options: Options = {}) {
  const servers: Server[] = [];
  const received = new Map<string, string[]>();
  let router: RunningRouter;
  beforeAll(async () => {
    const inputs = [];
    for (const sub of subgraphs) {
      if (sub.events) {
        inputs.push({ name: sub.name, sdl: sub.sdl });
        continue;
      }
      const sdl = `${LINK}\n${sub.sdl}`;
      const schema = buildSubgraphSchema({ typeDefs: parse(sdl), resolvers: (sub.resolvers ?? {}) as never });
      const requests: string[] = [];
      received.set(sub.name, requests);
      const server = createServer((req, res) => {
        let body = '';
        req.on('data', (chunk: Buffer) => (body += chunk.toString()));
        req.on('end', () => {
          const { query, variables } = JSON.parse(body) as {
            query: string;
            variables?: Record<string, unknown>;
          };
          requests.push(query);
          void Promise.resolve(execute({ schema, document: parse(query), variableValues: variables })).then(
            (result) => {
              res.setHeader('content-type', 'application/json');
              res.end(JSON.stringify(result));
            },
          );
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      servers.push(server);
      const { port } = server.address() as AddressInfo;
      inputs.push({ name: sub.name, routingUrl: `http://127.0.0.1:${port}/graphql`, sdl });
    }
    const composed = composeSupergraph(inputs, { disableResolvabilityValidation: options.unchecked });
    if (!composed.ok) throw new Error(`the graph does not compose: ${JSON.stringify(composed.errors)}`);
    options.edit?.(composed.config as unknown as ExecutionConfig);
    const config = parseRouterConfig(
      [
        'listen_addr: "127.0.0.1:0"',
        'execution_config: { file: { path: ./unused.json } }',
        'telemetry: { metrics: { prometheus: { enabled: false } } }',
        'events: { providers: { nats: [{ id: default, url: "memory://plan-refusals" }] } }',
      ].join('\n'),
    );
    router = await startRouter(config, {
      logger: createLogger({ level: 'silent' }),
      executionConfig: composed.config,
    });
  });
  afterAll(async () => {
    await router?.close();
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
  const post = (query: string, accept = 'application/graphql-response+json') =>
    fetch(router.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept },
      body: JSON.stringify({ query }),
    });
  return {
    post,
    router: () => router,
    /** Requests received by every HTTP subgraph, in total. */
    requestCount: () => [...received.values()].reduce((n, list) => n + list.length, 0),
    /** Asserts that `query` is refused with `message` before any subgraph request. */
    async expectRefused(query: string, message: string) {
      const before = [...received.values()].reduce((n, list) => n + list.length, 0);
      const res = await post(query);
      expect({ status: res.status, body: await res.json() }).toEqual({
        status: 400,
        body: { errors: [{ message, extensions: { code: CODE } }] },
      });
      expect([...received.values()].reduce((n, list) => n + list.length, 0)).toBe(before);
    },
  };
}

/** Composes `subgraphs` (for graphs that the composition must accept with its checks on). */
function composes(subgraphs: TestSubgraph[]): boolean {
  return composeSupergraph(
    subgraphs.map((s) =>
      s.events
        ? { name: s.name, sdl: s.sdl }
        : { name: s.name, routingUrl: `http://127.0.0.1:1/${s.name}`, sdl: `${LINK}\n${s.sdl}` },
    ),
  ).ok;
}

describe('an @interfaceObject field whose one subgraph has no resolvable key', () => {
  // x declares the entity interface but none of its implementations, so it can answer `a` only
  // as the interface: `field` (declared on the interface by y alone) is out of reach.
  const GRAPH: TestSubgraph[] = [
    {
      name: 'x',
      sdl: 'type Query { a: Node } interface Node @key(fields: "id") { id: ID! }',
      resolvers: { Query: { a: () => null } },
    },
    {
      name: 'y',
      sdl: 'type Node @interfaceObject @key(fields: "id", resolvable: false) { id: ID! field: String }',
    },
  ];
  const graph = useGraph(GRAPH);
  const MESSAGE =
    'Cannot resolve Node.field at "a.field": no subgraph that can be reached from subgraph "x" resolves Node.field (subgraph "y" has no resolvable key for Node).';

  it('composes with every check of composition on', () => {
    expect(composes(GRAPH)).toBe(true);
  });

  it('is refused before x is asked for `a`', async () => {
    await graph.expectRefused('{ a { field } }', MESSAGE);
    await graph.expectRefused('query Q { a { id ... on Node { field } } }', MESSAGE);
  });

  it('application/json: the same errors with status 200, still without data', async () => {
    const res = await graph.post('{ a { field } }', 'application/json');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ errors: [{ message: MESSAGE, extensions: { code: CODE } }] });
    expect(graph.requestCount()).toBe(0);
  });

  it('what x declares itself is not refused', async () => {
    const res = await graph.post('{ a { id } }');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ data: { a: null } });
  });
});

describe('an entity field whose subgraph has no resolvable key for the entity', () => {
  const graph = useGraph(
    [
      {
        name: 'books',
        sdl: 'type Query { book: Book } type Book @key(fields: "id") { id: ID! title: String }',
        resolvers: { Query: { book: () => ({ id: 'b1', title: 'Dune' }) } },
      },
      { name: 'reviews', sdl: 'type Book @key(fields: "id", resolvable: false) { id: ID! rating: Int }' },
    ],
    { unchecked: true },
  );

  it('is refused, naming the field, its path and the key', async () => {
    await graph.expectRefused(
      '{ book { title rating } }',
      'Cannot resolve Book.rating at "book.rating": no subgraph that can be reached from subgraph "books" resolves Book.rating (subgraph "reviews" has no resolvable key for Book).',
    );
  });

  it('the fields that can be reached are served', async () => {
    expect(await (await graph.post('{ book { title } }')).json()).toEqual({
      data: { book: { title: 'Dune' } },
    });
  });
});

describe('a field of a value type that another subgraph extends', () => {
  // Shop has no key: nothing leads from s1's shop to the one s2 could resolve.
  const graph = useGraph(
    [
      { name: 's1', sdl: 'type Query { shop: Shop } type Shop @shareable { name: String }' },
      { name: 's2', sdl: 'type Shop @shareable { name: String hours: String }' },
    ],
    { unchecked: true },
  );

  it('is refused: there is no entity path to s2', async () => {
    await graph.expectRefused(
      '{ shop { name hours } }',
      'Cannot resolve Shop.hours at "shop.hours": no subgraph that can be reached from subgraph "s1" resolves Shop.hours (subgraph "s2" has no resolvable key for Shop).',
    );
  });
});

describe('an entity field behind a key the current subgraph cannot supply', () => {
  // s2 takes T by `sku`, which only s2 itself resolves.
  const graph = useGraph(
    [
      { name: 's1', sdl: 'type Query { t: T } type T @key(fields: "id") { id: ID! }' },
      { name: 's2', sdl: 'type T @key(fields: "sku") { sku: ID! f: String }' },
    ],
    { unchecked: true },
  );

  it('is refused, naming the key field that cannot be reached', async () => {
    await graph.expectRefused(
      '{ t { f } }',
      'Cannot resolve T.f at "t.f": the key of T that subgraph "s2" accepts needs T.sku, and no subgraph that can be reached from subgraph "s1" resolves T.sku (subgraph "s2" accepts T only by the key "sku", which subgraph "s1" cannot supply).',
    );
  });
});

describe('a field whose @requires cannot be fetched', () => {
  const graph = useGraph(
    [
      {
        name: 'products',
        sdl: 'type Query { product: Product } type Product @key(fields: "id") { id: ID! }',
      },
      {
        name: 'shipping',
        sdl: 'type Product @key(fields: "id") { id: ID! weight: Int @external estimate: Int @requires(fields: "weight") }',
      },
      {
        name: 'inventory',
        sdl: 'type Product @key(fields: "id", resolvable: false) { id: ID! weight: Int }',
      },
    ],
    { unchecked: true },
  );

  it('is refused, naming the required field and why it is out of reach', async () => {
    await graph.expectRefused(
      '{ product { estimate } }',
      'Cannot resolve Product.estimate at "product.estimate": subgraph "shipping" requires Product.weight for it (@requires), and no subgraph that can be reached from subgraph "products" resolves Product.weight (subgraph "inventory" has no resolvable key for Product).',
    );
  });
});

describe('an @interfaceObject whose concrete type no subgraph can resolve', () => {
  // The interface's owner does not resolve it by key, so r's objects stay of unknown type.
  const GRAPH: TestSubgraph[] = [
    {
      name: 'r',
      sdl: 'type Query { nodes: [Node] } type Node @interfaceObject @key(fields: "id") { id: ID! }',
      resolvers: { Query: { nodes: () => [{ id: 'n1' }] } },
    },
    {
      name: 'owner',
      sdl: 'interface Node @key(fields: "id", resolvable: false) { id: ID! } type T implements Node @key(fields: "id") { id: ID! name: String }',
    },
  ];
  const graph = useGraph(GRAPH);
  const MESSAGE =
    'Cannot resolve the concrete type of Node at "nodes": subgraph "r" knows Node only as an @interfaceObject, the selection needs the concrete type (__typename, a type condition, or a field only its implementations resolve), and no subgraph has a resolvable key for the entity interface Node.';

  it('composes with every check of composition on', () => {
    expect(composes(GRAPH)).toBe(true);
  });

  it('a selection that needs the concrete type is refused', async () => {
    await graph.expectRefused('{ nodes { __typename } }', MESSAGE);
    await graph.expectRefused('{ nodes { ... on T { name } } }', MESSAGE);
  });

  it('the interface fields r resolves itself are served', async () => {
    expect(await (await graph.post('{ nodes { id } }')).json()).toEqual({ data: { nodes: [{ id: 'n1' }] } });
  });
});

describe('execution configs that composition does not write', () => {
  const BOOKS: TestSubgraph[] = [
    {
      name: 'books',
      sdl: 'type Query { book: Book shelf: String } type Book @key(fields: "id") { id: ID! title: String }',
      resolvers: { Query: { book: () => ({ id: 'b1', title: 'Dune' }) } },
    },
    { name: 'reviews', sdl: 'type Book @key(fields: "id") { id: ID! rating: Int }' },
  ];
  const datasource = (config: ExecutionConfig, name: string) => {
    const id = config.subgraphs.find((s) => s.name === name)!.id;
    return config.engineConfig.datasourceConfigurations.find((d) => d.id === id)!;
  };

  describe('a root field no subgraph lists', () => {
    const graph = useGraph(BOOKS, {
      edit: (config) => {
        const query = datasource(config, 'books').rootNodes!.find((n) => n.typeName === 'Query')!;
        query.fieldNames = query.fieldNames.filter((f) => f !== 'shelf');
      },
    });
    it('is refused', async () => {
      await graph.expectRefused(
        '{ book { title } shelf }',
        'Cannot resolve Query.shelf at "shelf": no subgraph resolves this root field over HTTP (the execution config lists it for none).',
      );
    });
  });

  describe('a key naming a field the type does not have', () => {
    const graph = useGraph(BOOKS, {
      edit: (config) => {
        for (const key of datasource(config, 'reviews').keys!) key.selectionSet = 'isbn';
      },
    });
    it('is refused for the fields fetched by that key only', async () => {
      await graph.expectRefused(
        '{ book { rating } }',
        'Cannot resolve Book.rating at "book.rating": the key of Book that subgraph "reviews" accepts needs Book.isbn, and Book has no field "isbn" in the router schema (the execution config names it in a field set).',
      );
      expect(await (await graph.post('{ book { title } }')).json()).toEqual({
        data: { book: { title: 'Dune' } },
      });
    });
  });
});

describe('subscriptions', () => {
  const EVENTS = `
    type Subscription {
      itemAdded: Item! @edfs__natsSubscribe(subjects: ["items"], providerId: "default")
      itemMatched: Item!
        @edfs__natsSubscribe(subjects: ["items"], providerId: "default")
        @openfed__subscriptionFilter(condition: { IN: { fieldPath: "id", values: ["i1"] } })
    }
    type Item @key(fields: "id", resolvable: false) { id: ID! @external }
  `;
  const GRAPH: TestSubgraph[] = [
    { name: 'events', sdl: EVENTS, events: true },
    {
      name: 'catalog',
      sdl: 'type Query { item: Item } type Subscription { ticks: Int } type Item @key(fields: "id") { id: ID! name: String }',
      resolvers: {
        Item: { __resolveReference: (r: { id: string }) => ({ id: r.id, name: `item ${r.id}` }) },
      },
    },
    { name: 'notes', sdl: 'type Item @key(fields: "id", resolvable: false) { id: ID! note: String }' },
  ];
  const graph = useGraph(GRAPH, { unchecked: true });
  const NOTE =
    'Cannot resolve Item.note at "itemAdded.note": no subgraph that can be reached from subgraph "events" resolves Item.note (subgraph "notes" has no resolvable key for Item).';
  let client: RawClient;
  beforeAll(async () => {
    client = await RawClient.acknowledged(graph.router().url.replace(/^http/, 'ws'));
  });
  afterAll(async () => {
    await client?.close();
  });

  it('a field no subgraph can reach from the event is refused when the subscription starts', async () => {
    client.subscribe('note', 'subscription { itemAdded { id note } }');
    expect(await client.next((m) => m.id === 'note')).toEqual({
      id: 'note',
      type: 'error',
      payload: [{ message: NOTE, extensions: { code: CODE } }],
    });
    // The same refusal over HTTP.
    await graph.expectRefused('subscription { itemAdded { id note } }', NOTE);
  });

  it('the connection goes on: a subscription it can answer gets its events', async () => {
    client.subscribe('name', 'subscription { itemAdded { id name } }');
    const provider = graph.router().providers.get('default')!;
    const event = new TextEncoder().encode(JSON.stringify({ __typename: 'Item', id: 'i1' }));
    // The broker subscription starts asynchronously: publish until the first event arrives.
    let next: Record<string, unknown> | undefined;
    while (!next) {
      await provider.publish('items', event);
      next = await client.next((m) => m.id === 'name', 50).catch(() => undefined);
    }
    expect(next).toEqual({
      id: 'name',
      type: 'next',
      payload: {
        data: { itemAdded: { id: 'i1', name: 'item i1' } },
        extensions: { delivery: 'at-most-once' },
      },
    });
    // Nothing was ever sent for the refused subscription.
    expect(client.received.filter((m) => m.id === 'note')).toHaveLength(1);
    client.send({ id: 'name', type: 'complete' });
  });

  it('a subscription field that is not event-driven is refused', async () => {
    client.subscribe('ticks', 'subscription { ticks }');
    expect(await client.next((m) => m.id === 'ticks')).toEqual({
      id: 'ticks',
      type: 'error',
      payload: [
        {
          message:
            'Subscription.ticks is not event-driven: subscriptions are served from brokers (@edfs__natsSubscribe, @edfs__kafkaSubscribe)',
          extensions: { code: CODE },
        },
      ],
    });
  });

  describe('a filter that reads a field no subgraph can reach from the event', () => {
    const edited = useGraph(GRAPH, {
      unchecked: true,
      edit: (config) => {
        const filter = config.engineConfig.fieldConfigurations!.find((f) => f.fieldName === 'itemMatched')!;
        filter.subscriptionFilterCondition = { in: { fieldPath: ['note'], json: '["n1"]' } };
      },
    });
    it('is refused', async () => {
      await edited.expectRefused(
        'subscription { itemMatched { id } }',
        'Cannot resolve Subscription.itemMatched at "itemMatched": its subscription filter reads Item.note, and no subgraph that can be reached from subgraph "events" resolves Item.note (subgraph "notes" has no resolvable key for Item).',
      );
    });
  });

  describe('a filter condition that does not compile', () => {
    const edited = useGraph(GRAPH, {
      unchecked: true,
      edit: (config) => {
        const filter = config.engineConfig.fieldConfigurations!.find((f) => f.fieldName === 'itemMatched')!;
        filter.subscriptionFilterCondition = { in: { fieldPath: ['id'], json: '{}' } };
      },
    });
    it('is refused', async () => {
      await edited.expectRefused(
        'subscription { itemMatched { id } }',
        'subscription filter of Subscription.itemMatched: condition.in.json: expected a JSON list of values, got {}',
      );
    });
  });

  describe('a filter field path that names no field', () => {
    const edited = useGraph(GRAPH, {
      unchecked: true,
      edit: (config) => {
        const filter = config.engineConfig.fieldConfigurations!.find((f) => f.fieldName === 'itemMatched')!;
        filter.subscriptionFilterCondition = { in: { fieldPath: ['item-id'], json: '["i1"]' } };
      },
    });
    it('is refused', async () => {
      await edited.expectRefused(
        'subscription { itemMatched { id } }',
        'Cannot resolve Subscription.itemMatched at "itemMatched": its subscription filter reads Item.item-id, and Item has no field "item-id" in the router schema (the execution config names it in a field set).',
      );
    });
  });
});
