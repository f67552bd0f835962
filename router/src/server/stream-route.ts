/**
 * The HTTP side every streamed GraphQL response shares (SSE in sse.ts, multipart in multipart.ts):
 * `createStreamHandler` serves a request with a protocol's framing, and `openStreamingResponse`
 * holds the head until the first write, the connection gauge and the abort signal. Neither is a
 * route of its own: the GraphQL-over-HTTP plugin owns `GET`/`POST graphql_path`, parses and
 * checks the request as for any GraphQL request (same 4xx JSON answers), and hands it to the
 * handler whose protocol the Accept header prefers (media-type.ts).
 *
 * Invariants:
 * - `router_engine_connections` counts a stream from its head to the close of its response.
 * - At most `subscriptions.max_streams` streams are open, every streamed protocol together.
 * - An operation the service refuses never opens a stream: a client that also accepts JSON gets
 *   `400 {errors}`; a client that accepts only the stream's type gets the errors as the stream's
 *   one result (the protocol's `rejected` body), because a 400 would leave it with no detail.
 * - HEAD learns the headers a response would have and starts nothing; GET never runs a mutation.
 * - Shutdown (`closeAll`) and the drain end open streams without their proper end, so clients
 *   reconnect; once draining, a new stream request gets 503 and opens nothing.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { GraphQLFormattedError, OperationTypeNode } from 'graphql';
import { operationTypeOf } from '../engine/limits.js';
import type { AuthContext, GraphQLRequest } from '../engine/types.js';
import type { RouterMetrics } from '../observability/metrics.js';
import { deliveryMetrics } from '../protocols/delivery.js';
import {
  backlogCost,
  CHUNK_OVERHEAD_BYTES,
  heldCost,
  currentTurn,
  nextAverage,
  turnNumber,
  type SendBudget,
} from '../protocols/send-budget.js';
import type { OperationStream, StreamOptions, StreamSocket, StreamStart } from '../protocols/stream.js';
import type { OperationService } from '../subscriptions/service.js';
import type { DrainTarget } from './drain.js';
import { negotiateResponseType } from './media-type.js';

export interface StreamHandlerOptions {
  operations: OperationService;
  metrics: RouterMetrics;
  /** The protocol's heartbeat interval; 0 = none. */
  heartbeatIntervalMs: number;
  /** `subscriptions.send_buffer_limit`. */
  sendBufferLimitBytes: number;
  /** `subscriptions.send_buffer_budget`: what every client's queue together may hold. */
  budget?: SendBudget;
  /**
   * `subscriptions.max_streams`: open streams of every streamed protocol together (the handlers
   * of SSE and multipart share this object); one more request gets 503.
   */
  streams: { open: number; readonly max: number };
}

/**
 * Serves the GraphQL requests whose Accept header asks for one streamed protocol. It is a drain
 * target: on SIGTERM new streams get 503, and open ones end in the drain's jittered batches like
 * WebSockets, so their clients do not all reconnect in the same second.
 */
export interface StreamHandler extends DrainTarget {
  /** Whether a request with this Accept header is for this protocol rather than JSON (or another). */
  accepts(accept: string | undefined): boolean;
  /**
   * Serves one parsed GraphQL request as a stream (or a JSON error before it opens), as the
   * client `auth` verified (undefined: anonymous).
   */
  handle(
    request: FastifyRequest,
    reply: FastifyReply,
    params: GraphQLRequest,
    auth?: AuthContext,
  ): FastifyReply;
  /** Ends every open stream (server shutdown). */
  closeAll(): void;
}

/** How one request is answered in a streamed protocol. */
export interface StreamedResponse {
  headers: OutgoingHttpHeaders;
  /** The operation the request would run; asked on GET only, which must not run a mutation. */
  kind(params: GraphQLRequest): OperationTypeNode | undefined;
  start(options: StreamOptions): StreamStart;
  /** The whole body for an operation the service refused, for a client that takes no JSON. */
  rejected(errors: readonly GraphQLFormattedError[]): string;
}

/** What every streamed response sends besides its content type. */
export const STREAM_HEADERS = {
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  // nginx (and ingress-nginx) would otherwise buffer the stream.
  'x-accel-buffering': 'no',
};

