/**
 * Entity fetch batching and deduplication: every path that needs one subgraph at one planning
 * step goes in one request, identical representations once, across aliases, list items and
 * sibling paths, for queries and for subscription events. Three HTTP subgraphs in this process
 * (matches -> teams -> players) record what they receive; each case is also run with batching
 * switched off (`entityBatching: false`), which must give the same response with more requests.
 *
 * Data: matches m1 t1-t2 (venue v1), m2 t2-t3 (v1), m3 t3-t1 (v2); teams t1 Lions (Leeds,
 * captain p1 Ada), t2 Tigers (Turin, p2 Alan), t3 Bears (Bern, p3 Grace; its `motto` throws);
 * venues v1 (capacity 30000), v2 (12000); players' nicks are their names in lower case.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { execute, parse, type GraphQLSchema, type OperationDefinitionNode } from 'graphql';
import { composeSupergraph } from '@edfs/operator';
import { createGateway, type Gateway } from '../../src/engine/gateway.js';
import { planOperation } from '../../src/engine/planner/index.js';

const LINK =
  'extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@external"])';

const MATCHES_SDL = `${LINK}
  type Query { matches: [Match!]! match(id: ID!): Match }
  type Match @key(fields: "id") { id: ID! home: Team! away: Team! venue: Venue }
  type Team @key(fields: "id", resolvable: false) { id: ID! }
  type Venue @key(fields: "id", resolvable: false) { id: ID! }
`;
const TEAMS_SDL = `${LINK}
  type Query { team(id: ID!): Team }
  type Team @key(fields: "id") { id: ID! name: String! city: String motto: String captain: Player }
  type Venue @key(fields: "id") { id: ID! capacity: Int! }
  type Player @key(fields: "id", resolvable: false) { id: ID! }
`;
const PLAYERS_SDL = `${LINK}
  type Query { player(id: ID!): Player }
  type Player @key(fields: "id") { id: ID! name: String! nick: String! }
`;
const EVENTS_SDL = `
  type Subscription {
    matchUpdated: Match! @edfs__natsSubscribe(subjects: ["matches"], providerId: "default")
  }
  type Match @key(fields: "id", resolvable: false) { id: ID! @external }
`;

const MATCHES: Record<string, { home: string; away: string; venue: string }> = {
  m1: { home: 't1', away: 't2', venue: 'v1' },
  m2: { home: 't2', away: 't3', venue: 'v1' },
  m3: { home: 't3', away: 't1', venue: 'v2' },
};
const TEAMS: Record<string, { name: string; city: string; captain: string }> = {
  t1: { name: 'Lions', city: 'Leeds', captain: 'p1' },
  t2: { name: 'Tigers', city: 'Turin', captain: 'p2' },
  t3: { name: 'Bears', city: 'Bern', captain: 'p3' },
};
const PLAYERS: Record<string, string> = { p1: 'Ada', p2: 'Alan', p3: 'Grace' };
const VENUES: Record<string, number> = { v1: 30000, v2: 12000 };

const match = (id: string) =>
  MATCHES[id] && {
    id,
    home: { id: MATCHES[id].home },
    away: { id: MATCHES[id].away },
    venue: { id: MATCHES[id].venue },
  };

const schemas: Record<string, GraphQLSchema> = {
  matches: buildSubgraphSchema({
    typeDefs: parse(MATCHES_SDL),
    resolvers: {
      Query: {
        matches: () => Object.keys(MATCHES).map(match),
        match: (_: unknown, a: { id: string }) => match(a.id),
      },
      Match: { __resolveReference: (r: { id: string }) => match(r.id) },
    } as never,
  }),
  teams: buildSubgraphSchema({
    typeDefs: parse(TEAMS_SDL),
    resolvers: {
      Team: {
        __resolveReference: (r: { id: string }) => TEAMS[r.id] && { id: r.id, ...TEAMS[r.id] },
        motto: (t: { id: string }) => {
          if (t.id === 't3') throw new Error('motto of t3 is not approved');
          return `${TEAMS[t.id]!.name} first`;
        },
        captain: (t: { captain: string }) => ({ id: t.captain }),
      },
      Venue: { __resolveReference: (r: { id: string }) => ({ id: r.id, capacity: VENUES[r.id] }) },
    } as never,
  }),
  players: buildSubgraphSchema({
    typeDefs: parse(PLAYERS_SDL),
    resolvers: {
      Player: {
        __resolveReference: (r: { id: string }) => ({
          id: r.id,
          name: PLAYERS[r.id],
          nick: PLAYERS[r.id]!.toLowerCase(),
        }),
      },
    } as never,
  }),
};

interface Received {
  query: string;
  variables: Record<string, unknown>;
}
const received: Record<string, Received[]> = { matches: [], teams: [], players: [] };
const servers: Server[] = [];
const urls: Record<string, string> = {};
/** Subgraphs that answer 503 with a non-GraphQL body (a subgraph that is down). */
const down = new Set<string>();
let batched: Gateway;
let unbatched: Gateway;

