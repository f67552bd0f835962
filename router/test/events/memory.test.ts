import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import type { BrokerMessage } from '../../src/events/provider.js';
import { ProviderError } from '../../src/events/provider.js';
import { MemoryProvider, memoryBroker, memoryBrokerName } from '../../src/events/memory/index.js';
import { createProviders } from '../../src/events/providers.js';
import { NatsProvider } from '../../src/events/nats/index.js';

const encode = (text: string): Uint8Array => new TextEncoder().encode(text);
const decode = (data: Uint8Array): string => new TextDecoder().decode(data);

/** A provider on a broker of its own, so tests never hear each other. */
function provider(): MemoryProvider {
  return new MemoryProvider({ id: 'default', url: `memory://test-${randomUUID()}` });
}

/** Lets queued deliveries run (the broker delivers on a later turn of the event loop). */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 5));

async function received(p: MemoryProvider, subjects: string[]) {
  const messages: BrokerMessage[] = [];
  const subscription = await p.subscribe(
    { subjects },
    (m) => messages.push(m),
    () => undefined,
  );
  return { messages, subscription, subjects: () => messages.map((m) => m.subject) };
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

describe('subject matching', () => {
  it('"*" matches exactly one token', async () => {
    const p = provider();
    const sub = await received(p, ['employee.*']);
    for (const subject of ['employee.1', 'employee', 'employee.1.name', 'other.1'])
      await p.publish(subject, encode('{}'));
    await settle();
    expect(sub.subjects()).toEqual(['employee.1']);
  });

  it('">" matches one or more trailing tokens', async () => {
    const p = provider();
    const sub = await received(p, ['employee.>']);
    for (const subject of ['employee.1', 'employee', 'employee.1.name'])
      await p.publish(subject, encode('{}'));
    await settle();
    expect(sub.subjects()).toEqual(['employee.1', 'employee.1.name']);
  });

  it('a literal subject matches only itself', async () => {
    const p = provider();
    const sub = await received(p, ['room.lobby.messages']);
    await p.publish('room.lobby.messages', encode('1'));
    await p.publish('room.other.messages', encode('2'));
    await settle();
    expect(sub.messages.map((m) => decode(m.data))).toEqual(['1']);
  });

  it('several subjects feed one callback, in publish order', async () => {
    const p = provider();
    const sub = await received(p, ['a.*', 'b.x']);
    await p.publish('b.x', encode('1'));
    await p.publish('a.y', encode('2'));
    await p.publish('b.x', encode('3'));
    await settle();
    expect(sub.messages.map((m) => `${m.subject}=${decode(m.data)}`)).toEqual(['b.x=1', 'a.y=2', 'b.x=3']);
  });

  it('providers with the same memory:// URL share one broker; different names do not', async () => {
    const name = `shared-${randomUUID()}`;
    const router = new MemoryProvider({ id: 'default', url: `memory://${name}` });
    const elsewhere = provider();
    const sub = await received(router, ['events.>']);
    const other = await received(elsewhere, ['events.>']);
    memoryBroker(name).publish('events.1', '{"__typename":"Employee","id":1}');
    await settle();
    expect(sub.messages.map((m) => JSON.parse(decode(m.data)))).toEqual([{ __typename: 'Employee', id: 1 }]);
    expect(other.messages).toEqual([]);
  });
});

describe('delivery', () => {
  it('is asynchronous: nothing arrives inside publish', async () => {
    const p = provider();
    const sub = await received(p, ['x']);
    const publishing = p.publish('x', encode('1'));
    expect(sub.messages).toEqual([]);
    await publishing;
    await settle();
    expect(sub.messages).toHaveLength(1);
  });

  it('a handler that publishes does not recurse into itself', async () => {
    const p = provider();
    let depth = 0;
    let maxDepth = 0;
    let count = 0;
    await p.subscribe(
      { subjects: ['loop'] },
      () => {
        depth++;
        maxDepth = Math.max(maxDepth, depth);
        if (++count < 3) void p.publish('loop', encode('again'));
        depth--;
      },
      () => undefined,
    );
    await p.publish('loop', encode('start'));
    await settle();
    await settle();
    expect(count).toBe(3);
    expect(maxDepth).toBe(1);
  });

  it('a throwing subscriber neither reaches the publisher nor stops other subscribers', async () => {
    const p = provider();
    await p.subscribe(
      { subjects: ['x'] },
      () => {
        throw new Error('boom');
      },
      () => undefined,
    );
    const sub = await received(p, ['x']);
    await expect(p.publish('x', encode('1'))).resolves.toBeUndefined();
    await settle();
    expect(sub.messages).toHaveLength(1);
  });

  it('closing a subscription stops delivery, also of messages already queued', async () => {
    const p = provider();
    const sub = await received(p, ['x']);
    await p.publish('x', encode('queued'));
    await sub.subscription.close();
    await p.publish('x', encode('after'));
    await settle();
    expect(sub.messages).toEqual([]);
    expect(p.broker.subscriptionCount()).toBe(0);
  });

  it('closing the provider stops every subscription and refuses further work', async () => {
    const p = provider();
    const a = await received(p, ['a']);
    const b = await received(p, ['b.>']);
    await p.publish('a', encode('1'));
    await p.close();
    p.broker.publish('a', '2');
    p.broker.publish('b.c', '3');
    await settle();
    expect(a.messages).toEqual([]);
    expect(b.messages).toEqual([]);
    expect(p.status().ready).toMatch(/closed/);
    await expect(p.publish('a', encode('x'))).rejects.toThrow(
      'provider "default": cannot publish: the provider is closed',
    );
  });
});

describe('request/reply', () => {
  it('a request gets the reply of an in-process service', async () => {
    const p = provider();
    p.broker.reply('getEmployee.*', (message) => {
      const { id } = message.json<{ id: number }>();
      return JSON.stringify({ __typename: 'Employee', id, subject: message.subject });
    });
    const reply = await p.request('getEmployee.7', encode('{"id":7}'), 1000);
    expect(JSON.parse(decode(reply))).toEqual({ __typename: 'Employee', id: 7, subject: 'getEmployee.7' });
  });

  it('async responders work too, and the reply inbox is cleaned up', async () => {
    const p = provider();
    const service = p.broker.reply('echo', async (message) => `echo ${message.string()}`);
    expect(decode(await p.request('echo', encode('hi'), 1000))).toBe('echo hi');
    service.unsubscribe();
    expect(p.broker.subscriptionCount()).toBe(0);
  });

  it('a request nobody listens to fails at once with "no responders on subject X"', async () => {
    const p = provider();
    const started = Date.now();
    const error = await rejection(p.request('getEmployee.1', encode('{}'), 5000));
    expect(Date.now() - started).toBeLessThan(1000);
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.message).toBe('provider "default": no responders on subject "getEmployee.1"');
  });

  it('a request whose responder stays silent times out after N ms', async () => {
    const p = provider();
    p.broker.subscribe('slow', () => undefined);
    const started = Date.now();
    const error = await rejection(p.request('slow', encode('{}'), 50));
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(error.message).toBe('provider "default": request to subject "slow" timed out after 50 ms');
    expect(p.broker.subscriptionCount()).toBe(1);
  });
});

