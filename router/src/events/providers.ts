/**
 * Builds the event providers of `events.providers` in router.yaml, keyed by the id the EDFS
 * directives name (`providerId`). A NATS entry whose url starts with `memory://` becomes the
 * in-process broker; any other url a NatsProvider. Kafka providers come from their own module
 * (router/src/events/kafka); here Kafka entries only take part in the id check.
 *
 * Invariants: nothing connects here (the caller decides when); ids are unique across all kinds,
 * because triggers and publish/request resolvers look providers up by id alone.
 */
import type { Logger } from 'pino';
import type { KafkaProviderConfig, NatsProviderConfig } from '../config/types.js';
import { isMemoryUrl, MemoryProvider } from './memory/index.js';
import { NatsProvider, type NatsProviderOptions } from './nats/index.js';
import type { EventProvider } from './provider.js';

export interface ProvidersConfig {
  nats: readonly NatsProviderConfig[];
  kafka?: readonly KafkaProviderConfig[];
}

export interface CreateProvidersOptions {
  logger?: Logger;
  /** Passed to every NatsProvider (reconnect pacing, timeouts). */
  nats?: Omit<NatsProviderOptions, 'logger'>;
}

/** Thrown for a configuration that cannot yield a provider set (e.g. a duplicate id). */
export class ProvidersConfigError extends Error {
  override name = 'ProvidersConfigError';
}

export function createProviders(
  config: ProvidersConfig,
  options: CreateProvidersOptions = {},
): Map<string, EventProvider> {
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
  for (const provider of config.nats) {
    providers.set(
      provider.id,
      isMemoryUrl(provider.url)
        ? new MemoryProvider(provider, { logger: options.logger })
        : new NatsProvider(provider, { ...options.nats, logger: options.logger }),
    );
  }
  // Kafka entries are skipped on purpose: Kafka providers come from their own module.
  return providers;
}
