/**
 * GraphQL over Server-Sent Events, graphql-sse's "distinct connections" mode (graphql-sse's
 * PROTOCOL.md): one HTTP response carries one operation, its results as `next` events, then a
 * `complete` event, and the response ends. The client stops an operation by closing the response.
 * This module knows nothing of HTTP: the adapter (server/sse.ts, on server/stream-route.ts) hands
 * it a `StreamSocket` whose first write commits the `200 text/event-stream` head.
 *
 * The operation's life (started before the head, the slow-consumer rule, the end by either
 * side) is stream.ts's, which this module frames. A `next` event costs one string concatenation
 * around the payload exactly as the engine serialized it; SSE `data:` lines cannot hold a
 * newline, and the engine's JSON has none (JSON.stringify without indentation).
 *
 * A resumable subscription's result also carries its cursor as the event's `id:`: EventSource
 * sends the last one back by itself (`Last-Event-ID`) when it reconnects, and the engine resumes
 * from it. Cursors are base64url, so never hold a newline either.
 */
import type { GraphQLFormattedError } from 'graphql';
import { startStream, type StreamFraming, type StreamOptions, type StreamStart } from './stream.js';

export const EVENT_STREAM = 'text/event-stream';
/** A comment line: keeps proxies from timing the stream out, and flushes the head to browsers. */
export const KEEPALIVE = ':\n\n';
/** `data:` is present but empty: EventSource dispatches no event without a data field. */
export const COMPLETE_EVENT = 'event: complete\ndata:\n\n';
const NEXT_PREFIX = 'event: next\ndata: ';

export function nextEvent(json: string, cursor?: string): string {
  return cursor === undefined ? NEXT_PREFIX + json + '\n\n' : `event: next\nid: ${cursor}\ndata: ${json}\n\n`;
}

/** The whole stream of an operation that never ran: its errors as the one result, then complete. */
export function rejectedStream(errors: readonly GraphQLFormattedError[]): string {
  return nextEvent(JSON.stringify({ errors })) + COMPLETE_EVENT;
}

const FRAMING: StreamFraming = {
  preamble: '',
  result: nextEvent,
  // SSE has no error event: the errors are the last result, as for an operation that never ran.
  failed: rejectedStream,
  completed: COMPLETE_EVENT,
  // Flushes the head to browsers at once.
  opening: KEEPALIVE,
  heartbeat: KEEPALIVE,
};

/** Starts the operation; on success the stream is open and its head written. */
export function startEventStream(options: StreamOptions): StreamStart {
  return startStream(options, FRAMING);
}
