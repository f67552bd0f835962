/**
 * Shape: the client's view of the response. Subgraph data is merged into one store (with extra
 * key/requirement fields and internal aliases); the shape walks it in the client's field order,
 * keeps only what the client asked for, answers __typename, rejects enum values the client schema
 * does not have, and applies GraphQL null propagation.
 * A fetch that failed leaves its fields out of the objects it was to complete and records why on
 * them (`addFailure`): the shape reports that error at each such field the client selected, with
 * the field's response path, as GraphQL execution reports a field error.
 * A field the client may not load (marked by authorization.ts through `denied`) is never read
 * from the store: it is null with its authorization error at its path, like a failed fetch's field.
 * Field lists per runtime type are computed once per plan, on first use.
 */
import {
  getNamedType,
  getNullableType,
  isAbstractType,
  isCompositeType,
  isEnumType,
  isListType,
  isNonNullType,
  isInterfaceType,
  isObjectType,
  type FieldNode,
  type GraphQLObjectType,
  type GraphQLOutputType,
  type GraphQLSchema,
  type SelectionSetNode,
} from 'graphql';
import type { GraphQLFormattedError } from 'graphql';
import { collectFields, subSelections, type Fragments } from './collect.js';
import type { Shape, ShapeField } from './plan.js';

export function buildShape(
  schema: GraphQLSchema,
  typeName: string,
  selectionSets: readonly SelectionSetNode[],
  fragments: Fragments,
  variables: Record<string, unknown>,
  /** Field nodes the client may not load, with the error each answers. */
  denied?: ReadonlyMap<FieldNode, GraphQLFormattedError>,
): Shape {
  const cache = new Map<string, ShapeField[]>();
  return {
    typeName,
    fieldsFor(runtimeType: string): ShapeField[] {
      let fields = cache.get(runtimeType);
      if (fields) return fields;
      const type = schema.getType(runtimeType);
      fields = [];
      if (type && (isObjectType(type) || isInterfaceType(type))) {
        const runtime = type as GraphQLObjectType;
        for (const [key, nodes] of collectFields(schema, runtime, selectionSets, fragments, variables)) {
          const name = nodes[0]!.name.value;
          if (name === '__typename') {
            fields.push({ kind: 'typename', responseKey: key });
            continue;
          }
          if (name === '__schema' || name === '__type') {
            fields.push({ kind: 'raw', responseKey: key });
            continue;
          }
          const def = type.getFields()[name];
          if (!def) continue;
          const unauthorized = denied && deniedNode(denied, nodes);
          const named = getNamedType(def.type);
          fields.push({
            kind: 'field',
            responseKey: key,
            storeKey: key,
            parentType: type.name,
            fieldName: name,
            type: def.type,
            // A denied field is never read, so it has no sub-shape.
            ...(unauthorized
              ? { unauthorized }
              : {
                  shape: isCompositeType(named)
                    ? buildShape(schema, named.name, subSelections(nodes), fragments, variables, denied)
                    : undefined,
                }),
          });
        }
      }
      cache.set(runtimeType, fields);
      return fields;
    },
  };
}

/** The error of the first of `nodes` the client may not load (any one keeps the field unfetched). */
function deniedNode(
  denied: ReadonlyMap<FieldNode, GraphQLFormattedError>,
  nodes: readonly FieldNode[],
): GraphQLFormattedError | undefined {
  for (const node of nodes) {
    const error = denied.get(node);
    if (error) return error;
  }
  return undefined;
}

/** A fetch that failed for an object: the fields it was to fill there, and why they are missing. */
export interface FetchFailure {
  /** Store keys of the fields the fetch selects on the object. */
  keys: ReadonlySet<string>;
  /**
   * The fetch's error, without a path: reported at each of those fields the client selected.
   * Absent when the subgraph's own errors, already reported, explain the missing fields.
   */
  error?: GraphQLFormattedError;
}

/** Under this key an object holds its FetchFailures (merged data holds string keys only). */
const FAILED = Symbol('edfs.fetchFailed');
type WithFailures = { [FAILED]?: FetchFailure[] };

export function addFailure(obj: object, failure: FetchFailure): void {
  ((obj as WithFailures)[FAILED] ??= []).push(failure);
}

export function failuresOf(obj: object): readonly FetchFailure[] | undefined {
  return (obj as WithFailures)[FAILED];
}

/** The failure that explains why `key` is missing on an object: the one whose fetch selects it. */
export function failureFor(failures: readonly FetchFailure[], key: string): FetchFailure {
  return failures.find((f) => f.keys.has(key)) ?? failures[0]!;
}

const PROPAGATE = Symbol('propagate');
/** Linked response path: allocated per field, turned into an array only for errors. */
type Path = { prev: Path; key: string | number } | undefined;

export function pathToArray(path: Path): (string | number)[] {
  const out: (string | number)[] = [];
  for (let p = path; p; p = p.prev) out.push(p.key);
  return out.reverse();
}

export interface ShapeContext {
  schema: GraphQLSchema;
  errors: GraphQLFormattedError[];
  /** "a.0.b" for every prefix of every error path already reported. */
  errorPrefixes: Set<string>;
}

export function errorPrefixes(errors: readonly GraphQLFormattedError[]): Set<string> {
  const set = new Set<string>();
  for (const e of errors) {
    if (!e.path) continue;
    for (let i = 1; i <= e.path.length; i++) set.add(e.path.slice(0, i).join('.'));
  }
  return set;
}

