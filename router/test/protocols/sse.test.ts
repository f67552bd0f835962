import { describe, expect, it } from '@jest/globals';
import type { IncomingMessage } from 'node:http';
import { createClient, type Client } from 'graphql-sse';
import {
  collect,
  connections,
  messagesSent,
  NOT_A_SUBSCRIPTION,
  pausedResponse,
  publishUntilRefused,
  readBody,
  sharedTestRouter,
  slowConsumerDrops,
  startTestRouter,
  TICKS,
  TOPIC,
  waitFor,
} from './harness.js';

const router = sharedTestRouter();

function sseClient(url: string, fetchFn: typeof fetch = fetch): Client {
  return createClient({ url, fetchFn, retryAttempts: 0 });
}

/** graphql-sse's client always POSTs; this fetch turns its request into `GET ?query=&variables=`. */
const fetchAsGet: typeof fetch = (input, init) => {
  const body = JSON.parse(String(init?.body)) as Record<string, unknown>;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(body))
    if (value !== undefined && value !== null)
      params.set(key, typeof value === 'string' ? value : JSON.stringify(value));
  const headers = { ...(init?.headers as Record<string, string>) };
  delete headers['content-type'];
  return fetch(`${String(input)}?${params}`, { ...init, method: 'GET', headers, body: undefined });
};

