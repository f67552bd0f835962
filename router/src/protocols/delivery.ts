/**
 * What every client protocol reports about delivery, whatever its transport: one call per result
 * written, one per client dropped for not keeping up. The protocols stay free of the metrics
 * library; `deliveryMetrics` binds these hooks to the router's registry.
 */
import type { RouterMetrics } from '../observability/metrics.js';

export interface DeliveryHooks {
  /** One `next` was handed to the transport. */
  messageSent(): void;
  /** A result was not delivered because the client's send buffer was over the limit. */
  slowConsumer(): void;
}

export function deliveryMetrics(metrics: RouterMetrics): DeliveryHooks {
  return {
    messageSent: () => metrics.messagesSent.inc(),
    slowConsumer: () => metrics.droppedMessages.inc({ reason: 'slow_consumer' }),
  };
}
