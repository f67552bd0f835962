/**
 * The HTTP edge (`traffic_shaping.router`): stalled headers and bodies are cut with 408, idle
 * keep-alive connections are closed, open HTTP connections are capped, and the health endpoints
 * answer while the cap is reached. Raw TCP sockets play the stalling clients.
 */
import { describe, expect, it } from '@jest/globals';
import { connect, type Socket } from 'node:net';
import WebSocket from 'ws';
import { parseRouterConfig, RouterConfigError } from '../src/config/load.js';
import { startHelloRouter, type HelloRouter } from './helpers/hello-graph.js';

interface RawClient {
  socket: Socket;
  /** Everything the router sent. */
  received(): string;
  /** Resolves when the router closed the connection, with the ms it stayed open. */
  closed: Promise<number>;
}

function raw(baseUrl: string, send?: string): Promise<RawClient> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let data = '';
    const socket = connect(Number(port), hostname);
    const closed = new Promise<number>((done) => socket.once('close', () => done(Date.now() - started)));
    socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
    socket.once('error', () => undefined);
    socket.once('connect', () => {
      if (send) socket.write(send);
      resolve({ socket, received: () => data, closed });
    });
    socket.once('error', reject);
  });
}

const metric = async (router: HelloRouter, name: string): Promise<number> => {
  const text = await (await fetch(router.router.metricsUrl!)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ').pop()) : 0;
};

const query = (router: HelloRouter) =>
  fetch(router.router.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: '{ hello }' }),
  });

const SLOW_BODY =
  'POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"query"';

