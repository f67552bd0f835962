/**
 * Event-driven root fields (EDFS) inside a plan: rendering their subjects from arguments, checking
 * that an event (or a request's reply) can stand in for the field's data, and running publish and
 * request fetches against the brokers. The executor calls in here instead of sending HTTP.
 *
 * An event is valid when it is a JSON object whose `__typename` is a possible type of the field
 * and which carries every field the plan reads from it (the entity key, at least): exactly what
 * the entity fetches that follow need to build their representations.
 */
import {
  isAbstractType,
  isObjectType,
  type FieldNode,
  type GraphQLObjectType,
  type GraphQLSchema,
} from 'graphql';
import { getArgumentValues } from 'graphql/execution/values.js';
import { renderSubjects } from '../events/subjects.js';
import type { EventSource, Fetch, SubSel } from './plan.js';

/** What the executor needs from the brokers (implemented over the event providers). */
export interface EventBus {
  publish(providerId: string, subject: string, data: Uint8Array): Promise<void>;
  request(providerId: string, subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
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

/** Renders every subject/topic template; a value that would widen the subject is refused. */
export function eventSubjects(event: EventSource, args: Record<string, unknown>): string[] {
  return renderSubjects(event.subjects, args, event.providerKind, {
    allowWildcards: event.type === 'subscribe',
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
  return undefined;
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
 * field's `success: false`, not an error (seed 001); a subject a client could widen is an error.
 */
export async function runPublish(
  schema: GraphQLSchema,
  fetch: Fetch,
  variables: Record<string, unknown>,
  bus: EventBus,
): Promise<{ success: boolean; error?: string }> {
  const event = fetch.event!;
  const args = eventArguments(schema, event, variables);
  const subjects = eventSubjects(event, args);
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
  const [subject] = eventSubjects(event, args);
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
