/**
 * The legacy `graphql-ws` subprotocol (subscriptions-transport-ws) end to end: Apollo's own
 * `SubscriptionClient` against the router for what a real client does, a raw socket for the
 * frames one by one and for what no well-behaved client sends, and the state machine alone with
 * a recording socket for hooks the router does not wire.
 */
import { describe, expect, it } from '@jest/globals';
import { SubscriptionClient } from 'subscriptions-transport-ws';
import { WebSocket } from 'ws';
import type { OperationService } from '../../src/subscriptions/service.js';
import type { ProtocolHooks } from '../../src/protocols/connection.js';
import {
  openSubscriptionsTransportWs,
  parseLegacyClientMessage,
} from '../../src/protocols/subscriptions-transport-ws.js';
import {
  capturingService,
  connections,
  messagesSent,
  NOT_A_SUBSCRIPTION,
  openStateMachine,
  publishUntilRefused,
  RawClient,
  sharedTestRouter,
  slowConsumerDrops,
  startTestRouter,
  TICKS,
  TOPIC,
  waitFor,
} from './harness.js';

const router = sharedTestRouter();

function legacyClient(url: string, connectionParams?: Record<string, unknown>): SubscriptionClient {
  return new SubscriptionClient(url, { reconnect: false, connectionParams }, WebSocket);
}

interface Outcome {
  results: unknown[];
  /** How the observable ended: `complete`, or the error the client reported. */
  ended: Promise<{ completed: true } | { error: unknown }>;
  unsubscribe(): void;
}

function subscribe(client: SubscriptionClient, query: string, variables?: Record<string, unknown>): Outcome {
  const results: unknown[] = [];
  let unsubscribe = () => {};
  const ended = new Promise<{ completed: true } | { error: unknown }>((resolve) => {
    const subscription = client.request({ query, variables }).subscribe({
      next: (result) => void results.push(result),
      error: (error: unknown) => resolve({ error }),
      complete: () => resolve({ completed: true }),
    });
    unsubscribe = () => subscription.unsubscribe();
  });
  return { results, ended, unsubscribe: () => unsubscribe() };
}

/** A raw `graphql-ws` socket that has sent `connection_init` and seen the ack. */
const legacyAcknowledged = (url: string) => RawClient.acknowledged(url, undefined, 'graphql-ws');

function start(client: RawClient, id: string, query: string, variables?: Record<string, unknown>): void {
  client.send({ id, type: 'start', payload: variables ? { query, variables } : { query } });
}

