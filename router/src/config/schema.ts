/**
 * The JSON Schema of `router.yaml`: structure and types only. Every object is closed
 * (`additionalProperties: false`), so a misspelled key fails at start instead of being ignored.
 * Value formats (durations, addresses, paths) and cross-field rules are checked by the loader,
 * which can word those errors better than a pattern could.
 *
 * To add a section, write it with `section({...})` and add it to `routerConfigSchema`'s
 * properties; add its fields to `RouterConfigFile` and its resolved form to `RouterConfig`.
 */

export interface Schema {
  type?: 'object' | 'array' | 'string' | 'boolean' | 'integer' | 'number';
  properties?: Record<string, Schema>;
  required?: string[];
  /** `false`: a closed object; a schema: a map whose values all have it. */
  additionalProperties?: false | Schema;
  items?: Schema;
  enum?: readonly string[];
  minItems?: number;
  minLength?: number;
  minProperties?: number;
  maxProperties?: number;
  description?: string;
}

/** A closed object: unknown keys are errors. */
export function section(
  properties: Record<string, Schema>,
  extra: Omit<Schema, 'type' | 'properties'> = {},
): Schema {
  return { type: 'object', additionalProperties: false, properties, ...extra };
}

const string: Schema = { type: 'string' };
const nonEmptyString: Schema = { type: 'string', minLength: 1 };
const boolean: Schema = { type: 'boolean' };
const listOf = (items: Schema, minItems?: number): Schema =>
  minItems === undefined ? { type: 'array', items } : { type: 'array', items, minItems };
/** Go-style duration string: "500ms", "10s", "1m30s". */
const duration: Schema = { type: 'string', description: 'duration' };
/** "5MB", "512KiB". */
const byteSize: Schema = { type: 'string', description: 'byte size' };
const integer: Schema = { type: 'integer' };
/** "host:port", ":port" or "[ipv6]:port". */
const address: Schema = { type: 'string', description: 'address' };
const credentials = (extra: Record<string, Schema> = {}): Schema =>
  section({ username: nonEmptyString, password: string, ...extra }, { required: ['username', 'password'] });

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

const natsProvider = section(
  {
    id: nonEmptyString,
    url: nonEmptyString,
    authentication: section(
      {
        token: string,
        user_info: credentials(),
        creds_file: nonEmptyString,
        nkey_seed: nonEmptyString,
      },
      { minProperties: 1, maxProperties: 1 },
    ),
    tls: section({
      enabled: boolean,
      cert_file: nonEmptyString,
      key_file: nonEmptyString,
      ca_file: nonEmptyString,
    }),
    max_control_line: integer,
  },
  { required: ['id', 'url'] },
);

const kafkaProvider = section(
  {
    id: nonEmptyString,
    brokers: listOf(address, 1),
    authentication: section(
      {
        sasl_plain: credentials(),
        sasl_scram: credentials({ mechanism: { type: 'string', enum: ['SCRAM-SHA-256', 'SCRAM-SHA-512'] } }),
      },
      { minProperties: 1, maxProperties: 1 },
    ),
    tls: section({
      enabled: boolean,
      cert_file: nonEmptyString,
      key_file: nonEmptyString,
      ca_file: nonEmptyString,
    }),
  },
  { required: ['id', 'brokers'] },
);

/** Cosmo's header rules; which fields go with which `op` is checked by the loader. */
const headerRules = section({
  request: listOf(
    section(
      {
        op: { type: 'string', enum: ['propagate', 'set'] },
        named: nonEmptyString,
        matching: nonEmptyString,
        rename: nonEmptyString,
        default: string,
        name: nonEmptyString,
        value: string,
      },
      { required: ['op'] },
    ),
  ),
});

/** Cosmo's `security.complexity_limits.*`: a limit is applied only when enabled with a limit above 0. */
const complexityLimit = section({ enabled: boolean, limit: integer, ignore_persisted_operations: boolean });

