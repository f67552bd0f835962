import { describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRouterConfig, parseRouterConfig, RouterConfigError } from '../src/config/load.js';

const minimal = 'execution_config: { file: { path: ./config.json } }\n';

function parse(yaml: string, env: Record<string, string> = {}) {
  return parseRouterConfig(yaml, { env, baseDir: '/srv/router' });
}

function errorOf(yaml: string, env: Record<string, string> = {}): RouterConfigError {
  try {
    parse(yaml, env);
  } catch (err) {
    expect(err).toBeInstanceOf(RouterConfigError);
    return err as RouterConfigError;
  }
  throw new Error('expected the configuration to be refused');
}

describe('router.yaml defaults', () => {
  it('a file with only execution_config gets every default', () => {
    const config = parse(minimal);
    expect(config.listenAddr).toEqual({ host: 'localhost', port: 3002 });
    expect(config.graphqlPath).toBe('/graphql');
    expect(config.playground).toEqual({ enabled: true });
    expect(config.executionConfig.file).toEqual({ path: '/srv/router/config.json', watch: true });
    expect(config.events.providers).toEqual({ nats: [], kafka: [] });
    expect(config.telemetry.metrics.prometheus).toEqual({
      enabled: true,
      listenAddr: { host: '0.0.0.0', port: 8088 },
      path: '/metrics',
    });
    expect(config.logLevel).toBe('info');
    expect(config.trafficShaping.all.requestTimeoutMs).toBeUndefined();
    expect(config.trafficShaping.router.maxRequestBodySizeBytes).toBe(5_000_000);
  });

  it('an empty section (`events:`) counts as not set', () => {
    expect(parse(`${minimal}events:\nplayground:\n`).events.providers.nats).toEqual([]);
  });

  it('the example of the design document loads', () => {
    const config = parse(
      `listen_addr: "0.0.0.0:3002"
graphql_path: /graphql
playground: { enabled: true }
execution_config: { file: { path: ./config.json, watch: true } }
events:
  providers:
    nats:
      - id: default
        url: nats://localhost:4222
        authentication: { token: \${NATS_TOKEN} }
    kafka:
      - id: my-kafka
        brokers: ["localhost:9092"]
        authentication: { sasl_plain: { username: u, password: \${KAFKA_PASSWORD} } }
        tls: { enabled: false }
telemetry: { metrics: { prometheus: { enabled: true, listen_addr: "0.0.0.0:8088", path: /metrics } } }
`,
      { NATS_TOKEN: 's3cret', KAFKA_PASSWORD: 'pw' },
    );
    expect(config.events.providers.nats).toEqual([
      { id: 'default', url: 'nats://localhost:4222', authentication: { kind: 'token', token: 's3cret' } },
    ]);
    expect(config.events.providers.kafka).toEqual([
      {
        id: 'my-kafka',
        brokers: ['localhost:9092'],
        authentication: { mechanism: 'plain', username: 'u', password: 'pw' },
        tls: { enabled: false },
      },
    ]);
  });

  it('durations and sizes use Cosmo notation', () => {
    const config = parse(
      `${minimal}traffic_shaping: { all: { request_timeout: 1m30s }, router: { max_request_body_size: 1MiB } }\n`,
    );
    expect(config.trafficShaping.all.requestTimeoutMs).toBe(90_000);
    expect(config.trafficShaping.router.maxRequestBodySizeBytes).toBe(1024 * 1024);
    expect(
      parse(`${minimal}traffic_shaping: { all: { request_timeout: 500ms } }\n`).trafficShaping.all,
    ).toEqual({
      requestTimeoutMs: 500,
      deduplicateRequests: true,
    });
  });

  it('listen_addr accepts port 0 (a free port), ":port" and IPv6', () => {
    expect(parse(`${minimal}listen_addr: "127.0.0.1:0"\n`).listenAddr).toEqual({
      host: '127.0.0.1',
      port: 0,
    });
    expect(parse(`${minimal}listen_addr: ":4000"\n`).listenAddr).toEqual({ host: '0.0.0.0', port: 4000 });
    expect(parse(`${minimal}listen_addr: "[::1]:4000"\n`).listenAddr).toEqual({ host: '::1', port: 4000 });
  });

  it('NATS and Kafka credentials are normalized for their clients, file paths made absolute', () => {
    const config = parse(`${minimal}events:
  providers:
    nats:
      - { id: a, url: "memory://", authentication: { user_info: { username: u, password: p } } }
      - { id: b, url: "nats://n1:4222,nats://n2:4222", authentication: { creds_file: ./user.creds }, tls: { ca_file: ca.pem } }
    kafka:
      - { id: c, brokers: ["k1:9092", "k2:9092"], authentication: { sasl_scram: { username: u, password: p, mechanism: SCRAM-SHA-256 } }, tls: { enabled: true } }
`);
    const [a, b] = config.events.providers.nats;
    expect(a?.authentication).toEqual({ kind: 'user_info', username: 'u', password: 'p' });
    expect(b?.authentication).toEqual({ kind: 'creds_file', path: '/srv/router/user.creds' });
    expect(b?.tls).toEqual({ caFile: '/srv/router/ca.pem' });
    expect(config.events.providers.kafka[0]?.authentication).toEqual({
      mechanism: 'scram-sha-256',
      username: 'u',
      password: 'p',
    });
    expect(config.events.providers.kafka[0]?.tls).toEqual({ enabled: true });
  });
});

