/**
 * The EventBus: what the executor needs from the brokers to publish and request, by provider id,
 * and its implementation over the configured event providers. Keeps the executor ignorant of
 * providers; an unknown provider id is an error naming the key to add to router.yaml.
 */
import type { EventProvider } from '../events/provider.js';
import type { SubjectLimits } from './subject-templates.js';

export interface EventBus {
  publish(providerId: string, subject: string, data: Uint8Array): Promise<void>;
  request(providerId: string, subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  /** Bounds of rendered subjects (router.yaml `events.subjects`); default DEFAULT_SUBJECT_LIMITS. */
  subjectLimits?: SubjectLimits;
}

export function providerBus(providers: Map<string, EventProvider>, subjectLimits?: SubjectLimits): EventBus {
  const get = (id: string): EventProvider => {
    const provider = providers.get(id);
    if (!provider)
      throw new Error(
        `event provider "${id}" is not configured (add it under events.providers in router.yaml)`,
      );
    return provider;
  };
  return {
    publish: (id, subject, data) => get(id).publish(subject, data),
    request: (id, subject, data, timeoutMs) => get(id).request(subject, data, timeoutMs),
    ...(subjectLimits ? { subjectLimits } : {}),
  };
}
