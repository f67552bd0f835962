/**
 * The Prometheus Operator ServiceMonitor for a Supergraph's routers.
 *
 * Invariant: rendered only when the cluster serves `monitoring.coreos.com/v1` ServiceMonitors
 * (applying it otherwise fails the whole apply) and the spec does not switch it off; it scrapes
 * the Service's `metrics` port at the path router.yaml configures.
 */
import { routerName, type DesiredInput, type KubeObject } from '../api/v1alpha1.js';
import { childMeta, routerSelectorLabels } from './meta.js';

export function renderServiceMonitor(
  input: DesiredInput,
  metricsPath: string,
  warnings: string[],
): KubeObject | undefined {
  const { supergraph, capabilities } = input;
  const requested = supergraph.spec.serviceMonitor;
  if (requested?.enabled === false) return undefined;
  if (!capabilities.serviceMonitor) {
    if (requested?.enabled === true) {
      warnings.push(
        'spec.serviceMonitor.enabled is true but the cluster has no Prometheus Operator (servicemonitors.monitoring.coreos.com is not installed); no ServiceMonitor is rendered',
      );
    }
    return undefined;
  }
  const endpoint: Record<string, unknown> = { port: 'metrics', path: metricsPath };
  if (requested?.interval) endpoint.interval = requested.interval;
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'ServiceMonitor',
    metadata: childMeta(supergraph, routerName(supergraph), { labels: requested?.labels }),
    spec: {
      selector: { matchLabels: routerSelectorLabels(supergraph) },
      endpoints: [endpoint],
    },
  };
}
