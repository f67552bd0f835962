/**
 * The `security` section: Cosmo's operation limits as written, checked and turned into the
 * `OperationLimits` the engine enforces before planning (engine/limits.ts). Each number 0 = off.
 */
import { DEFAULT_OPERATION_LIMITS } from './defaults.js';
import type { Issues } from './issues.js';
import type { ComplexityLimitFile, OperationLimits, SecurityFile } from './types.js';
import { parseByteSize } from './units.js';

/**
 * A complexity limit applies when `enabled` with a `limit` above 0, as in Cosmo; one of the two
 * without the other is refused here rather than silently doing nothing.
 */
export function securityConfig(file: SecurityFile, issues: Issues): OperationLimits {
  const defaults = DEFAULT_OPERATION_LIMITS;
  const count = (path: string, value: number | undefined, fallback: number): number => {
    if (value === undefined) return fallback;
    if (value < 0) issues.push({ path, message: `must be 0 (no limit) or more (got ${value})` });
    return value;
  };
  const complexity = (key: string, limit: ComplexityLimitFile | undefined): number => {
    if (!limit) return 0;
    const path = `security.${key}`;
    const value = count(`${path}.limit`, limit.limit, 0);
    if (limit.enabled === true && value === 0)
      issues.push({ path: `${path}.limit`, message: 'is required above 0 when enabled is true' });
    if (limit.enabled === undefined && limit.limit !== undefined)
      issues.push({
        path: `${path}.enabled`,
        message:
          'must be true for the limit to apply (as in Cosmo, a limit alone is off); set enabled: true or remove the limit',
      });
    return limit.enabled === true ? value : 0;
  };
  const limits = file.complexity_limits ?? {};
  if (file.depth_limit && limits.depth)
    issues.push({
      path: 'security.depth_limit',
      message: 'is the deprecated spelling of security.complexity_limits.depth; set only one',
    });
  const parser = file.parser_limits ?? {};
  let maxDocumentSizeBytes = defaults.parserLimits.maxDocumentSizeBytes;
  if (parser.max_document_size !== undefined) {
    const parsed = parseByteSize(parser.max_document_size);
    if (parsed.ok) maxDocumentSizeBytes = parsed.value;
    else issues.push({ path: 'security.parser_limits.max_document_size', message: parsed.message });
  }
  const cost = file.cost_analysis ?? {};
  const listSize = count('security.cost_analysis.list_size', cost.list_size, defaults.costAnalysis.listSize);
  if (listSize === 0)
    issues.push({ path: 'security.cost_analysis.list_size', message: 'must be at least 1 (got 0)' });
  return {
    parserLimits: {
      maxDocumentSizeBytes,
      maxTokens: count(
        'security.parser_limits.max_tokens',
        parser.max_tokens,
        defaults.parserLimits.maxTokens,
      ),
      approximateDepthLimit: count(
        'security.parser_limits.approximate_depth_limit',
        parser.approximate_depth_limit,
        defaults.parserLimits.approximateDepthLimit,
      ),
      totalFieldsLimit: count(
        'security.parser_limits.total_fields_limit',
        parser.total_fields_limit,
        defaults.parserLimits.totalFieldsLimit,
      ),
    },
    complexityLimits: {
      depth: file.depth_limit
        ? complexity('depth_limit', file.depth_limit)
        : complexity('complexity_limits.depth', limits.depth),
      totalFields: complexity('complexity_limits.total_fields', limits.total_fields),
      rootFields: complexity('complexity_limits.root_fields', limits.root_fields),
      rootFieldAliases: complexity('complexity_limits.root_field_aliases', limits.root_field_aliases),
    },
    costAnalysis: {
      enabled: cost.enabled ?? defaults.costAnalysis.enabled,
      staticLimit: count(
        'security.cost_analysis.static_limit',
        cost.static_limit,
        defaults.costAnalysis.staticLimit,
      ),
      listSize,
    },
    operationNameLengthLimit: count(
      'security.operation_name_length_limit',
      file.operation_name_length_limit,
      defaults.operationNameLengthLimit,
    ),
    blockMutations: file.block_mutations?.enabled ?? defaults.blockMutations,
    blockSubscriptions: file.block_subscriptions?.enabled ?? defaults.blockSubscriptions,
    fieldSuggestions: file.field_suggestions?.enabled ?? defaults.fieldSuggestions,
  };
}
