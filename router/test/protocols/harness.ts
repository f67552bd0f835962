/**
 * What the protocol tests share: a router HTTP server built with `buildRouterServer` around a
 * test `OperationService`, a raw WebSocket client for frames no real client would send (either
 * subprotocol), and polling helpers. The operation service is a stand-in for the subscription
 * engine (which these tests do not exercise); the clients and the server are the real ones.
 *
 * The test service serves any document containing "subscription":
 * - `variables.topic`: results come from `publish(topic, json)`, one string for every subscriber;
 * - otherwise a ticker: `{"data":{"tick":n}}` every `intervalMs` (default 5), `count` times
 *   (default forever) then complete, or an error `fail` after the first tick.
 * A query containing "echo" is answered as the engine answers queries: one result
 * `{"data":{"echo":variables.text}}` on a later turn, then complete.
 * Anything else is refused with a validation error, as the engine refuses invalid documents.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { WebSocket } from 'ws';
import { parseRouterConfig } from '../../src/config/load.js';
import { createGateway } from '../../src/engine/gateway.js';
import type { GraphQLRequest, RequestContext } from '../../src/engine/types.js';
import { createLogger } from '../../src/observability/logger.js';
import { createRouterMetrics, type RouterMetrics } from '../../src/observability/metrics.js';
import { buildRouterServer } from '../../src/server/app.js';
import { GatewayHolder } from '../../src/server/gateway-holder.js';
import { Readiness } from '../../src/server/readiness.js';
import type { OperationService, ResultSink, Started } from '../../src/subscriptions/service.js';
import { helloExecutionConfig, startHelloSubgraph, type HelloSubgraph } from '../helpers/hello-graph.js';

export const NOT_A_SUBSCRIPTION = 'The test service serves subscriptions and echo queries only.';

export interface TestOperation {
  request: GraphQLRequest;
  context: RequestContext;
  /** The router stopped it (client complete, disconnect, close). */
  stopped: boolean;
  /** The service ended it (complete or error). */
  ended: boolean;
  /** Results the sink accepted. */
  delivered: number;
  /** The sink refused a result (the client is gone or too slow). */
  refused: boolean;
}

export class TestOperations implements OperationService {
  readonly started: TestOperation[] = [];
  private readonly topics = new Map<string, Map<TestOperation, ResultSink>>();

  start(request: GraphQLRequest, context: RequestContext, sink: ResultSink): Started {
    if (!request.query.includes('subscription') && request.query.includes('echo'))
      return this.echo(request, context, sink);
    if (!request.query.includes('subscription'))
      return { ok: false, errors: [{ message: NOT_A_SUBSCRIPTION, locations: [{ line: 1, column: 1 }] }] };
    const op: TestOperation = {
      request,
      context,
      stopped: false,
      ended: false,
      delivered: 0,
      refused: false,
    };
    this.started.push(op);
    const vars = request.variables ?? {};
    const deliver = (json: string): void => {
      if (op.stopped || op.ended || op.refused) return;
      if (sink.next(json)) op.delivered++;
      else op.refused = true;
    };

    if (typeof vars.topic === 'string') {
      const topic = vars.topic;
      let subscribers = this.topics.get(topic);
      if (!subscribers) this.topics.set(topic, (subscribers = new Map()));
      subscribers.set(op, { ...sink, next: (json) => (deliver(json), !op.refused) });
      return { ok: true, stop: () => ((op.stopped = true), subscribers.delete(op)) };
    }

    const count = typeof vars.count === 'number' ? vars.count : Infinity;
    const fail = typeof vars.fail === 'string' ? vars.fail : undefined;
    let tick = 0;
    const timer = setInterval(
      () => {
        if (op.stopped || op.ended) return clearInterval(timer);
        if (fail !== undefined && tick === 1) {
          op.ended = true;
          clearInterval(timer);
          return sink.error([{ message: fail }]);
        }
        if (tick >= count) {
          op.ended = true;
          clearInterval(timer);
          return sink.complete();
        }
        tick++;
        deliver(`{"data":{"tick":${tick}}}`);
        if (op.refused) clearInterval(timer);
      },
      typeof vars.intervalMs === 'number' ? vars.intervalMs : 5,
    );
    return {
      ok: true,
      stop: () => {
        op.stopped = true;
        clearInterval(timer);
      },
    };
  }

  private echo(request: GraphQLRequest, context: RequestContext, sink: ResultSink): Started {
    const op: TestOperation = {
      request,
      context,
      stopped: false,
      ended: false,
      delivered: 0,
      refused: false,
    };
    this.started.push(op);
    const text = request.variables?.text ?? null;
    setImmediate(() => {
      if (op.stopped) return;
      op.ended = true;
      if (sink.next(JSON.stringify({ data: { echo: text } }))) op.delivered++;
      else op.refused = true;
      sink.complete();
    });
    return { ok: true, stop: () => void (op.stopped = true) };
  }

  /** Sends one pre-serialized result to every subscriber of `topic`; returns how many took it. */
  publish(topic: string, json: string): number {
    let accepted = 0;
    for (const sink of [...(this.topics.get(topic)?.values() ?? [])]) if (sink.next(json)) accepted++;
    return accepted;
  }

