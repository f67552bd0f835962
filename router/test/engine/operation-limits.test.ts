/**
 * Operation limits at the gateway (engine/limits.ts): each limit refuses with its code and reason
 * before anything is planned, and lets ordinary operations through. No subgraph is called: every
 * operation here is refused or only prepared.
 */
import { describe, expect, it } from '@jest/globals';
import { getIntrospectionQuery } from 'graphql';
import { DEFAULT_OPERATION_LIMITS } from '../../src/config/defaults.js';
import type { OperationLimits } from '../../src/config/types.js';
import { createGateway, type GatewayOptions } from '../../src/engine/gateway.js';
import { operationTypeOf, scanDocument, type RejectReason } from '../../src/engine/limits.js';
import type { PreparedRequest } from '../../src/engine/types.js';

const SCHEMA = `
  schema { query: Query mutation: Mutation subscription: Subscription }
  type Query { hello: String user(id: ID!): User users: [User!]! matrix: [[User]] }
  type User { id: ID! name: String role: Role friends: [User!]! best: User }
  enum Role { ADMIN MEMBER }
  input UserInput { name: String role: Role }
  type Mutation { setHello(to: String!): String addUser(input: UserInput): User }
  type Subscription { ticks: Int }
`;

function executionConfig(): unknown {
  const url = 'http://127.0.0.1:9/graphql';
  return {
    engineConfig: {
      graphqlSchema: SCHEMA,
      datasourceConfigurations: [
        {
          id: '0',
          rootNodes: [
            { typeName: 'Query', fieldNames: ['hello', 'user', 'users', 'matrix'] },
            { typeName: 'Mutation', fieldNames: ['setHello', 'addUser'] },
            { typeName: 'User', fieldNames: ['id', 'name', 'role', 'friends', 'best'] },
          ],
          customGraphql: { fetch: { url: { staticVariableContent: url }, method: 'POST' } },
        },
      ],
    },
    subgraphs: [{ id: '0', name: 'users', routingUrl: url }],
  };
}

function limitsWith(overrides: {
  parserLimits?: Partial<OperationLimits['parserLimits']>;
  complexityLimits?: Partial<OperationLimits['complexityLimits']>;
  costAnalysis?: Partial<OperationLimits['costAnalysis']>;
  other?: Partial<Omit<OperationLimits, 'parserLimits' | 'complexityLimits' | 'costAnalysis'>>;
}): OperationLimits {
  const d = DEFAULT_OPERATION_LIMITS;
  return {
    ...d,
    ...overrides.other,
    parserLimits: { ...d.parserLimits, ...overrides.parserLimits },
    complexityLimits: { ...d.complexityLimits, ...overrides.complexityLimits },
    costAnalysis: { ...d.costAnalysis, ...overrides.costAnalysis },
  };
}

function gatewayWith(options: GatewayOptions = {}) {
  const rejected: RejectReason[] = [];
  const gateway = createGateway(executionConfig(), {
    ...options,
    onRejected: (reason) => {
      rejected.push(reason);
      options.onRejected?.(reason);
    },
  });
  return { gateway, rejected };
}

function errorsOf(prepared: PreparedRequest) {
  if (prepared.kind !== 'errors')
    throw new Error(`expected errors, got a prepared ${prepared.operationKind}`);
  return prepared.errors;
}

const codeOf = (prepared: PreparedRequest) => errorsOf(prepared)[0]?.extensions?.code;

const nested = (levels: number) =>
  `{ user(id: "1") { ${'best { '.repeat(levels)}id${' }'.repeat(levels)} } }`;
const aliases = (n: number, field = '__typename') =>
  `{ ${Array.from({ length: n }, (_, i) => `a${i}: ${field}`).join(' ')} }`;

