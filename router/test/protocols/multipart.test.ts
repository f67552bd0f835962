/**
 * GraphQL over multipart HTTP end to end: a real HTTP client (fetch, and node:http for a client
 * that stops reading) against the router, its body parsed incrementally into parts by a small
 * RFC 2046 reader written here from the spec, independent of how the router chunks its writes.
 */
import { describe, expect, it } from '@jest/globals';
import type { IncomingMessage } from 'node:http';
import { rejectedBody } from '../../src/protocols/multipart.js';
import { prefersMultipart } from '../../src/server/media-type.js';
import {
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

const ECHO = 'query Echo($text: String) { echo(text: $text) }';
/** What Apollo Client sends for a subscription. */
const APOLLO_SUBSCRIPTION_ACCEPT = 'multipart/mixed;boundary="graphql";subscriptionSpec=1.0,application/json';
const SUBSCRIPTION_TYPE = 'multipart/mixed;boundary="graphql";subscriptionSpec="1.0"';

const router = sharedTestRouter();

interface Part {
  headers: Record<string, string>;
  body: unknown;
}

/**
 * Splits a multipart body into parts as it arrives: a part is complete once the delimiter after
 * it has been seen. The text before the first delimiter is the preamble; `--` after a delimiter
 * closes the body.
 */
class MultipartReader {
  readonly parts: Part[] = [];
  /** The closing delimiter arrived. */
  closed = false;
  private readonly delimiter: string;
  // A body may open with the delimiter itself, without the CRLF that belongs to it.
  private buffer = '\r\n';
  private inPreamble = true;

  constructor(boundary: string) {
    this.delimiter = `\r\n--${boundary}`;
  }

  push(text: string): void {
    this.buffer += text;
    while (!this.closed) {
      if (!this.inPreamble && this.buffer.startsWith('--')) {
        this.closed = true;
        return;
      }
      const at = this.buffer.indexOf(this.delimiter);
      if (at < 0) return;
      const segment = this.buffer.slice(0, at);
      this.buffer = this.buffer.slice(at + this.delimiter.length);
      if (this.inPreamble) this.inPreamble = false;
      else this.parts.push(parsePart(segment));
    }
  }
}

function parsePart(segment: string): Part {
  // The segment starts with the rest of the delimiter line (its CRLF), then headers, a blank line, the body.
  const headEnd = segment.indexOf('\r\n\r\n');
  if (headEnd < 0)
    throw new Error(`a part without a blank line after its headers: ${JSON.stringify(segment)}`);
  const headers: Record<string, string> = {};
  for (const line of segment.slice(0, headEnd).split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { headers, body: JSON.parse(segment.slice(headEnd + 4)) };
}

function boundaryOf(contentType: string | null): string {
  const match = /;\s*boundary="?([^";]+)"?/i.exec(contentType ?? '');
  if (!match) throw new Error(`no boundary in ${contentType}`);
  return match[1]!;
}

interface MultipartResponse {
  res: Response;
  reader: MultipartReader;
  /** Every byte received, for exact checks. */
  text(): string;
  /** Resolves when the body has ended (or the test aborted it). */
  ended: Promise<void>;
  abort(): void;
  /** Bodies of the parts that are not heartbeats. */
  results(): unknown[];
  heartbeats(): number;
}

async function openMultipart(
  url: string,
  body: { query: string; variables?: Record<string, unknown> },
  { accept = APOLLO_SUBSCRIPTION_ACCEPT, method = 'POST' }: { accept?: string; method?: 'GET' | 'POST' } = {},
): Promise<MultipartResponse> {
  const controller = new AbortController();
  const target =
    method === 'GET'
      ? `${url}?${new URLSearchParams({ query: body.query, ...(body.variables ? { variables: JSON.stringify(body.variables) } : {}) })}`
      : url;
  const res = await fetch(target, {
    method,
    headers: method === 'GET' ? { accept } : { accept, 'content-type': 'application/json' },
    body: method === 'GET' ? undefined : JSON.stringify(body),
    signal: controller.signal,
  });
  const reader = new MultipartReader(boundaryOf(res.headers.get('content-type')));
  let text = '';
  const ended = readBody(res, (piece) => {
    text += piece;
    reader.push(piece);
  });
  const isHeartbeat = (p: Part) =>
    typeof p.body === 'object' && p.body !== null && Object.keys(p.body).length === 0;
  return {
    res,
    reader,
    text: () => text,
    ended,
    abort: () => controller.abort(),
    results: () => reader.parts.filter((p) => !isHeartbeat(p)).map((p) => p.body),
    heartbeats: () => reader.parts.filter(isHeartbeat).length,
  };
}

