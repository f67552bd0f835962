/**
 * Root fields: where each field of the operation's root type starts. An event-driven field
 * (EDFS) is its own broker operation; an HTTP query field joins the root fetch of the cheapest
 * subgraph that resolves it (fields of one subgraph share a request); mutation fields run in
 * order, consecutive fields of one subgraph sharing a request; introspection fields are answered
 * by graphql-js, not planned. A subscription's filter fields are planned as internal fields of
 * its event fetch.
 *
 * Invariants: a subscription has exactly the event-driven root fields it selects (any other
 * field is a PlanError); a mutation fetch depends on every fetch planned before it; the walk
 * below each root field starts in client mode with the root's client fields.
 */
import {
  Kind,
  getNamedType,
  isCompositeType,
  isObjectType,
  type DocumentNode,
  type FieldNode,
  type GraphQLObjectType,
  type SelectionSetNode,
} from 'graphql';
import { compileFilter } from '../../event-fields/filter.js';
import { subSelections } from '../collect.js';
import type { EventSource, Fetch, Plan } from '../plan.js';
import type { EventField } from '../supergraph.js';
import { rootFieldCandidates } from './capabilities.js';
import { CLIENT, fieldsOf, newFetch, type Cursor, type PlanContext } from './context.js';
import { cheapest, cost, IMPOSSIBLE } from './cost.js';
import { because, PlanError, UnresolvableField } from './errors.js';
import { planField, planSelection } from './walk.js';
import { splitSharedRoot } from './split.js';

/** What the root level contributes to the plan besides its fetches. */
export interface RootPlan {
  rootType: GraphQLObjectType;
  subscription: EventSource | undefined;
  introspection: Plan['introspection'];
}

/** Plans every root field of the operation into `ctx.fetches`. */
export function planRootFields(ctx: PlanContext): RootPlan {
  const opType = ctx.operation.operation;
  const rootType =
    opType === 'query'
      ? ctx.schema.getQueryType()
      : opType === 'mutation'
        ? ctx.schema.getMutationType()
        : ctx.schema.getSubscriptionType();
  // Validation against the client schema, which has the same root types, comes first.
  if (!rootType) throw new Error(`the router schema has no ${opType} type`);
  const fields = fieldsOf(ctx, rootType, [ctx.operation.selectionSet]);
  const rootAt = (fetch: Fetch): Cursor => ({
    fetch,
    sel: fetch.sel,
    path: [],
    provided: undefined,
    mode: { ...CLIENT, client: fields },
    touched: new Set(),
  });
  const introspectionKeys: string[] = [];
  let previous: Fetch | undefined;
  let subscription: EventSource | undefined;
  for (const [key, nodes] of fields) {
    const name = nodes[0]!.name.value;
    if (name === '__typename') continue;
    if (name === '__schema' || name === '__type') {
      introspectionKeys.push(key);
      continue;
    }
    const eventField = ctx.supergraph.eventFields.get(`${rootType.name}.${name}`);
    let fetch: Fetch;
    if (eventField) {
      // Each event-driven root field is its own broker operation; in a mutation it still runs in order.
      fetch = newFetch(ctx, eventField.subgraph, 'root', opType === 'mutation' ? 'mutation' : 'query', []);
      if (opType === 'mutation') for (const f of ctx.fetches) if (f !== fetch) fetch.deps.add(f);
      fetch.event = eventSource(ctx, eventField, rootType, key, nodes);
      if (opType === 'subscription') subscription = fetch.event;
      previous = undefined;
    } else if (opType === 'subscription') {
      throw new PlanError(
        `${rootType.name}.${name} is not event-driven: subscriptions are served from brokers (@edfs__natsSubscribe, @edfs__kafkaSubscribe)`,
      );
    } else {
      const split = opType === 'query' ? splitSharedRoot(ctx, rootType, name, nodes) : undefined;
      if (split) {
        for (const [sub, subNodes] of split) {
          const part =
            ctx.fetches.find((f) => f.kind === 'root' && !f.event && f.subgraph === sub) ??
            newFetch(ctx, sub, 'root', 'query', []);
          planField(ctx, rootAt(part), { type: rootType, responseKey: key, nodes: subNodes });
        }
        continue;
      }
      fetch = httpRootFetch(ctx, opType, rootType, name, nodes, previous);
      if (opType === 'mutation') previous = fetch;
    }
    planField(ctx, rootAt(fetch), { type: rootType, responseKey: key, nodes });
    if (fetch.event?.filter !== undefined) planFilterFields(ctx, fetch, fetch.event, nodes);
  }
  return {
    rootType,
    subscription,
    introspection:
      introspectionKeys.length > 0
        ? {
            responseKeys: introspectionKeys,
            document: introspectionDocument(ctx, introspectionKeys, fields),
          }
        : undefined,
  };
}

