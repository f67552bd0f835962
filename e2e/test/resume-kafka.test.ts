/**
 * Resumable subscriptions on a real Apache Kafka broker: two routers read the same topics, a
 * client takes cursors from one and continues on the other with exactly the events it missed
 * (per partition in order, each once), then live; also while a producer keeps writing, and for 50
 * clients resuming at once. Every way a resume is refused: a cursor of another topic or of a
 * partition the topic lacks (CURSOR_INVALID), one past the topic's retention (CURSOR_EXPIRED, the
 * low watermark moved by deleting records), one too far behind (REPLAY_LIMIT_EXCEEDED).
 *
 * Events are produced to explicit partitions by a plain kafkajs producer, with ids `p<partition>-<seq>`,
 * so each partition's sequence can be checked on its own.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { Client } from 'graphql-ws';
import type { Admin, Producer } from 'kafkajs';
import { resolveRouterConfig, startRouter, type RunningRouter } from '@edfs/router';
import type { KafkaProvider } from '../../router/src/events/kafka/index.js';
import type { BrokerMessage } from '../../router/src/events/provider.js';
import {
  subscribe as subscribeWs,
  wsClient as graphqlWsClient,
  type Stream,
} from '../src/fixtures/clients.js';
import { kafkaPeer, startKafkaGraph, type KafkaGraph, type KafkaPeer } from '../src/fixtures/kafka/index.js';
import { eventually } from '../src/fixtures/wait.js';
import { startKafka, type KafkaBroker } from '../src/infra/kafka.js';

let kafka: KafkaBroker;
let peer: KafkaPeer;
let producer: Producer;
let admin: Admin;
let graph: KafkaGraph;
/** Two routers with the default limits, and one that replays at most 20 events. */
let routers: RunningRouter[] = [];
const clients: Client[] = [];

const routerConfig = (maxReplayEvents = 10_000) =>
  resolveRouterConfig({
    listen_addr: '127.0.0.1:0',
    execution_config: { file: { path: 'config.json' } },
    events: { providers: { kafka: [{ id: 'my-kafka', brokers: kafka.brokers }] } },
    subscriptions: { resume: { max_replay_events: maxReplayEvents } },
    telemetry: { metrics: { prometheus: { enabled: false } } },
    log_level: 'silent',
  });

beforeAll(async () => {
  [kafka, graph] = await Promise.all([startKafka(), startKafkaGraph()]);
  peer = await kafkaPeer(kafka.brokers);
  producer = peer.kafka.producer();
  admin = peer.kafka.admin();
  await Promise.all([producer.connect(), admin.connect()]);
  routers = await Promise.all(
    [routerConfig(), routerConfig(), routerConfig(20)].map((config) =>
      startRouter(config, { executionConfig: graph.config }),
    ),
  );
}, 300_000); // a first run resolves the broker from Maven Central

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
});

afterAll(async () => {
  await Promise.all(routers.map((r) => r.close()));
  await producer?.disconnect();
  await admin?.disconnect();
  await peer?.close();
  await graph?.close();
  await kafka?.stop();
});

const QUERY = 'subscription ($room: ID!) { messageAdded(roomID: $room) { id } }';
const topicOf = (room: string) => `room.${room}.messages`;
let rooms = 0;

/** A new room whose topic has `partitions` partitions. */
async function newRoom(partitions = 3): Promise<string> {
  const room = `r${++rooms}`;
  await peer.createTopics([topicOf(room)], partitions);
  return room;
}

const provider = (r: RunningRouter) => r.providers.get('my-kafka') as KafkaProvider;

/** The router's start position on the room's topic is fixed: what is produced now is delivered. */
const positioned = (r: RunningRouter, room: string) =>
  eventually(
    () => !['positioning', 'idle', undefined].includes(provider(r).topics()[topicOf(room)]),
    `the position on ${topicOf(room)}`,
  );

function subscribe(r: RunningRouter, room: string, cursor?: string): Stream {
  return subscribeWs(
    graphqlWsClient(r.url, { track: clients }),
    QUERY,
    { room },
    cursor ? { cursor } : undefined,
  );
}

/** Produces events `p<partition>-<seq>` for seq in [from, to], partition by partition in turn. */
async function produce(room: string, from: number, to: number, partitions = [0, 1, 2]): Promise<void> {
  const messages = [];
  for (let seq = from; seq <= to; seq++)
    for (const partition of partitions)
      messages.push({
        partition,
        value: JSON.stringify({ __typename: 'Message', id: `p${partition}-${seq}` }),
      });
  if (messages.length > 0) await producer.send({ topic: topicOf(room), acks: -1, messages });
}

const ids = (stream: Stream) =>
  stream.results.map((r) => (r.data as { messageAdded: { id: string } } | null)?.messageAdded.id ?? 'error');
const cursorAt = (stream: Stream, i: number) => stream.extensions[i]?.cursor as string;
const lanesOf = (cursor: string) =>
  (JSON.parse(Buffer.from(cursor, 'base64url').toString()) as { o: Record<string, number> }).o;

