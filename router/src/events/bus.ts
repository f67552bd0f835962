/**
 * The EventBus the executor publishes and requests through, over the configured providers. An
 * unknown provider id is an error naming the key to add to router.yaml.
 */
import type { EventBus } from '../engine/event-fields.js';
import type { EventProvider } from './provider.js';
import type { SubjectLimits } from './subjects.js';

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
