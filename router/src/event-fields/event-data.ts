/**
 * Whether an event can stand in for an event-driven root field's data (EDFS), and the event laid
 * out as the plan's store expects it. Subscriptions check every event here before executing the
 * rest of the plan; a request's reply is checked the same way.
 *
 * An event is valid when it is a JSON object whose `__typename` is a possible type of the field
 * and which carries every field the plan reads from it (the entity key, at least), each a value of
 * its schema type: exactly what the entity fetches that follow need to build their
 * representations. The types matter because the event is a client of the subgraphs too: an
 * `{"$ne": 1}` in an `ID!` key would otherwise reach them as a representation.
 *
 * Invariants: pure (no I/O); `checkEventData` answers with a reason naming the field at fault
 * instead of throwing.
 */
import {
  isAbstractType,
  isEnumType,
  isInterfaceType,
  isListType,
  isNonNullType,
  isObjectType,
  isScalarType,
  type GraphQLField,
  type GraphQLInterfaceType,
  type GraphQLObjectType,
  type GraphQLOutputType,
  type GraphQLSchema,
} from 'graphql';
import type { EventSource, Fetch, SubSel } from '../engine/plan.js';

/**
 * Returns why `data` cannot be the field's value, or undefined when it can. `sel` is what the plan
 * reads from the event (the event fetch's selection under the field).
 */
export function checkEventData(
  schema: GraphQLSchema,
  event: EventSource,
  sel: SubSel | undefined,
  data: unknown,
): string | undefined {
  if (data === null || typeof data !== 'object' || Array.isArray(data))
    return 'the event is not a JSON object';
  const obj = data as Record<string, unknown>;
  const typename = obj.__typename;
  if (typeof typename !== 'string' || typename === '')
    return `the event has no "__typename" (expected ${possibleTypeNames(schema, event.returnType)})`;
  const type = schema.getType(typename);
  const returnType = schema.getType(event.returnType);
  const fits =
    type &&
    isObjectType(type) &&
    returnType &&
    (returnType === type || (isAbstractType(returnType) && schema.isSubType(returnType, type)));
  if (!fits)
    return `the event's __typename "${typename}" is not a possible type of ${event.parentType}.${event.fieldName} (expected ${possibleTypeNames(schema, event.returnType)})`;
  if (!sel) return undefined;
  const missing = missingFields(obj, sel, typename);
  if (missing.length > 0)
    return `the event for ${typename} lacks the field${missing.length > 1 ? 's' : ''} ${missing.map((m) => `"${m}"`).join(', ')} (an event carries __typename and the entity key)`;
  const wrong = fieldsProblem(schema, type as GraphQLObjectType, obj, sel, '');
  if (wrong) return `the event for ${typename}: ${wrong}`;
  return undefined;
}

/**
 * Why a field `sel` reads from `obj` (an object of `parent`) is not a value of its schema type, or
 * undefined. Fields the schema does not know, and missing ones, are left to the other checks.
 */
function fieldsProblem(
  schema: GraphQLSchema,
  parent: GraphQLObjectType | GraphQLInterfaceType,
  obj: Record<string, unknown>,
  sel: SubSel,
  prefix: string,
): string | undefined {
  const defs = parent.getFields() as Record<string, GraphQLField<unknown, unknown> | undefined>;
  const levels = [sel, isObjectType(parent) ? sel.fragments.get(parent.name) : undefined];
  for (const level of levels) {
    if (!level) continue;
    for (const f of level.fields.values()) {
      if (f.name === '__typename') continue;
      const value = obj[f.name];
      const def = defs[f.name];
      if (value === undefined || !def) continue;
      const problem = valueProblem(schema, def.type, value, f.sel, `${prefix}${f.name}`);
      if (problem) return problem;
    }
  }
  return undefined;
}