/** A handler for the protocol whose answer to a request `respond` gives. */
export function createStreamHandler(
  options: StreamHandlerOptions,
  accepts: (accept: string | undefined) => boolean,
  respond: (params: GraphQLRequest) => StreamedResponse,
): StreamHandler {
  const { operations, metrics } = options;
  const hooks = deliveryMetrics(metrics);
  const open = new Set<OperationStream>();
  let draining = false;
  let whenIdle: (() => void) | undefined;
  const { streams } = options;
  const forget = (stream: OperationStream | undefined) => {
    if (stream && open.delete(stream)) streams.open--;
    if (open.size === 0) whenIdle?.();
  };
  options.budget?.addSource(() => open);

  return {
    accepts,

    handle(request, reply, params, auth) {
      const response = respond(params);
      // HEAD shares the GET route: it learns what a response would look like, but starts nothing.
      if (request.method === 'HEAD') return reply.code(200).headers(response.headers).send();
      if (draining)
        return sendErrors(reply.header('connection', 'close'), 503, 'application/json', [
          { message: 'The router is shutting down: retry the request (on another replica).' },
        ]);
      if (streams.open >= streams.max)
        return sendErrors(reply, 503, 'application/json', [
          {
            message: `Too many open streams (subscriptions.max_streams: ${streams.max}): retry later, or use a WebSocket.`,
          },
        ]);
      if (request.method === 'GET' && response.kind(params) === 'mutation')
        return sendErrors(reply.header('allow', 'POST'), 405, 'application/json', [
          { message: 'Can only perform a mutation operation from a POST request (this was a GET).' },
        ]);

      let stream: OperationStream | undefined;
      const { socket, signal } = openStreamingResponse(
        reply,
        response.headers,
        metrics,
        () => {
          forget(stream);
          stream?.closed();
        },
        options.budget,
      );
      const started = response.start({
        socket,
        operations,
        request: params,
        context: { headers: request.headers, signal, ...(auth ? { auth } : {}) },
        heartbeatIntervalMs: options.heartbeatIntervalMs,
        sendBufferLimitBytes: options.sendBufferLimitBytes,
        hooks,
      });
      if (!started.ok) {
        const json = negotiateResponseType(request.headers.accept);
        if (json) return sendErrors(reply, 400, json, started.errors);
        socket.write(response.rejected(started.errors));
        socket.end();
        return reply;
      }
      if (!isFinished(reply.raw)) {
        stream = started.stream;
        open.add(stream);
        streams.open++;
      }
      return reply;
    },

    closeAll() {
      for (const stream of [...open]) stream.end();
      streams.open -= open.size;
      open.clear();
      whenIdle?.();
    },

    stopAccepting() {
      draining = true;
    },

    closers: () => [...open].map((stream) => () => stream.end()),

    idle: () => (open.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => (whenIdle = resolve))),
  };
}

export interface StreamingResponse {
  /** Writes to the response; the first write (or end) commits a `200` head with the given headers. */
  socket: StreamSocket;
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
  budget?: SendBudget,
): StreamingResponse {
  const controller = new AbortController();
  const socket = new ResponseSocket(reply, headers, metrics, onClose, controller, budget);
  return { socket, signal: controller.signal };
}

/**
 * A streamed response as a `StreamSocket`. What is queued counts what it holds in memory (its
 * bytes plus the overhead of each chunk in it, protocols/send-budget.ts); like a WebSocket's,
 * what was written in the current event-loop turn is not backlog yet (a burst of events leaves
 * when the turn ends), and every text is charged to the send buffer budget.
 */
class ResponseSocket implements StreamSocket {
  private committed = false;
  /** The turn the last text was written in, and that turn's characters. */
  private turn = -1;
  private turnBytes = 0;
  /** The recent texts' size, to tell how many chunks a backlog holds. */
  private chunkBytes = 0;

  constructor(
    private readonly reply: FastifyReply,
    private readonly headers: OutgoingHttpHeaders,
    private readonly metrics: RouterMetrics,
    private readonly onClose: () => void,
    private readonly controller: AbortController,
    private readonly budget: SendBudget | undefined,
  ) {}

  write(text: string): void {
    if (!this.committed) this.commit();
    const size = text.length;
    const turn = currentTurn();
    if (turn !== this.turn) {
      this.turn = turn;
      this.turnBytes = 0;
    }
    this.turnBytes += size;
    this.chunkBytes = nextAverage(this.chunkBytes, size);
    this.reply.raw.write(text);
    this.budget?.charge(size + CHUNK_OVERHEAD_BYTES);
  }

  end(): void {
    if (!this.committed) this.commit();
    this.reply.raw.end();
  }

  destroy(): void {
    this.reply.raw.destroy();
  }

  bufferedAmount(): number {
    const thisTurn = this.turn === turnNumber() ? this.turnBytes : 0;
    return backlogCost(this.reply.raw.writableLength, thisTurn, this.chunkBytes, CHUNK_OVERHEAD_BYTES);
  }

  queuedBytes(): number {
    const thisTurn = this.turn === turnNumber() ? this.turnBytes : 0;
    return heldCost(this.reply.raw.writableLength, thisTurn, this.chunkBytes, CHUNK_OVERHEAD_BYTES);
  }

  private commit(): void {
    this.committed = true;
    const { reply, metrics, controller } = this;
    const res = reply.raw;
    reply.hijack();
    res.writeHead(200, this.headers);
    metrics.engineConnections.inc();
    res.once('close', () => {
      metrics.engineConnections.dec();
      this.onClose();
      if (!res.writableFinished) controller.abort(new Error('client closed the connection'));
    });
  }
}

function isFinished(res: ServerResponse): boolean {
  return res.writableEnded || res.destroyed;
}

/**
 * The operation the request would run, or undefined when the document names no such single
 * operation (the service's to report). Read by the lexer alone, without building a tree: the
 * document has not met the operation limits yet.
 */
export function operationKind(params: GraphQLRequest): OperationTypeNode | undefined {
  return operationTypeOf(params.query, params.operationName);
}

function sendErrors(
  reply: FastifyReply,
  status: number,
  mediaType: string,
  errors: readonly GraphQLFormattedError[],
): FastifyReply {
  return reply.code(status).type(`${mediaType}; charset=utf-8`).send(JSON.stringify({ errors }));
}
