/**
 * Field authorization: `@authenticated` and `@requiresScopes`, enforced before any fetch. The rules
 * come from the execution config (`Supergraph.authorization`); composition has already flattened a
 * directive on a type, interface, scalar or enum onto every field that returns it. Who the client
 * is comes from `RequestContext.auth` (undefined: anonymous); this module only reads it.
 *
 * Per operation (and @include/@skip values), once: `protectedFields` finds every selected field
 * node a rule applies to. A field is judged at its lexical parent type (a fragment's type
 * condition, or the type of the field it is selected under); selected on an interface, the rules
 * of the interface field and of every implementation's field all apply.
 * Per request: `denyFields` checks those nodes against the client. With nothing denied the
 * request runs the operation's own plan, so an operation that selects no protected field pays a
 * cached empty list and nothing else.
 * A denied field is never sent to a subgraph: `authorizedPlan` plans the operation without the
 * denied nodes (a selection set left empty selects `__typename`) and shapes the response from the
 * full operation, where each denied field is null with an `UNAUTHORIZED_FIELD_OR_TYPE` error at
 * its path (null propagation as for any field error).
 *
 * Invariant: what a client gets depends only on `Denial.key` (the denied coordinates, and whether
 * the client is authenticated), which keys the pruned plan in the plan cache, so one client's
 * authorization never reaches another's response; and equal keys share one plan object, which is
 * what subscription groups key on.
 */
