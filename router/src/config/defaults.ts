/**
 * The defaults of `router.yaml`: what the router runs with for every key the file leaves out.
 * The loader applies them; the engine takes `DEFAULT_OPERATION_LIMITS` and `DEFAULT_DOCUMENT_CACHE`
 * from here when it is built without a configuration (tests, benchmarks), so both agree.
 *
 * Values that go through a parser (durations, sizes, addresses) are written as in the file.
 */
import type { OperationLimits } from './types.js';

export const DEFAULTS = {
  listenAddr: 'localhost:3002',
  graphqlPath: '/graphql',
  logLevel: 'info',
  metricsListenAddr: '0.0.0.0:8088',
  metricsPath: '/metrics',
  maxRequestBodySize: '5MB',
  /** `traffic_shaping.all.deduplicate_requests`: subgraph requests in flight are shared. */
  deduplicateSubgraphRequests: true,
  /** The HTTP edge (`traffic_shaping.router`): see docs/limits-and-protection.md. */
  router: {
    // Sharing one response among clients is a choice the operator makes knowingly.
    deduplicateRequests: false,
    // Node's own default: what every client got before the key existed.
    maxHeaderBytes: '16KiB',
    readHeaderTimeout: '10s',
    // Whole request, body included: GraphQL bodies are small; a stalled one is cut.
    readTimeout: '30s',
    // Above the 60 s idle timeout of common load balancers, so the router never closes a
    // connection a balancer is about to reuse.
    keepAliveIdleTimeout: '72s',
    maxConnections: 10_000,
    healthCheckConnections: 16,
  },
  /** Rendered subjects and topics (`events.subjects`): see event-fields/subject-templates.ts. */
  subjects: { maxLength: 512, maxTokens: 32 },
  /** nats-server's default max_control_line. */
  natsMaxControlLine: 4096,
  // Spread reconnects of a drained router's clients over this long (Kubernetes' default grace
  // period is 30s: the operator sets terminationGracePeriodSeconds above it).
  shutdownDelay: '20s',
  websocket: {
    connectionInitTimeout: '10s',
    // Like graphql-ws: the server does not ping unless asked to; clients ping if they care.
    keepaliveInterval: '0s',
    // Below the idle timeouts of common proxies (nginx 60s, cloud load balancers 60-350s).
    pingInterval: '30s',
    maxConnections: 10_000,
    maxSubscriptionsPerConnection: 100,
    maxFrameSize: '1MiB',
  },
  /** `authentication.jwt` (Cosmo's defaults). */
  authentication: {
    headerName: 'Authorization',
    headerValuePrefix: 'Bearer',
    clockSkew: '0s',
    refreshInterval: '1m',
    // An unknown kid is usually a rotation: fetch again, but never more than this often.
    unknownKidInterval: '10s',
  },
  subscriptions: {
    sendBufferLimit: '1MiB',
    // graphql-sse's interval: below the idle timeout of common proxies (nginx: 60s).
    sseKeepaliveInterval: '12s',
    // Apollo's multipart subscription protocol: a heartbeat part every 5 seconds.
    multipartHeartbeatInterval: '5s',
    triggerGracePeriod: '0s',
    maxStreams: 10_000,
    // Queued frames of every client together; per-client `send_buffer_limit` alone would allow
    // max_connections times it.
    sendBufferBudget: '256MiB',
    maxGroupBacklog: 1024,
    // A resuming client may be this far behind; a client further back resynchronises instead.
    maxReplayEvents: 10_000,
    maxReplayBytes: '16MiB',
  },
} as const;

/** The operation limits (`security`); for every number, 0 means off. */
export const DEFAULT_OPERATION_LIMITS: OperationLimits = {
  parserLimits: {
    maxDocumentSizeBytes: 1_000_000,
    maxTokens: 50_000,
    approximateDepthLimit: 200,
    totalFieldsLimit: 3500,
  },
  complexityLimits: { depth: 0, totalFields: 0, rootFields: 0, rootFieldAliases: 0 },
  costAnalysis: { enabled: true, staticLimit: 100_000, listSize: 10 },
  operationNameLengthLimit: 512,
  blockMutations: false,
  blockSubscriptions: false,
  fieldSuggestions: false,
};

/** Bounds of the document cache (`engine.execution_plan_cache_size`, `engine.execution_plan_cache_memory_limit`). */
export const DEFAULT_DOCUMENT_CACHE = { entries: 1024, bytes: 64 * 1024 * 1024 } as const;
