/**
 * The router's HTTP surface, assembled from plugins: GraphQL over HTTP (with GraphiQL on the same
 * path for browsers), the GraphiQL assets and the health endpoints. With an `OperationService`,
 * the same path also streams operations: WebSocket upgrades (graphql-transport-ws and the legacy
 * graphql-ws), requests for `text/event-stream` (GraphQL over SSE) and for `multipart/mixed`
 * (multipart subscriptions and incremental delivery). Metrics are not here: they are served on
 * their own port (server/metrics-server.ts).
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { RouterConfig } from '../config/types.js';
import type { RouterMetrics } from '../observability/metrics.js';
import type { OperationService } from '../subscriptions/service.js';
import type { GatewayHolder } from '../engine/gateway-holder.js';
import type { Authenticator } from '../auth/authenticator.js';
import { graphqlHttpPlugin } from './graphql-http.js';
import { healthPlugin } from './health.js';
import { createMultipartHandler, type MultipartHandler } from './multipart.js';
import { playgroundAssetsPlugin, renderPlayground } from './playground.js';
import type { Readiness } from './readiness.js';
import { createEventStreamHandler, type EventStreamHandler } from './sse.js';
import { websocketPlugin } from './websocket.js';
import { headersRead } from '../engine/headers.js';
import type { Drain } from './drain.js';
import { SendBudget } from '../protocols/send-budget.js';
import { checkFileLimit, clientErrorHandler, ConnectionGuard, httpServerOptions } from './connections.js';

export interface RouterServerOptions {
  config: RouterConfig;
  gateway: GatewayHolder;
  metrics: RouterMetrics;
  readiness: Readiness;
  logger: Logger;
  /**
   * Runs operations for streaming clients (subscriptions over WebSocket, SSE and multipart).
   * Without it the router serves GraphQL over HTTP (JSON) only.
   */
  operations?: OperationService;
  /** Collects the open connections for a graceful drain. */
  drain?: Drain;
  /** Verifies client tokens (`authentication.jwt`); absent = every client is anonymous. */
  authenticator?: Authenticator;
}

export async function buildRouterServer(options: RouterServerOptions): Promise<FastifyInstance> {
  const { config, gateway, metrics, readiness, logger, operations, drain, authenticator } = options;
  const edge = config.trafficShaping.router;
  const http = httpServerOptions(edge);
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // One line per request is too much for a router; failures are logged where they happen.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: edge.maxRequestBodySizeBytes,
    routerOptions: { ignoreTrailingSlash: true },
    // Stalled headers or bodies are cut (408); fastify would otherwise wait forever for a body.
    http,
    requestTimeout: http.requestTimeout,
    keepAliveTimeout: http.keepAliveTimeout,
    clientErrorHandler: clientErrorHandler(metrics),
  });
  // Before any route: a connection beyond max_connections may only reach the health endpoints.
  const guard = new ConnectionGuard({
    maxConnections: edge.maxConnections,
    healthCheckConnections: edge.healthCheckConnections,
    metrics,
    logger,
  });
  guard.attach(app.server);
  app.addHook('onRequest', guard.onRequest);
  await checkFileLimit(
    {
      httpConnections: edge.maxConnections + edge.healthCheckConnections,
      webSockets: config.websocket.enabled ? config.websocket.maxConnections : 0,
    },
    logger,
  );

  let playgroundHtml: (() => string) | undefined;
  if (config.playground.enabled) {
    const html = renderPlayground({ graphqlPath: config.graphqlPath });
    playgroundHtml = () => html;
    await app.register(playgroundAssetsPlugin);
  }

  let eventStream: EventStreamHandler | undefined;
  let multipart: MultipartHandler | undefined;
  if (operations) {
    const sendBufferLimitBytes = config.subscriptions.sendBufferLimitBytes;
    // What every client's queue together may hold; the largest are cut first beyond it.
    const budget = new SendBudget(config.subscriptions.sendBufferBudgetBytes, {
      onCut: (cut, queuedBytes) => {
        metrics.droppedMessages.inc({ reason: 'send_buffer_budget' }, cut);
        logger.warn(
          { cut, queuedBytes, budget: config.subscriptions.sendBufferBudgetBytes },
          'send buffer budget exceeded: closed the clients with the largest queues as slow consumers',
        );
      },
    });
    const streams = { open: 0, max: config.subscriptions.maxStreams };
    eventStream = createEventStreamHandler({
      streams,
      operations,
      metrics,
      keepaliveIntervalMs: config.subscriptions.sseKeepaliveIntervalMs,
      sendBufferLimitBytes,
      budget,
    });
    multipart = createMultipartHandler({
      streams,
      operations,
      metrics,
      heartbeatIntervalMs: config.subscriptions.multipartHeartbeatIntervalMs,
      sendBufferLimitBytes,
      budget,
    });
    // Open streams would otherwise hold `close()` until their clients leave.
    const handlers = [eventStream, multipart];
    app.addHook('preClose', async () => {
      for (const handler of handlers) handler.closeAll();
    });
    // Draining ends streams in the same jittered batches as WebSockets (no `complete` is sent).
    for (const handler of handlers) drain?.register(handler);
    if (config.websocket.enabled)
      await app.register(websocketPlugin, {
        path: config.graphqlPath,
        keepHeader: headersRead(config.headers),
        operations,
        metrics,
        logger,
        websocket: config.websocket,
        sendBufferLimitBytes,
        budget,
        drain,
        authenticator,
      });
  }

  await app.register(graphqlHttpPlugin, {
    path: config.graphqlPath,
    gateway,
    metrics,
    playgroundHtml,
    eventStream,
    multipart,
    authenticator,
    deduplicateRequests: config.trafficShaping.router.deduplicateRequests,
  });
  await app.register(healthPlugin, { readiness });
  return app;
}
