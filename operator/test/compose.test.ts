import { describe, expect, it } from '@jest/globals';
import { composeSupergraph, type SubgraphInput } from '../src/compose/compose.js';
import { readFixture } from './fixtures/files.js';

const users: SubgraphInput = {
  name: 'users',
  routingUrl: 'http://users:4001/graphql',
  sdl: readFixture('schemas/users.graphql'),
};
const messages: SubgraphInput = {
  name: 'messages',
  routingUrl: 'http://messages:4002/graphql',
  sdl: readFixture('schemas/messages.graphql'),
};
const events: SubgraphInput = { name: 'events', sdl: readFixture('schemas/events.graphql') };

interface DataSource {
  id: string;
  kind: string;
  rootNodes?: { typeName: string; fieldNames: string[] }[];
  childNodes?: { typeName: string; fieldNames: string[] }[];
  keys?: { typeName: string; selectionSet: string; disableEntityResolver?: boolean }[];
  customGraphql?: { fetch: { url: { staticVariableContent?: string } } };
  customEvents?: { nats?: { engineEventConfiguration: Record<string, string>; subjects: string[] }[] };
}

function dataSources(config: Record<string, unknown>): DataSource[] {
  return (config.engineConfig as { datasourceConfigurations: DataSource[] }).datasourceConfigurations;
}

function composeOk(inputs: SubgraphInput[]) {
  const result = composeSupergraph(inputs);
  if (!result.ok) throw new Error(`expected composition to succeed: ${JSON.stringify(result.errors)}`);
  return result;
}

describe('composeSupergraph', () => {
  it('composes two subgraphs into datasource configurations with root nodes, keys and fetch URLs', () => {
    const { config, configJson } = composeOk([users, messages]);
    const byName = Object.fromEntries(
      (config.subgraphs as { id: string; name: string }[]).map((s) => [
        s.name,
        dataSources(config).find((d) => d.id === s.id),
      ]),
    );

    expect(byName.users).toMatchObject({
      kind: 'GRAPHQL',
      rootNodes: expect.arrayContaining([
        { typeName: 'Query', fieldNames: ['user'] },
        { typeName: 'User', fieldNames: ['id', 'name'] },
      ]),
      keys: [{ typeName: 'User', selectionSet: 'id' }],
      customGraphql: { fetch: { url: { staticVariableContent: 'http://users:4001/graphql' } } },
    });
    expect(byName.messages?.keys).toEqual([
      { typeName: 'Message', selectionSet: 'id' },
      { typeName: 'User', selectionSet: 'id', disableEntityResolver: true },
    ]);
    const schema = (config.engineConfig as { graphqlSchema: string }).graphqlSchema;
    expect(schema).toContain('type Message');
    expect(JSON.parse(configJson)).toEqual(config);
  });

  it('composes an event-only subgraph (no routing URL) into a PUBSUB datasource with its NATS subjects', () => {
    const { config } = composeOk([users, messages, events]);
    const pubsub = dataSources(config).find((d) => d.kind === 'PUBSUB');

    expect(pubsub?.rootNodes).toEqual([
      { typeName: 'Subscription', fieldNames: ['messageAdded'] },
      { typeName: 'Mutation', fieldNames: ['sendMessage'] },
    ]);
    expect(pubsub?.keys).toEqual([{ typeName: 'Message', selectionSet: 'id', disableEntityResolver: true }]);
    expect(pubsub?.customEvents?.nats).toEqual([
      {
        engineEventConfiguration: {
          providerId: 'default',
          type: 'SUBSCRIBE',
          typeName: 'Subscription',
          fieldName: 'messageAdded',
        },
        subjects: ['room.{{ args.roomID }}.messages'],
      },
      {
        // PUBLISH is the enum's zero value, which protobuf JSON (and so Cosmo's format) omits.
        engineEventConfiguration: {
          providerId: 'default',
          typeName: 'Mutation',
          fieldName: 'sendMessage',
        },
        subjects: ['room.{{ args.roomID }}.messages'],
      },
    ]);
  });

  it('gives byte-identical output for identical inputs in any order, versioned by an input hash', () => {
    const first = composeOk([users, messages, events]);
    const second = composeOk([events, users, messages]);

    expect(second.configJson).toBe(first.configJson);
    expect(first.version).toMatch(/^[0-9a-f]{64}$/);
    expect(first.config.version).toBe(first.version);
  });

  it('changes the version when any input changes', () => {
    const base = composeOk([users, messages]);
    const moved = composeOk([{ ...users, routingUrl: 'http://users-v2:4001/graphql' }, messages]);

    expect(moved.version).not.toBe(base.version);
  });

  it('reports SDL that does not parse, naming the subgraph and the line and column', () => {
    const result = composeSupergraph([
      users,
      { name: 'broken', routingUrl: 'http://b/graphql', sdl: 'type Query {\n  a String\n}' },
    ]);

    expect(result).toEqual({
      ok: false,
      errors: [
        {
          subgraph: 'broken',
          message: 'schema syntax error at line 2, column 5: Expected ":", found Name "String".',
        },
      ],
    });
  });

  it('maps composition errors to the subgraph named in the message', () => {
    const result = composeSupergraph([
      users,
      {
        name: 'events',
        sdl: 'type Subscription { userUpdated: User! @edfs__natsSubscribe(subjects: ["users"]) }\ntype User @key(fields: "id") { id: ID! }',
      },
    ]);

    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]?.subgraph).toBe('events');
    expect(result.errors[0]?.message).toContain('resolvable: false');
  });

  it('leaves the subgraph undefined when an error concerns several subgraphs', () => {
    const result = composeSupergraph([
      users,
      {
        name: 'profiles',
        routingUrl: 'http://p/graphql',
        sdl: 'type User @key(fields: "id") { id: ID! name: Int! }',
      },
    ]);

    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]?.subgraph).toBeUndefined();
    expect(result.errors[0]?.message).toMatch(/"User\.name".*"profiles".*"users"/s);
  });

  it('rejects duplicate names, invalid URLs and unknown subscription protocols before composing', () => {
    const result = composeSupergraph([
      users,
      { ...users },
      { ...messages, routingUrl: 'not a url' },
      { ...events, name: 'stream', subscriptionProtocol: 'grpc' as never },
    ]);

    expect(result).toEqual({
      ok: false,
      errors: [
        { subgraph: 'users', message: 'the subgraph name is used more than once' },
        { subgraph: 'messages', message: 'routing URL "not a url" is not a valid URL' },
        { subgraph: 'stream', message: 'subscription protocol "grpc" is not one of ws, sse, sse_post' },
      ],
    });
  });

  it('fails with a clear error when there is nothing to compose', () => {
    expect(composeSupergraph([])).toEqual({ ok: false, errors: [{ message: 'no subgraphs to compose' }] });
  });

  it('can switch off resolvability validation for graphs it wrongly rejects', () => {
    // Thing.owner is an entity no subgraph can resolve: rejected unless validation is off.
    const unresolvable: SubgraphInput[] = [
      {
        name: 'things',
        routingUrl: 'http://t/graphql',
        sdl: 'type Query { thing: Thing } type Thing { id: ID! owner: Owner } type Owner @key(fields: "id", resolvable: false) { id: ID! }',
      },
      {
        name: 'owners',
        routingUrl: 'http://o/graphql',
        sdl: 'type Owner @key(fields: "id", resolvable: false) { id: ID! name: String! }',
      },
    ];

    expect(composeSupergraph(unresolvable).ok).toBe(false);
    expect(composeSupergraph(unresolvable, { disableResolvabilityValidation: true }).ok).toBe(true);
  });
});