describe('router.yaml: websocket and subscriptions', () => {
  it('defaults: WebSocket on, 10s to initialise, no protocol keep-alives, 30s ping frames, 1MiB frames and send buffers, 5s multipart heartbeats', () => {
    const config = parse(minimal);
    expect(config.websocket).toEqual({
      enabled: true,
      connectionInitTimeoutMs: 10_000,
      keepaliveIntervalMs: 0,
      pingIntervalMs: 30_000,
      maxConnections: 10_000,
      maxSubscriptionsPerConnection: 100,
      maxFrameSizeBytes: 1024 * 1024,
    });
    expect(config.subscriptions).toEqual({
      sendBufferLimitBytes: 1024 * 1024,
      sseKeepaliveIntervalMs: 12_000,
      multipartHeartbeatIntervalMs: 5000,
      triggerGracePeriodMs: 0,
      maxStreams: 10_000,
      sendBufferBudgetBytes: 256 * 1024 * 1024,
      maxGroupBacklog: 1024,
      resume: { maxReplayEvents: 10_000, maxReplayBytes: 16 * 1024 * 1024 },
    });
  });

  it('durations, sizes and counts resolve to milliseconds, bytes and numbers', () => {
    const config = parse(
      `${minimal}websocket: { enabled: false, connection_init_timeout: 3s, keepalive_interval: 15s, ping_interval: 45s, max_connections: 50000, max_subscriptions_per_connection: 20, max_frame_size: 64KiB }
subscriptions: { send_buffer_limit: 4MB, sse_keepalive_interval: 0s, multipart_heartbeat_interval: 2500ms, trigger_grace_period: 1m, max_streams: 50, send_buffer_budget: 64MiB, max_group_backlog: 16, resume: { max_replay_events: 500, max_replay_bytes: 1MiB } }
`,
    );
    expect(config.websocket).toEqual({
      enabled: false,
      connectionInitTimeoutMs: 3000,
      keepaliveIntervalMs: 15_000,
      pingIntervalMs: 45_000,
      maxConnections: 50_000,
      maxSubscriptionsPerConnection: 20,
      maxFrameSizeBytes: 65_536,
    });
    expect(config.subscriptions).toEqual({
      sendBufferLimitBytes: 4_000_000,
      sseKeepaliveIntervalMs: 0,
      multipartHeartbeatIntervalMs: 2500,
      triggerGracePeriodMs: 60_000,
      maxStreams: 50,
      sendBufferBudgetBytes: 64 * 1024 * 1024,
      maxGroupBacklog: 16,
      resume: { maxReplayEvents: 500, maxReplayBytes: 1024 * 1024 },
    });
  });

  it('a count given as an environment variable is a number', () => {
    expect(
      parse(`${minimal}websocket: { max_connections: \${MAX_CONNS} }\n`, { MAX_CONNS: '250' }).websocket
        .maxConnections,
    ).toBe(250);
  });

  it('a bad value in each key is named with what was expected', () => {
    const message = (yaml: string) => errorOf(`${minimal}${yaml}\n`).message;
    expect(message('websocket: { enabled: "yes" }')).toBe(
      'router.yaml: websocket.enabled: must be a boolean (true or false)',
    );
    expect(message('websocket: { connection_init_timeout: 10 }')).toBe(
      'router.yaml: websocket.connection_init_timeout: must be a string',
    );
    expect(message('websocket: { connection_init_timeout: soon }')).toBe(
      'router.yaml: websocket.connection_init_timeout: must be a duration such as "500ms", "10s" or "1m30s" (got "soon")',
    );
    expect(message('websocket: { connection_init_timeout: 0s }')).toBe(
      'router.yaml: websocket.connection_init_timeout: must be greater than zero',
    );
    expect(message('websocket: { keepalive_interval: -5s }')).toBe(
      'router.yaml: websocket.keepalive_interval: must be a duration such as "500ms", "10s" or "1m30s" (got "-5s")',
    );
    expect(message('websocket: { max_connections: 0 }')).toBe(
      'router.yaml: websocket.max_connections: must be at least 1 (got 0)',
    );
    expect(message('websocket: { max_connections: 1.5 }')).toBe(
      'router.yaml: websocket.max_connections: must be an integer',
    );
    expect(message('websocket: { max_subscriptions_per_connection: "many" }')).toBe(
      'router.yaml: websocket.max_subscriptions_per_connection: must be an integer',
    );
    expect(message('websocket: { max_subscriptions_per_connection: -1 }')).toBe(
      'router.yaml: websocket.max_subscriptions_per_connection: must be at least 1 (got -1)',
    );
    expect(message('websocket: { max_frame_size: 1 megabyte }')).toBe(
      'router.yaml: websocket.max_frame_size: must be a size such as "5MB" or "512KiB" (got "1 megabyte")',
    );
    expect(message('websocket: { max_frame_size: 0B }')).toBe(
      'router.yaml: websocket.max_frame_size: must be greater than zero',
    );
    expect(message('websocket: { max_conections: 5 }')).toMatch(
      /^router\.yaml: websocket\.max_conections: unknown key \(did you mean "max_connections"\?\)/,
    );
    expect(message('subscriptions: { send_buffer_limit: lots }')).toBe(
      'router.yaml: subscriptions.send_buffer_limit: must be a size such as "5MB" or "512KiB" (got "lots")',
    );
    expect(message('subscriptions: { send_buffer_limit: 0 }')).toBe(
      'router.yaml: subscriptions.send_buffer_limit: must be a string',
    );
    expect(message('subscriptions: { send_buffer_budget: 0B }')).toBe(
      'router.yaml: subscriptions.send_buffer_budget: must be greater than zero',
    );
    expect(message('subscriptions: { max_group_backlog: 0 }')).toBe(
      'router.yaml: subscriptions.max_group_backlog: must be at least 1 (got 0)',
    );
    expect(message('subscriptions: { max_group_backlog: 2.5 }')).toBe(
      'router.yaml: subscriptions.max_group_backlog: must be an integer',
    );
    expect(message('subscriptions: { sse_keepalive_interval: 12 }')).toBe(
      'router.yaml: subscriptions.sse_keepalive_interval: must be a string',
    );
    expect(message('subscriptions: { sse_keepalive_interval: 12 sec }')).toBe(
      'router.yaml: subscriptions.sse_keepalive_interval: must be a duration such as "500ms", "10s" or "1m30s" (got "12 sec")',
    );
    expect(message('subscriptions: { multipart_heartbeat_interval: 5 }')).toBe(
      'router.yaml: subscriptions.multipart_heartbeat_interval: must be a string',
    );
    expect(message('subscriptions: { multipart_heartbeat_interval: 5 seconds }')).toBe(
      'router.yaml: subscriptions.multipart_heartbeat_interval: must be a duration such as "500ms", "10s" or "1m30s" (got "5 seconds")',
    );
    expect(message('subscriptions: { multipart_heartbeat_interval: -1s }')).toBe(
      'router.yaml: subscriptions.multipart_heartbeat_interval: must be a duration such as "500ms", "10s" or "1m30s" (got "-1s")',
    );
    expect(message('subscriptions: { multipart_hearbeat_interval: 5s }')).toMatch(
      /^router\.yaml: subscriptions\.multipart_hearbeat_interval: unknown key \(did you mean "multipart_heartbeat_interval"\?\)/,
    );
    expect(message('websocket: { keepalive_interval: often }')).toBe(
      'router.yaml: websocket.keepalive_interval: must be a duration such as "500ms", "10s" or "1m30s" (got "often")',
    );
    expect(message('subscriptions: { trigger_grace_period: later }')).toBe(
      'router.yaml: subscriptions.trigger_grace_period: must be a duration such as "500ms", "10s" or "1m30s" (got "later")',
    );
    expect(
      message(
        'events: { providers: { kafka: [{ id: k, brokers: ["localhost:9092"], tls: { cert_file: c.pem } }] } }',
      ),
    ).toBe(
      'router.yaml: events.providers.kafka[0].tls: cert_file and key_file go together: set both or neither',
    );
    expect(message('shutdown_delay: soon')).toBe(
      'router.yaml: shutdown_delay: must be a duration such as "500ms", "10s" or "1m30s" (got "soon")',
    );
  });
});

