/**
 * The ServiceMonitor (operator/src/desired/monitoring.ts): rendered only where the cluster has
 * the Prometheus Operator, with the spec's labels, interval and metrics path.
 */
import { describe, expect, it } from '@jest/globals';
import { renderDesired } from '../../src/desired/index.js';
import { find, input, labels, meta, selector } from '../fixtures/desired.js';

describe('ServiceMonitor', () => {
  it('is rendered only when the cluster has the capability', () => {
    expect(find(renderDesired(input()).objects, 'ServiceMonitor')).toBeUndefined();
    const { objects } = renderDesired(input((i) => (i.capabilities.serviceMonitor = true)));
    expect(find(objects, 'ServiceMonitor')).toEqual({
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: meta('chat-router'),
      spec: { selector: { matchLabels: selector }, endpoints: [{ port: 'metrics', path: '/metrics' }] },
    });
  });

  it('takes extra labels and an interval, and follows a metrics path override', () => {
    const { objects } = renderDesired(
      input((i) => {
        i.capabilities.serviceMonitor = true;
        i.supergraph.spec.serviceMonitor = { labels: { release: 'kube-prometheus-stack' }, interval: '15s' };
        i.supergraph.spec.router = { config: { telemetry: { metrics: { prometheus: { path: '/prom' } } } } };
      }),
    );
    const monitor = find(objects, 'ServiceMonitor');
    expect(monitor.metadata.labels).toEqual({ ...labels, release: 'kube-prometheus-stack' });
    expect(monitor.spec.endpoints).toEqual([{ port: 'metrics', path: '/prom', interval: '15s' }]);
    expect(find(objects, 'Deployment').spec.template.metadata.annotations['prometheus.io/path']).toBe(
      '/prom',
    );
  });

  it('can be switched off, and asking for one without the capability says why there is none', () => {
    const off = renderDesired(
      input((i) => {
        i.capabilities.serviceMonitor = true;
        i.supergraph.spec.serviceMonitor = { enabled: false };
      }),
    );
    expect(find(off.objects, 'ServiceMonitor')).toBeUndefined();
    const missing = renderDesired(input((i) => (i.supergraph.spec.serviceMonitor = { enabled: true })));
    expect(find(missing.objects, 'ServiceMonitor')).toBeUndefined();
    expect(missing.warnings).toEqual([
      expect.stringContaining('servicemonitors.monitoring.coreos.com is not installed'),
    ]);
  });
});
