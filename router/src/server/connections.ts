/**
 * The HTTP edge of the router's listener: what one client connection may hold, and how many
 * connections there may be (router.yaml `traffic_shaping.router`).
 *
 * - Timeouts are Node's own (`headersTimeout`, `requestTimeout`, `keepAliveTimeout`), checked often
 *   enough that a stalled request is cut close to its deadline (Node checks every 30 s unless told
 *   otherwise). A request cut by one gets 408 and its connection is closed.
 * - `ConnectionGuard` caps open HTTP connections. A WebSocket leaves the count when it upgrades
 *   (`websocket.max_connections` caps those), so the two limits never starve each other. Beyond
 *   the cap, a small reserve of connections (`health_check_connections`) may still ask for
 *   `/health/*` and is then closed; anything else gets 503 at once. When the reserve is full too,
 *   its oldest connection that has not sent a request yet makes room (a probe sends its request
 *   at once, a flood of silent connections does not), and with none to evict the new one is closed.
 *   Reaching the cap also closes idle keep-alive connections, so their slots go to new clients.
 *
 * Invariants: every socket is counted in exactly one place (a slot, the reserve, or nowhere once
 * upgraded or closed), and released exactly once; health endpoints answer while the cap is reached.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import { readFile } from 'node:fs/promises';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { RouterTrafficConfig } from '../config/types.js';
import type { RouterMetrics } from '../observability/metrics.js';

/** Node's `http.createServer` options for the configured timeouts and header size. */
export function httpServerOptions(edge: RouterTrafficConfig): {
  headersTimeout: number;
  requestTimeout: number;
  keepAliveTimeout: number;
  maxHeaderSize: number;
  connectionsCheckingInterval: number;
} {
  const shortest = Math.min(edge.readHeaderTimeoutMs, edge.readTimeoutMs);
  return {
    headersTimeout: edge.readHeaderTimeoutMs,
    requestTimeout: edge.readTimeoutMs,
    keepAliveTimeout: edge.keepAliveIdleTimeoutMs,
    maxHeaderSize: edge.maxHeaderBytes,
    // A timeout fires at most this late; a quarter of the shortest one, between 100 ms and 1 s.
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(shortest / 4))),
  };
}

const HEALTH_PATH = /^\/health(?:\/(?:live|ready))?\/?(?:\?|$)/;

type Slot = 'counted' | 'reserve';

export interface ConnectionGuardOptions {
  maxConnections: number;
  healthCheckConnections: number;
  metrics?: RouterMetrics;
  logger?: Logger;
}

export class ConnectionGuard {
  private readonly max: number;
  private readonly reserveSize: number;
  private counted = 0;
  /** Reserve connections in arrival order; `true` once they sent a request (no longer evictable). */
  private readonly reserve = new Map<Socket, boolean>();
  private readonly slots = new WeakMap<Socket, Slot>();
  private server: Server | undefined;
  private lastIdleSweep = 0;
  private warnedAt = 0;

  constructor(private readonly options: ConnectionGuardOptions) {
    this.max = options.maxConnections;
    this.reserveSize = options.healthCheckConnections;
  }

  /** Open HTTP connections (slots and reserve). */
  get open(): number {
    return this.counted + this.reserve.size;
  }

  /** Starts counting the connections of `server` (before it listens). */
  attach(server: Server): void {
    this.server = server;
    server.on('connection', (socket: Socket) => this.onConnection(socket));
    // An upgraded connection is a WebSocket from now on: it leaves the HTTP count.
    server.on('upgrade', (_request: IncomingMessage, socket: Socket) => this.release(socket));
  }

  /**
   * A fastify `onRequest` hook: lets every request on a slot through; on a reserve connection
   * only health checks (answered, then the connection closes), others get 503.
   */
  readonly onRequest = (request: FastifyRequest, reply: FastifyReply, done: () => void): void => {
    const socket = request.raw.socket;
    if (this.slots.get(socket) !== 'reserve') return done();
    if (this.counted < this.max) {
      // Slots were freed since the connection arrived: it becomes an ordinary connection.
      this.reserve.delete(socket);
      this.take(socket);
      return done();
    }
    this.reserve.set(socket, true);
    void reply.header('connection', 'close');
    if (HEALTH_PATH.test(request.url)) return done();
    this.options.metrics?.httpConnectionsRefused.inc();
    void reply
      .code(503)
      .header('retry-after', '1')
      .send({
        errors: [
          {
            message: `The router has too many open HTTP connections (traffic_shaping.router.max_connections: ${this.max}); retry later.`,
            extensions: { code: 'TOO_MANY_CONNECTIONS' },
          },
        ],
      });
  };

