/**
 * The HTTP adapter of GraphQL over SSE (protocols/sse.ts): the streamed response of
 * stream-route.ts in graphql-sse's framing, for requests whose Accept header prefers
 * `text/event-stream` (media-type.ts).
 *
 * A client that accepts only `text/event-stream` (EventSource, graphql-sse's client) gets a
 * refused operation's errors as the stream's one result: a 400 would leave it with no detail at
 * all, and graphql-sse's client retries it as a network error.
 */
import { MULTIPART_MIXED } from '../protocols/multipart.js';
import { EVENT_STREAM, rejectedStream, startEventStream } from '../protocols/sse.js';
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

/** The best quality an Accept header gives a type, and where it first names it with that quality. */
export interface AcceptQuality {
  q: number;
  at: number;
}

/**
 * What an Accept header asks for among the types the GraphQL path serves: `multipart/mixed` (its
 * parameters, such as `subscriptionSpec`, do not matter), `text/event-stream` and JSON. Wildcards
 * do not count: `text/event-stream, *\/*` is still a request for a stream.
 */
export function acceptQualities(accept: string): Record<'multipart' | 'stream' | 'json', AcceptQuality> {
  const best = { multipart: { q: 0, at: -1 }, stream: { q: 0, at: -1 }, json: { q: 0, at: -1 } };
  accept.split(',').forEach((part, at) => {
    const [range = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    let q = 1;
    for (const p of params) {
      const [k, v] = p.split('=').map((s) => s.trim());
      if (k === 'q' && v !== undefined) q = Number.isFinite(Number(v)) ? Number(v) : 0;
    }
    const kind =
      range === MULTIPART_MIXED
        ? 'multipart'
        : range === EVENT_STREAM
          ? 'stream'
          : range === 'application/json' || range === 'application/graphql-response+json'
            ? 'json'
            : undefined;
    if (kind && q > best[kind].q) best[kind] = { q, at };
  });
  return best;
}

/** `text/event-stream` named in the Accept header, and no JSON type named with a higher quality. */
export function prefersEventStream(accept: string | undefined): boolean {
  if (!accept) return false;
  const { stream, json } = acceptQualities(accept);
  return stream.q > 0 && stream.q >= json.q;
}
