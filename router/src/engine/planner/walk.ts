/**
 * The walk: a selection is planned per concrete runtime type, field by field, into the fetch of
 * the cursor. The three parts of this module recurse into each other, which is why they are one
 * module (an import cycle otherwise):
 *
 * - Fields: a field that the cursor's subgraph resolves joins its fetch (its subtree is walked the
 *   same way); any other field leaves through an entity jump.
 * - Entity jumps: a field the cursor's subgraph cannot resolve (or that has `@requires` there) is
 *   fetched through `_entities` from a subgraph that resolves it. The jump opens, or joins, the
 *   entity fetch for (parent fetch, path, subgraph), plans the entity key (and the field's
 *   `@requires` field set) into the parent selection as internal fields, records how to read the
 *   representation back (`EntityTarget`), and plans the field itself in the entity fetch.
 * - Interface objects: an interface a subgraph knows only as an @interfaceObject (an object type
 *   named like the supergraph interface) arrives with the interface as __typename. When the
 *   selection does not depend on the concrete type, the subgraph serves it as the interface;
 *   otherwise a fetch to a subgraph that owns the interface entity resolves the concrete type
 *   first, and fields of concrete types are fetched through that fetch.
 *
 * Invariants: a field is added to a fetch's selection at most once per store key (later nodes
 * with that key add only their subtrees); every fetch that receives a field is recorded in the
 * cursor's `touched`; the arguments' variables are recorded on the fetch that sends them. One
 * entity fetch per (parent fetch, path, subgraph) unless the one there is excluded (it is the
 * fetch whose key is being planned); an entity fetch depends on the parent fetch and on every
 * fetch its key or requirements were planned into; every selection that feeds an entity target
 * carries that target's key; a jump that needs itself to plan its own key is a PlanError, not a
 * loop. One typename-resolving fetch per (parent fetch, path, owner subgraph), planned with the
 * owner's first resolvable key. Every field selected at a position is planned or refused: at an
 * interface the subgraph returns no implementation of (or one without any), the fields selected
 * on the interface itself are planned as the interface's; a field set planned for another field
 * (key, `@requires`) that cannot be resolved refuses that field (`because`, errors.ts).
 */
