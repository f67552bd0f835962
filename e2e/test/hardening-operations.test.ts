/**
 * Hostile operations against real router processes serving the chat example on a real
 * nats-server, while subscribers keep receiving events:
 * - distinct multi-MB queries (19 of 4.8 MB crashed the router before, "Reached heap limit"):
 *   refused by size at once with the default limits; and with the parser limits turned off, the
 *   document cache's byte bound keeps the heap of a router capped at 384 MB of heap flat (before,
 *   each distinct 1 MB query kept ~65 MB and the sixth crashed it);
 * - a 5,000-deep query (before: "Maximum call stack size exceeded"): MAX_DEPTH_EXCEEDED on every
 *   transport, a subscription's error ending that operation only;
 * - 10,000 aliases: refused before planning, no subgraph called;
 * - introspection disabled, no "Did you mean ...?" suggestions.
 *
 * Events are sent by `sendMessage` on the messages subgraph process (which publishes them to
 * NATS), never through the routers under test. Every subscriber must get every event; latencies
 * and memory are printed for the record, and memory is asserted against documented bounds
 * (docs/limits-and-protection.md), not speed.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from 'graphql-ws';
import { composeSupergraph, loadComposeInputs } from '@edfs/operator';
import { wsClient } from '../src/fixtures/clients.js';
import { metric } from '../src/fixtures/metrics.js';
import { startProcess, stopProcess } from '../src/fixtures/processes.js';
import { eventually } from '../src/fixtures/wait.js';
import { freePorts, startNatsServer, type NatsServer } from '../src/infra/nats.js';

const ROUTER_BIN = fileURLToPath(new URL('../../router/bin/edfs-router.js', import.meta.url));
const chat = (path: string) => fileURLToPath(new URL(`../../examples/chat/${path}`, import.meta.url));

/** Documented in docs/limits-and-protection.md ("Operations: size, depth, fields, cost"). */
const BOUNDS = {
  /** A router with the default limits, refusing 19 distinct 4.8 MB queries. */
  strict: { heapMiB: 128, rssMiB: 320 },
  /** Parser limits off, cache at its default 64 MiB estimate, 15 distinct 1 MB queries answered. */
  loose: { heapMiB: 256, rssMiB: 512 },
};

interface RouterProcess {
  url: string;
  metricsUrl: string;
  child: ChildProcess;
  stderr: () => string;
  /** Resident set size of the process, from /proc. */
  rssMiB(): number;
  /** V8 heap in use, from the router's own process metrics. */
  heapMiB(): Promise<number>;
}

let nats: NatsServer;
let dir: string;
let messages: { url: string; child: ChildProcess };
let users: { url: string; child: ChildProcess };
let strict: RouterProcess;
let loose: RouterProcess;
const clients: Client[] = [];

async function startRouterProcess(
  name: string,
  yaml: string[],
  nodeArgs: string[] = [],
): Promise<RouterProcess> {
  const [port, metricsPort] = await freePorts(2);
  const file = join(dir, `${name}.yaml`);
  await writeFile(
    file,
    [
      `listen_addr: 127.0.0.1:${port}`,
      'log_level: warn',
      'execution_config: { file: { path: ./config.json, watch: false } }',
      `events: { providers: { nats: [{ id: default, url: "${nats.url}" }] } }`,
      `telemetry: { metrics: { prometheus: { listen_addr: 127.0.0.1:${metricsPort} } } }`,
      ...yaml,
    ].join('\n'),
  );
  const child = spawn(process.execPath, [...nodeArgs, ROUTER_BIN, '-c', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-20_000)));
  const base = `http://127.0.0.1:${port}`;
  await eventually(
    async () => {
      if (child.exitCode !== null) throw new Error(`router ${name} exited ${child.exitCode}:\n${stderr}`);
      return (await fetch(`${base}/health/ready`).catch(() => undefined))?.ok === true;
    },
    `router ${name} ready`,
    30_000,
    100,
  );
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  return {
    url: `${base}/graphql`,
    metricsUrl,
    child,
    stderr: () => stderr,
    rssMiB: () =>
      Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024,
    heapMiB: async () => (await metric(metricsUrl, 'nodejs_heap_size_used_bytes')) / 1024 / 1024,
  };
}