describe('refusals name what to fix', () => {
  it('JetStream stream specs are refused with the stream name', async () => {
    const p = provider();
    const error = await rejection(
      p.subscribe(
        { subjects: ['a'], stream: { streamName: 'ORDERS', consumerName: 'router' } },
        () => undefined,
        () => undefined,
      ),
    );
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.message).toContain('JetStream stream "ORDERS"');
    expect(error.message).toContain('cannot be used with the in-process broker');
  });

  it('publishing to a wildcard subject is refused', async () => {
    const error = await rejection(provider().publish('a.*', encode('{}')));
    expect(error.message).toContain('cannot publish to subject "a.*"');
  });

  it('an invalid subscribe subject is refused', async () => {
    const error = await rejection(
      provider().subscribe(
        { subjects: ['a..b'] },
        () => undefined,
        () => undefined,
      ),
    );
    expect(error.message).toContain('cannot subscribe to subject "a..b"');
  });
});

describe('status', () => {
  it('is ready once connected', async () => {
    const p = provider();
    expect(p.status().ready).not.toBe(true);
    await p.connect();
    expect(p.status()).toEqual({ ready: true });
  });

  it('memory:// alone names the default broker', () => {
    expect(memoryBrokerName('memory://')).toBe('default');
    expect(memoryBrokerName('memory://demo')).toBe('demo');
  });
});

describe('createProviders', () => {
  it('gives memory:// URLs the in-process broker, other URLs a NATS client, Kafka its own; keyed by id', async () => {
    const providers = await createProviders({
      nats: [
        { id: 'default', url: 'memory://demo' },
        { id: 'remote', url: 'nats://127.0.0.1:4222' },
      ],
      kafka: [{ id: 'my-kafka', brokers: ['localhost:9092'], tls: { enabled: false } }],
    });
    expect([...providers.keys()]).toEqual(['default', 'remote', 'my-kafka']);
    expect(providers.get('my-kafka')?.kind).toBe('kafka');
    expect(providers.get('default')).toBeInstanceOf(MemoryProvider);
    expect(providers.get('remote')).toBeInstanceOf(NatsProvider);
    expect(providers.get('remote')?.kind).toBe('nats');
  });

  it('refuses a duplicate id, naming it and both places', async () => {
    await expect(
      createProviders({
        nats: [
          { id: 'default', url: 'memory://a' },
          { id: 'default', url: 'memory://b' },
        ],
      }),
    ).rejects.toThrow(
      'event provider id "default" is used twice (events.providers.nats[0] and events.providers.nats[1]); give each provider in events.providers a unique id',
    );
  });
});
