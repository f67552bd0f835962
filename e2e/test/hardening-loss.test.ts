/**
 * Loss is never silent, and queued frames cannot take the router's memory: a real nats-server,
 * the events graph's HTTP subgraphs, and the router (in this process, or as its own process where
 * its memory is measured).
 *
 * - A flood that overruns a small Group backlog (`subscriptions.max_group_backlog`): every client,
 *   on every transport, gets `EVENTS_DROPPED` errors in order at the gaps, and the events it
 *   received plus the drops it was told of are every event published.
 * - A nats-server restart (core NATS: what is published during the outage is lost): every client
 *   gets an `EVENTS_DROPPED` (reason `broker_outage`) after the reconnect, before the next event.
 * - Many clients that stopped reading, small frames and a small `send_buffer_budget`: the router's
 *   RSS stays within a bound, the largest queues are cut first, and a fast client gets everything.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import WebSocket from 'ws';
import { resolveRouterConfig, startRouter, type RunningRouter } from '@edfs/router';
import { startEventsGraph, type EventsGraph } from '../src/fixtures/events/index.js';
import { metric } from '../src/fixtures/metrics.js';
import { eventually } from '../src/fixtures/wait.js';
import { freePort, startNatsServer, type NatsServer } from '../src/infra/nats.js';

const ROUTER_BIN = fileURLToPath(new URL('../../router/bin/edfs-router.js', import.meta.url));

let nats: NatsServer;
let graph: EventsGraph;
let publisher: NatsConnection;

beforeAll(async () => {
  nats = await startNatsServer();
  graph = await startEventsGraph();
  publisher = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
}, 120_000);

afterAll(async () => {
  await publisher?.close();
  await graph?.close();
  await nats?.stop();
});

type Payload = {
  data?: { messageAdded: { id: string } };
  errors?: { message: string; extensions?: Record<string, unknown> }[];
};

/** One subscriber on one transport: the result payloads it received, in order. */
interface Subscriber {
  name: string;
  payloads: Payload[];
  close(): void;
}

const QUERY = 'subscription ($room: ID!) { messageAdded(roomID: $room) { id text } }';

async function transportWs(url: string, variables: Record<string, unknown>): Promise<Subscriber> {
  const ws = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws');
  const payloads: Payload[] = [];
  ws.on('message', (data) => {
    const message = JSON.parse(String(data)) as { type: string; payload: Payload };
    if (message.type === 'next') payloads.push(message.payload);
  });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  ws.send(JSON.stringify({ type: 'connection_init' }));
  ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: QUERY, variables } }));
  return { name: 'graphql-transport-ws', payloads, close: () => ws.terminate() };
}

async function legacyWs(url: string, variables: Record<string, unknown>): Promise<Subscriber> {
  const ws = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-ws');
  const payloads: Payload[] = [];
  ws.on('message', (data) => {
    const message = JSON.parse(String(data)) as { type: string; payload: Payload };
    if (message.type === 'data') payloads.push(message.payload);
  });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  ws.send(JSON.stringify({ type: 'connection_init' }));
  ws.send(JSON.stringify({ id: '1', type: 'start', payload: { query: QUERY, variables } }));
  return { name: 'graphql-ws', payloads, close: () => ws.terminate() };
}

/** A streamed HTTP subscription (SSE or multipart), its body split into results by `parse`. */
async function streamed(
  name: string,
  url: string,
  accept: string,
  variables: Record<string, unknown>,
  parse: (buffer: string) => { results: Payload[]; rest: string },
): Promise<Subscriber> {
  const controller = new AbortController();
  const res = await fetch(url, {
    method: 'POST',
    headers: { accept, 'content-type': 'application/json' },
    body: JSON.stringify({ query: QUERY, variables }),
    signal: controller.signal,
  });
  expect(res.status).toBe(200);
  const payloads: Payload[] = [];
  void (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        const { results, rest } = parse(buffer);
        payloads.push(...results);
        buffer = rest;
      }
    } catch {
      // aborted at the end of the test
    }
  })();
  return { name, payloads, close: () => controller.abort() };
}

