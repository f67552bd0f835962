/**
 * The router's HTTP surface, assembled from plugins: GraphQL over HTTP (with GraphiQL on the same
 * path for browsers), the GraphiQL assets and the health endpoints. Metrics are not here: they are
 * served on their own port (observability/metrics-server).
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { RouterConfig } from '../config/types.js';
import type { RouterMetrics } from '../observability/metrics.js';
import type { GatewayHolder } from './gateway-holder.js';
import { graphqlHttpPlugin } from './graphql-http.js';
import { healthPlugin } from './health.js';
import { playgroundAssetsPlugin, renderPlayground } from './playground.js';
import type { Readiness } from './readiness.js';

export interface RouterServerOptions {
  config: RouterConfig;
  gateway: GatewayHolder;
  metrics: RouterMetrics;
  readiness: Readiness;
  logger: Logger;
}

export async function buildRouterServer(options: RouterServerOptions): Promise<FastifyInstance> {
  const { config, gateway, metrics, readiness, logger } = options;
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
  await app.register(graphqlHttpPlugin, { path: config.graphqlPath, gateway, metrics, playgroundHtml });
  await app.register(healthPlugin, { readiness });
  return app;
}