describe('router.yaml environment expansion', () => {
  it('expands ${NAME} anywhere in a value and ${NAME:-default} when unset', () => {
    const config = parse(
      `${minimal}listen_addr: "\${HOST:-127.0.0.1}:\${PORT}"
events: { providers: { nats: [ { id: n, url: "nats://\${NATS_HOST}:4222", authentication: { token: "\${NATS_TOKEN}" } } ] } }
`,
      { PORT: '4000', NATS_HOST: 'broker', NATS_TOKEN: 'a#b: c' },
    );
    expect(config.listenAddr).toEqual({ host: '127.0.0.1', port: 4000 });
    expect(config.events.providers.nats[0]).toMatchObject({
      url: 'nats://broker:4222',
      // a secret with YAML syntax in it stays one value
      authentication: { kind: 'token', token: 'a#b: c' },
    });
  });

  it('a value that is exactly one variable takes the type the key needs', () => {
    const config = parse(`${minimal}playground: { enabled: \${PLAYGROUND} }\n`, { PLAYGROUND: 'false' });
    expect(config.playground.enabled).toBe(false);
  });

  it('$${ writes a literal ${', () => {
    const config = parse(
      `${minimal}events: { providers: { nats: [ { id: n, url: "memory://", authentication: { token: "$\${X}" } } ] } }\n`,
    );
    expect(config.events.providers.nats[0]?.authentication).toEqual({ kind: 'token', token: '${X}' });
  });

  it('an unset variable is an error naming the variable and the key', () => {
    const err = errorOf(`${minimal}events:
  providers:
    nats:
      - id: default
        url: nats://localhost:4222
        authentication: { token: \${NATS_TOKEN} }
`);
    expect(err.message).toBe(
      'router.yaml: events.providers.nats[0].authentication.token: environment variable NATS_TOKEN is not set (set it, or write ${NATS_TOKEN:-default} for a fallback)',
    );
  });
});

