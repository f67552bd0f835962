/**
 * System under test: the EDFS router itself, with a NATS provider on the bench's nats-server and
 * the composed execution config (events subgraph + the `messages` HTTP subgraph). Defaults
 * otherwise, except a connection limit above the largest scenario and quiet logs.
 *
 * Three variants of the same router and graph:
 * - `edfs`: the subscription on core NATS (at-most-once, no cursors);
 * - `edfs-cursors`: the same subject read from a JetStream stream through a durable consumer;
 *   every result carries a cursor (what users get with `streamConfiguration`);
 * - `edfs-jetstream`: the stream variant with cursors switched off inside this process (the NATS
 *   provider told that no subscription is resumable), which no configuration offers. It is
 *   there to split the stream variant's cost between reading JetStream and the cursors.
 */
import { startRouter, resolveRouterConfig } from '@edfs/router';
import type { RunningSystem, SystemOptions } from './types.js';

type Gauge = { get(): Promise<{ values: { value: number; labels?: Record<string, unknown> }[] }> };

async function total(metric: unknown): Promise<number> {
  const { values } = await (metric as Gauge).get();
  return values.reduce((sum, v) => sum + v.value, 0);
}

export type EdfsVariant = 'core' | 'cursors' | 'jetstream';

export async function startEdfs(
  options: SystemOptions,
  variant: EdfsVariant = 'core',
): Promise<RunningSystem> {
  const router = await startRouter(
    resolveRouterConfig({
      listen_addr: '127.0.0.1:0',
      execution_config: { file: { path: 'config.json' } },
      events: { providers: { nats: [{ id: 'default', url: options.natsUrl }] } },
      telemetry: { metrics: { prometheus: { enabled: false } } },
      websocket: { max_connections: 50_000 },
      log_level: 'warn',
    }),
    { executionConfig: JSON.parse(variant === 'core' ? options.configJson : options.streamConfigJson) },
  );
  if (variant === 'jetstream') {
    // Read before the first subscription (each Trigger asks once, when it is created).
    const nats = router.providers.get('default');
    if (!nats?.resumable) throw new Error('edfs-jetstream: the NATS provider no longer has resumable()');
    nats.resumable = () => false;
  }
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
