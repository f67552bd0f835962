/**
 * Two shapes of the router configuration:
 * - `RouterConfigFile`: what a user (or the operator) writes to `router.yaml`, Cosmo's snake_case
 *   keys, everything optional but `execution_config`.
 * - `RouterConfig`: what the router runs on, after environment expansion, validation and defaults:
 *   every value present, durations in milliseconds, addresses split, paths absolute.
 *
 * The resolved shapes are what the rest of the router is built from (the engine's header rules and
 * operation limits included): they are defined here, next to the loader that produces them, and
 * this module imports nothing.
 */

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface HostPort {
  host: string;
  port: number;
}

// ---------------------------------------------------------------------------------------------
// router.yaml as written

export interface RouterConfigFile {
  version?: string;
  listen_addr?: string;
  graphql_path?: string;
  log_level?: LogLevel;
  playground?: { enabled?: boolean };
  /** Drain window on SIGTERM (Cosmo's name): connections are closed spread over it. */
  shutdown_delay?: string;
  execution_config: { file: { path: string; watch?: boolean } };
  events?: {
    providers?: {
      nats?: NatsProviderFile[];
      kafka?: KafkaProviderFile[];
    };
    /** Bounds of rendered subjects and topics, checked before any broker call. */
    subjects?: { max_length?: number; max_tokens?: number };
  };
  telemetry?: {
    metrics?: { prometheus?: { enabled?: boolean; listen_addr?: string; path?: string } };
  };
  traffic_shaping?: {
    all?: { request_timeout?: string; deduplicate_requests?: boolean };
    /** Per subgraph name: overrides `all` for that subgraph. */
    subgraphs?: Record<string, { deduplicate_requests?: boolean }>;
    router?: {
      deduplicate_requests?: boolean;
      max_request_body_size?: string;
      max_header_bytes?: string;
      read_header_timeout?: string;
      read_timeout?: string;
      keep_alive_idle_timeout?: string;
      max_connections?: number;
      health_check_connections?: number;
    };
  };
  websocket?: {
    enabled?: boolean;
    connection_init_timeout?: string;
    keepalive_interval?: string;
    ping_interval?: string;
    max_connections?: number;
    max_subscriptions_per_connection?: number;
    max_frame_size?: string;
    authentication?: {
      from_initial_payload?: {
        enabled?: boolean;
        key?: string;
        export_token?: { enabled?: boolean; header_key?: string };
      };
    };
  };
  /** Operation limits (Cosmo's `security`); see docs/limits-and-protection.md. */
  security?: SecurityFile;
  introspection?: { enabled?: boolean };
  /** Cosmo's deprecated spelling of `introspection.enabled`. */
  introspection_enabled?: boolean;
  engine?: { execution_plan_cache_size?: number; execution_plan_cache_memory_limit?: string };
  headers?: {
    all?: HeaderRulesFile;
    subgraphs?: Record<string, HeaderRulesFile>;
  };
  /** Who a client is: JWTs verified against JSON Web Key Sets (see config/auth.ts). */
  authentication?: { jwt?: JwtFile };
  /** What an anonymous or unauthorized client may do. */
  authorization?: { require_authentication?: boolean; reject_operation_if_unauthorized?: boolean };
  subscriptions?: {
    send_buffer_limit?: string;
    sse_keepalive_interval?: string;
    multipart_heartbeat_interval?: string;
    trigger_grace_period?: string;
    max_streams?: number;
    send_buffer_budget?: string;
    max_group_backlog?: number;
    resume?: { max_replay_events?: number; max_replay_bytes?: string };
  };
}

/** Cosmo's `authentication.jwt`. */
export interface JwtFile {
  jwks?: JwksFile[];
  /** The request header that carries the token; default `Authorization`. */
  header_name?: string;
  /** The scheme before the token in that header; default `Bearer`. */
  header_value_prefix?: string;
  /** How far `exp`, `nbf` and `iat` may be off, as a Go duration; default `0s`. */
  clock_skew?: string;
}

/** One key set: exactly one of `url` (fetched and refreshed), `file` or `keys` (inline). */
export interface JwksFile {
  url?: string;
  file?: string;
  keys?: Record<string, unknown>[];
  /** How often a `url` key set is fetched again in the background; default `1m`. */
  refresh_interval?: string;
  /** A token whose `kid` no key has makes the router fetch the set again, at most once per `interval`. */
  refresh_unknown_kid?: { enabled?: boolean; interval?: string };
  /** Accepted signing algorithms (asymmetric only); default every asymmetric one. */
  algorithms?: string[];
  /** The token's `aud` must name one of these, when set. */
  audiences?: string[];
  /** The token's `iss` must be this, when set. */
  issuer?: string;
}

