/**
 * What the protocol tests share: a router HTTP server built with `buildRouterServer` around a
 * test `OperationService`, a raw WebSocket client for frames no real client would send (either
 * subprotocol), a recording socket for a subprotocol's state machine on its own, readers for
 * streamed HTTP bodies, the slow-consumer drill, and polling helpers. The operation service is a
 * stand-in for the subscription engine (which these tests do not exercise); the clients and the
 * server are the real ones.
 *
 * The test service serves any document containing "subscription":
 * - `variables.topic`: results come from `publish(topic, json)`, one string for every subscriber;
 * - otherwise a ticker: `{"data":{"tick":n}}` every `intervalMs` (default 5), `count` times
 *   (default forever) then complete, or an error `fail` after the first tick.
 * A query containing "echo" is answered as the engine answers queries: one result
 * `{"data":{"echo":variables.text}}` on a later turn, then complete.
 * Anything else is refused with a validation error, as the engine refuses invalid documents.
 */
import { afterAll, beforeAll } from '@jest/globals';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
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
import type {
  ProtocolConnection,
  ProtocolHooks,
  ProtocolOptions,
  ProtocolSocket,
  ResultEnvelope,
} from '../../src/protocols/connection.js';
import { buildRouterServer } from '../../src/server/app.js';
import type { Drain } from '../../src/server/drain.js';
import { GatewayHolder } from '../../src/engine/gateway-holder.js';
import { Readiness } from '../../src/server/readiness.js';
import type { OperationService, ResultSink, Started } from '../../src/subscriptions/service.js';
import { helloExecutionConfig, startHelloSubgraph, type HelloSubgraph } from '../helpers/hello-graph.js';