/** Cosmo's `security` (operation limits; expression `condition`s are not supported). */
const security = section({
  block_mutations: section({ enabled: boolean }),
  block_subscriptions: section({ enabled: boolean }),
  complexity_calculation_cache: section({ enabled: boolean, size: integer }),
  complexity_limits: section({
    depth: complexityLimit,
    total_fields: complexityLimit,
    root_fields: complexityLimit,
    root_field_aliases: complexityLimit,
  }),
  /** Cosmo's deprecated spelling of `complexity_limits.depth`. */
  depth_limit: section({
    enabled: boolean,
    limit: integer,
    cache_size: integer,
    ignore_persisted_operations: boolean,
  }),
  operation_name_length_limit: integer,
  parser_limits: section({
    approximate_depth_limit: integer,
    total_fields_limit: integer,
    max_tokens: integer,
    max_document_size: byteSize,
  }),
  cost_analysis: section({ enabled: boolean, static_limit: integer, list_size: integer }),
  field_suggestions: section({ enabled: boolean }),
});

/** Cosmo's `authentication.jwt`; which of `url`, `file`, `keys` and their fields go together is checked by the loader. */
const jwt = section({
  jwks: listOf(
    section({
      url: nonEmptyString,
      file: nonEmptyString,
      keys: listOf({ type: 'object' }, 1),
      refresh_interval: duration,
      refresh_unknown_kid: section({ enabled: boolean, interval: duration }),
      algorithms: listOf(nonEmptyString, 1),
      audiences: listOf(nonEmptyString, 1),
      issuer: nonEmptyString,
    }),
    1,
  ),
  header_name: nonEmptyString,
  header_value_prefix: string,
  clock_skew: duration,
});

export const routerConfigSchema: Schema = section(
  {
    version: { type: 'string', enum: ['1'] },
    listen_addr: address,
    graphql_path: string,
    log_level: { type: 'string', enum: LOG_LEVELS },
    playground: section({ enabled: boolean }),
    shutdown_delay: duration,
    execution_config: section(
      { file: section({ path: nonEmptyString, watch: boolean }, { required: ['path'] }) },
      { required: ['file'] },
    ),
    events: section({
      providers: section({ nats: listOf(natsProvider), kafka: listOf(kafkaProvider) }),
      subjects: section({ max_length: integer, max_tokens: integer }),
    }),
    telemetry: section({
      metrics: section({
        prometheus: section({ enabled: boolean, listen_addr: address, path: string }),
      }),
    }),
    traffic_shaping: section({
      all: section({ request_timeout: duration, deduplicate_requests: boolean }),
      subgraphs: { type: 'object', additionalProperties: section({ deduplicate_requests: boolean }) },
      router: section({
        deduplicate_requests: boolean,
        max_request_body_size: byteSize,
        max_header_bytes: byteSize,
        read_header_timeout: duration,
        read_timeout: duration,
        keep_alive_idle_timeout: duration,
        max_connections: integer,
        health_check_connections: integer,
      }),
    }),
    websocket: section({
      enabled: boolean,
      connection_init_timeout: duration,
      keepalive_interval: duration,
      ping_interval: duration,
      max_connections: integer,
      max_subscriptions_per_connection: integer,
      max_frame_size: byteSize,
      authentication: section({
        from_initial_payload: section({
          enabled: boolean,
          key: nonEmptyString,
          export_token: section({ enabled: boolean, header_key: nonEmptyString }),
        }),
      }),
    }),
    security,
    introspection: section({ enabled: boolean }),
    /** Cosmo's deprecated spelling of `introspection.enabled`. */
    introspection_enabled: boolean,
    engine: section({ execution_plan_cache_size: integer, execution_plan_cache_memory_limit: byteSize }),
    headers: section({
      all: headerRules,
      subgraphs: { type: 'object', additionalProperties: headerRules },
    }),
    authentication: section({ jwt }),
    authorization: section({ require_authentication: boolean, reject_operation_if_unauthorized: boolean }),
    subscriptions: section({
      send_buffer_limit: byteSize,
      sse_keepalive_interval: duration,
      multipart_heartbeat_interval: duration,
      trigger_grace_period: duration,
      max_streams: integer,
      send_buffer_budget: byteSize,
      max_group_backlog: integer,
      resume: section({ max_replay_events: integer, max_replay_bytes: byteSize }),
    }),
  },
  { required: ['execution_config'] },
);
