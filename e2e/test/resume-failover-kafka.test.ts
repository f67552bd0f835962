/**
 * Resumable subscriptions under a rolling restart, on a real Apache Kafka broker: 500 subscribers
 * (graphql-ws and graphql-sse clients, EventSources in a real browser) reach two router processes
 * through a balancer, a producer sends 500 events/s round-robin over a topic's three partitions,
 * and meanwhile both routers are replaced one after the other (a new one starts, the old one
 * leaves the balancer and drains), as a Deployment rollout does. Every client must end with every
 * event exactly once, in order within each partition.
 *
 * The same rollout without resuming (the Node clients do not keep their cursor) runs first, and
 * both outcomes are printed side by side.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Browser } from 'playwright-core';
import type { Producer } from 'kafkajs';
import { startBalancer } from '../src/fixtures/balancer.js';
import { kafkaPeer, startKafkaGraph, type KafkaGraph, type KafkaPeer } from '../src/fixtures/kafka/index.js';
import { runResumeScenario, summarize, type ScenarioOutcome } from '../src/fixtures/resume-scenario.js';
import { startRouterProcess, type RouterProcess } from '../src/fixtures/router-process.js';
import { launchBrowser } from '../src/infra/browser.js';
import { startKafka, type KafkaBroker } from '../src/infra/kafka.js';

const CLIENTS = { ws: 300, sse: 190, browser: 10 };
const PARTITIONS = 3;

let kafka: KafkaBroker;
let graph: KafkaGraph;
let peer: KafkaPeer;
let producer: Producer;
let browser: Browser;
const routers: RouterProcess[] = [];
const outcomes: Record<string, ScenarioOutcome> = {};
let run = 0;

beforeAll(async () => {
  [kafka, graph, browser] = await Promise.all([startKafka(), startKafkaGraph(), launchBrowser()]);
  peer = await kafkaPeer(kafka.brokers);
  producer = peer.kafka.producer();
  await producer.connect();
}, 300_000);

afterAll(async () => {
  await Promise.all(routers.map((r) => r.kill()));
  await producer?.disconnect();
  await browser?.close();
  await peer?.close();
  await graph?.close();
  await kafka?.stop();
  for (const [title, outcome] of Object.entries(outcomes)) console.log(summarize(title, outcome));
});

async function scenario(resume: boolean, browserClients: number): Promise<ScenarioOutcome> {
  // A topic of its own per run: the graph's field reads `messages`, so each run renames it in
  // the execution config it serves.
  const topic = `resume-${++run}`;
  await peer.createTopics([topic], PARTITIONS);
  const config = JSON.stringify(graph.config).replace('"topics":["messages"]', `"topics":["${topic}"]`);
  const startRouter = async () => {
    const router = await startRouterProcess(config, [
      `events: { providers: { kafka: [{ id: my-kafka, brokers: ["${kafka.brokers.join('", "')}"] }] } }`,
      'shutdown_delay: 3s',
      'log_level: warn',
    ]);
    routers.push(router);
    return router;
  };
  const [a, b] = [await startRouter(), await startRouter()];
  const balancer = await startBalancer([a.port, b.port], 2);
  /** Replaces `old` as a rollout does: the new one is ready first, then the old one drains. */
  const replace = async (old: RouterProcess) => {
    const next = await startRouter();
    balancer.add(next.port);
    balancer.remove(old.port);
    expect(await old.drain()).toBe(0);
  };
  try {
    return await runResumeScenario({
      balancer,
      query: 'subscription { allMessages { id } }',
      eventId: (result) => {
        const id = (result as { data?: { allMessages?: { id: string } } }).data?.allMessages?.id ?? '';
        return /^e\d+$/.test(id) ? Number(id.slice(1)) : NaN;
      },
      publish: async (ns) => {
        await producer.send({
          topic,
          acks: -1,
          messages: ns.map((n) => ({
            partition: n % PARTITIONS,
            value: JSON.stringify({ __typename: 'Message', id: n ? `e${n}` : 'w' }),
          })),
        });
      },
      laneOf: (n) => n % PARTITIONS,
      clients: { ...CLIENTS, browser: browserClients },
      browser,
      resume,
      rate: 500,
      durationMs: 9_000,
      // Without cursors clients never get everything: no need to wait long for them.
      settleMs: resume ? 120_000 : 20_000,
      disrupt: async () => {
        await new Promise((r) => setTimeout(r, 1_500));
        await replace(a);
        await replace(b);
      },
    });
  } finally {
    await balancer.close();
    await Promise.all(routers.splice(0).map((r) => r.kill()));
  }
}

describe('a rolling restart of two routers under 500 events/s to 500 subscribers', () => {
  it('without cursors (the comparison, printed): every client stays subscribed through the rollout', async () => {
    // What clients lose or get twice here depends on where the replica they reconnect to reads
    // the topic (one behind hands a newcomer events from before it came again, one ahead skips
    // what came meanwhile): printed, not asserted. Only a cursor says where a client was.
    const outcome = (outcomes['Kafka, without resuming (no cursor kept)'] = await scenario(false, 0));
    expect(outcome.clients.filter((c) => c.errors.length > 0 || c.received === 0)).toEqual([]);
  }, 300_000);

  it('with cursors, every client gets every event exactly once, in order per partition', async () => {
    const outcome = (outcomes['Kafka, resuming from cursors'] = await scenario(true, CLIENTS.browser));
    expect(outcome.clients.filter((c) => c.missing || c.duplicates || c.outOfOrder)).toEqual([]);
    expect(outcome.clients).toHaveLength(CLIENTS.ws + CLIENTS.sse + CLIENTS.browser);
  }, 300_000);
});
