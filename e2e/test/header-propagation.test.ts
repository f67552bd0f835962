/**
 * The `headers` rules of router.yaml (Cosmo's format) end to end: client headers reach subgraph
 * requests only as the rules say, for queries over HTTP and for the entity fetches of
 * event-driven subscriptions, where they are what the engine groups by. Two clients with
 * different credentials on the same subscription must never share a resolution, and every
 * client with the same credentials shares one. A real nats-server carries the events; the
 * subgraph answers from the Authorization header it receives; graphql-ws clients are the peers,
 * with their credentials on the WebSocket upgrade, as browsers send cookies and proxies add
 * Authorization.
 */
import type { IncomingMessage } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { RouterConfigError, resolveRouterConfig, startRouter, type RunningRouter } from '@edfs/router';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';
import { composeSupergraph } from '@edfs/operator';
import {
  createSubgraphServer,
  type RecordedRequest,
  type SubgraphServer,
} from '../src/fixtures/federation/server.js';
import { subscribe } from '../src/fixtures/clients.js';
import { metricByPrefix } from '../src/fixtures/metrics.js';
import { eventually } from '../src/fixtures/wait.js';
import { startNatsServer, type NatsServer } from '../src/infra/nats.js';

type Context = { headers: IncomingMessage['headers'] };

/** The event-driven subgraph: no server, the router subscribes to NATS for it. */
const EVENTS_SDL = /* GraphQL */ `
  type Subscription {
    noteAdded: Note! @edfs__natsSubscribe(subjects: ["notes"], providerId: "default")
  }
  type Note @key(fields: "id", resolvable: false) {
    id: ID! @external
  }
`;

const NOTES = {
  sdl: /* GraphQL */ `
    extend schema @link(url: "https://specs.apollo.dev/federation/v2.0", import: ["@key"])
    type Query {
      whoami: String!
    }
    type Note @key(fields: "id") {
      id: ID!
      viewer: String!
    }
  `,
  resolvers: {
    Query: { whoami: (_: unknown, __: unknown, ctx: Context) => viewer(ctx) },
    Note: {
      __resolveReference: (ref: { id: string }) => ref,
      viewer: (_: unknown, __: unknown, ctx: Context) => viewer(ctx),
    },
  },
};

/** What the subgraph makes of a request: who sent it, by its Authorization header. */
function viewer(ctx: Context): string {
  return String(ctx.headers.authorization ?? 'anonymous');
}

const HEADERS = {
  all: {
    request: [
      { op: 'propagate' as const, named: 'Authorization' },
      { op: 'propagate' as const, matching: '(?i)^x-tenant-.*' },
      { op: 'propagate' as const, named: 'X-Request-Source', default: 'router' },
    ],
  },
  subgraphs: { notes: { request: [{ op: 'set' as const, name: 'X-Router', value: 'edfs' }] } },
};

let nats: NatsServer;
let notes: SubgraphServer;
const requests: RecordedRequest[] = [];
let router: RunningRouter;
let publisher: NatsConnection;
const clients: Client[] = [];

beforeAll(async () => {
  nats = await startNatsServer();
  notes = createSubgraphServer(
    buildSubgraphSchema({ typeDefs: parse(NOTES.sdl), resolvers: NOTES.resolvers as never }),
    (r) => requests.push(r),
  );
  await notes.start();
  const composed = composeSupergraph([
    { name: 'events', sdl: EVENTS_SDL },
    { name: 'notes', routingUrl: notes.url, sdl: NOTES.sdl },
  ]);
  if (!composed.ok) throw new Error(composed.errors.map((e) => e.message).join('; '));
  publisher = await connect({ servers: nats.url });
  router = await startRouter(
    resolveRouterConfig({
      listen_addr: '127.0.0.1:0',
      execution_config: { file: { path: 'config.json' } },
      events: { providers: { nats: [{ id: 'default', url: nats.url }] } },
      telemetry: { metrics: { prometheus: { enabled: true, listen_addr: '127.0.0.1:0' } } },
      headers: HEADERS,
      websocket: {
        authentication: {
          from_initial_payload: {
            enabled: true,
            key: 'token',
            export_token: { enabled: true, header_key: 'Authorization' },
          },
        },
      },
      log_level: 'silent',
    }),
    { executionConfig: JSON.parse(composed.configJson) },
  );
}, 120_000);

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
  await eventually(async () => (await metric('router_engine_triggers')) === 0, 'no triggers left', 10_000);
  requests.length = 0;
});

afterAll(async () => {
  await router?.close();
  await publisher?.close();
  await notes?.stop();
  await nats?.stop();
});

const metric = (name: string) => metricByPrefix(router.metricsUrl!, name);

/** A graphql-ws client whose WebSocket upgrade carries `headers` (and `connection_init` the params). */
function clientWith(headers: Record<string, string>, connectionParams?: Record<string, unknown>): Client {
  class WithHeaders extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { headers });
    }
  }
  const client = createClient({
    url: router.url.replace(/^http/, 'ws'),
    webSocketImpl: WithHeaders,
    retryAttempts: 0,
    connectionParams,
  });
  clients.push(client);
  return client;
}

