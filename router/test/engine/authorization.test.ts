/**
 * Field authorization (`@authenticated`, `@requiresScopes`), composed by `composeSupergraph` and
 * enforced by the gateway before any fetch. Two HTTP subgraphs in this process record the queries
 * they receive: accounts (users, `me`, a `Secret` type protected as a whole) and billing
 * (`User.balance`, of a scalar protected as a whole); an event-driven subgraph serves
 * subscriptions over the in-process memory broker. The client's identity is built here as the
 * JWT verification would build it (`RequestContext.auth`).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { execute, parse } from 'graphql';
import { composeSupergraph } from '@edfs/operator';
import { parseRouterConfig } from '../../src/config/load.js';
import { createGateway, type Gateway, type GatewayOptions } from '../../src/engine/gateway.js';
import type { ExecutionResult, PreparedSubscription, RequestContext } from '../../src/engine/types.js';
import { MemoryProvider } from '../../src/events/memory/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { createRouterMetrics } from '../../src/observability/metrics.js';
import { SubscriptionEngine } from '../../src/subscriptions/engine.js';

const LINK =
  'extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@authenticated", "@requiresScopes"])';
const ACCOUNTS_SDL = `${LINK}
  type Query {
    pub: String
    me: User @authenticated
    user(id: ID!): User
    secret: Secret
    nodes: [Node!]!
  }
  interface Node { id: ID! note: String }
  type Doc implements Node { id: ID! note: String @requiresScopes(scopes: [["notes"]]) }
  type Pic implements Node { id: ID! note: String }
  type User @key(fields: "id") {
    id: ID!
    name: String!
    email: String @requiresScopes(scopes: [["read:email", "read:user"], ["admin"]])
    ssn: String! @requiresScopes(scopes: [["pii"]])
  }
  type Secret @authenticated { code: String! }
`;
const BILLING_SDL = `${LINK}
  scalar Money @authenticated
  type User @key(fields: "id") { id: ID! balance: Money }
`;
const EVENTS_SDL = `
  type Subscription {
    userUpdated: User! @edfs__natsSubscribe(subjects: ["users"], providerId: "default")
    audit: User! @authenticated @edfs__natsSubscribe(subjects: ["audit"], providerId: "default")
  }
  type User @key(fields: "id", resolvable: false) { id: ID! @external }
`;

const ADA = { id: '1', name: 'Ada', email: 'ada@example.com', ssn: '078-05-1120' };
const schemas = {
  accounts: buildSubgraphSchema({
    typeDefs: parse(ACCOUNTS_SDL),
    resolvers: {
      Query: {
        pub: () => 'public',
        me: () => ADA,
        user: () => ADA,
        secret: () => ({ code: 's3cret' }),
        nodes: () => [
          { __typename: 'Doc', id: 'd1', note: 'doc note' },
          { __typename: 'Pic', id: 'p1', note: 'pic note' },
        ],
      },
      User: { __resolveReference: () => ADA },
    } as never,
  }),
  billing: buildSubgraphSchema({
    typeDefs: parse(BILLING_SDL),
    resolvers: {
      User: { __resolveReference: (r: { id: string }) => ({ id: r.id, balance: '100' }) },
    } as never,
  }),
};

/** Queries each subgraph received, in order. */
const received: Record<keyof typeof schemas, string[]> = { accounts: [], billing: [] };
const servers: Server[] = [];
let config: Record<string, unknown>;
let gateway: Gateway;

