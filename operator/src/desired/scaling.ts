/**
 * How many routers run: a HorizontalPodAutoscaler (or a KEDA ScaledObject) on open client
 * connections, and the PodDisruptionBudget that keeps voluntary evictions from dropping all of a
 * Supergraph's subscriptions at once.
 *
 * Invariants: at most one autoscaler per Supergraph; when the requested one cannot be rendered
 * (KEDA not installed, no Prometheus to query) none is, the Deployment gets a fixed replica count
 * (`minReplicas`) and a warning says why, so the reconciler can surface it. Scale-down is slow
 * (one pod a minute after five stable minutes): removing a router closes its WebSocket
 * connections, and the clients all reconnect at once.
 */
import { routerName, type DesiredInput, type KubeObject, type Supergraph } from '../api/v1alpha1.js';
import { childMeta, routerSelectorLabels } from './meta.js';

/** The Pods metric the autoscalers follow (DESIGN §5: open WS + SSE + multipart connections). */
export const CONNECTIONS_METRIC = 'router_engine_connections';

const SCALE_DOWN = {
  stabilizationWindowSeconds: 300,
  policies: [{ type: 'Pods', value: 1, periodSeconds: 60 }],
};

export interface Scaling {
  /** HorizontalPodAutoscaler or ScaledObject, when one is rendered. */
  autoscaler?: KubeObject;
  /** The Deployment's replicas; undefined when the autoscaler owns them. */
  replicas: number | undefined;
  /** The most replicas that may run (for the disruption budget default). */
  maxReplicas: number;
}

export function renderScaling(input: DesiredInput, warnings: string[]): Scaling {
  const { supergraph, capabilities, defaults } = input;
  const autoscaling = supergraph.spec.autoscaling;
  if (!autoscaling) {
    const replicas = supergraph.spec.router?.replicas ?? 1;
    return { replicas, maxReplicas: replicas };
  }
  const minReplicas = autoscaling.minReplicas ?? 1;
  const { maxReplicas, targetConnectionsPerPod } = autoscaling;
  const fixed = (reason: string): Scaling => {
    warnings.push(
      `${reason}; no autoscaler is rendered and the router runs spec.autoscaling.minReplicas (${minReplicas}) replicas`,
    );
    return { replicas: minReplicas, maxReplicas: minReplicas };
  };

  if ((autoscaling.mode ?? 'HPA') === 'KEDA') {
    if (!capabilities.keda) {
      return fixed(
        'spec.autoscaling.mode is KEDA but the cluster has no KEDA (scaledobjects.keda.sh is not installed)',
      );
    }
    const serverAddress = autoscaling.keda?.serverAddress ?? defaults.prometheusAddress;
    if (!serverAddress) {
      return fixed(
        "spec.autoscaling.mode is KEDA but no Prometheus is known to query (set spec.autoscaling.keda.serverAddress or the operator's default Prometheus address)",
      );
    }
    return {
      autoscaler: renderScaledObject(supergraph, {
        minReplicas,
        maxReplicas,
        targetConnectionsPerPod,
        serverAddress,
      }),
      replicas: undefined,
      maxReplicas,
    };
  }
  return {
    autoscaler: renderHpa(supergraph, { minReplicas, maxReplicas, targetConnectionsPerPod }),
    replicas: undefined,
    maxReplicas,
  };
}

interface Bounds {
  minReplicas: number;
  maxReplicas: number;
  targetConnectionsPerPod: number;
}

function scaleTargetRef(supergraph: Supergraph) {
  return { apiVersion: 'apps/v1', kind: 'Deployment', name: routerName(supergraph) };
}

/** Needs a custom metrics API (e.g. prometheus-adapter) that serves the router's gauge per pod. */
function renderHpa(supergraph: Supergraph, bounds: Bounds): KubeObject {
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: childMeta(supergraph, routerName(supergraph)),
    spec: {
      scaleTargetRef: scaleTargetRef(supergraph),
      minReplicas: bounds.minReplicas,
      maxReplicas: bounds.maxReplicas,
      metrics: [
        {
          type: 'Pods',
          pods: {
            metric: { name: CONNECTIONS_METRIC },
            target: { type: 'AverageValue', averageValue: String(bounds.targetConnectionsPerPod) },
          },
        },
      ],
      behavior: { scaleDown: SCALE_DOWN },
    },
  };
}

/**
 * The default KEDA query: all open connections of this Supergraph's router pods. The pod name
 * pattern is `<name>-router-<template hash>-<suffix>`, which no other Supergraph's pods match.
 */
export function defaultConnectionsQuery(supergraph: Supergraph): string {
  const { namespace } = supergraph.metadata;
  return `sum(${CONNECTIONS_METRIC}{namespace="${namespace}",pod=~"${routerName(supergraph)}-[a-z0-9]+-[a-z0-9]+"})`;
}

function renderScaledObject(supergraph: Supergraph, bounds: Bounds & { serverAddress: string }): KubeObject {
  const query = supergraph.spec.autoscaling?.keda?.query ?? defaultConnectionsQuery(supergraph);
  return {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: childMeta(supergraph, routerName(supergraph)),
    spec: {
      scaleTargetRef: scaleTargetRef(supergraph),
      minReplicaCount: bounds.minReplicas,
      maxReplicaCount: bounds.maxReplicas,
      advanced: { horizontalPodAutoscalerConfig: { behavior: { scaleDown: SCALE_DOWN } } },
      triggers: [
        {
          type: 'prometheus',
          // AverageValue (KEDA's default): desired replicas = ceil(query / threshold).
          metadata: {
            serverAddress: bounds.serverAddress,
            query,
            threshold: String(bounds.targetConnectionsPerPod),
          },
        },
      ],
    },
  };
}

/**
 * The budget as specified, or `maxUnavailable: 1` by default when more than one router can run;
 * none for a single router (a budget there would only block node drains or allow everything).
 */
export function renderDisruptionBudget(supergraph: Supergraph, maxReplicas: number): KubeObject | undefined {
  const budget = supergraph.spec.disruptionBudget;
  const spec: Record<string, unknown> = {};
  if (budget?.minAvailable !== undefined) spec.minAvailable = budget.minAvailable;
  else if (budget?.maxUnavailable !== undefined) spec.maxUnavailable = budget.maxUnavailable;
  else if (maxReplicas > 1) spec.maxUnavailable = 1;
  else return undefined;
  spec.selector = { matchLabels: routerSelectorLabels(supergraph) };
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: childMeta(supergraph, routerName(supergraph)),
    spec,
  };
}