import {
  Kind,
  getNamedType,
  isCompositeType,
  isInterfaceType,
  isObjectType,
  visit,
  type FieldNode,
  type GraphQLCompositeType,
  type GraphQLFormattedError,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import { isIncluded, type Fragments } from './collect.js';
import type { Plan } from './plan.js';
import { planOperation, type PlanOptions } from './planner/index.js';
import { buildShape } from './shape.js';
import type { FieldAuthorization, Supergraph } from './supergraph.js';
import type { AuthContext } from './types.js';

/** `extensions.code` of a field the client may not load (Cosmo's and Apollo's code). */
export const UNAUTHORIZED_FIELD_OR_TYPE = 'UNAUTHORIZED_FIELD_OR_TYPE';

/** A selected field node some rule applies to. */
export interface ProtectedField {
  node: FieldNode;
  /** Response path of its first occurrence (no list indices): for errors of a rejected operation. */
  path: readonly string[];
  /** The protected coordinates ("Type.field") that apply to it. */
  coordinates: readonly string[];
}

/** The protected fields an operation selects with these @include/@skip values; often none. */
export function protectedFields(
  supergraph: Supergraph,
  operation: OperationDefinitionNode,
  fragments: Fragments,
  variables: Record<string, unknown>,
): ProtectedField[] {
  const rules = supergraph.authorization;
  const out: ProtectedField[] = [];
  if (rules.size === 0) return out;
  const schema = supergraph.clientSchema;
  const coordinatesOf = memoCoordinates(supergraph);
  // Each fragment is walked once: its nodes are the same wherever it is spread.
  const walked = new Set<string>();
  const walk = (set: SelectionSetNode, parent: GraphQLCompositeType, path: readonly string[]): void => {
    for (const sel of set.selections) {
      if (!isIncluded(sel.directives, variables)) continue;
      if (sel.kind === Kind.FIELD) {
        const name = sel.name.value;
        if (name.startsWith('__') || !(isObjectType(parent) || isInterfaceType(parent))) continue;
        const def = parent.getFields()[name];
        if (!def) continue;
        const fieldPath = [...path, sel.alias?.value ?? name];
        const coordinates = coordinatesOf(parent, name);
        if (coordinates.length > 0) out.push({ node: sel, path: fieldPath, coordinates });
        const named = getNamedType(def.type);
        if (sel.selectionSet && isCompositeType(named)) walk(sel.selectionSet, named, fieldPath);
      } else if (sel.kind === Kind.INLINE_FRAGMENT) {
        const type = sel.typeCondition ? schema.getType(sel.typeCondition.name.value) : parent;
        if (type && isCompositeType(type)) walk(sel.selectionSet, type, path);
      } else {
        const name = sel.name.value;
        const fragment = fragments[name];
        if (walked.has(name) || !fragment) continue;
        walked.add(name);
        const type = schema.getType(fragment.typeCondition.name.value);
        if (type && isCompositeType(type)) walk(fragment.selectionSet, type, path);
      }
    }
  };
  const root = schema.getRootType(operation.operation);
  if (root) walk(operation.selectionSet, root, []);
  return out;
}

/** Per parent type and field: the coordinates with a rule (the interface's and its implementations'). */
function memoCoordinates(
  supergraph: Supergraph,
): (parent: GraphQLCompositeType, field: string) => readonly string[] {
  const memo = new Map<string, readonly string[]>();
  const rules = supergraph.authorization;
  return (parent, field) => {
    const own = `${parent.name}.${field}`;
    let found = memo.get(own);
    if (found) return found;
    const candidates = [own];
    if (isInterfaceType(parent))
      for (const type of supergraph.clientSchema.getPossibleTypes(parent))
        candidates.push(`${type.name}.${field}`);
    found = candidates.filter((c) => rules.has(c));
    memo.set(own, found);
    return found;
  };
}

/** What one client may not load of an operation. */
export interface Denial {
  /**
   * Identifies the response's authorization: the denied coordinates and whether the client is
   * authenticated. The plan cache keys the pruned plan by it.
   */
  key: string;
  /** Denied field nodes, each with the error its field answers (without a path). */
  fields: Map<FieldNode, GraphQLFormattedError>;
  /** One error per denied node, at its first path: the answer of a rejected operation. */
  errors: GraphQLFormattedError[];
  /** A root field is denied (a subscription is then refused as a whole). */
  root: boolean;
}

/** The fields of `fields` that `auth` may not load; undefined when it may load them all. */
export function denyFields(
  supergraph: Supergraph,
  fields: readonly ProtectedField[],
  auth: AuthContext | undefined,
): Denial | undefined {
  let denial: Denial | undefined;
  const coordinates = new Set<string>();
  for (const field of fields) {
    let error: GraphQLFormattedError | undefined;
    for (const coordinate of field.coordinates) {
      const reason = refusalReason(supergraph.authorization.get(coordinate)!, auth);
      if (reason === undefined) continue;
      coordinates.add(coordinate);
      error ??= {
        message: `Unauthorized to load field '${coordinate}'. Reason: ${reason}.`,
        extensions: { code: UNAUTHORIZED_FIELD_OR_TYPE },
      };
    }
    if (!error) continue;
    denial ??= { key: '', fields: new Map(), errors: [], root: false };
    denial.fields.set(field.node, error);
    denial.errors.push({ ...error, path: [...field.path] });
    if (field.path.length === 1) denial.root = true;
  }
  if (denial) denial.key = `${auth ? 'auth' : 'anon'}:${[...coordinates].sort().join(',')}`;
  return denial;
}

/**
 * Why `auth` may not load a field with `rule`, or undefined when it may. Depends only on the rule
 * and on whether the client is authenticated, never on its own scopes: the text is cached in
 * plans that clients with different scopes share.
 */
function refusalReason(rule: FieldAuthorization, auth: AuthContext | undefined): string | undefined {
  if (!auth) return rule.requiresAuthentication ? 'not authenticated' : undefined;
  if (rule.orScopes.length === 0 || rule.orScopes.some((and) => and.every((s) => auth.scopes.has(s))))
    return undefined;
  const sets = rule.orScopes.map((and) => `(${and.map((s) => `'${s}'`).join(' AND ')})`);
  return `required scopes: ${sets.join(' OR ')}`;
}

/**
 * The plan of `operation` for a client denied `denial`: fetches planned without the denied nodes,
 * the response shaped from the whole operation with the denied fields null and their errors.
 */
export function authorizedPlan(
  supergraph: Supergraph,
  operation: OperationDefinitionNode,
  fragments: Fragments,
  variables: Record<string, unknown>,
  denial: Denial,
  options: PlanOptions,
): Plan {
  const denied = denial.fields;
  const prune = <T extends OperationDefinitionNode | Fragments[string]>(definition: T): T =>
    visit(definition, {
      Field: (node) => (denied.has(node) ? null : undefined),
      SelectionSet: {
        leave: (node) =>
          node.selections.length > 0
            ? undefined
            : { ...node, selections: [{ kind: Kind.FIELD, name: { kind: Kind.NAME, value: '__typename' } }] },
      },
    });
  const prunedFragments: Fragments = {};
  for (const [name, fragment] of Object.entries(fragments)) prunedFragments[name] = prune(fragment);
  const planned = planOperation(supergraph, prune(operation), prunedFragments, variables, options);
  return {
    ...planned,
    shape: buildShape(
      supergraph.clientSchema,
      planned.shape.typeName,
      [operation.selectionSet],
      fragments,
      variables,
      denied,
    ),
  };
}
