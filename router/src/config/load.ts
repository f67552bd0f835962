/**
 * The one loader of `router.yaml`: YAML -> environment expansion -> JSON Schema validation ->
 * value checks -> defaults. Every problem is reported at once, one line each, naming the file and
 * the key to fix (`router.yaml: events.providers.nats[0].url: must be a string`).
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parseDocument } from 'yaml';
import { expandEnv, pathKey, protectReferences, type Env, type References } from './env.js';
import { routerConfigSchema, type Schema } from './schema.js';
import { headerPattern, type HeaderRule, type HeaderRules } from '../engine/headers.js';
import { DEFAULT_DOCUMENT_CACHE } from '../engine/document-cache.js';
import { DEFAULT_OPERATION_LIMITS, type OperationLimits } from '../engine/limits.js';
import type {
  ComplexityLimitFile,
  HeaderRulesFile,
  HostPort,
  KafkaProviderConfig,
  KafkaProviderFile,
  NatsAuthentication,
  NatsProviderConfig,
  NatsProviderFile,
  RouterConfig,
  RouterConfigFile,
  SecurityFile,
} from './types.js';
import { parseByteSize, parseDuration, parseHostPort, type Parsed } from './units.js';

export const DEFAULTS = {
  listenAddr: 'localhost:3002',
  graphqlPath: '/graphql',
  logLevel: 'info',
  metricsListenAddr: '0.0.0.0:8088',
  metricsPath: '/metrics',
  maxRequestBodySize: '5MB',
  /** The HTTP edge (`traffic_shaping.router`): see docs/limits-and-protection.md. */
  router: {
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
  },
} as const;

export interface ConfigIssue {
  /** Key path as written in the file, e.g. `events.providers.nats[0].url`; empty for the whole file. */
  path: string;
  message: string;
}

export class RouterConfigError extends Error {
  override name = 'RouterConfigError';
  constructor(
    readonly source: string,
    readonly issues: ConfigIssue[],
  ) {
    super(issues.map((i) => `${source}: ${i.path ? `${i.path}: ` : ''}${i.message}`).join('\n'));
  }
}

export interface ParseOptions {
  /** Variables for `${NAME}` expansion; default `process.env`. */
  env?: Env;
  /** Directory relative paths are resolved against; default the working directory. */
  baseDir?: string;
  /** Names the configuration in messages; default `router.yaml`. */
  source?: string;
}

/** Reads and resolves a `router.yaml`; relative paths in it are relative to its directory. */
export async function loadRouterConfig(
  path: string,
  options: Omit<ParseOptions, 'baseDir' | 'source'> = {},
): Promise<RouterConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new RouterConfigError(path, [{ path: '', message: `cannot read file: ${(err as Error).message}` }]);
  }
  return parseRouterConfig(text, { ...options, source: path, baseDir: dirname(resolve(path)) });
}

export function parseRouterConfig(text: string, options: ParseOptions = {}): RouterConfig {
  const source = options.source ?? 'router.yaml';
  const { text: yaml, references } = protectReferences(text);
  const doc = parseDocument(yaml, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const lines = yaml.split('\n');
    const restore = (t: string) =>
      t.replace(references.placeholder, (_m, i: string) => references.byIndex[Number(i)]!.text);
    throw new RouterConfigError(
      source,
      doc.errors.map((e) => {
        const message = restore(e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, ''));
        if (!e.linePos) return { path: '', message };
        const { line, col } = e.linePos[0];
        // Placeholders change the length of a line, so a column is only given where there are none.
        references.placeholder.lastIndex = 0;
        const exact = !references.placeholder.test(lines[line - 1] ?? '');
        return { path: '', message: `line ${line}${exact ? `, column ${col}` : ''}: ${message}` };
      }),
    );
  }
  return resolveConfig(doc.toJS() ?? {}, options, references);
}

/**
 * Validates and resolves an already parsed configuration object (the `router.yaml` shape). This is
 * `parseRouterConfig` without the YAML step, for configurations built in code.
 */
export function resolveRouterConfig(raw: unknown, options: ParseOptions = {}): RouterConfig {
  return resolveConfig(raw, options);
}

