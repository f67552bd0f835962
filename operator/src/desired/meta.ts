/**
 * Constants and metadata every child of a Supergraph shares: ports, paths, labels, the owner
 * reference, and the defaults applied when a spec (written before a CRD default existed) leaves a
 * field empty.
 *
 * Invariants: the pod selector is the two labels that never change for a Supergraph
 * (`app.kubernetes.io/name` and `.../instance`), because a Deployment's selector is immutable;
 * every child carries a controller owner reference to its Supergraph, so deleting the Supergraph
 * garbage-collects them and the reconciler can tell its objects from anyone else's.
 */
import { API_VERSION, type KubeObject, type Supergraph } from '../api/v1alpha1.js';
import { sortedMap } from './merge.js';

export const ROUTER_HTTP_PORT = 3002;
export const ROUTER_METRICS_PORT = 8088;
export const ROUTER_CONTAINER = 'router';
/** The ConfigMap is mounted here as a directory: `router.yaml` and `config.json`. */
export const CONFIG_DIR = '/etc/edfs';
export const CONFIG_VOLUME = 'config';
export const ROUTER_YAML_KEY = 'router.yaml';
export const CONFIG_JSON_KEY = 'config.json';
/** Broker credentials that are files (NATS creds, CA certificates), one directory per provider. */
export const SECRETS_DIR = '/etc/edfs-secrets';

/** Router drain window when the spec names none: the router's own `shutdown_delay` default. */
export const DEFAULT_DRAIN_SECONDS = 20;
/** preStop sleep: long enough for endpoint controllers and ingresses to stop sending new traffic. */
export const PRE_STOP_SECONDS = 5;
/** Slack after preStop + drain before the kubelet sends SIGKILL. */
export const GRACE_MARGIN_SECONDS = 10;
export const DEFAULT_RESOURCES = { requests: { cpu: '100m', memory: '128Mi' } } as const;

/** Pod-template annotation with the execution config hash; present only with rollout Restart. */
export const CONFIG_HASH_ANNOTATION = 'edfs.io/config-hash';
/**
 * Pod-template annotation with the hash of router.yaml, in every rollout mode: the router
 * hot-reloads the execution config but not router.yaml (providers, listeners), so a change there
 * must replace the pods.
 */
export const ROUTER_CONFIG_HASH_ANNOTATION = 'edfs.io/router-config-hash';
/**
 * Pod-template annotation with a digest of the values of the Secret keys the providers reference,
 * present whenever a provider references one: pods read env vars from Secrets only at start, so a
 * rotated credential must replace them.
 */
export const SECRETS_HASH_ANNOTATION = 'edfs.io/secrets-hash';

export const APP_NAME = 'edfs-router';
export const MANAGED_BY = 'edfs-operator';

/** The kinds `renderDesired` can produce: a reconciler deletes the ones it did not render. */
export const CHILD_KINDS = [
  { apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps' },
  { apiVersion: 'v1', kind: 'Service', plural: 'services' },
  { apiVersion: 'apps/v1', kind: 'Deployment', plural: 'deployments' },
  { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', plural: 'poddisruptionbudgets' },
  { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', plural: 'horizontalpodautoscalers' },
  { apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', plural: 'scaledobjects' },
  { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', plural: 'ingresses' },
  { apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', plural: 'servicemonitors' },
] as const;

type Named = { metadata: { name: string } };

/** The labels that select a Supergraph's router pods (Deployment, Service, PDB, ServiceMonitor). */
export function routerSelectorLabels(supergraph: Named): Record<string, string> {
  return {
    'app.kubernetes.io/instance': supergraph.metadata.name,
    'app.kubernetes.io/name': APP_NAME,
  };
}

/** `status.selector` of the Supergraph (the scale subresource's labelSelectorPath). */
export function routerSelector(supergraph: Named): string {
  return Object.entries(routerSelectorLabels(supergraph))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** The labels on every child object and on the router pods. */
export function routerLabels(supergraph: Named): Record<string, string> {
  return {
    'app.kubernetes.io/instance': supergraph.metadata.name,
    'app.kubernetes.io/managed-by': MANAGED_BY,
    'app.kubernetes.io/name': APP_NAME,
  };
}

export function ownerReference(
  supergraph: Supergraph,
): NonNullable<KubeObject['metadata']['ownerReferences']>[number] {
  const { name, namespace, uid } = supergraph.metadata;
  if (!uid) {
    throw new Error(
      `Supergraph "${namespace}/${name}" has no metadata.uid: its children need an owner reference, so render them from the object as the API server returned it`,
    );
  }
  return {
    apiVersion: API_VERSION,
    kind: 'Supergraph',
    name,
    uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

/**
 * Metadata of a child: name, namespace, labels (the standard ones win over `extra.labels`), owner.
 * Map keys are sorted.
 */
export function childMeta(
  supergraph: Supergraph,
  name: string,
  extra: { labels?: Record<string, string>; annotations?: Record<string, string> } = {},
): KubeObject['metadata'] {
  const meta: KubeObject['metadata'] = {
    name,
    namespace: supergraph.metadata.namespace,
    labels: sortedMap({ ...extra.labels, ...routerLabels(supergraph) }),
  };
  const annotations = sortedMap(extra.annotations);
  if (annotations) meta.annotations = annotations;
  meta.ownerReferences = [ownerReference(supergraph)];
  return meta;
}