/** Cosmo's `security.complexity_limits.*` entry. */
export interface ComplexityLimitFile {
  enabled?: boolean;
  limit?: number;
  /** Accepted for Cosmo's configs; this router has no persisted operations, so it changes nothing. */
  ignore_persisted_operations?: boolean;
}

export interface SecurityFile {
  block_mutations?: { enabled?: boolean };
  block_subscriptions?: { enabled?: boolean };
  /** Accepted for Cosmo's configs: results are kept with the document in its cache entry. */
  complexity_calculation_cache?: { enabled?: boolean; size?: number };
  complexity_limits?: {
    depth?: ComplexityLimitFile;
    total_fields?: ComplexityLimitFile;
    root_fields?: ComplexityLimitFile;
    root_field_aliases?: ComplexityLimitFile;
  };
  /** Deprecated (Cosmo): `complexity_limits.depth`. */
  depth_limit?: ComplexityLimitFile & { cache_size?: number };
  operation_name_length_limit?: number;
  parser_limits?: {
    approximate_depth_limit?: number;
    total_fields_limit?: number;
    max_tokens?: number;
    max_document_size?: string;
  };
  cost_analysis?: { enabled?: boolean; static_limit?: number; list_size?: number };
  field_suggestions?: { enabled?: boolean };
}

/** Which client headers reach subgraph requests (Cosmo's format). */
export interface HeaderRulesFile {
  request?: {
    op: 'propagate' | 'set';
    named?: string;
    matching?: string;
    rename?: string;
    default?: string;
    name?: string;
    value?: string;
  }[];
}

export interface NatsProviderFile {
  id: string;
  url: string;
  authentication?: {
    token?: string;
    user_info?: { username: string; password: string };
    creds_file?: string;
    nkey_seed?: string;
  };
  tls?: { enabled?: boolean; cert_file?: string; key_file?: string; ca_file?: string };
  /** The server's `max_control_line`, when it is not nats-server's default of 4096 bytes. */
  max_control_line?: number;
}

export interface KafkaProviderFile {
  id: string;
  brokers: string[];
  authentication?: {
    sasl_plain?: { username: string; password: string };
    sasl_scram?: { username: string; password: string; mechanism?: 'SCRAM-SHA-256' | 'SCRAM-SHA-512' };
  };
  tls?: { enabled?: boolean; cert_file?: string; key_file?: string; ca_file?: string };
}

// ---------------------------------------------------------------------------------------------
// The resolved configuration

export interface RouterConfig {
  /** Where the configuration came from, for messages (the file path as given, or a label). */
  source: string;
  /** Absolute directory that relative paths in the file were resolved against. */
  baseDir: string;
  listenAddr: HostPort;
  graphqlPath: string;
  logLevel: LogLevel;
  playground: { enabled: boolean };
  executionConfig: { file: { /** absolute */ path: string; watch: boolean } };
  events: {
    providers: { nats: NatsProviderConfig[]; kafka: KafkaProviderConfig[] };
    /** Bounds of rendered subjects and topics (see event-fields/subject-templates.ts). */
    subjects: { maxLength: number; maxTokens: number };
  };
  telemetry: { metrics: { prometheus: PrometheusConfig } };
  trafficShaping: {
    /** Rules for every subgraph request. */
    all: {
      /** Deadline of one subgraph request; unset = each subgraph's timeout from the execution config. */
      requestTimeoutMs?: number;
      /**
       * Identical subgraph requests in flight (same subgraph, body and forwarded headers) are sent
       * once and their answer shared; queries and subscription events only, never mutations.
       */
      deduplicateRequests: boolean;
    };
    /** Per subgraph name, what differs from `all`. */
    subgraphs: Record<string, { deduplicateRequests?: boolean }>;
    /** Rules for client requests to the router. */
    router: RouterTrafficConfig;
  };
  websocket: WebSocketConfig;
  subscriptions: SubscriptionsConfig;
  /** Token verification; `jwt` absent = every client is anonymous. */
  authentication: { jwt?: JwtConfig };
  authorization: AuthorizationConfig;
  /** Which client headers reach which subgraph; nothing is forwarded without a rule. */
  headers: HeaderRules;
  /** Operation limits, checked before an operation is planned (see engine/limits.ts). */
  security: OperationLimits;
  /** `__schema` and `__type` served (true) or refused (false). */
  introspection: { enabled: boolean };
  /** The cache of parsed, validated and planned documents: entries and estimated heap, in bytes. */
  engine: { executionPlanCacheSize: number; executionPlanCacheMemoryLimitBytes: number };
  /**
   * Drain window on SIGTERM: readiness fails at once, new connections are refused, open
   * WebSockets are closed (1001) in jittered batches spread over this window, then the process exits.
   */
  shutdownDelayMs: number;
}

