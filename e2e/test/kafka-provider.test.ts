/**
 * The Kafka event provider against a real Apache Kafka broker (KRaft, started by
 * `src/infra/kafka.ts`): broadcast delivery, one shared consumer whose topics change without
 * losing events, topics that do not exist yet, publish, a broker restart, SASL and TLS. The peer
 * on the other side of every exchange is a plain kafkajs client, not the provider itself.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { KafkaProvider, type KafkaProviderOptions } from '../../router/src/events/kafka/index.js';
import { ProviderError } from '../../router/src/events/provider.js';
import type { KafkaProviderConfig } from '../../router/src/config/types.js';
import { freePort } from '../src/infra/nats.js';
import { startKafka, type KafkaBroker } from '../src/infra/kafka.js';
import { kafkaPeer, type KafkaPeer } from '../src/fixtures/kafka/index.js';
import { collector, decode, encode, rejection } from '../src/fixtures/providers.js';
import { eventually } from '../src/fixtures/wait.js';

const opened: { close(): Promise<void> }[] = [];

/** Test pacing: quick probes and retries, so outages are noticed within a second. */
const FAST: KafkaProviderOptions = {
  missingTopicPollMs: 200,
  restartBackoffMs: 200,
  healthCheckIntervalMs: 1000,
  reconnectTimeWaitMs: 250,
  operationTimeoutMs: 8000,
};

function provider(
  config: Partial<KafkaProviderConfig> & { brokers: string[] },
  options: KafkaProviderOptions = {},
): KafkaProvider {
  const p = new KafkaProvider(
    { id: 'my-kafka', tls: { enabled: false }, ...config },
    { ...FAST, ...options },
  );
  opened.push(p);
  return p;
}

let topicCount = 0;
/** A topic name no other test uses. */
const topic = (name: string) => `${name}.${++topicCount}`;

afterEach(async () => {
  await Promise.all(opened.splice(0).map((o) => o.close().catch(() => undefined)));
});