describe('multipart subscriptions (Apollo multipart protocol)', () => {
  it('a POSTed subscription streams its results as payload parts, then the closing delimiter', async () => {
    const stream = await openMultipart(router.url, { query: TICKS, variables: { count: 3, intervalMs: 1 } });
    await stream.ended;
    expect(stream.res.status).toBe(200);
    expect(stream.res.headers.get('content-type')).toBe(SUBSCRIPTION_TYPE);
    expect(stream.res.headers.get('cache-control')).toBe('no-cache');
    expect(stream.reader.closed).toBe(true);
    expect(stream.results()).toEqual([
      { payload: { data: { tick: 1 } } },
      { payload: { data: { tick: 2 } } },
      { payload: { data: { tick: 3 } } },
    ]);
    expect(stream.reader.parts.every((p) => p.headers['content-type'] === 'application/json')).toBe(true);
  });

  it('on the wire: each part is followed at once by the next delimiter, so it can be read on arrival', async () => {
    const stream = await openMultipart(router.url, { query: TICKS, variables: { count: 2, intervalMs: 1 } });
    await stream.ended;
    const part = (json: string) => `\r\ncontent-type: application/json\r\n\r\n${json}\r\n--graphql`;
    expect(stream.text()).toBe(
      '\r\n--graphql' +
        part('{}') +
        part('{"payload":{"data":{"tick":1}}}') +
        part('{"payload":{"data":{"tick":2}}}') +
        '--\r\n',
    );
  });

  it('a subscription by GET, with URL-encoded variables, streams too', async () => {
    const before = router.operations.started.length;
    const stream = await openMultipart(
      router.url,
      { query: TICKS, variables: { count: 2, intervalMs: 1 } },
      { method: 'GET' },
    );
    await stream.ended;
    expect(stream.results()).toEqual([
      { payload: { data: { tick: 1 } } },
      { payload: { data: { tick: 2 } } },
    ]);
    expect(router.operations.started[before]!.request).toEqual({
      query: TICKS,
      operationName: null,
      variables: { count: 2, intervalMs: 1 },
    });
  });

  it('a result reaches the client while the stream stays open, before any later part', async () => {
    const stream = await openMultipart(router.url, { query: TOPIC, variables: { topic: 'live' } });
    try {
      await waitFor(() => router.operations.subscribers('live') === 1, 'the subscriber');
      router.operations.publish('live', '{"data":{"news":"first"}}');
      await waitFor(() => stream.results().length === 1, 'the first result, on its own');
      expect(stream.results()).toEqual([{ payload: { data: { news: 'first' } } }]);
      expect(stream.reader.closed).toBe(false);
    } finally {
      stream.abort();
      await stream.ended;
    }
  });

  it('heartbeats are {} parts, one when the stream opens and then every subscriptions.multipart_heartbeat_interval', async () => {
    const quick = await startTestRouter('subscriptions: { multipart_heartbeat_interval: 20ms }');
    try {
      const stream = await openMultipart(quick.url, { query: TOPIC, variables: { topic: 'quiet' } });
      await waitFor(() => stream.heartbeats() >= 4, 'four heartbeats');
      expect(stream.results()).toEqual([]);
      expect(stream.reader.parts.every((p) => JSON.stringify(p.body) === '{}')).toBe(true);
      stream.abort();
      await stream.ended;
    } finally {
      await quick.close();
    }
  });

  it('with subscriptions.multipart_heartbeat_interval: 0s no heartbeats are sent, but the stream opens', async () => {
    const silent = await startTestRouter('subscriptions: { multipart_heartbeat_interval: 0s }');
    try {
      const stream = await openMultipart(silent.url, {
        query: TICKS,
        variables: { count: 1, intervalMs: 30 },
      });
      expect(stream.res.status).toBe(200);
      await stream.ended;
      expect(stream.heartbeats()).toBe(0);
      expect(stream.results()).toEqual([{ payload: { data: { tick: 1 } } }]);
    } finally {
      await silent.close();
    }
  });

  it('the client aborting stops the operation in the service and the connection is no longer counted', async () => {
    const fresh = await startTestRouter();
    try {
      const stream = await openMultipart(fresh.url, { query: TICKS, variables: { intervalMs: 2 } });
      await waitFor(() => stream.results().length >= 2, 'two results');
      expect(await connections(fresh.metrics)).toBe(1);
      const op = fresh.operations.started[0]!;
      stream.abort();
      await stream.ended;
      await waitFor(() => op.stopped, 'the operation to be stopped');
      expect(op.ended).toBe(false);
      await waitFor(async () => (await connections(fresh.metrics)) === 0, 'the gauge to return to 0');
    } finally {
      await fresh.close();
    }
  });

  it('an operation that fails mid-stream ends with a fatal-error part (payload null, errors), then the end', async () => {
    const stream = await openMultipart(router.url, { query: TICKS, variables: { fail: 'broker gone' } });
    await stream.ended;
    expect(stream.results()).toEqual([
      { payload: { data: { tick: 1 } } },
      { payload: null, errors: [{ message: 'broker gone' }] },
    ]);
    expect(stream.reader.closed).toBe(true);
  });

  it('results are counted as sent (heartbeats are not)', async () => {
    const fresh = await startTestRouter('subscriptions: { multipart_heartbeat_interval: 5ms }');
    try {
      const stream = await openMultipart(fresh.url, {
        query: TICKS,
        variables: { count: 3, intervalMs: 10 },
      });
      await stream.ended;
      expect(stream.heartbeats()).toBeGreaterThan(1);
      expect(await messagesSent(fresh.metrics)).toBe(3);
    } finally {
      await fresh.close();
    }
  });
});

