/**
 * Starting and stopping a router: configuration -> logger and metrics -> execution config and
 * gateway -> HTTP server -> metrics server. Anything that fails on the way stops what was already
 * started and reports which setting to fix. `close()` drains in order: unready, stop accepting,
 * finish in-flight requests, then release the gateway's subgraph connections. Every hot reload
 * of the execution config is counted by its result, and the subgraphs of each config served get
 * their metric series at 0 before its first request.
 */
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { loadRouterConfig } from './config/load.js';
import type { Env } from './config/env.js';
import type { HostPort, RouterConfig } from './config/types.js';
import { readFile } from 'node:fs/promises';
import { createGateway, type Gateway } from './engine/gateway.js';
import { parseExecutionConfig } from './execution-config/load.js';
import { contentHash, watchExecutionConfig } from './execution-config/watch.js';
import { createLogger } from './observability/logger.js';
import { startMetricsServer, type MetricsServer } from './server/metrics-server.js';
import { createRouterMetrics, type RouterMetrics } from './observability/metrics.js';
import { connectableHost } from './server/address.js';
import { buildRouterServer } from './server/app.js';
import { GatewayHolder } from './engine/gateway-holder.js';
import { Readiness } from './server/readiness.js';
import { Drain } from './server/drain.js';
import { providerBus, type EventBus } from './event-fields/bus.js';
import type { EventProvider } from './events/provider.js';
import { createProviders } from './events/providers.js';
import { SubscriptionEngine } from './subscriptions/engine.js';
import { createOperationService } from './subscriptions/operations.js';
import { Authenticator } from './auth/authenticator.js';

export interface StartRouterOptions {
  /** Default: a logger at the configuration's `log_level`. */
  logger?: Logger;
  /** Variables for `${NAME}` in the configuration file; default `process.env`. */
  env?: Env;
  /** Default: a new registry for this router. */
  metrics?: RouterMetrics;
  /** Serve this execution config instead of reading `execution_config.file` (tests, the demo). */
  executionConfig?: unknown;
}

export interface RunningRouter {
  /** The GraphQL endpoint, with the port actually bound (`listen_addr` may say port 0). */
  url: string;
  /** `http://host:port` of the router, for the health endpoints. */
  baseUrl: string;
  /** The metrics endpoint; absent when Prometheus metrics are disabled. */
  metricsUrl?: string;
  app: FastifyInstance;
  config: RouterConfig;
  logger: Logger;
  metrics: RouterMetrics;
  readiness: Readiness;
  gateway: GatewayHolder;
  engine: SubscriptionEngine;
  /** The event providers by id (memory, NATS, Kafka). */
  providers: Map<string, EventProvider>;
  /** Reads the execution config file again and serves it if valid (what SIGHUP does). */
  reload(): Promise<ReloadResult>;
  /**
   * Graceful shutdown (what SIGTERM does): unready at once, no new connections, open ones closed
   * in jittered batches over `windowMs` (default `shutdown_delay`), then `close()`.
   */
  drain(windowMs?: number): Promise<void>;
  close(): Promise<void>;
}

export type ReloadResult = { ok: true; kept: number; ended: number } | { ok: false; error: string };

/** How long a replaced gateway stays open for requests that started on it. */
const PREVIOUS_GATEWAY_GRACE_MS = 30_000;

async function readExecutionConfigText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`execution config ${path}: cannot read file: ${(err as Error).message}`, { cause: err });
  }
}

async function closeProviders(providers: Map<string, EventProvider>): Promise<void> {
  await Promise.all([...providers.values()].map((p) => p.close().catch(() => undefined)));
}