  private onConnection(socket: Socket): void {
    if (this.counted < this.max) {
      this.take(socket);
    } else {
      this.sweepIdle();
      if (this.reserve.size >= this.reserveSize && !this.evictSilent()) {
        this.options.metrics?.httpConnectionsRefused.inc();
        this.warn();
        socket.destroy();
        return;
      }
      this.reserve.set(socket, false);
      this.slots.set(socket, 'reserve');
      this.options.metrics?.httpConnections.inc();
      this.warn();
    }
    socket.once('close', () => this.release(socket));
  }

  private take(socket: Socket): void {
    this.counted++;
    this.slots.set(socket, 'counted');
    this.options.metrics?.httpConnections.inc();
  }

  private release(socket: Socket): void {
    const slot = this.slots.get(socket);
    if (!slot) return;
    this.slots.delete(socket);
    if (slot === 'counted') this.counted--;
    else this.reserve.delete(socket);
    this.options.metrics?.httpConnections.dec();
  }

  /** Closes the oldest reserve connection that has not sent a request; false when there is none. */
  private evictSilent(): boolean {
    for (const [socket, requested] of this.reserve) {
      if (requested) continue;
      this.release(socket);
      this.options.metrics?.httpConnectionsRefused.inc();
      socket.destroy();
      return true;
    }
    return false;
  }

  /** Frees the slots of idle keep-alive connections (at most once a second). */
  private sweepIdle(): void {
    const now = Date.now();
    if (!this.server || now - this.lastIdleSweep < 1000) return;
    this.lastIdleSweep = now;
    this.server.closeIdleConnections();
  }

  private warn(): void {
    const now = Date.now();
    if (now - this.warnedAt < 10_000) return;
    this.warnedAt = now;
    this.options.logger?.warn(
      { open: this.open, limit: this.max, reserve: this.reserveSize },
      'HTTP connection limit reached (traffic_shaping.router.max_connections): only health checks are answered on new connections',
    );
  }
}

/**
 * A 408/431/400 for a connection Node gave up on (the fastify `clientErrorHandler`): counts
 * timeouts, answers as fastify would, closes the socket.
 */
export function clientErrorHandler(metrics: RouterMetrics | undefined) {
  return (error: Error & { code?: string }, socket: Socket): void => {
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    let status: string;
    let message: string;
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      metrics?.httpRequestTimeouts.inc();
      status = '408 Request Timeout';
      message =
        'The request was not received in time (traffic_shaping.router.read_header_timeout / read_timeout).';
    } else if (error.code === 'HPE_HEADER_OVERFLOW') {
      status = '431 Request Header Fields Too Large';
      message = 'The request headers are too large (traffic_shaping.router.max_header_bytes).';
    } else {
      status = '400 Bad Request';
      message = 'The request is not valid HTTP.';
    }
    const body = JSON.stringify({ errors: [{ message }] });
    if (socket.writable)
      socket.write(
        `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    socket.destroy();
  };
}

/**
 * Warns when the process may not open as many files as the configured connection limits need
 * (each connection is a file descriptor): past it, accepting fails and health checks with it.
 */
export async function checkFileLimit(
  needed: { httpConnections: number; webSockets: number },
  logger: Logger,
): Promise<void> {
  let text: string;
  try {
    text = await readFile('/proc/self/limits', 'utf8');
  } catch {
    return; // not Linux: nothing to check against
  }
  const match = /^Max open files\s+(\d+|unlimited)/m.exec(text);
  if (!match || match[1] === 'unlimited') return;
  const limit = Number(match[1]);
  // Brokers, subgraph pools, the metrics listener and the runtime need some too.
  const total = needed.httpConnections + needed.webSockets + 256;
  if (total > limit)
    logger.warn(
      { fileLimit: limit, needed: total },
      `the process may open ${limit} files, fewer than the connection limits allow (traffic_shaping.router.max_connections + health_check_connections + websocket.max_connections + 256 = ${total}); raise the limit (ulimit -n) or lower those settings`,
    );
}
