/**
 * The chat example with a real nats-server between the processes, as its README runs it: the
 * messages subgraph as its own process with NATS_URL, a router configured by
 * examples/chat/router.yaml with the same NATS_URL, and `edfs demo` with NATS_URL. Subscribers
 * are an independent graphql-ws client; events also come from a plain NATS client, as `nats pub`
 * would send them.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect } from '@nats-io/transport-node';
import type { Client } from 'graphql-ws';
import { composeSupergraph, loadComposeInputs } from '@edfs/operator';
import { DEMO_MUTATION, DEMO_SUBSCRIPTION, startDemo } from '@edfs/operator/demo/demo';
import { parseRouterConfig, startRouter, type RunningRouter } from '@edfs/router';
import { wsClient as graphqlWsClient, post as postQuery } from '../src/fixtures/clients.js';
import { startProcess, stopProcess } from '../src/fixtures/processes.js';
import { startNatsServer, type NatsServer } from '../src/infra/nats.js';

const chat = (path: string) => fileURLToPath(new URL(`../../examples/chat/${path}`, import.meta.url));

interface Response {
  data?: Record<string, unknown> | null;
  errors?: unknown[];
}

let nats: NatsServer;

beforeAll(async () => {
  nats = await startNatsServer();
}, 300_000); // a first run installs nats-server

afterAll(async () => {
  await nats?.stop();
});

/**
 * Subscribes and calls `send` every 200 ms until the first result arrives: a client cannot see
 * when the router's NATS subscription is in place, and earlier events are (by design) not
 * delivered.
 */
async function firstResultWhile(
  client: Client,
  query: string,
  send: () => Promise<unknown>,
): Promise<Response> {
  let settled = false;
  const result = new Promise<Response>((resolve, reject) => {
    const stop = client.subscribe(
      { query },
      {
        next: (value) => (stop(), resolve(value as Response)),
        error: (err) => reject(err instanceof Error ? err : new Error(JSON.stringify(err))),
        complete: () => undefined,
      },
    );
  }).finally(() => (settled = true));
  const deadline = Date.now() + 15_000;
  while (!settled) {
    if (Date.now() > deadline) throw new Error('no subscription result within 15 s');
    await send();
    await Promise.race([result, new Promise((resolve) => setTimeout(resolve, 200))]).catch(() => undefined);
  }
  return result;
}

const wsClient = (httpUrl: string) => graphqlWsClient(httpUrl, { lazy: true });
const post = (url: string, query: string) => postQuery<Response>(url, query);

describe('chat over a nats-server: subgraphs as processes, the router of router.yaml', () => {
  let messages: { url: string; child: ChildProcess };
  let users: { url: string; child: ChildProcess };
  let router: RunningRouter;

  beforeAll(async () => {
    [messages, users] = await Promise.all([
      startProcess(chat('subgraphs/messages/server.js'), {
        PORT: '0',
        HOST: '127.0.0.1',
        NATS_URL: nats.url,
      }),
      startProcess(chat('subgraphs/users/server.js'), { PORT: '0', HOST: '127.0.0.1' }),
    ]);
    const urls: Record<string, string> = { messages: messages.url, users: users.url };
    const composed = composeSupergraph(
      loadComposeInputs([chat('graph.yaml')]).map((s) =>
        urls[s.name] ? { ...s, routingUrl: urls[s.name] } : s,
      ),
    );
    if (!composed.ok) throw new Error(JSON.stringify(composed.errors));
    const config = parseRouterConfig(readFileSync(chat('router.yaml'), 'utf8'), {
      env: { NATS_URL: nats.url },
      baseDir: chat(''),
    });
    // router.yaml as the README runs it, on a free port instead of 3002.
    router = await startRouter(
      { ...config, listenAddr: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' },
      { executionConfig: composed.config },
    );
  }, 60_000);

  afterAll(async () => {
    await router?.close();
    await Promise.all([stopProcess(messages?.child), stopProcess(users?.child)]);
  });

  it('router.yaml points the default provider at NATS_URL', () => {
    expect(router.config.events.providers.nats).toEqual([{ id: 'default', url: nats.url }]);
  });

  it('sendMessage on the messages process reaches a router subscriber through NATS, author joined', async () => {
    const client = wsClient(router.url);
    try {
      const sent: string[] = [];
      const event = await firstResultWhile(client, DEMO_SUBSCRIPTION, async () => {
        const response = await post(router.url, DEMO_MUTATION);
        sent.push((response.data?.sendMessage as { id: string }).id);
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
        // Core NATS keeps no events: the first result says so.
        extensions: { delivery: 'at-most-once' },
      });
      expect(sent).toContain((event.data?.messageAdded as { id: string }).id);
    } finally {
      await client.dispose();
    }
  });

  it('an event from any NATS client (as `nats pub` sends it) is delivered fully resolved', async () => {
    const nc = await connect({ servers: nats.url });
    const client = wsClient(router.url);
    try {
      const event = await firstResultWhile(
        client,
        'subscription { messageAdded(roomID: "123") { id text user { name email } } }',
        async () => nc.publish('room.123.messages', '{"__typename":"Message","id": "1"}'),
      );

      expect(event).toEqual({
        data: {
          messageAdded: {
            id: '1',
            text: 'Hello, World!',
            user: { name: 'Alice', email: 'alice@wonderland.com' },
          },
        },
        extensions: { delivery: 'at-most-once' },
      });
    } finally {
      await client.dispose();
      await nc.close();
    }
  });

  it('the messages process stops cleanly on SIGTERM, closing its NATS connection', async () => {
    expect(await stopProcess(messages.child)).toBe(0);
  });
});

describe('edfs demo with NATS_URL', () => {
  it('publishes and subscribes through the nats-server instead of the in-process broker', async () => {
    const demo = await startDemo({ port: 0, natsUrl: nats.url, logLevel: 'silent' });
    const nc = await connect({ servers: nats.url });
    const seen: string[] = [];
    const watcher = nc.subscribe('room.>', {
      callback: (_err, msg) => {
        seen.push(`${msg.subject} ${msg.string()}`);
      },
    });
    await nc.flush(); // the watcher is registered before anything is sent
    const client = wsClient(demo.url);
    try {
      expect(demo.natsUrl).toBe(nats.url);
      const event = await firstResultWhile(client, DEMO_SUBSCRIPTION, () => post(demo.url, DEMO_MUTATION));

      const id = (event.data?.messageAdded as { id: string }).id;
      expect(event.data?.messageAdded).toEqual(
        expect.objectContaining({ text: 'Hello', user: { name: 'Alice' } }),
      );
      await nc.flush();
      expect(seen).toContain(`room.123.messages {"__typename":"Message","id":"${id}"}`);
    } finally {
      watcher.unsubscribe();
      await client.dispose();
      await nc.close();
      await demo.close();
    }
  });
});
