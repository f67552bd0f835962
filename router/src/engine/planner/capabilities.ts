/**
 * What one subgraph can do for the planner: which fields it resolves (itself, or where a
 * `@provides` says so), which entity keys it accepts, which concrete types it can return at an
 * abstract position, and which other subgraphs can take over a field by key.
 *
 * Invariants: pure questions about the supergraph; nothing here reads or changes the plan under
 * construction. A type a subgraph knows only as an @interfaceObject is answered through the
 * interface (its fields, keys and `@requires` are declared there).
 */
import {
  Kind,
  getNamedType,
  isAbstractType,
  isObjectType,
  type GraphQLCompositeType,
  type GraphQLObjectType,
  type SelectionSetNode,
} from 'graphql';
import type { PlanContext, Provided } from './context.js';
import type { Subgraph } from '../supergraph.js';

type GraphQLOutputTypeLike = Parameters<typeof getNamedType>[0];

export function canResolve(
  subgraph: Subgraph,
  typeName: string,
  field: string,
  provided: Provided | undefined,
): boolean {
  const own =
    subgraph.fields.get(typeName) ?? subgraph.fields.get(subgraph.interfaceObjectOf.get(typeName) ?? '');
  if (own?.has(field)) return true;
  if (provided?.has(field) && subgraph.external.get(typeName)?.has(field)) return true;
  return false;
}

/** The @requires field set of `typeName.field` in `subgraph`, also when it is declared on the @interfaceObject. */
export function requiresOf(
  subgraph: Subgraph,
  typeName: string,
  field: string,
): SelectionSetNode | undefined {
  const own = subgraph.requires.get(`${typeName}.${field}`);
  if (own) return own;
  const viaInterface = subgraph.interfaceObjectOf.get(typeName);
  return viaInterface ? subgraph.requires.get(`${viaInterface}.${field}`) : undefined;
}

/** The name `subgraph` knows `typeName` by: the interface for a type it sees as an @interfaceObject. */
export function typeInSubgraph(subgraph: Subgraph, typeName: string): string {
  return subgraph.interfaceObjectOf.get(typeName) ?? typeName;
}

export function resolvableKeys(subgraph: Subgraph, typeName: string) {
  const own = subgraph.keys.get(typeName) ?? [];
  const viaInterface = subgraph.interfaceObjectOf.get(typeName);
  const keys = own.length > 0 ? own : viaInterface ? (subgraph.keys.get(viaInterface) ?? []) : [];
  return keys.filter((k) => k.resolvable);
}

/** Whether `subgraph` can supply every field of `set` on `type` without another fetch. */
export function keyIsLocal(subgraph: Subgraph, type: GraphQLObjectType, set: SelectionSetNode): boolean {
  for (const sel of set.selections) {
    if (sel.kind !== Kind.FIELD) continue;
    const name = sel.name.value;
    const isKeyOf = (subgraph.keys.get(type.name) ?? []).some((k) =>
      k.fields.selections.some((s) => s.kind === Kind.FIELD && s.name.value === name),
    );
    if (!canResolve(subgraph, type.name, name, undefined) && !isKeyOf) return false;
    if (sel.selectionSet) {
      const child = getNamedType(type.getFields()[name]?.type);
      if (!child || !isObjectType(child) || !keyIsLocal(subgraph, child, sel.selectionSet)) return false;
    }
  }
  return true;
}

/** Whether `subgraph` knows the supergraph interface `typeName` as an @interfaceObject (an object type). */
export function isInterfaceObjectIn(subgraph: Subgraph, typeName: string): boolean {
  return subgraph.kind === 'graphql' && !!subgraph.schema && isObjectType(subgraph.schema.getType(typeName));
}

/** The concrete types an object at a position of `type` can have when `subgraph` returns it. */
export function concreteTypes(
  ctx: PlanContext,
  subgraph: Subgraph,
  type: GraphQLCompositeType,
): readonly GraphQLObjectType[] {
  if (isObjectType(type)) return [type];
  const possible = ctx.schema.getPossibleTypes(type);
  const own = subgraph.schema;
  if (!own) return possible.filter((t) => subgraph.fields.has(t.name) || subgraph.keys.has(t.name));
  const ownAbstract = own.getType(type.name);
  return possible.filter((t) => {
    const ownType = own.getType(t.name);
    if (!ownType || !isObjectType(ownType)) return false;
    if (ownAbstract && isAbstractType(ownAbstract)) return own.isSubType(ownAbstract, ownType);
    return true;
  });
}

/**
 * The type to plan a field's selection against in `subgraph`: the supergraph's return type,
 * unless the subgraph declares the field with one object type where the supergraph has an
 * abstract type (composition widens `book: Book` and `book: Media` to the union). Fragments on
 * the other members would not be valid in that subgraph, and it can only return that type.
 */
export function ownReturnType(
  ctx: PlanContext,
  subgraph: Subgraph,
  parent: GraphQLObjectType,
  field: string,
  named: GraphQLCompositeType,
): GraphQLCompositeType {
  if (isObjectType(named) || !subgraph.schema) return named;
  const ownParent = subgraph.schema.getType(typeInSubgraph(subgraph, parent.name));
  if (!ownParent || !('getFields' in ownParent)) return named;
  const ownField = (ownParent.getFields() as Record<string, { type: GraphQLOutputTypeLike } | undefined>)[
    field
  ];
  const ownNamed = ownField ? getNamedType(ownField.type) : undefined;
  if (!ownNamed || ownNamed.name === named.name || !isObjectType(ownNamed)) return named;
  const narrowed = ctx.schema.getType(ownNamed.name);
  return narrowed && isObjectType(narrowed) ? narrowed : named;
}

/**
 * The subgraphs that can resolve `type`'s field `name` by key for objects `subgraph` holds: they
 * resolve the field and accept a key of `type`. `subgraph` itself only when the field has `@requires` there (such a
 * field is resolved through `_entities` even in its own subgraph).
 */
export function entityCandidates(
  ctx: PlanContext,
  subgraph: Subgraph,
  type: GraphQLObjectType,
  name: string,
): Subgraph[] {
  return ctx.supergraph.subgraphs.filter(
    (s) =>
      (s !== subgraph || requiresOf(s, type.name, name) !== undefined) &&
      s.kind === 'graphql' &&
      canResolve(s, type.name, name, undefined) &&
      resolvableKeys(s, type.name).length > 0,
  );
}

/** The subgraphs that serve root field `name` of `rootType` over HTTP. */
export function rootFieldCandidates(ctx: PlanContext, rootType: GraphQLObjectType, name: string): Subgraph[] {
  return ctx.supergraph.subgraphs.filter(
    (s) => s.kind === 'graphql' && s.fields.get(rootType.name)?.has(name),
  );
}