describe('against a plain broker', () => {
  let broker: KafkaBroker;
  let peer: KafkaPeer;

  beforeAll(async () => {
    broker = await startKafka();
    peer = await kafkaPeer(broker.brokers);
  }, 300_000); // a first run resolves the broker from Maven Central

  afterAll(async () => {
    await peer?.close();
    await broker?.stop();
  });

  it('delivers every message of the subscribed topics, none from before the subscription', async () => {
    const orders = topic('orders');
    const invoices = topic('invoices');
    await peer.send(orders, 'before');
    await peer.send(invoices, 'before');
    const p = provider({ brokers: broker.brokers });
    await p.connect();
    const c = collector();
    await p.subscribe({ subjects: [orders, invoices] }, c.onMessage, c.onError);
    await peer.send(orders, 'o1', 'o2');
    await peer.send(invoices, 'i1');
    await peer.send(orders, 'o3');
    await eventually(() => c.messages.length >= 4, '4 messages');
    expect(c.texts().filter((t) => t.startsWith(orders))).toEqual([
      `${orders}=o1`,
      `${orders}=o2`,
      `${orders}=o3`,
    ]);
    expect(c.texts().filter((t) => t.startsWith(invoices))).toEqual([`${invoices}=i1`]);
    expect(c.errors).toEqual([]);
  });

  it('every message reaches every partition’s reader: a topic with 3 partitions', async () => {
    const t = topic('partitioned');
    await peer.createTopics([t], 3);
    const p = provider({ brokers: broker.brokers });
    const c = collector();
    await p.subscribe({ subjects: [t] }, c.onMessage, c.onError);
    const sent = Array.from({ length: 30 }, (_, i) => `e${i}`);
    await peer.send(t, ...sent);
    await eventually(() => c.messages.length >= 30, '30 messages');
    expect(
      c
        .texts()
        .map((x) => x.split('=')[1])
        .sort(),
    ).toEqual([...sent].sort());
  });

  it('each message carries its position (lane topic:partition, the partition offset); start names every partition written to', async () => {
    const t = topic('positions');
    await peer.createTopics([t], 3);
    const p = provider({ brokers: broker.brokers });
    const c = collector();
    const sub = await p.subscribe({ subjects: [t] }, c.onMessage, c.onError);
    expect(sub.start).toEqual(new Map()); // nothing written yet: every partition is read from its start
    await peer.send(t, ...Array.from({ length: 12 }, (_, i) => `e${i}`));
    await eventually(() => c.messages.length >= 12, '12 messages');
    const offsets = new Map<string, number[]>();
    for (const m of c.messages)
      offsets.set(m.position!.lane, [...(offsets.get(m.position!.lane) ?? []), m.position!.offset]);
    expect([...offsets.keys()].every((lane) => /:[012]$/.test(lane))).toBe(true);
    for (const list of offsets.values()) expect(list).toEqual(list.map((_, i) => i));
    // A second subscription on the topic starts where the first one is now.
    const later = await p.subscribe(
      { subjects: [t] },
      () => undefined,
      () => undefined,
    );
    expect(later.start).toEqual(new Map([...offsets].map(([lane, list]) => [lane, list.length - 1])));
  });

  it('a subscription resolves before the consumer joined, and still misses nothing sent right after', async () => {
    const t = topic('early');
    const p = provider({ brokers: broker.brokers }, { resubscribeDebounceMs: 300 });
    const c = collector();
    await p.subscribe({ subjects: [t] }, c.onMessage, c.onError);
    expect(p.topics()[t]).not.toBe('live'); // the debounce is still running
    await peer.send(t, 'sent-at-once');
    await eventually(() => c.messages.length === 1, 'the message');
    expect(c.texts()).toEqual([`${t}=sent-at-once`]);
  });

  it('a consumer that joins behind hands its backlog over a little per event-loop turn, in order', async () => {
    const t = topic('behind');
    const p = provider({ brokers: broker.brokers }, { resubscribeDebounceMs: 1500 });
    const offsets: number[] = [];
    const perTurn: number[] = [];
    let thisTurn = 0;
    await p.subscribe(
      { subjects: [t] },
      (m) => {
        offsets.push(m.position!.offset);
        if (thisTurn++ === 0)
          setImmediate(() => {
            perTurn.push(thisTurn);
            thisTurn = 0;
          });
      },
      () => undefined,
    );
    // Written before the consumer joins: its first fetch brings them all.
    await peer.send(t, ...Array.from({ length: 2_000 }, (_, i) => `e${i}`));
    await eventually(() => offsets.length === 2_000, '2000 messages', 20_000);
    expect(offsets).toEqual(offsets.map((_, i) => i));
    expect(Math.max(...perTurn)).toBeLessThanOrEqual(128);
  });

  it('two providers (two router replicas) each receive every message: no shared consumer group', async () => {
    const t = topic('broadcast');
    const a = provider({ brokers: broker.brokers });
    const b = provider({ brokers: broker.brokers });
    expect(a.groupId).not.toBe(b.groupId);
    const ca = collector();
    const cb = collector();
    await a.subscribe({ subjects: [t] }, ca.onMessage, ca.onError);
    await b.subscribe({ subjects: [t] }, cb.onMessage, cb.onError);
    const sent = Array.from({ length: 10 }, (_, i) => `n${i}`);
    await peer.send(t, ...sent);
    await eventually(() => ca.messages.length >= 10 && cb.messages.length >= 10, 'both replicas got all 10');
    expect(ca.texts()).toEqual(sent.map((s) => `${t}=${s}`));
    expect(cb.texts()).toEqual(sent.map((s) => `${t}=${s}`));
  });

  it('one consumer serves all subscriptions: a burst of 20 new topics costs one rebuild', async () => {
    const p = provider({ brokers: broker.brokers });
    const first = collector();
    const base = topic('burst-base');
    const topics = Array.from({ length: 20 }, () => topic('burst'));
    await peer.createTopics([base, ...topics]);
    await p.subscribe({ subjects: [base] }, first.onMessage, first.onError);
    await eventually(() => p.topics()[base] === 'live', 'the first topic is live');
    const before = p.rebuilds;
    const collectors = topics.map(() => collector());
    await Promise.all(
      topics.map((t, i) => p.subscribe({ subjects: [t] }, collectors[i]!.onMessage, collectors[i]!.onError)),
    );
    await eventually(() => topics.every((t) => p.topics()[t] === 'live'), 'all 20 topics live');
    expect(p.rebuilds - before).toBe(1);
    const admin = peer.kafka.admin();
    await admin.connect();
    const { groups } = await admin.describeGroups([p.groupId]);
    await admin.disconnect();
    expect(groups[0]!.members).toHaveLength(1);
    for (const t of topics) await peer.send(t, `hello ${t}`);
    await eventually(() => collectors.every((c) => c.messages.length === 1), 'one message per topic');
  });

  it('messages of a topic that stays are neither lost nor repeated while other topics come and go', async () => {
    const p = provider({ brokers: broker.brokers }, { resubscribeDebounceMs: 20 });
    const steady = topic('steady');
    const churn = Array.from({ length: 5 }, () => topic('churn'));
    await peer.createTopics([steady, ...churn]);
    const c = collector();
    await p.subscribe({ subjects: [steady] }, c.onMessage, c.onError);
    let sending = true;
    let sent = 0;
    const producing = (async () => {
      while (sending) await peer.send(steady, String(sent++));
    })();
    // Each new topic forces a rebuild (stop, subscribe, run) of the one consumer.
    for (const extra of churn) {
      const x = collector();
      const sub = await p.subscribe({ subjects: [extra] }, x.onMessage, x.onError);
      await eventually(() => p.topics()[extra] === 'live', `${extra} live`);
      await sub.close();
    }
    sending = false;
    await producing;
    expect(p.rebuilds).toBeGreaterThanOrEqual(5);
    await eventually(() => c.messages.length >= sent, `all ${sent} messages`);
    expect(c.messages.map((m) => Number(decode(m.data)))).toEqual(Array.from({ length: sent }, (_, i) => i));
  }, 60_000);

  it('closing a subscription stops delivery at once; the topic is paused, not resubscribed', async () => {
    const p = provider({ brokers: broker.brokers });
    const t = topic('closing');
    const other = topic('closing-other');
    await peer.createTopics([t, other]);
    const c = collector();
    const keep = collector();
    const sub = await p.subscribe({ subjects: [t] }, c.onMessage, c.onError);
    await p.subscribe({ subjects: [other] }, keep.onMessage, keep.onError);
    await eventually(() => p.topics()[t] === 'live' && p.topics()[other] === 'live', 'both live');
    await peer.send(t, 'one');
    await eventually(() => c.messages.length === 1, 'the first message');
    const rebuilds = p.rebuilds;
    await sub.close();
    expect(p.topics()[t]).toBe('idle');
    await peer.send(t, 'two');
    await peer.send(other, 'still here');
    await eventually(() => keep.messages.length === 1, 'the other topic still flows');
    expect(c.texts()).toEqual([`${t}=one`]);
    // Subscribing again resumes the paused topic from now: no rebuild, nothing old replayed.
    const again = collector();
    await p.subscribe({ subjects: [t] }, again.onMessage, again.onError);
    expect(p.topics()[t]).toBe('live');
    await peer.send(t, 'three');
    await eventually(() => again.messages.length === 1, 'the new message');
    expect(again.texts()).toEqual([`${t}=three`]);
    expect(p.rebuilds).toBe(rebuilds);
  });

  it('the last subscription leaving releases the consumer (and its group membership)', async () => {
    const p = provider({ brokers: broker.brokers });
    const t = topic('release');
    await peer.createTopics([t]);
    const c = collector();
    const sub = await p.subscribe({ subjects: [t] }, c.onMessage, c.onError);
    await eventually(() => p.topics()[t] === 'live', 'live');
    await sub.close();
    await eventually(() => Object.keys(p.topics()).length === 0, 'no topics tracked');
    const admin = peer.kafka.admin();
    await admin.connect();
    await eventually(
      async () => (await admin.describeGroups([p.groupId])).groups[0]!.members.length === 0,
      'the group is empty',
    );
    await admin.disconnect();
  });

  it('a topic that does not exist yet is not created, and is read from its beginning once a producer creates it', async () => {
    const t = topic('later');
    const p = provider({ brokers: broker.brokers });
    const c = collector();
    await p.subscribe({ subjects: [t] }, c.onMessage, c.onError);
    expect(p.topics()[t]).toBe('missing');
    const admin = peer.kafka.admin();
    await admin.connect();
    expect(await admin.listTopics()).not.toContain(t);
    await admin.disconnect();
    await peer.send(t, 'first', 'second'); // the producer creates it (auto.create.topics.enable)
    await eventually(() => c.messages.length === 2, 'both messages');
    expect(c.texts()).toEqual([`${t}=first`, `${t}=second`]);
  });

  it('a missing topic does not hold up the others on the shared consumer', async () => {
    const p = provider({ brokers: broker.brokers });
    const missing = topic('never');
    const present = topic('present');
    await peer.createTopics([present]);
    const c = collector();
    await p.subscribe({ subjects: [missing, present] }, c.onMessage, c.onError);
    await peer.send(present, 'flows');
    await eventually(() => c.messages.length === 1, 'the message of the existing topic');
    expect(p.topics()[missing]).toBe('missing');
  });

  it('publish sends the bytes to the topic; a plain consumer reads them', async () => {
    const t = topic('published');
    const p = provider({ brokers: broker.brokers });
    await p.publish(t, encode('{"id":"1","status":"SHIPPED"}'));
    const reader = await peer.read(t);
    await eventually(() => reader.values.length === 1, 'the published message');
    expect(JSON.parse(reader.values[0]!)).toEqual({ id: '1', status: 'SHIPPED' });
    await reader.stop();
  });

  it('request is refused: Kafka has no request/reply', async () => {
    const p = provider({ brokers: broker.brokers });
    const error = await rejection(p.request('orders.get', encode('{}'), 1000));
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.message).toMatch(/provider "my-kafka".*"orders.get".*no request\/reply/);
  });

  it('an invalid topic name is refused, naming the topic', async () => {
    const p = provider({ brokers: broker.brokers });
    const error = await rejection(
      p.subscribe(
        { subjects: ['orders/1'] },
        () => undefined,
        () => undefined,
      ),
    );
    expect(error.message).toMatch(/"orders\/1".*only letters, digits/);
    const published = await rejection(p.publish('', encode('x')));
    expect(published.message).toMatch(/cannot publish to topic ""/);
  });

  it('a stream configuration is refused: streams are NATS JetStream', async () => {
    const p = provider({ brokers: broker.brokers });
    const error = await rejection(
      p.subscribe(
        { subjects: ['x'], stream: { streamName: 'S', consumerName: 'c' } },
        () => undefined,
        () => undefined,
      ),
    );
    expect(error.message).toMatch(/streamConfiguration/);
  });

  it('no callback after close(); close is idempotent', async () => {
    const p = provider({ brokers: broker.brokers });
    const t = topic('after-close');
    await peer.createTopics([t]);
    const c = collector();
    await p.subscribe({ subjects: [t] }, c.onMessage, c.onError);
    await eventually(() => p.topics()[t] === 'live', 'live');
    await p.close();
    await p.close();
    await peer.send(t, 'late');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(c.messages).toEqual([]);
    expect(p.status().ready).toMatch(/closed/);
    expect(
      (
        await rejection(
          p.subscribe(
            { subjects: [t] },
            () => undefined,
            () => undefined,
          ),
        )
      ).message,
    ).toMatch(/closed/);
  });
});

