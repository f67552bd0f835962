/**
 * The router's one metrics registry. Names are fixed by the design (dashboards and autoscalers
 * read them); every metric is declared here and nowhere else. Each router instance owns its
 * registry, so several routers in one process (tests, the demo) never share counters; process
 * metrics (CPU, memory, GC, event-loop lag) describe the process and are collected once for it,
 * then appended to every router's scrape. prom-client's global default registry is never used.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export type HttpOperationType = 'query' | 'mutation' | 'subscription' | 'unknown';

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
  readonly eventsReceived: Counter<'provider_id'>;
  /** Times an event provider reached its brokers again after losing them. */
  readonly providerReconnects: Counter<'provider_id'>;
  /** Event received -> last client write queued. */
  readonly eventFanoutSeconds: Histogram;
  readonly subgraphRequests: Counter<'subgraph'>;
  readonly droppedMessages: Counter<'reason'>;
  /** Operations refused by a limit before planning (`security`, `introspection`), by reason. */
  readonly operationsRejected: Counter<'reason'>;
  readonly httpRequests: Counter<'operation_type' | 'status'>;
  readonly httpRequestDuration: Histogram<'operation_type'>;
  /** Open HTTP connections of the router's listener (WebSockets leave it once upgraded). */
  readonly httpConnections: Gauge;
  /** Connections refused, or answered 503, because `traffic_shaping.router.max_connections` was reached. */
  readonly httpConnectionsRefused: Counter;
  /** Requests cut because their headers or body did not arrive in time (408). */
  readonly httpRequestTimeouts: Counter;
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
    eventsReceived: new Counter({
      name: 'router_events_received_total',
      help: 'Events received from brokers, by provider.',
      labelNames: ['provider_id'] as const,
      registers,
    }),
    providerReconnects: new Counter({
      name: 'router_events_provider_reconnects_total',
      help: 'Times an event provider reached its brokers again after losing them, by provider.',
      labelNames: ['provider_id'] as const,
      registers,
    }),
    eventFanoutSeconds: new Histogram({
      name: 'router_event_fanout_seconds',
      help: 'Time from receiving an event to queueing the write to its last client.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    subgraphRequests: new Counter({
      name: 'router_subgraph_requests_total',
      help: 'HTTP requests sent to subgraphs, by subgraph.',
      labelNames: ['subgraph'] as const,
      registers,
    }),
    droppedMessages: new Counter({
      name: 'router_dropped_messages_total',
      help: 'Messages not delivered to a client, by reason (slow consumer, invalid event, ...).',
      labelNames: ['reason'] as const,
      registers,
    }),
    operationsRejected: new Counter({
      name: 'router_operations_rejected_total',
      help: 'Operations refused by a limit before planning (document size, tokens, depth, fields, cost, introspection, ...), by reason.',
      labelNames: ['reason'] as const,
      registers,
    }),
    httpRequests: new Counter({
      name: 'router_http_requests_total',
      help: 'GraphQL requests over HTTP, by operation type and status code.',
      labelNames: ['operation_type', 'status'] as const,
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