describe('graphql-ws (legacy) with the subscriptions-transport-ws client', () => {
  it('a subscription streams its results, then completes', async () => {
    const client = legacyClient(router.wsUrl);
    try {
      const outcome = subscribe(client, TICKS, { count: 3, intervalMs: 1 });
      expect(await outcome.ended).toEqual({ completed: true });
      expect(outcome.results).toEqual([{ data: { tick: 1 } }, { data: { tick: 2 } }, { data: { tick: 3 } }]);
    } finally {
      client.close();
    }
  });

  it('unsubscribing sends stop, which stops the operation in the service; the connection stays', async () => {
    const client = legacyClient(router.wsUrl);
    try {
      const before = router.operations.started.length;
      const outcome = subscribe(client, TICKS, { intervalMs: 2 });
      await waitFor(() => outcome.results.length >= 2, 'two results');
      outcome.unsubscribe();
      const op = router.operations.started[before]!;
      await waitFor(() => op.stopped, 'the operation to be stopped');
      expect(op.ended).toBe(false);

      const next = subscribe(client, TICKS, { count: 1 });
      expect(await next.ended).toEqual({ completed: true });
      expect(next.results).toEqual([{ data: { tick: 1 } }]);
    } finally {
      client.close();
    }
  });

  it('connection params reach the operation context; without header rules no upgrade header is kept', async () => {
    const client = legacyClient(router.wsUrl, { authorization: 'Bearer t0ken' });
    try {
      const before = router.operations.started.length;
      await subscribe(client, TICKS, { count: 1 }).ended;
      const { context } = router.operations.started[before]!;
      expect(context.connectionParams).toEqual({ authorization: 'Bearer t0ken' });
      expect(context.headers).toBeUndefined();
    } finally {
      client.close();
    }
  });

  it('a document the service refuses arrives as a result with its errors, then completes', async () => {
    const client = legacyClient(router.wsUrl);
    try {
      const refused = subscribe(client, '{ hello }');
      expect(await refused.ended).toEqual({ completed: true });
      expect(refused.results).toEqual([
        { errors: [{ message: NOT_A_SUBSCRIPTION, locations: [{ line: 1, column: 1 }] }] },
      ]);
    } finally {
      client.close();
    }
  });

  it('an operation that fails mid-stream ends with its errors as the last result', async () => {
    const client = legacyClient(router.wsUrl);
    try {
      const failing = subscribe(client, TICKS, { fail: 'broker gone' });
      expect(await failing.ended).toEqual({ completed: true });
      expect(failing.results).toEqual([{ data: { tick: 1 } }, { errors: [{ message: 'broker gone' }] }]);
    } finally {
      client.close();
    }
  });

  it('closing the client sends stop and connection_terminate: the server stops the operations and closes', async () => {
    const fresh = await startTestRouter();
    const client = legacyClient(fresh.wsUrl);
    try {
      const outcome = subscribe(client, TICKS, { intervalMs: 2 });
      await waitFor(() => outcome.results.length >= 1, 'a first result');
      expect(await connections(fresh.metrics)).toBe(1);
      client.close();
      await waitFor(() => fresh.operations.active() === 0, 'the operation to be stopped');
      await waitFor(async () => (await connections(fresh.metrics)) === 0, 'the connection to close');
    } finally {
      client.close();
      await fresh.close();
    }
  });

  it('with websocket.keepalive_interval the client gets ka messages and keeps its connection', async () => {
    const pinging = await startTestRouter('websocket: { keepalive_interval: 20ms }');
    // The client closes a connection that goes `timeout` ms without a ka after the first one.
    const client = new SubscriptionClient(pinging.wsUrl, { reconnect: false, timeout: 200 }, WebSocket);
    let disconnected = false;
    client.onDisconnected(() => (disconnected = true));
    // The client handles ka itself; its socket shows them.
    let keepAlives = 0;
    (client as unknown as { client: WebSocket }).client.on('message', (data) => {
      if ((JSON.parse(String(data)) as { type: string }).type === 'ka') keepAlives++;
    });
    try {
      const outcome = subscribe(client, TOPIC, { topic: 'later' });
      await waitFor(() => pinging.operations.subscribers('later') === 1, 'the subscriber');
      await new Promise((resolve) => setTimeout(resolve, 700));
      expect(keepAlives).toBeGreaterThanOrEqual(10);
      expect(disconnected).toBe(false);
      pinging.operations.publish('later', '{"data":{"news":"still here"}}');
      await waitFor(() => outcome.results.length === 1, 'the result');
      expect(outcome.results).toEqual([{ data: { news: 'still here' } }]);
    } finally {
      client.close();
      await pinging.close();
    }
  });
});