function resolveConfig(raw: unknown, options: ParseOptions, references?: References): RouterConfig {
  const source = options.source ?? 'router.yaml';
  const baseDir = resolve(options.baseDir ?? process.cwd());
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new RouterConfigError(source, [
      { path: '', message: 'expected a mapping of settings at the top level' },
    ]);

  const expansion = expandEnv(dropNulls(raw), options.env ?? process.env, references);
  if (expansion.issues.length > 0)
    throw new RouterConfigError(
      source,
      expansion.issues.map((i) => ({ path: formatPath(i.path), message: i.message })),
    );
  const data = coerceWholeReferences(expansion.value, routerConfigSchema, [], expansion.wholeValueRefs);

  if (!validate(data)) throw new RouterConfigError(source, schemaIssues(validate.errors ?? []));
  return normalize(data as unknown as RouterConfigFile, source, baseDir);
}

// ---------------------------------------------------------------------------------------------
// Schema validation

const ajv = new Ajv({ allErrors: true, verbose: true, strict: true });
const validate = ajv.compile(routerConfigSchema);

const TYPE_NAMES: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  boolean: 'a boolean (true or false)',
  integer: 'an integer',
  number: 'a number',
};

function schemaIssues(errors: ErrorObject[]): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    const at = pointerToSegments(e.instancePath);
    const parent = e.parentSchema as Schema | undefined;
    let issue: ConfigIssue;
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = (e.params as { additionalProperty: string }).additionalProperty;
        const allowed = Object.keys(parent?.properties ?? {});
        const guess = closest(key, allowed);
        issue = {
          path: formatPath([...at, key]),
          message: `unknown key${guess ? ` (did you mean "${guess}"?)` : ''}; allowed keys here: ${allowed.join(', ')}`,
        };
        break;
      }
      case 'required': {
        const key = (e.params as { missingProperty: string }).missingProperty;
        const path = formatPath([...at, key]);
        issue = { path, message: `is required${REQUIRED_HINTS[path] ?? ''}` };
        break;
      }
      case 'type': {
        const type = String((e.params as { type: string }).type);
        issue = { path: formatPath(at), message: `must be ${TYPE_NAMES[type] ?? type}` };
        break;
      }
      case 'enum':
        issue = {
          path: formatPath(at),
          message: `must be one of ${(parent?.enum ?? []).map((v) => JSON.stringify(v)).join(', ')} (got ${JSON.stringify(e.data)})`,
        };
        break;
      case 'minProperties':
      case 'maxProperties':
        issue = {
          path: formatPath(at),
          message: `must set exactly one of: ${Object.keys(parent?.properties ?? {}).join(', ')}`,
        };
        break;
      case 'minItems':
      case 'minLength':
        issue = { path: formatPath(at), message: 'must not be empty' };
        break;
      default:
        issue = { path: formatPath(at), message: e.message ?? 'is invalid' };
    }
    const key = `${issue.path}\n${issue.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      issues.push(issue);
    }
  }
  return issues;
}

const REQUIRED_HINTS: Record<string, string> = {
  execution_config:
    ' (the composed execution config to serve, e.g. execution_config: { file: { path: ./config.json } }; create one with "edfs compose")',
  'execution_config.file': ' (e.g. execution_config: { file: { path: ./config.json } })',
};

/** A value that was exactly `${NAME}` takes the type the schema wants there ("true" -> true). */
function coerceWholeReferences(
  value: unknown,
  schema: Schema | undefined,
  path: (string | number)[],
  refs: Set<string>,
): unknown {
  if (!schema) return value;
  if (typeof value === 'string' && refs.has(pathKey(path))) {
    if (schema.type === 'boolean' && /^(true|false)$/i.test(value)) return value.toLowerCase() === 'true';
    if ((schema.type === 'integer' || schema.type === 'number') && /^-?\d+(\.\d+)?$/.test(value))
      return Number(value);
    return value;
  }
  if (Array.isArray(value))
    return value.map((v, i) => coerceWholeReferences(v, schema.items, [...path, i], refs));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value))
      out[k] = coerceWholeReferences(v, schema.properties?.[k], [...path, k], refs);
    return out;
  }
  return value;
}

/** An empty YAML key (`events:`) means "not set", as it does for Cosmo. */
function dropNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropNulls);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = dropNulls(v);
    return out;
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Values, cross-field rules and defaults

function normalize(file: RouterConfigFile, source: string, baseDir: string): RouterConfig {
  const issues: ConfigIssue[] = [];
  function check<T>(path: string, parsed: Parsed<T>, fallback: T): T {
    if (parsed.ok) return parsed.value;
    issues.push({ path, message: parsed.message });
    return fallback;
  }
  const urlPath = (path: string, value: string): string => {
    if (!value.startsWith('/'))
      issues.push({ path, message: `must start with "/" (got ${JSON.stringify(value)})` });
    return value;
  };
  const filePath = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  const noAddress: HostPort = { host: '', port: 0 };

  const listenAddr = check('listen_addr', parseHostPort(file.listen_addr ?? DEFAULTS.listenAddr), noAddress);
  const prometheusFile = file.telemetry?.metrics?.prometheus ?? {};
  const prometheus = {
    enabled: prometheusFile.enabled ?? true,
    listenAddr: check(
      'telemetry.metrics.prometheus.listen_addr',
      parseHostPort(prometheusFile.listen_addr ?? DEFAULTS.metricsListenAddr),
      noAddress,
    ),
    path: urlPath('telemetry.metrics.prometheus.path', prometheusFile.path ?? DEFAULTS.metricsPath),
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
    requestTimeoutMs = check('traffic_shaping.all.request_timeout', parsed, 0);
    if (parsed.ok && parsed.value === 0)
      issues.push({ path: 'traffic_shaping.all.request_timeout', message: 'must be greater than zero' });
  }

  /** A duration in ms; `positive` refuses zero (a timeout of zero would fire at once). */
  const duration = (path: string, text: string, positive = false): number => {
    const parsed = parseDuration(text);
    const value = check(path, parsed, 0);
    if (parsed.ok && positive && value === 0) issues.push({ path, message: 'must be greater than zero' });
    return value;
  };
  const size = (path: string, text: string): number => {
    const parsed = parseByteSize(text);
    const value = check(path, parsed, 0);
    if (parsed.ok && value === 0) issues.push({ path, message: 'must be greater than zero' });
    return value;
  };
  const atLeastOne = (path: string, value: number): number => {
    if (value < 1) issues.push({ path, message: `must be at least 1 (got ${value})` });
    return value;
  };

  const edgeFile = file.traffic_shaping?.router ?? {};
  const edgeDefaults = DEFAULTS.router;
  const trafficRouter = {
    maxRequestBodySizeBytes: check(
      'traffic_shaping.router.max_request_body_size',
      parseByteSize(edgeFile.max_request_body_size ?? DEFAULTS.maxRequestBodySize),
      0,
    ),
    maxHeaderBytes: size(
      'traffic_shaping.router.max_header_bytes',
      edgeFile.max_header_bytes ?? edgeDefaults.maxHeaderBytes,
    ),
    readHeaderTimeoutMs: duration(
      'traffic_shaping.router.read_header_timeout',
      edgeFile.read_header_timeout ?? edgeDefaults.readHeaderTimeout,
      true,
    ),
    readTimeoutMs: duration(
      'traffic_shaping.router.read_timeout',
      edgeFile.read_timeout ?? edgeDefaults.readTimeout,
      true,
    ),
    keepAliveIdleTimeoutMs: duration(
      'traffic_shaping.router.keep_alive_idle_timeout',
      edgeFile.keep_alive_idle_timeout ?? edgeDefaults.keepAliveIdleTimeout,
      true,
    ),
    maxConnections: atLeastOne(
      'traffic_shaping.router.max_connections',
      edgeFile.max_connections ?? edgeDefaults.maxConnections,
    ),
    healthCheckConnections: atLeastOne(
      'traffic_shaping.router.health_check_connections',
      edgeFile.health_check_connections ?? edgeDefaults.healthCheckConnections,
    ),
  };
  if (trafficRouter.readHeaderTimeoutMs > trafficRouter.readTimeoutMs)
    issues.push({
      path: 'traffic_shaping.router.read_header_timeout',
      message: `must not be longer than traffic_shaping.router.read_timeout (${trafficRouter.readTimeoutMs} ms): the headers are part of the request`,
    });

  const subjectsFile = file.events?.subjects ?? {};
  const subjects = {
    maxLength: atLeastOne(
      'events.subjects.max_length',
      subjectsFile.max_length ?? DEFAULTS.subjects.maxLength,
    ),
    maxTokens: atLeastOne(
      'events.subjects.max_tokens',
      subjectsFile.max_tokens ?? DEFAULTS.subjects.maxTokens,
    ),
  };

  const ws = file.websocket ?? {};
  const wsDefaults = DEFAULTS.websocket;
  const websocket = {
    enabled: ws.enabled ?? true,
    connectionInitTimeoutMs: duration(
      'websocket.connection_init_timeout',
      ws.connection_init_timeout ?? wsDefaults.connectionInitTimeout,
      true,
    ),
    keepaliveIntervalMs: duration(
      'websocket.keepalive_interval',
      ws.keepalive_interval ?? wsDefaults.keepaliveInterval,
    ),
    pingIntervalMs: duration('websocket.ping_interval', ws.ping_interval ?? wsDefaults.pingInterval),
    maxConnections: atLeastOne('websocket.max_connections', ws.max_connections ?? wsDefaults.maxConnections),
    maxSubscriptionsPerConnection: atLeastOne(
      'websocket.max_subscriptions_per_connection',
      ws.max_subscriptions_per_connection ?? wsDefaults.maxSubscriptionsPerConnection,
    ),
    maxFrameSizeBytes: size('websocket.max_frame_size', ws.max_frame_size ?? wsDefaults.maxFrameSize),
    ...initialPayloadToken(ws.authentication?.from_initial_payload),
  };
  const subs = file.subscriptions ?? {};
  const subsDefaults = DEFAULTS.subscriptions;
  const subscriptions = {
    sendBufferLimitBytes: size(
      'subscriptions.send_buffer_limit',
      subs.send_buffer_limit ?? subsDefaults.sendBufferLimit,
    ),
    sseKeepaliveIntervalMs: duration(
      'subscriptions.sse_keepalive_interval',
      subs.sse_keepalive_interval ?? subsDefaults.sseKeepaliveInterval,
    ),
    multipartHeartbeatIntervalMs: duration(
      'subscriptions.multipart_heartbeat_interval',
      subs.multipart_heartbeat_interval ?? subsDefaults.multipartHeartbeatInterval,
    ),
    triggerGracePeriodMs: duration(
      'subscriptions.trigger_grace_period',
      subs.trigger_grace_period ?? subsDefaults.triggerGracePeriod,
    ),
    maxStreams: atLeastOne('subscriptions.max_streams', subs.max_streams ?? subsDefaults.maxStreams),
    sendBufferBudgetBytes: size(
      'subscriptions.send_buffer_budget',
      subs.send_buffer_budget ?? subsDefaults.sendBufferBudget,
    ),
    maxGroupBacklog: atLeastOne(
      'subscriptions.max_group_backlog',
      subs.max_group_backlog ?? subsDefaults.maxGroupBacklog,
    ),
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
    executionPlanCacheSize: atLeastOne(
      'engine.execution_plan_cache_size',
      engineFile.execution_plan_cache_size ?? DEFAULT_DOCUMENT_CACHE.entries,
    ),
    executionPlanCacheMemoryLimitBytes:
      engineFile.execution_plan_cache_memory_limit === undefined
        ? DEFAULT_DOCUMENT_CACHE.bytes
        : size('engine.execution_plan_cache_memory_limit', engineFile.execution_plan_cache_memory_limit),
  };

  const headers: HeaderRules = {
    all: headerRules(file.headers?.all, 'headers.all', issues),
    subgraphs: Object.fromEntries(
      Object.entries(file.headers?.subgraphs ?? {}).map(([name, rules]) => [
        name,
        headerRules(rules, `headers.subgraphs.${name}`, issues),
      ]),
    ),
  };

  const nats = (file.events?.providers?.nats ?? []).map((p, i) =>
    natsProvider(p, `events.providers.nats[${i}]`, filePath, issues),
  );
  // The rest of a protocol line (verb, reply subject or JetStream API prefix, sizes) needs room too.
  nats.forEach((p, i) => {
    const line = p.maxControlLine ?? DEFAULTS.natsMaxControlLine;
    if (subjects.maxLength + CONTROL_LINE_HEADROOM > line)
      issues.push({
        path:
          p.maxControlLine === undefined
            ? 'events.subjects.max_length'
            : `events.providers.nats[${i}].max_control_line`,
        message: `events.subjects.max_length (${subjects.maxLength}) leaves too little of provider "${p.id}"'s max_control_line (${line} bytes) for the rest of a NATS protocol line; keep max_length at most max_control_line - ${CONTROL_LINE_HEADROOM}`,
      });
  });
  const kafka = (file.events?.providers?.kafka ?? []).map((p, i) =>
    kafkaProvider(p, `events.providers.kafka[${i}]`, filePath, issues),
  );
  const ids = new Map<string, string>();
  for (const [kind, list] of [
    ['nats', nats],
    ['kafka', kafka],
  ] as const)
    list.forEach((p, i) => {
      const path = `events.providers.${kind}[${i}].id`;
      const first = ids.get(p.id);
      if (first)
        issues.push({
          path,
          message: `duplicate provider id ${JSON.stringify(p.id)} (already used by ${first})`,
        });
      else ids.set(p.id, path.slice(0, -'.id'.length));
    });

  const config: RouterConfig = {
    source,
    baseDir,
    listenAddr,
    graphqlPath: urlPath('graphql_path', file.graphql_path ?? DEFAULTS.graphqlPath),
    logLevel: file.log_level ?? DEFAULTS.logLevel,
    playground: { enabled: file.playground?.enabled ?? true },
    executionConfig: {
      file: {
        path: filePath(file.execution_config.file.path),
        watch: file.execution_config.file.watch ?? true,
      },
    },
    events: { providers: { nats, kafka }, subjects },
    telemetry: { metrics: { prometheus } },
    trafficShaping: {
      all: requestTimeoutMs === undefined ? {} : { requestTimeoutMs },
      router: trafficRouter,
    },
    websocket,
    subscriptions,
    headers,
    security,
    introspection: { enabled: introspectionEnabled },
    engine,
    shutdownDelayMs: duration('shutdown_delay', file.shutdown_delay ?? DEFAULTS.shutdownDelay),
  };
  if (issues.length > 0) throw new RouterConfigError(source, issues);
  return config;
}