/** Per partition, the sequence numbers received, in the order received. */
function perPartition(list: string[]): Record<number, number[]> {
  const out: Record<number, number[]> = {};
  for (const id of list) {
    const [, p, seq] = /^p(\d+)-(\d+)$/.exec(id) ?? [];
    (out[Number(p)] ??= []).push(Number(seq));
  }
  return out;
}
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('resuming a Kafka subscription', () => {
  it('every result carries a cursor; a client continues on another router with exactly what it missed, then live', async () => {
    const [a, b] = routers as [RunningRouter, RunningRouter];
    const room = await newRoom();
    await produce(room, 0, 0); // before the subscription: never delivered, nor replayed
    const first = subscribe(a, room);
    await positioned(a, room);
    await produce(room, 1, 3);
    await first.next(9);
    expect(first.extensions.every((e) => typeof e?.cursor === 'string')).toBe(true);
    // The cursor names every partition of the topic (each holds an event), from the first result on.
    expect(Object.keys(lanesOf(cursorAt(first, 0))).sort()).toEqual(
      [0, 1, 2].map((p) => `${topicOf(room)}:${p}`),
    );
    const had = ids(first).slice(0, 5);
    const missed = ids(first).slice(5);
    const cursor = cursorAt(first, 4);
    first.stop();

    await produce(room, 4, 5); // written while the client is away
    // A tombstone (null value) is no event, replayed or live.
    await producer.send({ topic: topicOf(room), acks: -1, messages: [{ partition: 1, value: null }] });
    await produce(room, 6, 6, [1]);
    const resumed = subscribe(b, room, cursor);
    await resumed.next(missed.length + 7);
    await produce(room, 7, 7); // live
    await producer.send({ topic: topicOf(room), acks: -1, messages: [{ partition: 2, value: null }] });
    await resumed.next(missed.length + 10);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(resumed.errors).toEqual([]);

    const got = ids(resumed);
    expect(got).toHaveLength(missed.length + 10);
    expect(new Set(got).size).toBe(got.length);
    const expected = [...missed, ...[0, 1, 2].flatMap((p) => [4, 5].map((s) => `p${p}-${s}`)), 'p1-6'];
    expected.push(...[0, 1, 2].map((p) => `p${p}-7`));
    expect([...got].sort()).toEqual([...expected].sort());
    const last = perPartition(had);
    for (const [p, seqs] of Object.entries(perPartition(got))) {
      const from = Math.max(0, ...(last[Number(p)] ?? [])) + 1;
      expect(seqs).toEqual(range(from, 7).filter((s) => p === '1' || s !== 6));
    }
    expect(resumed.extensions.every((e) => typeof e?.cursor === 'string')).toBe(true);

    // Its cursors go on from there: resuming from the last one on the first router replays nothing.
    const again = subscribe(a, room, cursorAt(resumed, got.length - 1));
    await positioned(a, room);
    await produce(room, 8, 8, [0]);
    await again.next(1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(ids(again)).toEqual(['p0-8']);
  });

  it('a partition nothing was written to when the cursor was made is replayed from its start', async () => {
    const [a, b] = routers as [RunningRouter, RunningRouter];
    const room = await newRoom();
    const first = subscribe(a, room);
    await positioned(a, room);
    await produce(room, 1, 1, [0]);
    await first.next(1);
    expect(lanesOf(cursorAt(first, 0))).toEqual({ [`${topicOf(room)}:0`]: 0 });
    first.stop();
    await produce(room, 1, 2, [1, 2]);
    const resumed = subscribe(b, room, cursorAt(first, 0));
    await resumed.next(4);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(resumed.errors).toEqual([]);
    expect(perPartition(ids(resumed))).toEqual({ 1: [1, 2], 2: [1, 2] });
  });

  it('no gap and no repeat at the switch while a producer keeps writing', async () => {
    const [a, b] = routers as [RunningRouter, RunningRouter];
    const room = await newRoom();
    const first = subscribe(a, room);
    await positioned(a, room);
    await produce(room, 1, 10);
    await first.next(30);
    const cursor = cursorAt(first, 29);
    first.stop();

    const LAST = 310;
    let resumed: Stream | undefined;
    for (let seq = 11; seq <= LAST; seq += 5) {
      await produce(room, seq, seq + 4);
      if (seq === 31) resumed = subscribe(b, room, cursor); // while the producer goes on
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await resumed!.next(3 * (LAST - 10), 60_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(resumed!.errors).toEqual([]);
    expect(perPartition(ids(resumed!))).toEqual({
      0: range(11, LAST),
      1: range(11, LAST),
      2: range(11, LAST),
    });
  });

  it('50 clients resuming at once on a router that was not reading the topic all catch up', async () => {
    const [a, b] = routers as [RunningRouter, RunningRouter];
    const room = await newRoom();
    const first = subscribe(a, room);
    await positioned(a, room);
    await produce(room, 1, 10);
    await first.next(30);
    const cursor = cursorAt(first, 9);
    const missed = ids(first).slice(10);
    first.stop();

    const started = performance.now();
    const streams = Array.from({ length: 50 }, () => subscribe(b, room, cursor));
    await Promise.all(streams.map((s) => s.next(missed.length, 60_000)));
    const elapsed = performance.now() - started;
    console.log(`50 clients resumed ${missed.length} events each in ${elapsed.toFixed(0)} ms`);
    await produce(room, 11, 11);
    await Promise.all(streams.map((s) => s.next(missed.length + 3)));
    for (const s of streams) {
      expect(s.errors).toEqual([]);
      expect(ids(s).slice(0, missed.length).sort()).toEqual([...missed].sort());
      expect(ids(s).slice(missed.length).sort()).toEqual(['p0-11', 'p1-11', 'p2-11']);
    }
    expect(elapsed).toBeLessThan(15_000);
  });

  it('a replay stops at once when its signal aborts', async () => {
    const room = await newRoom(1);
    for (let seq = 1; seq <= 2_000; seq += 500) await produce(room, seq, seq + 499, [0]);
    const controller = new AbortController();
    const received: BrokerMessage[] = [];
    await provider(routers[1]!).replay({
      spec: { subjects: [topicOf(room)] },
      after: new Map(),
      maxMessages: 10_000,
      signal: controller.signal,
      onMessage: (message) => {
        received.push(message);
        if (received.length === 10) controller.abort();
      },
    });
    expect(received).toHaveLength(10);
    expect(received.map((m) => m.position)).toEqual(
      range(0, 9).map((offset) => ({ lane: `${topicOf(room)}:0`, offset })),
    );
  });
});

describe('a resume the router cannot serve is refused with a code to act on', () => {
  const refusal = async (r: RunningRouter, room: string, cursor: string) => {
    const stream = subscribe(r, room, cursor);
    await eventually(() => stream.errors.length > 0 || stream.completed, 'the refusal', 15_000);
    return (stream.errors[0] as { message: string; extensions?: { code?: string } }[])[0]!;
  };

  /** A cursor of the first event on a fresh room's topic. */
  async function firstCursor(room: string): Promise<string> {
    const first = subscribe(routers[0]!, room);
    await positioned(routers[0]!, room);
    await produce(room, 1, 1, [0]);
    await first.next(1);
    first.stop();
    return cursorAt(first, 0);
  }

  it('a cursor of another topic: CURSOR_INVALID naming it', async () => {
    const [x, y] = [await newRoom(), await newRoom()];
    const error = await refusal(routers[1]!, y, await firstCursor(x));
    expect(error.extensions?.code).toBe('CURSOR_INVALID');
    expect(error.message).toContain(
      `the cursor is for topic "${topicOf(x)}", which this subscription (topic "${topicOf(y)}") does not read`,
    );
  });

  it('a cursor of a partition the topic does not have: CURSOR_INVALID', async () => {
    const room = await newRoom(1);
    const cursor = Buffer.from(
      JSON.stringify({ v: 1, p: 'my-kafka', o: { [`${topicOf(room)}:4`]: 0 } }),
    ).toString('base64url');
    const error = await refusal(routers[1]!, room, cursor);
    expect(error.extensions?.code).toBe('CURSOR_INVALID');
    expect(error.message).toMatch(/has 1 partition, but the cursor names partition 4/);
  });

  it('a cursor the topic no longer holds events after: CURSOR_EXPIRED naming topic and partition', async () => {
    const room = await newRoom(1);
    const cursor = await firstCursor(room); // at offset 0
    await produce(room, 2, 11, [0]);
    // What retention does: the partition now starts at offset 8 (the admin needs the topic's metadata first).
    await admin.fetchTopicMetadata({ topics: [topicOf(room)] });
    await admin.deleteTopicRecords({ topic: topicOf(room), partitions: [{ partition: 0, offset: '8' }] });
    const error = await refusal(routers[1]!, room, cursor);
    expect(error.extensions?.code).toBe('CURSOR_EXPIRED');
    expect(error.message).toMatch(
      new RegExp(`topic "${topicOf(room).replace(/\./g, '\\.')}" partition 0 .*retention`),
    );
  });

  it('more events behind than subscriptions.resume.max_replay_events: REPLAY_LIMIT_EXCEEDED, and the router goes on', async () => {
    const room = await newRoom();
    const cursor = await firstCursor(room);
    await produce(room, 2, 11); // 30 behind
    const error = await refusal(routers[2]!, room, cursor);
    expect(error.extensions?.code).toBe('REPLAY_LIMIT_EXCEEDED');
    expect(error.message).toMatch(/max_replay_events/);
    const fresh = subscribe(routers[2]!, room);
    await positioned(routers[2]!, room);
    await produce(room, 12, 12, [0]);
    await fresh.next(1);
    expect(ids(fresh)).toEqual(['p0-12']);
  });
});