describe('graphql-ws (legacy) frames, one by one', () => {
  it('data frames carry the id and the payload as the service serialized it; complete ends them', async () => {
    const client = await legacyAcknowledged(router.wsUrl);
    try {
      start(client, 'a "quoted" id', TICKS, { count: 1 });
      await client.next((m) => m.type === 'complete');
      expect(client.received).toEqual([
        { type: 'connection_ack' },
        { type: 'data', id: 'a "quoted" id', payload: { data: { tick: 1 } } },
        { type: 'complete', id: 'a "quoted" id' },
      ]);
    } finally {
      await client.close();
    }
  });

  it('ka comes right after the ack, then every websocket.keepalive_interval', async () => {
    const pinging = await startTestRouter('websocket: { keepalive_interval: 30ms }');
    try {
      const client = await legacyAcknowledged(pinging.wsUrl);
      await waitFor(() => client.received.filter((m) => m.type === 'ka').length >= 3, 'three ka messages');
      expect(client.received[0]).toEqual({ type: 'connection_ack' });
      expect(client.received[1]).toEqual({ type: 'ka' });
      expect(client.received.slice(1).every((m) => m.type === 'ka')).toBe(true);
      await client.close();
    } finally {
      await pinging.close();
    }
  });

  it('no ka messages by default (websocket.keepalive_interval: 0s)', async () => {
    const client = await legacyAcknowledged(router.wsUrl);
    try {
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(client.received).toEqual([{ type: 'connection_ack' }]);
    } finally {
      await client.close();
    }
  });

  it('connection_terminate closes the socket and stops its operations', async () => {
    const client = await legacyAcknowledged(router.wsUrl);
    const before = router.operations.started.length;
    start(client, '1', TICKS, { intervalMs: 5 });
    await client.next((m) => m.type === 'data');
    client.send({ type: 'connection_terminate' });
    expect(await client.closed).toEqual({ code: 1000, reason: 'Connection terminated by the client' });
    await waitFor(() => router.operations.started[before]!.stopped, 'the operation to stop');
  });

  it('a frame that is not JSON gets connection_error; the connection stays usable', async () => {
    const client = await legacyAcknowledged(router.wsUrl);
    try {
      client.send('{"type": "start"');
      const error = await client.next((m) => m.type === 'connection_error');
      expect(error).toEqual({
        type: 'connection_error',
        payload: { message: expect.stringMatching(/^Invalid message: not valid JSON \(/) },
      });
      start(client, '1', TICKS, { count: 1 });
      expect(await client.next((m) => m.type === 'data')).toEqual({
        type: 'data',
        id: '1',
        payload: { data: { tick: 1 } },
      });
      expect(client.ws.readyState).toBe(WebSocket.OPEN);
    } finally {
      await client.close();
    }
  });

  it('a message of an unknown type gets an error for its id, naming the type', async () => {
    const client = await legacyAcknowledged(router.wsUrl);
    try {
      // A graphql-transport-ws message on a graphql-ws socket.
      client.send({ id: '7', type: 'subscribe', payload: { query: TICKS } });
      expect(await client.next((m) => m.type === 'error')).toEqual({
        type: 'error',
        id: '7',
        payload: {
          message:
            'Invalid message type! Got "subscribe"; a client sends connection_init, start, stop or connection_terminate.',
        },
      });
      expect(client.ws.readyState).toBe(WebSocket.OPEN);
    } finally {
      await client.close();
    }
  });

  it('a start without a query gets an error for its id, naming the field', async () => {
    const client = await legacyAcknowledged(router.wsUrl);
    try {
      const before = router.operations.started.length;
      client.send({ id: '1', type: 'start', payload: { variables: {} } });
      expect(await client.next((m) => m.type === 'error')).toEqual({
        type: 'error',
        id: '1',
        payload: { message: '"start" payload.query must be a string, got undefined' },
      });
      expect(router.operations.started.length).toBe(before);
    } finally {
      await client.close();
    }
  });

  it('a start reusing an active id stops the old operation without a complete and runs the new one', async () => {
    const client = await legacyAcknowledged(router.wsUrl);
    try {
      const before = router.operations.started.length;
      start(client, 'dup', TICKS, { intervalMs: 2 });
      await client.next((m) => m.type === 'data');
      start(client, 'dup', TICKS, { count: 1, intervalMs: 20 });
      await waitFor(() => router.operations.started[before]!.stopped, 'the first operation to stop');
      await client.next((m) => m.type === 'complete');
      expect(client.received.filter((m) => m.type === 'complete')).toHaveLength(1);
      expect(router.operations.started[before + 1]!.ended).toBe(true);
      expect(client.ws.readyState).toBe(WebSocket.OPEN);
    } finally {
      await client.close();
    }
  });

  it('a stop for an id that is not active is ignored', async () => {
    const client = await legacyAcknowledged(router.wsUrl);
    try {
      client.send({ id: 'never-used', type: 'stop' });
      start(client, '1', TICKS, { count: 1 });
      await client.next((m) => m.type === 'complete');
      expect(client.received.some((m) => m.type === 'error')).toBe(false);
    } finally {
      await client.close();
    }
  });

  it('a start sent right behind connection_init, before the ack, runs once acknowledged', async () => {
    const client = await RawClient.connect(router.wsUrl, 'graphql-ws');
    try {
      client.send({ type: 'connection_init' });
      start(client, '1', TICKS, { count: 1 });
      await client.next((m) => m.type === 'complete');
      expect(client.received.map((m) => m.type)).toEqual(['connection_ack', 'data', 'complete']);
    } finally {
      await client.close();
    }
  });

  it('no connection_init within websocket.connection_init_timeout closes with 4408, held starts never ran', async () => {
    const quick = await startTestRouter('websocket: { connection_init_timeout: 50ms }');
    try {
      const client = await RawClient.connect(quick.wsUrl, 'graphql-ws');
      start(client, '1', TICKS);
      expect(await client.closed).toEqual({ code: 4408, reason: 'Connection initialisation timeout' });
      expect(quick.operations.started).toHaveLength(0);
    } finally {
      await quick.close();
    }
  });

  it('a repeated connection_init is acknowledged again', async () => {
    const client = await legacyAcknowledged(router.wsUrl);
    try {
      client.send({ type: 'connection_init' });
      await waitFor(
        () => client.received.filter((m) => m.type === 'connection_ack').length === 2,
        'a second ack',
      );
      expect(client.ws.readyState).toBe(WebSocket.OPEN);
    } finally {
      await client.close();
    }
  });
});

describe('graphql-ws (legacy) limits and negotiation', () => {
  it('operations beyond websocket.max_subscriptions_per_connection get an error; the connection stays', async () => {
    const limited = await startTestRouter('websocket: { max_subscriptions_per_connection: 2 }');
    const client = await legacyAcknowledged(limited.wsUrl);
    try {
      start(client, '1', TICKS, { intervalMs: 5 });
      start(client, '2', TICKS, { intervalMs: 5 });
      start(client, '3', TICKS, { intervalMs: 5 });
      expect(await client.next((m) => m.type === 'error')).toEqual({
        type: 'error',
        id: '3',
        payload: {
          message:
            'Too many operations on this connection: at most 2 may be active at once (websocket.max_subscriptions_per_connection).',
        },
      });
      expect(limited.operations.started).toHaveLength(2);
      client.send({ id: '1', type: 'stop' });
      start(client, '3', TICKS, { count: 1 });
      expect(await client.next((m) => m.id === '3' && m.type === 'data')).toMatchObject({
        payload: { data: { tick: 1 } },
      });
    } finally {
      await client.close();
      await limited.close();
    }
  });

  it('a client offering both subprotocols gets graphql-transport-ws, in either order', async () => {
    for (const offer of [
      ['graphql-ws', 'graphql-transport-ws'],
      ['graphql-transport-ws', 'graphql-ws'],
    ]) {
      const ws = new WebSocket(router.wsUrl, offer);
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      expect(ws.protocol).toBe('graphql-transport-ws');
      ws.close();
    }
    const legacy = await RawClient.connect(router.wsUrl, 'graphql-ws');
    expect(legacy.ws.protocol).toBe('graphql-ws');
    await legacy.close();
  });

  it('data messages are counted as sent, and connections while open', async () => {
    const fresh = await startTestRouter();
    try {
      const client = await legacyAcknowledged(fresh.wsUrl);
      expect(await connections(fresh.metrics)).toBe(1);
      start(client, '1', TICKS, { count: 3, intervalMs: 1 });
      await client.next((m) => m.type === 'complete');
      expect(await messagesSent(fresh.metrics)).toBe(3);
      await client.close();
      await waitFor(async () => (await connections(fresh.metrics)) === 0, 'the gauge to return to 0');
    } finally {
      await fresh.close();
    }
  });

  it('a slow consumer is closed with 4503 and counted while another client of the same stream keeps receiving', async () => {
    const limited = await startTestRouter('subscriptions: { send_buffer_limit: 64KiB }');
    const slow = await legacyAcknowledged(limited.wsUrl);
    const fast = legacyClient(limited.wsUrl);
    try {
      start(slow, 's', TOPIC, { topic: 'news' });
      await waitFor(() => limited.operations.subscribers('news') === 1, 'the slow subscriber');
      const slowOp = limited.operations.started[0]!;
      const fastOutcome = subscribe(fast, TOPIC, { topic: 'news' });
      await waitFor(() => limited.operations.subscribers('news') === 2, 'both subscribers');

      // The slow client stops reading: the kernel buffers fill, then the router's send buffer.
      slow.ws.pause();
      const published = await publishUntilRefused(limited, 'news', slowOp, () => fastOutcome.results.length);
      expect(slowOp.refused).toBe(true);
      expect(await slowConsumerDrops(limited.metrics)).toBe(1);

      limited.operations.publish('news', '{"data":{"news":"after"}}');
      await waitFor(
        () => fastOutcome.results.length === published + 1,
        'the fast client to get the next result',
      );
      expect(fastOutcome.results.at(-1)).toEqual({ data: { news: 'after' } });

      slow.ws.resume();
      expect(await slow.closed).toEqual({
        code: 4503,
        reason: 'slow consumer: send buffer over 65536 bytes',
      });
    } finally {
      fast.close();
      slow.ws.terminate();
      await limited.close();
    }
  });

  it('closing the router closes every legacy socket with 1001 and stops their operations', async () => {
    const fresh = await startTestRouter();
    const client = await legacyAcknowledged(fresh.wsUrl);
    start(client, '1', TICKS, { intervalMs: 5 });
    await client.next((m) => m.type === 'data');
    await fresh.close();
    expect(await client.closed).toEqual({ code: 1001, reason: 'server shutting down' });
    expect(fresh.operations.active()).toBe(0);
  });
});

const openMachine = (service: OperationService, hooks: Partial<ProtocolHooks> = {}) =>
  openStateMachine(openSubscriptionsTransportWs, service, hooks);

describe('graphql-ws (legacy) state machine', () => {
  it('an init refused by onConnect gets connection_error "Prohibited connection!" and closes with 1011', () => {
    const { socket, connection } = openMachine(capturingService().service, { onConnect: () => false });
    connection.receive('{"type":"connection_init"}');
    expect(socket.sent).toEqual([
      { type: 'connection_error', payload: { message: 'Prohibited connection!' } },
    ]);
    expect(socket.closedWith).toEqual({ code: 1011, reason: 'Prohibited connection!' });
  });

  it('starts wait for an async onConnect, and run in order once it acknowledges', async () => {
    const { service, sinks } = capturingService();
    let allow: (value: Record<string, unknown>) => void = () => {};
    const { socket, connection } = openMachine(service, {
      onConnect: () => new Promise((resolve) => (allow = resolve)),
    });
    connection.receive('{"type":"connection_init","payload":{"token":"t"}}');
    connection.receive(JSON.stringify({ id: 'a', type: 'start', payload: { query: TICKS } }));
    connection.receive(JSON.stringify({ id: 'b', type: 'start', payload: { query: TICKS } }));
    connection.receive(JSON.stringify({ id: 'b', type: 'stop' }));
    expect(sinks).toHaveLength(0);
    allow({ region: 'eu' });
    await new Promise((resolve) => setImmediate(resolve));
    expect(socket.sent).toEqual([{ type: 'connection_ack', payload: { region: 'eu' } }]);
    expect(sinks).toHaveLength(1);
    sinks[0]!.next('{"data":{"tick":1}}');
    expect(socket.sent.at(-1)).toEqual({ type: 'data', id: 'a', payload: { data: { tick: 1 } } });
  });

  it('a connection_init whose payload is not an object gets connection_error and closes', () => {
    const { socket, connection } = openMachine(capturingService().service);
    connection.receive('{"type":"connection_init","payload":"token"}');
    expect(socket.sent).toEqual([
      {
        type: 'connection_error',
        payload: {
          message: '"connection_init" payload must be an object (the connection params), got string',
        },
      },
    ]);
    expect(socket.closedWith?.code).toBe(1011);
  });

  it('parses numeric ids as the library does, and echoes them as numbers', () => {
    expect(
      parseLegacyClientMessage('{"id":1,"type":"start","payload":{"query":"subscription { a }"}}'),
    ).toEqual({
      ok: true,
      message: { type: 'start', id: 1, payload: { query: 'subscription { a }', operationName: null } },
    });
    const { service, sinks } = capturingService();
    const { socket, connection } = openMachine(service);
    connection.receive('{"type":"connection_init"}');
    connection.receive('{"id":1,"type":"start","payload":{"query":"subscription { a }"}}');
    sinks[0]!.complete();
    expect(socket.sent.at(-1)).toEqual({ type: 'complete', id: 1 });
  });

  it('a JSON value that is not an object gets connection_error naming its type', () => {
    expect(parseLegacyClientMessage('42')).toEqual({
      ok: false,
      kind: 'connection_error',
      message: 'Invalid message: expected a JSON object, got number',
    });
  });
});
