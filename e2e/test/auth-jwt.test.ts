/**
 * JWT authentication end to end: a JWKS endpoint served over HTTP on 127.0.0.1 (keys made here
 * with jose, rotated mid-test), a real nats-server, the router, and the graphql-ws and graphql-sse
 * client libraries as independent peers. Covers tokens that verify and every way one may not
 * (expired, audience, issuer, unknown kid then rotated in, `alg: none`, HS256 signed with the
 * public key), anonymous clients with and without `require_authentication`, subjects bound to a
 * claim (a tenant cannot reach another tenant's subject, and a refused subscription opens no
 * broker subscription), and a token that expires while its subscription streams. Last, the
 * verified token drives field authorization (`@requiresScopes` over HTTP, `@authenticated` in a
 * subscription's event selection) against a subgraph served here that records its queries.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createClient, type Client } from 'graphql-ws';
import { createClient as createSseClient } from 'graphql-sse';
import {
  exportJWK,
  exportSPKI,
  generateKeyPair,
  SignJWT,
  type CryptoKey,
  type JWK,
  type JWTPayload,
} from 'jose';
import WebSocket from 'ws';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';
import { composeSupergraph } from '@edfs/operator';
import { resolveRouterConfig, startRouter, type RunningRouter } from '@edfs/router';
import { subscribeNoDeadline as subscribe } from '../src/fixtures/clients.js';
import { createSubgraphServer, type SubgraphServer } from '../src/fixtures/federation/server.js';
import { metric as readMetric } from '../src/fixtures/metrics.js';
import { eventually } from '../src/fixtures/wait.js';
import { startNatsServer, type NatsServer } from '../src/infra/nats.js';

const ISSUER = 'https://idp.test/';
const AUDIENCE = 'chat';

/** Messages by tenant and room: the subject takes the tenant from the token, never from the client. */
const TENANT_SDL = /* GraphQL */ `
  type Subscription {
    tenantMessages(roomID: ID!): Message!
      @edfs__natsSubscribe(
        subjects: ["tenant.{{ request.auth.claims.tenant }}.room.{{ args.roomID }}"]
        providerId: "default"
      )
  }
  type Message @key(fields: "id", resolvable: false) {
    id: ID! @external
  }
`;
const MESSAGES_SDL = /* GraphQL */ `
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])
  type Query {
    messages(roomID: ID!): [Message!]!
  }
  type Message @key(fields: "id") {
    id: ID!
    text: String!
  }
`;
const SUBSCRIPTION = 'subscription ($room: ID!) { tenantMessages(roomID: $room) { id } }';

/** Users with a scoped field and a field for any verified client; updates come from NATS. */
const ACCOUNTS_SDL = /* GraphQL */ `
  extend schema
    @link(
      url: "https://specs.apollo.dev/federation/v2.5"
      import: ["@key", "@authenticated", "@requiresScopes"]
    )
  type Query {
    user(id: ID!): User
  }
  type User @key(fields: "id") {
    id: ID!
    name: String!
    email: String @requiresScopes(scopes: [["read:email"]])
    balance: Int @authenticated
  }
`;
const USER_EVENTS_SDL = /* GraphQL */ `
  type Subscription {
    userUpdated: User! @edfs__natsSubscribe(subjects: ["users"], providerId: "default")
  }
  type User @key(fields: "id", resolvable: false) {
    id: ID! @external
  }
`;
const userRow = (id: string) => ({ id, name: `user ${id}`, email: `${id}@example.com`, balance: 100 });

interface Key {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
  spki: string;
}

async function makeKey(kid: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  return {
    kid,
    privateKey,
    jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' },
    spki: await exportSPKI(publicKey),
  };
}