export async function startRouter(
  configOrPath: string | RouterConfig,
  options: StartRouterOptions = {},
): Promise<RunningRouter> {
  const config =
    typeof configOrPath === 'string'
      ? await loadRouterConfig(configOrPath, { env: options.env })
      : configOrPath;
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const metrics = options.metrics ?? createRouterMetrics();

  // Durable JetStream consumers are per router instance, so every replica sees every event. Port 0
  // (any free port) is not known yet: routers of one host must not share their consumers.
  const instanceId = `${hostname()}:${config.listenAddr.host}:${config.listenAddr.port || randomUUID()}`;
  const providers = await createProviders(config.events.providers, { logger, nats: { instanceId }, metrics });
  const makeGateway = gatewayFactory(config, metrics, logger, providerBus(providers, config.events.subjects));
  const configPath = config.executionConfig.file.path;
  let configText: string | undefined;
  let initial: unknown = options.executionConfig;
  if (initial === undefined) {
    configText = await readExecutionConfigText(configPath);
    initial = parseExecutionConfig(configText, `execution config ${configPath}`);
  }
  const gateway = new GatewayHolder(
    makeGateway(
      initial,
      options.executionConfig === undefined ? `execution config ${configPath}` : 'execution config',
    ),
  );
  let authenticator: Authenticator;
  try {
    authenticator = await Authenticator.create(config.authentication, config.authorization, logger);
  } catch (err) {
    await closeProviders(providers);
    await gateway.close();
    throw new Error(`${config.source}: ${(err as Error).message}`, { cause: err });
  }
  const readiness = new Readiness();
  readiness.register('execution_config', () => (gateway.current ? true : 'no execution config loaded'));
  for (const provider of providers.values())
    readiness.register(`provider ${provider.id}`, () => provider.status().ready);
  for (const set of authenticator.keySets) readiness.register(`key set ${set.config.at}`, () => set.ready());
  const engine = new SubscriptionEngine({
    providers,
    metrics,
    logger,
    triggerGracePeriodMs: config.subscriptions.triggerGracePeriodMs,
    maxPendingEvents: config.subscriptions.maxGroupBacklog,
    resume: {
      maxEvents: config.subscriptions.resume.maxReplayEvents,
      maxBytes: config.subscriptions.resume.maxReplayBytes,
    },
    subjectLimits: config.events.subjects,
  });

  let app: FastifyInstance | undefined;
  let metricsServer: MetricsServer | undefined;
  const drain = new Drain();
  try {
    // Brokers are connected before the router takes traffic; a provider that cannot connect
    // keeps retrying in the background and holds /health/ready at not ready.
    await Promise.all(
      [...providers.values()].map((p) =>
        p
          .connect()
          .catch((err: unknown) => logger.warn({ err, provider: p.id }, 'event provider not connected yet')),
      ),
    );
    const operations = createOperationService(gateway, engine, logger);
    app = await buildRouterServer({
      config,
      gateway,
      metrics,
      readiness,
      logger,
      operations,
      drain,
      authenticator,
    });
    await listen(app, config.listenAddr, 'listen_addr');
    const prometheus = config.telemetry.metrics.prometheus;
    if (prometheus.enabled) {
      metricsServer = await startMetricsServer({
        metrics,
        listenAddr: prometheus.listenAddr,
        path: prometheus.path,
        logger,
      }).catch((err: unknown) => {
        throw listenError(err, prometheus.listenAddr, 'telemetry.metrics.prometheus.listen_addr');
      });
    }
  } catch (err) {
    await engine.close();
    await app?.close();
    authenticator.close();
    await closeProviders(providers);
    await gateway.close();
    throw err;
  }

  /**
   * Serves a new execution config: validated first (a bad one is refused and the current one keeps
   * serving), then swapped in for new requests; live subscriptions are re-planned against it.
   * The previous gateway is closed once requests that started on it had time to finish.
   */
  let reloads: Promise<unknown> = Promise.resolve();
  const retired = new Set<Gateway>();
  const reload = (text?: string): Promise<ReloadResult> => {
    const run = async (): Promise<ReloadResult> => {
      const source = `execution config ${configPath}`;
      let next: Gateway;
      try {
        const json = parseExecutionConfig(text ?? (await readExecutionConfigText(configPath)), source);
        next = makeGateway(json, source);
      } catch (err) {
        const error = (err as Error).message;
        logger.error({ error }, 'new execution config refused; the current one keeps serving');
        metrics.executionConfigReloads.inc({ result: 'failure' });
        return { ok: false, error };
      }
      const previous = gateway.swap(next);
      metrics.executionConfigReloads.inc({ result: 'success' });
      const { kept, ended } = engine.replan(next);
      logger.info({ kept, ended }, `execution config reloaded: ${kept} subscription(s) kept, ${ended} ended`);
      if (previous) {
        retired.add(previous);
        setTimeout(
          () => retired.delete(previous) && void previous.close(),
          PREVIOUS_GATEWAY_GRACE_MS,
        ).unref();
      }
      return { ok: true, kept, ended };
    };
    const result = reloads.then(run, run);
    reloads = result;
    return result;
  };
  const watcher =
    config.executionConfig.file.watch && options.executionConfig === undefined
      ? watchExecutionConfig(configPath, contentHash(configText ?? ''), (next) => void reload(next))
      : undefined;

  const address = app.server.address() as AddressInfo;
  const baseUrl = `http://${connectableHost(address)}:${address.port}`;
  const server = app;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      watcher?.close();
      readiness.markShuttingDown();
      // Sockets first (1001 "going away", so clients reconnect elsewhere), then the triggers.
      await server.close();
      await engine.close();
      authenticator.close();
      await metricsServer?.close();
      await closeProviders(providers);
      await Promise.all([...retired].map((g) => g.close()));
      await gateway.close();
    })();
    return closing;
  };
  return {
    url: `${baseUrl}${config.graphqlPath}`,
    baseUrl,
    metricsUrl: metricsServer?.url,
    app: server,
    config,
    logger,
    metrics,
    readiness,
    gateway,
    engine,
    providers,
    reload: () => reload(),
    async drain(windowMs = config.shutdownDelayMs) {
      readiness.markShuttingDown();
      // No new connections: the listener stops accepting, WebSocket upgrades on open ones get 503.
      server.server.close();
      const started = Date.now();
      await drain.run(windowMs);
      logger.info({ ms: Date.now() - started }, 'drained: every client connection closed');
      await close();
    },
    close,
  };
}

