/**
 * Evaluates `@openfed__subscriptionFilter` conditions, in the shape the execution config carries
 * them (`engineConfig.fieldConfigurations[].subscriptionFilterCondition`, protobuf JSON):
 *
 *   { in:  { fieldPath: ["dept", "id"], json: "[1, \"{{ args.ids }}\"]" } }
 *   { and: [cond, ...] } | { or: [cond, ...] } | { not: cond }
 *
 * Compiled once per field when the config loads (so a malformed condition fails there, with the
 * path inside the condition), then evaluated per event and group. `bind(args)` precomputes the
 * value sets of one group, so per event the cost is one lookup per IN.
 *
 * Matching: IN holds when the value at `fieldPath` in the event data equals one of the values.
 * Numbers and numeric strings compare by numeric value (an ID "1" matches 1, "1.50" matches 1.5);
 * strings, booleans and null otherwise compare strictly by type. A missing field, or an object or
 * list at the path, matches nothing. A value written as exactly `"{{ args.x }}"` expands to the
 * argument: a list is spread into the set (two list arguments merge into one set), an absent
 * argument adds nothing, an explicit null adds null. A string mixing text and templates
 * (`"user-{{ args.id }}"`) renders to strings, one per combination of list elements.
 *
 * Invariants: pure; `matches` never throws for any data or arguments.
 */

/** `subscriptionFilterCondition` as written by `@wundergraph/cosmo-shared`. */
export interface SubscriptionFilterConditionJson {
  in?: { fieldPath: string[]; json: string };
  and?: SubscriptionFilterConditionJson[];
  or?: SubscriptionFilterConditionJson[];
  not?: SubscriptionFilterConditionJson;
}

/** A condition that cannot be evaluated; `path` locates it inside the condition. */
export class FilterError extends Error {
  override name = 'FilterError';
  constructor(
    message: string,
    /** Where inside the condition, e.g. `condition.and[1].not.in.json`. */
    readonly path: string,
  ) {
    super(message);
  }
}

export interface CompiledFilter {
  /** Whether the event `data` (the subscription field's object, e.g. `{__typename, id}`) passes. */
  matches(data: unknown, args: Readonly<Record<string, unknown>>): boolean;
  /** The same predicate with one group's arguments applied once. */
  bind(args: Readonly<Record<string, unknown>>): (data: unknown) => boolean;
  /** Every field path the filter reads from the data (deduplicated), so they can be fetched. */
  fieldPaths(): string[][];
  /** Every argument path the filter reads (deduplicated), e.g. `[['ids'], ['input', 'tag']]`. */
  argumentPaths(): string[][];
}

export interface CompileOptions {
  /** Names the filter's owner in errors, e.g. `Subscription.employeeUpdated`. */
  field?: string;
}

/** Validates a condition once and returns its evaluator. Throws FilterError naming the bad part. */
export function compileFilter(condition: unknown, options: CompileOptions = {}): CompiledFilter {
  const prefix = options.field ? `subscription filter of ${options.field}: ` : 'subscription filter: ';
  const fieldPaths = new PathSet();
  const argumentPaths = new PathSet();
  const root = compileNode(condition, 'condition', { prefix, fieldPaths, argumentPaths });
  const bind = (args: Readonly<Record<string, unknown>>): ((data: unknown) => boolean) => {
    const predicate = bindNode(root, args ?? {});
    return (data) => predicate(data);
  };
  return {
    matches: (data, args) => bind(args)(data),
    bind,
    fieldPaths: () => fieldPaths.list(),
    argumentPaths: () => argumentPaths.list(),
  };
}

// ---------------------------------------------------------------------------------------------
// Compiled form

type Node =
  | { kind: 'in'; fieldPath: string[]; values: ValueTemplate[] }
  | { kind: 'and' | 'or'; children: Node[] }
  | { kind: 'not'; child: Node };

type ValueTemplate =
  /** A literal; `key` undefined for objects/lists, which never match. */
  | { kind: 'static'; key: string | undefined }
  | { kind: 'argument'; path: string[] }
  /** Text and argument references concatenated into a string. */
  | { kind: 'interpolated'; parts: (string | string[])[] };

interface CompileContext {
  prefix: string;
  fieldPaths: PathSet;
  argumentPaths: PathSet;
}

