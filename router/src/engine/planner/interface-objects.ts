/**
 * Interfaces a subgraph knows only as an @interfaceObject (an object type named like the
 * supergraph interface): its objects arrive with the interface as __typename. When the selection
 * does not depend on the concrete type, the subgraph serves it as the interface; otherwise a
 * fetch to a subgraph that owns the interface entity resolves the concrete type first, and fields
 * of concrete types are fetched through that fetch.
 *
 * Invariants: one typename-resolving fetch per (parent fetch, path, owner subgraph), planned
 * with the owner's first resolvable key and depending on every fetch that key was planned into;
 * a field the @interfaceObject subgraph resolves stays in the cursor's fetch.
 */
import type { GraphQLInterfaceType, GraphQLObjectType, SelectionSetNode } from 'graphql';
import type { Fetch } from '../plan.js';
import type { Subgraph } from '../supergraph.js';
import { canResolve, isInterfaceObjectIn, keyIsLocal, requiresOf, resolvableKeys } from './capabilities.js';
import {
  PlanError,
  fieldsOf,
  fragmentOf,
  levelMode,
  newFetch,
  type Cursor,
  type PlanContext,
  type Provided,
} from './context.js';
import { planField } from './selections.js';
import { reprFields } from './store-keys.js';

/** Plans `selectionSets` on interface `type` at `at`, whose subgraph knows it as an @interfaceObject. */
export function planInterfaceObject(
  ctx: PlanContext,
  at: Cursor,
  type: GraphQLInterfaceType,
  selectionSets: readonly SelectionSetNode[],
): void {
  const { fetch, path, provided, mode } = at;
  const subgraph = fetch.subgraph;
  const asObject = type as unknown as GraphQLObjectType;
  if (interfaceObjectSuffices(ctx, subgraph, type, selectionSets, provided)) {
    // Nothing here depends on the concrete type: serve the fields as the interface, without
    // asking the owner for __typename (which it may not be able to resolve at all).
    const fields = fieldsOf(ctx, asObject, selectionSets);
    const level: Cursor = { ...at, mode: levelMode(mode, fields) };
    for (const [responseKey, nodes] of fields) planField(ctx, level, { type: asObject, responseKey, nodes });
    return;
  }
  const owner = ctx.supergraph.subgraphs.find(
    (s) =>
      s.kind === 'graphql' &&
      (s.raw.entityInterfaces ?? []).some((e) => e.interfaceTypeName === type.name) &&
      resolvableKeys(s, type.name).length > 0,
  );
  if (!owner)
    throw new PlanError(
      `cannot resolve the concrete type of ${type.name}: no subgraph owns it as an entity interface`,
    );
  const pathKey = `${fetch.id}|${path.join('.')}|${owner.name}|typename`;
  let resolver = ctx.entityFetches.get(pathKey)?.[0];
  if (!resolver) {
    resolver = newFetch(ctx, owner, 'entity', 'query', path);
    resolver.resolvesTypename = true;
    ctx.entityFetches.set(pathKey, [resolver]);
    const key = resolvableKeys(owner, type.name)[0]!;
    const deps = new Set<Fetch>();
    const keyAt: Cursor = { ...at, mode: { ...mode, internal: true }, touched: deps };
    for (const [responseKey, nodes] of fieldsOf(ctx, asObject, [key.fields]))
      planField(ctx, keyAt, { type: asObject, responseKey, nodes });
    for (const d of deps) resolver.deps.add(d);
    resolver.targets.set(type.name, {
      reprTypename: type.name,
      fields: reprFields(ctx, key.fields, asObject, mode.internal ? mode.client : undefined),
    });
  }
  for (const concrete of ctx.schema.getPossibleTypes(type)) {
    const fields = fieldsOf(ctx, concrete, selectionSets);
    const concreteMode = levelMode(mode, fields);
    for (const [responseKey, nodes] of fields) {
      const name = nodes[0]!.name.value;
      if (name === '__typename') continue;
      if (type.getFields()[name] && canResolve(subgraph, type.name, name, provided))
        planField(ctx, { ...at, mode: concreteMode }, { type: asObject, responseKey, nodes });
      else
        planField(
          ctx,
          {
            fetch: resolver,
            sel: fragmentOf(resolver.sel, concrete.name),
            path,
            provided: undefined,
            mode: concreteMode,
            touched: at.touched,
          },
          { type: concrete, responseKey, nodes },
        );
    }
  }
}

/**
 * Whether `subgraph` (which knows `type` as an @interfaceObject) can answer the selection without
 * the concrete type: no __typename, no field under a concrete type's condition, and every field
 * resolvable here or in another subgraph that knows the type as an @interfaceObject.
 */
function interfaceObjectSuffices(
  ctx: PlanContext,
  subgraph: Subgraph,
  type: GraphQLInterfaceType,
  selectionSets: readonly SelectionSetNode[],
  provided: Provided | undefined,
): boolean {
  const asObject = type as unknown as GraphQLObjectType;
  const direct = fieldsOf(ctx, asObject, selectionSets);
  for (const [, nodes] of direct) {
    const name = nodes[0]!.name.value;
    if (name === '__typename') return false;
    if (canResolve(subgraph, type.name, name, provided)) {
      if (requiresOf(subgraph, type.name, name)) return false;
      continue;
    }
    // Another @interfaceObject subgraph that resolves the field does not need the concrete type either.
    const other = ctx.supergraph.subgraphs.some(
      (s) =>
        s !== subgraph &&
        isInterfaceObjectIn(s, type.name) &&
        canResolve(s, type.name, name, undefined) &&
        !requiresOf(s, type.name, name) &&
        resolvableKeys(s, type.name).some((k) => keyIsLocal(subgraph, asObject, k.fields)),
    );
    if (!other) return false;
  }
  for (const concrete of ctx.schema.getPossibleTypes(type)) {
    const fields = fieldsOf(ctx, concrete, selectionSets);
    if (fields.size !== direct.size) return false;
    for (const key of fields.keys()) if (!direct.has(key)) return false;
  }
  return true;
}
