/**
 * Subgraph choice: a rough cost of resolving a field's subtree starting in one subgraph, and the
 * cheapest of several candidates. The cost counts entity jumps (each one more request on the
 * critical path), so the planner prefers the subgraph that resolves most of a selection itself.
 *
 * Invariants: a cost below `IMPOSSIBLE` means the subtree can be planned from that subgraph
 * (itself or through entity jumps); callers compare against `IMPOSSIBLE`, and otherwise only
 * compare costs with each other. Pure functions of the supergraph and the selection.
 */
import { Kind, getNamedType, isCompositeType, type FieldNode, type GraphQLObjectType } from 'graphql';
import { subSelections } from '../collect.js';
import type { Subgraph } from '../supergraph.js';
import { canResolve, concreteTypes, keyIsLocal, resolvableKeys } from './capabilities.js';
import { fieldsOf, providedFrom, type PlanContext, type Provided } from './context.js';

/**
 * The cost of one field that cannot be reached from the subgraph being costed: it does not
 * resolve the field and no entity jump leads to a subgraph that does. It stands far above any
 * real cost (one per entity jump: a selection would need a thousand of them), so a sum that
 * includes one unreachable field stays at or above it: `cost(...) >= IMPOSSIBLE` reads "this
 * subgraph cannot complete the selection", whatever else the selection holds.
 */
export const IMPOSSIBLE = 1000;

/** How deep below the costed field `cost` descends; the subtrees of deeper fields count as free. */
const MAX_COST_DEPTH = 8;

/**
 * Rough cost of resolving field `nodes` of `type` in `subgraph`: 0 when it resolves the whole
 * subtree, +1 per entity jump, IMPOSSIBLE per field no subgraph can reach from there. `provided`
 * is what a `@provides` above makes resolvable at this position.
 */
export function cost(
  ctx: PlanContext,
  subgraph: Subgraph,
  type: GraphQLObjectType,
  nodes: FieldNode[],
  provided?: Provided,
): number {
  return costAt(ctx, subgraph, type, nodes, provided, 0);
}

function costAt(
  ctx: PlanContext,
  subgraph: Subgraph,
  type: GraphQLObjectType,
  nodes: FieldNode[],
  provided: Provided | undefined,
  depth: number,
): number {
  const name = nodes[0]!.name.value;
  if (name === '__typename') return 0;
  if (!canResolve(subgraph, type.name, name, provided))
    return jumpable(ctx, subgraph, type, name, 0) ? 1 : IMPOSSIBLE;
  const named = getNamedType(type.getFields()[name]?.type);
  if (!named || !isCompositeType(named) || depth > MAX_COST_DEPTH) return 0;
  const childProvided = providedFrom(
    subgraph.provides.get(`${type.name}.${name}`),
    new Map(provided?.get(name) ?? []),
  );
  let total = 0;
  for (const concrete of concreteTypes(ctx, subgraph, named)) {
    for (const [, child] of fieldsOf(ctx, concrete, subSelections(nodes)))
      total += costAt(ctx, subgraph, concrete, child, childProvided, depth + 1);
  }
  return total;
}

/** The candidate with the lowest cost for field `nodes` of `type`; the first one on a tie. */
export function cheapest(
  ctx: PlanContext,
  candidates: Subgraph[],
  type: GraphQLObjectType,
  nodes: FieldNode[],
): Subgraph {
  let best = candidates[0]!;
  let bestCost = Infinity;
  for (const c of candidates) {
    const value = cost(ctx, c, type, nodes);
    if (value < bestCost) [best, bestCost] = [c, value];
  }
  return best;
}

/**
 * Whether `type.name`'s value can be fetched from another subgraph for objects `subgraph` holds:
 * some subgraph resolves it and has a key whose fields `subgraph` supplies, itself or through
 * one more such jump. A type without a key there (a value type reached through an entity) is no
 * way in, however many subgraphs resolve the field.
 */
function jumpable(
  ctx: PlanContext,
  subgraph: Subgraph,
  type: GraphQLObjectType,
  name: string,
  depth: number,
): boolean {
  if (depth > 1) return false;
  return ctx.supergraph.subgraphs.some(
    (s) =>
      s !== subgraph &&
      s.kind === 'graphql' &&
      canResolve(s, type.name, name, undefined) &&
      resolvableKeys(s, type.name).some((k) =>
        k.fields.selections.every(
          (sel) =>
            sel.kind !== Kind.FIELD ||
            keyIsLocal(subgraph, type, { kind: Kind.SELECTION_SET, selections: [sel] }) ||
            (sel.name.value !== name && jumpable(ctx, subgraph, type, sel.name.value, depth + 1)),
        ),
      ),
  );
}