describe('broker restarts', () => {
  let broker: KafkaBroker;
  let peer: KafkaPeer;

  beforeAll(async () => {
    broker = await startKafka();
    peer = await kafkaPeer(broker.brokers);
  }, 300_000);

  afterAll(async () => {
    await peer?.close();
    await broker?.stop();
  });

  for (const hard of [false, true]) {
    it(`a ${hard ? 'crashed (SIGKILL)' : 'restarted'} broker: not ready while down, counted, then delivery continues without loss`, async () => {
      const reconnects: number[] = [];
      const p = provider({ brokers: broker.brokers }, { onReconnect: () => reconnects.push(Date.now()) });
      await p.connect();
      expect(p.status().ready).toBe(true);
      const t = topic(hard ? 'crash' : 'restart');
      const c = collector();
      await p.subscribe({ subjects: [t] }, c.onMessage, c.onError);
      await peer.send(t, 'a1', 'a2');
      await eventually(() => c.messages.length === 2, 'the first two');

      const restarting = broker.restart({ hard, downMs: 1500 });
      await eventually(() => p.status().ready !== true, 'the provider reports the outage', 10_000);
      expect(p.status().ready).toMatch(/reconnecting to Kafka brokers 127\.0\.0\.1:\d+/);
      await restarting;
      await eventually(() => p.status().ready === true, 'ready again', 20_000);
      expect(p.reconnects).toBe(1);
      expect(reconnects).toHaveLength(1);

      await peer.send(t, 'b1', 'b2', 'b3');
      await eventually(() => c.messages.length === 5, 'the messages after the restart', 40_000);
      expect(c.texts()).toEqual(['a1', 'a2', 'b1', 'b2', 'b3'].map((v) => `${t}=${v}`));
      expect(c.errors).toEqual([]);
      // New subscriptions work again too.
      const later = collector();
      const t2 = topic('after-restart');
      await p.subscribe({ subjects: [t2] }, later.onMessage, later.onError);
      await peer.send(t2, 'fresh');
      await eventually(() => later.messages.length === 1, 'a message on a new topic', 20_000);
    }, 90_000);
  }
});

