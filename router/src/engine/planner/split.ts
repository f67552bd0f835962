/**
 * Splitting a composite field that no single subgraph completes: a value type (no key, so no
 * entity jump into it) that several subgraphs extend with fields. The field's child fields are
 * grouped by a subgraph that resolves the field and completes the group; each group is then
 * fetched as the same field with only that group below it, and the responses merge in the store.
 *
 * Invariants: only used where planning would otherwise fail (every candidate costs IMPOSSIBLE for
 * the whole field); a group never holds a child field its subgraph cannot complete; the result is
 * undefined when some child field has no such subgraph, and the caller reports its usual error.
 * These functions choose the subgraphs; planning the parts is the caller's (root-fields.ts,
 * walk.ts).
 */
import { Kind, getNamedType, isObjectType, type FieldNode, type GraphQLObjectType } from 'graphql';
import { subSelections } from '../collect.js';
import type { Subgraph } from '../supergraph.js';
import { fieldsOf, providedFrom, type FieldRef, type PlanContext, type Provided } from './context.js';
import { cost, IMPOSSIBLE } from './cost.js';
import { rootFieldCandidates } from './capabilities.js';

/** The part of a split field that stays in the subgraph planning it, and the parts that jump. */
export interface FieldSplit {
  /** The field with the child fields the local subgraph completes; undefined when none. */
  local: FieldNode[] | undefined;
  /** The field once per other subgraph, with the child fields that subgraph completes. */
  remote: FieldNode[][];
}

/**
 * Splits field `field` of an entity: the child fields `local` reaches stay there (when given: the
 * subgraph planning the field and what is provided at its position), each other group goes to
 * one of `candidates`, a subgraph that fetches the field for the parent entity and completes that
 * group. Undefined when some child field has no such subgraph, or when nothing would be split.
 */
export function splitField(
  ctx: PlanContext,
  field: FieldRef,
  local: { subgraph: Subgraph; provided: Provided | undefined } | undefined,
  candidates: Subgraph[],
): FieldSplit | undefined {
  const { type, nodes } = field;
  const named = getNamedType(type.getFields()[nodes[0]!.name.value]?.type);
  if (!named || !isObjectType(named)) return undefined;
  const node = nodes[0]!;
  const withChildren = (selections: FieldNode[]): FieldNode[] => [
    { ...node, selectionSet: { kind: Kind.SELECTION_SET, selections } },
  ];
  const here: FieldNode[] = [];
  const groups = new Map<Subgraph, FieldNode[]>();
  for (const [, childNodes] of fieldsOf(ctx, named, subSelections(nodes))) {
    if (local && cost(ctx, local.subgraph, type, withChildren(childNodes), local.provided) < IMPOSSIBLE) {
      here.push(...childNodes);
      continue;
    }
    const owner = candidates.find((c) => cost(ctx, c, type, withChildren(childNodes)) < IMPOSSIBLE);
    if (!owner) return undefined;
    groups.set(owner, [...(groups.get(owner) ?? []), ...childNodes]);
  }
  if (groups.size === 0 || (!local && groups.size < 2)) return undefined;
  return {
    local: here.length > 0 ? withChildren(here) : undefined,
    remote: [...groups.values()].map(withChildren),
  };
}

/**
 * A shareable root field returning a value type (no key, so no entity jumps) whose selection no
 * single subgraph resolves: ask each subgraph for the fields it has, under the same root field,
 * and let the responses merge. Undefined unless at least two subgraphs are needed.
 */
export function splitSharedRoot(
  ctx: PlanContext,
  rootType: GraphQLObjectType,
  name: string,
  nodes: FieldNode[],
): [Subgraph, FieldNode[]][] | undefined {
  const candidates = rootFieldCandidates(ctx, rootType, name);
  if (candidates.length < 2 || candidates.some((c) => cost(ctx, c, rootType, nodes) < IMPOSSIBLE))
    return undefined;
  const named = getNamedType(rootType.getFields()[name]?.type);
  if (!named || !isObjectType(named)) return undefined;
  const groups = new Map<Subgraph, FieldNode[]>();
  for (const [, childNodes] of fieldsOf(ctx, named, subSelections(nodes))) {
    const owner = candidates.find(
      (c) =>
        cost(ctx, c, named, childNodes, providedFrom(c.provides.get(`${rootType.name}.${name}`))) <
        IMPOSSIBLE,
    );
    if (!owner) return undefined;
    groups.set(owner, [...(groups.get(owner) ?? []), ...childNodes]);
  }
  if (groups.size < 2) return undefined;
  const node = nodes[0]!;
  return [...groups].map(([sub, selections]) => [
    sub,
    [{ ...node, selectionSet: { kind: Kind.SELECTION_SET, selections } }],
  ]);
}