const sse = (url: string, variables: Record<string, unknown>) =>
  streamed('sse', url, 'text/event-stream', variables, (buffer) => {
    const events = buffer.split('\n\n');
    const rest = events.pop()!;
    const results = events
      .filter((e) => e.startsWith('event: next\n'))
      .map((e) => JSON.parse(e.slice(e.indexOf('data: ') + 6)) as Payload);
    return { results, rest };
  });

const multipart = (url: string, variables: Record<string, unknown>) =>
  streamed('multipart', url, 'multipart/mixed;subscriptionSpec="1.0"', variables, (buffer) => {
    const parts = buffer.split('\r\n--graphql');
    const rest = parts.pop()!;
    const results = parts
      .map((p) => p.slice(p.indexOf('\r\n\r\n') + 4))
      .filter((body) => body.startsWith('{"payload"'))
      .map((body) => (JSON.parse(body) as { payload: Payload }).payload);
    return { results, rest };
  });

/** One subscriber per transport, all of one subscription (one Group). */
async function everyTransport(url: string, variables: Record<string, unknown>): Promise<Subscriber[]> {
  return Promise.all([
    transportWs(url, variables),
    legacyWs(url, variables),
    sse(url, variables),
    multipart(url, variables),
  ]);
}

const gapOf = (p: Payload) =>
  p.errors?.[0]?.extensions?.code === 'EVENTS_DROPPED' ? p.errors[0]!.extensions! : undefined;

async function startInProcessRouter(subscriptions: Record<string, unknown>): Promise<RunningRouter> {
  return startRouter(
    resolveRouterConfig({
      listen_addr: '127.0.0.1:0',
      execution_config: { file: { path: 'config.json' } },
      events: { providers: { nats: [{ id: 'default', url: nats.url }] } },
      telemetry: { metrics: { prometheus: { enabled: true, listen_addr: '127.0.0.1:0' } } },
      subscriptions,
      log_level: 'silent',
    }),
    { executionConfig: JSON.parse(graph.configJson) },
  );
}

const triggers = (router: RunningRouter, n: number) =>
  eventually(
    async () => (await metric(router.metricsUrl!, 'router_engine_triggers')) === n,
    `${n} triggers`,
    10_000,
  );

describe('a flood over a small Group backlog', () => {
  it('every client on every transport is told how many events were dropped, where: received + dropped = published', async () => {
    const router = await startInProcessRouter({ max_group_backlog: 4 });
    const clients = await everyTransport(router.url, { room: 'flood' });
    try {
      await eventually(
        async () => (await metric(router.metricsUrl!, 'router_engine_subscriptions')) === 4,
        'four subscriptions',
        10_000,
      );
      await triggers(router, 1);
      // Every event needs the messages subgraph (`text`), which answers after 20 ms.
      graph.setMessagesDelay(20);
      const published = 300;
      for (let i = 1; i <= published; i++)
        publisher.publish('room.flood.messages', JSON.stringify({ __typename: 'Message', id: `s${i}` }));
      await publisher.flush();

      const accounted = (c: Subscriber) =>
        c.payloads.reduce((n, p) => n + (p.data ? 1 : ((gapOf(p)?.dropped as number | undefined) ?? 0)), 0);
      await eventually(
        () => clients.every((c) => accounted(c) >= published),
        'every event received or accounted as dropped',
        60_000,
      );

      let droppedPerClient: number | undefined;
      for (const client of clients) {
        const received = client.payloads.filter((p) => p.data);
        const gaps = client.payloads.map(gapOf).filter((g) => g !== undefined);
        const dropped = gaps.reduce((n, g) => n + (g.dropped as number), 0);
        expect({ client: client.name, total: received.length + dropped }).toEqual({
          client: client.name,
          total: published,
        });
        expect(gaps.length).toBeGreaterThan(0);
        for (const gap of gaps)
          expect(gap).toEqual({ code: 'EVENTS_DROPPED', reason: 'backlog', dropped: expect.any(Number) });
        // Events arrive in order; a gap's count is exactly the events missing before the next one.
        let expected = 1;
        for (const p of client.payloads) {
          const gap = gapOf(p);
          if (gap) expected += gap.dropped as number;
          else expect(p.data!.messageAdded.id).toBe(`s${expected++}`);
        }
        // One Group: every client was told the same.
        droppedPerClient ??= dropped;
        expect(dropped).toBe(droppedPerClient);
      }
      expect(droppedPerClient).toBeGreaterThan(0);
      expect(await metric(router.metricsUrl!, 'router_dropped_messages_total', { reason: 'backlog' })).toBe(
        4 * droppedPerClient!,
      );
    } finally {
      graph.setMessagesDelay(0);
      for (const client of clients) client.close();
      await router.close();
    }
  }, 120_000);
});

