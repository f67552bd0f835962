/**
 * The `edfs.io/v1alpha1` API as TypeScript: what users write (spec) and what the operator reports
 * (status). The CRDs in `crds/` are the schema the API server enforces; these types mirror them
 * and are the one contract between the reconcilers and the pure rendering of desired objects.
 * Defaults live in the CRDs (the API server applies them) and in `desired/` for objects created
 * before a default existed; the operator never writes defaults back into `spec`.
 *
 * The bottom layer of the operator: types and constants only, importing nothing. Every other
 * layer may import it (see index.ts for the order of the layers).
 */

export const GROUP = 'edfs.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: string;
}

/** metav1.Condition. */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

/** metav1.LabelSelector; how one is matched: compose/label-selector.ts. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface LabelSelectorRequirement {
  key: string;
  operator: LabelSelectorOperator;
  values?: string[];
}

export type LabelSelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface SecretKeyRef {
  name: string;
  key: string;
}

// ---------------------------------------------------------------------------------------------
// EventProvider (short name `ep`)

export interface EventProviderSpec {
  /** The id the schema's directives use (`providerId`); default: metadata.name. */
  providerId?: string;
  nats?: {
    url: string;
    auth?: {
      tokenSecretRef?: SecretKeyRef;
      userPasswordSecretRef?: { name: string; usernameKey?: string; passwordKey?: string };
      credsSecretRef?: SecretKeyRef;
    };
    tls?: { enabled?: boolean; caSecretRef?: SecretKeyRef };
  };
  kafka?: {
    brokers: string[];
    sasl?: {
      mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';
      secretRef: { name: string; usernameKey?: string; passwordKey?: string };
    };
    tls?: { enabled?: boolean };
  };
}

export interface EventProviderStatus {
  observedGeneration?: number;
  conditions?: Condition[];
}

export interface EventProvider {
  apiVersion: typeof API_VERSION;
  kind: 'EventProvider';
  metadata: ObjectMeta;
  spec: EventProviderSpec;
  status?: EventProviderStatus;
}

// ---------------------------------------------------------------------------------------------
// Subgraph (short name `sg`)

export interface SubgraphSpec {
  /** Omit for an event-only subgraph. */
  routingUrl?: string;
  schema: { sdl?: string; configMapRef?: { name: string; key: string } };
  subscription?: {
    url?: string;
    protocol?: 'ws' | 'sse' | 'sse_post';
    websocketSubprotocol?: 'auto' | 'graphql-ws' | 'graphql-transport-ws';
  };
}

export interface SubgraphStatus {
  observedGeneration?: number;
  /** sha256 of the SDL the operator last read. */
  schemaHash?: string;
  conditions?: Condition[];
}

export interface Subgraph {
  apiVersion: typeof API_VERSION;
  kind: 'Subgraph';
  metadata: ObjectMeta;
  spec: SubgraphSpec;
  status?: SubgraphStatus;
}

// ---------------------------------------------------------------------------------------------
// Supergraph (short name `sup`)

export type RolloutStrategy = 'HotReload' | 'Restart';

/** autoscaling/v2 HPAScalingRules. */
export interface ScalingRules {
  stabilizationWindowSeconds?: number;
  selectPolicy?: 'Max' | 'Min' | 'Disabled';
  policies?: { type: 'Pods' | 'Percent'; value: number; periodSeconds: number }[];
}

export interface SupergraphSpec {
  subgraphSelector?: LabelSelector;
  router?: {
    /** Scale subresource target; ignored while autoscaling is on. Default 1. */
    replicas?: number;
    image?: string;
    imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
    resources?: Record<string, unknown>;
    /** Merged into the pod template (labels, annotations, nodeSelector, tolerations, affinity...). */
    podTemplate?: {
      metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
      spec?: Record<string, unknown>;
    };
    /** Merged into the generated router.yaml (snake_case keys as in router.yaml). */
    config?: Record<string, unknown>;
    /** Default HotReload. */
    rollout?: RolloutStrategy;
    /**
     * The router's drain window on shutdown (router.yaml `shutdown_delay`), seconds. Default 20,
     * the router's own default. The pod's termination grace period is derived from it.
     */
    drainSeconds?: number;
    /**
     * Client tokens the routers verify (router.yaml `authentication.jwt` and
     * `authorization.require_authentication`). A key set from a Secret is mounted as a file, so
     * no key material enters the ConfigMap or the status.
     */
    authentication?: RouterAuthentication;
  };
  autoscaling?: {
    minReplicas?: number;
    maxReplicas: number;
    /** Open connections per router to aim for. At least one target is set (a CEL rule). */
    targetConnectionsPerPod?: number;
    /** Average CPU use in percent of the routers' CPU request (needs metrics-server). */
    targetCPUUtilizationPercentage?: number;
    /** Default HPA. */
    mode?: 'HPA' | 'KEDA';
    /**
     * autoscaling/v2 behavior of the HorizontalPodAutoscaler (KEDA's too). A direction given
     * replaces its default (scaleDown: 300 s window, one pod a minute; scaleUp: Kubernetes').
     */
    behavior?: { scaleUp?: ScalingRules; scaleDown?: ScalingRules };
    /** KEDA only: the Prometheus the trigger queries (the routers must be scraped by it). */
    keda?: {
      /** Default: the operator's `defaults.prometheusAddress`. */
      serverAddress?: string;
      /** Total open connections of this Supergraph's routers; default a sum over its pods. */
      query?: string;
      /** Seconds between KEDA's checks of its triggers; default KEDA's (30). */
      pollingInterval?: number;
    };
  };
  ingress?: {
    host: string;
    className?: string;
    tls?: { secretName: string };
    annotations?: Record<string, string>;
  };
  /** PodDisruptionBudget; default maxUnavailable 1 when replicas > 1. */
  disruptionBudget?: { minAvailable?: number | string; maxUnavailable?: number | string };
  /** ServiceMonitor, rendered only when the cluster has the CRD. */
  serviceMonitor?: {
    /** Default true. */
    enabled?: boolean;
    /** Extra labels, e.g. the `release` label a Prometheus selects monitors by. */
    labels?: Record<string, string>;
    /** Scrape interval, e.g. `15s`; default Prometheus' own. */
    interval?: string;
  };
}