beforeAll(async () => {
  for (const [name, schema] of Object.entries(schemas)) {
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const { query, variables } = JSON.parse(body) as Received;
        received[name]!.push({ query, variables });
        if (down.has(name)) {
          res.statusCode = 503;
          res.end('unavailable');
          return;
        }
        void Promise.resolve(execute({ schema, document: parse(query), variableValues: variables })).then(
          (result) => {
            res.setHeader('content-type', 'application/json');
            res.end(JSON.stringify(result));
          },
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push(server);
    urls[name] = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
  }
  const composed = composeSupergraph([
    { name: 'events', sdl: EVENTS_SDL },
    { name: 'matches', routingUrl: urls.matches!, sdl: MATCHES_SDL },
    { name: 'teams', routingUrl: urls.teams!, sdl: TEAMS_SDL },
    { name: 'players', routingUrl: urls.players!, sdl: PLAYERS_SDL },
  ]);
  if (!composed.ok) throw new Error(JSON.stringify(composed.errors));
  batched = createGateway(composed.config);
  // As routers without batching do: one request per path, identical ones too.
  unbatched = createGateway(composed.config, { entityBatching: false, deduplicateRequests: { all: false } });
});

afterAll(async () => {
  await batched?.close();
  await unbatched?.close();
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

beforeEach(() => {
  for (const list of Object.values(received)) list.length = 0;
  down.clear();
});

const counts = () => Object.fromEntries(Object.entries(received).map(([k, v]) => [k, v.length]));

/** Runs `query` without and then with batching: same response; returns both request counts. */
async function both(query: string) {
  const before = await unbatched.execute({ query });
  const unbatchedCounts = counts();
  for (const list of Object.values(received)) list.length = 0;
  const after = await batched.execute({ query });
  const sortErrors = (r: typeof after) => ({
    ...r,
    errors: r.errors && [...r.errors].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
  });
  expect(sortErrors(after)).toEqual(sortErrors(before));
  return { result: after, unbatched: unbatchedCounts, batched: counts() };
}

/** Representations of each `_entities` field of the one request `subgraph` received. */
function entityCalls(subgraph: string): unknown[][] {
  expect(received[subgraph]).toHaveLength(1);
  const { query, variables } = received[subgraph]![0]!;
  const names = [...query.matchAll(/_entities\(representations: \$(\w+)\)/g)].map((m) => m[1]!);
  return names.map((n) => variables[n] as unknown[]);
}

describe('entity fetches: one request per subgraph per planning step', () => {
  it('aliases of one list field: one request, each representation once', async () => {
    const aliases = Array.from({ length: 50 }, (_, i) => `a${i}: matches { home { name } }`).join(' ');
    const { result, unbatched: before, batched: after } = await both(`{ ${aliases} }`);
    expect(before).toEqual({ matches: 1, teams: 50, players: 0 });
    expect(after).toEqual({ matches: 1, teams: 1, players: 0 });
    expect(entityCalls('teams')).toEqual([
      [
        { __typename: 'Team', id: 't1' },
        { __typename: 'Team', id: 't2' },
        { __typename: 'Team', id: 't3' },
      ],
    ]);
    const data = result.data as Record<string, { home: { name: string } }[]>;
    expect(data.a49!.map((m) => m.home.name)).toEqual(['Lions', 'Tigers', 'Bears']);
    expect(Object.keys(data)).toHaveLength(50);
  });

  it('sibling paths (home and away) of list items: one _entities call, deduplicated', async () => {
    const {
      result,
      unbatched: before,
      batched: after,
    } = await both(`{ matches { id home { name } away { name } } }`);
    expect(before.teams).toBe(2);
    expect(after.teams).toBe(1);
    expect(entityCalls('teams')).toEqual([
      [
        { __typename: 'Team', id: 't1' },
        { __typename: 'Team', id: 't2' },
        { __typename: 'Team', id: 't3' },
      ],
    ]);
    expect(result).toEqual({
      data: {
        matches: [
          { id: 'm1', home: { name: 'Lions' }, away: { name: 'Tigers' } },
          { id: 'm2', home: { name: 'Tigers' }, away: { name: 'Bears' } },
          { id: 'm3', home: { name: 'Bears' }, away: { name: 'Lions' } },
        ],
      },
    });
  });

  it('different types at sibling paths share one _entities call', async () => {
    const { result, batched: after } = await both(`{ match(id: "m1") { home { name } venue { capacity } } }`);
    expect(after.teams).toBe(1);
    expect(entityCalls('teams')).toEqual([
      [
        { __typename: 'Team', id: 't1' },
        { __typename: 'Venue', id: 'v1' },
      ],
    ]);
    expect(result).toEqual({ data: { match: { home: { name: 'Lions' }, venue: { capacity: 30000 } } } });
  });

  it('one type selected differently at two paths: two _entities fields in one request', async () => {
    const { result, batched: after } = await both(`{ match(id: "m1") { home { name } away { city } } }`);
    expect(after.teams).toBe(1);
    expect(entityCalls('teams')).toEqual([
      [{ __typename: 'Team', id: 't1' }],
      [{ __typename: 'Team', id: 't2' }],
    ]);
    expect(result).toEqual({ data: { match: { home: { name: 'Lions' }, away: { city: 'Turin' } } } });
  });

  it('every step is batched: teams once, then players once, each object with its own data', async () => {
    // t1 is home in m1 and away in m3: the same entity feeds two paths whose players differ.
    const {
      result,
      unbatched: before,
      batched: after,
    } = await both(`{ matches { home { captain { name } } away { captain { name: nick } } } }`);
    expect(before).toEqual({ matches: 1, teams: 2, players: 2 });
    expect(after).toEqual({ matches: 1, teams: 1, players: 1 });
    expect(result).toEqual({
      data: {
        matches: [
          { home: { captain: { name: 'Ada' } }, away: { captain: { name: 'alan' } } },
          { home: { captain: { name: 'Alan' } }, away: { captain: { name: 'grace' } } },
          { home: { captain: { name: 'Grace' } }, away: { captain: { name: 'ada' } } },
        ],
      },
    });
  });

  it('field errors of a batched fetch are attributed to every path of the failing entity', async () => {
    const { result, batched: after } = await both(`{ matches { home { motto } away { motto } } }`);
    expect(after.teams).toBe(1);
    expect(result.errors).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          message: 'motto of t3 is not approved',
          path: ['matches', 1, 'away', 'motto'],
        }),
        expect.objectContaining({
          message: 'motto of t3 is not approved',
          path: ['matches', 2, 'home', 'motto'],
        }),
      ]),
    );
    expect(result.errors).toHaveLength(2);
    expect((result.data as { matches: unknown[] }).matches[0]).toEqual({
      home: { motto: 'Lions first' },
      away: { motto: 'Tigers first' },
    });
  });

  it('a subgraph that is down: an error at the field of each path, as without batching', async () => {
    down.add('teams');
    const { result, batched: after } = await both(`{ match(id: "m2") { id home { city } away { city } } }`);
    expect(after.teams).toBe(1);
    const error = (path: string[]) => ({
      message: 'Failed to fetch from subgraph "teams": HTTP 503, response is not JSON',
      path,
      extensions: { code: 'SUBGRAPH_FETCH_FAILED', serviceName: 'teams' },
    });
    expect(result).toEqual({
      errors: [error(['match', 'home', 'city']), error(['match', 'away', 'city'])],
      data: { match: { id: 'm2', home: { city: null }, away: { city: null } } },
    });
  });
});