describe('a nats-server restart (core NATS)', () => {
  it('every client gets EVENTS_DROPPED (broker_outage) after the reconnect, before the next event', async () => {
    const router = await startInProcessRouter({});
    const clients = await everyTransport(router.url, { room: 'outage' });
    const publish = async (id: string) => {
      publisher.publish('room.outage.messages', JSON.stringify({ __typename: 'Message', id }));
      await publisher.flush();
    };
    try {
      await eventually(
        async () => (await metric(router.metricsUrl!, 'router_engine_subscriptions')) === 4,
        'four subscriptions',
        10_000,
      );
      await triggers(router, 1);
      await publish('m1');
      await eventually(
        () => clients.every((c) => c.payloads.length === 1),
        'the first event everywhere',
        10_000,
      );

      await nats.restart();
      await eventually(
        async () => (await fetch(router.url.replace(/\/graphql$/, '/health/ready'))).ok,
        'the router reconnected',
        30_000,
      );
      // Until the router has subscribed again, events published now are lost too.
      let n = 0;
      await eventually(
        async () => {
          await publish(`m${2 + (n++ % 2)}`);
          return clients.every((c) => c.payloads.some((p) => p.data && p.data.messageAdded.id !== 'm1'));
        },
        'an event after the outage everywhere',
        30_000,
      );
      for (const client of clients) {
        const [first, gap, after] = client.payloads;
        expect(first!.data!.messageAdded.id).toBe('m1');
        expect({ client: client.name, gap: gapOf(gap!) }).toEqual({
          client: client.name,
          gap: { code: 'EVENTS_DROPPED', reason: 'broker_outage' },
        });
        expect(gap!.errors![0]!.message).toMatch(/lost its connection to the event broker/);
        expect(after!.data).toBeDefined();
        expect(client.payloads.filter((p) => gapOf(p))).toHaveLength(1);
      }
    } finally {
      for (const client of clients) client.close();
      await router.close();
    }
  }, 120_000);
});