/** The router's HTTP listener: what one client connection may take (see server/connections.ts). */
export interface RouterTrafficConfig {
  /**
   * Identical client queries over HTTP in flight (same document, operation name, variables,
   * extensions and request headers) share one execution and its response. Off by default.
   */
  deduplicateRequests: boolean;
  maxRequestBodySizeBytes: number;
  /** Request line and headers together; more gets 431. */
  maxHeaderBytes: number;
  /** A request whose headers have not all arrived within this time gets 408 and is closed. */
  readHeaderTimeoutMs: number;
  /** A request (headers and body) not fully received within this time gets 408 and is closed. */
  readTimeoutMs: number;
  /** An idle keep-alive connection is closed after this time without a new request. */
  keepAliveIdleTimeoutMs: number;
  /**
   * Open HTTP connections (WebSocket connections leave this count once upgraded; they have
   * `websocket.max_connections`). Beyond it a connection may only ask for a health endpoint.
   */
  maxConnections: number;
  /** Connections beyond `maxConnections` kept for health checks (`/health/*` only, then closed). */
  healthCheckConnections: number;
}

/** Subscriptions over WebSocket (graphql-transport-ws and the legacy graphql-ws). */
export interface WebSocketConfig {
  enabled: boolean;
  /** A connection that sends no `connection_init` within this time is closed (4408). */
  connectionInitTimeoutMs: number;
  /**
   * Keep-alives every this often; 0 = none. graphql-transport-ws: a server ping, and a connection
   * that missed the pong is closed (4504). Legacy graphql-ws: a `ka` message (and one right after
   * the ack); its clients close a connection whose `ka`s stop.
   */
  keepaliveIntervalMs: number;
  /**
   * WebSocket ping frames (every WebSocket client answers them itself, browsers included) this
   * often; a socket that has not answered the previous one is dropped. Finds dead peers and keeps
   * idle connections alive through proxies and load balancers. 0 = none.
   */
  pingIntervalMs: number;
  /** Open WebSocket connections per router; upgrades beyond it are refused with 503. */
  maxConnections: number;
  /** Active operations per connection; a subscribe beyond it gets an error message. */
  maxSubscriptionsPerConnection: number;
  /** Largest message a client may send; a bigger one closes the connection (1009). */
  maxFrameSizeBytes: number;
  /**
   * `authentication.from_initial_payload` (enabled): the key of the `connection_init` payload whose
   * string value is the connection's token (taken before the upgrade request's header). With
   * `export_token`, that value also becomes the request header `exportHeader` (lower case) of the
   * connection's operations, for the header rules; browsers cannot set headers on a WebSocket.
   */
  initialPayloadToken?: { key: string; exportHeader?: string };
}

/** How tokens are found and verified (`authentication.jwt`). */
export interface JwtConfig {
  keySets: KeySetConfig[];
  /** Lower case. */
  headerName: string;
  /** The scheme before the token, e.g. `Bearer`; '' = the whole header value is the token. */
  headerValuePrefix: string;
  clockSkewMs: number;
}

export type KeySetSource =
  | {
      kind: 'url';
      url: string;
      refreshIntervalMs: number;
      /** Unknown `kid`: fetch again, at most once per `intervalMs`; undefined = never. */
      unknownKidRefetchMs?: number;
    }
  | { kind: 'file'; /** absolute */ path: string }
  | { kind: 'inline'; keys: Record<string, unknown>[] };

export interface KeySetConfig {
  source: KeySetSource;
  /** Where it is in router.yaml (`authentication.jwt.jwks[0]`), for messages. */
  at: string;
  algorithms: string[];
  audiences: string[];
  issuer?: string;
}