describe('entity fetches of subscription events', () => {
  it('home { name } and away { name } of one event: one request per subgraph per event', async () => {
    const query = 'subscription { matchUpdated { id home { name } away { name } venue { capacity } } }';
    for (const gateway of [unbatched, batched]) {
      const prepared = gateway.prepare({ query });
      if (prepared.kind !== 'operation' || !prepared.subscription) throw new Error('not a subscription');
      const results = [];
      for (const id of ['m1', 'm2', 'm3'])
        results.push(await prepared.subscription.resolve({ __typename: 'Match', id }));
      expect(results[2]).toEqual({
        data: {
          matchUpdated: {
            id: 'm3',
            home: { name: 'Bears' },
            away: { name: 'Lions' },
            venue: { capacity: 12000 },
          },
        },
      });
      if (gateway === unbatched) {
        expect(counts()).toEqual({ matches: 3, teams: 9, players: 0 });
        for (const list of Object.values(received)) list.length = 0;
      }
    }
    expect(counts()).toEqual({ matches: 3, teams: 3, players: 0 });
    expect(received.teams![0]!.variables.representations).toEqual([
      { __typename: 'Team', id: 't1' },
      { __typename: 'Team', id: 't2' },
      { __typename: 'Venue', id: 'v1' },
    ]);
  });
});

describe('the plan', () => {
  it('holds one entity fetch per subgraph per step, its parts listed in its calls', () => {
    const query = `{ a: matches { home { name } away { name } } b: match(id: "m1") { home { captain { nick } } } }`;
    const operation = parse(query).definitions[0] as OperationDefinitionNode;
    const plan = planOperation(batched.supergraph, operation, {}, {});
    const summary = plan.fetches.map((f) => ({
      subgraph: f.subgraph.name,
      deps: [...f.deps].map((d) => d.subgraph.name),
      calls: f.calls?.map((c) => c.parts.map((p) => p.path.join('.'))),
    }));
    expect(summary).toEqual([
      { subgraph: 'matches', deps: [], calls: undefined },
      // a.home and a.away select Team alike; b.home selects it otherwise: a second _entities field.
      { subgraph: 'teams', deps: ['matches'], calls: [['a.home', 'a.away'], ['b.home']] },
      { subgraph: 'players', deps: ['teams'], calls: [['b.home.captain']] },
    ]);
    const off = planOperation(batched.supergraph, operation, {}, {}, { batchEntities: false });
    expect(off.fetches.filter((f) => f.subgraph.name === 'teams')).toHaveLength(3);
  });
});
