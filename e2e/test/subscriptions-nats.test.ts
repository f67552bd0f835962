/**
 * Event-driven subscriptions end to end: a real nats-server (JetStream on), the router, two HTTP
 * subgraphs that count their requests, and the graphql-ws and graphql-sse client libraries as
 * independent peers. Events are published straight to NATS, as a backend service would.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import type { Client } from 'graphql-ws';
import { createClient as createSseClient } from 'graphql-sse';
import WebSocket from 'ws';
import { subscribeNoDeadline as subscribe, wsClient as graphqlWsClient } from '../src/fixtures/clients.js';
import { startEventsGraph, type EventsGraph } from '../src/fixtures/events/index.js';
import { metricByPrefix } from '../src/fixtures/metrics.js';
import { eventually } from '../src/fixtures/wait.js';
import { startNatsServer, type NatsServer } from '../src/infra/nats.js';
import { startRouter, resolveRouterConfig, type RunningRouter } from '@edfs/router';

let nats: NatsServer;
let graph: EventsGraph;
let router: RunningRouter;
let publisher: NatsConnection;
const clients: Client[] = [];

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  graph = await startEventsGraph();
  publisher = await connect({ servers: nats.url });
  router = await startRouter(
    resolveRouterConfig({
      listen_addr: '127.0.0.1:0',
      execution_config: { file: { path: 'config.json' } },
      events: { providers: { nats: [{ id: 'default', url: nats.url }] } },
      telemetry: { metrics: { prometheus: { enabled: true, listen_addr: '127.0.0.1:0' } } },
      subscriptions: { send_buffer_limit: '64KB' },
      log_level: 'silent',
    }),
    { executionConfig: JSON.parse(graph.configJson) },
  );
}, 120_000);

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
  await eventually(
    async () => (await metric('router_engine_subscriptions')) === 0,
    'no subscriptions left',
    10_000,
  );
  await eventually(async () => (await metric('router_engine_triggers')) === 0, 'no triggers left', 10_000);
  graph.setMessagesDelay(0);
  graph.clearRequests();
});

afterAll(async () => {
  await router?.close();
  await publisher?.close();
  await graph?.close();
  await nats?.stop();
});

const wsClient = () => graphqlWsClient(router.url, { track: clients });
const metric = (name: string) => metricByPrefix(router.metricsUrl!, name);

const publish = (subject: string, event: unknown) => {
  publisher.publish(subject, typeof event === 'string' ? event : JSON.stringify(event));
  return publisher.flush();
};

/** Waits until the router holds `n` triggers, so a publish is not sent before the subscription exists. */
const triggers = (n: number) =>
  eventually(async () => (await metric('router_engine_triggers')) === n, `${n} triggers`, 10_000);

