/**
 * The operator's Prometheus metrics, named as controller-runtime names them so existing
 * dashboards and alerts work: reconcile counts by result, errors, reconcile latency, work queue
 * depth, and whether this replica is the leader; plus the Supergraphs' status conditions, as
 * kube-state-metrics exports those of built-in kinds (`edfs_supergraph_status_condition`), for
 * alerts such as Composed=False. Its namespace label is `supergraph_namespace`: a scrape sets
 * `namespace` to the operator's own namespace, which would rename a `namespace` label of the
 * metric to `exported_namespace` (unless the scrape honors labels).
 *
 * Invariant: one registry per operator instance (never prom-client's global one), so several
 * operators in one process (tests) keep separate numbers.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export type ReconcileResult = 'success' | 'error' | 'requeue' | 'requeue_after';

export interface ControllerMetrics {
  readonly registry: Registry;
  readonly reconcileTotal: Counter<'controller' | 'result'>;
  readonly reconcileErrors: Counter<'controller'>;
  readonly reconcileTime: Histogram<'controller'>;
  readonly activeWorkers: Gauge<'controller'>;
  readonly queueDepth: Gauge<'name'>;
  readonly queueAdds: Counter<'name'>;
  readonly queueRetries: Counter<'name'>;
  readonly leader: Gauge<'name'>;
  /** 1 for each Supergraph condition's current status (True, False, Unknown), 0 for the others. */
  readonly supergraphCondition: Gauge<'supergraph_namespace' | 'supergraph' | 'type' | 'status'>;
}

const CONDITION_STATUSES = ['True', 'False', 'Unknown'] as const;

/**
 * Exports a Supergraph's conditions (every status of each type, so a query for status="False"
 * finds a 0 rather than nothing). `conditions` undefined: the Supergraph is gone, its series too.
 */
export function exportSupergraphConditions(
  metrics: ControllerMetrics,
  namespace: string,
  supergraph: string,
  conditions: { type: string; status: string }[] | undefined,
  previousTypes: Iterable<string> = [],
): void {
  for (const type of previousTypes) {
    if (conditions?.some((c) => c.type === type)) continue;
    for (const status of CONDITION_STATUSES)
      metrics.supergraphCondition.remove({ supergraph_namespace: namespace, supergraph, type, status });
  }
  for (const condition of conditions ?? []) {
    for (const status of CONDITION_STATUSES) {
      metrics.supergraphCondition.set(
        { supergraph_namespace: namespace, supergraph, type: condition.type, status },
        condition.status === status ? 1 : 0,
      );
    }
  }
}

export function createControllerMetrics(options: { processMetrics?: boolean } = {}): ControllerMetrics {
  const registry = new Registry();
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    reconcileTotal: new Counter({
      name: 'controller_runtime_reconcile_total',
      help: 'Total number of reconciliations per controller and result',
      labelNames: ['controller', 'result'],
      registers,
    }),
    reconcileErrors: new Counter({
      name: 'controller_runtime_reconcile_errors_total',
      help: 'Total number of reconciliation errors per controller',
      labelNames: ['controller'],
      registers,
    }),
    reconcileTime: new Histogram({
      name: 'controller_runtime_reconcile_time_seconds',
      help: 'Length of time per reconciliation per controller',
      labelNames: ['controller'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    activeWorkers: new Gauge({
      name: 'controller_runtime_active_workers',
      help: 'Number of currently used workers per controller',
      labelNames: ['controller'],
      registers,
    }),
    queueDepth: new Gauge({
      name: 'workqueue_depth',
      help: 'Current depth of workqueue',
      labelNames: ['name'],
      registers,
    }),
    queueAdds: new Counter({
      name: 'workqueue_adds_total',
      help: 'Total number of adds handled by workqueue',
      labelNames: ['name'],
      registers,
    }),
    queueRetries: new Counter({
      name: 'workqueue_retries_total',
      help: 'Total number of retries handled by workqueue',
      labelNames: ['name'],
      registers,
    }),
    supergraphCondition: new Gauge({
      name: 'edfs_supergraph_status_condition',
      help: 'The current status of each Supergraph condition (Composed, Ready, Progressing): 1 for that status, 0 for the others. Exported by the leader only.',
      labelNames: ['supergraph_namespace', 'supergraph', 'type', 'status'],
      registers,
    }),
    leader: new Gauge({
      name: 'leader_election_master_status',
      help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master',
      labelNames: ['name'],
      registers,
    }),
  };
}
