/**
 * Resumable subscriptions under failover, on a real nats-server with JetStream: 500 subscribers
 * (graphql-ws and graphql-sse clients in this process, EventSources in a real browser) reach two
 * router processes through a balancer, a producer publishes 500 events/s, and meanwhile one router
 * drains (SIGTERM; its clients reconnect to the other) and then the other is killed (SIGKILL; a
 * new one starts). Every client must end with every event exactly once, in order.
 *
 * The same scenario without resuming (the Node clients do not keep their cursor, as before this
 * feature) runs first, and both outcomes are printed side by side: the events clients lose
 * without cursors is the figure resuming closes.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import type { Browser } from 'playwright-core';
import { startBalancer, type Balancer } from '../src/fixtures/balancer.js';
import { startEventsGraph, type EventsGraph } from '../src/fixtures/events/index.js';
import { runResumeScenario, summarize, type ScenarioOutcome } from '../src/fixtures/resume-scenario.js';
import { startRouterProcess, type RouterProcess } from '../src/fixtures/router-process.js';
import { launchBrowser } from '../src/infra/browser.js';
import { startNatsServer, type NatsServer } from '../src/infra/nats.js';

const CLIENTS = { ws: 300, sse: 190, browser: 10 };
const RATE = 500;
const DURATION_MS = 9_000;

let nats: NatsServer;
let graph: EventsGraph;
let publisher: NatsConnection;
let browser: Browser;
const routers: RouterProcess[] = [];
const outcomes: Record<string, ScenarioOutcome> = {};

beforeAll(async () => {
  [nats, graph, browser] = await Promise.all([
    startNatsServer({ jetstream: true }),
    startEventsGraph(),
    launchBrowser(),
  ]);
  publisher = await connect({ servers: nats.url });
}, 300_000);

afterAll(async () => {
  await Promise.all(routers.map((r) => r.kill()));
  await browser?.close();
  await publisher?.close();
  await graph?.close();
  await nats?.stop();
  for (const [title, outcome] of Object.entries(outcomes)) console.log(summarize(title, outcome));
});

const startRouter = async () => {
  const router = await startRouterProcess(graph.configJson, [
    `events: { providers: { nats: [{ id: default, url: "${nats.url}" }] } }`,
    'shutdown_delay: 3s',
    'log_level: warn',
  ]);
  routers.push(router);
  return router;
};

/** Two routers behind a balancer, a fresh stream; the drain-then-kill disruption. */
async function scenario(resume: boolean, browserClients: number): Promise<ScenarioOutcome> {
  const jsm = await jetstreamManager(publisher);
  await jsm.streams.delete('MESSAGES').catch(() => undefined);
  await jsm.streams.add({ name: 'MESSAGES', subjects: ['stream.messages'] });
  const [a, b] = [await startRouter(), await startRouter()];
  const balancer: Balancer = await startBalancer([a.port, b.port], 2);
  try {
    return await runResumeScenario({
      balancer,
      query: 'subscription { messageStream { id } }',
      eventId: (result) => {
        const id = (result as { data?: { messageStream?: { id: string } } }).data?.messageStream?.id ?? '';
        return /^e\d+$/.test(id) ? Number(id.slice(1)) : NaN;
      },
      publish: async (ns) => {
        for (const n of ns)
          publisher.publish(
            'stream.messages',
            JSON.stringify({ __typename: 'Message', id: n ? `e${n}` : 'w' }),
          );
      },
      clients: { ...CLIENTS, browser: browserClients },
      browser,
      resume,
      rate: RATE,
      durationMs: DURATION_MS,
      // Without cursors clients never get everything: no need to wait long for them.
      settleMs: resume ? 120_000 : 20_000,
      disrupt: async () => {
        await new Promise((r) => setTimeout(r, 2_000));
        // A terminating pod leaves the endpoints, then gets SIGTERM: its clients go to the other.
        balancer.remove(a.port);
        const drained = a.drain();
        await new Promise((r) => setTimeout(r, 3_500));
        // The other one dies at once; a new one starts.
        balancer.remove(b.port);
        await b.kill();
        const c = await startRouter();
        balancer.add(c.port);
        expect(await drained).toBe(0);
      },
    });
  } finally {
    await balancer.close();
    await Promise.all(routers.splice(0).map((r) => r.kill()));
  }
}

describe('a drain, then a SIGKILL, under 500 events/s to 500 subscribers', () => {
  it('without cursors, clients lose the events published while they reconnect (the comparison)', async () => {
    const outcome = (outcomes['without resuming (no cursor kept)'] = await scenario(false, 0));
    const lost = outcome.clients.reduce((sum, c) => sum + c.missing, 0);
    expect(lost).toBeGreaterThan(0);
  }, 240_000);

  it('with cursors, every client gets every event exactly once, in order', async () => {
    const outcome = (outcomes['resuming from cursors'] = await scenario(true, CLIENTS.browser));
    const bad = outcome.clients.filter((c) => c.missing || c.duplicates || c.outOfOrder);
    expect(bad).toEqual([]);
    expect(outcome.clients).toHaveLength(CLIENTS.ws + CLIENTS.sse + CLIENTS.browser);
  }, 240_000);
});