describe('chat messages over NATS: per room, over SSE, by wildcard', () => {
  it('a published event reaches the subscriber joined with fields from both subgraphs', async () => {
    const stream = subscribe(
      wsClient(),
      'subscription ($room: ID!) { messageAdded(roomID: $room) { id text user { name } } }',
      { room: '123' },
    );
    await triggers(1);
    graph.addMessage({ id: 'm5', text: 'Fresh off the press', roomID: '123', userID: '1' });
    await publish('room.123.messages', { __typename: 'Message', id: 'm5' });
    const [first] = await stream.next(1);
    expect(first).toEqual({
      data: { messageAdded: { id: 'm5', text: 'Fresh off the press', user: { name: 'Alice' } } },
    });
  });

  it('an event on another room does not reach the subscriber', async () => {
    const stream = subscribe(wsClient(), 'subscription { messageAdded(roomID: "123") { id } }');
    await triggers(1);
    await publish('room.456.messages', { __typename: 'Message', id: 'm4' });
    await publish('room.123.messages', { __typename: 'Message', id: 'm1' });
    const [first] = await stream.next(1);
    expect(first).toEqual({ data: { messageAdded: { id: 'm1' } } });
    expect(stream.results).toHaveLength(1);
  });

  it('the same subscription over SSE (graphql-sse client) gets the same result', async () => {
    const sse = createSseClient({ url: router.url, retryAttempts: 0 });
    const received: unknown[] = [];
    const done = new Promise<void>((resolve, reject) => {
      const dispose = sse.subscribe(
        { query: 'subscription { messageAdded(roomID: "123") { id text } }' },
        {
          next: (v) => {
            received.push(v);
            dispose();
            resolve();
          },
          error: reject,
          complete: () => undefined,
        },
      );
    });
    await triggers(1);
    await publish('room.123.messages', { __typename: 'Message', id: 'm2' });
    await done;
    expect(received).toEqual([
      { data: { messageAdded: { id: 'm2', text: 'Hi Alice' } }, extensions: { delivery: 'at-most-once' } },
    ]);
    sse.dispose();
  });

  it('a wildcard subject subscription receives events of every room', async () => {
    const stream = subscribe(wsClient(), 'subscription { anyRoom { id text } }');
    await triggers(1);
    await publish('room.123.messages', { __typename: 'Message', id: 'm1' });
    await publish('room.456.messages', { __typename: 'Message', id: 'm4' });
    expect(await stream.next(2)).toEqual([
      { data: { anyRoom: { id: 'm1', text: 'Hello, World!' } } },
      { data: { anyRoom: { id: 'm4', text: 'Another room' } } },
    ]);
  });
});

describe('request, publish, filtered and JetStream fields', () => {
  it('a request field sends the arguments and resolves the reply entity', async () => {
    const responder = publisher.subscribe('messages.get', {
      callback: (_err, msg) => {
        const args = JSON.parse(msg.string()) as { id: string };
        msg.respond(JSON.stringify({ __typename: 'Message', id: args.id }));
      },
    });
    const res = await fetch(router.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ messageFromEvent(id: "m3") { id text user { name } } }' }),
    });
    expect(await res.json()).toEqual({
      data: { messageFromEvent: { id: 'm3', text: 'Good to see you', user: { name: 'Carol' } } },
    });
    responder.unsubscribe();
  });

  it('a request with no responder is an error at the field, not a hang', async () => {
    const res = await fetch(router.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ messageFromEvent(id: "m3") { id } }' }),
    });
    const body = (await res.json()) as { data: unknown; errors: { message: string; path: string[] }[] };
    expect(body.data).toBeNull();
    expect(body.errors[0]!.path).toEqual(['messageFromEvent']);
    expect(body.errors[0]!.message).toMatch(/messages\.get/);
  });

  it('a publish mutation sends the JSON of all arguments to the rendered subject', async () => {
    const got = new Promise<string>((resolve) => {
      const sub = publisher.subscribe('room.789.messages', {
        max: 1,
        callback: (_err, msg) => {
          resolve(msg.string());
          sub.unsubscribe();
        },
      });
    });
    await publisher.flush();
    const res = await fetch(router.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'mutation { announce(roomID: "789", id: "m1") { success } }' }),
    });
    expect(await res.json()).toEqual({ data: { announce: { success: true } } });
    expect(JSON.parse(await got)).toEqual({ roomID: '789', id: 'm1' });
  });

  it('a filter passes only events whose id is in either list argument', async () => {
    const stream = subscribe(
      wsClient(),
      'subscription { messagesById(firstIds: ["m1"], secondIds: ["m3", "m4"]) { id } }',
    );
    await triggers(1);
    for (const id of ['m1', 'm2', 'm3', 'm4']) await publish('rooms.all', { __typename: 'Message', id });
    expect(await stream.next(3)).toEqual([
      { data: { messagesById: { id: 'm1' } } },
      { data: { messagesById: { id: 'm3' } } },
      { data: { messagesById: { id: 'm4' } } },
    ]);
  });

  it('a NOT filter drops the excluded id and resolves nothing for it', async () => {
    const stream = subscribe(wsClient(), 'subscription { messagesExcept(id: "m2") { id text } }');
    await triggers(1);
    for (const id of ['m2', 'm1']) await publish('rooms.all', { __typename: 'Message', id });
    expect(await stream.next(1)).toEqual([{ data: { messagesExcept: { id: 'm1', text: 'Hello, World!' } } }]);
    expect(graph.entityRequests('messages').flatMap((r) => r.variables.representations as unknown[])).toEqual(
      [{ __typename: 'Message', id: 'm1' }],
    );
  });

  it('a JetStream subscription reads from a durable consumer on the stream', async () => {
    const jsm = await jetstreamManager(publisher);
    await jsm.streams.add({ name: 'MESSAGES', subjects: ['stream.messages'] });
    const stream = subscribe(wsClient(), 'subscription { messageStream { id text } }');
    await triggers(1);
    await eventually(
      async () => (await jsm.consumers.list('MESSAGES').next()).length > 0,
      'the durable consumer',
      10_000,
    );
    await publish('stream.messages', { __typename: 'Message', id: 'm2' });
    expect(await stream.next(1)).toEqual([{ data: { messageStream: { id: 'm2', text: 'Hi Alice' } } }]);
  });

  it('a JetStream subscription on a missing stream ends with an error naming the stream', async () => {
    const client = wsClient();
    const stream = subscribe(client, 'subscription { missingStream { id } }');
    await eventually(() => stream.errors.length > 0 || stream.completed, 'the error', 10_000);
    expect(JSON.stringify(stream.errors)).toMatch(/NO_SUCH_STREAM/);
    await triggers(0);
  });
});