/** Bytes of a NATS protocol line kept for everything but the subject (see events/subjects.ts). */
const CONTROL_LINE_HEADROOM = 256;

const NATS_URL = /^(?:(?:nats|tls|ws|wss):\/\/[^\s,]+|memory:\/\/[^\s,]*|[^\s,:/]+:\d+)$/;

function natsProvider(
  p: NatsProviderFile,
  at: string,
  filePath: (p: string) => string,
  issues: ConfigIssue[],
): NatsProviderConfig {
  if (!p.url.split(',').every((u) => NATS_URL.test(u.trim())))
    issues.push({
      path: `${at}.url`,
      message: `must be a NATS server URL such as "nats://localhost:4222" (or "memory://" for the in-process broker); got ${JSON.stringify(p.url)}`,
    });
  const out: NatsProviderConfig = { id: p.id, url: p.url };
  const a = p.authentication;
  let auth: NatsAuthentication | undefined;
  if (a?.token !== undefined) auth = { kind: 'token', token: a.token };
  else if (a?.user_info) auth = { kind: 'user_info', ...a.user_info };
  else if (a?.creds_file !== undefined) auth = { kind: 'creds_file', path: filePath(a.creds_file) };
  else if (a?.nkey_seed !== undefined) auth = { kind: 'nkey', seed: a.nkey_seed };
  if (auth) out.authentication = auth;
  if (p.max_control_line !== undefined) {
    if (p.max_control_line < 1)
      issues.push({
        path: `${at}.max_control_line`,
        message: `must be at least 1 (got ${p.max_control_line})`,
      });
    out.maxControlLine = p.max_control_line;
  }
  const tls = p.tls;
  if (tls && (tls.enabled ?? true)) {
    if ((tls.cert_file === undefined) !== (tls.key_file === undefined))
      issues.push({
        path: `${at}.tls`,
        message: 'cert_file and key_file go together (a client certificate needs its key)',
      });
    out.tls = {};
    if (tls.cert_file !== undefined) out.tls.certFile = filePath(tls.cert_file);
    if (tls.key_file !== undefined) out.tls.keyFile = filePath(tls.key_file);
    if (tls.ca_file !== undefined) out.tls.caFile = filePath(tls.ca_file);
  }
  return out;
}

