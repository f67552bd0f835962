/**
 * Entity jumps: a field the cursor's subgraph cannot resolve (or that has `@requires` there) is
 * fetched through `_entities` from a subgraph that resolves it. The jump opens, or joins, the
 * entity fetch for (parent fetch, path, subgraph), plans the entity key (and the field's
 * `@requires` field set) into the parent selection as internal fields, records how to read the
 * representation back (`EntityTarget`), and plans the field itself in the entity fetch.
 *
 * Invariants: one entity fetch per (parent fetch, path, subgraph) unless the one there is
 * excluded (it is the fetch whose key is being planned); an entity fetch depends on the parent
 * fetch and on every fetch its key or requirements were planned into; every selection that feeds
 * an entity target carries that target's key; a jump that needs itself to plan its own key is a
 * PlanError, not a loop.
 */
import {
  isInterfaceType,
  type GraphQLCompositeType,
  type GraphQLInterfaceType,
  type SelectionSetNode,
} from 'graphql';
import type { EntityTarget, Fetch, ReprField } from '../plan.js';
import type { Subgraph } from '../supergraph.js';
import {
  entityCandidates,
  isInterfaceObjectIn,
  keyIsLocal,
  requiresOf,
  resolvableKeys,
  typeInSubgraph,
} from './capabilities.js';
import { PlanError, fragmentOf, newFetch, type Cursor, type FieldRef, type PlanContext } from './context.js';
import { cost, IMPOSSIBLE } from './cost.js';
import { planField, planSelection } from './selections.js';
import { splitField, type FieldSplit } from './split.js';
import { mergeRepr, reprFields } from './store-keys.js';

/** Plans `field`, which the subgraph of `at.fetch` cannot resolve (alone), through entity fetches. */
export function planEntityJump(ctx: PlanContext, at: Cursor, field: FieldRef): void {
  const subgraph = at.fetch.subgraph;
  const { type, nodes } = field;
  const name = nodes[0]!.name.value;
  const all = entityCandidates(ctx, subgraph, type, name);
  const possible = all.filter((s) => cost(ctx, s, type, nodes) < IMPOSSIBLE);
  const candidates = possible.length > 0 ? possible : all;
  if (candidates.length === 0)
    throw new PlanError(
      `cannot plan ${type.name}.${name}: subgraph "${subgraph.name}" does not resolve it and no other subgraph can fetch ${type.name} by key`,
    );
  // No subgraph completes the subtree alone: one entity fetch per group of fields.
  if (possible.length === 0 && splitAndJump(ctx, at, field, { candidates: all, keepLocal: false })) return;
  // Planning the key in `subgraph` may need this very jump again (a key field it cannot resolve
  // either): that is a dead end, not a plan.
  const jumpId = `${at.fetch.id}|${at.path.join('.')}|${subgraph.name}|${type.name}.${name}`;
  if (ctx.jumping.has(jumpId))
    throw new PlanError(
      `cannot plan ${type.name}.${name}: subgraph "${subgraph.name}" cannot supply the key of any subgraph that resolves it`,
    );
  ctx.jumping.add(jumpId);
  try {
    jumpToEntity(ctx, at, field, candidates);
  } finally {
    ctx.jumping.delete(jumpId);
  }
}

/**
 * Splits `field` by subgraph (see `splitField`) and plans an entity jump for each group of child
 * fields that leaves the cursor's subgraph. With `keepLocal`, the child fields that subgraph
 * completes stay there: the caller plans `local` of the result. Undefined when no split exists;
 * nothing is planned then.
 */
export function splitAndJump(
  ctx: PlanContext,
  at: Cursor,
  field: FieldRef,
  how: { candidates: Subgraph[]; keepLocal: boolean },
): FieldSplit | undefined {
  const local = how.keepLocal ? { subgraph: at.fetch.subgraph, provided: at.provided } : undefined;
  const split = splitField(ctx, field, local, how.candidates);
  if (split) for (const nodes of split.remote) planEntityJump(ctx, at, { ...field, nodes });
  return split;
}