describe('shared work', () => {
  it('1,000 identical subscribers share one NATS subscription and one _entities request per event', async () => {
    // Ten connections of 100 subscriptions each (the default per-connection limit).
    const connections = Array.from({ length: 10 }, () => wsClient());
    const streams = Array.from({ length: 1000 }, (_, i) =>
      subscribe(
        connections[i % 10]!,
        'subscription { messageAdded(roomID: "123") { id text user { name } } }',
      ),
    );
    await eventually(
      async () => (await metric('router_engine_subscriptions')) === 1000,
      '1,000 subscriptions',
      10_000,
    );
    await triggers(1);
    const natsSubs = await natsSubscriptionCount('room.123.messages');
    expect(natsSubs).toBe(1);
    graph.clearRequests();
    await publish('room.123.messages', { __typename: 'Message', id: 'm1' });
    await Promise.all(streams.map((s) => s.next(1)));
    for (const s of streams)
      expect(s.results).toEqual([
        { data: { messageAdded: { id: 'm1', text: 'Hello, World!', user: { name: 'Alice' } } } },
      ]);
    expect(graph.entityRequests('messages')).toHaveLength(1);
    expect(graph.entityRequests('users')).toHaveLength(1);
  }, 60_000);

  it('subscribers with different selections on one subject share one trigger', async () => {
    const a = subscribe(wsClient(), 'subscription { messageAdded(roomID: "123") { id } }');
    const b = subscribe(wsClient(), 'subscription { messageAdded(roomID: "123") { text user { name } } }');
    await eventually(
      async () => (await metric('router_engine_subscriptions')) === 2,
      'two subscriptions',
      10_000,
    );
    expect(await metric('router_engine_triggers')).toBe(1);
    await publish('room.123.messages', { __typename: 'Message', id: 'm3' });
    expect(await a.next(1)).toEqual([{ data: { messageAdded: { id: 'm3' } } }]);
    expect(await b.next(1)).toEqual([
      { data: { messageAdded: { text: 'Good to see you', user: { name: 'Carol' } } } },
    ]);
  });

  it('unsubscribing the last client removes the trigger', async () => {
    const client = wsClient();
    const a = subscribe(client, 'subscription { messageAdded(roomID: "777") { id } }');
    const b = subscribe(client, 'subscription { messageAdded(roomID: "777") { id text } }');
    await triggers(1);
    a.stop();
    await eventually(
      async () => (await metric('router_engine_subscriptions')) === 1,
      'one subscription left',
      10_000,
    );
    expect(await metric('router_engine_triggers')).toBe(1);
    b.stop();
    await triggers(0);
    expect(await natsSubscriptionCount('room.777.messages')).toBe(0);
  });
});

