/**
 * GraphQL over Server-Sent Events, graphql-sse's "distinct connections" mode (graphql-sse's
 * PROTOCOL.md): one HTTP response carries one operation, its results as `next` events, then a
 * `complete` event, and the response ends. The client stops an operation by closing the response.
 * This module knows nothing of HTTP: the adapter (server/sse.ts) hands it an `EventStreamSocket`
 * whose first write commits the `200 text/event-stream` head.
 *
 * Invariants:
 * - The operation is started before anything is written, so an operation refused by the service
 *   can still be answered with another status (the adapter's choice).
 * - A `next` event costs one string concatenation around the payload exactly as the engine
 *   serialized it; SSE `data:` lines cannot hold a newline, and the engine's JSON has none
 *   (JSON.stringify without indentation).
 * - Memory per stream is bounded: a `next` that finds more than `sendBufferLimitBytes` unsent
 *   drops the connection instead of queueing behind them.
 * - Once the stream ends, by either side, the operation is stopped and nothing more is written.
 */
import type { GraphQLFormattedError } from 'graphql';
import type { GraphQLRequest, RequestContext } from '../engine/types.js';
import type { OperationService } from '../subscriptions/service.js';
import type { DeliveryHooks } from './delivery.js';

export const EVENT_STREAM = 'text/event-stream';
/** A comment line: keeps proxies from timing the stream out, and flushes the head to browsers. */
export const KEEPALIVE = ':\n\n';
/** `data:` is present but empty: EventSource dispatches no event without a data field. */
export const COMPLETE_EVENT = 'event: complete\ndata:\n\n';
const NEXT_PREFIX = 'event: next\ndata: ';

export function nextEvent(json: string): string {
  return NEXT_PREFIX + json + '\n\n';
}

/** The whole stream of an operation that never ran: its errors as the one result, then complete. */
export function rejectedStream(errors: readonly GraphQLFormattedError[]): string {
  return nextEvent(JSON.stringify({ errors })) + COMPLETE_EVENT;
}

export interface EventStreamSocket {
  /** Queues text on the response; never blocks. The first write commits the response head. */
  write(text: string): void;
  /** Ends the response after what is queued. */
  end(): void;
  /** Drops the connection now, discarding what is queued (a slow consumer). */
  destroy(): void;
  /** Bytes queued but not yet handed to the network. */
  bufferedAmount(): number;
}

export interface EventStreamOptions {
  socket: EventStreamSocket;
  operations: OperationService;
  request: GraphQLRequest;
  context: RequestContext;
  /** A keepalive comment this often; 0 = none. */
  keepaliveIntervalMs: number;
  sendBufferLimitBytes: number;
  hooks: DeliveryHooks;
}

export interface EventStream {
  /** The client went away (or the response failed): stop the operation. Idempotent. */
  closed(): void;
  /** Ends the stream from the server side (shutdown), without `complete`: the client may retry. */
  end(): void;
}

export type EventStreamStart =
  { ok: false; errors: readonly GraphQLFormattedError[] } | { ok: true; stream: EventStream };

/** Starts the operation; on success the stream is open and its head written. */
export function startEventStream(options: EventStreamOptions): EventStreamStart {
  const { socket, hooks, sendBufferLimitBytes } = options;
  // `starting` covers the synchronous start call, during which the sink may already be used.
  let state = 'starting' as 'starting' | 'active' | 'finished' | 'cancelled';
  let stop: (() => void) | undefined;
  let keepalive: ReturnType<typeof setInterval> | undefined;

  const finish = (): boolean => {
    if (state === 'finished' || state === 'cancelled') return false;
    state = 'finished';
    clearInterval(keepalive);
    return true;
  };
  const cancel = (): void => {
    if (state === 'finished' || state === 'cancelled') return;
    const wasActive = state === 'active';
    state = 'cancelled';
    clearInterval(keepalive);
    if (wasActive) stop?.();
  };

  const started = options.operations.start(options.request, options.context, {
    next(json) {
      if (state === 'finished' || state === 'cancelled') return false;
      if (socket.bufferedAmount() > sendBufferLimitBytes) {
        hooks.slowConsumer();
        cancel();
        socket.destroy();
        return false;
      }
      socket.write(nextEvent(json));
      hooks.messageSent();
      return true;
    },
    error(errors) {
      // SSE has no error event: the errors are the last result, as for an operation that never ran.
      if (!finish()) return;
      socket.write(rejectedStream(errors));
      socket.end();
    },
    complete() {
      if (!finish()) return;
      socket.write(COMPLETE_EVENT);
      socket.end();
    },
  });

  if (!started.ok) {
    state = 'finished';
    return { ok: false, errors: started.errors };
  }
  if (state === 'cancelled') started.stop();
  if (state === 'starting') {
    state = 'active';
    stop = started.stop;
    socket.write(KEEPALIVE);
    if (options.keepaliveIntervalMs > 0) {
      keepalive = setInterval(() => socket.write(KEEPALIVE), options.keepaliveIntervalMs);
      keepalive.unref?.();
    }
  }
  return {
    ok: true,
    stream: {
      closed: cancel,
      end() {
        if (state !== 'active' && state !== 'starting') return;
        cancel();
        socket.end();
      },
    },
  };
}