describe('many clients that stopped reading, small frames, a small send buffer budget', () => {
  const BUDGET_MIB = 16;
  /** The documented bound (docs/limits-and-protection.md): RSS growth under this flood. */
  const RSS_GROWTH_BOUND_MB = 200;
  let dir: string;
  let router: ChildProcess | undefined;
  let port: number;
  let metricsPort: number;
  let stderr = '';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edfs-loss-'));
    [port, metricsPort] = [await freePort(), await freePort()];
    await writeFile(join(dir, 'config.json'), graph.configJson);
    await writeFile(
      join(dir, 'router.yaml'),
      [
        `listen_addr: 127.0.0.1:${port}`,
        'log_level: error',
        'execution_config: { file: { path: ./config.json } }',
        `events: { providers: { nats: [{ id: default, url: "${nats.url}" }] } }`,
        `telemetry: { metrics: { prometheus: { enabled: true, listen_addr: "127.0.0.1:${metricsPort}" } } }`,
        // Per client far more than the budget (only the budget cuts here); no backlog drops.
        `subscriptions: { send_buffer_limit: 256MiB, send_buffer_budget: ${BUDGET_MIB}MiB, max_group_backlog: 1000000 }`,
      ].join('\n'),
    );
    router = spawn(process.execPath, [ROUTER_BIN, '-c', join(dir, 'router.yaml')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    router.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-10_000)));
    await eventually(
      async () => (await fetch(`http://127.0.0.1:${port}/health/ready`).catch(() => undefined))?.ok === true,
      'the router process',
      30_000,
    );
  }, 60_000);

  afterAll(async () => {
    if (router && router.exitCode === null) router.kill('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The router process's memory (MB): now and its peak. */
  async function memory(): Promise<{ rss: number; peak: number }> {
    const status = await readFile(`/proc/${router!.pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)![1]);
    return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
  }

  it('RSS stays within the bound, the largest queues are cut first, and a fast client gets every event', async () => {
    const url = `ws://127.0.0.1:${port}/graphql`;
    const query = 'subscription { messageAdded(roomID: "budget") { id } }';
    const open = async (operations: number) => {
      const ws = new WebSocket(url, 'graphql-transport-ws');
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      ws.on('error', () => undefined);
      let received = 0;
      let last = '';
      ws.on('message', (data) => {
        received++;
        last = String(data).slice(0, 200);
      });
      await new Promise((resolve) => ws.once('open', resolve));
      ws.send(JSON.stringify({ type: 'connection_init' }));
      for (let i = 0; i < operations; i++)
        ws.send(JSON.stringify({ id: String(i), type: 'subscribe', payload: { query } }));
      return {
        ws,
        closed,
        received: () => received,
        last: () => last,
        code: undefined as number | undefined,
      };
    };
    // `large`: two subscriptions each, so their queues grow twice as fast as `small` ones'.
    const large = await Promise.all(Array.from({ length: 50 }, () => open(2)));
    const small = await Promise.all(Array.from({ length: 50 }, () => open(1)));
    const fast = await open(1);
    const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    try {
      await eventually(
        async () => (await metric(metricsUrl, 'router_engine_subscriptions')) === 151,
        'every subscription',
        20_000,
      );
      for (const client of [...large, ...small]) {
        client.ws.pause();
        void client.closed.then((code) => (client.code = code));
      }
      void fast.closed.then((code) => (fast.code = code));
      const before = await memory();

      // 6 s of 250-byte frames at 4,000 events/s: 3.6 M frames for clients that do not read, 6 MB
      // (12 MB for `large`) each, more than the loopback's socket buffers take.
      const pad = 'x'.repeat(170);
      const published = { n: 0 };
      const start = Date.now();
      while (Date.now() - start < 6000) {
        const due = Math.floor(((Date.now() - start) / 1000) * 4000);
        for (; published.n < due; published.n++)
          publisher.publish(
            'room.budget.messages',
            JSON.stringify({ __typename: 'Message', id: `b${published.n}-${pad}` }),
          );
        await publisher.flush();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await eventually(
        () => fast.received() - 1 >= published.n,
        'the fast client to get every event',
        30_000,
      ).catch((error: Error) => {
        throw new Error(
          `${error.message} (got ${fast.received() - 1} of ${published.n}; closed: ${fast.code}; last: ${fast.last()})`,
        );
      });
      const after = await memory();
      const cuts = await metric(metricsUrl, 'router_dropped_messages_total', {
        reason: 'send_buffer_budget',
      });
      console.log(
        `send buffer budget ${BUDGET_MIB} MiB: ${published.n} events to 100 clients that stopped reading and 1 fast one; ` +
          `RSS ${before.rss.toFixed(0)} MB before, peak ${after.peak.toFixed(0)} MB (+${(after.peak - before.rss).toFixed(0)} MB); ${cuts} clients cut`,
      );
      expect(after.peak - before.rss).toBeLessThan(RSS_GROWTH_BOUND_MB);
      // The fast client got exactly every event (and the ack), never a gap.
      expect(fast.received() - 1).toBe(published.n);
      expect(fast.code).toBeUndefined();

      // The slow clients read again: those cut see their close (4503, or 1006 when their queue was
      // dropped before they read up to it); the others are still open.
      for (const client of [...large, ...small]) client.ws.resume();
      await new Promise((resolve) => setTimeout(resolve, 3000));
      const cut = (c: { code: number | undefined }) => c.code !== undefined;
      for (const c of [...large, ...small].filter(cut)) expect([4503, 1006]).toContain(c.code);
      expect(large.filter(cut).length + small.filter(cut).length).toBe(cuts);
      expect(large.some(cut)).toBe(true);
      // Largest first: a small queue is cut only once every large one is.
      if (small.some(cut)) expect(large.every(cut)).toBe(true);
    } catch (error) {
      throw new Error(`${(error as Error).message}\nrouter stderr:\n${stderr}`, { cause: error });
    } finally {
      for (const client of [...large, ...small, fast]) client.ws.terminate();
    }
  }, 120_000);
});