/** Makes a Gateway from an execution config; errors name the source to fix. */
function gatewayFactory(config: RouterConfig, metrics: RouterMetrics, logger: Logger, events: EventBus) {
  return (executionConfig: unknown, source: string): Gateway => {
    let gateway: Gateway;
    try {
      gateway = createGateway(executionConfig, {
        subgraphTimeoutMs: config.trafficShaping.all.requestTimeoutMs,
        onSubgraphRequest: (subgraph) => metrics.subgraphRequests.inc({ subgraph }),
        onSubgraphRequestDeduplicated: (subgraph) => metrics.subgraphRequestsDeduplicated.inc({ subgraph }),
        deduplicateRequests: {
          all: config.trafficShaping.all.deduplicateRequests,
          subgraphs: Object.fromEntries(
            Object.entries(config.trafficShaping.subgraphs).flatMap(([name, rules]) =>
              rules.deduplicateRequests === undefined ? [] : [[name, rules.deduplicateRequests]],
            ),
          ),
        },
        onSubgraphError: (subgraph, kind) => metrics.subgraphErrors.inc({ subgraph, kind }),
        logger,
        events,
        headerRules: config.headers,
        limits: config.security,
        introspection: config.introspection.enabled,
        authorization: config.authorization,
        documentCacheSize: config.engine.executionPlanCacheSize,
        documentCacheBytes: config.engine.executionPlanCacheMemoryLimitBytes,
        onRejected: (reason) => metrics.operationsRejected.inc({ reason }),
      });
    } catch (err) {
      const message = (err as Error).message;
      throw new Error(
        message.startsWith(source) ? message : `${source}: ${message.replace(/^execution config:\s*/, '')}`,
        {
          cause: err,
        },
      );
    }
    const served = gateway.supergraph.subgraphs.filter((s) => s.kind === 'graphql').map((s) => s.name);
    metrics.trackSubgraphs(served);
    // Not an error: a reload may bring the subgraph (back); but a misspelt name does nothing.
    for (const name of Object.keys(config.trafficShaping.subgraphs))
      if (!served.includes(name))
        logger.warn(
          { subgraph: name, served },
          `${config.source}: traffic_shaping.subgraphs.${name}: ${source} has no subgraph "${name}"; the setting does nothing until one is served`,
        );
    return gateway;
  };
}

async function listen(app: FastifyInstance, address: HostPort, key: string): Promise<void> {
  try {
    await app.listen({ host: address.host, port: address.port });
  } catch (err) {
    throw listenError(err, address, key);
  }
}

function listenError(err: unknown, address: HostPort, key: string): Error {
  const code = (err as { code?: string }).code;
  const where = `${address.host}:${address.port}`;
  const reason =
    code === 'EADDRINUSE'
      ? 'the port is already in use'
      : code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND'
        ? 'no such address on this machine'
        : code === 'EACCES'
          ? 'permission denied (ports below 1024 need privileges)'
          : (err as Error).message;
  return new Error(`${key} ${where}: cannot listen: ${reason}`, { cause: err });
}

/**
 * Runs a router until SIGINT or SIGTERM, then shuts it down cleanly (a second signal exits at
 * once). Resolves when the router has stopped; rejects when it cannot start.
 */
export async function runRouter(configPath: string): Promise<void> {
  const router = await startRouter(configPath);
  const { logger } = router;
  logger.info(
    {
      url: router.url,
      metricsUrl: router.metricsUrl,
      executionConfig: router.config.executionConfig.file.path,
    },
    `router listening on ${router.url}${router.metricsUrl ? `, metrics on ${router.metricsUrl}` : ''}`,
  );
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting without waiting for in-flight requests');
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal, drainWindowMs: router.config.shutdownDelayMs }, 'draining, then shutting down');
      router.drain().then(
        () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          process.off('SIGHUP', hangup);
          logger.info('router stopped');
          resolve();
        },
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    const hangup = () => {
      logger.info('SIGHUP: reloading the execution config');
      void router.reload();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    process.on('SIGHUP', hangup);
  });
}