/** A JWKS endpoint whose keys the test changes; it counts its fetches. */
class JwksServer {
  keys: JWK[] = [];
  fetches = 0;
  private readonly server: Server = createServer((_req, res) => {
    this.fetches++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: this.keys }));
  });
  url = '';
  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/.well-known/jwks.json`;
  }
  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

let nats: NatsServer;
let jwks: JwksServer;
let publisher: NatsConnection;
let key: Key;
/** Anonymous clients allowed. */
let open: RunningRouter;
/** `authorization.require_authentication: true`. */
let strict: RunningRouter;
/** Anonymous clients allowed; serves the accounts and user-events graph. */
let fields: RunningRouter;
let accounts: SubgraphServer;
/** Queries the accounts subgraph received. */
const accountsQueries: string[] = [];
const clients: Client[] = [];

/** A token of `key` (default k1): tenant "a", scope chat:read, for an hour; `claims` override any of it. */
function sign(claims: JWTPayload, options: { key?: Key } = {}): Promise<string> {
  const k = options.key ?? key;
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    iss: ISSUER,
    aud: AUDIENCE,
    sub: 'user-1',
    iat: now,
    exp: now + 3600,
    tenant: 'a',
    scope: 'chat:read',
    ...claims,
  })
    .setProtectedHeader({ alg: 'RS256', kid: k.kid })
    .sign(k.privateKey);
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

async function startAuthRouter(
  requireAuthentication: boolean,
  executionConfig: unknown,
): Promise<RunningRouter> {
  return startRouter(
    resolveRouterConfig({
      listen_addr: '127.0.0.1:0',
      execution_config: { file: { path: 'config.json' } },
      events: { providers: { nats: [{ id: 'default', url: nats.url }] } },
      telemetry: { metrics: { prometheus: { enabled: true, listen_addr: '127.0.0.1:0' } } },
      websocket: { authentication: { from_initial_payload: { enabled: true, key: 'Authorization' } } },
      authentication: {
        jwt: {
          jwks: [
            {
              url: jwks.url,
              refresh_interval: '1m',
              refresh_unknown_kid: { interval: '200ms' },
              algorithms: ['RS256', 'ES256'],
              audiences: [AUDIENCE],
              issuer: ISSUER,
            },
          ],
        },
      },
      authorization: { require_authentication: requireAuthentication },
      log_level: 'silent',
    }),
    { executionConfig },
  );
}

beforeAll(async () => {
  nats = await startNatsServer();
  publisher = await connect({ servers: nats.url });
  jwks = new JwksServer();
  await jwks.start();
  key = await makeKey('k1');
  jwks.keys = [key.jwk];
  const composed = composeSupergraph([
    { name: 'tenants', sdl: TENANT_SDL },
    { name: 'messages', routingUrl: 'http://127.0.0.1:9/graphql', sdl: MESSAGES_SDL },
  ]);
  if (!composed.ok) throw new Error(composed.errors.map((e) => e.message).join('\n'));
  const config = JSON.parse(composed.configJson) as unknown;
  open = await startAuthRouter(false, config);
  strict = await startAuthRouter(true, config);
  accounts = createSubgraphServer(
    buildSubgraphSchema({
      typeDefs: parse(ACCOUNTS_SDL),
      resolvers: {
        Query: { user: (_: unknown, { id }: { id: string }) => userRow(id) },
        User: { __resolveReference: ({ id }: { id: string }) => userRow(id) },
      } as never,
    }),
    (request) => void accountsQueries.push(request.query),
  );
  await accounts.start();
  const composedFields = composeSupergraph([
    { name: 'accounts', routingUrl: accounts.url, sdl: ACCOUNTS_SDL },
    { name: 'user-events', sdl: USER_EVENTS_SDL },
  ]);
  if (!composedFields.ok) throw new Error(composedFields.errors.map((e) => e.message).join('\n'));
  fields = await startAuthRouter(false, JSON.parse(composedFields.configJson) as unknown);
}, 300_000);

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
  await eventually(
    async () => (await metric(open, 'router_engine_triggers')) === 0,
    'no triggers left',
    10_000,
  );
});

afterAll(async () => {
  await open?.close();
  await strict?.close();
  await fields?.close();
  await accounts?.stop();
  await publisher?.close();
  await jwks?.close();
  await nats?.stop();
});

const metric = (router: RunningRouter, name: string) => readMetric(router.metricsUrl!, name);

async function postQuery(
  router: RunningRouter,
  token?: string,
  authorization?: string,
  query = '{ __typename }',
) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (authorization ?? token) headers.authorization = authorization ?? `Bearer ${token}`;
  const res = await fetch(router.url, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query }),
  });
  return {
    status: res.status,
    body: (await res.json()) as {
      data?: unknown;
      errors?: { message: string; path?: (string | number)[]; extensions?: { code?: string } }[];
    },
  };
}

/** A graphql-ws client whose connection_init carries `token` (none: anonymous); no retries. */
function wsClient(
  router: RunningRouter,
  token?: string,
  closes?: { code: number; reason: string }[],
): Client {
  const client = createClient({
    url: router.url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: token ? { Authorization: `Bearer ${token}` } : {},
    on: { closed: (event) => void closes?.push(event as { code: number; reason: string }) },
  });
  clients.push(client);
  return client;
}

/** Publishes to `subject` until the stream has `n` results (the router's subscription may not be in place yet). */
async function publishUntil(subject: string, stream: { results: unknown[] }, n: number, id: string) {
  await eventually(
    async () => {
      publisher.publish(subject, JSON.stringify({ __typename: 'Message', id }));
      await publisher.flush();
      await new Promise((r) => setTimeout(r, 100));
      return stream.results.length >= n;
    },
    `${n} results on ${subject}`,
    15_000,
  );
}

describe('HTTP: a token verifies or the request gets 401 UNAUTHENTICATED', () => {
  it('a valid token runs the operation', async () => {
    const { status, body } = await postQuery(open, await sign({}));
    expect(status).toBe(200);
    expect(body).toEqual({ data: { __typename: 'Query' } });
  });

  it.each([
    ['expired', () => sign({ exp: Math.floor(Date.now() / 1000) - 60 }), /expired/],
    ['for another audience', () => sign({ aud: 'billing' }), /audience/],
    ['from another issuer', () => sign({ iss: 'https://evil.test/' }), /issuer/],
  ])('a token %s is refused', async (_what, token, message) => {
    const { status, body } = await postQuery(open, await token());
    expect(status).toBe(401);
    expect(body.errors).toHaveLength(1);
    expect(body.errors![0]!.extensions?.code).toBe('UNAUTHENTICATED');
    expect(body.errors![0]!.message).toMatch(message);
  });

  it('alg "none" is refused', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: ISSUER, aud: AUDIENCE, tenant: 'a', exp: now + 600 })}.`;
    const { status, body } = await postQuery(open, token);
    expect(status).toBe(401);
    expect(body.errors![0]!.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('HS256 signed with the public key (algorithm confusion) is refused', async () => {
    const token = await new SignJWT({ tenant: 'a' })
      .setProtectedHeader({ alg: 'HS256', kid: key.kid })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(key.spki));
    const { status, body } = await postQuery(open, token);
    expect(status).toBe(401);
    expect(body.errors![0]!.message).toMatch(/algorithm/);
  });

  it('an unknown kid is refused, then accepted once the JWKS endpoint serves the rotated key', async () => {
    const rotated = await makeKey('k2');
    const token = await sign({}, { key: rotated });
    const refused = await postQuery(open, token);
    expect(refused.status).toBe(401);
    expect(refused.body.errors![0]!.message).toMatch(/kid/);
    const fetchesBefore = jwks.fetches;
    jwks.keys = [key.jwk, rotated.jwk];
    await new Promise((r) => setTimeout(r, 300)); // past refresh_unknown_kid.interval
    const accepted = await postQuery(open, token);
    expect(accepted.status).toBe(200);
    expect(jwks.fetches).toBeGreaterThan(fetchesBefore);
    // The old key still verifies: the set was replaced by the new one, which holds both.
    expect((await postQuery(open, await sign({}))).status).toBe(200);
  });

  it('anonymous: allowed by default, 401 under require_authentication; another scheme counts as none', async () => {
    expect((await postQuery(open)).status).toBe(200);
    const refused = await postQuery(strict);
    expect(refused.status).toBe(401);
    expect(refused.body.errors![0]!.message).toMatch(/Authentication required/);
    expect((await postQuery(strict, undefined, 'Basic dXNlcjpwYXNz')).status).toBe(401);
    expect((await postQuery(strict, await sign({}))).status).toBe(200);
  });
});

