/**
 * The arguments and subjects of an event-driven root field (EDFS), and the publish and request
 * fetches the executor runs against the brokers instead of sending HTTP. Subscriptions render
 * their subjects here too; the trigger registry does the subscribing.
 *
 * Invariants: subjects are rendered from the schema-coerced arguments and bounded before any broker
 * call (a value that would widen a subject is a SubjectError, not a publish); a publish never
 * throws for a broker failure (it is the field's `success: false`); a request's reply is the
 * field's data only once it passes `checkEventData`.
 */
import type { FieldNode, GraphQLObjectType, GraphQLSchema } from 'graphql';
import { getArgumentValues } from 'graphql/execution/values.js';
import type { EventSource, Fetch } from '../engine/plan.js';
import type { EventBus } from './bus.js';
import { checkEventData, eventSelection } from './event-data.js';
import { renderSubjects, type SubjectLimits } from './subject-templates.js';

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
