/**
 * Graceful drain of a real router process: 1,000 open, subscribed WebSockets; SIGTERM; every
 * socket is closed with 1001, spread over the drain window; readiness fails at once; new
 * connections are refused; the process exits 0 before the window ends.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { startEventsGraph, type EventsGraph } from '../src/fixtures/events/index.js';
import { freePort } from '../src/infra/nats.js';

const ROUTER_BIN = fileURLToPath(new URL('../../router/bin/edfs-router.js', import.meta.url));
const WINDOW_MS = 3000;

let graph: EventsGraph;
let dir: string;
let router: ChildProcess;
let port: number;
let stderr = '';

beforeAll(async () => {
  graph = await startEventsGraph();
  dir = await mkdtemp(join(tmpdir(), 'edfs-drain-'));
  port = await freePort();
  await writeFile(join(dir, 'config.json'), graph.configJson);
  await writeFile(
    join(dir, 'router.yaml'),
    [
      `listen_addr: 127.0.0.1:${port}`,
      'shutdown_delay: 3s',
      'log_level: warn',
      'execution_config: { file: { path: ./config.json } }',
      'events: { providers: { nats: [{ id: default, url: "memory://drain" }] } }',
      'telemetry: { metrics: { prometheus: { enabled: false } } }',
    ].join('\n'),
  );
  router = spawn(process.execPath, [ROUTER_BIN, '-c', join(dir, 'router.yaml')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  router.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/health/ready`)).ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`router did not start:\n${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}, 60_000);

afterAll(async () => {
  if (router && router.exitCode === null) router.kill('SIGKILL');
  await graph?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A subscribed graphql-transport-ws client; resolves once acknowledged and subscribed. */
function openClient(): Promise<{ closed: Promise<{ code: number; at: number }> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws');
    const closed = new Promise<{ code: number; at: number }>((res) =>
      ws.on('close', (code) => res({ code, at: Date.now() })),
    );
    ws.on('error', reject);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init' })));
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString()) as { type: string };
      if (msg.type === 'connection_ack') {
        ws.send(
          JSON.stringify({
            id: '1',
            type: 'subscribe',
            payload: { query: 'subscription { messageAdded(roomID: "123") { id } }' },
          }),
        );
        resolve({ closed });
      }
    });
  });
}

describe('graceful drain', () => {
  it('SIGTERM closes 1,000 WebSockets with 1001 spread over the window, then exits 0', async () => {
    const clients = [];
    for (let i = 0; i < 1000; i += 100)
      clients.push(...(await Promise.all(Array.from({ length: 100 }, () => openClient()))));
    const exited = new Promise<{ code: number | null; at: number }>((resolve) =>
      router.once('exit', (code) => resolve({ code, at: Date.now() })),
    );

    const start = Date.now();
    router.kill('SIGTERM');
    // Readiness fails at once (503 on a live connection, or the listener is already closed).
    await new Promise((r) => setTimeout(r, 100));
    const ready = await fetch(`http://127.0.0.1:${port}/health/ready`).then(
      (res) => res.status,
      () => 'refused',
    );
    expect([503, 'refused']).toContain(ready);
    // New WebSocket connections are refused.
    const late = await new Promise<string>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws');
      ws.on('open', () => resolve('open'));
      ws.on('error', () => resolve('refused'));
      ws.on('unexpected-response', () => resolve('refused'));
    });
    expect(late).toBe('refused');

    const closes = await Promise.all(clients.map((c) => c.closed));
    const { code, at } = await exited;
    expect(code).toBe(0);
    expect(closes.every((c) => c.code === 1001)).toBe(true);
    // Spread: the closes span most of the window, and no 100 ms slice holds a herd.
    const offsets = closes.map((c) => c.at - start).sort((a, b) => a - b);
    expect(offsets[offsets.length - 1]! - offsets[0]!).toBeGreaterThan(WINDOW_MS * 0.5);
    const slices = new Map<number, number>();
    for (const o of offsets) slices.set(Math.floor(o / 100), (slices.get(Math.floor(o / 100)) ?? 0) + 1);
    expect(Math.max(...slices.values())).toBeLessThan(150);
    // The process is gone before the window ends.
    expect(at - start).toBeLessThan(WINDOW_MS + 500);
  }, 60_000);
});
