/**
 * Resumable subscriptions on a real nats-server with JetStream: two routers share one stream, a
 * client takes cursors from one and continues on the other, over graphql-ws (`extensions.cursor`)
 * and SSE (`id:` and `Last-Event-ID`), with events published during the switch. Also every way a
 * resume is refused: a cursor that is not one, one for another stream, one the stream's retention
 * has passed, one too far behind, and any cursor on core NATS, whose first result says that it is
 * at-most-once.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { Client } from 'graphql-ws';
import { record, wsClient as graphqlWsClient, type Stream } from '../src/fixtures/clients.js';
import { startEventsGraph, type EventsGraph } from '../src/fixtures/events/index.js';
import { eventually } from '../src/fixtures/wait.js';
import { startNatsServer, type NatsServer } from '../src/infra/nats.js';
import { startRouter, resolveRouterConfig, type RunningRouter } from '@edfs/router';

let nats: NatsServer;
let graph: EventsGraph;
let routers: RunningRouter[];
let publisher: NatsConnection;
let jsm: JetStreamManager;
const clients: Client[] = [];

const routerConfig = (maxReplayEvents = 10_000) =>
  resolveRouterConfig({
    listen_addr: '127.0.0.1:0',
    execution_config: { file: { path: 'config.json' } },
    events: { providers: { nats: [{ id: 'default', url: nats.url }] } },
    subscriptions: { resume: { max_replay_events: maxReplayEvents } },
    telemetry: { metrics: { prometheus: { enabled: false } } },
    log_level: 'silent',
  });

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  graph = await startEventsGraph();
  publisher = await connect({ servers: nats.url });
  jsm = await jetstreamManager(publisher);
  const executionConfig = JSON.parse(graph.configJson);
  routers = await Promise.all(
    [routerConfig(), routerConfig(), routerConfig(20)].map((config) =>
      startRouter(config, { executionConfig }),
    ),
  );
}, 120_000);

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
  await jsm.streams.delete('MESSAGES').catch(() => undefined);
});

afterAll(async () => {
  await Promise.all((routers ?? []).map((r) => r.close()));
  await publisher?.close();
  await graph?.close();
  await nats?.stop();
});

const STREAM_QUERY = 'subscription { messageStream { id } }';

function wsClient(router: RunningRouter): Client {
  return graphqlWsClient(router.url, { track: clients });
}

/** Subscribes, optionally from a cursor, and records results with their extensions. */
function subscribe(client: Client, query: string, cursor?: string): Stream {
  const stream: Stream = {
    results: [],
    extensions: [],
    errors: [],
    completed: false,
    next: async (n, timeoutMs = 20_000) => {
      await eventually(
        () => stream.results.length >= n || stream.errors.length > 0 || stream.completed,
        `${n} results (got ${stream.results.length})`,
        timeoutMs,
      );
      return stream.results.slice(0, n);
    },
    stop: () => undefined,
  };
  stream.stop = client.subscribe(
    { query, ...(cursor ? { extensions: { cursor } } : {}) },
    {
      next: (value) => record(stream, value as Record<string, unknown>),
      error: (error) => void stream.errors.push(error),
      complete: () => void (stream.completed = true),
    },
  );
  return stream;
}

const ids = (stream: Stream) =>
  stream.results.map((r) => (r.data as { messageStream: { id: string } } | null)?.messageStream.id);
const cursorAt = (stream: Stream, i: number) => stream.extensions[i]?.cursor as string;

async function publishN(from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++)
    publisher.publish('stream.messages', JSON.stringify({ __typename: 'Message', id: `e${i}` }));
  await publisher.flush();
}

async function createStream(options: { maxMsgs?: number } = {}): Promise<void> {
  await jsm.streams.add({
    name: 'MESSAGES',
    subjects: ['stream.messages'],
    ...(options.maxMsgs ? { max_msgs: options.maxMsgs } : {}),
  });
}

/** The router's durable consumer exists: events published from now on reach the subscription. */
async function consuming(count: number): Promise<void> {
  await eventually(
    async () => (await jsm.consumers.list('MESSAGES').next()).length >= count,
    `${count} durable consumers`,
    10_000,
  );
}

/** `router_subscription_resumes_total{result}` of a router. */
async function resumes(router: RunningRouter, result: string): Promise<number> {
  const metric = await router.metrics.subscriptionResumes.get();
  return metric.values.find((v) => v.labels.result === result)?.value ?? 0;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `e${from + i}`);

