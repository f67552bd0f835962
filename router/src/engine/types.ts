/**
 * The engine's public contract with its edges (HTTP, WebSocket, CLI): a request goes in, a
 * spec-shaped GraphQL result comes out. Nothing here knows about transports.
 */
import type { GraphQLFormattedError } from 'graphql';
import type { EventSource, Plan } from './plan.js';
import type { SubgraphHeaders } from './headers.js';
import type { Cancellation } from './single-flight.js';

export interface GraphQLRequest {
  query: string;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
  extensions?: Record<string, unknown> | null;
}

export interface ExecutionResult {
  data?: Record<string, unknown> | null;
  errors?: GraphQLFormattedError[];
}

/** Context of one client request, forwarded to subgraphs where relevant. */
export interface RequestContext {
  headers?: Record<string, string | string[] | undefined>;
  /** The client gave up (an AbortSignal, or a shared run's cheaper equivalent). */
  signal?: Cancellation;
  /** The `connection_init` payload of a WebSocket client (graphql-transport-ws). */
  connectionParams?: Record<string, unknown>;
  /** Who the client is, once its token is verified; undefined for an anonymous client. */
  auth?: AuthContext;
}

/** A verified client identity (a JWT that passed signature, issuer, audience and time checks). */
export interface AuthContext {
  /** The token's verified claims. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** The scopes the token grants (OAuth `scope`, space-separated, or `scp`). */
  readonly scopes: ReadonlySet<string>;
  /**
   * When the token stops being accepted (ms since the epoch): `exp` plus the configured clock
   * skew; undefined when the token has no `exp`.
   */
  readonly expiresAt?: number;
}

export type OperationKind = 'query' | 'mutation' | 'subscription';

/**
 * A request after parsing, validation and planning. `errors` means the request never ran (the
 * HTTP layer answers 400 for GraphQL-over-HTTP `application/graphql-response+json`, 200 for
 * `application/json`); `operation` is ready to execute.
 */
export type PreparedRequest =
  | { kind: 'errors'; errors: GraphQLFormattedError[] }
  | {
      kind: 'operation';
      operationKind: OperationKind;
      /**
       * The request's document text, as one string shared by every request with the same text
       * (the document cache's key): long-lived subscriptions keep this one, not their own copy.
       */
      query: string;
      execute(ctx?: RequestContext): Promise<ExecutionResult>;
      /** Set for subscriptions: what the subscription engine needs to serve it from a broker. */
      subscription?: PreparedSubscription;
    };

/**
 * A validated, planned subscription. `plan` and `variables` identify its group: subscriptions with
 * the same plan object and the same variables get identical results for every event.
 */
export interface PreparedSubscription {
  plan: Plan;
  variables: Record<string, unknown>;
  source: EventSource;
  /** The field's coerced arguments (for subject templates and filters). */
  args: Record<string, unknown>;
  /** Why `event` cannot be this subscription's data, or undefined when it can. */
  check(event: unknown): string | undefined;
  /**
   * The headers this subscription's subgraph requests carry for a client with `context` (the
   * `headers` rules); undefined when none. Part of what its results depend on.
   */
  headers(context: RequestContext | undefined): SubgraphHeaders | undefined;
  /**
   * Resolves one checked event into the client's result (entity fetches and shaping). `dedupe`
   * is shared by all groups resolving the same event, so identical subgraph requests go once.
   */
  resolve(
    event: unknown,
    dedupe?: Map<string, Promise<unknown>>,
    /** Receives the merged subgraph data (with internal fields, e.g. for filters) before shaping. */
    onStore?: (store: Record<string, unknown>) => void,
    /** From `headers(context)`. */
    headers?: SubgraphHeaders,
  ): Promise<ExecutionResult>;
}
