/**
 * `edfs demo`: the chat example of the EDFS introduction running in one process. The messages and
 * users subgraphs (examples/chat/subgraphs), the chat graph composed by the one composition module
 * from examples/chat/graph.yaml (routing URLs rewritten to the ports actually bound), and a router
 * with GraphiQL whose NATS provider `default` is the in-process broker `memory://demo`, or the
 * nats-server at NATS_URL.
 *
 * Invariants:
 * - The messages subgraph publishes through the router's own `default` provider, so a message
 *   sent with `sendMessage` always reaches the broker the router subscribes to, in memory or not.
 * - Whatever was started is stopped: a failed start closes what was already running, and
 *   `close()` stops the router before the subgraphs it calls (idempotent).
 * - The demo runs from a checkout of the repository: the subgraphs are the example's own files.
 *
 * Why it lives here: `edfs demo` is a command of this package's CLI and composes with this
 * package's composition module. It is not part of the operator: it starts a router, so it imports
 * the whole `@edfs/router`, and only the `demo` command loads it (a dynamic import in cli/main.ts;
 * index.ts does not export it). The controller process never loads it
 * (test/runtime-imports.test.ts).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveRouterConfig, startRouter, type LogLevel, type RunningRouter } from '@edfs/router';
import { composeSupergraph } from '../compose/compose.js';
import { loadComposeInputs } from '../compose/sources.js';

export const DEFAULT_ROUTER_PORT = 3002;
export const DEFAULT_MESSAGES_PORT = 4001;
export const DEFAULT_USERS_PORT = 4002;
export const DEFAULT_NATS_URL = 'memory://demo';
/** The provider id the example's event-driven subgraph names in `@edfs__natsSubscribe`. */
const PROVIDER_ID = 'default';

export const DEMO_SUBSCRIPTION =
  'subscription { messageAdded(roomID: "123") { id text createdAt user { name } } }';
export const DEMO_MUTATION = 'mutation { sendMessage(roomID: "123", text: "Hello", userID: "1") { id } }';

export interface DemoOptions {
  /** Router port (GraphQL, GraphiQL, WebSocket); default `PORT` or 3002. 0 picks a free port. */
  port?: number;
  /** Router host; default `HOST` or localhost. */
  host?: string;
  /**
   * Messages subgraph port; default `MESSAGES_PORT` or 4001, or a free port when 4001 is taken.
   * With `port: 0` and no subgraph ports set, the subgraphs take free ports too.
   */
  messagesPort?: number;
  /** Users subgraph port; default `USERS_PORT` or 4002 (as `messagesPort`). */
  usersPort?: number;
  /** The `default` NATS provider: default `NATS_URL` or memory://demo (the in-process broker). */
  natsUrl?: string;
  /** Router log level; default `LOG_LEVEL` or warn, so the console shows what the demo prints. */
  logLevel?: LogLevel;
  /** Where `PORT`, `NATS_URL`... are read; default `process.env`. */
  env?: NodeJS.ProcessEnv;
}

export interface RunningDemo {
  /** The GraphQL endpoint; GraphiQL in a browser. */
  url: string;
  /** The same endpoint for WebSocket subscriptions (graphql-transport-ws). */
  subscriptionsUrl: string;
  natsUrl: string;
  subgraphs: { messages: string; users: string };
  /** Prometheus metrics of the router (router_engine_subscriptions, ...), on a free port. */
  metricsUrl?: string;
  router: RunningRouter;
  close(): Promise<void>;
}

interface SubgraphServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

interface SubgraphModule {
  start(options: {
    port?: number;
    host?: string;
    publish?: (subject: string, payload: string) => unknown;
  }): Promise<SubgraphServer>;
}

const EXAMPLE_DIR = fileURLToPath(new URL('../../../examples/chat/', import.meta.url));

