/**
 * Plan data: what the planner produces and the executor runs. A Plan is a set of Fetches (one
 * subgraph request each) with dependencies, plus a Shape that turns the merged subgraph data into
 * the client's response. Plans are immutable and cached per (document, operation, @include/@skip
 * variable values).
 */
import type { ArgumentNode, GraphQLFormattedError, GraphQLOutputType } from 'graphql';
import type { Subgraph } from './supergraph.js';

/** One field of a subgraph selection, stored in the merged data under `storeKey` (its alias). */
export interface SelField {
  storeKey: string;
  name: string;
  args: readonly ArgumentNode[];
  sel?: SubSel;
}

/** A subgraph selection: fields of the parent type plus fragments per concrete type. */
export interface SubSel {
  fields: Map<string, SelField>;
  fragments: Map<string, SubSel>;
}

/** How to read a representation (key + required fields) out of the merged data. */
export interface ReprField {
  name: string;
  storeKey: string;
  children?: ReprField[];
  /** For fields under an inline fragment of a field set: only objects of these types. */
  typeCondition?: string;
}

export interface EntityTarget {
  /** __typename sent in the representation (the interface name for @interfaceObject types). */
  reprTypename: string;
  fields: ReprField[];
}

/**
 * A root field served by an event-driven subgraph (EDFS) instead of HTTP: subscribe (the event is
 * the field's data), publish (the field's data is `{ success }`) or request (the reply is the data).
 */
export interface EventSource {
  type: 'subscribe' | 'publish' | 'request';
  providerKind: 'nats' | 'kafka';
  providerId: string;
  /** Subject/topic templates (`{{ args.x }}`), rendered per request from `args`. */
  subjects: string[];
  stream?: { streamName: string; consumerName: string; consumerInactiveThresholdSeconds?: number };
  /** Root type and field, e.g. Subscription.messageAdded. */
  parentType: string;
  fieldName: string;
  responseKey: string;
  args: readonly ArgumentNode[];
  /** Named return type (object, interface or union). */
  returnType: string;
  /** `@openfed__subscriptionFilter` condition from the field configuration, as JSON. */
  filter?: unknown;
}

export interface Fetch {
  id: number;
  subgraph: Subgraph;
  /** Set for event-driven root fields: the executor talks to a broker instead of HTTP. */
  event?: EventSource;
  kind: 'root' | 'entity';
  operationType: 'query' | 'mutation';
  /**
   * Under the root operation type (root) or under `_entities` (entity). For an entity fetch,
   * `sel`, `path`, `targets` and `resolvesTypename` describe the one path it was planned for;
   * after batching, `calls` holds every path it serves and is what the executor runs.
   */
  sel: SubSel;
  /** Store path of the objects an entity fetch completes (lists are walked implicitly). */
  path: string[];
  /** concrete typename -> representation recipe (entity fetches). */
  targets: Map<string, EntityTarget>;
  deps: Set<Fetch>;
  variables: Set<string>;
  /** Resolves the concrete __typename of @interfaceObject entities (overwrites __typename). */
  resolvesTypename?: boolean;
  /** Printed query text, set when planning completes. */
  query: string;
  /**
   * Fields the printed query aliases because sibling type fragments select the same response key
   * with different types (invalid in one subgraph selection); the executor renames them back.
   * Absent when the query needs none, which is the common case. Root fetches only: an entity
   * fetch keeps them per call (`EntityCall.renames`).
   */
  renames?: Rename[];
  /**
   * Entity fetches, set when planning completes: the `_entities` fields of the one request this
   * fetch sends. Every entity fetch of one subgraph at one planning step is a single Fetch (see
   * the planner's batching), so this holds every path that needs that subgraph at that step.
   */
  calls?: EntityCall[];
}

/** Objects at `path` whose __typename is a key of `targets` are completed by an `_entities` call. */
export interface EntityPart {
  /** Store path of the objects (lists are walked implicitly). */
  path: string[];
  /** concrete typename -> representation recipe. */
  targets: Map<string, EntityTarget>;
  /** Resolves the concrete __typename of @interfaceObject entities (overwrites __typename). */
  resolvesTypename?: boolean;
}

/**
 * One `_entities` field of an entity fetch's request: its response key, its representations
 * variable and selection, and the parts whose objects it completes. Parts share a call when their
 * selections are identical or concern disjoint types, so one representation is sent once per call.
 */
export interface EntityCall {
  /** `_entities` for the first call of a request, an alias for the others. */
  responseKey: string;
  /** Name of the `[_Any!]!` variable carrying the representations. */
  variable: string;
  /** Under `_entities`: fragments per concrete (or @interfaceObject) type. */
  sel: SubSel;
  parts: EntityPart[];
  /** As `Fetch.renames`, relative to each entity of this call. */
  renames?: Rename[];
}

/** In the fetch's response data: objects at `path` of type `typename` hold `key` under `alias`. */
export interface Rename {
  path: string[];
  typename: string;
  alias: string;
  key: string;
}

export type ShapeField =
  | { kind: 'typename'; responseKey: string }
  /** Copied as-is from the store (introspection answered by graphql-js). */
  | { kind: 'raw'; responseKey: string }
  | {
      kind: 'field';
      responseKey: string;
      storeKey: string;
      parentType: string;
      fieldName: string;
      type: GraphQLOutputType;
      shape?: Shape;
      /**
       * Set when the client may not load this field (authorization.ts): the field is not fetched,
       * and its value is null with this error at its path.
       */
      unauthorized?: GraphQLFormattedError;
    };

/** Per concrete runtime type, the client's fields in order. Computed lazily per type. */
export interface Shape {
  /** Static type at this position (object, interface or union name). */
  typeName: string;
  fieldsFor(typeName: string): ShapeField[];
}

export interface Plan {
  operationType: 'query' | 'mutation' | 'subscription';
  /** Subscriptions: the event source of the single root field (its fetch is seeded per event). */
  subscription?: EventSource;
  fetches: Fetch[];
  shape: Shape;
  /** Root fields answered by introspection (executed by graphql-js against the client schema). */
  introspection: { responseKeys: string[]; document: import('graphql').DocumentNode } | undefined;
}
