/**
 * Event-driven root fields (EDFS) inside a plan: rendering their subjects from arguments, checking
 * that an event (or a request's reply) can stand in for the field's data, and running publish and
 * request fetches against the brokers. The executor calls in here instead of sending HTTP.
 *
 * An event is valid when it is a JSON object whose `__typename` is a possible type of the field
 * and which carries every field the plan reads from it (the entity key, at least), each a value of
 * its schema type: exactly what the entity fetches that follow need to build their
 * representations. The types matter because the event is a client of the subgraphs too: an
 * `{"$ne": 1}` in an `ID!` key would otherwise reach them as a representation.
 */
import {
  isAbstractType,
  isEnumType,
  isInterfaceType,
  isListType,
  isNonNullType,
  isObjectType,
  isScalarType,
  type FieldNode,
  type GraphQLField,
  type GraphQLInterfaceType,
  type GraphQLObjectType,
  type GraphQLOutputType,
  type GraphQLSchema,
} from 'graphql';
import { getArgumentValues } from 'graphql/execution/values.js';
import { renderSubjects, type SubjectLimits } from '../events/subjects.js';
import type { EventSource, Fetch, SubSel } from './plan.js';

/** What the executor needs from the brokers (implemented over the event providers). */
export interface EventBus {
  publish(providerId: string, subject: string, data: Uint8Array): Promise<void>;
  request(providerId: string, subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  /** Bounds of rendered subjects (router.yaml `events.subjects`); default DEFAULT_SUBJECT_LIMITS. */
  subjectLimits?: SubjectLimits;
}

export class EventFieldError extends Error {
  override name = 'EventFieldError';
}

/** Argument values of the event field, coerced against the schema (defaults applied). */
export function eventArguments(
  schema: GraphQLSchema,
  event: EventSource,
  variables: Record<string, unknown>,
): Record<string, unknown> {
  const parent = schema.getType(event.parentType) as GraphQLObjectType;
  const def = parent.getFields()[event.fieldName]!;
  return getArgumentValues(def, { arguments: event.args } as unknown as FieldNode, variables);
}

/**
 * Renders every subject/topic template; a value that would widen the subject, or make it longer
 * than `limits` allow, is refused before any broker call.
 */
export function eventSubjects(
  event: EventSource,
  args: Record<string, unknown>,
  limits?: SubjectLimits,
): string[] {
  return renderSubjects(event.subjects, args, event.providerKind, {
    allowWildcards: event.type === 'subscribe',
    ...(limits ? { limits } : {}),
  });
}

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

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Publish: sends the JSON of all arguments to the rendered subject. A broker failure is the
 * field's `success: false` (edfs__PublishResult), not an error; a subject a client could widen is
 * an error.
 */
export async function runPublish(
  schema: GraphQLSchema,
  fetch: Fetch,
  variables: Record<string, unknown>,
  bus: EventBus,
): Promise<{ success: boolean; error?: string }> {
  const event = fetch.event!;
  const args = eventArguments(schema, event, variables);
  const subjects = eventSubjects(event, args, bus.subjectLimits);
  const data = encoder.encode(JSON.stringify(args));
  try {
    for (const subject of subjects) await bus.publish(event.providerId, subject, data);
    return { success: true };
  } catch (err) {
    return { success: false, error: (err as Error).message };
  }
}

/** Request/reply: the reply is the field's data and must be a valid event for it. */
export async function runRequest(
  schema: GraphQLSchema,
  fetch: Fetch,
  variables: Record<string, unknown>,
  bus: EventBus,
): Promise<Record<string, unknown>> {
  const event = fetch.event!;
  const args = eventArguments(schema, event, variables);
  const [subject] = eventSubjects(event, args, bus.subjectLimits);
  if (!subject) throw new EventFieldError(`${event.parentType}.${event.fieldName} has no subject`);
  const reply = await bus.request(
    event.providerId,
    subject,
    encoder.encode(JSON.stringify(args)),
    fetch.subgraph.timeoutMs,
  );
  let data: unknown;
  try {
    data = JSON.parse(decoder.decode(reply));
  } catch {
    throw new EventFieldError(`the reply on subject "${subject}" is not JSON`);
  }
  const problem = checkEventData(schema, event, eventSelection(fetch), data);
  if (problem) throw new EventFieldError(`invalid reply on subject "${subject}": ${problem}`);
  return data as Record<string, unknown>;
}
