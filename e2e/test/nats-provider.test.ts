/**
 * The NATS event provider against a real nats-server (started by `src/infra/nats.ts`): core
 * subscribe with wildcards, publish, request/reply, JetStream durable consumers, authentication,
 * and delivery across a server restart. The peer on the other side of every exchange is a plain
 * NATS client, not the provider itself.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { NatsProvider } from '../../router/src/events/nats/index.js';
import { ProviderError } from '../../router/src/events/provider.js';
import type { NatsProviderConfig } from '../../router/src/config/types.js';
import { freePort, startNatsServer, type NatsServer } from '../src/infra/nats.js';
import { collector, decode, encode, rejection } from '../src/fixtures/providers.js';
import { eventually } from '../src/fixtures/wait.js';

const opened: { close(): Promise<void> }[] = [];

function provider(config: Partial<NatsProviderConfig> & { url: string }): NatsProvider {
  const p = new NatsProvider(
    { id: 'default', ...config },
    { reconnectTimeWaitMs: 100, operationTimeoutMs: 5000 },
  );
  opened.push(p);
  return p;
}

async function peer(
  server: NatsServer,
  options: Parameters<typeof connect>[0] = {},
): Promise<NatsConnection> {
  const nc = await connect({ servers: server.url, ...options });
  opened.push({ close: () => nc.close() });
  return nc;
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((o) => o.close().catch(() => undefined)));
});

describe('core NATS', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startNatsServer();
  }, 180_000);
  afterAll(async () => server?.stop());

  it('is ready once connected', async () => {
    const p = provider({ url: server.url });
    expect(p.status().ready).toMatch(/not connected yet/);
    await p.connect();
    expect(p.status()).toEqual({ ready: true });
  });

  it('a wildcard subscription hears exactly the subjects it matches', async () => {
    const p = provider({ url: server.url });
    const got = collector();
    await p.subscribe({ subjects: ['employee.*', 'audit.>'] }, got.onMessage, got.onError);
    const nc = await peer(server);
    for (const subject of ['employee.1', 'employee.1.name', 'audit.a.b', 'other.1', 'employee.2'])
      nc.publish(subject, encode(subject));
    await nc.flush();
    await eventually(() => got.messages.length >= 3, 'three messages arrived', 10_000);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(got.texts().sort()).toEqual([
      'audit.a.b=audit.a.b',
      'employee.1=employee.1',
      'employee.2=employee.2',
    ]);
    expect(got.errors).toEqual([]);
  });

  it("a published event reaches other clients and the provider's own subscriptions", async () => {
    const p = provider({ url: server.url });
    const nc = await peer(server);
    const outside: string[] = [];
    nc.subscribe('employeeUpdated.*', {
      callback: (_e, m) => {
        outside.push(`${m.subject}=${m.string()}`);
      },
    });
    await nc.flush();
    const got = collector();
    await p.subscribe({ subjects: ['employeeUpdated.1'] }, got.onMessage, got.onError);

    await p.publish('employeeUpdated.1', encode('{"__typename":"Employee","id":1}'));
    await eventually(
      () => outside.length === 1 && got.messages.length === 1,
      'both receivers got the event',
      10_000,
    );
    expect(outside).toEqual(['employeeUpdated.1={"__typename":"Employee","id":1}']);
    expect(got.texts()).toEqual(['employeeUpdated.1={"__typename":"Employee","id":1}']);
  });

  it('closing a subscription stops delivery', async () => {
    const p = provider({ url: server.url });
    const got = collector();
    const subscription = await p.subscribe({ subjects: ['stop.me'] }, got.onMessage, got.onError);
    await p.publish('stop.me', encode('1'));
    await eventually(() => got.messages.length === 1, 'the first message arrived', 10_000);
    await subscription.close();
    await p.publish('stop.me', encode('2'));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(got.texts()).toEqual(['stop.me=1']);
  });

  it('a request gets the reply of a NATS service', async () => {
    const nc = await peer(server);
    nc.subscribe('getEmployee.*', {
      callback: (_e, m) => {
        m.respond(JSON.stringify({ __typename: 'Employee', id: Number(m.subject.split('.')[1]) }));
      },
    });
    await nc.flush();
    const p = provider({ url: server.url });
    const reply = await p.request('getEmployee.7', encode('{"id":7}'), 2000);
    expect(JSON.parse(decode(reply))).toEqual({ __typename: 'Employee', id: 7 });
  });

  it('a request nobody listens to fails with "no responders on subject X"', async () => {
    const p = provider({ url: server.url });
    const started = Date.now();
    const error = await rejection(p.request('nobody.home', encode('{}'), 5000));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.message).toBe('provider "default": no responders on subject "nobody.home"');
  });

  it('a request whose service stays silent times out after N ms', async () => {
    const nc = await peer(server);
    nc.subscribe('silent', { callback: () => undefined });
    await nc.flush();
    const p = provider({ url: server.url });
    const error = await rejection(p.request('silent', encode('{}'), 200));
    expect(error.message).toBe('provider "default": request to subject "silent" timed out after 200 ms');
  });

  it('publishing to a wildcard subject is refused before it reaches the server', async () => {
    const p = provider({ url: server.url });
    const error = await rejection(p.publish('employee.*', encode('{}')));
    expect(error.message).toContain('cannot publish to subject "employee.*"');
  });

  it('after close no message is delivered and operations are refused', async () => {
    const p = provider({ url: server.url });
    const got = collector();
    await p.subscribe({ subjects: ['closing'] }, got.onMessage, got.onError);
    await p.close();
    const nc = await peer(server);
    nc.publish('closing', encode('late'));
    await nc.flush();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(got.messages).toEqual([]);
    expect(p.status().ready).toMatch(/closed/);
    await expect(p.publish('closing', encode('x'))).rejects.toThrow(/closed/);
  });

  it('an unreachable server is a clear connect error, and the provider keeps trying', async () => {
    const p = provider({ url: 'nats://127.0.0.1:1' });
    const error = await rejection(p.connect());
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.message).toContain('provider "default": cannot connect to nats://127.0.0.1:1');
    expect(p.status().ready).toMatch(/cannot connect to nats:\/\/127.0.0.1:1: .* \(retrying\)/);
  });

  it('operations on a provider that cannot connect say why', async () => {
    const p = provider({ url: 'nats://127.0.0.1:1' });
    const error = await rejection(
      p.subscribe(
        { subjects: ['a'] },
        () => undefined,
        () => undefined,
      ),
    );
    expect(error.message).toMatch(
      /^provider "default": cannot subscribe to "a": cannot connect to nats:\/\/127\.0\.0\.1:1: /,
    );
  });

  it('a provider started before its server connects by itself once the server is up', async () => {
    const port = await freePort();
    const p = provider({ url: `nats://127.0.0.1:${port}` });
    await expect(p.connect()).rejects.toThrow(ProviderError);
    const late = await startNatsServer({ port });
    try {
      await eventually(() => p.status().ready === true, 'the provider connected in the background', 10_000);
      const got = collector();
      await p.subscribe({ subjects: ['late'] }, got.onMessage, got.onError);
      await p.publish('late', encode('hello'));
      await eventually(() => got.messages.length === 1, 'the message arrived', 10_000);
    } finally {
      await late.stop();
    }
  });
});

describe('JetStream', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  beforeAll(async () => {
    server = await startNatsServer({ jetstream: true });
    nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'ORDERS', subjects: ['orders.>'] });
  }, 180_000);
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it("a durable consumer receives messages published to the stream's subjects, and acks them", async () => {
    const p = provider({ url: server.url });
    const got = collector();
    await p.subscribe(
      { subjects: ['orders.created'], stream: { streamName: 'ORDERS', consumerName: 'router' } },
      got.onMessage,
      got.onError,
    );
    const js = jetstream(nc);
    await js.publish('orders.created', encode('{"id":1}'));
    await js.publish('orders.paid', encode('{"id":1}'));
    await js.publish('orders.created', encode('{"id":2}'));
    await eventually(() => got.messages.length === 2, 'two orders.created messages arrived', 10_000);
    expect(got.texts()).toEqual(['orders.created={"id":1}', 'orders.created={"id":2}']);

    const jsm = await jetstreamManager(nc);
    const info = await jsm.consumers.info('ORDERS', 'router');
    expect(info.config.durable_name).toBe('router');
    expect(info.config.filter_subject).toBe('orders.created');
    await eventually(
      async () => (await jsm.consumers.info('ORDERS', 'router')).num_ack_pending === 0,
      'all acked',
      10_000,
    );
  });

  it('with several subjects, one durable consumer per subject (name-0, name-1) feeds one callback', async () => {
    const p = provider({ url: server.url });
    const got = collector();
    await p.subscribe(
      {
        subjects: ['orders.shipped', 'orders.cancelled'],
        stream: { streamName: 'ORDERS', consumerName: 'multi' },
      },
      got.onMessage,
      got.onError,
    );
    const js = jetstream(nc);
    await js.publish('orders.shipped', encode('s'));
    await js.publish('orders.cancelled', encode('c'));
    await eventually(() => got.messages.length === 2, 'both messages arrived', 10_000);
    expect(got.texts().sort()).toEqual(['orders.cancelled=c', 'orders.shipped=s']);
    const jsm = await jetstreamManager(nc);
    expect((await jsm.consumers.info('ORDERS', 'multi-0')).config.filter_subject).toBe('orders.shipped');
    expect((await jsm.consumers.info('ORDERS', 'multi-1')).config.filter_subject).toBe('orders.cancelled');
  });

  it('the durable consumer keeps its place: messages published while nobody listens arrive later', async () => {
    const first = provider({ url: server.url });
    const before = collector();
    const subscription = await first.subscribe(
      { subjects: ['orders.refunded'], stream: { streamName: 'ORDERS', consumerName: 'resume' } },
      before.onMessage,
      before.onError,
    );
    await subscription.close();
    const js = jetstream(nc);
    await js.publish('orders.refunded', encode('while away'));

    const second = provider({ url: server.url });
    const after = collector();
    await second.subscribe(
      { subjects: ['orders.refunded'], stream: { streamName: 'ORDERS', consumerName: 'resume' } },
      after.onMessage,
      after.onError,
    );
    await eventually(() => after.messages.length === 1, 'the message published while away arrived', 10_000);
    expect(after.texts()).toEqual(['orders.refunded=while away']);
  });

  it('a missing stream is a clear error naming the stream, not a hang', async () => {
    const p = provider({ url: server.url });
    const started = Date.now();
    const error = await rejection(
      p.subscribe(
        { subjects: ['x.y'], stream: { streamName: 'NOPE', consumerName: 'router' } },
        () => undefined,
        () => undefined,
      ),
    );
    expect(Date.now() - started).toBeLessThan(3000);
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.message).toContain('JetStream stream "NOPE" does not exist on');
  });

  it('a subject outside the stream is a clear error naming the subject, the stream and its subjects', async () => {
    const p = provider({ url: server.url });
    const error = await rejection(
      p.subscribe(
        { subjects: ['invoices.new'], stream: { streamName: 'ORDERS', consumerName: 'wrong' } },
        () => undefined,
        () => undefined,
      ),
    );
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.message).toContain(
      'subject "invoices.new" is outside JetStream stream "ORDERS" (its subjects: "orders.>")',
    );
  });
});

describe('JetStream not enabled', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startNatsServer();
  }, 180_000);
  afterAll(async () => server?.stop());

  it('a stream subscription says JetStream is not available', async () => {
    const p = provider({ url: server.url });
    const error = await rejection(
      p.subscribe(
        { subjects: ['a'], stream: { streamName: 'S', consumerName: 'c' } },
        () => undefined,
        () => undefined,
      ),
    );
    expect(error.message).toContain('JetStream is not available on');
    expect(error.message).toContain('stream "S"');
  });
});

describe('authentication', () => {
  describe('token', () => {
    let server: NatsServer;
    beforeAll(async () => {
      server = await startNatsServer({ token: 's3cret' });
    }, 180_000);
    afterAll(async () => server?.stop());

    it('the right token connects and works', async () => {
      const p = provider({ url: server.url, authentication: { kind: 'token', token: 's3cret' } });
      const got = collector();
      await p.subscribe({ subjects: ['t'] }, got.onMessage, got.onError);
      await p.publish('t', encode('ok'));
      await eventually(() => got.messages.length === 1, 'the message arrived', 10_000);
      expect(p.status()).toEqual({ ready: true });
    });

    it('a wrong token is refused with an authorization error, and status says why', async () => {
      const p = provider({ url: server.url, authentication: { kind: 'token', token: 'wrong' } });
      const error = await rejection(p.connect());
      expect(error).toBeInstanceOf(ProviderError);
      expect(error.message).toMatch(
        /provider "default": cannot connect to nats:\/\/127\.0\.0\.1:\d+: .*authorization/i,
      );
      expect(p.status().ready).toMatch(/authentication settings/);
    });
  });

  describe('user and password', () => {
    let server: NatsServer;
    beforeAll(async () => {
      server = await startNatsServer({ user: 'router', password: 'pa55' });
    }, 180_000);
    afterAll(async () => server?.stop());

    it('the right user and password connect', async () => {
      const p = provider({
        url: server.url,
        authentication: { kind: 'user_info', username: 'router', password: 'pa55' },
      });
      await p.connect();
      expect(p.status()).toEqual({ ready: true });
    });

    it('a wrong password is refused', async () => {
      const p = provider({
        url: server.url,
        authentication: { kind: 'user_info', username: 'router', password: 'nope' },
      });
      expect((await rejection(p.connect())).message).toMatch(/authorization/i);
    });
  });
});

describe('server restart', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startNatsServer({ jetstream: true });
    const nc = await connect({ servers: server.url });
    await (await jetstreamManager(nc)).streams.add({ name: 'JOBS', subjects: ['jobs.>'] });
    await nc.close();
  }, 180_000);
  afterAll(async () => server?.stop());

  it('delivery continues after the server restarts, and status is not ready while it is down', async () => {
    const p = provider({ url: server.url });
    const core = collector();
    const durable = collector();
    await p.subscribe({ subjects: ['employeeUpdated.*'] }, core.onMessage, core.onError);
    await p.subscribe(
      { subjects: ['jobs.done'], stream: { streamName: 'JOBS', consumerName: 'router' } },
      durable.onMessage,
      durable.onError,
    );
    await p.publish('employeeUpdated.1', encode('before'));
    await p.publish('jobs.done', encode('before'));
    await eventually(
      () => core.messages.length === 1 && durable.messages.length === 1,
      'events before the restart',
      10_000,
    );

    const restarted = server.restart();
    await eventually(() => p.status().ready !== true, 'the provider noticed the outage', 10_000);
    expect(p.status().ready).toBe(`reconnecting to ${server.url}`);
    await restarted;
    await eventually(() => p.status().ready === true, 'the provider reconnected', 15_000);

    const nc = await peer(server);
    nc.publish('employeeUpdated.2', encode('after'));
    await nc.flush();
    await eventually(
      () => core.messages.length === 2,
      'the core subscription hears events after the restart',
      10_000,
    );
    await jetstream(nc).publish('jobs.done', encode('after'));
    await eventually(
      () => durable.messages.length === 2,
      'the durable consumer hears events after the restart',
      20_000,
    );

    expect(core.texts()).toEqual(['employeeUpdated.1=before', 'employeeUpdated.2=after']);
    expect(durable.texts()).toEqual(['jobs.done=before', 'jobs.done=after']);
    expect([...core.errors, ...durable.errors]).toEqual([]);
  }, 60_000);
});