function kafkaProvider(
  p: KafkaProviderFile,
  at: string,
  filePath: (p: string) => string,
  issues: ConfigIssue[],
): KafkaProviderConfig {
  p.brokers.forEach((b, i) => {
    const parsed = parseHostPort(b);
    if (!parsed.ok || parsed.value.port === 0)
      issues.push({
        path: `${at}.brokers[${i}]`,
        message: `must be "host:port" such as "localhost:9092" (got ${JSON.stringify(b)})`,
      });
  });
  const out: KafkaProviderConfig = {
    id: p.id,
    brokers: [...p.brokers],
    tls: { enabled: p.tls?.enabled ?? false },
  };
  if (p.tls && (p.tls.cert_file === undefined) !== (p.tls.key_file === undefined))
    issues.push({ path: `${at}.tls`, message: 'cert_file and key_file go together: set both or neither' });
  if (p.tls?.cert_file !== undefined) out.tls.certFile = filePath(p.tls.cert_file);
  if (p.tls?.key_file !== undefined) out.tls.keyFile = filePath(p.tls.key_file);
  if (p.tls?.ca_file !== undefined) out.tls.caFile = filePath(p.tls.ca_file);
  const a = p.authentication;
  if (a?.sasl_plain) out.authentication = { mechanism: 'plain', ...a.sasl_plain };
  else if (a?.sasl_scram) {
    const { mechanism = 'SCRAM-SHA-512', username, password } = a.sasl_scram;
    out.authentication = {
      mechanism: mechanism === 'SCRAM-SHA-256' ? 'scram-sha-256' : 'scram-sha-512',
      username,
      password,
    };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Paths and suggestions

function pointerToSegments(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

/** `['events', 'providers', 'nats', 0, 'url']` -> `events.providers.nats[0].url`. */
export function formatPath(segments: readonly (string | number)[]): string {
  let out = '';
  for (const s of segments) out += typeof s === 'number' ? `[${s}]` : out === '' ? s : `.${s}`;
  return out;
}

function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * One list of header rules: `propagate` takes `named` (with optional `rename`, `default`) or
 * `matching`; `set` takes `name` and `value`. A field that does not go with the `op` is an error,
 * not ignored: it would mean the rule does something else than its author thinks.
 */
function headerRules(file: HeaderRulesFile | undefined, path: string, issues: ConfigIssue[]): HeaderRule[] {
  const rules: HeaderRule[] = [];
  (file?.request ?? []).forEach((rule, i) => {
    const at = `${path}.request[${i}]`;
    const given = Object.keys(rule).filter((k) => k !== 'op');
    const refuse = (allowed: string[], hint: string) => {
      const extra = given.filter((k) => !allowed.includes(k));
      for (const key of extra)
        issues.push({ path: `${at}.${key}`, message: `does not go with op "${rule.op}" (${hint})` });
      return extra.length > 0;
    };
    if (rule.op === 'set') {
      if (refuse(['name', 'value'], 'set takes name and value')) return;
      if (rule.name === undefined || rule.value === undefined) {
        issues.push({ path: at, message: 'op "set" needs both name and value' });
        return;
      }
      rules.push({ op: 'set', name: rule.name, value: rule.value });
      return;
    }
    if (rule.named !== undefined && rule.matching !== undefined) {
      issues.push({ path: at, message: 'op "propagate" takes either named or matching, not both' });
      return;
    }
    if (rule.matching !== undefined) {
      if (refuse(['matching'], 'propagate by matching takes only the pattern')) return;
      try {
        rules.push({ op: 'propagate', matching: headerPattern(rule.matching) });
      } catch (err) {
        issues.push({
          path: `${at}.matching`,
          message: `is not a valid regular expression: ${(err as Error).message}`,
        });
      }
      return;
    }
    if (rule.named === undefined) {
      issues.push({
        path: at,
        message: 'op "propagate" needs named (a header name) or matching (a pattern)',
      });
      return;
    }
    if (refuse(['named', 'rename', 'default'], 'propagate by name takes named, rename and default')) return;
    rules.push({
      op: 'propagate',
      named: rule.named,
      ...(rule.rename !== undefined ? { rename: rule.rename } : {}),
      ...(rule.default !== undefined ? { default: rule.default } : {}),
    });
  });
  return rules;
}

/**
 * Cosmo's `security`: the operation limits, each 0 = off. A complexity limit applies when
 * `enabled` with a `limit` above 0, as in Cosmo; one of the two without the other is refused
 * here rather than silently doing nothing.
 */
function securityConfig(file: SecurityFile, issues: ConfigIssue[]): OperationLimits {
  const defaults = DEFAULT_OPERATION_LIMITS;
  const count = (path: string, value: number | undefined, fallback: number): number => {
    if (value === undefined) return fallback;
    if (value < 0) issues.push({ path, message: `must be 0 (no limit) or more (got ${value})` });
    return value;
  };
  const complexity = (key: string, limit: ComplexityLimitFile | undefined): number => {
    if (!limit) return 0;
    const path = `security.${key}`;
    const value = count(`${path}.limit`, limit.limit, 0);
    if (limit.enabled === true && value === 0)
      issues.push({ path: `${path}.limit`, message: 'is required above 0 when enabled is true' });
    if (limit.enabled === undefined && limit.limit !== undefined)
      issues.push({
        path: `${path}.enabled`,
        message:
          'must be true for the limit to apply (as in Cosmo, a limit alone is off); set enabled: true or remove the limit',
      });
    return limit.enabled === true ? value : 0;
  };
  const limits = file.complexity_limits ?? {};
  if (file.depth_limit && limits.depth)
    issues.push({
      path: 'security.depth_limit',
      message: 'is the deprecated spelling of security.complexity_limits.depth; set only one',
    });
  const parser = file.parser_limits ?? {};
  let maxDocumentSizeBytes = defaults.parserLimits.maxDocumentSizeBytes;
  if (parser.max_document_size !== undefined) {
    const parsed = parseByteSize(parser.max_document_size);
    if (parsed.ok) maxDocumentSizeBytes = parsed.value;
    else issues.push({ path: 'security.parser_limits.max_document_size', message: parsed.message });
  }
  const cost = file.cost_analysis ?? {};
  const listSize = count('security.cost_analysis.list_size', cost.list_size, defaults.costAnalysis.listSize);
  if (listSize === 0)
    issues.push({ path: 'security.cost_analysis.list_size', message: 'must be at least 1 (got 0)' });
  return {
    parserLimits: {
      maxDocumentSizeBytes,
      maxTokens: count(
        'security.parser_limits.max_tokens',
        parser.max_tokens,
        defaults.parserLimits.maxTokens,
      ),
      approximateDepthLimit: count(
        'security.parser_limits.approximate_depth_limit',
        parser.approximate_depth_limit,
        defaults.parserLimits.approximateDepthLimit,
      ),
      totalFieldsLimit: count(
        'security.parser_limits.total_fields_limit',
        parser.total_fields_limit,
        defaults.parserLimits.totalFieldsLimit,
      ),
    },
    complexityLimits: {
      depth: file.depth_limit
        ? complexity('depth_limit', file.depth_limit)
        : complexity('complexity_limits.depth', limits.depth),
      totalFields: complexity('complexity_limits.total_fields', limits.total_fields),
      rootFields: complexity('complexity_limits.root_fields', limits.root_fields),
      rootFieldAliases: complexity('complexity_limits.root_field_aliases', limits.root_field_aliases),
    },
    costAnalysis: {
      enabled: cost.enabled ?? defaults.costAnalysis.enabled,
      staticLimit: count(
        'security.cost_analysis.static_limit',
        cost.static_limit,
        defaults.costAnalysis.staticLimit,
      ),
      listSize,
    },
    operationNameLengthLimit: count(
      'security.operation_name_length_limit',
      file.operation_name_length_limit,
      defaults.operationNameLengthLimit,
    ),
    blockMutations: file.block_mutations?.enabled ?? defaults.blockMutations,
    blockSubscriptions: file.block_subscriptions?.enabled ?? defaults.blockSubscriptions,
    fieldSuggestions: file.field_suggestions?.enabled ?? defaults.fieldSuggestions,
  };
}

/** Cosmo's `websocket.authentication.from_initial_payload`; only an exported token has an effect here. */
function initialPayloadToken(
  file: NonNullable<NonNullable<RouterConfigFile['websocket']>['authentication']>['from_initial_payload'],
): { initialPayloadToken?: { key: string; header: string } } {
  if (!file?.enabled || !file.export_token?.enabled) return {};
  return {
    initialPayloadToken: {
      key: file.key ?? 'Authorization',
      header: (file.export_token.header_key ?? 'Authorization').toLowerCase(),
    },
  };
}