function valueProblem(
  schema: GraphQLSchema,
  type: GraphQLOutputType,
  value: unknown,
  sel: SubSel | undefined,
  path: string,
): string | undefined {
  if (isNonNullType(type)) {
    if (value === null) return `field "${path}" is null, but its type ${String(type)} is non-null`;
    return valueProblem(schema, type.ofType, value, sel, path);
  }
  if (value === null) return undefined;
  if (isListType(type)) {
    if (!Array.isArray(value))
      return `field "${path}" must be a list (${String(type)}), not ${kindOf(value)}`;
    for (let i = 0; i < value.length; i++) {
      const problem = valueProblem(schema, type.ofType, value[i], sel, `${path}[${i}]`);
      if (problem) return problem;
    }
    return undefined;
  }
  if (isScalarType(type)) {
    const expected = BUILT_IN_SCALARS[type.name];
    if (expected && !expected.accepts(value))
      return `field "${path}" must be ${expected.description} (${type.name}), not ${kindOf(value)}`;
    return undefined;
  }
  if (isEnumType(type)) {
    if (typeof value !== 'string' || !type.getValue(value))
      return `field "${path}" must be one of the values of enum ${type.name}, not ${typeof value === 'string' ? JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}...` : value) : kindOf(value)}`;
    return undefined;
  }
  // An object, interface or union (a nested key object, for instance).
  if (typeof value !== 'object' || Array.isArray(value))
    return `field "${path}" must be an object (${type.name}), not ${kindOf(value)}`;
  if (!sel) return undefined;
  const nested = value as Record<string, unknown>;
  let parent: GraphQLObjectType | GraphQLInterfaceType | undefined;
  if (isObjectType(type)) parent = type;
  else {
    const concrete = typeof nested.__typename === 'string' ? schema.getType(nested.__typename) : undefined;
    if (concrete && isObjectType(concrete) && schema.isSubType(type, concrete)) parent = concrete;
    else if (isInterfaceType(type)) parent = type;
  }
  return parent ? fieldsProblem(schema, parent, nested, sel, `${path}.`) : undefined;
}

const INT_MIN = -(2 ** 31);
const INT_MAX = 2 ** 31 - 1;

/** What a JSON value must be to stand for each built-in scalar (as graphql-js serializes them). */
const BUILT_IN_SCALARS: Record<string, { description: string; accepts: (value: unknown) => boolean }> = {
  ID: {
    description: 'a string or an integer',
    accepts: (v) => typeof v === 'string' || (typeof v === 'number' && Number.isSafeInteger(v)),
  },
  String: { description: 'a string', accepts: (v) => typeof v === 'string' },
  Int: {
    description: 'a 32-bit integer',
    accepts: (v) => typeof v === 'number' && Number.isInteger(v) && v >= INT_MIN && v <= INT_MAX,
  },
  Float: { description: 'a number', accepts: (v) => typeof v === 'number' && Number.isFinite(v) },
  Boolean: { description: 'true or false', accepts: (v) => typeof v === 'boolean' },
};

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'number') return Number.isInteger(value) ? `the number ${value}` : 'a fraction';
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'boolean') return `${value}`;
  return `a ${typeof value}`;
}

function missingFields(obj: Record<string, unknown>, sel: SubSel, typename: string, prefix = ''): string[] {
  const out: string[] = [];
  const levels = [sel, sel.fragments.get(typename)].filter((s): s is SubSel => s !== undefined);
  for (const level of levels) {
    for (const f of level.fields.values()) {
      if (f.name === '__typename') continue;
      const v = obj[f.name];
      if (v === undefined) out.push(prefix + f.name);
      else if (f.sel && v && typeof v === 'object' && !Array.isArray(v)) {
        const childType =
          typeof (v as Record<string, unknown>).__typename === 'string'
            ? ((v as Record<string, unknown>).__typename as string)
            : '';
        out.push(...missingFields(v as Record<string, unknown>, f.sel, childType, `${prefix}${f.name}.`));
      }
    }
  }
  return out;
}

/**
 * The event laid out as the plan's store expects it: each field under its store key (its alias),
 * nested objects and lists followed, __typename kept. Fields the plan does not read are dropped.
 */
export function projectEvent(data: unknown, sel: SubSel | undefined): unknown {
  if (data === null || typeof data !== 'object' || !sel) return data;
  if (Array.isArray(data)) return data.map((item) => projectEvent(item, sel));
  const obj = data as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  if (typeof obj.__typename === 'string') out.__typename = obj.__typename;
  const typename = out.__typename as string | undefined;
  const levels = [sel, typename ? sel.fragments.get(typename) : undefined];
  for (const level of levels) {
    if (!level) continue;
    for (const f of level.fields.values()) {
      if (f.name in obj) out[f.storeKey] = projectEvent(obj[f.name], f.sel);
    }
  }
  return out;
}

function possibleTypeNames(schema: GraphQLSchema, typeName: string): string {
  const type = schema.getType(typeName);
  if (type && isAbstractType(type))
    return schema
      .getPossibleTypes(type)
      .map((t) => t.name)
      .join(' or ');
  return typeName;
}

/** The selection the plan reads from the event of `fetch` (under its root field). */
export function eventSelection(fetch: Fetch): SubSel | undefined {
  return fetch.event ? fetch.sel.fields.get(fetch.event.responseKey)?.sel : undefined;
}
