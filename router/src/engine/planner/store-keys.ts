/**
 * Where values live in the merged data. A client field is stored under its response key; a field
 * the planner adds for keys, `@requires` or subscription filters (an internal field) under the
 * key `internalStoreKey` gives it. Representations are read back from those same keys
 * (`reprFields`), so the fetch that stores a key field and the entity fetch that sends it agree
 * without talking to each other.
 *
 * Invariants: every function here is a pure function of the client selection and the field set,
 * so two fetches planned apart always compute the same key for the same field.
 */
import {
  Kind,
  getNamedType,
  isAbstractType,
  isObjectType,
  type ArgumentNode,
  type GraphQLCompositeType,
  type GraphQLObjectType,
  type SelectionSetNode,
} from 'graphql';
import { subSelections } from '../collect.js';
import type { ReprField } from '../plan.js';
import { fieldsOf, type ClientFields, type PlanContext } from './context.js';
import { printArgs } from './print.js';

/**
 * Where an internal (planner-added) field lives in the merged data. A field set may pass arguments
 * (`price(currency: "USD")`): such a field shares the client's value only when the client selects
 * the same field with the same arguments under its name; otherwise it is stored under a key derived
 * from the arguments, so requirements with different arguments never share a value.
 */
export function internalStoreKey(
  name: string,
  client: ClientFields,
  args: readonly ArgumentNode[] = [],
): string {
  const printed = printArgs(args);
  const clash = client?.get(name);
  if (!clash) return printed ? `__edfs_${name}_${argsDigest(printed)}` : name;
  const node = clash[0]!;
  if (node.name.value === name && printArgs(node.arguments ?? []) === printed) return name;
  return printed ? `__edfs_${name}_${argsDigest(printed)}` : `__edfs_${name}`;
}

/** A short, stable name fragment for printed arguments (FNV-1a, base 36). */
function argsDigest(printed: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < printed.length; i++) h = Math.imul(h ^ printed.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(36);
}

/** Client fields below `storeKey` (when the client selects the same field), for internal nesting. */
export function nestedClientFields(
  ctx: PlanContext,
  client: ClientFields,
  storeKey: string,
  type: GraphQLCompositeType,
): ClientFields {
  const nodes = client?.get(storeKey);
  if (!nodes || !isObjectType(type)) return undefined;
  return fieldsOf(ctx, type, subSelections(nodes));
}

/** Where each key/required field lives in the merged data (mirrors internal planning). */
export function reprFields(
  ctx: PlanContext,
  set: SelectionSetNode,
  type: GraphQLObjectType,
  client: ClientFields,
  typeCondition?: string,
): ReprField[] {
  const out: ReprField[] = [];
  for (const sel of set.selections) {
    if (sel.kind === Kind.FIELD) {
      const storeKey = internalStoreKey(sel.name.value, client, sel.arguments);
      const field: ReprField = { name: sel.name.value, storeKey };
      if (typeCondition) field.typeCondition = typeCondition;
      if (sel.selectionSet) {
        const child = getNamedType(type.getFields()[sel.name.value]?.type);
        if (child && isObjectType(child))
          field.children = reprFields(
            ctx,
            sel.selectionSet,
            child,
            nestedClientFields(ctx, client, storeKey, child),
          );
        else if (child && isAbstractType(child))
          field.children = ctx.schema
            .getPossibleTypes(child)
            .flatMap((t) => reprFields(ctx, sel.selectionSet!, t, undefined, t.name))
            .filter(
              (f, i, all) =>
                all.findIndex((g) => g.storeKey === f.storeKey && g.typeCondition === f.typeCondition) === i,
            );
      }
      out.push(field);
    } else if (sel.kind === Kind.INLINE_FRAGMENT) {
      const cond = sel.typeCondition?.name.value;
      const condType = cond ? ctx.schema.getType(cond) : type;
      if (condType && isObjectType(condType))
        out.push(...reprFields(ctx, sel.selectionSet, condType, client, cond));
      else if (condType && isAbstractType(condType) && ctx.schema.isSubType(condType, type))
        // `... on Foo` around fields of an object that is a Foo: they apply under the same condition.
        out.push(...reprFields(ctx, sel.selectionSet, type, client, typeCondition));
    }
  }
  return out;
}

/** Adds the fields of `more` that `into` lacks (by store key and type condition), recursively. */
export function mergeRepr(into: ReprField[], more: ReprField[]): void {
  for (const f of more) {
    const existing = into.find((e) => e.storeKey === f.storeKey && e.typeCondition === f.typeCondition);
    if (!existing) into.push(f);
    else if (f.children) mergeRepr((existing.children ??= []), f.children);
  }
}
