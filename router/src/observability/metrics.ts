/**
 * The router's one metrics registry. Names are fixed by the design (dashboards and autoscalers
 * read them); every metric is declared here and nowhere else. Each router instance owns its
 * registry, so several routers in one process (tests, the demo) never share counters; process
 * metrics (CPU, memory, GC, event-loop lag) describe the process and are collected once for it,
 * then appended to every router's scrape. prom-client's global default registry is never used.
 *
 * Every labelled counter has a series for each label value the router knows of, at 0 from the
 * start (fixed reasons and results when the registry is made, providers and subgraphs once they
 * are tracked), so that `rate()`, `increase()` and alerts see the step to the first event instead
 * of a series born with it. Series of a subgraph that a reload removed stay at their last value.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RejectReason } from '../engine/limits.js';
import type { SubgraphErrorKind } from '../engine/subgraph-client.js';

export type HttpOperationType = 'query' | 'mutation' | 'subscription' | 'unknown';

/** The `reason` label of `router_dropped_messages_total`. */
type DropReason = 'invalid_json' | 'invalid_event' | 'backlog' | 'slow_consumer' | 'send_buffer_budget';

/** The `result` label of `router_execution_config_reloads_total`. */
type ReloadOutcome = 'success' | 'failure';

/**
 * The `result` label of `router_subscription_resumes_total`: caught up, or refused (the client's
 * error code in lower case: cursor_invalid, cursor_expired, replay_limit_exceeded,
 * resume_unsupported), or failed (the broker failed during the replay).
 */
export type ResumeOutcome =
  | 'caught_up'
  | 'cursor_invalid'
  | 'cursor_expired'
  | 'replay_limit_exceeded'
  | 'resume_unsupported'
  | 'failed';

/** What `router_events_provider_connected` reads at every scrape: an EventProvider's status. */
export interface ConnectionSource {
  readonly id: string;
  status(): { ready: true | string };
}

// Keyed by every member of each label type, so a value added there and not here fails to compile.
const DROP_REASONS = keys<DropReason>({
  invalid_json: 0,
  invalid_event: 0,
  backlog: 0,
  slow_consumer: 0,
  send_buffer_budget: 0,
});
const RELOAD_RESULTS = keys<ReloadOutcome>({ success: 0, failure: 0 });
const RESUME_RESULTS = keys<ResumeOutcome>({
  caught_up: 0,
  cursor_invalid: 0,
  cursor_expired: 0,
  replay_limit_exceeded: 0,
  resume_unsupported: 0,
  failed: 0,
});
const REJECT_REASONS = keys<RejectReason>({
  document_size: 0,
  tokens: 0,
  depth: 0,
  total_fields: 0,
  root_fields: 0,
  root_field_aliases: 0,
  cost: 0,
  operation_name_length: 0,
  introspection: 0,
  mutation_blocked: 0,
  subscription_blocked: 0,
});
const SUBGRAPH_ERROR_KINDS = keys<SubgraphErrorKind>({ timeout: 0, unreachable: 0, http: 0, graphql: 0 });

export interface RouterMetrics {
  /** This router's own metrics (no process metrics). */
  readonly registry: Registry;
  /** Open client connections: WebSocket + SSE + multipart. */
  readonly engineConnections: Gauge;
  /** Active client subscriptions. */
  readonly engineSubscriptions: Gauge;
  /** Active broker subscriptions (triggers), shared by subscriptions. */
  readonly engineTriggers: Gauge;
  /** Messages written to subscription clients. */
  readonly messagesSent: Counter;
  /** Operations ended because their client's token expired (`TOKEN_EXPIRED`). */
  readonly subscriptionsExpired: Counter;
  readonly eventsReceived: Counter<'provider_id'>;
  /** Times an event provider reached its brokers again after losing them. */
  readonly providerReconnects: Counter<'provider_id'>;
  /** 1 while a tracked provider's broker connection is up, 0 while it is down (read at scrape). */
  readonly providerConnected: Gauge<'provider_id'>;
  /** Event received -> last client write queued. */
  readonly eventFanoutSeconds: Histogram;
  readonly subgraphRequests: Counter<'subgraph'>;
  /** Subgraph requests not sent because an identical one in flight answered them (single-flight). */
  readonly subgraphRequestsDeduplicated: Counter<'subgraph'>;
  /** Subgraph requests that failed, by subgraph and SubgraphErrorKind; one per request at most. */
  readonly subgraphErrors: Counter<'subgraph' | 'kind'>;
  /** By DropReason. */
  readonly droppedMessages: Counter<'reason'>;
  /** Execution configs served by a hot reload (`success`) or refused while the current one kept serving (`failure`). */
  readonly executionConfigReloads: Counter<'result'>;
  /** Subscriptions that asked to resume from a cursor, by result. */
  readonly subscriptionResumes: Counter<'result'>;
  /** Events replayed to resuming clients (one per event and client). */
  readonly eventsReplayed: Counter;
  /** Operations refused by a limit before planning (`security`, `introspection`), by reason. */
  readonly operationsRejected: Counter<'reason'>;
  readonly httpRequests: Counter<'operation_type' | 'status'>;
  /** Queries over HTTP answered by an identical query's execution (`traffic_shaping.router.deduplicate_requests`). */
  readonly httpRequestsDeduplicated: Counter;
  readonly httpRequestDuration: Histogram<'operation_type'>;
  /** Open HTTP connections of the router's listener (WebSockets leave it once upgraded). */
  readonly httpConnections: Gauge;
  /** Connections refused, or answered 503, because `traffic_shaping.router.max_connections` was reached. */
  readonly httpConnectionsRefused: Counter;
  /** Requests cut because their headers or body did not arrive in time (408). */
  readonly httpRequestTimeouts: Counter;
  /**
   * The router's event providers: each one's connection state goes to
   * `router_events_provider_connected` at every scrape, and its counters start at 0.
   */
  trackProviders(providers: Iterable<ConnectionSource>): void;
  /** Subgraphs of an execution config about to be served: their counters start at 0. */
  trackSubgraphs(names: Iterable<string>): void;
  /** Content type of `scrape()`. */
  readonly contentType: string;
  /** Prometheus exposition text: this router's metrics, then the process's. */
  scrape(): Promise<string>;
}