describe('operation limits: defaults', () => {
  it('an ordinary query, GraphiQL introspection and a mutation pass the defaults', () => {
    const { gateway, rejected } = gatewayWith();
    for (const query of [
      '{ users { id name friends { id name best { name } } } }',
      getIntrospectionQuery({ descriptions: true, specifiedByUrl: true, inputValueDeprecation: true }),
      'mutation { setHello(to: "x") }',
      nested(50),
      aliases(1000),
    ])
      expect(gateway.prepare({ query }).kind).toBe('operation');
    expect(rejected).toEqual([]);
  });

  it('a 5,000-deep query gets MAX_DEPTH_EXCEEDED, never the text of a stack overflow', () => {
    const { gateway, rejected } = gatewayWith();
    const errors = errorsOf(gateway.prepare({ query: nested(5000) }));
    expect(errors).toEqual([
      {
        message:
          'The operation is nested more than 200 levels deep (security.parser_limits.approximate_depth_limit).',
        extensions: { code: 'MAX_DEPTH_EXCEEDED' },
      },
    ]);
    expect(rejected).toEqual(['depth']);
  });

  it('deep nesting in argument values counts too (the parser recurses into them)', () => {
    const { gateway } = gatewayWith();
    const value = '['.repeat(5000) + ']'.repeat(5000);
    expect(codeOf(gateway.prepare({ query: `{ user(id: ${value}) { id } }` }))).toBe('MAX_DEPTH_EXCEEDED');
  });

  it('with the depth limit off, a document nested beyond the stack is still a clear refusal', () => {
    const { gateway } = gatewayWith({
      limits: limitsWith({ parserLimits: { approximateDepthLimit: 0, maxTokens: 0 } }),
    });
    const errors = errorsOf(gateway.prepare({ query: nested(20_000) }));
    expect(errors[0]!.extensions?.code).toBe('MAX_DEPTH_EXCEEDED');
    expect(errors[0]!.message).not.toMatch(/call stack/);
  });

  it('depth accumulates through fragments (each short, chained 300 deep)', () => {
    const { gateway } = gatewayWith();
    const fragments = Array.from(
      { length: 300 },
      (_, i) => `fragment F${i} on User { best { ${i < 299 ? `...F${i + 1}` : 'id'} } }`,
    ).join('\n');
    const query = `{ user(id: "1") { ...F0 } }\n${fragments}`;
    expect(codeOf(gateway.prepare({ query }))).toBe('MAX_DEPTH_EXCEEDED');
  });

  it('10,000 aliases are refused by the field limit before validation or planning', () => {
    const { gateway, rejected } = gatewayWith();
    const errors = errorsOf(gateway.prepare({ query: aliases(10_000) }));
    expect(errors).toEqual([
      {
        message:
          'The operation document selects 10000 fields (fragments counted where they are spread), more than the 3500 allowed (security.parser_limits.total_fields_limit).',
        extensions: { code: 'MAX_FIELDS_EXCEEDED' },
      },
    ]);
    expect(rejected).toEqual(['total_fields']);
  });

  it('10,000 aliases of a field with arguments are refused by the token limit', () => {
    const { gateway, rejected } = gatewayWith();
    expect(codeOf(gateway.prepare({ query: aliases(10_000, 'user(id: "1") { id }') }))).toBe(
      'MAX_TOKENS_EXCEEDED',
    );
    expect(rejected).toEqual(['tokens']);
  });

  it('a fragment bomb (small text, exponential expansion) is refused, quickly', () => {
    const { gateway } = gatewayWith();
    const levels = Array.from(
      { length: 30 },
      (_, i) => `fragment L${i} on User { a: best { ...L${i + 1} } b: best { ...L${i + 1} } }`,
    ).join('\n');
    const query = `{ user(id: "1") { ...L0 } }\n${levels}\nfragment L30 on User { id }`;
    const started = Date.now();
    const errors = errorsOf(gateway.prepare({ query }));
    expect(errors[0]!.extensions?.code).toBe('MAX_FIELDS_EXCEEDED');
    expect(errors[0]!.message).toMatch(/^The operation document selects \d+ fields/);
    // Measured once per fragment: no walk of the 2^30 expanded fields.
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('a document over max_document_size is refused before it is lexed', () => {
    const { gateway, rejected } = gatewayWith();
    const query = `{ hello }${' '.repeat(1_000_000)}`;
    expect(errorsOf(gateway.prepare({ query }))).toEqual([
      {
        message:
          'The operation document is 1,000,009 bytes, more than the 1,000,000 bytes allowed (security.parser_limits.max_document_size).',
        extensions: { code: 'OPERATION_TOO_LARGE' },
      },
    ]);
    expect(rejected).toEqual(['document_size']);
    // Not kept: its text would be the key of a cache entry.
    expect(gateway.cacheStats().entries).toBe(0);
  });

  it('the nested-list cost estimate refuses what would fan out to 10^5 objects and more', () => {
    const { gateway, rejected } = gatewayWith();
    const lists = (n: number) => `{ users { ${'friends { '.repeat(n - 1)}id${' }'.repeat(n - 1)} } }`;
    expect(gateway.prepare({ query: lists(4) }).kind).toBe('operation'); // 11,110
    const errors = errorsOf(gateway.prepare({ query: lists(5) })); // 111,110
    expect(errors).toEqual([
      {
        message:
          'The estimated query cost 111110 exceeds the maximum allowed static cost 100000 (security.cost_analysis.static_limit).',
        extensions: { code: 'COST_LIMIT_EXCEEDED' },
      },
    ]);
    expect(rejected).toEqual(['cost']);
  });

  it('an operation name longer than 512 characters is refused', () => {
    const { gateway, rejected } = gatewayWith();
    const name = 'Q'.repeat(513);
    expect(codeOf(gateway.prepare({ query: `query ${name} { hello }`, operationName: name }))).toBe(
      'OPERATION_NAME_TOO_LONG',
    );
    expect(rejected).toEqual(['operation_name_length']);
  });

  it('a refusal served from the cache is counted again', () => {
    const { gateway, rejected } = gatewayWith();
    for (let i = 0; i < 3; i++) gateway.prepare({ query: nested(5000) });
    expect(rejected).toEqual(['depth', 'depth', 'depth']);
  });
});

describe('operation limits: configured', () => {
  it('max_tokens', () => {
    const { gateway } = gatewayWith({ limits: limitsWith({ parserLimits: { maxTokens: 10 } }) });
    expect(gateway.prepare({ query: '{ a: hello b: hello }' }).kind).toBe('operation');
    expect(errorsOf(gateway.prepare({ query: aliases(5, 'hello') }))).toEqual([
      {
        message: 'The operation document has more than 10 tokens (security.parser_limits.max_tokens).',
        extensions: { code: 'MAX_TOKENS_EXCEEDED' },
      },
    ]);
  });

  it('complexity_limits.depth, fragments expanded', () => {
    const { gateway, rejected } = gatewayWith({ limits: limitsWith({ complexityLimits: { depth: 3 } }) });
    expect(gateway.prepare({ query: '{ user(id: "1") { best { id } } }' }).kind).toBe('operation');
    const query = '{ user(id: "1") { ...F } } fragment F on User { best { best { id } } }';
    expect(errorsOf(gateway.prepare({ query }))).toEqual([
      {
        message:
          'The operation has a depth of 4, more than the 3 allowed (security.complexity_limits.depth).',
        extensions: { code: 'MAX_DEPTH_EXCEEDED' },
      },
    ]);
    expect(rejected).toEqual(['depth']);
  });

  it('complexity_limits.total_fields counts each spread of a fragment', () => {
    const { gateway } = gatewayWith({ limits: limitsWith({ complexityLimits: { totalFields: 6 } }) });
    const fragment = 'fragment F on User { id name }';
    expect(
      gateway.prepare({ query: `{ a: user(id: "1") { ...F } b: user(id: "2") { ...F } } ${fragment}` }).kind,
    ).toBe('operation');
    const query = `{ a: user(id: "1") { ...F } b: user(id: "2") { ...F } c: user(id: "3") { ...F } } ${fragment}`;
    expect(codeOf(gateway.prepare({ query }))).toBe('MAX_FIELDS_EXCEEDED');
  });

  it('complexity_limits.root_fields and root_field_aliases', () => {
    const { gateway, rejected } = gatewayWith({
      limits: limitsWith({ complexityLimits: { rootFields: 3, rootFieldAliases: 1 } }),
    });
    expect(gateway.prepare({ query: '{ hello a: hello users { id } }' }).kind).toBe('operation');
    expect(codeOf(gateway.prepare({ query: '{ hello a: hello b: hello c: hello }' }))).toBe(
      'MAX_ROOT_FIELDS_EXCEEDED',
    );
    // Root fields reached through fragments count as root fields.
    expect(codeOf(gateway.prepare({ query: '{ a: hello ... on Query { b: hello } }' }))).toBe(
      'MAX_ROOT_FIELD_ALIASES_EXCEEDED',
    );
    expect(rejected).toEqual(['root_fields', 'root_field_aliases']);
  });

  it('only the executed operation of a document is measured against the complexity limits', () => {
    const { gateway } = gatewayWith({ limits: limitsWith({ complexityLimits: { rootFields: 1 } }) });
    const query = 'query Small { hello } query Big { hello users { id } }';
    expect(gateway.prepare({ query, operationName: 'Small' }).kind).toBe('operation');
    expect(codeOf(gateway.prepare({ query, operationName: 'Big' }))).toBe('MAX_ROOT_FIELDS_EXCEEDED');
  });

  it('cost_analysis: list_size and static_limit; 0 computes without refusing', () => {
    const strict = gatewayWith({ limits: limitsWith({ costAnalysis: { staticLimit: 20, listSize: 4 } }) });
    // users: 4 x (1 + friends: 4 x 1) = 20
    expect(strict.gateway.prepare({ query: '{ users { friends { id } } }' }).kind).toBe('operation');
    // A nested list multiplies per level: matrix is 4 x 4 = 16, users 20.
    expect(codeOf(strict.gateway.prepare({ query: '{ users { friends { id } } matrix { id } }' }))).toBe(
      'COST_LIMIT_EXCEEDED',
    );
    const off = gatewayWith({ limits: limitsWith({ costAnalysis: { staticLimit: 0 } }) });
    const deep = `{ users { ${'friends { '.repeat(8)}id${' }'.repeat(8)} } }`;
    expect(off.gateway.prepare({ query: deep }).kind).toBe('operation');
  });

  it('block_mutations and block_subscriptions', () => {
    const { gateway, rejected } = gatewayWith({
      limits: limitsWith({ other: { blockMutations: true, blockSubscriptions: true } }),
    });
    expect(gateway.prepare({ query: '{ hello }' }).kind).toBe('operation');
    expect(errorsOf(gateway.prepare({ query: 'mutation { setHello(to: "x") }' }))).toEqual([
      {
        message: 'Mutations are not allowed on this router (security.block_mutations).',
        extensions: { code: 'OPERATION_BLOCKED' },
      },
    ]);
    expect(codeOf(gateway.prepare({ query: 'subscription { ticks }' }))).toBe('OPERATION_BLOCKED');
    expect(rejected).toEqual(['mutation_blocked', 'subscription_blocked']);
  });
});

describe('introspection and suggestions', () => {
  it('introspection: { enabled: false } refuses __schema and __type, keeps __typename', () => {
    const { gateway, rejected } = gatewayWith({ introspection: false });
    expect(gateway.prepare({ query: '{ __typename hello }' }).kind).toBe('operation');
    expect(errorsOf(gateway.prepare({ query: '{ __schema { types { name } } }' }))).toEqual([
      {
        message:
          'GraphQL introspection is disabled on this router (introspection.enabled), but the query contained the field "__schema".',
        locations: [{ line: 1, column: 3 }],
        extensions: { code: 'INTROSPECTION_DISABLED' },
      },
    ]);
    const viaFragment = '{ ...I } fragment I on Query { __type(name: "User") { name } }';
    expect(codeOf(gateway.prepare({ query: viaFragment }))).toBe('INTROSPECTION_DISABLED');
    expect(codeOf(gateway.prepare({ query: getIntrospectionQuery() }))).toBe('INTROSPECTION_DISABLED');
    expect(rejected).toEqual(['introspection', 'introspection', 'introspection']);
  });

  it('introspection is served by default', () => {
    const { gateway } = gatewayWith();
    expect(gateway.prepare({ query: '{ __schema { queryType { name } } }' }).kind).toBe('operation');
  });

  it('"Did you mean ...?" is removed from validation and variable errors, with their locations kept', () => {
    const { gateway } = gatewayWith();
    expect(errorsOf(gateway.prepare({ query: '{ user(id: "1") { nme } }' }))).toEqual([
      { message: 'Cannot query field "nme" on type "User".', locations: [{ line: 1, column: 19 }] },
    ]);
    expect(errorsOf(gateway.prepare({ query: '{ usr(id: "1") { id } }' }))[0]!.message).toBe(
      'Cannot query field "usr" on type "Query".',
    );
    const variables = errorsOf(
      gateway.prepare({
        query: 'mutation ($input: UserInput) { addUser(input: $input) { id } }',
        variables: { input: { role: 'ADMN' } },
      }),
    );
    expect(variables).toHaveLength(1);
    expect(variables[0]!.message).toMatch(/^Variable "\$input" got invalid value "ADMN" at "input.role"; /);
    expect(variables[0]!.message).not.toMatch(/Did you mean|ADMIN/);
    expect(variables[0]!.locations).toEqual([{ line: 1, column: 11 }]);
  });

  it('security.field_suggestions.enabled keeps them', () => {
    const { gateway } = gatewayWith({ limits: limitsWith({ other: { fieldSuggestions: true } }) });
    expect(errorsOf(gateway.prepare({ query: '{ user(id: "1") { nme } }' }))[0]!.message).toBe(
      'Cannot query field "nme" on type "User". Did you mean "name"?',
    );
  });

  it('a syntax error keeps graphql-js wording and its location', () => {
    const { gateway } = gatewayWith();
    expect(errorsOf(gateway.prepare({ query: '{ hello' }))).toEqual([
      { message: 'Syntax Error: Expected Name, found <EOF>.', locations: [{ line: 1, column: 8 }] },
    ]);
  });
});

describe('internal errors', () => {
  it('a failure inside the gateway reaches the client as INTERNAL_SERVER_ERROR only', () => {
    const { gateway } = gatewayWith({
      onRejected: () => {
        throw new Error('secret detail: /etc/passwd');
      },
    });
    expect(errorsOf(gateway.prepare({ query: nested(5000) }))).toEqual([
      { message: 'Internal server error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } },
    ]);
  });
});

describe('the lexer-only scan', () => {
  it('finds the type of the named or only operation without parsing', () => {
    expect(operationTypeOf('{ hello }', null)).toBe('query');
    expect(operationTypeOf('subscription S($a: [Int] = [1]) @x { ticks }', undefined)).toBe('subscription');
    const two = 'query Q { hello } fragment F on Query { hello } mutation M { setHello(to: "x") }';
    expect(operationTypeOf(two, 'M')).toBe('mutation');
    expect(operationTypeOf(two, 'Q')).toBe('query');
    expect(operationTypeOf(two, null)).toBeUndefined();
    expect(operationTypeOf('# comment\nmutation { a }', null)).toBe('mutation');
    expect(operationTypeOf(nested(100_000), null)).toBe('query');
  });

  it('counts tokens as graphql-js does (comments excluded) and stops at the first limit', () => {
    const scanned = scanDocument('# a comment\n{ a: hello }');
    expect(scanned).toEqual({ tokens: 5, operations: [{ type: 'query' }] });
    expect(scanDocument('{ a { b { c } } }', { maxDepth: 2 })).toMatchObject({ reason: 'depth' });
    expect(scanDocument('{ a b c }', { maxTokens: 3 })).toMatchObject({ reason: 'tokens' });
  });
});
