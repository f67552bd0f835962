/**
 * The router's HTTP surface, assembled from plugins: GraphQL over HTTP (with GraphiQL on the same
 * path for browsers), the GraphiQL assets and the health endpoints. With an `OperationService`,
 * the same path also streams operations: WebSocket upgrades (graphql-transport-ws and the legacy
 * graphql-ws), requests for `text/event-stream` (GraphQL over SSE) and for `multipart/mixed`
 * (multipart subscriptions and incremental delivery). Metrics are not here: they are served on
 * their own port (observability/metrics-server).
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { RouterConfig } from '../config/types.js';
import type { RouterMetrics } from '../observability/metrics.js';
import type { OperationService } from '../subscriptions/service.js';
import type { GatewayHolder } from './gateway-holder.js';
import { graphqlHttpPlugin } from './graphql-http.js';
import { healthPlugin } from './health.js';
import { createMultipartHandler, type MultipartHandler } from './multipart.js';
import { playgroundAssetsPlugin, renderPlayground } from './playground.js';
import type { Readiness } from './readiness.js';
import { createEventStreamHandler, type EventStreamHandler } from './sse.js';
import { websocketPlugin } from './websocket.js';
import { headersRead } from '../engine/headers.js';
import type { Drain } from './drain.js';

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
}

export async function buildRouterServer(options: RouterServerOptions): Promise<FastifyInstance> {
  const { config, gateway, metrics, readiness, logger, operations, drain } = options;
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // One line per request is too much for a router; failures are logged where they happen.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.trafficShaping.router.maxRequestBodySizeBytes,
    routerOptions: { ignoreTrailingSlash: true },
  });

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
    const streams = { open: 0, max: config.subscriptions.maxStreams };
    eventStream = createEventStreamHandler({
      streams,
      operations,
      metrics,
      keepaliveIntervalMs: config.subscriptions.sseKeepaliveIntervalMs,
      sendBufferLimitBytes,
    });
    multipart = createMultipartHandler({
      streams,
      operations,
      metrics,
      heartbeatIntervalMs: config.subscriptions.multipartHeartbeatIntervalMs,
      sendBufferLimitBytes,
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
        drain,
      });
  }

  await app.register(graphqlHttpPlugin, {
    path: config.graphqlPath,
    gateway,
    metrics,
    playgroundHtml,
    eventStream,
    multipart,
  });
  await app.register(healthPlugin, { readiness });
  return app;
}