/** The jump itself, to one of `candidates` (each resolves the field and accepts a key). */
function jumpToEntity(ctx: PlanContext, at: Cursor, field: FieldRef, candidates: Subgraph[]): void {
  const { fetch, path, mode } = at;
  const subgraph = fetch.subgraph;
  const { type, nodes } = field;
  const name = nodes[0]!.name.value;
  const pathKey = path.join('.');
  const reuse = candidates
    .map((s) => ctx.entityFetches.get(`${fetch.id}|${pathKey}|${s.name}`)?.find((f) => !mode.exclude.has(f)))
    .find((f) => f !== undefined);
  // Objects known only as the interface (served by an @interfaceObject subgraph) go to another
  // @interfaceObject subgraph when one resolves the field: it takes the representation as it is.
  const ordered = isInterfaceType(type as GraphQLCompositeType)
    ? [
        ...candidates.filter((s) => isInterfaceObjectIn(s, type.name)),
        ...candidates.filter((s) => !isInterfaceObjectIn(s, type.name)),
      ]
    : candidates;
  const chosen =
    reuse?.subgraph ??
    ordered.find((s) => resolvableKeys(s, type.name).some((k) => keyIsLocal(subgraph, type, k.fields))) ??
    ordered[0]!;
  let entity =
    reuse ??
    ctx.entityFetches.get(`${fetch.id}|${pathKey}|${chosen.name}`)?.find((f) => !mode.exclude.has(f));
  if (!entity) {
    entity = newFetch(ctx, chosen, 'entity', 'query', path);
    entity.deps.add(fetch);
    const list = ctx.entityFetches.get(`${fetch.id}|${pathKey}|${chosen.name}`) ?? [];
    list.push(entity);
    ctx.entityFetches.set(`${fetch.id}|${pathKey}|${chosen.name}`, list);
  }
  const client = mode.client;
  const exclude = new Set([...mode.exclude, entity]);
  // Plans a key or requirement field set into the parent selection; returns how to read it back.
  const internal = (set: SelectionSetNode): ReprField[] => {
    const deps = new Set<Fetch>();
    planSelection(ctx, { ...at, mode: { internal: true, client, exclude }, touched: deps }, type, [set]);
    for (const d of deps) if (d !== entity) entity!.deps.add(d);
    return reprFields(ctx, set, type, client);
  };
  let entityTarget = entity.targets.get(type.name);
  if (entityTarget) {
    // The same entity fetch can be fed from several selections at one path (the field under
    // `... on Book` and under `... on Magazine`): each of them must carry the key.
    const keyed = ctx.keyedSelections.get(entityTarget)!;
    if (!keyed.sels.has(at.sel)) {
      keyed.sels.add(at.sel);
      mergeRepr(entityTarget.fields, internal(keyed.key));
    }
  } else {
    const keys = resolvableKeys(chosen, type.name);
    const key = keys.find((k) => keyIsLocal(subgraph, type, k.fields)) ?? keys[0]!;
    entityTarget = {
      reprTypename: typeInSubgraph(chosen, type.name),
      fields: internal(key.fields),
    } satisfies EntityTarget;
    ctx.keyedSelections.set(entityTarget, { key: key.fields, sels: new Set([at.sel]) });
    entity.targets.set(type.name, entityTarget);
    // An @interfaceObject entity: by the time this fetch runs, a typename-resolving fetch may
    // have replaced the interface name with the concrete type, so accept those objects too.
    if (isInterfaceType(type as GraphQLCompositeType))
      for (const t of ctx.schema.getPossibleTypes(type as unknown as GraphQLInterfaceType))
        if (!entity.targets.has(t.name)) entity.targets.set(t.name, entityTarget);
  }
  const requires = requiresOf(chosen, type.name, name);
  if (requires) mergeRepr(entityTarget.fields, internal(requires));
  const inner = fragmentOf(entity.sel, entityTarget.reprTypename);
  planField(ctx, { fetch: entity, sel: inner, path, provided: undefined, mode, touched: at.touched }, field, {
    requiresMet: true,
  });
}