describe('with the broker’s default join delay (group.initial.rebalance.delay.ms = 3 s)', () => {
  let broker: KafkaBroker;
  let peer: KafkaPeer;

  beforeAll(async () => {
    broker = await startKafka({ properties: { 'group.initial.rebalance.delay.ms': '3000' } });
    peer = await kafkaPeer(broker.brokers);
  }, 300_000);

  afterAll(async () => {
    await peer?.close();
    await broker?.stop();
  });

  it('adding a topic holds up only that topic: the others keep flowing while the new consumer joins', async () => {
    const p = provider({ brokers: broker.brokers });
    const steady = topic('steady-delayed');
    const added = topic('added-delayed');
    await peer.createTopics([steady, added]);
    const c = collector();
    await p.subscribe({ subjects: [steady] }, c.onMessage, c.onError);
    await eventually(() => p.topics()[steady] === 'live', 'the first consumer joined', 20_000);

    const x = collector();
    await p.subscribe({ subjects: [added] }, x.onMessage, x.onError);
    await eventually(() => p.topics()[added] === 'joining', 'the next consumer is joining');
    const sentAt = Date.now();
    await peer.send(steady, 'during the join');
    await eventually(() => c.messages.length === 1, 'the steady topic’s message', 2000);
    expect(Date.now() - sentAt).toBeLessThan(1500);
    expect(p.topics()[added]).toBe('joining');
    await peer.send(added, 'first');

    await eventually(() => x.messages.length === 1, 'the new topic’s message', 20_000);
    expect(p.topics()[added]).toBe('live');
    await peer.send(steady, 'after the handover');
    await eventually(() => c.messages.length === 2, 'the steady topic after the handover');
    expect(c.texts()).toEqual([`${steady}=during the join`, `${steady}=after the handover`]);
    expect(x.texts()).toEqual([`${added}=first`]);
  }, 60_000);
});