describe('resuming a JetStream subscription', () => {
  it('every result carries a cursor; a client continues on another router with what it missed, then live', async () => {
    await createStream();
    const first = subscribe(wsClient(routers[0]!), STREAM_QUERY);
    await consuming(1);
    await publishN(1, 5);
    await first.next(5);
    expect(ids(first)).toEqual(range(1, 5));
    expect(first.extensions.every((e) => typeof e?.cursor === 'string')).toBe(true);
    const cursor = cursorAt(first, 2); // the client has e1..e3
    first.stop();

    await publishN(6, 3); // missed while away
    const caughtUp = await resumes(routers[1]!, 'caught_up');
    const replayed = (await routers[1]!.metrics.eventsReplayed.get()).values[0]!.value;
    const resumed = subscribe(wsClient(routers[1]!), STREAM_QUERY, cursor);
    await resumed.next(5);
    expect(await resumes(routers[1]!, 'caught_up')).toBe(caughtUp + 1);
    expect((await routers[1]!.metrics.eventsReplayed.get()).values[0]!.value).toBe(replayed + 5);
    await consuming(2);
    await publishN(9, 2); // live
    await resumed.next(7);
    expect(resumed.errors).toEqual([]);
    expect(ids(resumed)).toEqual(range(4, 10));
    // Its cursors go on from there: resuming from the last one replays nothing more.
    const again = subscribe(wsClient(routers[0]!), STREAM_QUERY, cursorAt(resumed, 6));
    await publishN(11, 1);
    await again.next(1);
    expect(ids(again)).toEqual(['e11']);
  });

  it('replayed events are resolved as live ones (entity fields from the subgraph)', async () => {
    await createStream();
    const live = subscribe(wsClient(routers[0]!), 'subscription { messageStream { id text } }');
    await consuming(1);
    publisher.publish('stream.messages', JSON.stringify({ __typename: 'Message', id: 'm1' }));
    await live.next(1);
    live.stop();
    publisher.publish('stream.messages', JSON.stringify({ __typename: 'Message', id: 'm2' }));
    await publisher.flush();
    const resumed = subscribe(
      wsClient(routers[1]!),
      'subscription { messageStream { id text } }',
      cursorAt(live, 0),
    );
    expect(await resumed.next(1)).toEqual([{ data: { messageStream: { id: 'm2', text: 'Hi Alice' } } }]);
  });

  it('clients resuming at once share the resolution of each replayed event', async () => {
    await createStream();
    const query = 'subscription { messageStream { id text } }';
    const live = subscribe(wsClient(routers[0]!), query);
    await consuming(1);
    publisher.publish('stream.messages', JSON.stringify({ __typename: 'Message', id: 'm1' }));
    await live.next(1);
    live.stop();
    for (const id of ['m2', 'm3', 'm4'])
      publisher.publish('stream.messages', JSON.stringify({ __typename: 'Message', id }));
    await publisher.flush();
    graph.clearRequests();
    const client = wsClient(routers[1]!);
    const resumed = Array.from({ length: 20 }, () => subscribe(client, query, cursorAt(live, 0)));
    for (const stream of resumed) await stream.next(3);
    for (const stream of resumed)
      expect(
        stream.results.map((r) => (r.data as { messageStream: { text: string } }).messageStream.text),
      ).toEqual(['Hi Alice', 'Good to see you', 'Another room']);
    // Three events replayed to twenty clients: three entity fetches, not sixty.
    expect(graph.entityRequests('messages').length).toBeLessThanOrEqual(3);
  });

  it('no gap and no repeat at the switch while events keep coming', async () => {
    await createStream();
    const first = subscribe(wsClient(routers[0]!), STREAM_QUERY);
    await consuming(1);
    await publishN(1, 50);
    await first.next(50);
    const cursor = cursorAt(first, 49);
    first.stop();
    let next = 51;
    const producing = (async () => {
      while (next <= 1_050) {
        await publishN(next, 10);
        next += 10;
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    await publishN(0, 0);
    const resumed = subscribe(wsClient(routers[1]!), STREAM_QUERY, cursor);
    await producing;
    await resumed.next(1_000, 20_000);
    expect(resumed.errors).toEqual([]);
    expect(ids(resumed)).toEqual(range(51, 1_050));
  });

  it('SSE: the cursor is the event id, and Last-Event-ID resumes', async () => {
    await createStream();
    const url = `${routers[0]!.url}?query=${encodeURIComponent(STREAM_QUERY)}`;
    const controller = new AbortController();
    const response = await fetch(url, {
      headers: { accept: 'text/event-stream' },
      signal: controller.signal,
    });
    await consuming(1);
    await publishN(1, 2);
    const text = await readUntil(response, (t) => (t.match(/event: next/g) ?? []).length >= 2);
    controller.abort();
    const idLines = [...text.matchAll(/^id: (.+)$/gm)].map((m) => m[1]!);
    expect(idLines).toHaveLength(2);
    const data = JSON.parse(/^data: (.+)$/m.exec(text)![1]!);
    expect(data.extensions.cursor).toBe(idLines[0]);

    await publishN(3, 2);
    const resumed = new AbortController();
    const again = await fetch(`${routers[1]!.url}?query=${encodeURIComponent(STREAM_QUERY)}`, {
      headers: { accept: 'text/event-stream', 'last-event-id': idLines[1]! },
      signal: resumed.signal,
    });
    const replayed = await readUntil(again, (t) => (t.match(/event: next/g) ?? []).length >= 2);
    resumed.abort();
    expect([...replayed.matchAll(/"id":"(e\d+)"/g)].map((m) => m[1])).toEqual(['e3', 'e4']);
  });
});

describe('a resume the router cannot serve is refused with a code to act on', () => {
  const refusal = async (router: RunningRouter, query: string, cursor: string) => {
    const stream = subscribe(wsClient(router), query, cursor);
    await eventually(() => stream.errors.length > 0 || stream.completed, 'the refusal', 10_000);
    return stream.errors[0] as { message: string; extensions?: { code?: string } }[];
  };

  it('a cursor that is not one: CURSOR_INVALID', async () => {
    await createStream();
    const [error] = await refusal(routers[0]!, STREAM_QUERY, 'not a cursor!');
    expect(error!.extensions?.code).toBe('CURSOR_INVALID');
    expect(error!.message).toMatch(/not one this router sent/);
  });

  it('a cursor of another event source: CURSOR_INVALID naming both', async () => {
    await createStream();
    const other = Buffer.from(
      JSON.stringify({ v: 1, p: 'default', s: 'ORDERS', o: { 'orders.x': 3 } }),
    ).toString('base64url');
    const [error] = await refusal(routers[0]!, STREAM_QUERY, other);
    expect(error!.extensions?.code).toBe('CURSOR_INVALID');
    expect(error!.message).toMatch(/stream "ORDERS".*stream "MESSAGES"/);
  });

  it('a cursor the stream no longer holds events after: CURSOR_EXPIRED', async () => {
    await createStream({ maxMsgs: 5 });
    const first = subscribe(wsClient(routers[0]!), STREAM_QUERY);
    await consuming(1);
    await publishN(1, 2);
    await first.next(2);
    first.stop();
    await publishN(3, 10); // the stream keeps the last 5: e1..e7 are gone
    const expired = await resumes(routers[1]!, 'cursor_expired');
    const [error] = await refusal(routers[1]!, STREAM_QUERY, cursorAt(first, 1));
    expect(error!.extensions?.code).toBe('CURSOR_EXPIRED');
    expect(await resumes(routers[1]!, 'cursor_expired')).toBe(expired + 1);
    expect(error!.message).toMatch(/retention/);
  });

  it('more events behind than subscriptions.resume.max_replay_events: REPLAY_LIMIT_EXCEEDED', async () => {
    await createStream();
    const first = subscribe(wsClient(routers[0]!), STREAM_QUERY);
    await consuming(1);
    await publishN(1, 1);
    await first.next(1);
    first.stop();
    await publishN(2, 30);
    const [error] = await refusal(routers[2]!, STREAM_QUERY, cursorAt(first, 0));
    expect(error!.extensions?.code).toBe('REPLAY_LIMIT_EXCEEDED');
    expect(error!.message).toMatch(/max_replay_events/);
    // The router goes on serving: a fresh subscription there streams live events.
    const fresh = subscribe(wsClient(routers[2]!), STREAM_QUERY);
    await consuming(2);
    await publishN(40, 1);
    await fresh.next(1);
    expect(ids(fresh)).toEqual(['e40']);
  });

  it('core NATS: the first result says at-most-once, and a cursor is RESUME_UNSUPPORTED', async () => {
    const stream = subscribe(wsClient(routers[0]!), 'subscription { messageAdded(roomID: "123") { id } }');
    await eventually(
      async () => (await nats.subscriptionCount('room.123.messages')) > 0,
      'the core subscription',
      10_000,
    );
    publisher.publish('room.123.messages', JSON.stringify({ __typename: 'Message', id: 'm1' }));
    publisher.publish('room.123.messages', JSON.stringify({ __typename: 'Message', id: 'm2' }));
    await stream.next(2);
    expect(stream.extensions).toEqual([{ delivery: 'at-most-once' }, undefined]);
    const cursor = Buffer.from(JSON.stringify({ v: 1, p: 'default', o: { x: 1 } })).toString('base64url');
    const [error] = await refusal(routers[0]!, 'subscription { messageAdded(roomID: "123") { id } }', cursor);
    expect(error!.extensions?.code).toBe('RESUME_UNSUPPORTED');
    expect(error!.message).toMatch(/at-most-once/);
  });
});

async function readUntil(response: Response, done: (text: string) => boolean): Promise<string> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const deadline = Date.now() + 15_000;
  while (!done(text)) {
    if (Date.now() > deadline) throw new Error(`stream ended early or too slowly: ${text}`);
    const { value, done: ended } = await reader.read();
    if (ended) break;
    text += decoder.decode(value, { stream: true });
  }
  return text;
}
