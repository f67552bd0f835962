/**
 * The router workload: Deployment, Service and the optional Ingress.
 *
 * Invariants:
 * - The ConfigMap is mounted as a whole directory, never with `subPath`: the kubelet updates a
 *   ConfigMap volume by swapping a symlink, which the router's file watch follows; a subPath mount
 *   would freeze the file at pod start and defeat hot reload.
 * - Shutdown is preStop sleep (endpoints drop the pod first) + the router's drain window
 *   (`shutdown_delay`) + a margin, and the termination grace period always covers all three, even
 *   against a shorter `podTemplate` override.
 * - The Deployment's selector is the two stable labels only; overrides cannot change them.
 * - Rollout `HotReload` keeps pods across schema changes (the pod template does not contain the
 *   execution config hash); `Restart` puts that hash in a pod annotation so every change rolls.
 * - `replicas` is left out when an autoscaler owns it, so applying never fights the autoscaler.
 * - The digest of the referenced Secret values (`secretsHash`, computed by the reconciler) is a pod
 *   annotation: a rotated credential rolls the pods, an unchanged one changes nothing.
 */
import { configMapName, routerName, type KubeObject, type Supergraph } from '../api/v1alpha1.js';
import { isPlainObject, sortKeysDeep, sortedMap, strategicMerge } from './merge.js';
import {
  CONFIG_DIR,
  CONFIG_HASH_ANNOTATION,
  CONFIG_VOLUME,
  DEFAULT_RESOURCES,
  GRACE_MARGIN_SECONDS,
  PRE_STOP_SECONDS,
  ROUTER_CONFIG_HASH_ANNOTATION,
  ROUTER_CONTAINER,
  ROUTER_HTTP_PORT,
  ROUTER_METRICS_PORT,
  ROUTER_YAML_KEY,
  SECRETS_HASH_ANNOTATION,
  childMeta,
  routerLabels,
  routerSelectorLabels,
} from './meta.js';
import { drainSecondsOf, type RenderedRouterConfig } from './router-config.js';

export interface WorkloadInput {
  supergraph: Supergraph;
  routerConfig: RenderedRouterConfig;
  configHash: string;
  image: string;
  /** undefined: an autoscaler owns the replica count. */
  replicas: number | undefined;
  /** Digest of the referenced Secret keys' values; undefined: no annotation. */
  secretsHash?: string;
}

/** The termination grace period that covers preStop, the drain window and a margin. */
export function terminationGraceSeconds(supergraph: Supergraph): number {
  return PRE_STOP_SECONDS + drainSecondsOf(supergraph) + GRACE_MARGIN_SECONDS;
}