describe('queries and mutations over multipart (incremental delivery without @defer)', () => {
  it('a query is one part holding the result itself with hasNext false, then the end', async () => {
    const stream = await openMultipart(
      router.url,
      { query: ECHO, variables: { text: 'hi' } },
      { accept: 'multipart/mixed;deferSpec=20220824, application/json' },
    );
    await stream.ended;
    expect(stream.res.status).toBe(200);
    expect(stream.res.headers.get('content-type')).toBe(
      'multipart/mixed;boundary="graphql";deferSpec=20220824',
    );
    expect(stream.reader.parts).toEqual([
      { headers: { 'content-type': 'application/json' }, body: { data: { echo: 'hi' }, hasNext: false } },
    ]);
    expect(stream.reader.closed).toBe(true);
  });

  it('a query by GET is answered the same way', async () => {
    const stream = await openMultipart(
      router.url,
      { query: ECHO, variables: { text: 'by get' } },
      { accept: 'multipart/mixed', method: 'GET' },
    );
    await stream.ended;
    expect(stream.results()).toEqual([{ data: { echo: 'by get' }, hasNext: false }]);
  });

  it('GET refuses a mutation with 405; HEAD starts nothing', async () => {
    const mutation = await fetch(
      `${router.url}?query=${encodeURIComponent('mutation { setHello(to: "x") }')}`,
      {
        headers: { accept: 'multipart/mixed' },
      },
    );
    expect(mutation.status).toBe(405);
    expect(mutation.headers.get('allow')).toBe('POST');

    const before = router.operations.started.length;
    const head = await fetch(`${router.url}?query=${encodeURIComponent(TICKS)}`, {
      method: 'HEAD',
      headers: { accept: 'multipart/mixed' },
    });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe(SUBSCRIPTION_TYPE);
    expect(router.operations.started.length).toBe(before);
  });
});

