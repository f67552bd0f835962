/**
 * `router_events_provider_connected{provider_id}` on a running router's `/metrics`, against real
 * brokers: a nats-server (`src/infra/nats.ts`) stopped and started again on the same port, and a
 * Kafka broker (`src/infra/kafka.ts`) restarted. The gauge is 1 while connected, 0 during the
 * outage, 1 again once the router is back, and agrees with /health/ready throughout.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startRouter, resolveRouterConfig, createLogger, type RunningRouter } from '@edfs/router';
import { metric } from '../src/fixtures/metrics.js';
import { eventually } from '../src/fixtures/wait.js';
import { startKafka, type KafkaBroker } from '../src/infra/kafka.js';
import { startNatsServer, type NatsServer } from '../src/infra/nats.js';

/** Any execution config will do: the subgraph behind it is never asked. */
const EXECUTION_CONFIG = {
  engineConfig: {
    graphqlSchema: 'schema { query: Query } type Query { hello: String }',
    datasourceConfigurations: [
      {
        id: '0',
        rootNodes: [{ typeName: 'Query', fieldNames: ['hello'] }],
        customGraphql: { fetch: { url: { staticVariableContent: 'http://127.0.0.1:1/graphql' } } },
      },
    ],
  },
  subgraphs: [{ id: '0', name: 'hello', routingUrl: 'http://127.0.0.1:1/graphql' }],
};

async function routerWith(providers: Record<string, unknown>): Promise<RunningRouter> {
  return startRouter(
    resolveRouterConfig({
      listen_addr: '127.0.0.1:0',
      execution_config: { file: { path: 'unused.json', watch: false } },
      events: { providers },
      telemetry: { metrics: { prometheus: { listen_addr: '127.0.0.1:0' } } },
    }),
    { logger: createLogger({ level: 'silent' }), executionConfig: EXECUTION_CONFIG },
  );
}

const connected = (router: RunningRouter, id: string) =>
  metric(router.metricsUrl!, 'router_events_provider_connected', { provider_id: id });
const ready = async (router: RunningRouter) => (await fetch(`${router.baseUrl}/health/ready`)).status;

describe('NATS', () => {
  let nats: NatsServer;
  let router: RunningRouter;
  beforeAll(async () => {
    nats = await startNatsServer();
    router = await routerWith({ nats: [{ id: 'chat', url: nats.url }] });
  }, 180_000);
  afterAll(async () => {
    await router?.close();
    await nats?.stop();
  });

  it('a nats-server stopped and started again: 1, then 0 while it is gone, then 1', async () => {
    expect(await connected(router, 'chat')).toBe(1);
    expect(await ready(router)).toBe(200);

    const port = nats.port;
    await nats.stop();
    await eventually(async () => (await connected(router, 'chat')) === 0, 'the gauge at 0', 10_000);
    expect(await ready(router)).toBe(503);

    nats = await startNatsServer({ port });
    await eventually(async () => (await connected(router, 'chat')) === 1, 'the gauge at 1', 20_000);
    expect(await ready(router)).toBe(200);
    expect(await metric(router.metricsUrl!, 'router_events_provider_reconnects_total')).toBe(1);
  }, 60_000);
});

describe('Kafka', () => {
  let broker: KafkaBroker;
  let router: RunningRouter;
  beforeAll(async () => {
    broker = await startKafka();
    router = await routerWith({ nats: [], kafka: [{ id: 'audit', brokers: broker.brokers }] });
  }, 300_000);
  afterAll(async () => {
    await router?.close();
    await broker?.stop();
  });

  it('a restarted broker: 1, then 0 while it is down, then 1', async () => {
    expect(await connected(router, 'audit')).toBe(1);

    const seen = new Set<number>();
    const restarting = broker.restart({ downMs: 5000 });
    let watching = true;
    const watch = (async () => {
      while (watching) {
        seen.add(await connected(router, 'audit'));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await restarting;
    await eventually(
      async () => seen.has(0) && (await connected(router, 'audit')) === 1,
      'the gauge at 0, then at 1',
      30_000,
    );
    watching = false;
    await watch;
    expect(await ready(router)).toBe(200);
  }, 90_000);
});