/** The subgraph fetch for an HTTP root field (queries share a fetch per subgraph; mutations run in order). */
function httpRootFetch(
  ctx: PlanContext,
  opType: 'query' | 'mutation',
  rootType: GraphQLObjectType,
  name: string,
  nodes: FieldNode[],
  previous: Fetch | undefined,
): Fetch {
  const candidates = rootFieldCandidates(ctx, rootType, name);
  if (candidates.length === 0)
    throw new UnresolvableField(
      `${rootType.name}.${name}`,
      name,
      'no subgraph resolves this root field over HTTP (the execution config lists it for none)',
    );
  if (opType === 'mutation') {
    // Mutation root fields run in order: consecutive fields of one subgraph share a request
    // (the subgraph runs them serially); a new subgraph waits for everything planned so far.
    const sub =
      previous &&
      candidates.includes(previous.subgraph) &&
      cost(ctx, previous.subgraph, rootType, nodes) < IMPOSSIBLE
        ? previous.subgraph
        : cheapest(ctx, candidates, rootType, nodes);
    if (previous && previous.subgraph === sub) return previous;
    const fetch = newFetch(ctx, sub, 'root', 'mutation', []);
    for (const f of ctx.fetches) if (f !== fetch) fetch.deps.add(f);
    return fetch;
  }
  const best = cheapest(ctx, candidates, rootType, nodes);
  const bestCost = cost(ctx, best, rootType, nodes);
  const existing = ctx.fetches.find(
    (f) =>
      f.kind === 'root' &&
      !f.event &&
      candidates.includes(f.subgraph) &&
      cost(ctx, f.subgraph, rootType, nodes) <= bestCost,
  );
  return existing ?? newFetch(ctx, best, 'root', 'query', []);
}

function eventSource(
  ctx: PlanContext,
  field: EventField,
  rootType: GraphQLObjectType,
  responseKey: string,
  nodes: FieldNode[],
): EventSource {
  const node = nodes[0]!;
  const def = rootType.getFields()[node.name.value]!;
  return {
    type: field.type,
    providerKind: field.providerKind,
    providerId: field.providerId,
    subjects: field.subjects,
    stream: field.stream,
    parentType: rootType.name,
    fieldName: node.name.value,
    responseKey,
    args: node.arguments ?? [],
    returnType: getNamedType(def.type).name,
    filter: ctx.supergraph.subscriptionFilters.get(`${rootType.name}.${node.name.value}`),
  };
}

/**
 * The fields a subscription filter reads must be in the resolved data even when the client does
 * not select them: plan them as internal fields (stored under their name, or `__edfs_<name>` when
 * the client uses that response key for something else).
 */
function planFilterFields(ctx: PlanContext, fetch: Fetch, event: EventSource, nodes: FieldNode[]): void {
  const field = `${event.parentType}.${event.fieldName}`;
  let paths: string[][];
  try {
    paths = compileFilter(event.filter, { field }).fieldPaths();
  } catch (err) {
    throw new PlanError((err as Error).message);
  }
  if (paths.length === 0) return;
  const type = ctx.schema.getType(event.returnType);
  if (!type || !isCompositeType(type)) return;
  const set = fieldSetOf(paths);
  const target = fetch.sel.fields.get(event.responseKey)?.sel;
  if (!target) return;
  const client = isObjectType(type) ? fieldsOf(ctx, type, subSelections(nodes)) : undefined;
  because(
    field,
    () => event.responseKey,
    (inner) => `its subscription filter reads ${inner}`,
    () =>
      planSelection(
        ctx,
        {
          fetch,
          sel: target,
          path: [event.responseKey],
          provided: undefined,
          mode: { internal: true, client, exclude: new Set() },
          touched: new Set(),
        },
        type,
        [set],
      ),
  );
}

/**
 * The field set that reads `paths` (field names from the event's type down). Built as nodes, not
 * parsed: a name that is no field of its type is then refused like any field set's.
 */
function fieldSetOf(paths: string[][]): SelectionSetNode {
  const selections = paths.map((path) =>
    path.reduceRight<FieldNode | undefined>(
      (inner, name) => ({
        kind: Kind.FIELD,
        name: { kind: Kind.NAME, value: name },
        ...(inner && { selectionSet: { kind: Kind.SELECTION_SET, selections: [inner] } }),
      }),
      undefined,
    )!,
  );
  return { kind: Kind.SELECTION_SET, selections };
}

/** The operation reduced to its introspection root fields, for graphql-js to answer. */
function introspectionDocument(
  ctx: PlanContext,
  keys: string[],
  fields: Map<string, FieldNode[]>,
): DocumentNode {
  const selections = keys.flatMap((k) => fields.get(k) ?? []);
  return {
    kind: Kind.DOCUMENT,
    definitions: [
      { ...ctx.operation, selectionSet: { kind: Kind.SELECTION_SET, selections } },
      ...Object.values(ctx.fragments),
    ],
  } as DocumentNode;
}