describe('refused operations over multipart', () => {
  it('a client that also accepts JSON (as Apollo Client does) gets 400 {errors}', async () => {
    const res = await fetch(router.url, {
      method: 'POST',
      headers: { accept: APOLLO_SUBSCRIPTION_ACCEPT, 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ hello }' }),
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await res.json()).toEqual({
      errors: [{ message: NOT_A_SUBSCRIPTION, locations: [{ line: 1, column: 1 }] }],
    });
  });

  it('a client that accepts only multipart gets the errors as the one part', async () => {
    const query = await openMultipart(router.url, { query: '{ hello }' }, { accept: 'multipart/mixed' });
    await query.ended;
    expect(query.res.headers.get('content-type')).toBe(
      'multipart/mixed;boundary="graphql";deferSpec=20220824',
    );
    expect(query.results()).toEqual([
      { errors: [{ message: NOT_A_SUBSCRIPTION, locations: [{ line: 1, column: 1 }] }], hasNext: false },
    ]);
    expect(query.reader.closed).toBe(true);
  });

  it('a refused subscription’s one part carries the errors as its payload', () => {
    const reader = new MultipartReader('graphql');
    reader.push(rejectedBody('subscription', [{ message: 'no such field' }]));
    expect(reader.parts).toEqual([
      {
        headers: { 'content-type': 'application/json' },
        body: { payload: { errors: [{ message: 'no such field' }] } },
      },
    ]);
    expect(reader.closed).toBe(true);
  });
});

describe('Accept negotiation on the GraphQL path', () => {
  it('multipart/mixed is chosen when named and not outranked by JSON or, at equal quality, by an earlier SSE', () => {
    expect(prefersMultipart(APOLLO_SUBSCRIPTION_ACCEPT)).toBe(true);
    expect(prefersMultipart('multipart/mixed;subscriptionSpec="1.0", application/json')).toBe(true);
    expect(prefersMultipart('multipart/mixed')).toBe(true);
    expect(prefersMultipart('multipart/mixed, */*')).toBe(true);
    expect(prefersMultipart('application/json, multipart/mixed;q=0.5')).toBe(false);
    expect(prefersMultipart('multipart/mixed;q=0')).toBe(false);
    expect(prefersMultipart('text/event-stream, multipart/mixed')).toBe(false);
    expect(prefersMultipart('multipart/mixed, text/event-stream')).toBe(true);
    expect(prefersMultipart('text/event-stream;q=0.5, multipart/mixed')).toBe(true);
    expect(prefersMultipart('*/*')).toBe(false);
    expect(prefersMultipart('multipart/*')).toBe(false);
    expect(prefersMultipart(undefined)).toBe(false);
  });

  it('*/* and no Accept header still get plain JSON; text/event-stream still gets SSE', async () => {
    for (const accept of ['*/*', undefined]) {
      const res = await fetch(router.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(accept ? { accept } : {}) },
        body: JSON.stringify({ query: '{ hello }' }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(await res.json()).toEqual({ data: { hello: 'world' } });
    }
    const sse = await fetch(router.url, {
      method: 'POST',
      headers: { accept: 'text/event-stream, multipart/mixed', 'content-type': 'application/json' },
      body: JSON.stringify({ query: TICKS, variables: { count: 1 } }),
    });
    expect(sse.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    await sse.text();
  });
});

describe('multipart streams as connections', () => {
  it('a slow consumer’s stream is dropped and counted while another client of the same stream keeps receiving', async () => {
    const limited = await startTestRouter(
      'subscriptions: { send_buffer_limit: 64KiB, multipart_heartbeat_interval: 0s }',
    );
    let slowResponse: IncomingMessage | undefined;
    let fast: MultipartResponse | undefined;
    try {
      const { res, closed: slowClosed } = await pausedResponse(limited.url, APOLLO_SUBSCRIPTION_ACCEPT, {
        query: TOPIC,
        variables: { topic: 'news' },
      });
      slowResponse = res;
      await waitFor(() => limited.operations.subscribers('news') === 1, 'the slow subscriber');
      const slowOp = limited.operations.started[0]!;

      fast = await openMultipart(limited.url, { query: TOPIC, variables: { topic: 'news' } });
      await waitFor(() => limited.operations.subscribers('news') === 2, 'the fast subscriber');

      const published = await publishUntilRefused(limited, 'news', slowOp, () => fast!.results().length);
      expect(slowOp.refused).toBe(true);
      expect(await slowConsumerDrops(limited.metrics)).toBe(1);

      limited.operations.publish('news', '{"data":{"news":"after"}}');
      await waitFor(() => fast!.results().length === published + 1, 'the fast client to get the next result');
      expect(fast.results().at(-1)).toEqual({ payload: { data: { news: 'after' } } });

      res.resume();
      await slowClosed;
      expect(res.complete).toBe(false);
    } finally {
      fast?.abort();
      await fast?.ended;
      slowResponse?.destroy();
      await limited.close();
    }
  });

  it('closing the router ends open streams without the closing delimiter and stops their operations', async () => {
    const fresh = await startTestRouter();
    const stream = await openMultipart(fresh.url, { query: TICKS, variables: { intervalMs: 5 } });
    await waitFor(() => stream.results().length >= 1, 'a first result');
    await fresh.close();
    await stream.ended;
    expect(stream.reader.closed).toBe(false);
    expect(fresh.operations.active()).toBe(0);
    expect(await connections(fresh.metrics)).toBe(0);
  });
});
