/**
 * GraphQL over multipart HTTP (`multipart/mixed`): one HTTP response carries one operation, each
 * result in its own part. This module knows nothing of HTTP: the adapter (server/multipart.ts)
 * hands it a socket whose first write commits the `200` head, and tells it the framing.
 *
 * Two framings, both with the boundary `graphql`:
 * - `subscription`: Apollo's multipart subscription protocol (`subscriptionSpec="1.0"`). Each
 *   result is wrapped as `{"payload":<result>}`; a `{}` part is a heartbeat (clients ignore it),
 *   sent when the stream opens and every `heartbeatIntervalMs`; an operation that ends with errors
 *   sends them as `{"payload":null,"errors":[...]}` (the protocol's fatal error), then the closing
 *   delimiter.
 * - `single` (queries and mutations): the incremental-delivery format (graphql-over-http's
 *   IncrementalDelivery RFC, Apollo's `deferSpec=20220824`) with no `@defer`: one part holding the
 *   result itself, unwrapped, with `"hasNext":false`, then the closing delimiter.
 *
 * On the wire, as Apollo's router writes it: the body opens with the delimiter `\r\n--graphql`,
 * and every part is `\r\ncontent-type: application/json\r\n\r\n<json>` followed at once by the
 * next delimiter `\r\n--graphql`, so a client can hand a part on as soon as it arrives instead of
 * waiting for the next one to learn where it ended. The body ends with `--\r\n`, completing the
 * closing delimiter `\r\n--graphql--\r\n`.
 *
 * Invariants:
 * - The operation is started before anything is written, so an operation refused by the service
 *   can still be answered with another status (the adapter's choice).
 * - A result part costs string concatenations around the payload exactly as the engine
 *   serialized it (shared by all its clients); it is never parsed or re-serialized.
 * - Memory per stream is bounded: a result that finds more than `sendBufferLimitBytes` unsent
 *   drops the connection instead of queueing behind them.
 * - Once the stream ends, by either side, the operation is stopped and nothing more is written.
 */
import type { GraphQLFormattedError } from 'graphql';
import type { GraphQLRequest, RequestContext } from '../engine/types.js';
import type { OperationService } from '../subscriptions/service.js';
import type { DeliveryHooks } from './delivery.js';

export const MULTIPART_MIXED = 'multipart/mixed';
/** The response type of a subscription stream. */
export const SUBSCRIPTION_CONTENT_TYPE = 'multipart/mixed;boundary="graphql";subscriptionSpec="1.0"';
/** The response type of a query or mutation answered as multipart (one incremental part). */
export const INCREMENTAL_CONTENT_TYPE = 'multipart/mixed;boundary="graphql";deferSpec=20220824';

export type MultipartFraming = 'subscription' | 'single';

const DELIMITER = '\r\n--graphql';
const PART_HEAD = '\r\ncontent-type: application/json\r\n\r\n';
/** Turns the delimiter after the last part into the closing delimiter. */
const CLOSE = '--\r\n';
export const HEARTBEAT_PART = PART_HEAD + '{}' + DELIMITER;

export function contentTypeFor(framing: MultipartFraming): string {
  return framing === 'subscription' ? SUBSCRIPTION_CONTENT_TYPE : INCREMENTAL_CONTENT_TYPE;
}

/** One result as a part, wrapped or not as the framing wants; the JSON is the engine's own text. */
export function resultPart(framing: MultipartFraming, json: string): string {
  if (framing === 'subscription') return PART_HEAD + '{"payload":' + json + '}' + DELIMITER;
  // The engine's result is a JSON object (`{"data":...}`): close it with hasNext instead of "}".
  const body = json === '{}' ? '{"hasNext":false}' : json.slice(0, -1) + ',"hasNext":false}';
  return PART_HEAD + body + DELIMITER;
}

/** The last part of an operation that ended with errors. */
function errorsPart(framing: MultipartFraming, errors: readonly GraphQLFormattedError[]): string {
  return framing === 'subscription'
    ? PART_HEAD + `{"payload":null,"errors":${JSON.stringify(errors)}}` + DELIMITER
    : resultPart(framing, JSON.stringify({ errors }));
}

/** The whole body for an operation that never ran: its errors as the one result, then the end. */
export function rejectedBody(framing: MultipartFraming, errors: readonly GraphQLFormattedError[]): string {
  return DELIMITER + resultPart(framing, JSON.stringify({ errors })) + CLOSE;
}

export interface MultipartSocket {
  /** Queues text on the response; never blocks. The first write commits the response head. */
  write(text: string): void;
  /** Ends the response after what is queued. */
  end(): void;
  /** Drops the connection now, discarding what is queued (a slow consumer). */
  destroy(): void;
  /** Bytes queued but not yet handed to the network. */
  bufferedAmount(): number;
}

export interface MultipartOptions {
  socket: MultipartSocket;
  operations: OperationService;
  request: GraphQLRequest;
  context: RequestContext;
  framing: MultipartFraming;
  /** A heartbeat part this often on subscription streams; 0 = none. */
  heartbeatIntervalMs: number;
  sendBufferLimitBytes: number;
  hooks: DeliveryHooks;
}

export interface MultipartStream {
  /** The client went away (or the response failed): stop the operation. Idempotent. */
  closed(): void;
  /** Ends the stream from the server side (shutdown), without the closing delimiter. */
  end(): void;
}

export type MultipartStart =
  { ok: false; errors: readonly GraphQLFormattedError[] } | { ok: true; stream: MultipartStream };

/** Starts the operation; on success the stream is open and its head written. */
export function startMultipartStream(options: MultipartOptions): MultipartStart {
  const { socket, hooks, sendBufferLimitBytes, framing } = options;
  // `starting` covers the synchronous start call, during which the sink may already be used.
  let state = 'starting' as 'starting' | 'active' | 'finished' | 'cancelled';
  let stop: (() => void) | undefined;
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  let opened = false;
  /** Every write goes through here, so the opening delimiter precedes the first part. */
  const write = (text: string): void => {
    if (opened) return socket.write(text);
    opened = true;
    socket.write(DELIMITER + text);
  };

  const finish = (): boolean => {
    if (state === 'finished' || state === 'cancelled') return false;
    state = 'finished';
    clearInterval(heartbeat);
    return true;
  };
  const cancel = (): void => {
    if (state === 'finished' || state === 'cancelled') return;
    const wasActive = state === 'active';
    state = 'cancelled';
    clearInterval(heartbeat);
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
      write(resultPart(framing, json));
      hooks.messageSent();
      return true;
    },
    error(errors) {
      if (!finish()) return;
      write(errorsPart(framing, errors) + CLOSE);
      socket.end();
    },
    complete() {
      if (!finish()) return;
      write(CLOSE);
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
    if (framing === 'subscription' && options.heartbeatIntervalMs > 0) {
      write(HEARTBEAT_PART);
      heartbeat = setInterval(() => write(HEARTBEAT_PART), options.heartbeatIntervalMs);
      heartbeat.unref?.();
    } else if (!opened) {
      // Commits the head now: the client learns the operation runs before its first result.
      write('');
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