export interface RouterAuthentication {
  jwt: {
    /** Key sets tried in order; at least one. */
    jwks: JwksSource[];
    /** Default `Authorization`. */
    headerName?: string;
    /** Default `Bearer`. */
    headerValuePrefix?: string;
    /** Go duration, e.g. `30s`; default `0s`. */
    clockSkew?: string;
  };
  /** Refuse operations without a valid token (401, or 4403 on a WebSocket). Default false. */
  requireAuthentication?: boolean;
}

/** One key set: exactly one of `url` (a JWKS endpoint) and `secretRef` (a key holding a JWKS). */
export interface JwksSource {
  url?: string;
  secretRef?: SecretKeyRef;
  /** How often `url` is fetched again; Go duration, default `1m`. */
  refreshInterval?: string;
  /** Accepted (asymmetric) algorithms; default all. */
  algorithms?: string[];
  audiences?: string[];
  issuer?: string;
}

export interface SupergraphStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  /** sha256 of the composed execution config currently in the ConfigMap. */
  configHash?: string;
  subgraphs?: { name: string; schemaHash?: string }[];
  errors?: { subgraph?: string; message: string }[];
  replicas?: number;
  readyReplicas?: number;
  /** Label selector of the router pods, for the scale subresource. */
  selector?: string;
}

export interface Supergraph {
  apiVersion: typeof API_VERSION;
  kind: 'Supergraph';
  metadata: ObjectMeta;
  spec: SupergraphSpec;
  status?: SupergraphStatus;
}

/** A Kubernetes object as the desired-state renderer produces it (apiVersion, kind, metadata...). */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: {
      apiVersion: string;
      kind: string;
      name: string;
      uid: string;
      controller?: boolean;
      blockOwnerDeletion?: boolean;
    }[];
  };
  [field: string]: unknown;
}

/**
 * Everything the renderer needs to compute a Supergraph's children; assembled by the reconciler
 * from the API (no I/O inside the renderer).
 */
export interface DesiredInput {
  supergraph: Supergraph;
  /** The composed execution config JSON to serve (the last good one when composition failed). */
  configJson: string;
  /** sha256 of `configJson`. */
  configHash: string;
  /** The EventProviders the composed schema uses (by providerId). */
  providers: EventProvider[];
  /**
   * A digest of the values of every Secret key those providers reference (never the values), or
   * undefined when it is not known. Rendered as a pod-template annotation, so a rotated credential
   * replaces the router pods: env vars from Secrets are read only when a container starts.
   */
  secretsHash?: string;
  /** Optional APIs present in the cluster. */
  capabilities: { serviceMonitor: boolean; keda: boolean };
  /** Operator defaults (from its flags / Helm values). */
  defaults: {
    routerImage: string;
    /** Prometheus for KEDA triggers when a Supergraph names none. */
    prometheusAddress?: string;
  };
}

/**
 * What `renderDesired` (operator/src/desired) returns: the children to server-side apply, in
 * apply order, and the reasons some requested option was not rendered (KEDA without its CRD, an
 * override of an operator-owned router.yaml key...), for a condition or an Event. Kinds the
 * renderer can produce but did not this time (see `CHILD_KINDS` there) are for the reconciler to
 * delete.
 */
export interface DesiredResult {
  objects: KubeObject[];
  warnings: string[];
}

/** Names of a Supergraph's children (DESIGN §6): all `<name>-router`. */
export function routerName(supergraph: { metadata: { name: string } }): string {
  return `${supergraph.metadata.name}-router`;
}

export function configMapName(supergraph: { metadata: { name: string } }): string {
  return `${supergraph.metadata.name}-router-config`;
}
