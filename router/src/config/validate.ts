/**
 * The structural step of the loader: `router.yaml` against its JSON Schema (config/schema.ts),
 * with Ajv's errors reworded for a person (`unknown key (did you mean "listen_addr"?)`, `must be
 * an integer`), and the two adjustments made before it (empty keys dropped, `${NAME}` values typed).
 *
 * Invariant: one issue per key and message, in the order Ajv finds them.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { pathKey } from './env.js';
import { formatPath, type ConfigIssue } from './issues.js';
import { routerConfigSchema, type Schema } from './schema.js';

const ajv = new Ajv({ allErrors: true, verbose: true, strict: true });
const validate = ajv.compile(routerConfigSchema);

/** What is structurally wrong with `data`; empty when it fits the schema. */
export function schemaIssues(data: unknown): ConfigIssue[] {
  return validate(data) ? [] : describe(validate.errors ?? []);
}

const TYPE_NAMES: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  boolean: 'a boolean (true or false)',
  integer: 'an integer',
  number: 'a number',
};

function describe(errors: ErrorObject[]): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    const at = pointerToSegments(e.instancePath);
    const parent = e.parentSchema as Schema | undefined;
    let issue: ConfigIssue;
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = (e.params as { additionalProperty: string }).additionalProperty;
        const allowed = Object.keys(parent?.properties ?? {});
        const guess = closest(key, allowed);
        issue = {
          path: formatPath([...at, key]),
          message: `unknown key${guess ? ` (did you mean "${guess}"?)` : ''}; allowed keys here: ${allowed.join(', ')}`,
        };
        break;
      }
      case 'required': {
        const key = (e.params as { missingProperty: string }).missingProperty;
        const path = formatPath([...at, key]);
        issue = { path, message: `is required${REQUIRED_HINTS[path] ?? ''}` };
        break;
      }
      case 'type': {
        const type = String((e.params as { type: string }).type);
        issue = { path: formatPath(at), message: `must be ${TYPE_NAMES[type] ?? type}` };
        break;
      }
      case 'enum':
        issue = {
          path: formatPath(at),
          message: `must be one of ${(parent?.enum ?? []).map((v) => JSON.stringify(v)).join(', ')} (got ${JSON.stringify(e.data)})`,
        };
        break;
      case 'minProperties':
      case 'maxProperties':
        issue = {
          path: formatPath(at),
          message: `must set exactly one of: ${Object.keys(parent?.properties ?? {}).join(', ')}`,
        };
        break;
      case 'minItems':
      case 'minLength':
        issue = { path: formatPath(at), message: 'must not be empty' };
        break;
      default:
        issue = { path: formatPath(at), message: e.message ?? 'is invalid' };
    }
    const key = `${issue.path}\n${issue.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      issues.push(issue);
    }
  }
  return issues;
}

const REQUIRED_HINTS: Record<string, string> = {
  execution_config:
    ' (the composed execution config to serve, e.g. execution_config: { file: { path: ./config.json } }; create one with "edfs compose")',
  'execution_config.file': ' (e.g. execution_config: { file: { path: ./config.json } })',
};

/** A value that was exactly `${NAME}` takes the type the schema wants there ("true" -> true). */
export function coerceWholeReferences(
  value: unknown,
  schema: Schema | undefined,
  path: (string | number)[],
  refs: Set<string>,
): unknown {
  if (!schema) return value;
  if (typeof value === 'string' && refs.has(pathKey(path))) {
    if (schema.type === 'boolean' && /^(true|false)$/i.test(value)) return value.toLowerCase() === 'true';
    if ((schema.type === 'integer' || schema.type === 'number') && /^-?\d+(\.\d+)?$/.test(value))
      return Number(value);
    return value;
  }
  if (Array.isArray(value))
    return value.map((v, i) => coerceWholeReferences(v, schema.items, [...path, i], refs));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value))
      out[k] = coerceWholeReferences(v, schema.properties?.[k], [...path, k], refs);
    return out;
  }
  return value;
}

/** An empty YAML key (`events:`) means "not set", as it does for Cosmo. */
export function dropNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropNulls);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = dropNulls(v);
    return out;
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Paths and suggestions

function pointerToSegments(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}