export const NOT_A_SUBSCRIPTION = 'The test service serves subscriptions and echo queries only.';
/** A ticker: `count`, `intervalMs` and `fail` as above. */
export const TICKS = 'subscription Ticks($count: Int, $intervalMs: Int) { tick }';
/** Results from `publish(topic, json)`. */
export const TOPIC = 'subscription News($topic: String!) { news }';

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
    const op = this.track(request, context);
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

  private track(request: GraphQLRequest, context: RequestContext): TestOperation {
    const op: TestOperation = {
      request,
      context,
      stopped: false,
      ended: false,
      delivered: 0,
      refused: false,
    };
    this.started.push(op);
    return op;
  }

  private echo(request: GraphQLRequest, context: RequestContext, sink: ResultSink): Started {
    const op = this.track(request, context);
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

/**
 * A router on a free port; `yaml` is added to a minimal router.yaml (websocket:, subscriptions:
 * ...). With `drain`, its transports register there, as the router process does for SIGTERM.
 */
export async function startTestRouter(yaml = '', options: { drain?: Drain } = {}): Promise<TestRouter> {
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
    drain: options.drain,
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

/** The router a test file shares: started before its first test, closed after its last. */
export function sharedTestRouter(): Pick<TestRouter, 'url' | 'wsUrl' | 'operations'> {
  let router: TestRouter | undefined;
  beforeAll(async () => {
    router = await startTestRouter();
  });
  afterAll(async () => {
    await router?.close();
  });
  const started = (): TestRouter => {
    if (!router) throw new Error('the shared router is started in beforeAll');
    return router;
  };
  return {
    get url() {
      return started().url;
    },
    get wsUrl() {
      return started().wsUrl;
    },
    get operations() {
      return started().operations;
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

/** A WebSocket client (graphql-transport-ws unless told) that sends whatever it is told to, and records what it gets. */
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

  /** `autoPong: false` makes a client that never answers WebSocket pings (a dead peer). */
  static async connect(
    url: string,
    protocol: string | null = 'graphql-transport-ws',
    { autoPong = true, headers }: { autoPong?: boolean; headers?: Record<string, string> } = {},
  ): Promise<RawClient> {
    const ws =
      protocol === null
        ? new WebSocket(url, { autoPong, headers })
        : new WebSocket(url, protocol, { autoPong, headers });
    const client = new RawClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }

  /** Connects and completes `connection_init` / `connection_ack` (the same in both subprotocols). */
  static async acknowledged(
    url: string,
    payload?: Record<string, unknown>,
    protocol = 'graphql-transport-ws',
    headers?: Record<string, string>,
  ): Promise<RawClient> {
    const client = await RawClient.connect(url, protocol, { headers });
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

/** A socket for a subprotocol's state machine on its own: records the frames (parsed) and the close. */
export class RecordingSocket implements ProtocolSocket {
  sent: Record<string, unknown>[] = [];
  closedWith: CloseEvent | undefined;
  /** What `bufferedAmount()` reports. */
  buffered = 0;
  send(text: string) {
    this.sent.push(JSON.parse(text) as Record<string, unknown>);
  }
  sendResult(envelope: ResultEnvelope, idJson: string, json: string) {
    this.send(envelope.open + idJson + envelope.close + json + '}');
  }
  close(code: number, reason: string) {
    this.closedWith = { code, reason };
  }
  bufferedAmount() {
    return this.buffered;
  }
}

/** Hands every sink to the test; `stops` counts stop() calls. */
export function capturingService() {
  const sinks: ResultSink[] = [];
  const state = { stops: 0 };
  const service: OperationService = {
    start(_request, _context, sink) {
      sinks.push(sink);
      return { ok: true, stop: () => void state.stops++ };
    },
  };
  return { service, sinks, state };
}

/** Opens a subprotocol on a `RecordingSocket`, with limits that stay out of the way; `counts` are the delivery hooks'. */
export function openStateMachine(
  open: (options: ProtocolOptions) => ProtocolConnection,
  service: OperationService,
  hooks: Partial<ProtocolHooks> = {},
  sendBufferLimitBytes = 1000,
) {
  const socket = new RecordingSocket();
  const counts = { sent: 0, slow: 0 };
  const connection = open({
    socket,
    operations: service,
    limits: {
      connectionInitTimeoutMs: 60_000,
      keepaliveIntervalMs: 0,
      maxSubscriptions: 10,
      sendBufferLimitBytes,
    },
    hooks: { messageSent: () => counts.sent++, slowConsumer: () => counts.slow++, ...hooks },
  });
  return { socket, connection, counts };
}

/** The first `limit` results of an iterator (all of them by default). */
export async function collect<T>(iterator: AsyncIterableIterator<T>, limit = Infinity): Promise<T[]> {
  const results: T[] = [];
  for await (const result of iterator) {
    results.push(result);
    if (results.length === limit) break;
  }
  return results;
}

/** Reads a streamed response body as it arrives, until it ends or the test aborts the request. */
export async function readBody(res: Response, onText: (text: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>)
      onText(decoder.decode(chunk, { stream: true }));
  } catch {
    // aborted by the test
  }
}

/** POSTs `body` for a streamed response the client then stops reading; `closed` is the response's close. */
export async function pausedResponse(
  url: string,
  accept: string,
  body: unknown,
): Promise<{ res: IncomingMessage; closed: Promise<unknown> }> {
  const req = httpRequest(url, { method: 'POST', headers: { accept, 'content-type': 'application/json' } });
  req.end(JSON.stringify(body));
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  const closed = new Promise((resolve) => res.once('close', resolve));
  res.on('error', () => {});
  // The slow client stops reading: the kernel buffers fill, then the router's send buffer.
  res.pause();
  return { res, closed };
}

/**
 * The slow-consumer drill: publishes 64 KiB results on `topic` until the slow subscriber's sink
 * refuses one, waiting each time for the fast client to have it (`fastReceived` counts what it
 * has). Returns how many were published.
 */
export async function publishUntilRefused(
  router: Pick<TestRouter, 'operations'>,
  topic: string,
  slow: TestOperation,
  fastReceived: () => number,
): Promise<number> {
  const payload = `{"data":{"news":"${'x'.repeat(64 * 1024)}"}}`;
  let published = 0;
  while (!slow.refused && published < 2000) {
    router.operations.publish(topic, payload);
    published++;
    await waitFor(() => fastReceived() === published, 'the fast client to receive each result');
  }
  return published;
}
