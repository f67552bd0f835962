/**
 * The value step of the loader: a `router.yaml` that fits the schema becomes the `RouterConfig`
 * the router runs on. Values are parsed (durations, sizes, addresses), cross-field rules checked,
 * defaults (config/defaults.ts) applied and relative paths resolved against `baseDir`.
 *
 * Sections with rules of their own have their own module (events.ts, headers.ts, security.ts);
 * this one holds the HTTP, WebSocket and subscription settings and puts the sections together.
 * Every problem goes to `issues`, always in the same order; the caller throws when there are any.
 */
import { isAbsolute, resolve } from 'node:path';
import { authenticationConfig, authorizationConfig } from './auth.js';
import { DEFAULT_DOCUMENT_CACHE, DEFAULTS } from './defaults.js';
import { providersConfig, subjectsConfig } from './events.js';
import { headersConfig } from './headers.js';
import type { Issues } from './issues.js';
import { securityConfig } from './security.js';
import type { HostPort, RouterConfig, RouterConfigFile } from './types.js';
import { parseByteSize, parseDuration, parseHostPort } from './units.js';

export function normalize(
  file: RouterConfigFile,
  source: string,
  baseDir: string,
  issues: Issues,
): RouterConfig {
  const filePath = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  const noAddress: HostPort = { host: '', port: 0 };

  const listenAddr = issues.check(
    'listen_addr',
    parseHostPort(file.listen_addr ?? DEFAULTS.listenAddr),
    noAddress,
  );
  const prometheusFile = file.telemetry?.metrics?.prometheus ?? {};
  const prometheus = {
    enabled: prometheusFile.enabled ?? true,
    listenAddr: issues.check(
      'telemetry.metrics.prometheus.listen_addr',
      parseHostPort(prometheusFile.listen_addr ?? DEFAULTS.metricsListenAddr),
      noAddress,
    ),
    path: issues.urlPath('telemetry.metrics.prometheus.path', prometheusFile.path ?? DEFAULTS.metricsPath),
  };
  if (prometheus.enabled && listenAddr.port !== 0 && listenAddr.port === prometheus.listenAddr.port)
    issues.push({
      path: 'telemetry.metrics.prometheus.listen_addr',
      message: `port ${listenAddr.port} is already used by listen_addr; metrics need their own port`,
    });

  const timeoutText = file.traffic_shaping?.all?.request_timeout;
  let requestTimeoutMs: number | undefined;
  if (timeoutText !== undefined) {
    const parsed = parseDuration(timeoutText);
    requestTimeoutMs = issues.check('traffic_shaping.all.request_timeout', parsed, 0);
    if (parsed.ok && parsed.value === 0)
      issues.push({ path: 'traffic_shaping.all.request_timeout', message: 'must be greater than zero' });
  }

  const edgeFile = file.traffic_shaping?.router ?? {};
  const edgeDefaults = DEFAULTS.router;
  const trafficRouter = {
    deduplicateRequests: edgeFile.deduplicate_requests ?? edgeDefaults.deduplicateRequests,
    maxRequestBodySizeBytes: issues.check(
      'traffic_shaping.router.max_request_body_size',
      parseByteSize(edgeFile.max_request_body_size ?? DEFAULTS.maxRequestBodySize),
      0,
    ),
    maxHeaderBytes: issues.size(
      'traffic_shaping.router.max_header_bytes',
      edgeFile.max_header_bytes ?? edgeDefaults.maxHeaderBytes,
    ),
    readHeaderTimeoutMs: issues.duration(
      'traffic_shaping.router.read_header_timeout',
      edgeFile.read_header_timeout ?? edgeDefaults.readHeaderTimeout,
      true,
    ),
    readTimeoutMs: issues.duration(
      'traffic_shaping.router.read_timeout',
      edgeFile.read_timeout ?? edgeDefaults.readTimeout,
      true,
    ),
    keepAliveIdleTimeoutMs: issues.duration(
      'traffic_shaping.router.keep_alive_idle_timeout',
      edgeFile.keep_alive_idle_timeout ?? edgeDefaults.keepAliveIdleTimeout,
      true,
    ),
    maxConnections: issues.atLeastOne(
      'traffic_shaping.router.max_connections',
      edgeFile.max_connections ?? edgeDefaults.maxConnections,
    ),
    healthCheckConnections: issues.atLeastOne(
      'traffic_shaping.router.health_check_connections',
      edgeFile.health_check_connections ?? edgeDefaults.healthCheckConnections,
    ),
  };
  if (trafficRouter.readHeaderTimeoutMs > trafficRouter.readTimeoutMs)
    issues.push({
      path: 'traffic_shaping.router.read_header_timeout',
      message: `must not be longer than traffic_shaping.router.read_timeout (${trafficRouter.readTimeoutMs} ms): the headers are part of the request`,
    });

  const subjects = subjectsConfig(file.events, issues);

  const ws = file.websocket ?? {};
  const wsDefaults = DEFAULTS.websocket;
  const websocket = {
    enabled: ws.enabled ?? true,
    connectionInitTimeoutMs: issues.duration(
      'websocket.connection_init_timeout',
      ws.connection_init_timeout ?? wsDefaults.connectionInitTimeout,
      true,
    ),
    keepaliveIntervalMs: issues.duration(
      'websocket.keepalive_interval',
      ws.keepalive_interval ?? wsDefaults.keepaliveInterval,
    ),
    pingIntervalMs: issues.duration('websocket.ping_interval', ws.ping_interval ?? wsDefaults.pingInterval),
    maxConnections: issues.atLeastOne(
      'websocket.max_connections',
      ws.max_connections ?? wsDefaults.maxConnections,
    ),
    maxSubscriptionsPerConnection: issues.atLeastOne(
      'websocket.max_subscriptions_per_connection',
      ws.max_subscriptions_per_connection ?? wsDefaults.maxSubscriptionsPerConnection,
    ),
    maxFrameSizeBytes: issues.size('websocket.max_frame_size', ws.max_frame_size ?? wsDefaults.maxFrameSize),
    ...initialPayloadToken(ws.authentication?.from_initial_payload),
  };
  const subs = file.subscriptions ?? {};
  const subsDefaults = DEFAULTS.subscriptions;
  const subscriptions = {
    sendBufferLimitBytes: issues.size(
      'subscriptions.send_buffer_limit',
      subs.send_buffer_limit ?? subsDefaults.sendBufferLimit,
    ),
    sseKeepaliveIntervalMs: issues.duration(
      'subscriptions.sse_keepalive_interval',
      subs.sse_keepalive_interval ?? subsDefaults.sseKeepaliveInterval,
    ),
    multipartHeartbeatIntervalMs: issues.duration(
      'subscriptions.multipart_heartbeat_interval',
      subs.multipart_heartbeat_interval ?? subsDefaults.multipartHeartbeatInterval,
    ),
    triggerGracePeriodMs: issues.duration(
      'subscriptions.trigger_grace_period',
      subs.trigger_grace_period ?? subsDefaults.triggerGracePeriod,
    ),
    maxStreams: issues.atLeastOne('subscriptions.max_streams', subs.max_streams ?? subsDefaults.maxStreams),
    sendBufferBudgetBytes: issues.size(
      'subscriptions.send_buffer_budget',
      subs.send_buffer_budget ?? subsDefaults.sendBufferBudget,
    ),
    maxGroupBacklog: issues.atLeastOne(
      'subscriptions.max_group_backlog',
      subs.max_group_backlog ?? subsDefaults.maxGroupBacklog,
    ),
    resume: {
      maxReplayEvents: issues.atLeastOne(
        'subscriptions.resume.max_replay_events',
        subs.resume?.max_replay_events ?? subsDefaults.maxReplayEvents,
      ),
      maxReplayBytes: issues.size(
        'subscriptions.resume.max_replay_bytes',
        subs.resume?.max_replay_bytes ?? subsDefaults.maxReplayBytes,
      ),
    },
  };

  const security = securityConfig(file.security ?? {}, issues);
  const introspectionEnabled = file.introspection?.enabled ?? file.introspection_enabled ?? true;
  if (
    file.introspection?.enabled !== undefined &&
    file.introspection_enabled !== undefined &&
    file.introspection.enabled !== file.introspection_enabled
  )
    issues.push({
      path: 'introspection_enabled',
      message:
        'contradicts introspection.enabled; set only introspection.enabled (introspection_enabled is deprecated)',
    });
  const engineFile = file.engine ?? {};
  const engine = {
    executionPlanCacheSize: issues.atLeastOne(
      'engine.execution_plan_cache_size',
      engineFile.execution_plan_cache_size ?? DEFAULT_DOCUMENT_CACHE.entries,
    ),
    executionPlanCacheMemoryLimitBytes:
      engineFile.execution_plan_cache_memory_limit === undefined
        ? DEFAULT_DOCUMENT_CACHE.bytes
        : issues.size(
            'engine.execution_plan_cache_memory_limit',
            engineFile.execution_plan_cache_memory_limit,
          ),
  };

  const headers = headersConfig(file.headers, issues);

  const providers = providersConfig(file.events, subjects, filePath, issues);

  const authentication = authenticationConfig(file.authentication, filePath, issues);
  const authorization = authorizationConfig(file.authorization, authentication.jwt, issues);

  return {
    source,
    baseDir,
    listenAddr,
    graphqlPath: issues.urlPath('graphql_path', file.graphql_path ?? DEFAULTS.graphqlPath),
    logLevel: file.log_level ?? DEFAULTS.logLevel,
    playground: { enabled: file.playground?.enabled ?? true },
    executionConfig: {
      file: {
        path: filePath(file.execution_config.file.path),
        watch: file.execution_config.file.watch ?? true,
      },
    },
    events: { providers, subjects },
    telemetry: { metrics: { prometheus } },
    trafficShaping: {
      all: {
        ...(requestTimeoutMs === undefined ? {} : { requestTimeoutMs }),
        deduplicateRequests:
          file.traffic_shaping?.all?.deduplicate_requests ?? DEFAULTS.deduplicateSubgraphRequests,
      },
      subgraphs: Object.fromEntries(
        Object.entries(file.traffic_shaping?.subgraphs ?? {}).map(([name, rules]) => [
          name,
          rules.deduplicate_requests === undefined ? {} : { deduplicateRequests: rules.deduplicate_requests },
        ]),
      ),
      router: trafficRouter,
    },
    websocket,
    subscriptions,
    authentication,
    authorization,
    headers,
    security,
    introspection: { enabled: introspectionEnabled },
    engine,
    shutdownDelayMs: issues.duration('shutdown_delay', file.shutdown_delay ?? DEFAULTS.shutdownDelay),
  };
}

/** Cosmo's `websocket.authentication.from_initial_payload`. */
function initialPayloadToken(
  file: NonNullable<NonNullable<RouterConfigFile['websocket']>['authentication']>['from_initial_payload'],
): { initialPayloadToken?: { key: string; exportHeader?: string } } {
  if (!file?.enabled) return {};
  const key = file.key ?? 'Authorization';
  if (!file.export_token?.enabled) return { initialPayloadToken: { key } };
  return {
    initialPayloadToken: {
      key,
      exportHeader: (file.export_token.header_key ?? 'Authorization').toLowerCase(),
    },
  };
}