export function renderDeployment(input: WorkloadInput, warnings: string[]): KubeObject {
  const { supergraph, routerConfig, configHash, image, replicas, secretsHash } = input;
  const router = supergraph.spec.router ?? {};
  const grace = terminationGraceSeconds(supergraph);

  const container: Record<string, unknown> = { name: ROUTER_CONTAINER, image };
  if (router.imagePullPolicy) container.imagePullPolicy = router.imagePullPolicy;
  container.args = ['-c', `${CONFIG_DIR}/${ROUTER_YAML_KEY}`];
  if (routerConfig.env.length > 0) container.env = routerConfig.env;
  container.ports = [
    { name: 'http', containerPort: ROUTER_HTTP_PORT, protocol: 'TCP' },
    { name: 'metrics', containerPort: ROUTER_METRICS_PORT, protocol: 'TCP' },
  ];
  container.livenessProbe = {
    httpGet: { path: '/health/live', port: 'http' },
    periodSeconds: 10,
    timeoutSeconds: 2,
    failureThreshold: 3,
  };
  container.readinessProbe = {
    httpGet: { path: '/health/ready', port: 'http' },
    periodSeconds: 5,
    timeoutSeconds: 2,
    failureThreshold: 2,
  };
  // An exec sleep rather than the `sleep` lifecycle action: that one needs Kubernetes 1.30+, and
  // the router image has /bin/sleep.
  container.lifecycle = { preStop: { exec: { command: ['sleep', String(PRE_STOP_SECONDS)] } } };
  container.resources = sortKeysDeep(isPlainObject(router.resources) ? router.resources : DEFAULT_RESOURCES);
  container.securityContext = {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    readOnlyRootFilesystem: true,
  };
  container.volumeMounts = [
    { name: CONFIG_VOLUME, mountPath: CONFIG_DIR, readOnly: true },
    ...routerConfig.volumeMounts,
  ];

  const podAnnotations: Record<string, string> = {
    'prometheus.io/path': routerConfig.metricsPath,
    'prometheus.io/port': String(ROUTER_METRICS_PORT),
    'prometheus.io/scrape': 'true',
    [ROUTER_CONFIG_HASH_ANNOTATION]: routerConfig.hash,
  };
  if ((router.rollout ?? 'HotReload') === 'Restart') podAnnotations[CONFIG_HASH_ANNOTATION] = configHash;
  if (secretsHash) podAnnotations[SECRETS_HASH_ANNOTATION] = secretsHash;

  let template: Record<string, unknown> = {
    metadata: { labels: routerLabels(supergraph), annotations: sortedMap(podAnnotations) },
    spec: {
      automountServiceAccountToken: false,
      securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
      terminationGracePeriodSeconds: grace,
      containers: [container],
      volumes: [
        { name: CONFIG_VOLUME, configMap: { name: configMapName(supergraph) } },
        ...routerConfig.volumes,
      ],
    },
  };

  const overrides = router.podTemplate;
  if (overrides) {
    template = strategicMerge(template, overrides) as Record<string, unknown>;
    const meta = template.metadata as {
      labels?: Record<string, string>;
      annotations?: Record<string, string>;
    };
    // The operator's labels select the pods and its annotations drive rollouts: they win.
    meta.labels = sortedMap({ ...meta.labels, ...routerLabels(supergraph) });
    meta.annotations = sortedMap({ ...meta.annotations, ...podAnnotations });
    const spec = template.spec as Record<string, unknown>;
    const requested = spec.terminationGracePeriodSeconds;
    if (typeof requested !== 'number' || requested < grace) {
      warnings.push(
        `spec.router.podTemplate.spec.terminationGracePeriodSeconds ${String(requested)} is shorter than preStop (${PRE_STOP_SECONDS}s) + drain (${drainSecondsOf(supergraph)}s) + ${GRACE_MARGIN_SECONDS}s; ${grace} is used`,
      );
      spec.terminationGracePeriodSeconds = grace;
    }
  }

  const spec: Record<string, unknown> = {};
  if (replicas !== undefined) spec.replicas = replicas;
  spec.selector = { matchLabels: routerSelectorLabels(supergraph) };
  // Surge first: a new router is ready before an old one starts draining its connections.
  spec.strategy = { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: 0 } };
  spec.template = template;

  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: childMeta(supergraph, routerName(supergraph)),
    spec,
  };
}

export function renderService(supergraph: Supergraph): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: childMeta(supergraph, routerName(supergraph)),
    spec: {
      type: 'ClusterIP',
      selector: routerSelectorLabels(supergraph),
      ports: [
        { name: 'http', port: ROUTER_HTTP_PORT, targetPort: 'http', protocol: 'TCP' },
        { name: 'metrics', port: ROUTER_METRICS_PORT, targetPort: 'metrics', protocol: 'TCP' },
      ],
    },
  };
}

/**
 * Timeouts for long-lived WebSocket and SSE streams on ingress-nginx (its 60 s default would cut
 * idle subscriptions), and no response buffering so SSE events are not held back.
 */
export const INGRESS_DEFAULT_ANNOTATIONS: Readonly<Record<string, string>> = {
  'nginx.ingress.kubernetes.io/proxy-buffering': 'off',
  'nginx.ingress.kubernetes.io/proxy-read-timeout': '3600',
  'nginx.ingress.kubernetes.io/proxy-send-timeout': '3600',
};

/** Only the GraphQL path is exposed: health and metrics stay inside the cluster. */
export function renderIngress(supergraph: Supergraph, graphqlPath: string): KubeObject | undefined {
  const ingress = supergraph.spec.ingress;
  if (!ingress) return undefined;
  const spec: Record<string, unknown> = {};
  if (ingress.className) spec.ingressClassName = ingress.className;
  if (ingress.tls) spec.tls = [{ hosts: [ingress.host], secretName: ingress.tls.secretName }];
  spec.rules = [
    {
      host: ingress.host,
      http: {
        paths: [
          {
            path: graphqlPath,
            pathType: 'Prefix',
            backend: { service: { name: routerName(supergraph), port: { name: 'http' } } },
          },
        ],
      },
    },
  ];
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: childMeta(supergraph, routerName(supergraph), {
      annotations: { ...INGRESS_DEFAULT_ANNOTATIONS, ...ingress.annotations },
    }),
    spec,
  };
}
