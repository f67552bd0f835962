/**
 * Desired state: the Kubernetes objects a Supergraph's routers need, computed from data alone.
 *
 * `renderDesired` is a pure function (no I/O, no clock, no randomness): the reconciler gathers the
 * Supergraph, the composed config, the EventProviders and the cluster's capabilities, calls it,
 * and server-side applies the result with one field manager. Same input, same bytes, so a re-run
 * applies nothing new. Objects come in apply order (ConfigMap before the Deployment that mounts
 * it). Options that cannot be honoured in this cluster are dropped and explained in `warnings`,
 * never silently and never by failing the whole render.
 */
import {
  configMapName,
  type DesiredInput,
  type DesiredResult,
  type KubeObject,
  type Supergraph,
} from '../api/v1alpha1.js';
import { CONFIG_HASH_ANNOTATION, CONFIG_JSON_KEY, ROUTER_YAML_KEY, childMeta } from './meta.js';
import { renderServiceMonitor } from './monitoring.js';
import {
  jwksBindings,
  renderRouterConfig,
  routerYamlProblems,
  secretBindings,
  type RenderedRouterConfig,
} from './router-config.js';
import { renderDisruptionBudget, renderScaling } from './scaling.js';
import { renderDeployment, renderIngress, renderService } from './workload.js';

export {
  APP_NAME,
  CHILD_KINDS,
  CONFIG_DIR,
  CONFIG_HASH_ANNOTATION,
  CONFIG_JSON_KEY,
  DEFAULT_DRAIN_SECONDS,
  GRACE_MARGIN_SECONDS,
  MANAGED_BY,
  PRE_STOP_SECONDS,
  ROUTER_CONFIG_HASH_ANNOTATION,
  ROUTER_CONTAINER,
  ROUTER_HTTP_PORT,
  ROUTER_METRICS_PORT,
  ROUTER_YAML_KEY,
  SECRETS_DIR,
  SECRETS_HASH_ANNOTATION,
  ownerReference,
  routerLabels,
  routerSelector,
  routerSelectorLabels,
} from './meta.js';
export {
  envVarName,
  jwksBindings,
  providerIdOf,
  renderRouterConfig,
  routerYamlProblems,
  secretBindings,
  type EnvVar,
  type JwksBinding,
  type RenderedRouterConfig,
  type SecretBinding,
  type SecretField,
} from './router-config.js';
export { CONNECTIONS_METRIC, defaultConnectionsQuery } from './scaling.js';
export { INGRESS_DEFAULT_ANNOTATIONS, terminationGraceSeconds } from './workload.js';

/**
 * What the routers would refuse in the rendered objects' router.yaml (a bad
 * `spec.router.config`), checked with the router's own loader; empty when they will start.
 */
export function routerConfigProblems(objects: readonly KubeObject[]): string[] {
  const configMap = objects.find((o) => o.kind === 'ConfigMap') as
    (KubeObject & { data?: Record<string, string> }) | undefined;
  const yaml = configMap?.data?.[ROUTER_YAML_KEY];
  if (yaml === undefined) return [];
  const deployment = objects.find((o) => o.kind === 'Deployment') as
    | (KubeObject & { spec?: { template?: { spec?: { containers?: { env?: { name: string }[] }[] } } } })
    | undefined;
  const env = (deployment?.spec?.template?.spec?.containers ?? []).flatMap((c) =>
    (c.env ?? []).map((e) => e.name),
  );
  return routerYamlProblems(yaml, env);
}

/** The API server refuses ConfigMaps whose data exceeds 1 MiB. */
const CONFIG_MAP_LIMIT_BYTES = 1024 * 1024;

export function renderDesired(input: DesiredInput): DesiredResult {
  const { supergraph } = input;
  const warnings: string[] = [];
  const routerConfig = renderRouterConfig(supergraph, input.providers);
  warnings.push(...routerConfig.warnings);

  const scaling = renderScaling(input, warnings);
  const objects: (KubeObject | undefined)[] = [
    renderConfigMap(input, routerConfig, warnings),
    renderService(supergraph),
    renderDeployment(
      {
        supergraph,
        routerConfig,
        configHash: input.configHash,
        image: supergraph.spec.router?.image || input.defaults.routerImage,
        replicas: scaling.replicas,
        secretsHash:
          input.providers.some((p) => secretBindings(p).length > 0) || jwksBindings(supergraph).length > 0
            ? input.secretsHash
            : undefined,
      },
      warnings,
    ),
    renderDisruptionBudget(supergraph, scaling.maxReplicas),
    scaling.autoscaler,
    renderIngress(supergraph, routerConfig.graphqlPath),
    renderServiceMonitor(input, routerConfig.metricsPath, warnings),
  ];
  return { objects: objects.filter((o): o is KubeObject => o !== undefined), warnings };
}

function renderConfigMap(
  input: DesiredInput,
  routerConfig: RenderedRouterConfig,
  warnings: string[],
): KubeObject {
  const { supergraph, configJson, configHash } = input;
  const size = Buffer.byteLength(configJson) + Buffer.byteLength(routerConfig.yaml);
  if (size > CONFIG_MAP_LIMIT_BYTES) {
    warnings.push(
      `the execution config and router.yaml take ${size} bytes, more than a ConfigMap holds (1 MiB); the API server will refuse ConfigMap "${configMapName(supergraph)}"`,
    );
  }
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: childMeta(supergraph, configMapName(supergraph), {
      annotations: { [CONFIG_HASH_ANNOTATION]: configHash },
    }),
    data: { [CONFIG_JSON_KEY]: configJson, [ROUTER_YAML_KEY]: routerConfig.yaml },
  };
}

export type { DesiredInput, DesiredResult, KubeObject, Supergraph };
