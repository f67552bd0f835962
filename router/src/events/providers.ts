/**
 * Builds the event providers of `events.providers` in router.yaml, keyed by the id the EDFS
 * directives name (`providerId`). A NATS entry whose url starts with `memory://` becomes the
 * in-process broker; any other url a NatsProvider; every Kafka entry a KafkaProvider.
 *
 * With metrics, each provider's connection state is read into `router_events_provider_connected`
 * at every scrape (the same `status()` /health/ready asks, so the two never disagree) and its
 * reconnects are counted.
 *
 * A provider kind's client libraries are loaded only when router.yaml has a provider of that kind
 * (kafkajs alone is about 12 MB of memory): a router without Kafka never loads them.
 *
 * Invariants: nothing connects here (the caller decides when); ids are unique across all kinds,
 * because triggers and publish/request resolvers look providers up by id alone.
 */
import type { Logger } from 'pino';
import type { KafkaProviderConfig, NatsProviderConfig } from '../config/types.js';
import type { RouterMetrics } from '../observability/metrics.js';
import type { KafkaProviderOptions } from './kafka/index.js';
import { isMemoryUrl, MemoryProvider } from './memory/index.js';
import type { NatsProviderOptions } from './nats/index.js';
import type { EventProvider } from './provider.js';

export interface ProvidersConfig {
  nats: readonly NatsProviderConfig[];
  kafka?: readonly KafkaProviderConfig[];
}

export interface CreateProvidersOptions {
  logger?: Logger;
  /** Passed to every NatsProvider (reconnect pacing, timeouts). */
  nats?: Omit<NatsProviderOptions, 'logger' | 'onReconnect'>;
  /** Passed to every KafkaProvider (debounce, probe pacing, timeouts); `instanceId` defaults to `nats.instanceId`. */
  kafka?: Omit<KafkaProviderOptions, 'logger' | 'onReconnect'>;
  /** When given, the providers are tracked in it: connection state and reconnects. */
  metrics?: RouterMetrics;
}

/** Thrown for a configuration that cannot yield a provider set (e.g. a duplicate id). */
export class ProvidersConfigError extends Error {
  override name = 'ProvidersConfigError';
}

export async function createProviders(
  config: ProvidersConfig,
  options: CreateProvidersOptions = {},
): Promise<Map<string, EventProvider>> {
  const seen = new Map<string, string>();
  const claim = (id: string, where: string): void => {
    const previous = seen.get(id);
    if (previous !== undefined)
      throw new ProvidersConfigError(
        `event provider id "${id}" is used twice (${previous} and ${where}); give each provider in events.providers a unique id`,
      );
    seen.set(id, where);
  };
  config.nats.forEach((provider, i) => claim(provider.id, `events.providers.nats[${i}]`));
  (config.kafka ?? []).forEach((provider, i) => claim(provider.id, `events.providers.kafka[${i}]`));

  const providers = new Map<string, EventProvider>();
  const metrics = options.metrics;
  const kafka = config.kafka ?? [];
  const { NatsProvider } = config.nats.some((p) => !isMemoryUrl(p.url))
    ? await import('./nats/index.js')
    : { NatsProvider: undefined };
  const { KafkaProvider } =
    kafka.length > 0 ? await import('./kafka/index.js') : { KafkaProvider: undefined };
  for (const provider of config.nats) {
    providers.set(
      provider.id,
      isMemoryUrl(provider.url)
        ? new MemoryProvider(provider, { logger: options.logger })
        : new NatsProvider!(provider, {
            ...options.nats,
            logger: options.logger,
            ...(metrics
              ? { onReconnect: () => metrics.providerReconnects.inc({ provider_id: provider.id }) }
              : {}),
          }),
    );
  }
  for (const provider of kafka) {
    const instanceId = options.kafka?.instanceId ?? options.nats?.instanceId;
    providers.set(
      provider.id,
      new KafkaProvider!(provider, {
        ...options.kafka,
        ...(instanceId !== undefined ? { instanceId } : {}),
        logger: options.logger,
        ...(metrics
          ? { onReconnect: () => metrics.providerReconnects.inc({ provider_id: provider.id }) }
          : {}),
      }),
    );
  }
  metrics?.trackProviders(providers.values());
  return providers;
}