export async function startDemo(options: DemoOptions = {}): Promise<RunningDemo> {
  const env = options.env ?? process.env;
  const port = options.port ?? portFromEnv(env, 'PORT') ?? DEFAULT_ROUTER_PORT;
  const host = options.host ?? (env.HOST || 'localhost');
  const anyPort = port === 0 ? 0 : undefined;
  const messagesPort = options.messagesPort ?? portFromEnv(env, 'MESSAGES_PORT') ?? anyPort;
  const usersPort = options.usersPort ?? portFromEnv(env, 'USERS_PORT') ?? anyPort;
  const natsUrl = options.natsUrl ?? (env.NATS_URL || DEFAULT_NATS_URL);
  const logLevel = options.logLevel ?? ((env.LOG_LEVEL || 'warn') as LogLevel);

  const graphFile = join(EXAMPLE_DIR, 'graph.yaml');
  if (!existsSync(graphFile)) {
    throw new Error(
      `demo: ${graphFile} not found; the demo runs from a checkout of the repository (examples/chat)`,
    );
  }
  const messagesModule = (await import(join(EXAMPLE_DIR, 'subgraphs/messages/server.js'))) as SubgraphModule;
  const usersModule = (await import(join(EXAMPLE_DIR, 'subgraphs/users/server.js'))) as SubgraphModule;

  // The router, and so its provider, exists only after the subgraphs run (it needs their URLs);
  // until then nothing can reach sendMessage through the router anyway.
  let router: RunningRouter | undefined;
  const encoder = new TextEncoder();
  const publish = async (subject: string, payload: string): Promise<void> => {
    const provider = router?.providers.get(PROVIDER_ID);
    if (!provider) throw new Error(`demo: NATS provider "${PROVIDER_ID}" is not running`);
    await provider.publish(subject, encoder.encode(payload));
  };

  const started: SubgraphServer[] = [];
  const stopSubgraphs = () => Promise.allSettled(started.map((s) => s.close()));
  try {
    const messages = await listenWithFallback('messages', messagesPort, DEFAULT_MESSAGES_PORT, (p) =>
      messagesModule.start({ port: p, host: '127.0.0.1', publish }),
    );
    started.push(messages);
    const users = await listenWithFallback('users', usersPort, DEFAULT_USERS_PORT, (p) =>
      usersModule.start({ port: p, host: '127.0.0.1' }),
    );
    started.push(users);

    const urls: Record<string, string> = { messages: messages.url, users: users.url };
    const inputs = loadComposeInputs([graphFile]).map((s) =>
      s.routingUrl && urls[s.name] ? { ...s, routingUrl: urls[s.name] } : s,
    );
    const composed = composeSupergraph(inputs);
    if (!composed.ok) {
      const lines = composed.errors.map((e) => (e.subgraph ? `subgraph "${e.subgraph}": ` : '') + e.message);
      throw new Error(`demo: examples/chat does not compose:\n${lines.join('\n')}`);
    }

    const config = resolveRouterConfig(
      {
        listen_addr: `${host}:${port}`,
        graphql_path: '/graphql',
        log_level: logLevel,
        playground: { enabled: true },
        // Never read: the composed config is handed over below.
        execution_config: { file: { path: join(EXAMPLE_DIR, 'config.json'), watch: false } },
        events: { providers: { nats: [{ id: PROVIDER_ID, url: natsUrl }] } },
        telemetry: { metrics: { prometheus: { enabled: true, listen_addr: '127.0.0.1:0' } } },
      },
      { source: 'edfs demo', env: {} },
    );
    router = await startRouter(config, { executionConfig: composed.config }).catch((err: unknown) => {
      if (errorCode((err as Error).cause) !== 'EADDRINUSE') throw err;
      const message = `demo: port ${port} is already in use; set PORT to another port (PORT=0 picks a free one)`;
      throw new Error(message, { cause: err });
    });

    const url = displayUrl(router.url, host);
    const running = router;
    let closing: Promise<void> | undefined;
    return {
      url,
      subscriptionsUrl: url.replace(/^http/, 'ws'),
      natsUrl,
      subgraphs: { messages: messages.url, users: users.url },
      metricsUrl: router.metricsUrl,
      router: running,
      close() {
        closing ??= (async () => {
          const results = await Promise.allSettled([running.close()]);
          results.push(...(await stopSubgraphs()));
          const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
          if (failed) throw failed.reason;
        })();
        return closing;
      },
    };
  } catch (err) {
    await router?.close().catch(() => undefined);
    await stopSubgraphs();
    throw err;
  }
}

