/**
 * System under test: the EDFS router itself, with a NATS provider on the bench's nats-server and
 * the composed execution config (events subgraph + the `messages` HTTP subgraph). Defaults
 * otherwise, except a connection limit above the largest scenario and quiet logs.
 */
import { startRouter, resolveRouterConfig } from '@edfs/router';
import type { RunningSystem, SystemOptions } from './types.js';

type Gauge = { get(): Promise<{ values: { value: number; labels?: Record<string, unknown> }[] }> };

async function total(metric: unknown): Promise<number> {
  const { values } = await (metric as Gauge).get();
  return values.reduce((sum, v) => sum + v.value, 0);
}

export async function startEdfs(options: SystemOptions): Promise<RunningSystem> {
  const router = await startRouter(
    resolveRouterConfig({
      listen_addr: '127.0.0.1:0',
      execution_config: { file: { path: 'config.json' } },
      events: { providers: { nats: [{ id: 'default', url: options.natsUrl }] } },
      telemetry: { metrics: { prometheus: { enabled: false } } },
      websocket: { max_connections: 50_000 },
      log_level: 'warn',
    }),
    { executionConfig: JSON.parse(options.configJson) },
  );
  const { metrics } = router;
  return {
    url: router.url.replace(/^http/, 'ws'),
    subscriptions: () => total(metrics.engineSubscriptions),
    async details() {
      const fanout = await (metrics.eventFanoutSeconds as unknown as Gauge).get();
      const sum =
        fanout.values.find((v) => String((v as { metricName?: string }).metricName).endsWith('_sum'))
          ?.value ?? 0;
      const count =
        fanout.values.find((v) => String((v as { metricName?: string }).metricName).endsWith('_count'))
          ?.value ?? 0;
      return {
        events_received: await total(metrics.eventsReceived),
        messages_sent: await total(metrics.messagesSent),
        subgraph_requests: await total(metrics.subgraphRequests),
        dropped_messages: await total(metrics.droppedMessages),
        fanout_seconds_sum: sum,
        fanout_count: count,
      };
    },
    close: () => router.close(),
  };
}
