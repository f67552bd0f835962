/**
 * The HTTP adapter of GraphQL over SSE (protocols/sse.ts): the streamed response of
 * stream-route.ts in graphql-sse's framing, for requests whose Accept header prefers
 * `text/event-stream` (media-type.ts).
 *
 * A client that accepts only `text/event-stream` (EventSource, graphql-sse's client) gets a
 * refused operation's errors as the stream's one result: a 400 would leave it with no detail at
 * all, and graphql-sse's client retries it as a network error.
 */
import { EVENT_STREAM, rejectedStream, startEventStream } from '../protocols/sse.js';
import { prefersEventStream } from './media-type.js';
import {
  createStreamHandler,
  operationKind,
  STREAM_HEADERS,
  type StreamedResponse,
  type StreamHandler,
  type StreamHandlerOptions,
} from './stream-route.js';

export interface EventStreamHandlerOptions extends Omit<StreamHandlerOptions, 'heartbeatIntervalMs'> {
  /** `subscriptions.sse_keepalive_interval`; 0 = no keepalive comments. */
  keepaliveIntervalMs: number;
}

export type EventStreamHandler = StreamHandler;

const EVENT_STREAM_RESPONSE: StreamedResponse = {
  headers: { 'content-type': `${EVENT_STREAM}; charset=utf-8`, ...STREAM_HEADERS },
  kind: operationKind,
  start: startEventStream,
  rejected: rejectedStream,
};

export function createEventStreamHandler(options: EventStreamHandlerOptions): EventStreamHandler {
  return createStreamHandler(
    { ...options, heartbeatIntervalMs: options.keepaliveIntervalMs },
    prefersEventStream,
    () => EVENT_STREAM_RESPONSE,
  );
}