const KEYS = ['in', 'and', 'or', 'not'] as const;
const EXACT_ARGUMENT = /^\{\{\s*args\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}$/;
const ANY_TEMPLATE = /\{\{(.*?)\}\}/g;
/** Upper bound of strings one interpolated value may render to (lists multiply). */
const MAX_INTERPOLATIONS = 1000;

function compileNode(raw: unknown, path: string, context: CompileContext): Node {
  const fail = (message: string, at = path): never => {
    throw new FilterError(`${context.prefix}${at}: ${message}`, at);
  };
  if (!isPlainObject(raw))
    return fail(`expected an object with one of "in", "and", "or", "not", got ${describe(raw)}`);

  for (const key of Object.keys(raw))
    if (!(KEYS as readonly string[]).includes(key))
      fail(`unknown key "${key}"; a condition has exactly one of "in", "and", "or", "not"`);
  const present = KEYS.filter((key) => raw[key] !== undefined && raw[key] !== null);
  if (present.length !== 1)
    fail(
      present.length === 0
        ? 'empty condition; it needs one of "in", "and", "or", "not"'
        : `a condition has exactly one of "in", "and", "or", "not", found ${present.map((k) => `"${k}"`).join(' and ')}`,
    );
  const key = present[0]!;
  const value = raw[key];
  const at = `${path}.${key}`;

  switch (key) {
    case 'and':
    case 'or': {
      if (!Array.isArray(value) || value.length === 0)
        return fail(`expected a non-empty list of conditions, got ${describe(value)}`, at);
      return { kind: key, children: value.map((child, i) => compileNode(child, `${at}[${i}]`, context)) };
    }
    case 'not':
      return { kind: 'not', child: compileNode(value, at, context) };
    case 'in':
      return compileIn(value, at, context);
  }
}

function compileIn(raw: unknown, path: string, context: CompileContext): Node {
  const fail = (message: string, at = path): never => {
    throw new FilterError(`${context.prefix}${at}: ${message}`, at);
  };
  if (!isPlainObject(raw)) return fail(`expected { fieldPath, json }, got ${describe(raw)}`);
  for (const key of Object.keys(raw))
    if (key !== 'fieldPath' && key !== 'json')
      fail(`unknown key "${key}"; an IN condition has "fieldPath" and "json"`);

  const fieldPath = raw['fieldPath'];
  if (
    !Array.isArray(fieldPath) ||
    fieldPath.length === 0 ||
    !fieldPath.every((segment): segment is string => typeof segment === 'string' && segment.length > 0)
  )
    return fail(`expected a non-empty list of field names, got ${describe(fieldPath)}`, `${path}.fieldPath`);

  const json = raw['json'];
  if (typeof json !== 'string')
    return fail(`expected a JSON text of the list of values, got ${describe(json)}`, `${path}.json`);
  let values: unknown;
  try {
    values = JSON.parse(json);
  } catch (error) {
    return fail(`is not valid JSON (${(error as Error).message}): ${json}`, `${path}.json`);
  }
  if (!Array.isArray(values)) return fail(`expected a JSON list of values, got ${json}`, `${path}.json`);

  context.fieldPaths.add(fieldPath);
  return {
    kind: 'in',
    fieldPath: [...fieldPath],
    values: values.map((value, i) => compileValue(value, `${path}.json[${i}]`, context)),
  };
}

function compileValue(value: unknown, path: string, context: CompileContext): ValueTemplate {
  if (typeof value !== 'string' || !value.includes('{{')) return { kind: 'static', key: keyOf(value) };

  const exact = EXACT_ARGUMENT.exec(value);
  if (exact) {
    const argumentPath = exact[1]!.split('.');
    context.argumentPaths.add(argumentPath);
    return { kind: 'argument', path: argumentPath };
  }

  const parts: (string | string[])[] = [];
  let last = 0;
  for (const match of value.matchAll(ANY_TEMPLATE)) {
    const reference = EXACT_ARGUMENT.exec(match[0]);
    if (!reference)
      throw new FilterError(
        `${context.prefix}${path}: "${match[0]}" is not supported; only "{{ args.NAME }}" (or "{{ args.NAME.FIELD }}") can be used`,
        path,
      );
    if (match.index > last) parts.push(value.slice(last, match.index));
    const argumentPath = reference[1]!.split('.');
    context.argumentPaths.add(argumentPath);
    parts.push(argumentPath);
    last = match.index + match[0].length;
  }
  if (last < value.length) parts.push(value.slice(last));
  const text = parts.filter((part): part is string => typeof part === 'string').join('');
  if (text.includes('{{') || text.includes('}}'))
    throw new FilterError(`${context.prefix}${path}: unclosed "{{" or stray "}}" in "${value}"`, path);
  return { kind: 'interpolated', parts };
}

// ---------------------------------------------------------------------------------------------
// Evaluation

type Predicate = (data: unknown) => boolean;

function bindNode(node: Node, args: Readonly<Record<string, unknown>>): Predicate {
  switch (node.kind) {
    case 'and': {
      const children = node.children.map((child) => bindNode(child, args));
      return (data) => children.every((child) => child(data));
    }
    case 'or': {
      const children = node.children.map((child) => bindNode(child, args));
      return (data) => children.some((child) => child(data));
    }
    case 'not': {
      const child = bindNode(node.child, args);
      return (data) => !child(data);
    }
    case 'in': {
      const keys = new Set<string>();
      for (const value of node.values) addKeys(value, args, keys);
      const { fieldPath } = node;
      return (data) => {
        const key = keyOf(valueAt(data, fieldPath));
        return key !== undefined && keys.has(key);
      };
    }
  }
}

function addKeys(value: ValueTemplate, args: Readonly<Record<string, unknown>>, keys: Set<string>): void {
  switch (value.kind) {
    case 'static':
      if (value.key !== undefined) keys.add(value.key);
      return;
    case 'argument':
      spread(valueAt(args, value.path), keys);
      return;
    case 'interpolated':
      for (const text of interpolate(value.parts, args)) keys.add(keyOf(text)!);
      return;
  }
}

/** Adds an argument's value: lists (nested too) spread, objects and absent values add nothing. */
function spread(value: unknown, keys: Set<string>): void {
  if (Array.isArray(value)) for (const element of value) spread(element, keys);
  else {
    const key = keyOf(value);
    if (key !== undefined) keys.add(key);
  }
}

function interpolate(
  parts: readonly (string | string[])[],
  args: Readonly<Record<string, unknown>>,
): string[] {
  let results = [''];
  for (const part of parts) {
    const texts = typeof part === 'string' ? [part] : textsOf(valueAt(args, part));
    const next: string[] = [];
    for (const prefix of results)
      for (const text of texts) {
        if (next.length >= MAX_INTERPOLATIONS) break;
        next.push(prefix + text);
      }
    results = next;
    if (results.length === 0) break;
  }
  return results;
}

/** The texts one argument contributes to an interpolated string (none when absent, null or an object). */
function textsOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(textsOf);
  if (typeof value === 'string') return [value];
  if (typeof value === 'number' && Number.isFinite(value)) return [String(value)];
  if (typeof value === 'boolean') return [String(value)];
  return [];
}