describe('WebSocket: the connection_init token', () => {
  it('a valid token subscribes to its own tenant subject', async () => {
    const stream = subscribe(wsClient(open, await sign({ tenant: 'a' })), SUBSCRIPTION, { room: 'r1' });
    await publishUntil('tenant.a.room.r1', stream, 1, 'm1');
    expect(stream.results[0]).toEqual({ data: { tenantMessages: { id: 'm1' } } });
  });

  it('an invalid token is closed with 4403 before any operation runs', async () => {
    const closes: { code: number; reason: string }[] = [];
    const stream = subscribe(wsClient(open, await sign({ aud: 'billing' }), closes), SUBSCRIPTION, {
      room: 'r1',
    });
    await eventually(() => stream.errors.length > 0, 'the subscription failed', 10_000);
    expect(closes[0]?.code).toBe(4403);
    expect(closes[0]?.reason).toMatch(/audience/);
  });

  it('anonymous under require_authentication is closed with 4403', async () => {
    const closes: { code: number; reason: string }[] = [];
    const stream = subscribe(wsClient(strict, undefined, closes), SUBSCRIPTION, { room: 'r1' });
    await eventually(() => stream.errors.length > 0, 'the subscription failed', 10_000);
    expect(closes[0]?.code).toBe(4403);
    expect(closes[0]?.reason).toMatch(/Authentication required/);
  });

  it('a tenant-A token never reaches tenant B: no broker subscription on B, B events not delivered', async () => {
    const stream = subscribe(wsClient(open, await sign({ tenant: 'a' })), SUBSCRIPTION, { room: 'r9' });
    await publishUntil('tenant.a.room.r9', stream, 1, 'a1');
    expect(await nats.subscriptionCount('tenant.a.room.r9')).toBe(1);
    expect(await nats.subscriptionCount('tenant.b.room.r9')).toBe(0);
    publisher.publish('tenant.b.room.r9', JSON.stringify({ __typename: 'Message', id: 'b1' }));
    await publisher.flush();
    await new Promise((r) => setTimeout(r, 300));
    expect(stream.results).toEqual([{ data: { tenantMessages: { id: 'a1' } } }]);
  });

  it.each([
    ['anonymous', undefined, 'UNAUTHENTICATED'],
    ['without the claim', { tenant: undefined }, 'MISSING_CLAIM'],
    ['whose claim would widen the subject', { tenant: '*' }, 'INVALID_SUBJECT'],
    ['whose claim would add tokens', { tenant: 'b.room.r1' }, 'INVALID_SUBJECT'],
  ])('a client %s is refused, and no broker subscription is made', async (_what, claims, code) => {
    const token = claims ? await sign(claims) : undefined;
    const stream = subscribe(wsClient(open, token), SUBSCRIPTION, { room: 'r1' });
    await eventually(() => stream.errors.length > 0, 'the subscription was refused', 10_000);
    expect((stream.errors[0] as { extensions?: { code?: string } }[])[0]?.extensions?.code).toBe(code);
    expect(await metric(open, 'router_engine_triggers')).toBe(0);
    expect(await nats.subscriptionCount('tenant.b.room.r1')).toBe(0);
  });

  it('a token that expires mid-stream ends the subscription with TOKEN_EXPIRED, then complete, and is counted', async () => {
    const before = await metric(open, 'router_subscriptions_expired_total');
    const closes: { code: number; reason: string }[] = [];
    const expiresAt = Math.floor(Date.now() / 1000) + 3;
    const stream = subscribe(wsClient(open, await sign({ exp: expiresAt }), closes), SUBSCRIPTION, {
      room: 'r5',
    });
    await publishUntil('tenant.a.room.r5', stream, 1, 'e1');
    await eventually(() => stream.completed, 'the subscription completed', 10_000);
    const last = stream.results.at(-1) as { errors?: { extensions?: { code?: string } }[] };
    expect(last.errors?.[0]?.extensions?.code).toBe('TOKEN_EXPIRED');
    expect(stream.errors).toEqual([]);
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt * 1000);
    expect(await metric(open, 'router_subscriptions_expired_total')).toBe(before + 1);
    await eventually(() => closes.length > 0, 'the connection closed', 5_000);
    expect(closes[0]).toMatchObject({ code: 4403, reason: 'Token expired' });
    await eventually(
      async () => (await nats.subscriptionCount('tenant.a.room.r5')) === 0,
      'unsubscribed',
      5_000,
    );
  }, 30_000);
});

