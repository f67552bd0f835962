/**
 * The walk: a selection is planned per concrete runtime type, field by field, into the fetch of
 * the cursor. A field that fetch's subgraph resolves joins it (its subtree is walked the same
 * way); any other field leaves through an entity jump (`entity-jumps.ts`), and an interface the
 * subgraph knows only as an @interfaceObject goes through `interface-objects.ts`. Those two call
 * back into this walk for the fields they place, so the three modules recurse into each other.
 *
 * Invariants: a field is added to a fetch's selection at most once per store key (later nodes
 * with that key add only their subtrees); every fetch that receives a field is recorded in the
 * cursor's `touched`; the arguments' variables are recorded on the fetch that sends them.
 */
import {
  Kind,
  getNamedType,
  isCompositeType,
  isInterfaceType,
  isObjectType,
  type GraphQLCompositeType,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql';
import { subSelections } from '../collect.js';
import {
  canResolve,
  concreteTypes,
  entityCandidates,
  ownReturnType,
  requiresOf,
  typeInSubgraph,
} from './capabilities.js';
import {
  PlanError,
  fieldsOf,
  fragmentOf,
  levelMode,
  newSubSel,
  providedFrom,
  type Cursor,
  type FieldRef,
  type Mode,
  type PlanContext,
} from './context.js';
import { cost, IMPOSSIBLE } from './cost.js';
import { planEntityJump, splitAndJump } from './entity-jumps.js';
import { planInterfaceObject } from './interface-objects.js';
import { internalStoreKey, nestedClientFields } from './store-keys.js';

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
  for (const concrete of concreteTypes(ctx, subgraph, type)) {
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
  if (!def) throw new PlanError(`type ${type.name} has no field "${name}"`);
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
