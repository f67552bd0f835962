import { describe, expect, it } from '@jest/globals';
import { createClient, type Client } from 'graphql-ws';
import { WebSocket } from 'ws';
import {
  collect,
  connections,
  messagesSent,
  NOT_A_SUBSCRIPTION,
  publishUntilRefused,
  RawClient,
  refusedUpgrade,
  sharedTestRouter,
  slowConsumerDrops,
  startTestRouter,
  TICKS,
  TOPIC,
  waitFor,
} from './harness.js';

const router = sharedTestRouter();

function graphqlWsClient(url: string, connectionParams?: Record<string, unknown>): Client {
  return createClient({ url, webSocketImpl: WebSocket, retryAttempts: 0, connectionParams });
}

describe('graphql-transport-ws with the graphql-ws client', () => {
  it('a subscription streams its results, then completes', async () => {
    const client = graphqlWsClient(router.wsUrl);
    try {
      const results = [];
      for await (const result of client.iterate({ query: TICKS, variables: { count: 3, intervalMs: 1 } }))
        results.push(result);
      expect(results).toEqual([{ data: { tick: 1 } }, { data: { tick: 2 } }, { data: { tick: 3 } }]);
    } finally {
      await client.dispose();
    }
  });

  it('the client completing a subscription stops the operation in the service', async () => {
    const client = graphqlWsClient(router.wsUrl);
    try {
      const before = router.operations.started.length;
      const results = await collect(client.iterate({ query: TICKS, variables: { intervalMs: 2 } }), 2);
      expect(results).toEqual([{ data: { tick: 1 } }, { data: { tick: 2 } }]);
      const op = router.operations.started[before]!;
      await waitFor(() => op.stopped, 'the operation to be stopped');
      expect(op.ended).toBe(false);
    } finally {
      await client.dispose();
    }
  });

  it('connection params reach the operation context; without header rules no upgrade header is kept', async () => {
    const client = graphqlWsClient(router.wsUrl, { authorization: 'Bearer t0ken' });
    try {
      const before = router.operations.started.length;
      await collect(client.iterate({ query: TICKS, variables: { count: 1 } }), 1);
      const { context } = router.operations.started[before]!;
      expect(context.connectionParams).toEqual({ authorization: 'Bearer t0ken' });
      expect(context.headers).toBeUndefined();
    } finally {
      await client.dispose();
    }
  });

  it('a connection keeps exactly the upgrade headers the header rules read', async () => {
    const ruled = await startTestRouter(
      'headers: { all: { request: [ { op: propagate, named: X-Tenant }, { op: propagate, matching: "^x-trace-" } ] } }',
    );
    try {
      const before = ruled.operations.started.length;
      const client = await RawClient.acknowledged(ruled.wsUrl, undefined, 'graphql-transport-ws', {
        'x-tenant': 't1',
        'x-trace-id': 'abc',
        cookie: 'session=secret',
        'user-agent': 'test',
      });
      client.send({ id: '1', type: 'subscribe', payload: { query: TICKS, variables: { count: 1 } } });
      await client.next((m) => m.type === 'complete');
      expect(ruled.operations.started[before]!.context.headers).toEqual({
        'x-tenant': 't1',
        'x-trace-id': 'abc',
      });
      await client.close();
    } finally {
      await ruled.close();
    }
  });

  it('a document the service refuses is an error for that subscription; the connection stays', async () => {
    const client = graphqlWsClient(router.wsUrl);
    try {
      await expect(collect(client.iterate({ query: '{ hello }' }), 1)).rejects.toEqual([
        { message: NOT_A_SUBSCRIPTION, locations: [{ line: 1, column: 1 }] },
      ]);
      expect(await collect(client.iterate({ query: TICKS, variables: { count: 1 } }), 1)).toEqual([
        { data: { tick: 1 } },
      ]);
    } finally {
      await client.dispose();
    }
  });

  it('an operation that fails mid-stream ends with its errors', async () => {
    const client = graphqlWsClient(router.wsUrl);
    try {
      const received: unknown[] = [];
      await expect(
        (async () => {
          for await (const result of client.iterate({ query: TICKS, variables: { fail: 'broker gone' } }))
            received.push(result);
        })(),
      ).rejects.toEqual([{ message: 'broker gone' }]);
      expect(received).toEqual([{ data: { tick: 1 } }]);
    } finally {
      await client.dispose();
    }
  });
});

