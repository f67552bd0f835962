/**
 * The OperationService the streaming protocols talk to: subscriptions go to the engine, queries and
 * mutations (allowed over WebSocket and SSE too) run once through the gateway and complete. The
 * gateway is read once per operation, so a config swap never changes an operation mid-flight.
 */
import type { Logger } from 'pino';
import type { GatewayHolder } from '../engine/gateway-holder.js';
import { INTERNAL_ERROR } from '../engine/limits.js';
import { resultJson } from '../engine/result-json.js';
import type { SubscriptionEngine } from './engine.js';
import type { OperationService, ResultSink, Started } from './service.js';

export function createOperationService(
  gateway: GatewayHolder,
  engine: SubscriptionEngine,
  logger: Logger,
): OperationService {
  return {
    start(request, context, sink: ResultSink): Started {
      const current = gateway.current;
      if (!current)
        return { ok: false, errors: [{ message: 'the router has no execution config loaded yet' }] };
      const prepared = current.prepare(request, context);
      if (prepared.kind === 'errors') return { ok: false, errors: prepared.errors };
      if (prepared.subscription) {
        // The engine keeps the request for the life of the subscription: with the shared text
        // (equal strings are not one string; the client's own copy is dropped here).
        const kept = { ...request, query: prepared.query };
        return engine.subscribe(prepared.subscription, sink, kept, context);
      }
      if (prepared.operationKind === 'subscription')
        return { ok: false, errors: [{ message: 'this subscription has no event source' }] };
      let stopped = false;
      prepared.execute(context).then(
        (result) => {
          if (stopped) return;
          sink.next(resultJson(result));
          sink.complete();
        },
        (err: unknown) => {
          logger.error({ err }, 'operation failed');
          if (!stopped) sink.error([INTERNAL_ERROR]);
        },
      );
      return {
        ok: true,
        stop() {
          stopped = true;
        },
      };
    },
  };
}
