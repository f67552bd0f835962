/**
 * The WebSocket transport: takes HTTP upgrades on the GraphQL path from the fastify server,
 * negotiates the subprotocol and runs one protocol connection (protocols/) per socket. Everything
 * GraphQL happens in the protocol; this file only moves frames and enforces transport limits.
 *
 * Subprotocols: `graphql-transport-ws` (graphql-ws) and the legacy `graphql-ws`
 * (subscriptions-transport-ws). A client offering both gets `graphql-transport-ws`, whatever the
 * order of its offer: the server's preference decides.
 *
 * Invariants:
 * - At most `maxConnections` sockets, open or still in their handshake; one more is refused with
 *   HTTP 503 before the handshake. A slot is freed when its TCP socket closes (during the
 *   handshake) or its WebSocket closes (after it).
 * - `router_engine_connections` counts each protocol connection once, from open to close.
 * - Every `pingIntervalMs` each socket gets a WebSocket ping; one that has not answered the
 *   previous ping by then is terminated (a dead peer must not hold a connection slot forever).
 * - Upgrades on any other path get 404; a socket without a supported subprotocol is closed with
 *   1002. Frames above `maxFrameSize` close the socket (1009, by `ws`).
 * - On app close every socket gets 1001 and stops its operations; sockets that do not finish the
 *   closing handshake within a grace period are terminated, so shutdown cannot hang on them.
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import type { Logger } from 'pino';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { WebSocketConfig } from '../config/types.js';
import type { RouterMetrics } from '../observability/metrics.js';
import { deliveryMetrics } from '../protocols/delivery.js';
import type { SendBudget } from '../protocols/send-budget.js';
import type { ProtocolConnection, ProtocolOptions } from '../protocols/connection.js';
import { GRAPHQL_TRANSPORT_WS, openGraphqlTransportWs } from '../protocols/graphql-transport-ws.js';
import { GRAPHQL_WS, openSubscriptionsTransportWs } from '../protocols/subscriptions-transport-ws.js';
import type { RequestContext } from '../engine/types.js';
import type { Authenticator } from '../auth/authenticator.js';
import type { OperationService } from '../subscriptions/service.js';
import type { Drain } from './drain.js';
import { SocketWriter } from './socket-writer.js';

export interface WebSocketOptions {
  /** `graphql_path`: the only path that upgrades. */
  path: string;
  operations: OperationService;
  metrics: RouterMetrics;
  logger: Logger;
  websocket: WebSocketConfig;
  /** `subscriptions.send_buffer_limit`. */
  sendBufferLimitBytes: number;
  /** `subscriptions.send_buffer_budget`: what every client's queue together may hold. */
  budget?: SendBudget;
  /** Registers the sockets for a graceful drain (SIGTERM). */
  drain?: Drain;
  /**
   * The upgrade request headers a connection keeps for its operations: those the `headers`
   * rules read (`headersRead`). None by default.
   */
  keepHeader?: (name: string) => boolean;
  /**
   * Verifies each connection's token at its `connection_init` (from the payload under
   * `websocket.authentication.from_initial_payload.key`, else the upgrade request's header).
   */
  authenticator?: Authenticator;
}

/** How long closing sockets get to answer our close frame on shutdown. */
const SHUTDOWN_GRACE_MS = 3000;

type OpenProtocol = (options: ProtocolOptions) => ProtocolConnection;

