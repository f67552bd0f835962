/**
 * The query planner. Hand-written because it is the product's core: it turns a client operation
 * into subgraph Fetches over the execution config's datasources.
 *
 * Method: walk the client selection per concrete runtime type, starting in the subgraph that owns
 * each root field. A field the current subgraph resolves joins the current fetch; any other field
 * opens (or joins) an entity fetch to a subgraph that resolves it, keyed by (parent fetch, path,
 * subgraph), so every object at one path for one subgraph goes in one `_entities` request. The
 * parent fetch is extended with the key fields and any @requires fields (planned the same way, so
 * requirements that live in a third subgraph become fetches of their own and dependencies). A
 * value no single subgraph completes (a value type several subgraphs extend, reached through an
 * entity) is split: each group of its fields is fetched through the parent entity from a
 * subgraph that has them.
 *
 * Batching: when the walk is done, the entity fetches of one subgraph at one planning step (depth
 * in the dependency graph) are merged into one fetch, so an operation costs at most one request
 * per subgraph per step however many aliases, list items or sibling paths need that subgraph.
 * Inside that request, paths whose selections are identical or concern disjoint types share one
 * `_entities` field (each representation sent once); a type selected differently at two paths
 * gets a second, aliased `_entities` field rather than a merged selection, so no path's fields
 * (and their `@requires`) are applied to another path's representations. See
 * `batchEntityFetches`.
 *
 * Invariants: a client field is stored under its response key; a field the planner adds for keys
 * or requirements is stored under its name unless the client uses that response key for another
 * field, then under `__edfs_<name>` (`__edfs_<name>_<digest of the arguments>` for a field set
 * field with arguments that the client does not select alike). Both rules are pure functions of
 * the client selection, so every fetch agrees on where a value lives. The one place a subgraph's
 * response uses other keys: sibling type fragments that select one key with different types in
 * that subgraph are printed with aliases, and the executor renames them back before merging
 * (`Fetch.renames`).
 */
import {
  Kind,
  parse,
  getNamedType,
  isCompositeType,
  isObjectType,
  isAbstractType,
  print,
  type ArgumentNode,
  type FieldNode,
  type GraphQLCompositeType,
  type GraphQLInterfaceType,
  isInterfaceType,
  type GraphQLObjectType,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValueNode,
  type VariableDefinitionNode,
} from 'graphql';
import { compileFilter } from '../event-fields/filter.js';
import { collectFields, subSelections, type Fragments } from './collect.js';
import type {
  EntityCall,
  EntityPart,
  EntityTarget,
  EventSource,
  Fetch,
  Plan,
  Rename,
  ReprField,
  SelField,
  SubSel,
} from './plan.js';
import { buildShape } from './shape.js';
import type { EventField, Subgraph, Supergraph } from './supergraph.js';

export class PlanError extends Error {
  override name = 'PlanError';
}

type Provided = Map<string, Provided>;

const IMPOSSIBLE = 1000;
type ClientFields = Map<string, FieldNode[]> | undefined;
type GraphQLOutputTypeLike = Parameters<typeof getNamedType>[0];

interface Mode {
  internal: boolean;
  /** Client fields at this level, so internal fields never take a response key the client uses. */
  client: ClientFields;
  /** Entity fetches that must not be joined (the fetch whose requirements are being planned). */
  exclude: Set<Fetch>;
}

const CLIENT: Mode = { internal: false, client: undefined, exclude: new Set() };

export function newSubSel(): SubSel {
  return { fields: new Map(), fragments: new Map() };
}

