/**
 * How many routers run (operator/src/desired/scaling.ts): HPA or KEDA on connections and CPU,
 * the fallbacks and warnings when an autoscaler cannot be rendered, and the PodDisruptionBudget.
 */
import { describe, expect, it } from '@jest/globals';
import { renderDesired } from '../../src/desired/index.js';
import { find, input, kinds, meta, selector } from '../fixtures/desired.js';

describe('autoscaling', () => {
  it('HPA (the default mode): autoscaling/v2 on the Pods metric router_engine_connections; the Deployment leaves replicas to it', () => {
    const { objects, warnings } = renderDesired(
      input(
        (i) =>
          (i.supergraph.spec.autoscaling = {
            minReplicas: 2,
            maxReplicas: 10,
            targetConnectionsPerPod: 1000,
          }),
      ),
    );
    expect(warnings).toEqual([]);
    expect(kinds(objects)).toEqual([
      'ConfigMap',
      'Service',
      'Deployment',
      'PodDisruptionBudget',
      'HorizontalPodAutoscaler',
      'Ingress',
    ]);
    expect(find(objects, 'HorizontalPodAutoscaler')).toEqual({
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: meta('chat-router'),
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'chat-router' },
        minReplicas: 2,
        maxReplicas: 10,
        metrics: [
          {
            type: 'Pods',
            pods: {
              metric: { name: 'router_engine_connections' },
              target: { type: 'AverageValue', averageValue: '1000' },
            },
          },
        ],
        behavior: {
          scaleDown: {
            stabilizationWindowSeconds: 300,
            policies: [{ type: 'Pods', value: 1, periodSeconds: 60 }],
          },
        },
      },
    });
    expect(find(objects, 'Deployment').spec).not.toHaveProperty('replicas');
  });

  it("KEDA with the capability: a ScaledObject with a Prometheus trigger summing this Supergraph's connections", () => {
    const { objects, warnings } = renderDesired(
      input((i) => {
        i.capabilities.keda = true;
        i.defaults.prometheusAddress = 'http://prometheus.monitoring.svc:9090';
        i.supergraph.spec.autoscaling = { maxReplicas: 8, targetConnectionsPerPod: 2000, mode: 'KEDA' };
      }),
    );
    expect(warnings).toEqual([]);
    expect(kinds(objects)).toEqual([
      'ConfigMap',
      'Service',
      'Deployment',
      'PodDisruptionBudget',
      'ScaledObject',
      'Ingress',
    ]);
    expect(find(objects, 'ScaledObject')).toEqual({
      apiVersion: 'keda.sh/v1alpha1',
      kind: 'ScaledObject',
      metadata: meta('chat-router'),
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'chat-router' },
        minReplicaCount: 1,
        maxReplicaCount: 8,
        advanced: {
          horizontalPodAutoscalerConfig: {
            behavior: {
              scaleDown: {
                stabilizationWindowSeconds: 300,
                policies: [{ type: 'Pods', value: 1, periodSeconds: 60 }],
              },
            },
          },
        },
        triggers: [
          {
            type: 'prometheus',
            metadata: {
              serverAddress: 'http://prometheus.monitoring.svc:9090',
              query:
                'sum(router_engine_connections{namespace="demo",pod=~"chat-router-[a-z0-9]+-[a-z0-9]+"})',
              threshold: '2000',
            },
          },
        ],
      },
    });
    expect(find(objects, 'Deployment').spec).not.toHaveProperty('replicas');
  });

  it("KEDA takes the Supergraph's own Prometheus address and query over the operator default", () => {
    const { objects } = renderDesired(
      input((i) => {
        i.capabilities.keda = true;
        i.defaults.prometheusAddress = 'http://default:9090';
        i.supergraph.spec.autoscaling = {
          maxReplicas: 3,
          targetConnectionsPerPod: 10,
          mode: 'KEDA',
          keda: { serverAddress: 'http://mine:9090', query: 'sum(my_connections)' },
        };
      }),
    );
    expect(find(objects, 'ScaledObject').spec.triggers[0].metadata).toEqual({
      serverAddress: 'http://mine:9090',
      query: 'sum(my_connections)',
      threshold: '10',
    });
  });

  it('HPA on CPU: a Resource metric (metrics-server), alone or beside the connections metric', () => {
    const cpuOnly = renderDesired(
      input((i) => (i.supergraph.spec.autoscaling = { maxReplicas: 4, targetCPUUtilizationPercentage: 60 })),
    );
    expect(cpuOnly.warnings).toEqual([]);
    const cpu = {
      type: 'Resource',
      resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 60 } },
    };
    expect(find(cpuOnly.objects, 'HorizontalPodAutoscaler').spec.metrics).toEqual([cpu]);
    const both = renderDesired(
      input(
        (i) =>
          (i.supergraph.spec.autoscaling = {
            maxReplicas: 4,
            targetConnectionsPerPod: 100,
            targetCPUUtilizationPercentage: 60,
          }),
      ),
    ).objects;
    expect(find(both, 'HorizontalPodAutoscaler').spec.metrics).toEqual([
      {
        type: 'Pods',
        pods: {
          metric: { name: 'router_engine_connections' },
          target: { type: 'AverageValue', averageValue: '100' },
        },
      },
      cpu,
    ]);
  });

  it('behavior: a direction given replaces its default, the other keeps it; KEDA gets the same', () => {
    const scaleUp = {
      stabilizationWindowSeconds: 0,
      policies: [{ type: 'Pods' as const, value: 2, periodSeconds: 15 }],
    };
    const scaleDown = {
      stabilizationWindowSeconds: 30,
      policies: [{ type: 'Percent' as const, value: 100, periodSeconds: 15 }],
    };
    const hpa = renderDesired(
      input(
        (i) =>
          (i.supergraph.spec.autoscaling = {
            maxReplicas: 3,
            targetConnectionsPerPod: 10,
            behavior: { scaleDown },
          }),
      ),
    ).objects;
    expect(find(hpa, 'HorizontalPodAutoscaler').spec.behavior).toEqual({ scaleDown });
    const upOnly = renderDesired(
      input(
        (i) =>
          (i.supergraph.spec.autoscaling = {
            maxReplicas: 3,
            targetConnectionsPerPod: 10,
            behavior: { scaleUp },
          }),
      ),
    ).objects;
    expect(find(upOnly, 'HorizontalPodAutoscaler').spec.behavior).toEqual({
      scaleUp,
      scaleDown: {
        stabilizationWindowSeconds: 300,
        policies: [{ type: 'Pods', value: 1, periodSeconds: 60 }],
      },
    });
    const keda = renderDesired(
      input((i) => {
        i.capabilities.keda = true;
        i.defaults.prometheusAddress = 'http://prometheus:9090';
        i.supergraph.spec.autoscaling = {
          maxReplicas: 3,
          targetConnectionsPerPod: 10,
          mode: 'KEDA',
          behavior: { scaleUp, scaleDown },
          keda: { pollingInterval: 5 },
        };
      }),
    ).objects;
    const scaledObject = find(keda, 'ScaledObject');
    expect(scaledObject.spec.advanced).toEqual({
      horizontalPodAutoscalerConfig: { behavior: { scaleUp, scaleDown } },
    });
    expect(scaledObject.spec.pollingInterval).toBe(5);
  });

  it('KEDA on CPU: a cpu trigger, and no Prometheus needed when connections are not a target', () => {
    const { objects, warnings } = renderDesired(
      input((i) => {
        i.capabilities.keda = true;
        i.supergraph.spec.autoscaling = { maxReplicas: 3, targetCPUUtilizationPercentage: 70, mode: 'KEDA' };
      }),
    );
    expect(warnings).toEqual([]);
    expect(find(objects, 'ScaledObject').spec.triggers).toEqual([
      { type: 'cpu', metricType: 'Utilization', metadata: { value: '70' } },
    ]);
  });

  it('neither target set (the CRD refuses it; an older API server may not): no autoscaler and a warning', () => {
    const { objects, warnings } = renderDesired(
      input((i) => (i.supergraph.spec.autoscaling = { minReplicas: 2, maxReplicas: 3 })),
    );
    expect(find(objects, 'HorizontalPodAutoscaler')).toBeUndefined();
    expect(find(objects, 'Deployment').spec.replicas).toBe(2);
    expect(warnings).toEqual([
      expect.stringContaining('sets neither targetConnectionsPerPod nor targetCPUUtilizationPercentage'),
    ]);
  });

  it('KEDA requested but not installed: no autoscaler, minReplicas fixed, and a warning saying why', () => {
    const { objects, warnings } = renderDesired(
      input((i) => {
        i.defaults.prometheusAddress = 'http://prometheus:9090';
        i.supergraph.spec.autoscaling = {
          minReplicas: 3,
          maxReplicas: 8,
          targetConnectionsPerPod: 100,
          mode: 'KEDA',
        };
      }),
    );
    expect(kinds(objects)).toEqual(['ConfigMap', 'Service', 'Deployment', 'PodDisruptionBudget', 'Ingress']);
    expect(find(objects, 'Deployment').spec.replicas).toBe(3);
    expect(warnings).toEqual([
      'spec.autoscaling.mode is KEDA but the cluster has no KEDA (scaledobjects.keda.sh is not installed); no autoscaler is rendered and the router runs spec.autoscaling.minReplicas (3) replicas',
    ]);
  });

  it('KEDA without any Prometheus address: no autoscaler and a warning naming the field to set', () => {
    const { objects, warnings } = renderDesired(
      input((i) => {
        i.capabilities.keda = true;
        i.supergraph.spec.autoscaling = { maxReplicas: 8, targetConnectionsPerPod: 100, mode: 'KEDA' };
      }),
    );
    expect(find(objects, 'ScaledObject')).toBeUndefined();
    expect(find(objects, 'Deployment').spec.replicas).toBe(1);
    expect(warnings).toEqual([expect.stringContaining('set spec.autoscaling.keda.serverAddress')]);
  });

  it('without autoscaling the Deployment runs spec.router.replicas (default 1)', () => {
    const one = renderDesired(input((i) => delete i.supergraph.spec.router)).objects;
    expect(find(one, 'Deployment').spec.replicas).toBe(1);
    const five = renderDesired(input((i) => (i.supergraph.spec.router = { replicas: 5 }))).objects;
    expect(find(five, 'Deployment').spec.replicas).toBe(5);
  });
});