beforeAll(async () => {
  const urls: Record<string, string> = {};
  for (const [name, schema] of Object.entries(schemas)) {
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const { query, variables } = JSON.parse(body) as {
          query: string;
          variables: Record<string, unknown>;
        };
        received[name as keyof typeof schemas].push(query);
        void Promise.resolve(execute({ schema, document: parse(query), variableValues: variables })).then(
          (result) => {
            res.setHeader('content-type', 'application/json');
            res.end(JSON.stringify(result));
          },
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    urls[name] = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
    servers.push(server);
  }
  const composed = composeSupergraph([
    { name: 'accounts', routingUrl: urls.accounts!, sdl: ACCOUNTS_SDL },
    { name: 'billing', routingUrl: urls.billing!, sdl: BILLING_SDL },
    { name: 'events', sdl: EVENTS_SDL },
  ]);
  if (!composed.ok) throw new Error(JSON.stringify(composed.errors));
  config = composed.config;
  gateway = createGateway(config);
});

afterAll(async () => {
  await gateway?.close();
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

beforeEach(() => {
  received.accounts = [];
  received.billing = [];
});

/** A verified client with these scopes. */
const client = (...scopes: string[]): RequestContext => ({
  auth: { claims: { sub: 'u1' }, scopes: new Set(scopes) },
});
const ANONYMOUS: RequestContext = {};

const unauthorized = (coordinate: string, reason: string, path: (string | number)[]) => ({
  message: `Unauthorized to load field '${coordinate}'. Reason: ${reason}.`,
  path,
  extensions: { code: 'UNAUTHORIZED_FIELD_OR_TYPE' },
});
const EMAIL_SCOPES = "required scopes: ('read:email' AND 'read:user') OR ('admin')";

const run = (query: string, ctx: RequestContext, on: Gateway = gateway): Promise<ExecutionResult> =>
  on.execute({ query }, ctx);

describe('@authenticated', () => {
  const QUERY = '{ pub me { name } }';

  it('an anonymous client gets null and an error at the field; the subgraph never sees the field', async () => {
    expect(await run(QUERY, ANONYMOUS)).toEqual({
      data: { pub: 'public', me: null },
      errors: [unauthorized('Query.me', 'not authenticated', ['me'])],
    });
    expect(received.accounts).toHaveLength(1);
    expect(received.accounts[0]).not.toMatch(/\bme\b/);
  });

  it('an authenticated client gets the field, with no scope needed', async () => {
    expect(await run(QUERY, client())).toEqual({ data: { pub: 'public', me: { name: 'Ada' } } });
  });

  it('on a type: every field returning it is protected', async () => {
    expect(await run('{ pub secret { code } }', ANONYMOUS)).toEqual({
      data: { pub: 'public', secret: null },
      errors: [unauthorized('Query.secret', 'not authenticated', ['secret'])],
    });
    expect(received.accounts.join('\n')).not.toMatch(/secret|code/);
    expect(await run('{ secret { code } }', client())).toEqual({ data: { secret: { code: 's3cret' } } });
  });

  it('on a scalar of another subgraph: the entity fetch for it is not sent at all', async () => {
    const query = '{ user(id: "1") { name balance } }';
    expect(await run(query, ANONYMOUS)).toEqual({
      data: { user: { name: 'Ada', balance: null } },
      errors: [unauthorized('User.balance', 'not authenticated', ['user', 'balance'])],
    });
    expect(received.billing).toEqual([]);
    expect(await run(query, client())).toEqual({ data: { user: { name: 'Ada', balance: '100' } } });
    expect(received.billing).toHaveLength(1);
  });
});

describe('@requiresScopes: any one set of scopes, each in full', () => {
  const QUERY = '{ user(id: "1") { name email } }';
  const denied = (reason: string) => ({
    data: { user: { name: 'Ada', email: null } },
    errors: [unauthorized('User.email', reason, ['user', 'email'])],
  });
  const allowed = { data: { user: { name: 'Ada', email: 'ada@example.com' } } };

  it.each([
    ['anonymous', ANONYMOUS, denied('not authenticated')],
    ['no scopes', client(), denied(EMAIL_SCOPES)],
    ['read:email only', client('read:email'), denied(EMAIL_SCOPES)],
    ['read:user only', client('read:user'), denied(EMAIL_SCOPES)],
    ['read:email and read:user', client('read:email', 'read:user'), allowed],
    ['admin', client('admin'), allowed],
    ['admin and more', client('read:user', 'admin', 'other'), allowed],
  ])('%s', async (_, ctx, expected) => {
    expect(await run(QUERY, ctx)).toEqual(expected);
    expect(received.accounts).toHaveLength(1);
    if (expected === allowed) expect(received.accounts[0]).toMatch(/\bemail\b/);
    else expect(received.accounts[0]).not.toMatch(/\bemail\b/);
  });

  it('a denied non-null field nulls its parent, with its one error', async () => {
    expect(await run('{ pub user(id: "1") { name ssn } }', client('admin'))).toEqual({
      data: { pub: 'public', user: null },
      errors: [unauthorized('User.ssn', "required scopes: ('pii')", ['user', 'ssn'])],
    });
    expect(received.accounts[0]).not.toMatch(/\bssn\b/);
    expect(await run('{ user(id: "1") { ssn } }', client('pii'))).toEqual({
      data: { user: { ssn: '078-05-1120' } },
    });
  });

  it('a field denied in a fragment, and a selection left empty, still plan and answer', async () => {
    const query = '{ user(id: "1") { ...F } } fragment F on User { email }';
    expect(await run(query, client())).toEqual({
      data: { user: { email: null } },
      errors: [unauthorized('User.email', EMAIL_SCOPES, ['user', 'email'])],
    });
    expect(received.accounts[0]).not.toMatch(/\bemail\b/);
  });

  it("selected through an interface, an implementation's rule applies to every item; on the other type it does not", async () => {
    const error = (i: number) => unauthorized('Doc.note', "required scopes: ('notes')", ['nodes', i, 'note']);
    expect(await run('{ nodes { id note } }', client())).toEqual({
      data: {
        nodes: [
          { id: 'd1', note: null },
          { id: 'p1', note: null },
        ],
      },
      errors: [error(0), error(1)],
    });
    expect(received.accounts[0]).not.toMatch(/\bnote\b/);
    expect(await run('{ nodes { id ... on Pic { note } } }', client())).toEqual({
      data: { nodes: [{ id: 'd1' }, { id: 'p1', note: 'pic note' }] },
    });
    expect(await run('{ nodes { note } }', client('notes'))).toEqual({
      data: { nodes: [{ note: 'doc note' }, { note: 'pic note' }] },
    });
  });

  it('the plan cache keeps one plan per authorization: the same document, alternating clients', async () => {
    const QUERY_ = '{ user(id: "1") { name email balance } }';
    const admin = { data: { user: { name: 'Ada', email: 'ada@example.com', balance: '100' } } };
    const none = {
      data: { user: { name: 'Ada', email: null, balance: null } },
      errors: [
        unauthorized('User.email', 'not authenticated', ['user', 'email']),
        unauthorized('User.balance', 'not authenticated', ['user', 'balance']),
      ],
    };
    const scoped = {
      data: { user: { name: 'Ada', email: null, balance: '100' } },
      errors: [unauthorized('User.email', EMAIL_SCOPES, ['user', 'email'])],
    };
    for (let i = 0; i < 3; i++) {
      expect(await run(QUERY_, client('admin'))).toEqual(admin);
      expect(await run(QUERY_, ANONYMOUS)).toEqual(none);
      expect(await run(QUERY_, client('read:email'))).toEqual(scoped);
    }
    const withEmail = received.accounts.filter((q) => /\bemail\b/.test(q));
    expect(withEmail).toHaveLength(3);
    expect(received.billing).toHaveLength(6);
  });
  it('identical queries in flight at once by clients with other rights each get their own answer', async () => {
    const QUERY_ = '{ user(id: "1") { name email } }';
    const allowed = { data: { user: { name: 'Ada', email: 'ada@example.com' } } };
    const denied = (reason: string) => ({
      data: { user: { name: 'Ada', email: null } },
      errors: [unauthorized('User.email', reason, ['user', 'email'])],
    });
    const clients = [client('admin'), ANONYMOUS, client('read:email'), client('admin'), ANONYMOUS];
    expect(await Promise.all(clients.map((ctx) => run(QUERY_, ctx)))).toEqual([
      allowed,
      denied('not authenticated'),
      denied(EMAIL_SCOPES),
      allowed,
      denied('not authenticated'),
    ]);
  });
});

describe('authorization.reject_operation_if_unauthorized', () => {
  const routerYaml = (yaml: string) =>
    parseRouterConfig(`execution_config: { file: { path: ./config.json } }\n${yaml}`, {
      env: {},
      baseDir: '/srv/router',
    });
  let rejecting: Gateway;
  beforeAll(() => {
    const options: GatewayOptions = {
      authorization: routerYaml('authorization: { reject_operation_if_unauthorized: true }').authorization,
    };
    rejecting = createGateway(config, options);
  });
  afterAll(() => rejecting.close());

  it('is off by default, and only a boolean is accepted', () => {
    expect(routerYaml('').authorization).toEqual({
      requireAuthentication: false,
      rejectOperationIfUnauthorized: false,
    });
    expect(() => routerYaml('authorization: { reject_operation_if_unauthorized: yes please }')).toThrow(
      /authorization\.reject_operation_if_unauthorized/,
    );
  });

  it('refuses the whole operation with every error and no data; no subgraph is asked', async () => {
    expect(await run('{ pub me { name email } secret { code } }', ANONYMOUS, rejecting)).toEqual({
      errors: [
        unauthorized('Query.me', 'not authenticated', ['me']),
        unauthorized('User.email', 'not authenticated', ['me', 'email']),
        unauthorized('Query.secret', 'not authenticated', ['secret']),
      ],
    });
    expect(received.accounts).toEqual([]);
  });

  it('runs an operation the client may load in full', async () => {
    expect(await run('{ pub me { email } }', client('admin'), rejecting)).toEqual({
      data: { pub: 'public', me: { email: 'ada@example.com' } },
    });
  });
});

describe('subscriptions, on the memory broker', () => {
  let provider: MemoryProvider;
  let engine: SubscriptionEngine;
  beforeAll(() => {
    provider = new MemoryProvider({ id: 'default', url: 'memory://authorization-test' });
    engine = new SubscriptionEngine({
      providers: new Map([['default', provider]]),
      metrics: createRouterMetrics({ processMetrics: false }),
      logger: createLogger({ level: 'silent' }),
    });
  });

  const prepare = (query: string, ctx: RequestContext) => gateway.prepare({ query }, ctx);

  /** Subscribes `ctx`; returns what it receives and how to stop it. */
  function subscribe(query: string, ctx: RequestContext) {
    const prepared = prepare(query, ctx);
    if (prepared.kind !== 'operation' || !prepared.subscription) throw new Error(JSON.stringify(prepared));
    const results: Record<string, unknown>[] = [];
    const started = engine.subscribe(
      prepared.subscription,
      { next: (json) => results.push(JSON.parse(json)) > 0, error: () => {}, complete: () => {} },
      { query },
      ctx,
    );
    if (!started.ok) throw new Error(JSON.stringify(started.errors));
    return { results, plan: prepared.subscription.plan, stop: () => started.stop() };
  }

  const until = async (done: () => boolean): Promise<void> => {
    for (let i = 0; i < 2000 && !done(); i++) await new Promise((r) => setTimeout(r, 1));
    expect(done()).toBe(true);
  };

  it('a protected root field is refused at subscribe time', () => {
    expect(prepare('subscription { audit { id } }', ANONYMOUS)).toEqual({
      kind: 'errors',
      errors: [unauthorized('Subscription.audit', 'not authenticated', ['audit'])],
    });
    expect(prepare('subscription { audit { id } }', client()).kind).toBe('operation');
  });

  it('a protected field in the event selection is null with its error in every event, per client', async () => {
    const QUERY = 'subscription { userUpdated { id name email } }';
    const anonymous = subscribe(QUERY, ANONYMOUS);
    const admin = subscribe(QUERY, client('admin'));
    // Results depend on what is denied: different plan objects (different groups), and one
    // plan for clients denied alike.
    expect(admin.plan).not.toBe(anonymous.plan);
    expect((prepare(QUERY, {}) as { subscription: PreparedSubscription }).subscription.plan).toBe(
      anonymous.plan,
    );
    await until(() => provider.broker.subscriptionCount() > 0);
    for (const id of ['1', '2']) provider.broker.publish('users', JSON.stringify({ __typename: 'User', id }));
    await until(() => anonymous.results.length === 2 && admin.results.length === 2);
    // The in-process broker keeps no events: each client's first result says so.
    for (const results of [anonymous.results, admin.results]) {
      expect(results[0]!.extensions).toEqual({ delivery: 'at-most-once' });
      delete results[0]!.extensions;
    }
    for (const id of ['1', '2']) {
      expect(anonymous.results).toContainEqual({
        data: { userUpdated: { id, name: 'Ada', email: null } },
        errors: [unauthorized('User.email', 'not authenticated', ['userUpdated', 'email'])],
      });
      expect(admin.results).toContainEqual({
        data: { userUpdated: { id, name: 'Ada', email: 'ada@example.com' } },
      });
    }
    expect(received.accounts.filter((q) => /\bemail\b/.test(q)).length).toBeGreaterThan(0);
    expect(received.accounts.filter((q) => !/\bemail\b/.test(q)).length).toBeGreaterThan(0);
    anonymous.stop();
    admin.stop();
  });
});