function providedFrom(set: SelectionSetNode | undefined, into: Provided = new Map()): Provided {
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

function collectVariables(value: ValueNode, out: Set<string>): void {
  if (value.kind === Kind.VARIABLE) out.add(value.name.value);
  else if (value.kind === Kind.LIST) value.values.forEach((v) => collectVariables(v, out));
  else if (value.kind === Kind.OBJECT) value.fields.forEach((f) => collectVariables(f.value, out));
}

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

export interface PlanOptions {
  /**
   * One request per subgraph per planning step (default). `false` keeps one entity fetch per
   * (parent fetch, path, subgraph), as planned: for comparisons and benchmarks only.
   */
  batchEntities?: boolean;
}

export function planOperation(
  supergraph: Supergraph,
  operation: OperationDefinitionNode,
  fragments: Fragments,
  variables: Record<string, unknown>,
  options: PlanOptions = {},
): Plan {
  return new Planner(supergraph, operation, fragments, variables, options).plan();
}

class Planner {
  private readonly fetches: Fetch[] = [];
  private readonly entityFetches = new Map<string, Fetch[]>();
  /** Per entity target: its key and the selections the key has been planned into. */
  private readonly keyedSelections = new Map<EntityTarget, { key: SelectionSetNode; sels: Set<SubSel> }>();
  /** Entity jumps being planned (fetch, path, from subgraph, field), to stop a key that needs itself. */
  private readonly jumping = new Set<string>();
  private readonly schema;

  constructor(
    private readonly supergraph: Supergraph,
    private readonly operation: OperationDefinitionNode,
    private readonly fragments: Fragments,
    private readonly variables: Record<string, unknown>,
    private readonly options: PlanOptions = {},
  ) {
    this.schema = supergraph.schema;
  }

  plan(): Plan {
    const opType = this.operation.operation;
    const rootType =
      opType === 'query'
        ? this.schema.getQueryType()
        : opType === 'mutation'
          ? this.schema.getMutationType()
          : this.schema.getSubscriptionType();
    if (!rootType) throw new PlanError(`the schema has no ${opType} type`);
    const fields = collectFields(
      this.schema,
      rootType,
      [this.operation.selectionSet],
      this.fragments,
      this.variables,
    );
    const introspectionKeys: string[] = [];
    let previous: Fetch | undefined;
    let subscription: EventSource | undefined;
    for (const [key, nodes] of fields) {
      const name = nodes[0]!.name.value;
      if (name === '__typename') continue;
      if (name === '__schema' || name === '__type') {
        introspectionKeys.push(key);
        continue;
      }
      const eventField = this.supergraph.eventFields.get(`${rootType.name}.${name}`);
      let fetch: Fetch;
      if (eventField) {
        // Each event-driven root field is its own broker operation; in a mutation it still runs in order.
        fetch = this.newFetch(eventField.subgraph, 'root', opType === 'mutation' ? 'mutation' : 'query', []);
        if (opType === 'mutation') for (const f of this.fetches) if (f !== fetch) fetch.deps.add(f);
        fetch.event = this.eventSource(eventField, rootType, key, nodes);
        if (opType === 'subscription') subscription = fetch.event;
        previous = undefined;
      } else if (opType === 'subscription') {
        throw new PlanError(
          `${rootType.name}.${name} is not event-driven: subscriptions are served from brokers (@edfs__natsSubscribe, @edfs__kafkaSubscribe)`,
        );
      } else {
        const split = opType === 'query' ? this.splitSharedRoot(rootType, name, nodes) : undefined;
        if (split) {
          for (const [sub, subNodes] of split) {
            const part =
              this.fetches.find((f) => f.kind === 'root' && !f.event && f.subgraph === sub) ??
              this.newFetch(sub, 'root', 'query', []);
            this.planField(part, sub, rootType, key, subNodes, part.sel, [], undefined, {
              ...CLIENT,
              client: fields,
            });
          }
          continue;
        }
        fetch = this.httpRootFetch(opType, rootType, name, nodes, previous);
        if (opType === 'mutation') previous = fetch;
      }
      this.planField(fetch, fetch.subgraph, rootType, key, nodes, fetch.sel, [], undefined, {
        ...CLIENT,
        client: fields,
      });
      if (fetch.event?.filter !== undefined) this.planFilterFields(fetch, fetch.event, nodes);
    }
    this.batchEntityFetches();
    for (const f of this.fetches) {
      f.query = this.printFetch(f);
      if (f.renames?.length === 0) delete f.renames;
    }
    const introspection =
      introspectionKeys.length > 0
        ? { responseKeys: introspectionKeys, document: this.introspectionDocument(introspectionKeys, fields) }
        : undefined;
    return {
      operationType: opType,
      subscription,
      fetches: this.fetches,
      shape: buildShape(
        this.supergraph.clientSchema,
        rootType.name,
        [this.operation.selectionSet],
        this.fragments,
        this.variables,
      ),
      introspection,
    };
  }

  /** The subgraph fetch for an HTTP root field (queries share a fetch per subgraph; mutations run in order). */
  private httpRootFetch(
    opType: 'query' | 'mutation',
    rootType: GraphQLObjectType,
    name: string,
    nodes: FieldNode[],
    previous: Fetch | undefined,
  ): Fetch {
    const candidates = this.supergraph.subgraphs.filter(
      (s) => s.kind === 'graphql' && s.fields.get(rootType.name)?.has(name),
    );
    if (candidates.length === 0)
      throw new PlanError(`no subgraph resolves the root field ${rootType.name}.${name}`);
    if (opType === 'mutation') {
      // Mutation root fields run in order: consecutive fields of one subgraph share a request
      // (the subgraph runs them serially); a new subgraph waits for everything planned so far.
      const sub =
        previous &&
        candidates.includes(previous.subgraph) &&
        this.cost(previous.subgraph, rootType, nodes) < IMPOSSIBLE
          ? previous.subgraph
          : this.cheapest(candidates, rootType, nodes);
      if (previous && previous.subgraph === sub) return previous;
      const fetch = this.newFetch(sub, 'root', 'mutation', []);
      for (const f of this.fetches) if (f !== fetch) fetch.deps.add(f);
      return fetch;
    }
    const best = this.cheapest(candidates, rootType, nodes);
    const bestCost = this.cost(best, rootType, nodes);
    const existing = this.fetches.find(
      (f) =>
        f.kind === 'root' &&
        !f.event &&
        candidates.includes(f.subgraph) &&
        this.cost(f.subgraph, rootType, nodes) <= bestCost,
    );
    return existing ?? this.newFetch(best, 'root', 'query', []);
  }

  /**
   * A shareable root field returning a value type (no key, so no entity jumps) whose selection no
   * single subgraph resolves: ask each subgraph for the fields it has, under the same root field,
   * and let the responses merge. Only used where planning would otherwise fail.
   */
  private splitSharedRoot(
    rootType: GraphQLObjectType,
    name: string,
    nodes: FieldNode[],
  ): [Subgraph, FieldNode[]][] | undefined {
    const candidates = this.supergraph.subgraphs.filter(
      (s) => s.kind === 'graphql' && s.fields.get(rootType.name)?.has(name),
    );
    if (candidates.length < 2 || candidates.some((c) => this.cost(c, rootType, nodes) < IMPOSSIBLE))
      return undefined;
    const named = getNamedType(rootType.getFields()[name]?.type);
    if (!named || !isObjectType(named)) return undefined;
    const groups = new Map<Subgraph, FieldNode[]>();
    const children = collectFields(this.schema, named, subSelections(nodes), this.fragments, this.variables);
    for (const [, childNodes] of children) {
      const owner = candidates.find(
        (c) =>
          this.cost(c, named, childNodes, providedFrom(c.provides.get(`${rootType.name}.${name}`))) <
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

  private eventSource(
    field: EventField,
    rootType: GraphQLObjectType,
    responseKey: string,
    nodes: FieldNode[],
  ): EventSource {
    const node = nodes[0]!;
    const def = rootType.getFields()[node.name.value]!;
    return {
      type: field.type,
      providerKind: field.providerKind,
      providerId: field.providerId,
      subjects: field.subjects,
      stream: field.stream,
      parentType: rootType.name,
      fieldName: node.name.value,
      responseKey,
      args: node.arguments ?? [],
      returnType: getNamedType(def.type).name,
      filter: this.supergraph.subscriptionFilters.get(`${rootType.name}.${node.name.value}`),
    };
  }

  /**
   * The fields a subscription filter reads must be in the resolved data even when the client does
   * not select them: plan them as internal fields (stored under their name, or `__edfs_<name>` when
   * the client uses that response key for something else).
   */
  private planFilterFields(fetch: Fetch, event: EventSource, nodes: FieldNode[]): void {
    const field = `${event.parentType}.${event.fieldName}`;
    let paths: string[][];
    try {
      paths = compileFilter(event.filter, { field }).fieldPaths();
    } catch (err) {
      throw new PlanError((err as Error).message);
    }
    if (paths.length === 0) return;
    const type = this.schema.getType(event.returnType);
    if (!type || !isCompositeType(type)) return;
    const text = paths
      .map((p) => p.reduceRight((inner, name) => (inner ? `${name} { ${inner} }` : name), ''))
      .join(' ');
    const set = parseFieldSetText(text, `the subscription filter of ${event.parentType}.${event.fieldName}`);
    const target = fetch.sel.fields.get(event.responseKey)?.sel;
    if (!target) return;
    const client = isObjectType(type)
      ? collectFields(this.schema, type, subSelections(nodes), this.fragments, this.variables)
      : undefined;
    this.planSelection(
      fetch,
      fetch.subgraph,
      type,
      [set],
      target,
      [event.responseKey],
      undefined,
      { internal: true, client, exclude: new Set() },
      new Set(),
    );
  }

  private introspectionDocument(keys: string[], fields: Map<string, FieldNode[]>) {
    const selections = keys.flatMap((k) => fields.get(k) ?? []);
    return {
      kind: Kind.DOCUMENT,
      definitions: [
        { ...this.operation, selectionSet: { kind: Kind.SELECTION_SET, selections } },
        ...Object.values(this.fragments),
      ],
    } as import('graphql').DocumentNode;
  }

  private newFetch(
    subgraph: Subgraph,
    kind: Fetch['kind'],
    operationType: Fetch['operationType'],
    path: string[],
  ): Fetch {
    const fetch: Fetch = {
      id: this.fetches.length,
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
    this.fetches.push(fetch);
    return fetch;
  }

  /** The concrete types an object at a position of `type` can have when `subgraph` returns it. */
  private concreteTypes(subgraph: Subgraph, type: GraphQLCompositeType): readonly GraphQLObjectType[] {
    if (isObjectType(type)) return [type];
    const possible = this.schema.getPossibleTypes(type);
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

  private canResolve(
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

  private planSelection(
    fetch: Fetch,
    subgraph: Subgraph,
    type: GraphQLCompositeType,
    selectionSets: readonly SelectionSetNode[],
    sub: SubSel,
    path: string[],
    provided: Provided | undefined,
    mode: Mode,
    touched: Set<Fetch>,
  ): void {
    if (isInterfaceType(type) && subgraph.schema && isObjectType(subgraph.schema.getType(type.name))) {
      this.planInterfaceObject(fetch, subgraph, type, selectionSets, sub, path, provided, mode, touched);
      return;
    }
    for (const concrete of this.concreteTypes(subgraph, type)) {
      const target = isObjectType(type) ? sub : fragmentOf(sub, typeInSubgraph(subgraph, concrete.name));
      const fields = collectFields(this.schema, concrete, selectionSets, this.fragments, this.variables);
      const levelMode = mode.internal ? mode : { ...mode, client: fields };
      for (const [key, nodes] of fields)
        this.planField(fetch, subgraph, concrete, key, nodes, target, path, provided, levelMode, touched);
    }
  }

  private planField(
    fetch: Fetch,
    subgraph: Subgraph,
    type: GraphQLObjectType,
    responseKey: string,
    nodes: FieldNode[],
    target: SubSel,
    path: string[],
    provided: Provided | undefined,
    mode: Mode,
    touched: Set<Fetch> = new Set(),
    requiresMet = false,
  ): void {
    const node = nodes[0]!;
    const name = node.name.value;
    if (name === '__typename') return;
    const def = type.getFields()[name];
    if (!def) throw new PlanError(`type ${type.name} has no field "${name}"`);
    // A field with @requires is only resolvable through `_entities`, with the required fields in
    // the representation, even in the subgraph that defines it.
    const needsRequires = !requiresMet && requiresOf(subgraph, type.name, name) !== undefined;
    let jump = needsRequires || !this.canResolve(subgraph, type.name, name, provided);
    if (
      !jump &&
      !requiresMet &&
      isCompositeType(getNamedType(def.type)) &&
      this.cost(subgraph, type, nodes, provided) >= IMPOSSIBLE
    ) {
      // The subtree holds fields this subgraph cannot reach (value types owned elsewhere): fetch
      // the field from a subgraph that resolves all of it, through the parent entity, or else
      // keep what resolves here and fetch the rest that way.
      jump = this.entityCandidates(subgraph, type, name).some((s) => this.cost(s, type, nodes) < IMPOSSIBLE);
      const split = jump
        ? undefined
        : this.splitField(subgraph, type, name, nodes, provided, this.entityCandidates(subgraph, type, name));
      if (split) {
        for (const part of split.remote)
          this.planEntityJump(
            fetch,
            subgraph,
            type,
            responseKey,
            part,
            target,
            path,
            provided,
            mode,
            touched,
          );
        if (!split.local) return;
        nodes = split.local;
      }
    }
    if (jump) {
      this.planEntityJump(fetch, subgraph, type, responseKey, nodes, target, path, provided, mode, touched);
      return;
    }
    const storeKey = mode.internal ? internalStoreKey(name, mode.client, node.arguments) : responseKey;
    let field = target.fields.get(storeKey);
    if (!field) {
      field = { storeKey, name, args: node.arguments ?? [] };
      target.fields.set(storeKey, field);
      for (const arg of field.args) collectVariables(arg.value, fetch.variables);
    }
    touched.add(fetch);
    const named = getNamedType(def.type);
    if (!isCompositeType(named)) return;
    field.sel ??= newSubSel();
    const childProvided = providedFrom(
      subgraph.provides.get(`${type.name}.${name}`),
      new Map(provided?.get(name) ?? []),
    );
    const childMode: Mode = mode.internal
      ? { ...mode, client: this.nestedClientFields(mode.client, storeKey, named) }
      : mode;
    this.planSelection(
      fetch,
      subgraph,
      this.ownReturnType(subgraph, type, name, named),
      subSelections(nodes),
      field.sel,
      [...path, storeKey],
      childProvided,
      childMode,
      touched,
    );
  }

  /**
   * `subgraph` knows interface `type` only as an @interfaceObject, so its objects arrive with the
   * interface as __typename. A fetch to a subgraph that owns the interface entity resolves the
   * concrete type; fields of concrete types are fetched through that fetch.
   */
  private planInterfaceObject(
    fetch: Fetch,
    subgraph: Subgraph,
    type: GraphQLInterfaceType,
    selectionSets: readonly SelectionSetNode[],
    sub: SubSel,
    path: string[],
    provided: Provided | undefined,
    mode: Mode,
    touched: Set<Fetch>,
  ): void {
    if (this.interfaceObjectSuffices(subgraph, type, selectionSets, provided)) {
      // Nothing here depends on the concrete type: serve the fields as the interface, without
      // asking the owner for __typename (which it may not be able to resolve at all).
      const asObject = type as unknown as GraphQLObjectType;
      const fields = collectFields(this.schema, asObject, selectionSets, this.fragments, this.variables);
      const levelMode = mode.internal ? mode : { ...mode, client: fields };
      for (const [key, nodes] of fields)
        this.planField(fetch, subgraph, asObject, key, nodes, sub, path, provided, levelMode, touched);
      return;
    }
    const owner = this.supergraph.subgraphs.find(
      (s) =>
        s.kind === 'graphql' &&
        (s.raw.entityInterfaces ?? []).some((e) => e.interfaceTypeName === type.name) &&
        this.resolvableKeys(s, type.name).length > 0,
    );
    if (!owner)
      throw new PlanError(
        `cannot resolve the concrete type of ${type.name}: no subgraph owns it as an entity interface`,
      );
    const pathKey = `${fetch.id}|${path.join('.')}|${owner.name}|typename`;
    let resolver = this.entityFetches.get(pathKey)?.[0];
    if (!resolver) {
      resolver = this.newFetch(owner, 'entity', 'query', path);
      resolver.resolvesTypename = true;
      this.entityFetches.set(pathKey, [resolver]);
      const key = this.resolvableKeys(owner, type.name)[0]!;
      const deps = new Set<Fetch>();
      const keyFields = collectFields(
        this.schema,
        type as unknown as GraphQLObjectType,
        [key.fields],
        this.fragments,
        this.variables,
      );
      for (const [k, nodes] of keyFields)
        this.planField(
          fetch,
          subgraph,
          type as unknown as GraphQLObjectType,
          k,
          nodes,
          sub,
          path,
          provided,
          { ...mode, internal: true },
          deps,
        );
      for (const d of deps) resolver.deps.add(d);
      resolver.targets.set(type.name, {
        reprTypename: type.name,
        fields: this.reprFields(
          key.fields,
          type as unknown as GraphQLObjectType,
          mode.internal ? mode.client : undefined,
        ),
      });
    }
    for (const concrete of this.schema.getPossibleTypes(type)) {
      const fields = collectFields(this.schema, concrete, selectionSets, this.fragments, this.variables);
      const levelMode = mode.internal ? mode : { ...mode, client: fields };
      for (const [key, nodes] of fields) {
        const name = nodes[0]!.name.value;
        if (name === '__typename') continue;
        if (type.getFields()[name] && this.canResolve(subgraph, type.name, name, provided))
          this.planField(
            fetch,
            subgraph,
            type as unknown as GraphQLObjectType,
            key,
            nodes,
            sub,
            path,
            provided,
            levelMode,
            touched,
          );
        else
          this.planField(
            resolver,
            owner,
            concrete,
            key,
            nodes,
            fragmentOf(resolver.sel, concrete.name),
            path,
            undefined,
            levelMode,
            touched,
          );
      }
    }
  }

  /**
   * The type to plan a field's selection against in `subgraph`: the supergraph's return type,
   * unless the subgraph declares the field with one object type where the supergraph has an
   * abstract type (composition widens `book: Book` and `book: Media` to the union). Fragments on
   * the other members would not be valid in that subgraph, and it can only return that type.
   */
  private ownReturnType(
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
    const narrowed = this.schema.getType(ownNamed.name);
    return narrowed && isObjectType(narrowed) ? narrowed : named;
  }

  /**
   * Whether `subgraph` (which knows `type` as an @interfaceObject) can answer the selection without
   * the concrete type: no __typename, no field under a concrete type's condition, and every field
   * resolvable here or in another subgraph that knows the type as an @interfaceObject.
   */
  private interfaceObjectSuffices(
    subgraph: Subgraph,
    type: GraphQLInterfaceType,
    selectionSets: readonly SelectionSetNode[],
    provided: Provided | undefined,
  ): boolean {
    const asObject = type as unknown as GraphQLObjectType;
    const direct = collectFields(this.schema, asObject, selectionSets, this.fragments, this.variables);
    for (const [, nodes] of direct) {
      const name = nodes[0]!.name.value;
      if (name === '__typename') return false;
      if (this.canResolve(subgraph, type.name, name, provided)) {
        if (requiresOf(subgraph, type.name, name)) return false;
        continue;
      }
      // Another @interfaceObject subgraph that resolves the field does not need the concrete type either.
      const other = this.supergraph.subgraphs.some(
        (s) =>
          s !== subgraph &&
          this.isInterfaceObjectIn(s, type.name) &&
          this.canResolve(s, type.name, name, undefined) &&
          !requiresOf(s, type.name, name) &&
          this.resolvableKeys(s, type.name).some((k) => this.keyIsLocal(subgraph, asObject, k.fields)),
      );
      if (!other) return false;
    }
    for (const concrete of this.schema.getPossibleTypes(type)) {
      const fields = collectFields(this.schema, concrete, selectionSets, this.fragments, this.variables);
      if (fields.size !== direct.size) return false;
      for (const key of fields.keys()) if (!direct.has(key)) return false;
    }
    return true;
  }

  /** Whether `subgraph` knows the supergraph interface `typeName` as an @interfaceObject (an object type). */
  private isInterfaceObjectIn(subgraph: Subgraph, typeName: string): boolean {
    return (
      subgraph.kind === 'graphql' && !!subgraph.schema && isObjectType(subgraph.schema.getType(typeName))
    );
  }

  /** Client fields below `storeKey` (when the client selects the same field), for internal nesting. */
  private nestedClientFields(
    client: ClientFields,
    storeKey: string,
    type: GraphQLCompositeType,
  ): ClientFields {
    const nodes = client?.get(storeKey);
    if (!nodes || !isObjectType(type)) return undefined;
    return collectFields(this.schema, type, subSelections(nodes), this.fragments, this.variables);
  }

  private planEntityJump(
    fetch: Fetch,
    subgraph: Subgraph,
    type: GraphQLObjectType,
    responseKey: string,
    nodes: FieldNode[],
    target: SubSel,
    path: string[],
    provided: Provided | undefined,
    mode: Mode,
    touched: Set<Fetch>,
  ): void {
    const name = nodes[0]!.name.value;
    const all = this.entityCandidates(subgraph, type, name);
    const possible = all.filter((s) => this.cost(s, type, nodes) < IMPOSSIBLE);
    const candidates = possible.length > 0 ? possible : all;
    if (candidates.length === 0)
      throw new PlanError(
        `cannot plan ${type.name}.${name}: subgraph "${subgraph.name}" does not resolve it and no other subgraph can fetch ${type.name} by key`,
      );
    if (possible.length === 0) {
      // No subgraph completes the subtree alone: one entity fetch per group of fields.
      const split = this.splitField(undefined, type, name, nodes, undefined, all);
      if (split) {
        for (const part of split.remote)
          this.planEntityJump(
            fetch,
            subgraph,
            type,
            responseKey,
            part,
            target,
            path,
            provided,
            mode,
            touched,
          );
        return;
      }
    }
    // Planning the key in `subgraph` may need this very jump again (a key field it cannot resolve
    // either): that is a dead end, not a plan.
    const jumpId = `${fetch.id}|${path.join('.')}|${subgraph.name}|${type.name}.${name}`;
    if (this.jumping.has(jumpId))
      throw new PlanError(
        `cannot plan ${type.name}.${name}: subgraph "${subgraph.name}" cannot supply the key of any subgraph that resolves it`,
      );
    this.jumping.add(jumpId);
    try {
      this.planEntityJumpTo(
        fetch,
        subgraph,
        type,
        responseKey,
        nodes,
        target,
        path,
        provided,
        mode,
        touched,
        candidates,
      );
    } finally {
      this.jumping.delete(jumpId);
    }
  }

  private planEntityJumpTo(
    fetch: Fetch,
    subgraph: Subgraph,
    type: GraphQLObjectType,
    responseKey: string,
    nodes: FieldNode[],
    target: SubSel,
    path: string[],
    provided: Provided | undefined,
    mode: Mode,
    touched: Set<Fetch>,
    candidates: Subgraph[],
  ): void {
    const name = nodes[0]!.name.value;
    const pathKey = path.join('.');
    const reuse = candidates
      .map((s) =>
        this.entityFetches.get(`${fetch.id}|${pathKey}|${s.name}`)?.find((f) => !mode.exclude.has(f)),
      )
      .find((f) => f !== undefined);
    // Objects known only as the interface (served by an @interfaceObject subgraph) go to another
    // @interfaceObject subgraph when one resolves the field: it takes the representation as it is.
    const ordered = isInterfaceType(type as GraphQLCompositeType)
      ? [
          ...candidates.filter((s) => this.isInterfaceObjectIn(s, type.name)),
          ...candidates.filter((s) => !this.isInterfaceObjectIn(s, type.name)),
        ]
      : candidates;
    const chosen =
      reuse?.subgraph ??
      ordered.find((s) =>
        this.resolvableKeys(s, type.name).some((k) => this.keyIsLocal(subgraph, type, k.fields)),
      ) ??
      ordered[0]!;
    let entity =
      reuse ??
      this.entityFetches.get(`${fetch.id}|${pathKey}|${chosen.name}`)?.find((f) => !mode.exclude.has(f));
    if (!entity) {
      entity = this.newFetch(chosen, 'entity', 'query', path);
      entity.deps.add(fetch);
      const list = this.entityFetches.get(`${fetch.id}|${pathKey}|${chosen.name}`) ?? [];
      list.push(entity);
      this.entityFetches.set(`${fetch.id}|${pathKey}|${chosen.name}`, list);
    }
    const client = mode.client;
    const exclude = new Set([...mode.exclude, entity]);
    const internal = (set: SelectionSetNode): ReprField[] => {
      const deps = new Set<Fetch>();
      this.planSelection(
        fetch,
        subgraph,
        type,
        [set],
        target,
        path,
        provided,
        { internal: true, client, exclude },
        deps,
      );
      for (const d of deps) if (d !== entity) entity!.deps.add(d);
      return this.reprFields(set, type, client);
    };
    let entityTarget = entity.targets.get(type.name);
    if (entityTarget) {
      // The same entity fetch can be fed from several selections at one path (the field under
      // `... on Book` and under `... on Magazine`): each of them must carry the key.
      const keyed = this.keyedSelections.get(entityTarget)!;
      if (!keyed.sels.has(target)) {
        keyed.sels.add(target);
        mergeRepr(entityTarget.fields, internal(keyed.key));
      }
    } else {
      const keys = this.resolvableKeys(chosen, type.name);
      const key = keys.find((k) => this.keyIsLocal(subgraph, type, k.fields)) ?? keys[0]!;
      entityTarget = {
        reprTypename: typeInSubgraph(chosen, type.name),
        fields: internal(key.fields),
      } satisfies EntityTarget;
      this.keyedSelections.set(entityTarget, { key: key.fields, sels: new Set([target]) });
      entity.targets.set(type.name, entityTarget);
      // An @interfaceObject entity: by the time this fetch runs, a typename-resolving fetch may
      // have replaced the interface name with the concrete type, so accept those objects too.
      if (isInterfaceType(type as GraphQLCompositeType))
        for (const t of this.schema.getPossibleTypes(type as unknown as GraphQLInterfaceType))
          if (!entity.targets.has(t.name)) entity.targets.set(t.name, entityTarget);
    }
    const requires = requiresOf(chosen, type.name, name);
    if (requires) mergeRepr(entityTarget.fields, internal(requires));
    const inner = fragmentOf(entity.sel, entityTarget.reprTypename);
    this.planField(entity, chosen, type, responseKey, nodes, inner, path, undefined, mode, touched, true);
  }

  /** Where each key/required field lives in the merged data (mirrors internal planning). */
  private reprFields(
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
            field.children = this.reprFields(
              sel.selectionSet,
              child,
              this.nestedClientFields(client, storeKey, child),
            );
          else if (child && isAbstractType(child))
            field.children = this.schema
              .getPossibleTypes(child)
              .flatMap((t) => this.reprFields(sel.selectionSet!, t, undefined, t.name))
              .filter(
                (f, i, all) =>
                  all.findIndex((g) => g.storeKey === f.storeKey && g.typeCondition === f.typeCondition) ===
                  i,
              );
        }
        out.push(field);
      } else if (sel.kind === Kind.INLINE_FRAGMENT) {
        const cond = sel.typeCondition?.name.value;
        const condType = cond ? this.schema.getType(cond) : type;
        if (condType && isObjectType(condType))
          out.push(...this.reprFields(sel.selectionSet, condType, client, cond));
        else if (condType && isAbstractType(condType) && this.schema.isSubType(condType, type))
          // `... on Foo` around fields of an object that is a Foo: they apply under the same condition.
          out.push(...this.reprFields(sel.selectionSet, type, client, typeCondition));
      }
    }
    return out;
  }

  private entityCandidates(subgraph: Subgraph, type: GraphQLObjectType, name: string): Subgraph[] {
    return this.supergraph.subgraphs.filter(
      (s) =>
        (s !== subgraph || requiresOf(s, type.name, name) !== undefined) &&
        s.kind === 'graphql' &&
        this.canResolve(s, type.name, name, undefined) &&
        this.resolvableKeys(s, type.name).length > 0,
    );
  }

  private cheapest(candidates: Subgraph[], type: GraphQLObjectType, nodes: FieldNode[]): Subgraph {
    let best = candidates[0]!;
    let bestCost = Infinity;
    for (const c of candidates) {
      const cost = this.cost(c, type, nodes);
      if (cost < bestCost) [best, bestCost] = [c, cost];
    }
    return best;
  }

  /**
   * Rough cost of resolving field `nodes` of `type` in `subgraph`: 0 when it resolves the whole
   * subtree, +1 per entity jump, IMPOSSIBLE per field no subgraph can reach from there.
   */
  private cost(
    subgraph: Subgraph,
    type: GraphQLObjectType,
    nodes: FieldNode[],
    provided?: Provided,
    depth = 0,
  ): number {
    const name = nodes[0]!.name.value;
    if (name === '__typename') return 0;
    if (!this.canResolve(subgraph, type.name, name, provided))
      return this.jumpable(subgraph, type, name, 0) ? 1 : IMPOSSIBLE;
    const named = getNamedType(type.getFields()[name]?.type);
    if (!named || !isCompositeType(named) || depth > 8) return 0;
    const childProvided = providedFrom(
      subgraph.provides.get(`${type.name}.${name}`),
      new Map(provided?.get(name) ?? []),
    );
    let total = 0;
    for (const concrete of this.concreteTypes(subgraph, named)) {
      for (const [, child] of collectFields(
        this.schema,
        concrete,
        subSelections(nodes),
        this.fragments,
        this.variables,
      ))
        total += this.cost(subgraph, concrete, child, childProvided, depth + 1);
    }
    return total;
  }

  /**
   * Whether `type.name`'s value can be fetched from another subgraph for objects `subgraph` holds:
   * some subgraph resolves it and has a key whose fields `subgraph` supplies, itself or through
   * one more such jump. A type without a key there (a value type reached through an entity) is no
   * way in, however many subgraphs resolve the field.
   */
  private jumpable(subgraph: Subgraph, type: GraphQLObjectType, name: string, depth: number): boolean {
    if (depth > 1) return false;
    return this.supergraph.subgraphs.some(
      (s) =>
        s !== subgraph &&
        s.kind === 'graphql' &&
        this.canResolve(s, type.name, name, undefined) &&
        this.resolvableKeys(s, type.name).some((k) =>
          k.fields.selections.every(
            (sel) =>
              sel.kind !== Kind.FIELD ||
              this.keyIsLocal(subgraph, type, { kind: Kind.SELECTION_SET, selections: [sel] }) ||
              (sel.name.value !== name && this.jumpable(subgraph, type, sel.name.value, depth + 1)),
          ),
        ),
    );
  }

  /**
   * A composite field whose subtree no single subgraph completes (a value type that several
   * subgraphs extend with fields, reached through the parent entity): the fields `local` reaches
   * stay there (when it resolves the field itself), each other group goes to one of `candidates`,
   * a subgraph that fetches the field for the parent entity and completes that group. Undefined
   * when some field has no such subgraph.
   */
  private splitField(
    local: Subgraph | undefined,
    type: GraphQLObjectType,
    name: string,
    nodes: FieldNode[],
    provided: Provided | undefined,
    candidates: Subgraph[],
  ): { local: FieldNode[] | undefined; remote: FieldNode[][] } | undefined {
    const named = getNamedType(type.getFields()[name]?.type);
    if (!named || !isObjectType(named)) return undefined;
    const node = nodes[0]!;
    const withChildren = (selections: FieldNode[]): FieldNode[] => [
      { ...node, selectionSet: { kind: Kind.SELECTION_SET, selections } },
    ];
    const here: FieldNode[] = [];
    const groups = new Map<Subgraph, FieldNode[]>();
    const children = collectFields(this.schema, named, subSelections(nodes), this.fragments, this.variables);
    for (const [, childNodes] of children) {
      if (local && this.cost(local, type, withChildren(childNodes), provided) < IMPOSSIBLE) {
        here.push(...childNodes);
        continue;
      }
      const owner = candidates.find((c) => this.cost(c, type, withChildren(childNodes)) < IMPOSSIBLE);
      if (!owner) return undefined;
      groups.set(owner, [...(groups.get(owner) ?? []), ...childNodes]);
    }
    if (groups.size === 0 || (!local && groups.size < 2)) return undefined;
    return {
      local: here.length > 0 ? withChildren(here) : undefined,
      remote: [...groups.values()].map(withChildren),
    };
  }

  private resolvableKeys(subgraph: Subgraph, typeName: string) {
    const own = subgraph.keys.get(typeName) ?? [];
    const viaInterface = subgraph.interfaceObjectOf.get(typeName);
    const keys = own.length > 0 ? own : viaInterface ? (subgraph.keys.get(viaInterface) ?? []) : [];
    return keys.filter((k) => k.resolvable);
  }

  /** Whether `subgraph` can supply every field of `set` on `type` without another fetch. */
  private keyIsLocal(subgraph: Subgraph, type: GraphQLObjectType, set: SelectionSetNode): boolean {
    for (const sel of set.selections) {
      if (sel.kind !== Kind.FIELD) continue;
      const name = sel.name.value;
      const isKeyOf = (subgraph.keys.get(type.name) ?? []).some((k) =>
        k.fields.selections.some((s) => s.kind === Kind.FIELD && s.name.value === name),
      );
      if (!this.canResolve(subgraph, type.name, name, undefined) && !isKeyOf) return false;
      if (sel.selectionSet) {
        const child = getNamedType(type.getFields()[name]?.type);
        if (!child || !isObjectType(child) || !this.keyIsLocal(subgraph, child, sel.selectionSet))
          return false;
      }
    }
    return true;
  }

  /**
   * Entity fetch batching. The walk above plans one entity fetch per (parent fetch, path,
   * subgraph); here every entity fetch of one subgraph at one planning step (its depth in the
   * dependency graph) becomes one Fetch: one request, whatever the number of aliases, list items
   * or sibling paths that need the subgraph at that step. A merged fetch waits for every fetch its
   * parts waited for; all of those are at earlier steps, so nothing new can wait for it in a cycle
   * (the price: a path below a fast root fetch may wait for a slow one of another subgraph).
   *
   * In that request, parts share one `_entities` field, and so their representations are sent
   * once, when their selections are identical (the same fields at two aliases or two sibling
   * paths) or concern disjoint types (`... on User` and `... on Product`). A type selected
   * differently at two paths gets another `_entities` field (aliased) in the same request instead
   * of a merged selection: a merged selection would apply one path's fields to the other path's
   * representations, and a field that `@requires` what that representation does not carry, or a
   * non-null field that fails, would null an entity the other path needed intact.
   */
  private batchEntityFetches(): void {
    const level = new Map<Fetch, number>();
    const levelOf = (f: Fetch): number => {
      let l = level.get(f);
      if (l === undefined) {
        l = 0;
        for (const d of f.deps) l = Math.max(l, levelOf(d) + 1);
        level.set(f, l);
      }
      return l;
    };
    const batches = new Map<string, Fetch[]>();
    for (const f of this.fetches) {
      if (f.kind !== 'entity' || f.event) continue;
      const key = this.options.batchEntities === false ? `#${f.id}` : `${f.subgraph.name}\n${levelOf(f)}`;
      const batch = batches.get(key);
      if (batch) batch.push(f);
      else batches.set(key, [f]);
    }
    const mergedInto = new Map<Fetch, Fetch>();
    const defs = this.operation.variableDefinitions ?? [];
    const taken = new Set(defs.map((d) => d.variable.name.value));
    for (const batch of batches.values()) {
      const head = batch[0]!;
      const drafts: { call: EntityCall; kinds: { sig: string; types: Set<string> }[] }[] = [];
      for (const f of batch) {
        const sig = printSubSel(f.sel, true);
        const types = this.touchedTypes(f);
        let draft = drafts.find((d) => d.kinds.every((k) => k.sig === sig || disjoint(k.types, types)));
        if (!draft) {
          const n = drafts.length;
          let variable = n === 0 ? 'representations' : `_edfs_representations_${n}`;
          while (taken.has(variable)) variable = `_edfs_${variable}`;
          draft = {
            call: {
              responseKey: n === 0 ? '_entities' : `_edfs_entities_${n}`,
              variable,
              sel: newSubSel(),
              parts: [],
            },
            kinds: [],
          };
          drafts.push(draft);
        }
        if (!draft.kinds.some((k) => k.sig === sig)) {
          draft.kinds.push({ sig, types });
          // Other kinds concern disjoint types: their fragments never collide (top-level fields
          // make a part disjoint from none, so they are never merged with others).
          for (const [t, frag] of f.sel.fragments) draft.call.sel.fragments.set(t, frag);
          for (const [k, field] of f.sel.fields) draft.call.sel.fields.set(k, field);
        }
        const part: EntityPart = { path: f.path, targets: f.targets };
        if (f.resolvesTypename) part.resolvesTypename = true;
        draft.call.parts.push(part);
        if (f !== head) {
          mergedInto.set(f, head);
          for (const d of f.deps) head.deps.add(d);
          for (const v of f.variables) head.variables.add(v);
        }
      }
      head.calls = drafts.map((d) => d.call);
    }
    if (mergedInto.size === 0) return;
    const kept = this.fetches.filter((f) => !mergedInto.has(f));
    for (const f of kept) {
      const deps = new Set<Fetch>();
      for (const d of f.deps) {
        const to = mergedInto.get(d) ?? d;
        if (to !== f) deps.add(to);
      }
      f.deps = deps;
    }
    this.fetches.splice(0, this.fetches.length, ...kept);
  }

  /**
   * Every type whose objects an entity fetch's response may hold (its representations' types, the
   * concrete types of abstract ones) or whose fragment it selects; `*` for fields outside fragments.
   */
  private touchedTypes(fetch: Fetch): Set<string> {
    const out = new Set<string>();
    const add = (name: string) => {
      out.add(name);
      const t = this.schema.getType(name);
      if (t && isAbstractType(t)) for (const p of this.schema.getPossibleTypes(t)) out.add(p.name);
    };
    for (const [name, target] of fetch.targets) {
      add(name);
      add(target.reprTypename);
    }
    for (const name of fetch.sel.fragments.keys()) add(name);
    if (fetch.sel.fields.size > 0) out.add('*');
    return out;
  }

  private printFetch(fetch: Fetch): string {
    const defs = this.operation.variableDefinitions ?? [];
    const used = defs.filter((d) => fetch.variables.has(d.variable.name.value));
    // The default stays with the definition: a nullable variable with a default may fill a
    // non-null argument, which the subgraph only accepts when it sees the default too.
    const varDefs = used.map(
      (d: VariableDefinitionNode) =>
        `$${d.variable.name.value}: ${print(d.type)}${d.defaultValue ? ` = ${print(d.defaultValue)}` : ''}`,
    );
    const opName = this.operation.name
      ? ` ${this.operation.name.value}__${safeName(fetch.subgraph.name)}__${fetch.id}`
      : '';
    if (fetch.kind === 'root') {
      const head = varDefs.length ? `(${varDefs.join(', ')})` : '';
      return `${fetch.operationType}${opName}${head} ${printSubSel(fetch.sel, false, this.aliasing(fetch, (fetch.renames ??= [])))}`;
    }
    const calls = fetch.calls!;
    const head = [...calls.map((c) => `$${c.variable}: [_Any!]!`), ...varDefs].join(', ');
    const fields = calls.map((c) => {
      const renames: Rename[] = [];
      const sel = printSubSel(c.sel, true, this.aliasing(fetch, renames));
      if (renames.length > 0) c.renames = renames;
      const alias = c.responseKey === '_entities' ? '' : `${c.responseKey}: `;
      return `${alias}_entities(representations: $${c.variable}) ${sel}`;
    });
    return `query${opName}(${head}) { ${fields.join(' ')} }`;
  }

  /** Lets printSubSel alias same-key fields of sibling fragments whose types differ in the subgraph. */
  private aliasing(fetch: Fetch, renames: Rename[]): Aliasing {
    const own = fetch.subgraph.schema;
    return {
      path: [],
      renames,
      typeOf: (typeName, field) => {
        const t = own?.getType(typeName) ?? this.schema.getType(typeName);
        if (!t || !('getFields' in t)) return undefined;
        return (t.getFields() as Record<string, { type: unknown } | undefined>)[field]?.type?.toString();
      },
    };
  }
}

function parseFieldSetText(text: string, what: string): SelectionSetNode {
  try {
    const doc = parse(`{ ${text} }`, { noLocation: true });
    return (doc.definitions[0] as OperationDefinitionNode).selectionSet;
  } catch (err) {
    throw new PlanError(`${what}: invalid field path: ${(err as Error).message}`);
  }
}

function safeName(name: string): string {
  return name.replace(/[^_0-9A-Za-z]/g, '_');
}

/** The @requires field set of `typeName.field` in `subgraph`, also when it is declared on the @interfaceObject. */
function requiresOf(subgraph: Subgraph, typeName: string, field: string): SelectionSetNode | undefined {
  const own = subgraph.requires.get(`${typeName}.${field}`);
  if (own) return own;
  const viaInterface = subgraph.interfaceObjectOf.get(typeName);
  return viaInterface ? subgraph.requires.get(`${viaInterface}.${field}`) : undefined;
}

function typeInSubgraph(subgraph: Subgraph, typeName: string): string {
  return subgraph.interfaceObjectOf.get(typeName) ?? typeName;
}

function fragmentOf(sub: SubSel, typeName: string): SubSel {
  let frag = sub.fragments.get(typeName);
  if (!frag) sub.fragments.set(typeName, (frag = newSubSel()));
  return frag;
}

function disjoint(a: Set<string>, b: Set<string>): boolean {
  if (a.has('*') || b.has('*')) return false;
  for (const x of a) if (b.has(x)) return false;
  return true;
}

function mergeRepr(into: ReprField[], more: ReprField[]): void {
  for (const f of more) {
    const existing = into.find((e) => e.storeKey === f.storeKey && e.typeCondition === f.typeCondition);
    if (!existing) into.push(f);
    else if (f.children) mergeRepr((existing.children ??= []), f.children);
  }
}

function printArgs(args: readonly ArgumentNode[]): string {
  return args.length ? `(${args.map((a) => print(a)).join(', ')})` : '';
}

interface Aliasing {
  /** Response keys from the fetch's data root to the selection being printed. */
  path: string[];
  renames: Rename[];
  /** The field's type in the subgraph, printed (`ID!`, `[Account!]!`). */
  typeOf(typeName: string, field: string): string | undefined;
}

/**
 * Sibling fragments on different object types may select one response key with different types
 * (`... on User { id } ... on Admin { id }` with `ID!` and `ID`): valid in the supergraph, where
 * the client's key names one value per object, but a subgraph rejects it ("fields conflict").
 * Those fields get an alias named after their type; the executor renames them back.
 */
function conflictingKeys(sub: SubSel, aliasing: Aliasing): Map<string, Map<string, string>> | undefined {
  if (sub.fragments.size < 2) return undefined;
  const types = new Map<string, Map<string, string>>(); // storeKey -> fragment type -> field type
  for (const [typeName, frag] of sub.fragments)
    for (const f of frag.fields.values()) {
      const t = aliasing.typeOf(typeName, f.name);
      if (t === undefined) continue;
      let byType = types.get(f.storeKey);
      if (!byType) types.set(f.storeKey, (byType = new Map()));
      byType.set(typeName, t);
    }
  let out: Map<string, Map<string, string>> | undefined;
  for (const [key, byType] of types)
    if (new Set(byType.values()).size > 1) (out ??= new Map()).set(key, byType);
  return out;
}

export function printSubSel(sub: SubSel, typename: boolean, aliasing?: Aliasing): string {
  const parts: string[] = typename ? ['__typename'] : [];
  const printFields = (
    fields: Map<string, SelField>,
    fragmentType?: string,
    conflicts?: Map<string, Map<string, string>>,
  ) => {
    for (const f of fields.values()) {
      let key = f.storeKey;
      const fieldType = fragmentType ? conflicts?.get(f.storeKey)?.get(fragmentType) : undefined;
      if (fieldType !== undefined) {
        key = `${f.storeKey}__edfs_${fieldType.replace(/!/g, 'N').replace(/\[/g, 'L').replace(/\W/g, '')}`;
        aliasing!.renames.push({
          path: aliasing!.path,
          typename: fragmentType!,
          alias: key,
          key: f.storeKey,
        });
      }
      const alias = key !== f.name ? `${key}: ` : '';
      const child = f.sel
        ? ' ' + printSubSel(f.sel, true, aliasing && { ...aliasing, path: [...aliasing.path, key] })
        : '';
      parts.push(`${alias}${f.name}${printArgs(f.args)}${child}`);
    }
  };
  printFields(sub.fields);
  const conflicts = aliasing && conflictingKeys(sub, aliasing);
  for (const [type, frag] of sub.fragments) {
    if (frag.fields.size === 0 && frag.fragments.size === 0) continue;
    const inner: string[] = [];
    const saved = parts.splice(0);
    printFields(frag.fields, type, conflicts);
    inner.push(...parts.splice(0));
    for (const [t2, f2] of frag.fragments) {
      if (f2.fields.size === 0 && f2.fragments.size === 0) continue;
      inner.push(`... on ${t2} ${printSubSel(f2, false, aliasing)}`);
    }
    parts.push(...saved, `... on ${type} { ${inner.join(' ')} }`);
  }
  return `{ ${parts.join(' ')} }`;
}