describe('router.yaml errors name the key to fix', () => {
  it('an unknown top-level key is named, with the allowed keys and a suggestion', () => {
    const err = errorOf(`${minimal}listen_adr: ":3002"\n`);
    expect(err.issues).toHaveLength(1);
    expect(err.message).toContain('router.yaml: listen_adr: unknown key (did you mean "listen_addr"?)');
    expect(err.message).toContain(
      'allowed keys here: version, listen_addr, graphql_path, log_level, playground, shutdown_delay, execution_config, events, telemetry, traffic_shaping, websocket, security, introspection, introspection_enabled, engine, headers, authentication, authorization, subscriptions',
    );
  });

  it('an unknown nested key is named by its full path', () => {
    const err = errorOf(
      `${minimal}events: { providers: { nats: [ { id: a, url: "nats://x:4222", uri: "nats://y:4222" } ] } }\n`,
    );
    expect(err.message).toBe(
      'router.yaml: events.providers.nats[0].uri: unknown key (did you mean "url"?); allowed keys here: id, url, authentication, tls, max_control_line',
    );
  });

  it('a value of the wrong type is named with the type it must have', () => {
    const err = errorOf(`${minimal}events: { providers: { nats: [ { id: a, url: 5 } ] } }\n`);
    expect(err.message).toBe('router.yaml: events.providers.nats[0].url: must be a string');
    expect(errorOf(`${minimal}playground: { enabled: "yes" }\n`).message).toBe(
      'router.yaml: playground.enabled: must be a boolean (true or false)',
    );
    expect(errorOf(`${minimal}events: { providers: { kafka: { id: k } } }\n`).message).toBe(
      'router.yaml: events.providers.kafka: must be a list',
    );
  });

  it('a missing execution_config says what to put there', () => {
    const err = errorOf('listen_addr: ":3002"\n');
    expect(err.message).toMatch(
      /^router\.yaml: execution_config: is required \(the composed execution config to serve/,
    );
    expect(errorOf('').message).toMatch(/execution_config: is required/);
    expect(errorOf('execution_config: { file: {} }\n').message).toBe(
      'router.yaml: execution_config.file.path: is required',
    );
  });

  it('duplicate provider ids are refused, across NATS and Kafka too', () => {
    const err = errorOf(`${minimal}events:
  providers:
    nats:
      - { id: main, url: "nats://a:4222" }
      - { id: main, url: "nats://b:4222" }
    kafka:
      - { id: main, brokers: ["k:9092"] }
`);
    expect(err.issues).toEqual([
      {
        path: 'events.providers.nats[1].id',
        message: 'duplicate provider id "main" (already used by events.providers.nats[0])',
      },
      {
        path: 'events.providers.kafka[0].id',
        message: 'duplicate provider id "main" (already used by events.providers.nats[0])',
      },
    ]);
  });

  it('bad values are named with what was expected', () => {
    expect(errorOf(`${minimal}listen_addr: localhost\n`).message).toBe(
      'router.yaml: listen_addr: must be "host:port" such as "0.0.0.0:3002", ":3002" or "[::1]:3002" (got "localhost")',
    );
    expect(errorOf(`${minimal}traffic_shaping: { all: { request_timeout: 10 seconds } }\n`).message).toBe(
      'router.yaml: traffic_shaping.all.request_timeout: must be a duration such as "500ms", "10s" or "1m30s" (got "10 seconds")',
    );
    expect(errorOf(`${minimal}graphql_path: graphql\n`).message).toBe(
      'router.yaml: graphql_path: must start with "/" (got "graphql")',
    );
    expect(errorOf(`${minimal}log_level: verbose\n`).message).toBe(
      'router.yaml: log_level: must be one of "trace", "debug", "info", "warn", "error", "fatal", "silent" (got "verbose")',
    );
    expect(
      errorOf(`${minimal}events: { providers: { nats: [ { id: a, url: "http://x" } ] } }\n`).message,
    ).toMatch(/^router\.yaml: events\.providers\.nats\[0\]\.url: must be a NATS server URL/);
    expect(errorOf(`${minimal}events: { providers: { kafka: [ { id: k, brokers: [] } ] } }\n`).message).toBe(
      'router.yaml: events.providers.kafka[0].brokers: must not be empty',
    );
  });

  it('two authentication methods at once are refused', () => {
    const err = errorOf(
      `${minimal}events: { providers: { nats: [ { id: a, url: "nats://x:4222", authentication: { token: t, creds_file: c } } ] } }\n`,
    );
    expect(err.message).toBe(
      'router.yaml: events.providers.nats[0].authentication: must set exactly one of: token, user_info, creds_file, nkey_seed',
    );
  });

  it('metrics cannot share the router port', () => {
    expect(errorOf(`${minimal}listen_addr: ":8088"\n`).message).toBe(
      'router.yaml: telemetry.metrics.prometheus.listen_addr: port 8088 is already used by listen_addr; metrics need their own port',
    );
  });

  it('every problem is reported at once, one line each', () => {
    const err = errorOf(`${minimal}graphql_path: 5\nplayground: { enable: true }\n`);
    expect(err.message.split('\n')).toEqual([
      'router.yaml: graphql_path: must be a string',
      'router.yaml: playground.enable: unknown key (did you mean "enabled"?); allowed keys here: enabled',
    ]);
  });

  it('a YAML syntax error names the line', () => {
    const err = errorOf('execution_config: { file: { path: ./config.json }\nlisten_addr: [\n');
    expect(err.message).toMatch(/^router\.yaml: line \d+, column \d+: /);
    expect(errorOf(`${minimal}${minimal}`).message).toMatch(/Map keys must be unique/);
  });
});

describe('loading router.yaml from a file', () => {
  it('resolves execution_config.file.path against the directory of router.yaml', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edfs-config-'));
    try {
      await mkdir(join(dir, 'conf'));
      await writeFile(
        join(dir, 'conf', 'router.yaml'),
        'execution_config: { file: { path: ../graphs/config.json } }\n',
      );
      await writeFile(
        join(dir, 'conf', 'abs.yaml'),
        'execution_config: { file: { path: /etc/edfs/config.json } }\n',
      );
      const config = await loadRouterConfig(join(dir, 'conf', 'router.yaml'));
      expect(config.executionConfig.file.path).toBe(join(dir, 'graphs', 'config.json'));
      expect(config.baseDir).toBe(join(dir, 'conf'));
      expect((await loadRouterConfig(join(dir, 'conf', 'abs.yaml'))).executionConfig.file.path).toBe(
        '/etc/edfs/config.json',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('errors name the file as given', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edfs-config-'));
    try {
      const file = join(dir, 'router.yaml');
      await writeFile(file, 'execution_config: { file: { path: ./c.json } }\nplaygrund: {}\n');
      await expect(loadRouterConfig(file)).rejects.toThrow(`${file}: playgrund: unknown key`);
      await expect(loadRouterConfig(join(dir, 'missing.yaml'))).rejects.toThrow(
        `${join(dir, 'missing.yaml')}: cannot read file: ENOENT`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