import {
  getNamedType,
  type GraphQLCompositeType,
  type GraphQLInterfaceType,
  type GraphQLObjectType,
  isCompositeType,
  isInterfaceType,
  isObjectType,
  Kind,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql';
import { subSelections } from '../collect.js';
import type { EntityTarget, Fetch, ReprField } from '../plan.js';
import type { Subgraph } from '../supergraph.js';
import {
  canResolve,
  concreteTypes,
  entityCandidates,
  isInterfaceObjectIn,
  keyIsLocal,
  ownReturnType,
  requiresOf,
  resolvableKeys,
  typeInSubgraph,
} from './capabilities.js';
import {
  type Cursor,
  type FieldRef,
  fieldsOf,
  fragmentOf,
  levelMode,
  type Mode,
  newFetch,
  newSubSel,
  type PlanContext,
  type Provided,
  providedFrom,
} from './context.js';
import { cost, IMPOSSIBLE } from './cost.js';
import { because, unreachableField, UnresolvableField } from './errors.js';
import { type FieldSplit, splitField } from './split.js';
import { internalStoreKey, mergeRepr, nestedClientFields, reprFields } from './store-keys.js';

/** Plans `selectionSets` on `type` (an object, or an abstract type per possible concrete type) at `at`. */
export function planSelection(
  ctx: PlanContext,
  at: Cursor,
  type: GraphQLCompositeType,
  selectionSets: readonly SelectionSetNode[],
): void {
  const subgraph = at.fetch.subgraph;
  if (isInterfaceType(type) && subgraph.schema && isObjectType(subgraph.schema.getType(type.name))) {
    planInterfaceObject(ctx, at, type, selectionSets);
    return;
  }
  const concretes = concreteTypes(ctx, subgraph, type);
  if (concretes.length === 0 && isInterfaceType(type)) {
    // The subgraph returns no implementation of the interface (it may declare none): its fields
    // must still be resolvable from here, as the subgraph declares them or through its key.
    planOnInterface(ctx, at, type, selectionSets);
    return;
  }
  for (const concrete of concretes) {
    const sel = isObjectType(type) ? at.sel : fragmentOf(at.sel, typeInSubgraph(subgraph, concrete.name));
    const fields = fieldsOf(ctx, concrete, selectionSets);
    const level: Cursor = { ...at, sel, mode: levelMode(at.mode, fields) };
    for (const [responseKey, nodes] of fields) planField(ctx, level, { type: concrete, responseKey, nodes });
  }
}

/**
 * Plans one field at `at`: into the cursor's fetch when its subgraph resolves the field and can
 * complete its subtree; otherwise through entity jumps, for the whole field or (when no subgraph
 * completes the subtree alone) for the groups of child fields that must be fetched elsewhere.
 * `requiresMet`: the field is being planned in the entity fetch whose representations carry its
 * `@requires` fields, so it resolves here.
 */
export function planField(
  ctx: PlanContext,
  at: Cursor,
  field: FieldRef,
  opts?: { requiresMet?: boolean },
): void {
  const requiresMet = opts?.requiresMet === true;
  const { type, responseKey } = field;
  const subgraph = at.fetch.subgraph;
  let nodes = field.nodes;
  const node = nodes[0]!;
  const name = node.name.value;
  if (name === '__typename') return;
  const def = type.getFields()[name];
  // Only a field set of the execution config (a key, @requires or a filter) can name one.
  if (!def)
    throw new UnresolvableField(
      `${type.name}.${name}`,
      pathOf(at, responseKey),
      `${type.name} has no field "${name}" in the router schema (the execution config names it in a field set)`,
    );
  // A field with @requires is only resolvable through `_entities`, with the required fields in
  // the representation, even in the subgraph that defines it.
  const needsRequires = !requiresMet && requiresOf(subgraph, type.name, name) !== undefined;
  let jump = needsRequires || !canResolve(subgraph, type.name, name, at.provided);
  if (
    !jump &&
    !requiresMet &&
    isCompositeType(getNamedType(def.type)) &&
    cost(ctx, subgraph, type, nodes, at.provided) >= IMPOSSIBLE
  ) {
    // The subtree holds fields this subgraph cannot reach (value types owned elsewhere): fetch
    // the field from a subgraph that resolves all of it, through the parent entity, or else
    // keep what resolves here and fetch the rest that way.
    const candidates = entityCandidates(ctx, subgraph, type, name);
    jump = candidates.some((s) => cost(ctx, s, type, nodes) < IMPOSSIBLE);
    const split = jump ? undefined : splitAndJump(ctx, at, field, { candidates, keepLocal: true });
    if (split) {
      if (!split.local) return;
      nodes = split.local;
    }
  }
  if (jump) {
    planEntityJump(ctx, at, field);
    return;
  }
  const storeKey = at.mode.internal ? internalStoreKey(name, at.mode.client, node.arguments) : responseKey;
  let selField = at.sel.fields.get(storeKey);
  if (!selField) {
    selField = { storeKey, name, args: node.arguments ?? [] };
    at.sel.fields.set(storeKey, selField);
    for (const arg of selField.args) collectVariables(arg.value, at.fetch.variables);
  }
  at.touched.add(at.fetch);
  const named = getNamedType(def.type);
  if (!isCompositeType(named)) return;
  selField.sel ??= newSubSel();
  const provided = providedFrom(
    subgraph.provides.get(`${type.name}.${name}`),
    new Map(at.provided?.get(name) ?? []),
  );
  const mode: Mode = at.mode.internal
    ? { ...at.mode, client: nestedClientFields(ctx, at.mode.client, storeKey, named) }
    : at.mode;
  planSelection(
    ctx,
    { ...at, sel: selField.sel, path: [...at.path, storeKey], provided, mode },
    ownReturnType(ctx, subgraph, type, name, named),
    subSelections(nodes),
  );
}

function collectVariables(value: ValueNode, out: Set<string>): void {
  if (value.kind === Kind.VARIABLE) out.add(value.name.value);
  else if (value.kind === Kind.LIST) value.values.forEach((v) => collectVariables(v, out));
  else if (value.kind === Kind.OBJECT) value.fields.forEach((f) => collectVariables(f.value, out));
}

// ---------------------------------------------------------------------------------------------
// Entity jumps

/** Plans `field`, which the subgraph of `at.fetch` cannot resolve (alone), through entity fetches. */
export function planEntityJump(ctx: PlanContext, at: Cursor, field: FieldRef): void {
  const subgraph = at.fetch.subgraph;
  const { type, nodes } = field;
  const name = nodes[0]!.name.value;
  const all = entityCandidates(ctx, subgraph, type, name);
  const possible = all.filter((s) => cost(ctx, s, type, nodes) < IMPOSSIBLE);
  const candidates = possible.length > 0 ? possible : all;
  if (candidates.length === 0)
    throw unreachableField(ctx, subgraph, type, name, pathOf(at, field.responseKey));
  // No subgraph completes the subtree alone: one entity fetch per group of fields.
  if (possible.length === 0 && splitAndJump(ctx, at, field, { candidates: all, keepLocal: false })) return;
  // Planning the key in `subgraph` may need this very jump again (a key field it cannot resolve
  // either): that is a dead end, not a plan.
  const jumpId = `${at.fetch.id}|${at.path.join('.')}|${subgraph.name}|${type.name}.${name}`;
  if (ctx.jumping.has(jumpId))
    throw unreachableField(ctx, subgraph, type, name, pathOf(at, field.responseKey), true);
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
  const subject = `${type.name}.${name}`;
  const fieldPath = () => pathOf(at, field.responseKey);
  // Plans a key or requirement field set into the parent selection; returns how to read it back.
  const internal = (set: SelectionSetNode, need: (inner: string) => string): ReprField[] => {
    const deps = new Set<Fetch>();
    because(subject, fieldPath, need, () =>
      planSelection(ctx, { ...at, mode: { internal: true, client, exclude }, touched: deps }, type, [set]),
    );
    for (const d of deps) if (d !== entity) entity!.deps.add(d);
    return reprFields(ctx, set, type, client);
  };
  const keyNeeds = (inner: string) =>
    `the key of ${type.name} that subgraph "${entity!.subgraph.name}" accepts needs ${inner}`;
  let entityTarget = entity.targets.get(type.name);
  if (entityTarget) {
    // The same entity fetch can be fed from several selections at one path (the field under
    // `... on Book` and under `... on Magazine`): each of them must carry the key.
    const keyed = ctx.keyedSelections.get(entityTarget)!;
    if (!keyed.sels.has(at.sel)) {
      keyed.sels.add(at.sel);
      mergeRepr(entityTarget.fields, internal(keyed.key, keyNeeds));
    }
  } else {
    const keys = resolvableKeys(chosen, type.name);
    const key = keys.find((k) => keyIsLocal(subgraph, type, k.fields)) ?? keys[0]!;
    entityTarget = {
      reprTypename: typeInSubgraph(chosen, type.name),
      fields: internal(key.fields, keyNeeds),
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
  if (requires)
    mergeRepr(
      entityTarget.fields,
      internal(requires, (inner) => `subgraph "${chosen.name}" requires ${inner} for it (@requires)`),
    );
  const inner = fragmentOf(entity.sel, entityTarget.reprTypename);
  planField(ctx, { fetch: entity, sel: inner, path, provided: undefined, mode, touched: at.touched }, field, {
    requiresMet: true,
  });
}

// ---------------------------------------------------------------------------------------------
// Interface objects

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
  if (
    ctx.schema.getPossibleTypes(type).length === 0 ||
    interfaceObjectSuffices(ctx, subgraph, type, selectionSets, provided)
  ) {
    // Nothing here depends on the concrete type (or there is none): serve the fields as the
    // interface, without asking the owner for __typename (which it may not be able to resolve).
    planOnInterface(ctx, at, type, selectionSets);
    return;
  }
  const subject = `the concrete type of ${type.name}`;
  const typePath = path.join('.');
  const owner = ctx.supergraph.subgraphs.find(
    (s) =>
      s.kind === 'graphql' &&
      (s.raw.entityInterfaces ?? []).some((e) => e.interfaceTypeName === type.name) &&
      resolvableKeys(s, type.name).length > 0,
  );
  if (!owner)
    throw new UnresolvableField(
      subject,
      typePath,
      `subgraph "${subgraph.name}" knows ${type.name} only as an @interfaceObject, the selection needs the concrete type (__typename, a type condition, or a field only its implementations resolve), and no subgraph has a resolvable key for the entity interface ${type.name}`,
    );
  const pathKey = `${fetch.id}|${typePath}|${owner.name}|typename`;
  let resolver = ctx.entityFetches.get(pathKey)?.[0];
  if (!resolver) {
    resolver = newFetch(ctx, owner, 'entity', 'query', path);
    resolver.resolvesTypename = true;
    ctx.entityFetches.set(pathKey, [resolver]);
    const key = resolvableKeys(owner, type.name)[0]!;
    const deps = new Set<Fetch>();
    const keyAt: Cursor = { ...at, mode: { ...mode, internal: true }, touched: deps };
    because(
      subject,
      () => typePath,
      (inner) => `the key of ${type.name} that subgraph "${owner.name}" accepts needs ${inner}`,
      () => {
        for (const [responseKey, nodes] of fieldsOf(ctx, asObject, [key.fields]))
          planField(ctx, keyAt, { type: asObject, responseKey, nodes });
      },
    );
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
 * Plans `selectionSets` on interface `type` as if it were an object type: the fields selected on
 * the interface itself, at `at`, each resolved by the cursor's subgraph or through a key of the
 * interface. Fragments on implementations do not apply.
 */
function planOnInterface(
  ctx: PlanContext,
  at: Cursor,
  type: GraphQLInterfaceType,
  selectionSets: readonly SelectionSetNode[],
): void {
  const asObject = type as unknown as GraphQLObjectType;
  const fields = fieldsOf(ctx, asObject, selectionSets);
  const level: Cursor = { ...at, mode: levelMode(at.mode, fields) };
  for (const [responseKey, nodes] of fields) planField(ctx, level, { type: asObject, responseKey, nodes });
}

/** The dot-separated path of `at`, and of the field under `responseKey` there when given, for errors. */
function pathOf(at: Cursor, responseKey?: string): string {
  return (responseKey === undefined ? at.path : [...at.path, responseKey]).join('.');
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