export const websocketPlugin: FastifyPluginAsync<WebSocketOptions> = async (app, options) => {
  const { path, operations, metrics, websocket, budget } = options;
  const keepHeader = options.keepHeader ?? (() => false);
  const authenticator = options.authenticator?.enabled ? options.authenticator : undefined;
  const payloadTokenKey = websocket.initialPayloadToken?.key;
  /** The connection keeps its upgrade request's token only (a string), not the request. */
  const authenticateConnection = (auth: Authenticator, headers: IncomingMessage['headers']) => {
    const upgradeToken = auth.tokenOf(headers);
    return (payload: Record<string, unknown> | undefined) =>
      auth.connection(payload, payloadTokenKey, upgradeToken);
  };
  const logger = options.logger.child({ transport: 'websocket' });
  const hooks = deliveryMetrics(metrics);

  const limits = {
    connectionInitTimeoutMs: websocket.connectionInitTimeoutMs,
    initialPayloadToken: websocket.initialPayloadToken,
    keepaliveIntervalMs: websocket.keepaliveIntervalMs,
    maxSubscriptions: websocket.maxSubscriptionsPerConnection,
    sendBufferLimitBytes: options.sendBufferLimitBytes,
  };
  const protocolHooks = {
    ...hooks,
    onClose: (code: number, reason: string) => logger.debug({ code, reason }, 'closing WebSocket connection'),
    onInternalError: (err: unknown) => logger.error({ err }, 'WebSocket operation failed'),
  };

  // The subprotocols served, in order of preference; each is a state machine in protocols/.
  const protocols = new Map<string, OpenProtocol>([
    [GRAPHQL_TRANSPORT_WS, openGraphqlTransportWs],
    [GRAPHQL_WS, openSubscriptionsTransportWs],
  ]);

  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload: websocket.maxFrameSizeBytes,
    handleProtocols: (offered) => [...protocols.keys()].find((p) => offered.has(p)) ?? false,
  });
  const open = new Map<WebSocket, ProtocolConnection>();
  let reserved = 0;
  let closing = false;
  let terminateTimer: ReturnType<typeof setTimeout> | undefined;

  // Per-connection listeners are shared functions, not closures: a closure made in `onUpgrade`
  // would keep that upgrade request (headers and all) alive for the life of the connection.
  function onUpgradeSocketError(err: Error): void {
    // A client resetting mid-handshake is its own business, not a process crash.
    logger.debug({ err }, 'WebSocket upgrade socket error');
  }
  function releaseSlot(): void {
    reserved--;
  }
  function onSocketError(err: Error): void {
    logger.debug({ err }, 'WebSocket error');
  }
  function onMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
    open.get(this)?.receive(toText(data, isBinary));
  }
  function onClosed(this: WebSocket): void {
    releaseSlot();
    const connection = open.get(this);
    if (!connection) return;
    open.delete(this);
    metrics.engineConnections.dec();
    connection.closed();
    if (closing && open.size === 0) {
      clearTimeout(terminateTimer);
      idle?.();
    }
  }

  function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', onUpgradeSocketError);
    const pathname = (req.url ?? '').split('?', 1)[0];
    if (pathname !== path && pathname !== `${path}/`)
      return refuse(socket, 404, `No WebSocket endpoint here: GraphQL subscriptions are on ${path}.`);
    if (closing) return refuse(socket, 503, 'The router is shutting down.');
    if (reserved >= websocket.maxConnections) {
      logger.warn({ limit: websocket.maxConnections }, 'refusing WebSocket upgrade: too many connections');
      return refuse(
        socket,
        503,
        `Too many WebSocket connections (websocket.max_connections: ${websocket.maxConnections}).`,
      );
    }
    reserved++;
    // Until the handshake completes the TCP socket holds the slot; then the WebSocket does.
    socket.on('close', releaseSlot);
    wss.handleUpgrade(req, socket, head, (ws) => {
      socket.off('error', onUpgradeSocketError);
      socket.off('close', releaseSlot);
      accept(ws, req.headers);
    });
  }

  // Listeners are added with `on`, not `once` (each `once` costs a wrapper per socket): `close`
  // and a handshake's end happen once anyway.
  function accept(ws: WebSocket, upgradeHeaders: IncomingMessage['headers']): void {
    ws.on('error', onSocketError);
    ws.on('close', onClosed);
    const openProtocol = protocols.get(ws.protocol);
    if (!openProtocol || closing) {
      ws.close(
        closing ? 1001 : 1002,
        closing ? 'server shutting down' : `unsupported subprotocol: use ${[...protocols.keys()].join(', ')}`,
      );
      return;
    }
    const writer = new SocketWriter(ws, budget);
    const connection = openProtocol({
      socket: writer,
      operations,
      context: requestContext(upgradeHeaders, keepHeader),
      limits,
      hooks: protocolHooks,
      ...(authenticator ? { authenticate: authenticateConnection(authenticator, upgradeHeaders) } : {}),
    });
    writer.connection = connection;
    open.set(ws, connection);
    metrics.engineConnections.inc();
    ws.on('message', onMessage);
  }

  // Heartbeat: one timer for all sockets, no listener per socket (see SocketWriter.heartbeat).
  const heartbeat =
    websocket.pingIntervalMs > 0
      ? setInterval(() => {
          if (closing) return;
          for (const [ws, connection] of open)
            if (!(connection.socket as SocketWriter).heartbeat()) {
              logger.debug('terminating a WebSocket that did not answer a ping');
              ws.terminate();
            }
        }, websocket.pingIntervalMs)
      : undefined;
  heartbeat?.unref();

  app.server.on('upgrade', onUpgrade);
  budget?.addSource(function* () {
    for (const connection of open.values()) yield connection.socket as SocketWriter;
  });

  let idle: (() => void) | undefined;
  options.drain?.register({
    stopAccepting: () => {
      closing = true;
    },
    closers: () => [...open.values()].map((connection) => () => connection.close(1001, 'going away')),
    idle: () => (open.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => (idle = resolve))),
  });

  app.addHook('preClose', async () => {
    closing = true;
    for (const connection of open.values()) connection.close(1001, 'server shutting down');
    if (open.size > 0) {
      terminateTimer = setTimeout(() => {
        for (const ws of open.keys()) ws.terminate();
      }, SHUTDOWN_GRACE_MS);
      terminateTimer.unref();
    }
  });
  app.addHook('onClose', async () => {
    clearTimeout(terminateTimer);
    clearInterval(heartbeat);
    app.server.off('upgrade', onUpgrade);
    wss.close();
  });
};

/**
 * What a connection's operations know of its upgrade request: the headers `keep` asks for (those
 * the header rules read), no more. A connection lives long; a browser's upgrade carries cookies,
 * user agent and more that nothing here reads. Without any, connections share one empty context.
 */
export function requestContext(
  headers: IncomingMessage['headers'],
  keep: (name: string) => boolean,
): RequestContext {
  let kept: Record<string, string | string[] | undefined> | undefined;
  for (const name in headers) if (keep(name)) (kept ??= {})[name] = headers[name];
  return kept ? { headers: kept } : NO_CONTEXT;
}

const NO_CONTEXT: RequestContext = Object.freeze({});

/** Text frames as sent; binary frames read as UTF-8 JSON too, as graphql-ws does. */
function toText(data: RawData, _isBinary: boolean): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

/** Answers an upgrade request with a plain HTTP error, then closes the socket. */
function refuse(socket: Duplex, status: number, message: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = `${message}\n`;
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
      'Connection: close\r\n' +
      'Content-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      '\r\n' +
      body,
  );
}