describe('graphql-transport-ws frames, one by one', () => {
  it('next frames carry the id and the payload as the service serialized it', async () => {
    const client = await RawClient.acknowledged(router.wsUrl);
    try {
      client.subscribe('a "quoted" id', TICKS, { count: 1 });
      await client.next((m) => m.type === 'complete');
      expect(client.received).toEqual([
        { type: 'connection_ack' },
        { id: 'a "quoted" id', type: 'next', payload: { data: { tick: 1 } } },
        { id: 'a "quoted" id', type: 'complete' },
      ]);
    } finally {
      await client.close();
    }
  });

  it('a validation error is an error message, after which the id can be used again', async () => {
    const client = await RawClient.acknowledged(router.wsUrl);
    try {
      client.subscribe('1', '{ hello }');
      expect(await client.next((m) => m.type === 'error')).toEqual({
        id: '1',
        type: 'error',
        payload: [{ message: NOT_A_SUBSCRIPTION, locations: [{ line: 1, column: 1 }] }],
      });
      client.subscribe('1', TICKS, { count: 1 });
      expect(await client.next((m) => m.type === 'next')).toEqual({
        id: '1',
        type: 'next',
        payload: { data: { tick: 1 } },
      });
      await client.next((m) => m.type === 'complete');
      expect(client.ws.readyState).toBe(WebSocket.OPEN);
    } finally {
      await client.close();
    }
  });

  it('ping is answered with pong, echoing its payload; an unsolicited pong is fine', async () => {
    const client = await RawClient.acknowledged(router.wsUrl);
    try {
      client.send({ type: 'pong' });
      client.send({ type: 'ping', payload: { at: 42 } });
      expect(await client.next((m) => m.type === 'pong')).toEqual({ type: 'pong', payload: { at: 42 } });
      client.send({ type: 'ping' });
      await waitFor(() => client.received.filter((m) => m.type === 'pong').length === 2, 'a second pong');
      expect(client.received.at(-1)).toEqual({ type: 'pong' });
    } finally {
      await client.close();
    }
  });

  it('a complete for an id that is not active is ignored', async () => {
    const client = await RawClient.acknowledged(router.wsUrl);
    try {
      client.send({ id: 'never-used', type: 'complete' });
      client.send({ type: 'ping' });
      await client.next((m) => m.type === 'pong');
      expect(client.ws.readyState).toBe(WebSocket.OPEN);
    } finally {
      await client.close();
    }
  });
});

describe('graphql-transport-ws close codes', () => {
  it('invalid JSON closes with 4400', async () => {
    const client = await RawClient.connect(router.wsUrl);
    client.send('{"type": "connection_init"');
    expect(await client.closed).toEqual({ code: 4400, reason: 'Invalid message: not valid JSON' });
  });

  it('an unknown message type closes with 4400 naming the type', async () => {
    const client = await RawClient.connect(router.wsUrl);
    client.send({ type: 'start', id: '1', payload: { query: TICKS } });
    expect(await client.closed).toEqual({ code: 4400, reason: 'Invalid message: unknown type "start"' });
  });

  it('a subscribe without a query closes with 4400 naming the field', async () => {
    const client = await RawClient.acknowledged(router.wsUrl);
    client.send({ id: '1', type: 'subscribe', payload: { variables: {} } });
    expect(await client.closed).toEqual({
      code: 4400,
      reason: 'Invalid message: "subscribe" payload.query must be a string, got undefined',
    });
  });

  it('a message only servers send closes with 4400', async () => {
    const client = await RawClient.acknowledged(router.wsUrl);
    client.send({ id: '1', type: 'next', payload: { data: {} } });
    expect(await client.closed).toEqual({
      code: 4400,
      reason: 'Invalid message: "next" is sent by servers, not clients',
    });
  });

  it('subscribe before the connection is acknowledged closes with 4401', async () => {
    const client = await RawClient.connect(router.wsUrl);
    const before = router.operations.started.length;
    client.subscribe('1', TICKS);
    expect(await client.closed).toEqual({ code: 4401, reason: 'Unauthorized' });
    expect(router.operations.started.length).toBe(before);
  });

  it('no connection_init within websocket.connection_init_timeout closes with 4408', async () => {
    const quick = await startTestRouter('websocket: { connection_init_timeout: 50ms }');
    try {
      const client = await RawClient.connect(quick.wsUrl);
      expect(await client.closed).toEqual({ code: 4408, reason: 'Connection initialisation timeout' });
    } finally {
      await quick.close();
    }
  });

  it('a second subscribe with an id that is still active closes with 4409 and stops its operations', async () => {
    const client = await RawClient.acknowledged(router.wsUrl);
    const before = router.operations.started.length;
    client.subscribe('dup', TICKS, { intervalMs: 2 });
    await client.next((m) => m.type === 'next');
    client.subscribe('dup', TICKS);
    expect(await client.closed).toEqual({ code: 4409, reason: 'Subscriber for dup already exists' });
    expect(router.operations.started.length).toBe(before + 1);
    await waitFor(() => router.operations.started[before]!.stopped, 'the first operation to stop');
  });

  it('a second connection_init closes with 4429', async () => {
    const client = await RawClient.acknowledged(router.wsUrl);
    client.send({ type: 'connection_init' });
    expect(await client.closed).toEqual({ code: 4429, reason: 'Too many initialisation requests' });
  });

  it('a socket without a subprotocol is closed with 1002', async () => {
    const client = await RawClient.connect(router.wsUrl, null);
    const closed = await client.closed;
    expect(closed.code).toBe(1002);
    expect(closed.reason).toMatch(/^unsupported subprotocol/);
  });

  it('a client offering only unsupported subprotocols gets none, and its handshake fails', async () => {
    // subscriptions-transport-ws's pre-2017 protocol, which the router does not speak.
    await expect(RawClient.connect(router.wsUrl, 'graphql-subscriptions')).rejects.toThrow(
      'Server sent no subprotocol',
    );
  });
});