  subscribers(topic: string): number {
    return this.topics.get(topic)?.size ?? 0;
  }

  /** Operations neither stopped nor ended. */
  active(): number {
    return this.started.filter((op) => !op.stopped && !op.ended).length;
  }
}

export interface TestRouter {
  app: FastifyInstance;
  /** `http://127.0.0.1:port/graphql` */
  url: string;
  /** `ws://127.0.0.1:port/graphql` */
  wsUrl: string;
  metrics: RouterMetrics;
  operations: TestOperations;
  subgraph: HelloSubgraph;
  close(): Promise<void>;
}

/** A router on a free port; `yaml` is added to a minimal router.yaml (websocket:, subscriptions: ...). */
export async function startTestRouter(yaml = ''): Promise<TestRouter> {
  const dir = await mkdtemp(join(tmpdir(), 'edfs-protocols-'));
  const config = parseRouterConfig(
    ['listen_addr: "127.0.0.1:0"', 'execution_config: { file: { path: ./config.json } }', yaml].join('\n'),
    { baseDir: dir, env: {} },
  );
  const subgraph = await startHelloSubgraph();
  const gateway = new GatewayHolder(createGateway(helloExecutionConfig(subgraph.url)));
  const metrics = createRouterMetrics({ processMetrics: false });
  const operations = new TestOperations();
  const app = await buildRouterServer({
    config,
    gateway,
    metrics,
    readiness: new Readiness(),
    logger: createLogger({ level: 'silent' }),
    operations,
  });
  // Node 20's server.close() waits for connections that never sent a request, and undici opens a
  // spare one after a fetch is aborted: the tests drop those at close (they hold no request).
  const unused = new Set<Socket>();
  app.server.on('connection', (socket: Socket) => {
    unused.add(socket);
    socket.once('close', () => unused.delete(socket));
  });
  app.server.on('request', (req: IncomingMessage) => unused.delete(req.socket));
  app.server.on('upgrade', (req: IncomingMessage) => unused.delete(req.socket));
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    app,
    url: `http://127.0.0.1:${port}/graphql`,
    wsUrl: `ws://127.0.0.1:${port}/graphql`,
    metrics,
    operations,
    subgraph,
    close() {
      closing ??= (async () => {
        const closed = app.close();
        for (const socket of unused) socket.destroy();
        await closed;
        await gateway.close();
        await subgraph.close();
        await rm(dir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}

export async function connections(metrics: RouterMetrics): Promise<number> {
  return (await metrics.engineConnections.get()).values[0]?.value ?? 0;
}

export async function messagesSent(metrics: RouterMetrics): Promise<number> {
  return (await metrics.messagesSent.get()).values[0]?.value ?? 0;
}

export async function slowConsumerDrops(metrics: RouterMetrics): Promise<number> {
  const values = (await metrics.droppedMessages.get()).values;
  return values.find((v) => v.labels.reason === 'slow_consumer')?.value ?? 0;
}

/** Polls until `condition` holds; fails after a generous timeout with `what`. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  what = 'condition',
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export interface CloseEvent {
  code: number;
  reason: string;
}

/** A graphql-transport-ws client that sends whatever it is told to, and records what it gets. */
export class RawClient {
  readonly received: Record<string, unknown>[] = [];
  readonly closed: Promise<CloseEvent>;
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) =>
      ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    ws.on('message', (data) => {
      this.received.push(JSON.parse(String(data)) as Record<string, unknown>);
      for (const wake of this.waiters.splice(0)) wake();
    });
    ws.on('error', () => {});
  }

  static async connect(url: string, protocol: string | null = 'graphql-transport-ws'): Promise<RawClient> {
    const ws = protocol === null ? new WebSocket(url) : new WebSocket(url, protocol);
    const client = new RawClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }

  /** Connects and completes `connection_init` / `connection_ack`. */
  static async acknowledged(url: string, payload?: Record<string, unknown>): Promise<RawClient> {
    const client = await RawClient.connect(url);
    client.send(payload ? { type: 'connection_init', payload } : { type: 'connection_init' });
    await client.next((m) => m.type === 'connection_ack');
    return client;
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  subscribe(id: string, query: string, variables?: Record<string, unknown>): void {
    this.send({ id, type: 'subscribe', payload: variables ? { query, variables } : { query } });
  }

  /** The first message received (from the start) that matches, waiting for it if need be. */
  async next(
    match: (message: Record<string, unknown>) => boolean,
    timeoutMs = 10_000,
  ): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received.find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no matching message; got ${JSON.stringify(this.received)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()) + 1);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): Promise<CloseEvent> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)
      this.ws.close(1000);
    return this.closed;
  }
}

/** Outcome of an upgrade that did not become a WebSocket. */
export function refusedUpgrade(url: string, protocol?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = protocol ? new WebSocket(url, protocol) : new WebSocket(url);
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body });
        req.destroy();
      });
    });
    ws.once('open', () => {
      ws.close();
      reject(new Error('the upgrade was accepted'));
    });
    ws.once('error', reject);
  });
}
