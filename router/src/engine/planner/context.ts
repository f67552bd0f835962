/**
 * The planning state and the values passed through the walk, in the manner of graphql-js's
 * `ExecutionContext`: one `PlanContext` per `planOperation` call holds what is fixed for the
 * operation (supergraph, operation, fragments, variables, options) and the plan under
 * construction (fetches and the indexes over them); a `Cursor` says where in that plan the
 * selection being walked goes.
 *
 * Invariants: a context is used for one operation and dropped when its plan is returned; the
 * fetch list only grows during the walk (batching then merges it, see `batching.ts`); a
 * cursor's fields are resolved by the subgraph of its fetch (`cursor.fetch.subgraph`).
 */
import type {
  FieldNode,
  GraphQLObjectType,
  GraphQLSchema,
  OperationDefinitionNode,
  SelectionSetNode,
} from 'graphql';
import { Kind } from 'graphql';
import { collectFields, type Fragments } from '../collect.js';
import type { EntityTarget, Fetch, SubSel } from '../plan.js';
import type { Subgraph, Supergraph } from '../supergraph.js';

export interface PlanOptions {
  /**
   * One request per subgraph per planning step (default). `false` keeps one entity fetch per
   * (parent fetch, path, subgraph), as planned: for comparisons and benchmarks only.
   */
  batchEntities?: boolean;
}

export interface PlanContext {
  readonly supergraph: Supergraph;
  /** `supergraph.schema`: the full router schema, which planning runs against. */
  readonly schema: GraphQLSchema;
  readonly operation: OperationDefinitionNode;
  readonly fragments: Fragments;
  readonly variables: Record<string, unknown>;
  readonly options: PlanOptions;
  /** Every fetch planned so far; a fetch's id is its index here until batching merges fetches. */
  readonly fetches: Fetch[];
  /**
   * Entity fetches by `<parent fetch id>|<path>|<subgraph>`, and the fetch that resolves the
   * concrete type of @interfaceObject entities by `<parent fetch id>|<path>|<subgraph>|typename`.
   */
  readonly entityFetches: Map<string, Fetch[]>;
  /** Per entity target: its key and the selections the key has been planned into. */
  readonly keyedSelections: Map<EntityTarget, { key: SelectionSetNode; sels: Set<SubSel> }>;
  /** Entity jumps being planned (fetch, path, from subgraph, field), to stop a key that needs itself. */
  readonly jumping: Set<string>;
}

export function createPlanContext({
  supergraph,
  operation,
  fragments,
  variables,
  options,
}: {
  supergraph: Supergraph;
  operation: OperationDefinitionNode;
  fragments: Fragments;
  variables: Record<string, unknown>;
  options: PlanOptions;
}): PlanContext {
  return {
    supergraph,
    schema: supergraph.schema,
    operation,
    fragments,
    variables,
    options,
    fetches: [],
    entityFetches: new Map(),
    keyedSelections: new Map(),
    jumping: new Set(),
  };
}

/**
 * What a `@provides` lets the current subgraph resolve at the current position: field name ->
 * what is provided below that field. A subgraph resolves a field it declares `@external` only
 * where it is provided (`reviews: [Review] @provides(fields: "author { name }")` makes
 * `author.name` resolvable below `reviews` in that subgraph, and nowhere else). Built by
 * `providedFrom` from `Subgraph.provides` of the field just entered, merged with what the level
 * above provided below that field; `undefined` (or empty) where nothing is provided, such as in
 * every entity fetch, whose objects come from `_entities` rather than from a providing field.
 */
export type Provided = Map<string, Provided>;

/** Adds the fields of a `@provides` field set to `into` (fragments flattened: the tree is by field name). */
export function providedFrom(set: SelectionSetNode | undefined, into: Provided = new Map()): Provided {
  if (!set) return into;
  for (const sel of set.selections) {
    if (sel.kind === Kind.FIELD) {
      const child = into.get(sel.name.value) ?? new Map();
      into.set(sel.name.value, providedFrom(sel.selectionSet, child));
    } else if (sel.kind === Kind.INLINE_FRAGMENT) {
      providedFrom(sel.selectionSet, into);
    }
  }
  return into;
}