describe('WebSocket limits', () => {
  it('operations beyond websocket.max_subscriptions_per_connection get an error; the connection stays', async () => {
    const limited = await startTestRouter('websocket: { max_subscriptions_per_connection: 2 }');
    const client = await RawClient.acknowledged(limited.wsUrl);
    try {
      client.subscribe('1', TICKS, { intervalMs: 5 });
      client.subscribe('2', TICKS, { intervalMs: 5 });
      client.subscribe('3', TICKS, { intervalMs: 5 });
      expect(await client.next((m) => m.type === 'error')).toEqual({
        id: '3',
        type: 'error',
        payload: [
          {
            message:
              'Too many operations on this connection: at most 2 may be active at once (websocket.max_subscriptions_per_connection).',
          },
        ],
      });
      expect(limited.operations.started).toHaveLength(2);

      client.send({ id: '1', type: 'complete' });
      client.subscribe('3', TICKS, { count: 1 });
      expect(await client.next((m) => m.id === '3' && m.type === 'next')).toMatchObject({
        payload: { data: { tick: 1 } },
      });
    } finally {
      await client.close();
      await limited.close();
    }
  });

  it('a frame over websocket.max_frame_size closes the socket with 1009', async () => {
    const limited = await startTestRouter('websocket: { max_frame_size: 1KiB }');
    try {
      const client = await RawClient.acknowledged(limited.wsUrl);
      client.subscribe('1', `subscription { tick } # ${'x'.repeat(2048)}`);
      expect((await client.closed).code).toBe(1009);
      expect(limited.operations.started).toHaveLength(0);
    } finally {
      await limited.close();
    }
  });

  it('upgrades beyond websocket.max_connections are refused with 503 until a connection closes', async () => {
    const limited = await startTestRouter('websocket: { max_connections: 2 }');
    try {
      const first = await RawClient.connect(limited.wsUrl);
      const second = await RawClient.connect(limited.wsUrl);
      const refused = await refusedUpgrade(limited.wsUrl, 'graphql-transport-ws');
      expect(refused).toEqual({
        status: 503,
        body: 'Too many WebSocket connections (websocket.max_connections: 2).\n',
      });
      await first.close();
      await waitFor(async () => (await connections(limited.metrics)) === 1, 'the first connection to close');
      const third = await RawClient.acknowledged(limited.wsUrl);
      await third.close();
      await second.close();
    } finally {
      await limited.close();
    }
  });

  it('upgrades on another path are refused with 404', async () => {
    const refused = await refusedUpgrade(router.wsUrl.replace(/\/graphql$/, '/elsewhere'));
    expect(refused.status).toBe(404);
  });

  it('a slow consumer is closed with 4503 while another client of the same stream keeps receiving', async () => {
    const limited = await startTestRouter('subscriptions: { send_buffer_limit: 64KiB }');
    const fast = graphqlWsClient(limited.wsUrl, { name: 'fast' });
    const slow = await RawClient.acknowledged(limited.wsUrl);
    try {
      slow.subscribe('s', TOPIC, { topic: 'news' });
      const fastResults: unknown[] = [];
      const fastDone = (async () => {
        for await (const result of fast.iterate({ query: TOPIC, variables: { topic: 'news' } }))
          fastResults.push(result);
      })();
      await waitFor(() => limited.operations.subscribers('news') === 2, 'both subscribers');
      const slowOp = limited.operations.started.find((op) => op.context.connectionParams === undefined)!;

      // The slow client stops reading: the kernel buffers fill, then the router's send buffer.
      slow.ws.pause();
      const published = await publishUntilRefused(limited, 'news', slowOp, () => fastResults.length);
      expect(slowOp.refused).toBe(true);
      expect(await slowConsumerDrops(limited.metrics)).toBe(1);

      // The other client still gets new results.
      limited.operations.publish('news', '{"data":{"news":"after"}}');
      await waitFor(() => fastResults.length === published + 1, 'the fast client to get the next result');
      expect(fastResults.at(-1)).toEqual({ data: { news: 'after' } });

      slow.ws.resume();
      expect(await slow.closed).toEqual({
        code: 4503,
        reason: 'slow consumer: send buffer over 65536 bytes',
      });
      await fast.dispose();
      await fastDone.catch(() => undefined);
    } finally {
      await fast.dispose();
      slow.ws.terminate();
      await limited.close();
    }
  });
});

