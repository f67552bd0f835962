/**
 * The Kubernetes resource types the operator reads and writes, and how their REST paths are built.
 *
 * Invariant: this table is the only place that knows a kind's plural, group and scope; clients,
 * informers and reconcilers address resources through it, so a path is never spelled by hand.
 */
import { GROUP, VERSION } from '../api/v1alpha1.js';

export interface ResourceType {
  /** '' for the core group. */
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

const type = (
  group: string,
  version: string,
  kind: string,
  plural: string,
  namespaced = true,
): ResourceType => ({
  group,
  version,
  kind,
  plural,
  namespaced,
});

export const RESOURCES = {
  Supergraph: type(GROUP, VERSION, 'Supergraph', 'supergraphs'),
  Subgraph: type(GROUP, VERSION, 'Subgraph', 'subgraphs'),
  EventProvider: type(GROUP, VERSION, 'EventProvider', 'eventproviders'),
  ConfigMap: type('', 'v1', 'ConfigMap', 'configmaps'),
  Secret: type('', 'v1', 'Secret', 'secrets'),
  Service: type('', 'v1', 'Service', 'services'),
  Event: type('', 'v1', 'Event', 'events'),
  Namespace: type('', 'v1', 'Namespace', 'namespaces', false),
  Deployment: type('apps', 'v1', 'Deployment', 'deployments'),
  Ingress: type('networking.k8s.io', 'v1', 'Ingress', 'ingresses'),
  HorizontalPodAutoscaler: type('autoscaling', 'v2', 'HorizontalPodAutoscaler', 'horizontalpodautoscalers'),
  PodDisruptionBudget: type('policy', 'v1', 'PodDisruptionBudget', 'poddisruptionbudgets'),
  ServiceMonitor: type('monitoring.coreos.com', 'v1', 'ServiceMonitor', 'servicemonitors'),
  ScaledObject: type('keda.sh', 'v1alpha1', 'ScaledObject', 'scaledobjects'),
  Lease: type('coordination.k8s.io', 'v1', 'Lease', 'leases'),
} as const satisfies Record<string, ResourceType>;

export type KnownKind = keyof typeof RESOURCES;

export function apiVersionOf(resource: ResourceType): string {
  return resource.group === '' ? resource.version : `${resource.group}/${resource.version}`;
}

/** The resource type of an object by its apiVersion and kind; undefined for kinds not in the table. */
export function resourceOf(apiVersion: string, kind: string): ResourceType | undefined {
  return Object.values(RESOURCES).find((r) => r.kind === kind && apiVersionOf(r) === apiVersion);
}

export interface PathOptions {
  namespace?: string;
  name?: string;
  subresource?: string;
}

/** `/api/v1/namespaces/ns/configmaps/name/status`-style paths; a collection when `name` is absent. */
export function resourcePath(resource: ResourceType, opts: PathOptions = {}): string {
  const root =
    resource.group === '' ? `/api/${resource.version}` : `/apis/${resource.group}/${resource.version}`;
  const ns = resource.namespaced && opts.namespace ? `/namespaces/${encodeURIComponent(opts.namespace)}` : '';
  let path = `${root}${ns}/${resource.plural}`;
  if (opts.name !== undefined) path += `/${encodeURIComponent(opts.name)}`;
  if (opts.subresource !== undefined) path += `/${opts.subresource}`;
  return path;
}

/** The object shape every reconciler and informer relies on. */
export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  /** Which field manager owns which fields (server-side apply bookkeeping). */
  managedFields?: ManagedFieldsEntry[];
}

export interface ManagedFieldsEntry {
  manager?: string;
  operation?: 'Apply' | 'Update';
  subresource?: string;
  fieldsType?: string;
  fieldsV1?: Record<string, unknown>;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface AnyObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

/** Being deleted (finalizers pending): reconcilers leave it alone. */
export function isDeleting(obj: AnyObject): boolean {
  return Boolean(obj.metadata.deletionTimestamp);
}

/** `namespace/name` (or `name` for cluster-scoped objects): the work queue key of an object. */
export function objectKey(obj: { metadata: { name: string; namespace?: string } }): string {
  return keyOf(obj.metadata.namespace, obj.metadata.name);
}

export function keyOf(namespace: string | undefined, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

export function splitKey(key: string): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  return slash < 0
    ? { namespace: '', name: key }
    : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/** The controller owner of an object, when it is of `kind` in `apiVersion`. */
export function controllerOwner(
  obj: { metadata: { ownerReferences?: OwnerReference[] } },
  apiVersion: string,
  kind: string,
): OwnerReference | undefined {
  return obj.metadata.ownerReferences?.find(
    (ref) => ref.controller === true && ref.kind === kind && ref.apiVersion === apiVersion,
  );
}