/** The client's fields at one level, by response key (`collectFields` output); undefined when unknown. */
export type ClientFields = Map<string, FieldNode[]> | undefined;

/**
 * Whose fields are being planned, which decides where their values are stored.
 *
 * Client mode (`internal: false`) walks the client's own selection: each field is stored under its
 * response key, and `client` is refreshed at every level to that level's client fields. Internal
 * mode (`internal: true`) walks a field set the planner adds: an entity key, a `@requires` field
 * set or the fields a subscription filter reads. Those fields are stored per `internalStoreKey`,
 * which looks at `client` (the client's fields at the same position, followed down through fields
 * the client selects alike) so that a planner-added field never takes a response key the client
 * uses for something else. An entity jump switches to internal mode to plan the key into the
 * parent fetch and returns to the mode it came with for the jumped field itself.
 */
export interface Mode {
  internal: boolean;
  /** Client fields at this level, so internal fields never take a response key the client uses. */
  client: ClientFields;
  /**
   * Entity fetches that must not be joined: while the key or requirements of an entity fetch are
   * planned, a field they need must not be put into that same fetch (it would wait for itself).
   */
  exclude: Set<Fetch>;
}

/** The mode for a client root field; `client` is set to the root fields by the caller. */
export const CLIENT: Mode = { internal: false, client: undefined, exclude: new Set() };

/** The mode for the fields of one level: client mode follows the client's fields down. */
export function levelMode(mode: Mode, fields: ClientFields): Mode {
  return mode.internal ? mode : { ...mode, client: fields };
}

/** Where a selection being walked goes in the plan. */
export interface Cursor {
  /** The fetch the fields join; its subgraph is the one that must resolve them or jump away. */
  readonly fetch: Fetch;
  /** The selection of that fetch the fields are added to. */
  readonly sel: SubSel;
  /** Store keys from the fetch's data root to `sel` (lists walked implicitly). */
  readonly path: string[];
  readonly provided: Provided | undefined;
  readonly mode: Mode;
  /**
   * Collects every fetch the walk adds a field to: whoever needs these fields (an entity fetch
   * needing its key) depends on each of them.
   */
  readonly touched: Set<Fetch>;
}

/** A field to plan: the nodes selecting it under one response key of an object type. */
export interface FieldRef {
  readonly type: GraphQLObjectType;
  readonly responseKey: string;
  readonly nodes: FieldNode[];
}

/** `collectFields` with the operation's fragments and variables. */
export function fieldsOf(
  ctx: PlanContext,
  type: GraphQLObjectType,
  selectionSets: readonly SelectionSetNode[],
): Map<string, FieldNode[]> {
  return collectFields(ctx.schema, type, selectionSets, ctx.fragments, ctx.variables);
}

export function newSubSel(): SubSel {
  return { fields: new Map(), fragments: new Map() };
}

/** The fragment of `sub` on `typeName`, created empty when missing. */
export function fragmentOf(sub: SubSel, typeName: string): SubSel {
  let frag = sub.fragments.get(typeName);
  if (!frag) sub.fragments.set(typeName, (frag = newSubSel()));
  return frag;
}

export function newFetch(
  ctx: PlanContext,
  subgraph: Subgraph,
  kind: Fetch['kind'],
  operationType: Fetch['operationType'],
  path: string[],
): Fetch {
  const fetch: Fetch = {
    id: ctx.fetches.length,
    subgraph,
    kind,
    operationType,
    sel: newSubSel(),
    path,
    targets: new Map(),
    deps: new Set(),
    variables: new Set(),
    query: '',
  };
  ctx.fetches.push(fetch);
  return fetch;
}