export interface RouterMetricsOptions {
  /** Append process metrics (CPU, memory, GC, event-loop lag) to the scrape. Default true. */
  processMetrics?: boolean;
}

/** Every metric name the design fixes, for tests and dashboards. */
export const ROUTER_METRIC_NAMES = [
  'router_engine_connections',
  'router_engine_subscriptions',
  'router_engine_triggers',
  'router_engine_messages_sent_total',
  'router_events_received_total',
  'router_event_fanout_seconds',
  'router_subgraph_requests_total',
  'router_dropped_messages_total',
  'router_http_requests_total',
  'router_http_request_duration_seconds',
] as const;

export function createRouterMetrics(options: RouterMetricsOptions = {}): RouterMetrics {
  const registry = new Registry();
  const registers = [registry];
  const processRegistry = options.processMetrics === false ? undefined : sharedProcessRegistry();
  const connectionSources = new Map<string, ConnectionSource>();

  const eventsReceived = new Counter({
    name: 'router_events_received_total',
    help: 'Events received from brokers, by provider.',
    labelNames: ['provider_id'] as const,
    registers,
  });
  const providerReconnects = new Counter({
    name: 'router_events_provider_reconnects_total',
    help: 'Times an event provider reached its brokers again after losing them, by provider.',
    labelNames: ['provider_id'] as const,
    registers,
  });
  const subgraphRequests = new Counter({
    name: 'router_subgraph_requests_total',
    help: 'HTTP requests sent to subgraphs, by subgraph.',
    labelNames: ['subgraph'] as const,
    registers,
  });
  const subgraphRequestsDeduplicated = new Counter({
    name: 'router_subgraph_requests_deduplicated_total',
    help: 'Subgraph requests not sent because an identical request in flight answered them, by subgraph.',
    labelNames: ['subgraph'] as const,
    registers,
  });
  const subgraphErrors = new Counter({
    name: 'router_subgraph_errors_total',
    help: 'Subgraph requests that failed, by subgraph and kind: timeout, unreachable (no HTTP response), http (a status outside 2xx or no GraphQL response), graphql (a response with errors).',
    labelNames: ['subgraph', 'kind'] as const,
    registers,
  });
  const droppedMessages = new Counter({
    name: 'router_dropped_messages_total',
    help: 'Messages not delivered to a client, by reason (slow consumer, invalid event, ...).',
    labelNames: ['reason'] as const,
    registers,
  });
  const operationsRejected = new Counter({
    name: 'router_operations_rejected_total',
    help: 'Operations refused by a limit before planning (document size, tokens, depth, fields, cost, introspection, ...), by reason.',
    labelNames: ['reason'] as const,
    registers,
  });
  const executionConfigReloads = new Counter({
    name: 'router_execution_config_reloads_total',
    help: 'Hot reloads of the execution config, by result: success (served), failure (refused; the current config keeps serving).',
    labelNames: ['result'] as const,
    registers,
  });
  for (const reason of DROP_REASONS) droppedMessages.inc({ reason }, 0);
  for (const reason of REJECT_REASONS) operationsRejected.inc({ reason }, 0);
  for (const result of RELOAD_RESULTS) executionConfigReloads.inc({ result }, 0);
  const subscriptionResumes = new Counter({
    name: 'router_subscription_resumes_total',
    help: 'Subscriptions that asked to resume from a cursor, by result: caught_up, or why it was refused (cursor_invalid, cursor_expired, replay_limit_exceeded, resume_unsupported) or failed.',
    labelNames: ['result'] as const,
    registers,
  });
  for (const result of RESUME_RESULTS) subscriptionResumes.inc({ result }, 0);

  return {
    registry,
    engineConnections: new Gauge({
      name: 'router_engine_connections',
      help: 'Open client connections (WebSocket, SSE and multipart).',
      registers,
    }),
    engineSubscriptions: new Gauge({
      name: 'router_engine_subscriptions',
      help: 'Active client subscriptions.',
      registers,
    }),
    engineTriggers: new Gauge({
      name: 'router_engine_triggers',
      help: 'Active broker subscriptions (triggers), each shared by all subscriptions that need it.',
      registers,
    }),
    messagesSent: new Counter({
      name: 'router_engine_messages_sent_total',
      help: 'Messages written to subscription clients.',
      registers,
    }),
    subscriptionsExpired: new Counter({
      name: 'router_subscriptions_expired_total',
      help: "Subscriptions (and other streamed operations) ended because their client's token expired.",
      registers,
    }),
    eventsReceived,
    providerReconnects,
    providerConnected: new Gauge({
      name: 'router_events_provider_connected',
      help: "1 while the event provider's broker connection is up, 0 while it is down or reconnecting, by provider.",
      labelNames: ['provider_id'] as const,
      registers,
      collect() {
        for (const [id, source] of connectionSources)
          this.set({ provider_id: id }, source.status().ready === true ? 1 : 0);
      },
    }),
    eventFanoutSeconds: new Histogram({
      name: 'router_event_fanout_seconds',
      help: 'Time from receiving an event to queueing the write to its last client.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    subgraphRequests,
    subgraphRequestsDeduplicated,
    subgraphErrors,
    droppedMessages,
    executionConfigReloads,
    subscriptionResumes,
    eventsReplayed: new Counter({
      name: 'router_events_replayed_total',
      help: 'Events replayed to clients resuming from a cursor (one per event and client).',
      registers,
    }),
    operationsRejected,
    httpRequests: new Counter({
      name: 'router_http_requests_total',
      help: 'GraphQL requests over HTTP, by operation type and status code.',
      labelNames: ['operation_type', 'status'] as const,
      registers,
    }),
    httpRequestsDeduplicated: new Counter({
      name: 'router_http_requests_deduplicated_total',
      help: 'GraphQL queries over HTTP answered by the execution of an identical query in flight (traffic_shaping.router.deduplicate_requests).',
      registers,
    }),
    httpRequestDuration: new Histogram({
      name: 'router_http_request_duration_seconds',
      help: 'Duration of GraphQL requests over HTTP, by operation type.',
      labelNames: ['operation_type'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    httpConnections: new Gauge({
      name: 'router_http_connections',
      help: 'Open HTTP connections of the router listener (WebSocket connections are not counted once upgraded).',
      registers,
    }),
    httpConnectionsRefused: new Counter({
      name: 'router_http_connections_refused_total',
      help: 'HTTP connections closed or answered 503 because traffic_shaping.router.max_connections was reached.',
      registers,
    }),
    httpRequestTimeouts: new Counter({
      name: 'router_http_request_timeouts_total',
      help: 'HTTP requests cut with 408 because their headers or body did not arrive in time.',
      registers,
    }),
    trackProviders(providers) {
      for (const provider of providers) {
        connectionSources.set(provider.id, provider);
        eventsReceived.inc({ provider_id: provider.id }, 0);
        providerReconnects.inc({ provider_id: provider.id }, 0);
      }
    },
    trackSubgraphs(names) {
      for (const subgraph of names) {
        subgraphRequests.inc({ subgraph }, 0);
        subgraphRequestsDeduplicated.inc({ subgraph }, 0);
        for (const kind of SUBGRAPH_ERROR_KINDS) subgraphErrors.inc({ subgraph, kind }, 0);
      }
    },
    contentType: registry.contentType,
    async scrape() {
      const own = await registry.metrics();
      return processRegistry ? `${own}\n${await processRegistry.metrics()}` : own;
    },
  };
}

let processRegistry: Registry | undefined;

/** Created on first use: one event-loop monitor and one GC observer per process, not per router. */
function sharedProcessRegistry(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** The keys of a record that must name every member of `T`. */
function keys<T extends string>(all: Record<T, 0>): T[] {
  return Object.keys(all) as T[];
}