describe('SSE (graphql-sse): the header token', () => {
  it('a valid token streams; a token that expires ends the stream with TOKEN_EXPIRED', async () => {
    const before = await metric(open, 'router_subscriptions_expired_total');
    const token = await sign({ exp: Math.floor(Date.now() / 1000) + 3 });
    const sse = createSseClient({
      url: open.url,
      retryAttempts: 0,
      headers: { authorization: `Bearer ${token}` },
    });
    const stream = {
      results: [] as { errors?: { extensions?: { code?: string } }[] }[],
      completed: false,
      errors: [] as unknown[],
    };
    const dispose = sse.subscribe(
      { query: SUBSCRIPTION, variables: { room: 's1' } },
      {
        next: (v) => void stream.results.push(v as never),
        error: (e) => void stream.errors.push(e),
        complete: () => void (stream.completed = true),
      },
    );
    try {
      await publishUntil('tenant.a.room.s1', stream, 1, 's1');
      await eventually(() => stream.completed, 'the stream completed', 10_000);
      expect(stream.results.at(-1)?.errors?.[0]?.extensions?.code).toBe('TOKEN_EXPIRED');
      expect(await metric(open, 'router_subscriptions_expired_total')).toBe(before + 1);
    } finally {
      dispose();
      sse.dispose();
    }
  }, 30_000);

  it('anonymous under require_authentication gets 401', async () => {
    const sse = createSseClient({ url: strict.url, retryAttempts: 0 });
    const failure = await new Promise<unknown>((resolve) => {
      sse.subscribe(
        { query: SUBSCRIPTION, variables: { room: 's2' } },
        { next: () => undefined, error: resolve, complete: () => resolve(undefined) },
      );
    });
    sse.dispose();
    expect(String((failure as Error)?.message ?? failure)).toMatch(/401|Authentication required/);
    expect(await metric(strict, 'router_engine_triggers')).toBe(0);
  });
});