/** A raw event-stream reader, for what the client library hides (comments, the exact text). */
async function openStream(url: string, body: unknown, accept = 'text/event-stream') {
  const controller = new AbortController();
  const res = await fetch(url, {
    method: 'POST',
    headers: { accept, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: controller.signal,
  });
  let text = '';
  let done = false;
  const reading = readBody(res, (piece) => (text += piece)).then(() => {
    done = true;
  });
  return {
    res,
    text: () => text,
    done: () => done,
    ended: reading,
    abort: () => controller.abort(),
  };
}

describe('GraphQL over SSE with the graphql-sse client (distinct connections)', () => {
  it('a POSTed subscription streams its results, then completes', async () => {
    const client = sseClient(router.url);
    try {
      expect(await collect(client.iterate({ query: TICKS, variables: { count: 3, intervalMs: 1 } }))).toEqual(
        [{ data: { tick: 1 } }, { data: { tick: 2 } }, { data: { tick: 3 } }],
      );
    } finally {
      client.dispose();
    }
  });

  it('a subscription by GET, with URL-encoded variables, streams too', async () => {
    const client = sseClient(router.url, fetchAsGet);
    try {
      const before = router.operations.started.length;
      expect(await collect(client.iterate({ query: TICKS, variables: { count: 2, intervalMs: 1 } }))).toEqual(
        [{ data: { tick: 1 } }, { data: { tick: 2 } }],
      );
      expect(router.operations.started[before]!.request).toEqual({
        query: TICKS,
        operationName: null,
        variables: { count: 2, intervalMs: 1 },
      });
    } finally {
      client.dispose();
    }
  });

  it('the client going away stops the operation in the service', async () => {
    const client = sseClient(router.url);
    try {
      const before = router.operations.started.length;
      expect(await collect(client.iterate({ query: TICKS, variables: { intervalMs: 2 } }), 2)).toHaveLength(
        2,
      );
      const op = router.operations.started[before]!;
      await waitFor(() => op.stopped, 'the operation to be stopped');
    } finally {
      client.dispose();
    }
  });

  it('an operation the service refuses is the stream’s one result, so the client sees why', async () => {
    const client = sseClient(router.url);
    try {
      expect(await collect(client.iterate({ query: '{ hello }' }))).toEqual([
        { errors: [{ message: NOT_A_SUBSCRIPTION, locations: [{ line: 1, column: 1 }] }] },
      ]);
    } finally {
      client.dispose();
    }
  });

  it('an operation that fails mid-stream ends with its errors as the last result', async () => {
    const client = sseClient(router.url);
    try {
      expect(await collect(client.iterate({ query: TICKS, variables: { fail: 'broker gone' } }))).toEqual([
        { data: { tick: 1 } },
        { errors: [{ message: 'broker gone' }] },
      ]);
    } finally {
      client.dispose();
    }
  });
});

describe('GraphQL over SSE on the wire', () => {
  it('events are "next" with the payload as serialized, then "complete" with an empty data field', async () => {
    const stream = await openStream(router.url, { query: TICKS, variables: { count: 2, intervalMs: 1 } });
    await stream.ended;
    expect(stream.res.status).toBe(200);
    expect(stream.res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(stream.res.headers.get('cache-control')).toBe('no-cache');
    expect(stream.text()).toBe(
      ':\n\n' +
        'event: next\ndata: {"data":{"tick":1}}\n\n' +
        'event: next\ndata: {"data":{"tick":2}}\n\n' +
        'event: complete\ndata:\n\n',
    );
  });

  it('a client that also accepts JSON gets a refused operation as 400 {errors}', async () => {
    const res = await fetch(router.url, {
      method: 'POST',
      headers: { accept: 'text/event-stream, application/json', 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ hello }' }),
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await res.json()).toEqual({
      errors: [{ message: NOT_A_SUBSCRIPTION, locations: [{ line: 1, column: 1 }] }],
    });
  });

  it('a request that is not GraphQL at all is a 400 JSON error before any stream', async () => {
    const res = await fetch(router.url, {
      method: 'POST',
      headers: { accept: 'text/event-stream', 'content-type': 'application/json' },
      body: '{"query": ',
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const body = (await res.json()) as { errors: { message: string }[] };
    expect(body.errors[0]?.message).toMatch(/^Request body is not valid JSON: /);
  });

  it('GET refuses a mutation with 405', async () => {
    const res = await fetch(`${router.url}?query=${encodeURIComponent('mutation { setHello(to: "x") }')}`, {
      headers: { accept: 'text/event-stream' },
    });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
  });

  it('HEAD starts nothing', async () => {
    const before = router.operations.started.length;
    const res = await fetch(`${router.url}?query=${encodeURIComponent(TICKS)}`, {
      method: 'HEAD',
      headers: { accept: 'text/event-stream' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(router.operations.started.length).toBe(before);
  });

  it('keepalive comments flow every subscriptions.sse_keepalive_interval', async () => {
    const quick = await startTestRouter('subscriptions: { sse_keepalive_interval: 20ms }');
    try {
      const stream = await openStream(quick.url, { query: TOPIC, variables: { topic: 'quiet' } });
      await waitFor(() => stream.text().split(':\n\n').length > 3, 'three keepalive comments');
      expect(stream.text()).toMatch(/^(:\n\n)+$/);
      stream.abort();
      await stream.ended;
    } finally {
      await quick.close();
    }
  });

  it('JSON requests on the same path are still GraphQL over HTTP', async () => {
    const res = await fetch(router.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ hello }' }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ data: { hello: 'world' } });
  });
});

describe('SSE streams as connections', () => {
  it('open streams are counted, results too, and the gauge returns to 0', async () => {
    const fresh = await startTestRouter();
    try {
      const stream = await openStream(fresh.url, { query: TOPIC, variables: { topic: 't' } });
      await waitFor(() => fresh.operations.subscribers('t') === 1, 'the subscriber');
      expect(await connections(fresh.metrics)).toBe(1);
      fresh.operations.publish('t', '{"data":{"news":"1"}}');
      await waitFor(() => stream.text().includes('"news":"1"'), 'the result');
      expect(await messagesSent(fresh.metrics)).toBe(1);
      stream.abort();
      await waitFor(async () => (await connections(fresh.metrics)) === 0, 'the gauge to return to 0');
      expect(fresh.operations.active()).toBe(0);
    } finally {
      await fresh.close();
    }
  });

  it('a slow consumer’s stream is dropped while another client of the same stream keeps receiving', async () => {
    const limited = await startTestRouter('subscriptions: { send_buffer_limit: 64KiB }');
    const fast = sseClient(limited.url);
    let slowResponse: IncomingMessage | undefined;
    try {
      const { res, closed: slowClosed } = await pausedResponse(limited.url, 'text/event-stream', {
        query: TOPIC,
        variables: { topic: 'news' },
      });
      slowResponse = res;
      await waitFor(() => limited.operations.subscribers('news') === 1, 'the slow subscriber');
      const slowOp = limited.operations.started[0]!;

      const received: unknown[] = [];
      const fastIterator = fast.iterate({ query: TOPIC, variables: { topic: 'news' } });
      const reading = (async () => {
        for await (const result of fastIterator) received.push(result);
      })();
      await waitFor(() => limited.operations.subscribers('news') === 2, 'the fast subscriber');

      const published = await publishUntilRefused(limited, 'news', slowOp, () => received.length);
      expect(slowOp.refused).toBe(true);
      expect(await slowConsumerDrops(limited.metrics)).toBe(1);

      limited.operations.publish('news', '{"data":{"news":"after"}}');
      await waitFor(() => received.length === published + 1, 'the fast client to get the next result');
      expect(received.at(-1)).toEqual({ data: { news: 'after' } });

      res.resume();
      await slowClosed;
      expect(res.complete).toBe(false);
      await fastIterator.return?.();
      await reading;
    } finally {
      fast.dispose();
      slowResponse?.destroy();
      await limited.close();
    }
  });

  it('closing the router ends open streams, without complete, and stops their operations', async () => {
    const fresh = await startTestRouter();
    const stream = await openStream(fresh.url, { query: TICKS, variables: { intervalMs: 5 } });
    await waitFor(() => stream.text().includes('event: next'), 'a first result');
    await fresh.close();
    await stream.ended;
    expect(stream.text()).not.toContain('event: complete');
    expect(fresh.operations.active()).toBe(0);
    expect(await connections(fresh.metrics)).toBe(0);
  });
});

describe('stream limit (subscriptions.max_streams)', () => {
  it('SSE and multipart streams count together; one more gets 503 naming the setting, a closed one frees its slot', async () => {
    const limited = await startTestRouter('subscriptions: { max_streams: 2 }');
    try {
      const sse = await openStream(limited.url, { query: TOPIC, variables: { topic: 'a' } });
      const multipart = await openStream(
        limited.url,
        { query: TOPIC, variables: { topic: 'a' } },
        'multipart/mixed;subscriptionSpec="1.0"',
      );
      expect([sse.res.status, multipart.res.status]).toEqual([200, 200]);

      const refused = await fetch(limited.url, {
        method: 'POST',
        headers: { accept: 'text/event-stream', 'content-type': 'application/json' },
        body: JSON.stringify({ query: TOPIC, variables: { topic: 'a' } }),
      });
      expect(refused.status).toBe(503);
      expect(await refused.json()).toEqual({
        errors: [
          {
            message: 'Too many open streams (subscriptions.max_streams: 2): retry later, or use a WebSocket.',
          },
        ],
      });

      sse.abort();
      await waitFor(async () => (await connections(limited.metrics)) === 1, 'the aborted stream closed');
      const again = await openStream(limited.url, { query: TOPIC, variables: { topic: 'a' } });
      expect(again.res.status).toBe(200);
      again.abort();
      multipart.abort();
    } finally {
      await limited.close();
    }
  });
});
