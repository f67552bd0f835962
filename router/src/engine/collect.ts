/**
 * Field collection as in the GraphQL spec (CollectFields): merges fields by response key for one
 * concrete runtime type, following fragments whose type condition applies and honouring
 * @include/@skip with the request's variable values.
 */
import {
  Kind,
  isAbstractType,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLObjectType,
  type GraphQLSchema,
  type SelectionSetNode,
  type DirectiveNode,
  type ValueNode,
} from 'graphql';

export type Fragments = Record<string, FragmentDefinitionNode>;

export function conditionValue(value: ValueNode, variables: Record<string, unknown>): boolean {
  if (value.kind === Kind.BOOLEAN) return value.value;
  if (value.kind === Kind.VARIABLE) return variables[value.name.value] === true;
  return false;
}

export function isIncluded(
  directives: readonly DirectiveNode[] | undefined,
  variables: Record<string, unknown>,
): boolean {
  if (!directives) return true;
  for (const d of directives) {
    const arg = d.arguments?.find((a) => a.name.value === 'if');
    if (!arg) continue;
    if (d.name.value === 'skip' && conditionValue(arg.value, variables)) return false;
    if (d.name.value === 'include' && !conditionValue(arg.value, variables)) return false;
  }
  return true;
}

export function typeConditionApplies(
  schema: GraphQLSchema,
  condition: string | undefined,
  type: GraphQLObjectType,
): boolean {
  if (!condition || condition === type.name) return true;
  const cond = schema.getType(condition);
  if (!cond || !isAbstractType(cond)) return false;
  return schema.isSubType(cond, type);
}

export function collectFields(
  schema: GraphQLSchema,
  type: GraphQLObjectType,
  selectionSets: readonly SelectionSetNode[],
  fragments: Fragments,
  variables: Record<string, unknown>,
  out: Map<string, FieldNode[]> = new Map(),
  visited: Set<string> = new Set(),
): Map<string, FieldNode[]> {
  for (const set of selectionSets) {
    for (const sel of set.selections) {
      if (!isIncluded(sel.directives, variables)) continue;
      if (sel.kind === Kind.FIELD) {
        const key = sel.alias?.value ?? sel.name.value;
        const list = out.get(key);
        if (list) list.push(sel);
        else out.set(key, [sel]);
      } else if (sel.kind === Kind.INLINE_FRAGMENT) {
        if (!typeConditionApplies(schema, sel.typeCondition?.name.value, type)) continue;
        collectFields(schema, type, [sel.selectionSet], fragments, variables, out, visited);
      } else {
        const name = sel.name.value;
        if (visited.has(name)) continue;
        visited.add(name);
        const frag = fragments[name];
        if (!frag || !typeConditionApplies(schema, frag.typeCondition.name.value, type)) continue;
        collectFields(schema, type, [frag.selectionSet], fragments, variables, out, visited);
      }
    }
  }
  return out;
}

export function subSelections(nodes: readonly FieldNode[]): SelectionSetNode[] {
  const out: SelectionSetNode[] = [];
  for (const n of nodes) if (n.selectionSet) out.push(n.selectionSet);
  return out;
}
