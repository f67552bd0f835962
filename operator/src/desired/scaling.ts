/**
 * How many routers run: a HorizontalPodAutoscaler (or a KEDA ScaledObject) on open client
 * connections, and the PodDisruptionBudget that keeps voluntary evictions from dropping all of a
 * Supergraph's subscriptions at once.
 *
 * Targets: open connections per pod (`targetConnectionsPerPod`), CPU utilization
 * (`targetCPUUtilizationPercentage`, the resource metrics API of metrics-server), or both; the
 * autoscaler takes the larger replica count.
 *
 * Invariants: at most one autoscaler per Supergraph; when the requested one cannot be rendered
 * (KEDA not installed, no Prometheus to query for connections) none is, the Deployment gets a
 * fixed replica count (`minReplicas`) and a warning says why, so the reconciler can surface it.
 * Scale-down is slow by default (one pod a minute after five stable minutes): removing a router
 * closes its WebSocket connections, and its clients reconnect to the others. `behavior` replaces
 * that default per direction.
 */
import {
  routerName,
  type DesiredInput,
  type KubeObject,
  type ScalingRules,
  type Supergraph,
} from '../api/v1alpha1.js';
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
  const { maxReplicas, targetConnectionsPerPod, targetCPUUtilizationPercentage } = autoscaling;
  const fixed = (reason: string): Scaling => {
    warnings.push(
      `${reason}; no autoscaler is rendered and the router runs spec.autoscaling.minReplicas (${minReplicas}) replicas`,
    );
    return { replicas: minReplicas, maxReplicas: minReplicas };
  };
  if (targetConnectionsPerPod === undefined && targetCPUUtilizationPercentage === undefined) {
    return fixed('spec.autoscaling sets neither targetConnectionsPerPod nor targetCPUUtilizationPercentage');
  }
  const bounds: Bounds = {
    minReplicas,
    maxReplicas,
    targetConnectionsPerPod,
    targetCPUUtilizationPercentage,
    behavior: renderBehavior(autoscaling.behavior),
  };

  if ((autoscaling.mode ?? 'HPA') === 'KEDA') {
    if (!capabilities.keda) {
      return fixed(
        'spec.autoscaling.mode is KEDA but the cluster has no KEDA (scaledobjects.keda.sh is not installed)',
      );
    }
    const serverAddress = autoscaling.keda?.serverAddress ?? defaults.prometheusAddress;
    if (targetConnectionsPerPod !== undefined && !serverAddress) {
      return fixed(
        "spec.autoscaling.mode is KEDA but no Prometheus is known to query (set spec.autoscaling.keda.serverAddress or the operator's default Prometheus address)",
      );
    }
    return {
      autoscaler: renderScaledObject(supergraph, { ...bounds, serverAddress }),
      replicas: undefined,
      maxReplicas,
    };
  }
  return {
    autoscaler: renderHpa(supergraph, bounds),
    replicas: undefined,
    maxReplicas,
  };
}

interface Bounds {
  minReplicas: number;
  maxReplicas: number;
  targetConnectionsPerPod?: number;
  targetCPUUtilizationPercentage?: number;
  behavior: Record<string, unknown>;
}

function scaleTargetRef(supergraph: Supergraph) {
  return { apiVersion: 'apps/v1', kind: 'Deployment', name: routerName(supergraph) };
}

/** The HPA behavior: each direction as given, scaleDown defaulting to the slow SCALE_DOWN. */
function renderBehavior(behavior: { scaleUp?: ScalingRules; scaleDown?: ScalingRules } | undefined) {
  const rendered: Record<string, unknown> = {};
  if (behavior?.scaleUp) rendered.scaleUp = behavior.scaleUp;
  rendered.scaleDown = behavior?.scaleDown ?? SCALE_DOWN;
  return rendered;
}

/**
 * Connections need a custom metrics API (e.g. prometheus-adapter) that serves the router's gauge
 * per pod; CPU needs the resource metrics API (metrics-server).
 */
function renderHpa(supergraph: Supergraph, bounds: Bounds): KubeObject {
  const metrics: Record<string, unknown>[] = [];
  if (bounds.targetConnectionsPerPod !== undefined) {
    metrics.push({
      type: 'Pods',
      pods: {
        metric: { name: CONNECTIONS_METRIC },
        target: { type: 'AverageValue', averageValue: String(bounds.targetConnectionsPerPod) },
      },
    });
  }
  if (bounds.targetCPUUtilizationPercentage !== undefined) {
    metrics.push({
      type: 'Resource',
      resource: {
        name: 'cpu',
        target: { type: 'Utilization', averageUtilization: bounds.targetCPUUtilizationPercentage },
      },
    });
  }
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: childMeta(supergraph, routerName(supergraph)),
    spec: {
      scaleTargetRef: scaleTargetRef(supergraph),
      minReplicas: bounds.minReplicas,
      maxReplicas: bounds.maxReplicas,
      metrics,
      behavior: bounds.behavior,
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

function renderScaledObject(supergraph: Supergraph, bounds: Bounds & { serverAddress?: string }): KubeObject {
  const keda = supergraph.spec.autoscaling?.keda;
  const triggers: Record<string, unknown>[] = [];
  if (bounds.targetConnectionsPerPod !== undefined) {
    triggers.push({
      type: 'prometheus',
      // AverageValue (KEDA's default): desired replicas = ceil(query / threshold).
      metadata: {
        serverAddress: bounds.serverAddress,
        query: keda?.query ?? defaultConnectionsQuery(supergraph),
        threshold: String(bounds.targetConnectionsPerPod),
      },
    });
  }
  if (bounds.targetCPUUtilizationPercentage !== undefined) {
    triggers.push({
      type: 'cpu',
      metricType: 'Utilization',
      metadata: { value: String(bounds.targetCPUUtilizationPercentage) },
    });
  }
  const spec: Record<string, unknown> = {
    scaleTargetRef: scaleTargetRef(supergraph),
  };
  if (keda?.pollingInterval !== undefined) spec.pollingInterval = keda.pollingInterval;
  spec.minReplicaCount = bounds.minReplicas;
  spec.maxReplicaCount = bounds.maxReplicas;
  spec.advanced = { horizontalPodAutoscalerConfig: { behavior: bounds.behavior } };
  spec.triggers = triggers;
  return {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: childMeta(supergraph, routerName(supergraph)),
    spec,
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