describe('field authorization by the verified token', () => {
  const unauthorized = (coordinate: string, reason: string, path: string[]) => ({
    message: `Unauthorized to load field '${coordinate}'. Reason: ${reason}.`,
    path,
    extensions: { code: 'UNAUTHORIZED_FIELD_OR_TYPE' },
  });

  it('HTTP: the scope claim grants a @requiresScopes field; without it the field is null and never fetched', async () => {
    const QUERY = '{ user(id: "1") { name email } }';
    accountsQueries.length = 0;
    const granted = await postQuery(fields, await sign({ scope: 'chat:read read:email' }), undefined, QUERY);
    expect(granted).toEqual({
      status: 200,
      body: { data: { user: { name: 'user 1', email: '1@example.com' } } },
    });
    expect(accountsQueries).toHaveLength(1);
    expect(accountsQueries[0]).toMatch(/\bemail\b/);

    accountsQueries.length = 0;
    const denied = await postQuery(fields, await sign({ scope: 'chat:read' }), undefined, QUERY);
    expect(denied).toEqual({
      status: 200,
      body: {
        data: { user: { name: 'user 1', email: null } },
        errors: [unauthorized('User.email', "required scopes: ('read:email')", ['user', 'email'])],
      },
    });
    expect(accountsQueries).toHaveLength(1);
    expect(accountsQueries[0]).not.toMatch(/\bemail\b/);
  });

  it('WebSocket: one event reaches a verified and an anonymous client; @authenticated is null for the anonymous one', async () => {
    const QUERY = 'subscription { userUpdated { id name balance } }';
    const verified = subscribe(wsClient(fields, await sign({})), QUERY);
    const anonymous = subscribe(wsClient(fields), QUERY);
    await eventually(
      async () =>
        (await metric(fields, 'router_engine_subscriptions')) === 2 &&
        (await nats.subscriptionCount('users')) === 1,
      'both subscriptions on one broker subscription',
      10_000,
    );
    accountsQueries.length = 0;
    for (const id of ['7', '8']) publisher.publish('users', JSON.stringify({ __typename: 'User', id }));
    await publisher.flush();
    const [fromVerified, fromAnonymous] = await Promise.all([verified.next(2), anonymous.next(2)]);
    expect(fromVerified).toEqual(
      ['7', '8'].map((id) => ({ data: { userUpdated: { id, name: `user ${id}`, balance: 100 } } })),
    );
    expect(fromAnonymous).toEqual(
      ['7', '8'].map((id) => ({
        data: { userUpdated: { id, name: `user ${id}`, balance: null } },
        errors: [unauthorized('User.balance', 'not authenticated', ['userUpdated', 'balance'])],
      })),
    );
    // Each event was fetched once per group: with the field for one, without it for the other.
    expect(accountsQueries).toHaveLength(4);
    expect(accountsQueries.filter((q) => /\bbalance\b/.test(q))).toHaveLength(2);
    expect(await metric(fields, 'router_engine_triggers')).toBe(1);
  }, 30_000);
});