describe('bad input', () => {
  it('a subject argument that would inject a wildcard is refused', async () => {
    for (const room of ['*', '>', 'a.b', '']) {
      const stream = subscribe(
        wsClient(),
        'subscription ($room: ID!) { messageAdded(roomID: $room) { id } }',
        { room },
      );
      await eventually(() => stream.errors.length > 0, `the error for ${JSON.stringify(room)}`, 10_000);
      expect(JSON.stringify(stream.errors)).toMatch(/roomID/);
    }
    expect(await metric('router_engine_triggers')).toBe(0);
  });

  it.each([
    ['not JSON', 'this is not json', /not valid JSON/, 'invalid_json'],
    ['no __typename', { id: 'm1' }, /__typename/, 'invalid_event'],
    ['a missing key field', { __typename: 'Message' }, /lacks the field "id"/, 'invalid_event'],
    [
      'a type the field cannot return',
      { __typename: 'User', id: '1' },
      /"User" is not a possible type/,
      'invalid_event',
    ],
  ])(
    'an event with %s yields an error to its subscribers and keeps the subscription',
    async (_what, event, message, reason) => {
      const before = await metric(`router_dropped_messages_total{reason="${reason}"}`);
      const stream = subscribe(wsClient(), 'subscription { messageAdded(roomID: "123") { id text } }');
      await triggers(1);
      await publish('room.123.messages', event);
      await publish('room.123.messages', { __typename: 'Message', id: 'm1' });
      const [bad, good] = await stream.next(2);
      expect(bad!.data).toBeNull();
      expect((bad!.errors as { message: string }[])[0]!.message).toMatch(message);
      expect(good).toEqual({ data: { messageAdded: { id: 'm1', text: 'Hello, World!' } } });
      expect(stream.completed).toBe(false);
      expect(await metric(`router_dropped_messages_total{reason="${reason}"}`)).toBe(before + 1);
    },
  );

  it('a slow consumer is cut off without affecting the others', async () => {
    // A raw socket that never reads: the router's send buffer for it fills up.
    const fast = subscribe(wsClient(), 'subscription { anyRoom { id text } }');
    const slow = new WebSocket(router.url.replace('http', 'ws'), 'graphql-transport-ws');
    const closed = new Promise<number>((resolve) => slow.on('close', (code) => resolve(code)));
    await new Promise((r) => slow.once('open', r));
    slow.send(JSON.stringify({ type: 'connection_init' }));
    await new Promise((r) => slow.once('message', r));
    slow.send(
      JSON.stringify({
        id: '1',
        type: 'subscribe',
        payload: { query: 'subscription { anyRoom { id text } }' },
      }),
    );
    await eventually(
      async () => (await metric('router_engine_subscriptions')) === 2,
      'two subscriptions',
      10_000,
    );
    (slow as unknown as { _socket: { pause(): void } })._socket.pause();
    const before = await metric('router_dropped_messages_total{reason="slow_consumer"}');
    const big = 'x'.repeat(64 * 1024);
    graph.addMessage({ id: 'big', text: big, roomID: '123', userID: '1' });
    // Far more than the socket buffers of the loopback connection can hold.
    const events = 200;
    for (let i = 0; i < events; i++) await publish('room.123.messages', { __typename: 'Message', id: 'big' });
    const results = await fast.next(events);
    expect(results.every((r) => (r.data as { anyRoom: { text: string } }).anyRoom.text === big)).toBe(true);
    (slow as unknown as { _socket: { resume(): void } })._socket.resume();
    expect(await closed).toBe(4503);
    expect(await metric('router_dropped_messages_total{reason="slow_consumer"}')).toBeGreaterThan(before);
  }, 60_000);
});

/** Subscriptions the NATS server holds for `subject` (its monitoring data, via $SYS-free connz). */
async function natsSubscriptionCount(subject: string): Promise<number> {
  return nats.subscriptionCount(subject);
}