function valueAt(root: unknown, path: readonly string[]): unknown {
  let current = root;
  for (const segment of path) {
    if (!isPlainObject(current) || !Object.prototype.hasOwnProperty.call(current, segment)) return undefined;
    current = current[segment];
  }
  return current;
}

const INTEGER = /^-?(?:0|[1-9]\d*)$/;
const DECIMAL = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/**
 * The comparison key of a scalar: numbers and numeric strings share the `n:` space, so they match
 * by numeric value; other strings, booleans and null keep their type. Undefined for non-scalars.
 * Integer strings keep their digits (not Number()) so IDs beyond 2^53 do not collide.
 */
function keyOf(value: unknown): string | undefined {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      return Number.isFinite(value) ? `n:${Object.is(value, -0) ? 0 : value}` : undefined;
    case 'string':
      if (INTEGER.test(value)) return `n:${value === '-0' ? '0' : value}`;
      if (DECIMAL.test(value)) return `n:${Number(value)}`;
      return `s:${value}`;
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------------------------

class PathSet {
  private readonly seen = new Map<string, string[]>();
  add(path: readonly string[]): void {
    const key = JSON.stringify(path);
    if (!this.seen.has(key)) this.seen.set(key, [...path]);
  }
  list(): string[][] {
    return [...this.seen.values()].map((path) => [...path]);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}