beforeAll(async () => {
  nats = await startNatsServer();
  [messages, users] = await Promise.all([
    startProcess(chat('subgraphs/messages/server.js'), { PORT: '0', HOST: '127.0.0.1', NATS_URL: nats.url }),
    startProcess(chat('subgraphs/users/server.js'), { PORT: '0', HOST: '127.0.0.1' }),
  ]);
  const urls: Record<string, string> = { messages: messages.url, users: users.url };
  const composed = composeSupergraph(
    loadComposeInputs([chat('graph.yaml')]).map((s) =>
      urls[s.name] ? { ...s, routingUrl: urls[s.name] } : s,
    ),
  );
  if (!composed.ok) throw new Error(JSON.stringify(composed.errors));
  dir = await mkdtemp(join(tmpdir(), 'edfs-hardening-operations-'));
  await writeFile(join(dir, 'config.json'), JSON.stringify(composed.config));
  [strict, loose] = await Promise.all([
    // The defaults, with introspection off as a production router would have it.
    startRouterProcess('strict', ['introspection: { enabled: false }']),
    // No parser limits at all, 8 MB bodies, and a heap the unbounded cache used to exhaust.
    startRouterProcess(
      'loose',
      [
        "security: { parser_limits: { max_document_size: '0', max_tokens: 0, total_fields_limit: 0 }, cost_analysis: { enabled: false } }",
        'traffic_shaping: { router: { max_request_body_size: 8MB } }',
      ],
      ['--max-old-space-size=384'],
    ),
  ]);
}, 120_000);

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
  for (const router of [strict, loose])
    if (router && router.child.exitCode === null) router.child.kill('SIGKILL');
  await Promise.all([stopProcess(messages?.child), stopProcess(users?.child)]);
  await nats?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function post(url: string, query: string, accept = 'application/graphql-response+json') {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept },
    body: JSON.stringify({ query }),
  });
}

async function errorsOf(res: Response): Promise<{ message: string; extensions?: { code?: string } }[]> {
  return ((await res.json()) as { errors: { message: string; extensions?: { code?: string } }[] }).errors;
}

/** `n` aliases of `field` (with its selection), e.g. `a0: __typename a1: __typename ...`. */
const aliases = (n: number, field: string) =>
  `{ ${Array.from({ length: n }, (_, i) => `a${i}: ${field}`).join(' ')} }`;

/** A distinct valid query of about `bytes` characters: aliases of `__typename`. */
function bigQuery(i: number, bytes: number): string {
  const parts = [`query Big${i} {`];
  let size = parts[0]!.length;
  for (let k = 0; size < bytes; k++) {
    const part = ` a${k}: __typename`;
    parts.push(part);
    size += part.length;
  }
  parts.push(' }');
  return parts.join('');
}

const DEEP = `{ messages(roomID: "123") { ${'user { '.repeat(5000)}id${' }'.repeat(5000)} } }`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The events sent during the suite: id -> when `sendMessage` returned. */
const sent = new Map<string, number>();
let publishing = true;
let publisher: Promise<void>;

interface Subscriber {
  name: string;
  client: Client;
  results: number;
  errors: unknown[];
  /** Event id -> when it arrived. */
  at: Map<string, number>;
}
const subscribers: Subscriber[] = [];

function listen(name: string, routerUrl: string, query: string): Subscriber {
  const client = wsClient(routerUrl, { track: clients });
  const subscriber: Subscriber = { name, client, results: 0, errors: [], at: new Map() };
  client.subscribe(
    { query },
    {
      next(value) {
        subscriber.results++;
        const id = (value.data as { messageAdded?: { id: string } } | null | undefined)?.messageAdded?.id;
        if (id) subscriber.at.set(id, Date.now());
      },
      error: (err) => void subscriber.errors.push(err),
      complete: () => undefined,
    },
  );
  subscribers.push(subscriber);
  return subscriber;
}

