/**
 * The engine's public contract with its edges (HTTP, WebSocket, CLI): a request goes in, a
 * spec-shaped GraphQL result comes out. Nothing here knows about transports.
 */
import type { GraphQLFormattedError } from 'graphql';

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
  signal?: AbortSignal;
}

export type OperationKind = 'query' | 'mutation' | 'subscription';

/**
 * A request after parsing, validation and planning. `errors` means the request never ran (the
 * HTTP layer answers 400 for GraphQL-over-HTTP `application/graphql-response+json`, 200 for
 * `application/json`); `operation` is ready to execute.
 */
export type PreparedRequest =
  | { kind: 'errors'; errors: GraphQLFormattedError[] }
  | { kind: 'operation'; operationKind: OperationKind; execute(ctx?: RequestContext): Promise<ExecutionResult> };