describe('stalled requests are cut', () => {
  it('a body that stops arriving gets 408 after read_timeout; other clients are served meanwhile', async () => {
    const router = await startHelloRouter(
      'traffic_shaping: { router: { read_header_timeout: 500ms, read_timeout: 1s } }',
    );
    try {
      const slow = await Promise.all(Array.from({ length: 20 }, () => raw(router.router.baseUrl, SLOW_BODY)));
      expect((await query(router)).status).toBe(200);
      const held = await Promise.all(slow.map((c) => c.closed));
      for (const client of slow) expect(client.received()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
      // Cut close to the deadline, never before it (the check runs every 250 ms here).
      for (const ms of held) expect(ms).toBeGreaterThanOrEqual(1000);
      expect(await metric(router, 'router_http_request_timeouts_total')).toBe(20);
      expect((await query(router)).status).toBe(200);
    } finally {
      await router.close();
    }
  });

  it('headers that stop arriving, and a connection that sends nothing, get 408 after read_header_timeout', async () => {
    const router = await startHelloRouter(
      'traffic_shaping: { router: { read_header_timeout: 500ms, read_timeout: 10s } }',
    );
    try {
      const partial = await raw(router.router.baseUrl, 'POST /graphql HTTP/1.1\r\nHost: x\r\n');
      const silent = await raw(router.router.baseUrl);
      expect(await partial.closed).toBeLessThan(10_000);
      expect(await silent.closed).toBeLessThan(10_000);
      expect(partial.received()).toMatch(/^HTTP\/1\.1 408/);
      expect(silent.received()).toMatch(/^HTTP\/1\.1 408/);
    } finally {
      await router.close();
    }
  });

  it('an idle keep-alive connection is closed after keep_alive_idle_timeout', async () => {
    const router = await startHelloRouter('traffic_shaping: { router: { keep_alive_idle_timeout: 300ms } }');
    try {
      const client = await raw(router.router.baseUrl, 'GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(await client.closed).toBeLessThan(10_000);
      expect(client.received()).toMatch(/^HTTP\/1\.1 200/);
    } finally {
      await router.close();
    }
  });
});

describe('open HTTP connections are capped, with room for health checks', () => {
  const capped = 'traffic_shaping: { router: { max_connections: 10, health_check_connections: 3 } }';

  it('beyond max_connections a request gets 503 TOO_MANY_CONNECTIONS; /health/* still answers', async () => {
    const router = await startHelloRouter(capped);
    const held: RawClient[] = [];
    try {
      for (let i = 0; i < 10; i++) held.push(await raw(router.router.baseUrl));
      const refused = await query(router);
      expect(refused.status).toBe(503);
      expect(refused.headers.get('connection')).toBe('close');
      expect(await refused.json()).toEqual({
        errors: [
          {
            message:
              'The router has too many open HTTP connections (traffic_shaping.router.max_connections: 10); retry later.',
            extensions: { code: 'TOO_MANY_CONNECTIONS' },
          },
        ],
      });
      for (const path of ['/health/live', '/health/ready'])
        expect((await fetch(`${router.router.baseUrl}${path}`)).status).toBe(200);
      expect(await metric(router, 'router_http_connections_refused_total')).toBeGreaterThanOrEqual(1);

      // Slots freed: requests are served again.
      for (const client of held.splice(0)) client.socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect((await query(router)).status).toBe(200);
    } finally {
      for (const client of held) client.socket.destroy();
      await router.close();
    }
  });

  it('silent connections filling the reserve too cannot keep a health check out', async () => {
    const router = await startHelloRouter(capped);
    const held: RawClient[] = [];
    try {
      // 10 slots and 3 reserve places, then 10 more silent connections: each newcomer evicts
      // the oldest silent one in the reserve.
      for (let i = 0; i < 23; i++) held.push(await raw(router.router.baseUrl));
      await new Promise((resolve) => setTimeout(resolve, 50));
      for (let i = 0; i < 5; i++)
        expect((await fetch(`${router.router.baseUrl}/health/ready`)).status).toBe(200);
      expect(await metric(router, 'router_http_connections')).toBeLessThanOrEqual(13);
    } finally {
      for (const client of held) client.socket.destroy();
      await router.close();
    }
  });

  it('WebSocket connections leave the HTTP count once upgraded (they have websocket.max_connections)', async () => {
    const router = await startHelloRouter(capped);
    const sockets: WebSocket[] = [];
    try {
      for (let i = 0; i < 12; i++) {
        const ws = new WebSocket(router.router.url.replace(/^http/, 'ws'), 'graphql-transport-ws');
        sockets.push(ws);
        await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      }
      expect(await metric(router, 'router_http_connections')).toBe(0);
      expect((await query(router)).status).toBe(200);
    } finally {
      for (const ws of sockets) ws.terminate();
      await router.close();
    }
  });
});

describe('router.yaml: traffic_shaping.router', () => {
  const minimal = 'execution_config: { file: { path: ./config.json } }\n';
  const parse = (yaml: string) => parseRouterConfig(`${minimal}${yaml}`, { env: {}, baseDir: '/srv' });

  it('defaults: 10s for headers, 30s for a request, 72s keep-alive, 10,000 connections + 16 for health checks', () => {
    expect(parse('').trafficShaping.router).toEqual({
      deduplicateRequests: false,
      maxRequestBodySizeBytes: 5_000_000,
      maxHeaderBytes: 16 * 1024,
      readHeaderTimeoutMs: 10_000,
      readTimeoutMs: 30_000,
      keepAliveIdleTimeoutMs: 72_000,
      maxConnections: 10_000,
      healthCheckConnections: 16,
    });
  });

  it('every key resolves', () => {
    expect(
      parse(
        'traffic_shaping: { router: { deduplicate_requests: true, max_header_bytes: 32KiB, read_header_timeout: 2s, read_timeout: 1m, keep_alive_idle_timeout: 5s, max_connections: 100, health_check_connections: 4 } }',
      ).trafficShaping.router,
    ).toEqual({
      deduplicateRequests: true,
      maxRequestBodySizeBytes: 5_000_000,
      maxHeaderBytes: 32 * 1024,
      readHeaderTimeoutMs: 2000,
      readTimeoutMs: 60_000,
      keepAliveIdleTimeoutMs: 5000,
      maxConnections: 100,
      healthCheckConnections: 4,
    });
  });

  it.each([
    ['read_timeout: 0s', 'traffic_shaping.router.read_timeout: must be greater than zero'],
    [
      'keep_alive_idle_timeout: 0s',
      'traffic_shaping.router.keep_alive_idle_timeout: must be greater than zero',
    ],
    ['max_connections: 0', 'traffic_shaping.router.max_connections: must be at least 1 (got 0)'],
    [
      'read_header_timeout: 20s, read_timeout: 10s',
      'traffic_shaping.router.read_header_timeout: must not be longer than traffic_shaping.router.read_timeout',
    ],
    ['read_timeout: soon', 'traffic_shaping.router.read_timeout: must be a duration'],
  ])('%s is refused, naming the key', (keys, message) => {
    let error: unknown;
    try {
      parse(`traffic_shaping: { router: { ${keys} } }`);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(RouterConfigError);
    expect((error as Error).message).toContain(message);
  });
});

describe('router.yaml: events.subjects and max_control_line', () => {
  const minimal = 'execution_config: { file: { path: ./config.json } }\n';
  const parse = (yaml: string) => parseRouterConfig(`${minimal}${yaml}`, { env: {}, baseDir: '/srv' });
  const errorOf = (yaml: string): string => {
    try {
      parse(yaml);
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error('expected the configuration to be refused');
  };

  it('defaults: subjects of at most 512 bytes and 32 tokens; no max_control_line unless set', () => {
    const config = parse('events: { providers: { nats: [{ id: d, url: "nats://localhost:4222" }] } }');
    expect(config.events.subjects).toEqual({ maxLength: 512, maxTokens: 32 });
    expect(config.events.providers.nats).toEqual([{ id: 'd', url: 'nats://localhost:4222' }]);
  });

  it('the keys resolve', () => {
    const config = parse(
      'events: { subjects: { max_length: 2000, max_tokens: 8 }, providers: { nats: [{ id: d, url: "nats://localhost:4222", max_control_line: 8192 }] } }',
    );
    expect(config.events.subjects).toEqual({ maxLength: 2000, maxTokens: 8 });
    expect(config.events.providers.nats[0]?.maxControlLine).toBe(8192);
  });

  it("a max_length that leaves too little of a provider's control line is refused", () => {
    expect(
      errorOf(
        'events: { subjects: { max_length: 4000 }, providers: { nats: [{ id: d, url: "nats://localhost:4222" }] } }',
      ),
    ).toContain('events.subjects.max_length: events.subjects.max_length (4000) leaves too little');
    expect(
      errorOf(
        'events: { providers: { nats: [{ id: d, url: "nats://localhost:4222", max_control_line: 600 }] } }',
      ),
    ).toContain('events.providers.nats[0].max_control_line:');
  });

  it('zero is refused', () => {
    expect(errorOf('events: { subjects: { max_tokens: 0 } }')).toContain(
      'events.subjects.max_tokens: must be at least 1 (got 0)',
    );
  });
});