describe('unreachable brokers', () => {
  it('connect() rejects naming the provider and the brokers; status is not ready; subscribe fails fast', async () => {
    const port = await freePort();
    const p = provider({ brokers: [`127.0.0.1:${port}`] });
    const error = await rejection(p.connect());
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.message).toMatch(
      new RegExp(`provider "my-kafka": cannot reach Kafka brokers 127\\.0\\.0\\.1:${port}`),
    );
    expect(p.status().ready).toMatch(
      new RegExp(`cannot reach Kafka brokers 127\\.0\\.0\\.1:${port}.*retrying`),
    );
    const started = Date.now();
    const subscribeError = await rejection(
      p.subscribe(
        { subjects: ['orders'] },
        () => undefined,
        () => undefined,
      ),
    );
    expect(subscribeError.message).toMatch(/cannot subscribe to topic "orders"/);
    expect(Date.now() - started).toBeLessThan(1000);
  }, 30_000);
});

describe('SASL and TLS', () => {
  const user = { username: 'router', password: 'router-secret' };

  /** Replays `t` from its start through the provider's replay client: `lane@offset=payload`. */
  const replayed = async (p: KafkaProvider, t: string) => {
    const messages: string[] = [];
    await p.replay({
      spec: { subjects: [t] },
      after: new Map(),
      maxMessages: 10,
      signal: new AbortController().signal,
      onMessage: (m) => void messages.push(`${m.position!.lane}@${m.position!.offset}=${decode(m.data)}`),
    });
    return messages;
  };
  let broker: KafkaBroker;
  let peer: KafkaPeer;

  beforeAll(async () => {
    broker = await startKafka({ sasl: user, tls: true });
    peer = await kafkaPeer(broker.brokers);
  }, 300_000);

  afterAll(async () => {
    await peer?.close();
    await broker?.stop();
  });

  for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512'] as const) {
    it(`authenticates with SASL ${mechanism}: subscribes, publishes and replays`, async () => {
      const p = provider({ brokers: broker.saslBrokers!, authentication: { mechanism, ...user } });
      await p.connect();
      expect(p.status().ready).toBe(true);
      const t = topic(`sasl-${mechanism}`);
      const c = collector();
      await p.subscribe({ subjects: [t] }, c.onMessage, c.onError);
      await p.publish(t, encode(`via ${mechanism}`));
      await eventually(() => c.messages.length === 1, 'the round trip');
      expect(c.texts()).toEqual([`${t}=via ${mechanism}`]);
      expect(await replayed(p, t)).toEqual([`${t}:0@0=via ${mechanism}`]);
    });
  }

  it('a wrong password is refused with an error pointing at the authentication settings', async () => {
    const p = provider({
      brokers: broker.saslBrokers!,
      authentication: { mechanism: 'scram-sha-256', username: 'router', password: 'wrong' },
    });
    const error = await rejection(p.connect());
    expect(error.message).toMatch(/provider "my-kafka".*authentication/i);
    expect(p.status().ready).toMatch(/authentication settings/);
  });

  it('tls.enabled with tls.ca_file connects over TLS, trusting that CA, live and for replays', async () => {
    const caFile = join(broker.dir, 'test-ca.pem');
    writeFileSync(caFile, broker.tlsCa!);
    const p = provider({ brokers: broker.tlsBrokers!, tls: { enabled: true, caFile } });
    await p.connect();
    const t = topic('tls');
    const c = collector();
    await p.subscribe({ subjects: [t] }, c.onMessage, c.onError);
    await peer.send(t, 'over tls');
    await eventually(() => c.messages.length === 1, 'the message');
    expect(await replayed(p, t)).toEqual([`${t}:0@0=over tls`]);
  });

  it('tls.enabled verifies the certificate: a self-signed broker is refused, naming the tls settings', async () => {
    const p = provider({ brokers: broker.tlsBrokers!, tls: { enabled: true } });
    const error = await rejection(p.connect());
    expect(error.message).toMatch(/provider "my-kafka".*(certificate|self.signed).*tls settings/i);
  });
});
