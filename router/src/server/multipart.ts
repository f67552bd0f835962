/**
 * The HTTP adapter of GraphQL over multipart HTTP (protocols/multipart.ts). Like the SSE adapter
 * it is not a route of its own: the GraphQL-over-HTTP plugin parses and checks the request as for
 * any GraphQL request, and hands it here when the Accept header prefers `multipart/mixed`.
 *
 * A subscription is served in Apollo's multipart subscription framing; a query or mutation as
 * one incremental-delivery part. Which one is read from the document (a document that does not
 * parse is the service's to refuse, so its framing does not matter).
 *
 * Invariants:
 * - `router_engine_connections` counts a stream from its head to the close of its response, for
 *   queries as for subscriptions.
 * - An operation the service refuses never opens a stream: a client that also accepts JSON (as
 *   Apollo Client does) gets `400 {errors}`, as from the SSE adapter; a client that accepts only
 *   multipart gets the errors as the stream's one result.
 * - Shutdown (`closeAll`) ends every open stream without the closing delimiter.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { getOperationAST, parse, type OperationTypeNode } from 'graphql';
import type { GraphQLRequest } from '../engine/types.js';
import type { RouterMetrics } from '../observability/metrics.js';
import { deliveryMetrics } from '../protocols/delivery.js';
import {
  contentTypeFor,
  MULTIPART_MIXED,
  rejectedBody,
  startMultipartStream,
  type MultipartStream,
} from '../protocols/multipart.js';
import { EVENT_STREAM } from '../protocols/sse.js';
import type { OperationService } from '../subscriptions/service.js';
import { negotiateResponseType } from './media-type.js';
import { isFinished, openStreamingResponse, sendErrors } from './sse.js';

export interface MultipartHandlerOptions {
  operations: OperationService;
  metrics: RouterMetrics;
  /** `subscriptions.multipart_heartbeat_interval`; 0 = no heartbeats. */
  heartbeatIntervalMs: number;
  /** `subscriptions.send_buffer_limit`. */
  sendBufferLimitBytes: number;
}

export interface MultipartHandler {
  /** Whether a request with this Accept header is for a multipart response rather than JSON or SSE. */
  accepts(accept: string | undefined): boolean;
  /** Serves one parsed GraphQL request as a multipart response (or a JSON error before it opens). */
  handle(request: FastifyRequest, reply: FastifyReply, params: GraphQLRequest): FastifyReply;
  /** Ends every open stream (server shutdown). */
  closeAll(): void;
}

const STREAM_HEADERS = {
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  // nginx (and ingress-nginx) would otherwise buffer the stream.
  'x-accel-buffering': 'no',
};

export function createMultipartHandler(options: MultipartHandlerOptions): MultipartHandler {
  const { operations, metrics } = options;
  const hooks = deliveryMetrics(metrics);
  const open = new Set<MultipartStream>();

  return {
    accepts: prefersMultipart,

    handle(request, reply, params) {
      const kind = operationKind(params);
      const framing = kind === 'subscription' ? 'subscription' : 'single';
      const headers = { 'content-type': contentTypeFor(framing), ...STREAM_HEADERS };
      // HEAD shares the GET route: it learns what a response would look like, but starts nothing.
      if (request.method === 'HEAD') return reply.code(200).headers(headers).send();
      if (request.method === 'GET' && kind === 'mutation')
        return sendErrors(reply.header('allow', 'POST'), 405, 'application/json', [
          { message: 'Can only perform a mutation operation from a POST request (this was a GET).' },
        ]);

      let stream: MultipartStream | undefined;
      const { socket, signal } = openStreamingResponse(reply, headers, metrics, () => {
        if (stream) open.delete(stream);
        stream?.closed();
      });
      const started = startMultipartStream({
        socket,
        operations,
        request: params,
        context: { headers: request.headers, signal },
        framing,
        heartbeatIntervalMs: options.heartbeatIntervalMs,
        sendBufferLimitBytes: options.sendBufferLimitBytes,
        hooks,
      });
      if (!started.ok) {
        const json = negotiateResponseType(request.headers.accept);
        if (json) return sendErrors(reply, 400, json, started.errors);
        socket.write(rejectedBody(framing, started.errors));
        socket.end();
        return reply;
      }
      if (!isFinished(reply.raw)) {
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

/**
 * `multipart/mixed` named in the Accept header (its parameters, such as `subscriptionSpec` or
 * `deferSpec`, do not matter), with no JSON type named with a higher quality, and preferred to
 * `text/event-stream` (a higher quality, or the same and listed first). Wildcards do not count.
 */
export function prefersMultipart(accept: string | undefined): boolean {
  if (!accept) return false;
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
  const { multipart, stream, json } = best;
  return (
    multipart.q > 0 &&
    multipart.q >= json.q &&
    (multipart.q > stream.q || (multipart.q === stream.q && multipart.at < stream.at))
  );
}

/** The operation the request would run, or undefined when its document does not parse. */
function operationKind(params: GraphQLRequest): OperationTypeNode | undefined {
  try {
    return getOperationAST(parse(params.query), params.operationName)?.operation;
  } catch {
    return undefined;
  }
}