export interface AuthorizationConfig {
  /** An operation without a valid token is refused (401, or 4403 on a WebSocket). */
  requireAuthentication: boolean;
  /**
   * For field-level rules (`@authenticated`, `@requiresScopes`): refuse the whole operation with
   * the errors instead of nulling each unauthorized field with its error.
   */
  rejectOperationIfUnauthorized: boolean;
}

/** Delivery to subscription clients, whatever their protocol. */
export interface SubscriptionsConfig {
  /** A client whose unsent bytes exceed this is a slow consumer and is disconnected. */
  sendBufferLimitBytes: number;
  /** Comment lines on SSE streams every this often, so proxies keep them open; 0 = none. */
  sseKeepaliveIntervalMs: number;
  /** `{}` heartbeat parts on multipart subscription streams every this often; 0 = none. */
  multipartHeartbeatIntervalMs: number;
  /** How long a broker subscription outlives its last client, for a quick resubscribe. */
  triggerGracePeriodMs: number;
  /** Open SSE and multipart streams per router, together; one more request gets 503. */
  maxStreams: number;
  /**
   * Bytes queued for all clients together (each queued write counted with its overhead); beyond
   * it the largest queues are cut as slow consumers until the total is within it again.
   */
  sendBufferBudgetBytes: number;
  /**
   * Events a Group (the clients of one subscription with the same variables and headers) may
   * hold unresolved; beyond it new events are dropped and its clients told (`EVENTS_DROPPED`).
   */
  maxGroupBacklog: number;
  /** Bounds of one resuming client's catch-up: events after its cursor (and held live ones meanwhile). */
  resume: { maxReplayEvents: number; maxReplayBytes: number };
}

/**
 * One header rule (see engine/headers.ts for how rules apply): `propagate` copies a client header
 * by exact name or by a case-insensitive pattern over header names; `set` sends a fixed value.
 */
export type HeaderRule =
  | { op: 'propagate'; named: string; rename?: string; default?: string }
  | { op: 'propagate'; matching: RegExp }
  | { op: 'set'; name: string; value: string };

export interface HeaderRules {
  all: HeaderRule[];
  /** By subgraph name. */
  subgraphs: Record<string, HeaderRule[]>;
}

/**
 * The router's operation limits (`security` in router.yaml). For every number, 0 means off.
 * Defaults: `DEFAULT_OPERATION_LIMITS` (config/defaults.ts).
 */
export interface OperationLimits {
  parserLimits: {
    /** Largest document text, in bytes. */
    maxDocumentSizeBytes: number;
    /** Most lexical tokens in a document (graphql-js' `maxTokens`). */
    maxTokens: number;
    /** Deepest nesting: of brackets in the text, and of fields with fragments expanded. */
    approximateDepthLimit: number;
    /** Most fields in a document, each fragment counted every time it is spread. */
    totalFieldsLimit: number;
  };
  /** Per executed operation, fragments expanded (Cosmo's `complexity_limits`). */
  complexityLimits: { depth: number; totalFields: number; rootFields: number; rootFieldAliases: number };
  /** Static cost estimate (Cosmo's `cost_analysis`); `staticLimit` 0 computes without refusing. */
  costAnalysis: { enabled: boolean; staticLimit: number; listSize: number };
  /** Longest `operationName` a request may give. */
  operationNameLengthLimit: number;
  blockMutations: boolean;
  blockSubscriptions: boolean;
  /** "Did you mean ...?" in validation errors; off, they reveal field and type names. */
  fieldSuggestions: boolean;
}

export interface PrometheusConfig {
  enabled: boolean;
  listenAddr: HostPort;
  path: string;
}

export type NatsAuthentication =
  | { kind: 'token'; token: string }
  | { kind: 'user_info'; username: string; password: string }
  | { kind: 'creds_file'; /** absolute */ path: string }
  | { kind: 'nkey'; seed: string };

export interface NatsProviderConfig {
  id: string;
  url: string;
  authentication?: NatsAuthentication;
  /** Present when TLS is enabled; file paths are absolute. */
  tls?: { certFile?: string; keyFile?: string; caFile?: string };
  /** The server's `max_control_line` in bytes; unset = nats-server's default, 4096. */
  maxControlLine?: number;
}

export interface KafkaProviderConfig {
  id: string;
  brokers: string[];
  /** Mechanism names as kafkajs spells them. */
  authentication?: {
    mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
    username: string;
    password: string;
  };
  /** File paths are absolute. */
  tls: { enabled: boolean; certFile?: string; keyFile?: string; caFile?: string };
}