describe('hostile operations: the routers stay up and every subscriber gets every event', () => {
  it('subscribers on both routers receive the events the messages subgraph publishes', async () => {
    // Selects no user field on `strict`: its `users` subgraph requests then come only from queries.
    listen('strict', strict.url, 'subscription { messageAdded(roomID: "123") { id text } }');
    listen('loose', loose.url, 'subscription { messageAdded(roomID: "123") { id text user { name } } }');
    // Events before a router's NATS subscription is in place are not delivered (by design):
    // publish until each subscriber got one, then start counting.
    await eventually(
      async () => {
        await sendMessage('warm-up');
        return subscribers.every((s) => s.results > 0);
      },
      'a first event on every subscriber',
      30_000,
      250,
    );
    for (const s of subscribers) s.at.clear();
    publisher = (async () => {
      for (let n = 0; publishing; n++) {
        const at = Date.now();
        sent.set(await sendMessage(`tick-${n}`), at);
        await sleep(100);
      }
    })();
  }, 60_000);

  it('19 distinct 4.8 MB queries: each refused by size (OPERATION_TOO_LARGE), memory flat', async () => {
    const heapBefore = await strict.heapMiB();
    let peakRss = strict.rssMiB();
    let peakHeap = heapBefore;
    for (let i = 0; i < 19; i++) {
      const res = await post(strict.url, bigQuery(i, 4_800_000));
      expect(res.status).toBe(400);
      const errors = await errorsOf(res);
      expect(errors[0]!.extensions?.code).toBe('OPERATION_TOO_LARGE');
      peakRss = Math.max(peakRss, strict.rssMiB());
      peakHeap = Math.max(peakHeap, await strict.heapMiB());
    }
    console.log(
      `hardening-operations: strict router, 19 x 4.8 MB refused: heap ${heapBefore.toFixed(0)} -> peak ${peakHeap.toFixed(0)} MiB, peak RSS ${peakRss.toFixed(0)} MiB`,
    );
    expect(strict.child.exitCode).toBeNull();
    expect(peakHeap).toBeLessThan(BOUNDS.strict.heapMiB);
    expect(peakRss).toBeLessThan(BOUNDS.strict.rssMiB);
    expect(
      await metric(strict.metricsUrl, 'router_operations_rejected_total', { reason: 'document_size' }),
    ).toBe(19);
  }, 300_000);

  it('parser limits off: 15 distinct 1 MB queries are answered and the cache bound keeps the heap flat', async () => {
    const heapBefore = await loose.heapMiB();
    let peakRss = loose.rssMiB();
    let peakHeap = heapBefore;
    for (let i = 0; i < 15; i++) {
      const res = await post(loose.url, bigQuery(i, 1_000_000), 'application/json');
      expect(res.status).toBe(200);
      const body = (await res.json()) as { data?: Record<string, string> };
      expect(body.data?.a0).toBe('Query');
      peakRss = Math.max(peakRss, loose.rssMiB());
      peakHeap = Math.max(peakHeap, await loose.heapMiB());
    }
    console.log(
      `hardening-operations: loose router (heap capped at 384 MB), 15 x 1 MB answered: heap ${heapBefore.toFixed(0)} -> peak ${peakHeap.toFixed(0)} MiB, peak RSS ${peakRss.toFixed(0)} MiB`,
    );
    expect(loose.child.exitCode).toBeNull();
    expect(peakHeap).toBeLessThan(BOUNDS.loose.heapMiB);
    expect(peakRss).toBeLessThan(BOUNDS.loose.rssMiB);
    expect((await fetch(loose.url.replace('/graphql', '/health/ready'))).status).toBe(200);
  }, 300_000);

  it('a 5,000-deep query: MAX_DEPTH_EXCEEDED over HTTP, SSE and a WebSocket, never a stack overflow', async () => {
    for (const router of [strict, loose]) {
      const errors = await errorsOf(await post(router.url, DEEP));
      expect(errors).toEqual([
        {
          message:
            'The operation is nested more than 200 levels deep (security.parser_limits.approximate_depth_limit).',
          extensions: { code: 'MAX_DEPTH_EXCEEDED' },
        },
      ]);
    }
    const sse = await post(
      strict.url,
      `subscription ${DEEP.replace('messages(roomID: "123")', 'messageAdded(roomID: "123")')}`,
      'text/event-stream, application/json;q=0.5',
    );
    expect(sse.status).toBe(400);
    expect((await errorsOf(sse))[0]!.extensions?.code).toBe('MAX_DEPTH_EXCEEDED');
    // On the connection of a live subscriber: that operation gets an error, the other goes on.
    const subscriber = subscribers.find((s) => s.name === 'strict')!;
    const deepSubscription = new Promise<unknown>((resolve) => {
      subscriber.client.subscribe(
        { query: `subscription ${DEEP.replace('messages(roomID: "123")', 'messageAdded(roomID: "123")')}` },
        { next: () => resolve('next'), error: resolve, complete: () => resolve('complete') },
      );
    });
    const error = (await deepSubscription) as { extensions?: { code?: string } }[];
    expect(error[0]!.extensions?.code).toBe('MAX_DEPTH_EXCEEDED');
    const count = subscriber.results;
    await eventually(() => subscriber.results > count, 'the live subscription to go on', 15_000);
  }, 60_000);

  it('10,000 aliases: refused before planning, no subgraph called', async () => {
    const usersRequests = () =>
      metric(strict.metricsUrl, 'router_subgraph_requests_total', { subgraph: 'users' });
    const before = await usersRequests();
    const typenames = await errorsOf(await post(strict.url, aliases(10_000, '__typename')));
    expect(typenames[0]!.extensions?.code).toBe('MAX_FIELDS_EXCEEDED');
    const joins = await errorsOf(
      await post(strict.url, aliases(10_000, 'messages(roomID: "123") { id user { name } }')),
    );
    expect(joins[0]!.extensions?.code).toBe('MAX_TOKENS_EXCEEDED');
    // 1,000 of them are within the token limit and still over the field limit.
    const fewer = await errorsOf(
      await post(strict.url, aliases(1000, 'messages(roomID: "123") { id user { name } }')),
    );
    expect(fewer[0]!.extensions?.code).toBe('MAX_FIELDS_EXCEEDED');
    expect(await usersRequests()).toBe(before);
  }, 60_000);

  it('introspection disabled; no "Did you mean ...?" in validation errors', async () => {
    const introspection = await errorsOf(await post(strict.url, '{ __schema { types { name } } }'));
    expect(introspection[0]!.extensions?.code).toBe('INTROSPECTION_DISABLED');
    const typo = await errorsOf(await post(strict.url, '{ mesages(roomID: "123") { id txt } }'));
    expect(typo.map((e) => e.message)).toEqual(['Cannot query field "mesages" on type "Query".']);
    const field = await errorsOf(await post(strict.url, '{ messages(roomID: "123") { id txt } }'));
    expect(field.map((e) => e.message)).toEqual(['Cannot query field "txt" on type "Message".']);
    expect(JSON.stringify([typo, field])).not.toMatch(/Did you mean|text|messages"/);
  }, 60_000);

  it('every subscriber got every event sent meanwhile; the refusals are counted by reason', async () => {
    publishing = false;
    await publisher;
    const ids = [...sent.keys()];
    expect(ids.length).toBeGreaterThan(10);
    for (const s of subscribers)
      await eventually(() => ids.every((id) => s.at.has(id)), `${s.name}: all ${ids.length} events`, 30_000);
    for (const s of subscribers) {
      expect(s.errors).toEqual([]);
      const latencies = ids.map((id) => s.at.get(id)! - sent.get(id)!).sort((a, b) => a - b);
      const p = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
      console.log(
        `hardening-operations: ${s.name} subscriber got ${ids.length}/${ids.length} events; sendMessage -> client p50 ${p(0.5)} ms, p99 ${p(0.99)} ms, max ${latencies[latencies.length - 1]} ms`,
      );
    }
    const reasons: Record<string, number> = {};
    for (const reason of ['document_size', 'depth', 'total_fields', 'tokens', 'introspection'])
      reasons[reason] = await metric(strict.metricsUrl, 'router_operations_rejected_total', { reason });
    console.log(`hardening-operations: strict router_operations_rejected_total ${JSON.stringify(reasons)}`);
    expect(reasons).toEqual({ document_size: 19, depth: 3, total_fields: 2, tokens: 1, introspection: 1 });
    for (const router of [strict, loose]) expect(router.child.exitCode).toBeNull();
  }, 120_000);
});

async function sendMessage(text: string): Promise<string> {
  const res = await fetch(messages.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      query: 'mutation ($text: String!) { sendMessage(roomID: "123", text: $text, userID: "1") { id } }',
      variables: { text },
    }),
  });
  const body = (await res.json()) as { data: { sendMessage: { id: string } } };
  return body.data.sendMessage.id;
}