const SUBSCRIPTION = 'subscription { noteAdded { id viewer } }';

describe('header rules: which client headers reach which subgraph', () => {
  it('a query over HTTP sends exactly the propagated, defaulted and set headers, nothing else', async () => {
    const res = await fetch(router.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: 'Bearer alice',
        'x-tenant-id': 't1',
        cookie: 'session=secret',
        'x-other': 'no',
      },
      body: JSON.stringify({ query: '{ whoami }' }),
    });
    expect(await res.json()).toEqual({ data: { whoami: 'Bearer alice' } });
    const [request] = requests;
    expect(request!.headers).toMatchObject({
      authorization: 'Bearer alice',
      'x-tenant-id': 't1',
      'x-request-source': 'router',
      'x-router': 'edfs',
    });
    expect(request!.headers.cookie).toBeUndefined();
    expect(request!.headers['x-other']).toBeUndefined();
  });

  it('subscribers with different credentials get their own resolution; equal ones share one', async () => {
    const alice = [0, 1, 2].map(() => subscribe(clientWith({ authorization: 'Bearer alice' }), SUBSCRIPTION));
    const bob = subscribe(clientWith({ authorization: 'Bearer bob' }), SUBSCRIPTION);
    const anonymous = subscribe(clientWith({}), SUBSCRIPTION);
    await eventually(async () => (await metric('router_engine_subscriptions')) === 5, '5 subscriptions');
    expect(await metric('router_engine_triggers')).toBe(1);

    publisher.publish('notes', JSON.stringify({ __typename: 'Note', id: 'n1' }));
    for (const stream of alice)
      expect(await stream.next(1)).toEqual([{ data: { noteAdded: { id: 'n1', viewer: 'Bearer alice' } } }]);
    expect(await bob.next(1)).toEqual([{ data: { noteAdded: { id: 'n1', viewer: 'Bearer bob' } } }]);
    expect(await anonymous.next(1)).toEqual([{ data: { noteAdded: { id: 'n1', viewer: 'anonymous' } } }]);

    // One entity request per distinct credential (3 groups), not per client, and never shared
    // between credentials even though the three requests have the same body.
    expect(requests.map((r) => r.headers.authorization ?? null).sort()).toEqual([
      'Bearer alice',
      'Bearer bob',
      null,
    ]);
    expect(new Set(requests.map((r) => JSON.stringify([r.query, r.variables]))).size).toBe(1);
  });
});

describe('a token in the connection_init payload (browsers cannot set WebSocket headers)', () => {
  it("becomes the Authorization header of the connection's subgraph requests, over one on the upgrade", async () => {
    const carol = subscribe(clientWith({}, { token: 'Bearer carol' }), SUBSCRIPTION);
    const dave = subscribe(
      clientWith({ authorization: 'Bearer mallory' }, { token: 'Bearer dave' }),
      SUBSCRIPTION,
    );
    const notAString = subscribe(clientWith({}, { token: 42 }), SUBSCRIPTION);
    await eventually(async () => (await metric('router_engine_subscriptions')) === 3, '3 subscriptions');

    publisher.publish('notes', JSON.stringify({ __typename: 'Note', id: 'n2' }));
    expect(await carol.next(1)).toEqual([{ data: { noteAdded: { id: 'n2', viewer: 'Bearer carol' } } }]);
    expect(await dave.next(1)).toEqual([{ data: { noteAdded: { id: 'n2', viewer: 'Bearer dave' } } }]);
    expect(await notAString.next(1)).toEqual([{ data: { noteAdded: { id: 'n2', viewer: 'anonymous' } } }]);
  });
});

describe('header rules: bad config is refused at start, naming the rule', () => {
  const refused = (headers: unknown): string => {
    try {
      resolveRouterConfig({ execution_config: { file: { path: 'config.json' } }, headers } as never);
    } catch (err) {
      expect(err).toBeInstanceOf(RouterConfigError);
      return (err as Error).message;
    }
    throw new Error('the config was accepted');
  };

  it.each([
    [
      { all: { request: [{ op: 'propagate', named: 'a', matching: 'b' }] } },
      'headers.all.request[0]',
      'either named or matching',
    ],
    [{ all: { request: [{ op: 'propagate' }] } }, 'headers.all.request[0]', 'needs named'],
    [{ all: { request: [{ op: 'set', name: 'x' }] } }, 'headers.all.request[0]', 'needs both name and value'],
    [
      { all: { request: [{ op: 'propagate', matching: '^x-', rename: 'y' }] } },
      'headers.all.request[0].rename',
      'does not go with op',
    ],
    [
      { subgraphs: { notes: { request: [{ op: 'propagate', matching: '(' }] } } },
      'headers.subgraphs.notes.request[0].matching',
      'not a valid regular expression',
    ],
    [
      { all: { request: [{ op: 'forward', named: 'a' }] } },
      'headers.all.request[0].op',
      'must be one of "propagate", "set"',
    ],
    [{ all: { requests: [] } }, 'headers.all.requests', 'unknown key'],
  ])('%j', (headers, path, message) => {
    const text = refused(headers);
    expect(text).toContain(path);
    expect(text).toContain(message);
  });
});