/** Returns the client data for the root object, or null when null propagated to the root. */
export function shapeRoot(
  ctx: ShapeContext,
  shape: Shape,
  root: Record<string, unknown>,
  rootTypeName: string,
) {
  const out = shapeObject(ctx, shape, root, rootTypeName, undefined);
  return out === PROPAGATE ? null : out;
}

function shapeObject(
  ctx: ShapeContext,
  shape: Shape,
  obj: Record<string, unknown>,
  runtimeType: string,
  path: Path,
): Record<string, unknown> | typeof PROPAGATE {
  const out: Record<string, unknown> = {};
  const failures = failuresOf(obj);
  for (const field of shape.fieldsFor(runtimeType)) {
    if (field.kind === 'typename') {
      out[field.responseKey] = runtimeType;
      continue;
    }
    if (field.kind === 'raw') {
      out[field.responseKey] = obj[field.responseKey] ?? null;
      continue;
    }
    const fieldPath: Path = { prev: path, key: field.responseKey };
    if (field.unauthorized) {
      report(ctx, field.unauthorized, pathToArray(fieldPath));
      const value = completeValue(ctx, field, field.type, undefined, fieldPath, true);
      if (value === PROPAGATE) return PROPAGATE;
      out[field.responseKey] = value;
      continue;
    }
    const raw = obj[field.storeKey];
    // Only a failed fetch leaves out a field the client selected.
    const failed = raw === undefined && failures !== undefined;
    if (failed) {
      const { error } = failureFor(failures, field.storeKey);
      if (error) report(ctx, error, pathToArray(fieldPath));
    }
    const value = completeValue(ctx, field, field.type, raw, fieldPath, failed);
    if (value === PROPAGATE) return PROPAGATE;
    out[field.responseKey] = value;
  }
  return out;
}

function completeValue(
  ctx: ShapeContext,
  field: Extract<ShapeField, { kind: 'field' }>,
  type: GraphQLOutputType,
  value: unknown,
  path: Path,
  /** The value is missing because a fetch failed, which is reported already. */
  failed: boolean,
): unknown {
  if (isNonNullType(type)) {
    const inner = completeValue(ctx, field, type.ofType, value, path, failed);
    if (inner !== null && inner !== undefined) return inner;
    const arr = pathToArray(path);
    if (!failed && !ctx.errorPrefixes.has(arr.join('.')))
      report(
        ctx,
        { message: `Cannot return null for non-nullable field ${field.parentType}.${field.fieldName}.` },
        arr,
      );
    return PROPAGATE;
  }
  if (value === null || value === undefined) return null;
  if (value === PROPAGATE) return PROPAGATE;
  const nullable = getNullableType(type);
  if (isListType(nullable)) {
    if (!Array.isArray(value)) return invalid(ctx, field, path, 'a list');
    const itemType = nullable.ofType as GraphQLOutputType;
    const out = new Array(value.length);
    for (let i = 0; i < value.length; i++) {
      const item = completeValue(ctx, field, itemType, value[i], { prev: path, key: i }, false);
      if (item === PROPAGATE) return null;
      out[i] = item;
    }
    return out;
  }
  if (isCompositeType(nullable)) {
    if (typeof value !== 'object' || Array.isArray(value)) return invalid(ctx, field, path, 'an object');
    const obj = value as Record<string, unknown>;
    let runtime = nullable.name;
    // An @interfaceObject answer whose concrete type nobody needed keeps the interface's name.
    if (isAbstractType(nullable) && !(isInterfaceType(nullable) && obj.__typename === nullable.name)) {
      const t = obj.__typename;
      const resolved = typeof t === 'string' ? ctx.schema.getType(t) : undefined;
      if (!resolved || !isObjectType(resolved) || !ctx.schema.isSubType(nullable, resolved))
        return invalid(
          ctx,
          field,
          path,
          `a possible type of ${nullable.name} (got __typename ${JSON.stringify(t)})`,
        );
      runtime = resolved.name;
    }
    const shaped = shapeObject(ctx, field.shape!, obj, runtime, path);
    return shaped === PROPAGATE ? null : shaped;
  }
  // A value the client schema does not have (an @inaccessible one, or one another subgraph's enum
  // adds) cannot be serialized: a field error, as in any GraphQL service.
  if (isEnumType(nullable) && (typeof value !== 'string' || !nullable.getValue(value)))
    return invalid(ctx, field, path, `a value of enum ${nullable.name} (got ${JSON.stringify(value)})`);
  return value;
}

function invalid(
  ctx: ShapeContext,
  field: Extract<ShapeField, { kind: 'field' }>,
  path: Path,
  expected: string,
): null {
  report(
    ctx,
    {
      message: `Subgraph returned an invalid value for ${field.parentType}.${field.fieldName}: expected ${expected}.`,
    },
    pathToArray(path),
  );
  return null;
}

/** Adds `error` (its message and extensions) at `path`. */
function report(ctx: ShapeContext, error: GraphQLFormattedError, path: (string | number)[]): void {
  const { message, extensions } = error;
  ctx.errors.push(extensions ? { message, path, extensions } : { message, path });
  for (let i = 1; i <= path.length; i++) ctx.errorPrefixes.add(path.slice(0, i).join('.'));
}