/** `edfs demo`: starts the demo, prints what to do with it, runs until SIGINT or SIGTERM. */
export async function runDemo(options: DemoOptions = {}): Promise<void> {
  const demo = await startDemo(options);
  process.stdout.write(banner(demo));
  await new Promise<void>((resolve, reject) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        process.stderr.write(`demo: ${signal} again, exiting without a clean shutdown\n`);
        process.exit(1);
      }
      stopping = true;
      process.stdout.write(`\n${signal}: stopping the router and the subgraphs...\n`);
      demo.close().then(
        () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          process.stdout.write('demo stopped\n');
          resolve();
        },
        (err: unknown) => reject(err instanceof Error ? err : new Error(String(err))),
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/** What a user needs to try the demo: where to go, what to subscribe to, what to send. */
export function banner(
  demo: Pick<RunningDemo, 'url' | 'subscriptionsUrl' | 'natsUrl' | 'subgraphs' | 'metricsUrl'>,
): string {
  const inMemory = demo.natsUrl.startsWith('memory://');
  const curlBody = JSON.stringify({ query: DEMO_MUTATION });
  return [
    '',
    'EDFS demo: the chat graph with event-driven subscriptions',
    '',
    `  GraphiQL      ${demo.url}   (open it in a browser)`,
    `  GraphQL       ${demo.url} (HTTP), ${demo.subscriptionsUrl} (WebSocket, SSE on the same path)`,
    `  Subgraphs     messages ${demo.subgraphs.messages}, users ${demo.subgraphs.users}`,
    ...(demo.metricsUrl ? [`  Metrics       ${demo.metricsUrl}`] : []),
    `  Events        NATS provider "${PROVIDER_ID}" on ${demo.natsUrl}${inMemory ? ' (in-process broker)' : ''}`,
    '',
    '1. Subscribe: paste this into GraphiQL and run it',
    '',
    `   ${DEMO_SUBSCRIPTION}`,
    '',
    '2. Send a message: run this in a second GraphiQL tab, or with curl',
    '',
    `   ${DEMO_MUTATION}`,
    '',
    `   curl -s ${demo.url} -H 'content-type: application/json' -d '${curlBody}'`,
    '',
    '   The messages subgraph stores it and publishes {"__typename":"Message","id":"<id>"} on the',
    '   subject room.123.messages; the router takes the event, joins text, createdAt and user { name }',
    '   from the subgraphs, and pushes the result to every subscriber of room 123.',
    ...(inMemory
      ? [
          '',
          '   With a nats-server, set NATS_URL=nats://localhost:4222 and publish from anywhere:',
          `   nats pub room.123.messages '{"__typename":"Message","id":"1"}'`,
        ]
      : [
          '',
          '   Any NATS client can publish too:',
          `   nats pub room.123.messages '{"__typename":"Message","id":"1"}'`,
        ]),
    '',
    'Press Ctrl+C to stop.',
    '',
  ].join('\n');
}

/**
 * Starts a subgraph on `port`, or else on `defaultPort`, which falls back to a free port when it
 * is taken: the subgraphs are internal to the demo. A port the user chose is not second-guessed.
 */
async function listenWithFallback(
  name: string,
  port: number | undefined,
  defaultPort: number,
  start: (port: number) => Promise<SubgraphServer>,
): Promise<SubgraphServer> {
  try {
    return await start(port ?? defaultPort);
  } catch (err) {
    if (port === undefined && errorCode(err) === 'EADDRINUSE') return start(0);
    const message = `demo: the ${name} subgraph cannot listen on port ${port ?? defaultPort}: ${(err as Error).message}`;
    throw new Error(message, { cause: err });
  }
}

function errorCode(err: unknown): string | undefined {
  return (err as { code?: string } | undefined)?.code;
}

function portFromEnv(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const value = env[name];
  if (value === undefined || value === '') return undefined;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`demo: ${name}=${JSON.stringify(value)} is not a port number (0-65535)`);
  }
  return port;
}

/** The router reports the address it bound (127.0.0.1); a user asked for `localhost`. */
function displayUrl(routerUrl: string, host: string): string {
  if (host !== 'localhost') return routerUrl;
  const url = new URL(routerUrl);
  url.hostname = 'localhost';
  return url.href;
}
