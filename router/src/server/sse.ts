/**
 * The HTTP adapter of GraphQL over SSE (protocols/sse.ts). It is not a route of its own: the
 * GraphQL-over-HTTP plugin owns `GET`/`POST graphql_path`, parses and checks the request as for
 * any GraphQL request (same 4xx JSON answers), and hands it here when the Accept header prefers
 * `text/event-stream`.
 *
 * Invariants:
 * - `router_engine_connections` counts a stream from its head to the close of its response.
 * - An operation the service refuses never opens a stream: a client that also accepts JSON gets
 *   `400 {errors}`; a client that accepts only `text/event-stream` (EventSource, graphql-sse's
 *   client) gets the errors as the stream's one result, because a 400 would leave it with no
 *   detail at all (and graphql-sse's client retries it as a network error).
 * - Shutdown (`closeAll`) ends every open stream without `complete`, so clients reconnect.
 *
 * `openStreamingResponse` is the HTTP side every streamed response shares (SSE here, multipart in
 * server/multipart.ts): the head on the first write, the connection gauge, the abort signal.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { getOperationAST, parse, type GraphQLFormattedError } from 'graphql';
import type { GraphQLRequest } from '../engine/types.js';
import type { RouterMetrics } from '../observability/metrics.js';
import { deliveryMetrics } from '../protocols/delivery.js';
import {
  EVENT_STREAM,
  rejectedStream,
  startEventStream,
  type EventStream,
  type EventStreamSocket,
} from '../protocols/sse.js';
import type { OperationService } from '../subscriptions/service.js';
import { negotiateResponseType } from './media-type.js';

export interface EventStreamHandlerOptions {
  operations: OperationService;
  metrics: RouterMetrics;
  /** `subscriptions.sse_keepalive_interval`; 0 = no keepalive comments. */
  keepaliveIntervalMs: number;
  /** `subscriptions.send_buffer_limit`. */
  sendBufferLimitBytes: number;
}

export interface EventStreamHandler {
  /** Whether a request with this Accept header is for the event stream rather than JSON. */
  accepts(accept: string | undefined): boolean;
  /** Serves one parsed GraphQL request as an event stream (or a JSON error before it opens). */
  handle(request: FastifyRequest, reply: FastifyReply, params: GraphQLRequest): FastifyReply;
  /** Ends every open stream (server shutdown). */
  closeAll(): void;
}

const STREAM_HEADERS = {
  'content-type': `${EVENT_STREAM}; charset=utf-8`,
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  // nginx (and ingress-nginx) would otherwise buffer the stream.
  'x-accel-buffering': 'no',
};

export function createEventStreamHandler(options: EventStreamHandlerOptions): EventStreamHandler {
  const { operations, metrics } = options;
  const hooks = deliveryMetrics(metrics);
  const open = new Set<EventStream>();

  return {
    accepts: prefersEventStream,

    handle(request, reply, params) {
      // HEAD shares the GET route: it learns what a stream would look like, but starts nothing.
      if (request.method === 'HEAD') return reply.code(200).headers(STREAM_HEADERS).send();
      if (request.method === 'GET' && isMutation(params))
        return sendErrors(reply.header('allow', 'POST'), 405, 'application/json', [
          { message: 'Can only perform a mutation operation from a POST request (this was a GET).' },
        ]);

      const res = reply.raw;
      let stream: EventStream | undefined;
      const { socket, signal } = openStreamingResponse(reply, STREAM_HEADERS, metrics, () => {
        if (stream) open.delete(stream);
        stream?.closed();
      });

      const started = startEventStream({
        socket,
        operations,
        request: params,
        context: { headers: request.headers, signal },
        keepaliveIntervalMs: options.keepaliveIntervalMs,
        sendBufferLimitBytes: options.sendBufferLimitBytes,
        hooks,
      });
      if (!started.ok) {
        const json = negotiateResponseType(request.headers.accept);
        if (json) return sendErrors(reply, 400, json, started.errors);
        socket.write(rejectedStream(started.errors));
        socket.end();
        return reply;
      }
      if (!isFinished(res)) {
        stream = started.stream;
        open.add(stream);
      }
      return reply;
    },

    closeAll() {
      for (const stream of [...open]) stream.end();
      open.clear();
    },
  };
}

export interface StreamingResponse {
  /** Writes to the response; the first write (or end) commits a `200` head with the given headers. */
  socket: EventStreamSocket;
  /** Aborted when the client goes away before the response has ended. */
  signal: AbortSignal;
}

/**
 * Takes over a reply for a streamed body. Once the head is committed, the response counts in
 * `router_engine_connections` until it closes, and `onClose` runs then, whoever closed it.
 */
export function openStreamingResponse(
  reply: FastifyReply,
  headers: OutgoingHttpHeaders,
  metrics: RouterMetrics,
  onClose: () => void,
): StreamingResponse {
  const res = reply.raw;
  const controller = new AbortController();
  let committed = false;
  const commit = () => {
    committed = true;
    reply.hijack();
    res.writeHead(200, headers);
    metrics.engineConnections.inc();
    res.once('close', () => {
      metrics.engineConnections.dec();
      onClose();
      if (!res.writableFinished) controller.abort(new Error('client closed the connection'));
    });
  };
  return {
    socket: {
      write(text) {
        if (!committed) commit();
        res.write(text);
      },
      end() {
        if (!committed) commit();
        res.end();
      },
      destroy: () => res.destroy(),
      bufferedAmount: () => res.writableLength,
    },
    signal: controller.signal,
  };
}

export function isFinished(res: ServerResponse): boolean {
  return res.writableEnded || res.destroyed;
}

/**
 * `text/event-stream` named in the Accept header, and no JSON type named with a higher quality.
 * Wildcards do not count: `text/event-stream, *\/*` is still a request for a stream.
 */
export function prefersEventStream(accept: string | undefined): boolean {
  if (!accept) return false;
  let stream = 0;
  let json = 0;
  for (const part of accept.split(',')) {
    const [range = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    let q = 1;
    for (const p of params) {
      const [k, v] = p.split('=').map((s) => s.trim());
      if (k === 'q' && v !== undefined) q = Number.isFinite(Number(v)) ? Number(v) : 0;
    }
    if (range === EVENT_STREAM) stream = Math.max(stream, q);
    else if (range === 'application/json' || range === 'application/graphql-response+json')
      json = Math.max(json, q);
  }
  return stream > 0 && stream >= json;
}

/** GET must not run a mutation (GraphQL over HTTP); a document that does not parse is the service's to report. */
export function isMutation(params: GraphQLRequest): boolean {
  try {
    return getOperationAST(parse(params.query), params.operationName)?.operation === 'mutation';
  } catch {
    return false;
  }
}

export function sendErrors(
  reply: FastifyReply,
  status: number,
  mediaType: string,
  errors: readonly GraphQLFormattedError[],
): FastifyReply {
  return reply.code(status).type(`${mediaType}; charset=utf-8`).send(JSON.stringify({ errors }));
}
