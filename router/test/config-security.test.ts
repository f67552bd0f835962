/**
 * router.yaml: the operation limits (`security`, Cosmo's shape), `introspection` and the document
 * cache (`engine`): defaults, Cosmo's spellings, and bad values refused at start naming the key.
 */
import { describe, expect, it } from '@jest/globals';
import { parseRouterConfig, RouterConfigError } from '../src/config/load.js';
import { DEFAULT_OPERATION_LIMITS } from '../src/config/defaults.js';

const minimal = 'execution_config: { file: { path: ./config.json } }\n';

function parse(yaml: string) {
  return parseRouterConfig(minimal + yaml, { env: {}, baseDir: '/srv/router' });
}

function messageOf(yaml: string): string {
  try {
    parse(yaml);
  } catch (err) {
    expect(err).toBeInstanceOf(RouterConfigError);
    return (err as RouterConfigError).message;
  }
  throw new Error('expected the configuration to be refused');
}

describe('router.yaml: security, introspection, engine', () => {
  it('defaults: parser limits, cost analysis and the operation name limit on; complexity limits off', () => {
    const config = parse('');
    expect(config.security).toEqual({
      parserLimits: {
        maxDocumentSizeBytes: 1_000_000,
        maxTokens: 50_000,
        approximateDepthLimit: 200,
        totalFieldsLimit: 3500,
      },
      complexityLimits: { depth: 0, totalFields: 0, rootFields: 0, rootFieldAliases: 0 },
      costAnalysis: { enabled: true, staticLimit: 100_000, listSize: 10 },
      operationNameLengthLimit: 512,
      blockMutations: false,
      blockSubscriptions: false,
      fieldSuggestions: false,
    });
    expect(config.security).toEqual(DEFAULT_OPERATION_LIMITS);
    expect(config.introspection).toEqual({ enabled: true });
    expect(config.engine).toEqual({
      executionPlanCacheSize: 1024,
      executionPlanCacheMemoryLimitBytes: 64 * 1024 * 1024,
    });
  });

  it("Cosmo's keys are read as Cosmo writes them", () => {
    const config = parse(`
security:
  block_mutations: { enabled: true }
  block_subscriptions: { enabled: false }
  complexity_calculation_cache: { enabled: true, size: 1024 }
  complexity_limits:
    depth: { enabled: true, limit: 12, ignore_persisted_operations: true }
    total_fields: { enabled: true, limit: 500 }
    root_fields: { enabled: false, limit: 3 }
    root_field_aliases: { enabled: true, limit: 4 }
  operation_name_length_limit: 0
  parser_limits: { approximate_depth_limit: 100, total_fields_limit: 1000, max_tokens: 5000, max_document_size: 256KiB }
  cost_analysis: { enabled: true, static_limit: 1500, list_size: 5 }
  field_suggestions: { enabled: true }
introspection: { enabled: false }
engine: { execution_plan_cache_size: 100, execution_plan_cache_memory_limit: 16MiB }
`);
    expect(config.security).toEqual({
      parserLimits: {
        maxDocumentSizeBytes: 256 * 1024,
        maxTokens: 5000,
        approximateDepthLimit: 100,
        totalFieldsLimit: 1000,
      },
      complexityLimits: { depth: 12, totalFields: 500, rootFields: 0, rootFieldAliases: 4 },
      costAnalysis: { enabled: true, staticLimit: 1500, listSize: 5 },
      operationNameLengthLimit: 0,
      blockMutations: true,
      blockSubscriptions: false,
      fieldSuggestions: true,
    });
    expect(config.introspection).toEqual({ enabled: false });
    expect(config.engine).toEqual({
      executionPlanCacheSize: 100,
      executionPlanCacheMemoryLimitBytes: 16 * 1024 * 1024,
    });
  });

  it("Cosmo's deprecated spellings: introspection_enabled and security.depth_limit", () => {
    const config = parse(
      'introspection_enabled: false\nsecurity: { depth_limit: { enabled: true, limit: 7, cache_size: 10 } }',
    );
    expect(config.introspection).toEqual({ enabled: false });
    expect(config.security.complexityLimits.depth).toBe(7);
  });

  it('0 turns a parser limit off', () => {
    const config = parse(
      "security: { parser_limits: { approximate_depth_limit: 0, total_fields_limit: 0, max_tokens: 0, max_document_size: '0' } }",
    );
    expect(config.security.parserLimits).toEqual({
      maxDocumentSizeBytes: 0,
      maxTokens: 0,
      approximateDepthLimit: 0,
      totalFieldsLimit: 0,
    });
  });

  it.each([
    [
      'security: { parser_limits: { max_tokens: -1 } }',
      'security.parser_limits.max_tokens: must be 0 (no limit) or more (got -1)',
    ],
    [
      'security: { parser_limits: { max_tokens: "many" } }',
      'security.parser_limits.max_tokens: must be an integer',
    ],
    [
      'security: { parser_limits: { max_document_size: lots } }',
      'security.parser_limits.max_document_size: must be a size such as "5MB"',
    ],
    ['security: { parser_limits: { max_depth: 10 } }', 'security.parser_limits.max_depth: unknown key'],
    [
      'security: { complexity_limits: { depth: { enabled: true } } }',
      'security.complexity_limits.depth.limit: is required above 0 when enabled is true',
    ],
    [
      'security: { complexity_limits: { total_fields: { limit: 10 } } }',
      'security.complexity_limits.total_fields.enabled: must be true for the limit to apply',
    ],
    [
      'security: { complexity_limits: { height: { enabled: true, limit: 1 } } }',
      'security.complexity_limits.height: unknown key',
    ],
    [
      'security: { cost_analysis: { list_size: 0 } }',
      'security.cost_analysis.list_size: must be at least 1 (got 0)',
    ],
    [
      'security: { block_mutations: { enabled: true, condition: "true" } }',
      'security.block_mutations.condition: unknown key',
    ],
    [
      'security: { depth_limit: { enabled: true, limit: 3 }, complexity_limits: { depth: { enabled: true, limit: 4 } } }',
      'security.depth_limit: is the deprecated spelling of security.complexity_limits.depth; set only one',
    ],
    [
      'introspection: { enabled: true }\nintrospection_enabled: false',
      'introspection_enabled: contradicts introspection.enabled',
    ],
    ['introspection: { enabled: "no" }', 'introspection.enabled: must be a boolean'],
    ['introspection: { secret: x }', 'introspection.secret: unknown key'],
    [
      'engine: { execution_plan_cache_size: 0 }',
      'engine.execution_plan_cache_size: must be at least 1 (got 0)',
    ],
    [
      'engine: { execution_plan_cache_memory_limit: 0B }',
      'engine.execution_plan_cache_memory_limit: must be greater than zero',
    ],
  ])('%s is refused naming the key', (yaml, expected) => {
    expect(messageOf(yaml)).toContain(`router.yaml: ${expected}`);
  });
});