describe('WebSocket connections and metrics', () => {
  it('connections are counted while open, results are counted as sent, and the gauge returns to 0', async () => {
    const fresh = await startTestRouter();
    try {
      const a = await RawClient.acknowledged(fresh.wsUrl);
      const b = await RawClient.acknowledged(fresh.wsUrl);
      const unsupported = await RawClient.connect(fresh.wsUrl, null);
      await unsupported.closed;
      expect(await connections(fresh.metrics)).toBe(2);
      a.subscribe('1', TICKS, { count: 3, intervalMs: 1 });
      await a.next((m) => m.type === 'complete');
      expect(await messagesSent(fresh.metrics)).toBe(3);
      await a.close();
      b.ws.terminate();
      await b.closed;
      await waitFor(async () => (await connections(fresh.metrics)) === 0, 'the gauge to return to 0');
    } finally {
      await fresh.close();
    }
  });

  it('closing the router closes every socket with 1001 and stops their operations', async () => {
    const fresh = await startTestRouter();
    const client = await RawClient.acknowledged(fresh.wsUrl);
    client.subscribe('1', TICKS, { intervalMs: 5 });
    await client.next((m) => m.type === 'next');
    await fresh.close();
    expect(await client.closed).toEqual({ code: 1001, reason: 'server shutting down' });
    expect(fresh.operations.active()).toBe(0);
    expect(await connections(fresh.metrics)).toBe(0);
  });
});

describe('server keepalive (websocket.keepalive_interval)', () => {
  it('the server pings; a client that answers stays, one that does not is closed with 4504', async () => {
    const pinging = await startTestRouter('websocket: { keepalive_interval: 100ms }');
    try {
      const answering = await RawClient.acknowledged(pinging.wsUrl);
      answering.ws.on('message', (data) => {
        if (JSON.parse(String(data)).type === 'ping') answering.send({ type: 'pong' });
      });
      const silent = await RawClient.acknowledged(pinging.wsUrl);
      await silent.next((m) => m.type === 'ping');
      expect(await silent.closed).toEqual({ code: 4504, reason: 'Keepalive timeout: no pong within 100ms' });
      await waitFor(
        () => answering.received.filter((m) => m.type === 'ping').length >= 3,
        'three pings to the answering client',
      );
      expect(answering.ws.readyState).toBe(WebSocket.OPEN);
      await answering.close();
    } finally {
      await pinging.close();
    }
  });
});

describe('WebSocket heartbeat (websocket.ping_interval)', () => {
  it('pings every socket; one that answers stays, a dead peer that never answers is dropped', async () => {
    const router = await startTestRouter('websocket: { ping_interval: 100ms }');
    try {
      const alive = await RawClient.acknowledged(router.wsUrl);
      let pings = 0;
      alive.ws.on('ping', () => pings++);
      const dead = await RawClient.connect(router.wsUrl, 'graphql-transport-ws', { autoPong: false });
      dead.send({ type: 'connection_init' });
      // Terminated, not closed: a peer that does not answer pings would not answer a close either.
      expect((await dead.closed).code).toBe(1006);
      await waitFor(() => pings >= 3, 'three pings answered');
      expect(alive.ws.readyState).toBe(WebSocket.OPEN);
      await waitFor(async () => (await connections(router.metrics)) === 1, 'the dead connection uncounted');
      await alive.close();
    } finally {
      await router.close();
    }
  });

  it('is off with 0: a peer that never answers pings is not dropped for it', async () => {
    const router = await startTestRouter('websocket: { ping_interval: 0s }');
    try {
      const quiet = await RawClient.connect(router.wsUrl, 'graphql-transport-ws', { autoPong: false });
      quiet.send({ type: 'connection_init' });
      await quiet.next((m) => m.type === 'connection_ack');
      await new Promise((r) => setTimeout(r, 300));
      expect(quiet.ws.readyState).toBe(WebSocket.OPEN);
      await quiet.close();
    } finally {
      await router.close();
    }
  });
});
