/**
 * Hot reload under load: 1,000 subscribers stream sequence-numbered events from a real nats-server
 * while the execution config is swapped the way Kubernetes swaps a ConfigMap volume (a new
 * timestamped directory, then an atomic rename of the `..data` symlink). Three swaps: one adds a
 * field, one removes a field some subscribers use, one is invalid.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Client } from 'graphql-ws';
import pino from 'pino';
import { wsClient } from '../src/fixtures/clients.js';
import { MESSAGES_SDL, startEventsGraph, type EventsGraph } from '../src/fixtures/events/index.js';
import { eventually } from '../src/fixtures/wait.js';
import { startNatsServer, type NatsServer } from '../src/infra/nats.js';
import { startRouter, resolveRouterConfig, type RunningRouter } from '@edfs/router';

let nats: NatsServer;
let graph: EventsGraph;
let router: RunningRouter;
let publisher: NatsConnection;
let dir: string;
const logs: string[] = [];

/** Writes `text` as `config.json` the way the kubelet updates a ConfigMap volume. */
let generation = 0;
async function swapConfig(text: string): Promise<void> {
  const version = `..2026_11_25_${++generation}`;
  await mkdir(join(dir, version));
  await writeFile(join(dir, version, 'config.json'), text);
  await symlink(version, join(dir, '..data_tmp'));
  await rename(join(dir, '..data_tmp'), join(dir, '..data'));
}

beforeAll(async () => {
  nats = await startNatsServer();
  graph = await startEventsGraph();
  publisher = await connect({ servers: nats.url });
  dir = await mkdtemp(join(tmpdir(), 'edfs-reload-'));
  await swapConfig(graph.configJson);
  await symlink('..data/config.json', join(dir, 'config.json'));
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(chunk.toString());
      done();
    },
  });
  router = await startRouter(
    resolveRouterConfig(
      {
        listen_addr: '127.0.0.1:0',
        execution_config: { file: { path: 'config.json', watch: true } },
        events: { providers: { nats: [{ id: 'default', url: nats.url }] } },
        telemetry: { metrics: { prometheus: { enabled: false } } },
      },
      { baseDir: dir },
    ),
    { logger: pino({ level: 'info' }, sink) },
  );
}, 120_000);

afterAll(async () => {
  await router?.close();
  await publisher?.close();
  await graph?.close();
  await nats?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** `router_execution_config_reloads_total` by result. */
async function reloads(): Promise<Record<string, number>> {
  const { values } = await router.metrics.executionConfigReloads.get();
  return Object.fromEntries(values.map((v) => [v.labels.result, v.value]));
}

interface Subscriber {
  ids: string[];
  errors: unknown[];
  completed: boolean;
}

describe('hot reload', () => {
  it('swaps configs under load: no dropped connection, affected subscribers end, the others miss nothing', async () => {
    const connections: Client[] = [];
    let closedSockets = 0;
    for (let i = 0; i < 10; i++) {
      const client = wsClient(router.url);
      client.on('closed', () => closedSockets++);
      connections.push(client);
    }
    // Half select `text` (removed by the second swap), half only `id` and the author.
    const withText: Subscriber[] = [];
    const withoutText: Subscriber[] = [];
    for (let i = 0; i < 1000; i++) {
      const usesText = i % 2 === 0;
      const sub: Subscriber = { ids: [], errors: [], completed: false };
      (usesText ? withText : withoutText).push(sub);
      const query = usesText
        ? 'subscription { messageAdded(roomID: "123") { id text } }'
        : 'subscription { messageAdded(roomID: "123") { id user { name } } }';
      connections[i % 10]!.subscribe(
        { query },
        {
          next: (value) => {
            const data = value.data as { messageAdded?: { id: string } } | null;
            if (data?.messageAdded) sub.ids.push(data.messageAdded.id);
            if (value.errors) sub.errors.push(...value.errors);
          },
          error: (err) => sub.errors.push(err),
          complete: () => (sub.completed = true),
        },
      );
    }
    await eventually(
      async () =>
        router.engine.triggerCount === 1 &&
        (await router.metrics.engineSubscriptions.get()).values[0]?.value === 1000,
      '1,000 subscriptions',
    );

    // Publish a numbered event every 10 ms for the whole test.
    const published: string[] = [];
    let publishing = true;
    const load = (async () => {
      for (let seq = 1; publishing; seq++) {
        const id = `s${seq}`;
        publisher.publish('room.123.messages', JSON.stringify({ __typename: 'Message', id }));
        published.push(id);
        await new Promise((r) => setTimeout(r, 10));
      }
      await publisher.flush();
    })();
    const waitForEvents = (n: number) => {
      const target = published.length + n;
      return eventually(() => published.length >= target, `${n} more events`);
    };
    const gatewayChange = async (swap: () => Promise<void>) => {
      const before = router.gateway.current;
      await swap();
      await eventually(() => router.gateway.current !== before, 'the new config to be served');
    };

    await waitForEvents(20);
    // 1. A config that adds a field: everybody keeps streaming.
    await gatewayChange(() =>
      swapConfig(
        graph.composeWith(MESSAGES_SDL.replace('userID: ID!\n  }', 'userID: ID!\n    length: Int!\n  }')),
      ),
    );
    await waitForEvents(20);
    // 2. A config without Message.text: its subscribers get an error, then complete.
    await gatewayChange(() => swapConfig(graph.composeWith(MESSAGES_SDL.replace('text: String!\n', ''))));
    await waitForEvents(20);
    // 3. An invalid config: refused, the current one keeps serving.
    const refusedBefore = logs.filter((l) => l.includes('refused')).length;
    const served = router.gateway.current;
    await swapConfig('{"engineConfig": {"graphqlSchema": "type Query {"}}');
    await eventually(
      () => logs.filter((l) => l.includes('refused')).length > refusedBefore,
      'the invalid config to be refused',
    );
    expect(router.gateway.current).toBe(served);
    expect(await reloads()).toEqual({ success: 2, failure: 1 });
    await waitForEvents(20);
    publishing = false;
    await load;

    // Subscribers without `text` got every event, in order, exactly once.
    await eventually(
      () => withoutText.every((s) => s.ids.length === published.length),
      'every event at every unaffected subscriber',
    );
    for (const s of withoutText) {
      expect(s.ids).toEqual(published);
      expect(s.errors).toEqual([]);
      expect(s.completed).toBe(false);
    }
    // Subscribers with `text` streamed until the second swap, then got an error and complete.
    for (const s of withText) {
      expect(s.completed).toBe(true);
      expect(JSON.stringify(s.errors)).toMatch(/text/);
      expect(s.ids).toEqual(published.slice(0, s.ids.length));
      expect(s.ids.length).toBeGreaterThanOrEqual(40);
    }
    // Nobody lost a connection, and the one broker subscription was kept throughout.
    expect(closedSockets).toBe(0);
    expect(router.engine.triggerCount).toBe(1);
    expect(logs.join('')).toContain('500 subscription(s) kept, 500 ended');
    await Promise.all(connections.map((c) => c.dispose()));
  }, 120_000);

  it('router.reload() refuses an unreadable config with a message naming the file', async () => {
    await swapConfig('not json');
    const result = await router.reload();
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.error).toMatch(/config\.json: not valid JSON/);
    expect(await reloads()).toEqual({ success: 2, failure: 2 });
  });
});
