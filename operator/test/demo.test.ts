/**
 * `edfs demo` as a user meets it: the chat graph behind one router, queried over HTTP and
 * subscribed to over WebSocket with an independent client (graphql-ws), on free ports and the
 * in-process broker. The last spec runs the real command and stops it with SIGTERM.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { DEMO_MUTATION, DEMO_SUBSCRIPTION, banner, startDemo, type RunningDemo } from '../src/demo/demo.js';

interface Response {
  data?: Record<string, unknown> | null;
  errors?: { message: string }[];
}

async function post(url: string, query: string): Promise<Response> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query }),
  });
  return (await res.json()) as Response;
}

/** The first result of a subscription. */
function firstResult(client: Client, query: string): Promise<Response> {
  return new Promise<Response>((resolve, reject) => {
    const unsubscribe = client.subscribe<Record<string, unknown>>(
      { query },
      {
        next: (value) => {
          unsubscribe();
          resolve(value as Response);
        },
        error: (err) => reject(err instanceof Error ? err : new Error(JSON.stringify(err))),
        complete: () => reject(new Error('the subscription completed without a result')),
      },
    );
  });
}

/**
 * Calls `send` every 200 ms until `result` settles. A client cannot see when the router's broker
 * subscription is in place, and events published before it are not delivered (by design), so
 * the first events may be missed; the caller checks that what arrives is one of those it sent.
 */
async function sendUntil<T>(result: Promise<T>, send: () => Promise<void>, timeoutMs = 10_000): Promise<T> {
  let settled = false;
  const done = result.finally(() => (settled = true));
  const deadline = Date.now() + timeoutMs;
  while (!settled) {
    if (Date.now() > deadline) throw new Error(`no subscription result within ${timeoutMs} ms`);
    await send();
    await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 200))]).catch(() => undefined);
  }
  return done;
}

const wsClient = (url: string) =>
  createClient({ url, webSocketImpl: WebSocket, retryAttempts: 0, lazy: true });

describe('edfs demo', () => {
  let demo: RunningDemo;

  beforeAll(async () => {
    demo = await startDemo({ port: 0, logLevel: 'silent' });
  });

  afterAll(async () => {
    await demo?.close();
  });

  it('serves the chat graph: the messages of a room with their authors joined from the users subgraph', async () => {
    const response = await post(demo.url, '{ messages(roomID:"123") { id text user { name } } }');

    expect(response).toEqual({
      data: {
        messages: [
          { id: '1', text: 'Hello, World!', user: { name: 'Alice' } },
          { id: '2', text: 'Hi Alice, welcome to the room.', user: { name: 'Bob' } },
          { id: '3', text: 'Good to see you both!', user: { name: 'Carol' } },
        ],
      },
    });
  });

  it('pushes a message sent with sendMessage to a WebSocket subscriber, joined with its author', async () => {
    const client = wsClient(demo.subscriptionsUrl);
    try {
      const sentIds: string[] = [];
      const event = await sendUntil(firstResult(client, DEMO_SUBSCRIPTION), async () => {
        const sent = await post(demo.url, DEMO_MUTATION);
        expect(sent.errors).toBeUndefined();
        sentIds.push((sent.data?.sendMessage as { id: string }).id);
      });

      expect(event).toEqual({
        data: {
          messageAdded: {
            id: expect.any(String),
            text: 'Hello',
            createdAt: expect.any(String),
            user: { name: 'Alice' },
          },
        },
        // The in-process broker keeps no events: the first result says so.
        extensions: { delivery: 'at-most-once' },
      });
      expect(sentIds).toContain((event.data?.messageAdded as { id: string }).id);
    } finally {
      await client.dispose();
    }
  });

  it('does not deliver messages of other rooms', async () => {
    const client = wsClient(demo.subscriptionsUrl);
    try {
      const event = await sendUntil(
        firstResult(client, 'subscription { messageAdded(roomID: "456") { text user { name } } }'),
        async () => {
          await post(
            demo.url,
            'mutation { sendMessage(roomID: "123", text: "for 123", userID: "2") { id } }',
          );
          await post(
            demo.url,
            'mutation { sendMessage(roomID: "456", text: "for 456", userID: "3") { id } }',
          );
        },
      );

      expect(event).toEqual({
        data: { messageAdded: { text: 'for 456', user: { name: 'Carol' } } },
        extensions: { delivery: 'at-most-once' },
      });
    } finally {
      await client.dispose();
    }
  });

  it('prints where to go and ready-to-paste operations', () => {
    const text = banner(demo);

    expect(text).toContain(demo.url);
    expect(text).toContain(DEMO_SUBSCRIPTION);
    expect(text).toContain(DEMO_MUTATION);
    expect(text).toContain('memory://demo');
  });
});

describe('edfs demo (the command)', () => {
  it('runs until SIGTERM, then stops the router and the subgraphs and exits 0', async () => {
    const bin = fileURLToPath(new URL('../bin/edfs.js', import.meta.url));
    const child = spawn(process.execPath, [bin, 'demo'], {
      env: { ...process.env, PORT: '0', LOG_LEVEL: 'warn', NATS_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor(
        () => stdout.includes('Press Ctrl+C'),
        20_000,
        () => `no banner; stderr:\n${stderr}`,
      );
      const url = /GraphiQL\s+(http:\/\/\S+)/.exec(stdout)?.[1];
      expect(url).toBeDefined();
      const response = await post(url!, '{ messages(roomID:"456") { text user { name } } }');
      expect(response).toEqual({ data: { messages: [{ text: 'Anyone here?', user: { name: 'Bob' } }] } });

      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(stdout).toContain('demo stopped');
      await expect(fetch(url!)).rejects.toThrow();
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 30_000);
});

async function waitFor(condition: () => boolean, timeoutMs: number, describe: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