describe('disruption budget', () => {
  it('is left out for a single router', () => {
    const { objects } = renderDesired(input((i) => (i.supergraph.spec.router = { replicas: 1 })));
    expect(find(objects, 'PodDisruptionBudget')).toBeUndefined();
  });

  it('defaults to maxUnavailable 1 whenever an autoscaler may run more than one router', () => {
    const { objects } = renderDesired(
      input((i) => {
        i.supergraph.spec.router = { replicas: 1 };
        i.supergraph.spec.autoscaling = { maxReplicas: 2, targetConnectionsPerPod: 100 };
      }),
    );
    expect(find(objects, 'PodDisruptionBudget').spec).toEqual({
      maxUnavailable: 1,
      selector: { matchLabels: selector },
    });
  });

  it('takes minAvailable or maxUnavailable from the spec, even for one router', () => {
    const min = renderDesired(
      input((i) => {
        i.supergraph.spec.router = { replicas: 1 };
        i.supergraph.spec.disruptionBudget = { minAvailable: '50%' };
      }),
    ).objects;
    expect(find(min, 'PodDisruptionBudget').spec).toEqual({
      minAvailable: '50%',
      selector: { matchLabels: selector },
    });
    const max = renderDesired(
      input((i) => (i.supergraph.spec.disruptionBudget = { maxUnavailable: 2 })),
    ).objects;
    expect(find(max, 'PodDisruptionBudget').spec).toEqual({
      maxUnavailable: 2,
      selector: { matchLabels: selector },
    });
  });
});
