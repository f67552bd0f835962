/**
 * The contract between client protocols (graphql-transport-ws, SSE, multipart, legacy graphql-ws)
 * and the engine. A protocol adapter turns frames into `start` calls and wraps every payload it
 * gets in its own envelope; the engine never knows which protocol a client speaks.
 *
 * Payloads are pre-serialized: `next(json)` receives the JSON text of one execution result
 * (`{"data":...}` or `{"data":...,"errors":[...]}`), the same string object for every client of a
 * group, so fan-out costs one string concatenation per client, never a JSON.stringify.
 */
import type { GraphQLFormattedError } from 'graphql';
import type { GraphQLRequest, RequestContext } from '../engine/types.js';

export interface ResultSink {
  /**
   * One result, already serialized. `cursor`, on resumable subscriptions, is also in the result's
   * `extensions`; protocols with a place of their own for it (SSE's `id:`) put it there too.
   * Returns false when the client can take no more (closed).
   */
  next(json: string, cursor?: string): boolean;
  /** Ends the operation with errors (no `complete` follows). */
  error(errors: readonly GraphQLFormattedError[]): void;
  /** Ends the operation normally. */
  complete(): void;
}

export type Started =
  | { ok: false; errors: GraphQLFormattedError[] }
  | { ok: true; /** Stops the operation; no sink call follows. Idempotent. */ stop(): void };

/**
 * Runs any operation for a streaming client: a subscription streams until stopped; a query or
 * mutation delivers one `next` and `complete`. Validation errors come back synchronously.
 */
export interface OperationService {
  start(request: GraphQLRequest, context: RequestContext, sink: ResultSink): Started;
}
