/**
 * Monitoring and autoscaling in a cluster of `cluster.ts`, deployed the way a platform team runs
 * them, for the suites that scale routers on their own metrics:
 *
 * - Prometheus 3 (namespace `monitoring`, Service `prometheus:9090`) discovering pods and Services
 *   through the Kubernetes API and scraping those annotated `prometheus.io/scrape: "true"` (port
 *   and path from `prometheus.io/port` and `prometheus.io/path`), every 5 s; series carry
 *   `namespace` and `pod` (and `service` for Service scrapes), the labels a ServiceMonitor gives
 *   too; rule files from a ConfigMap (the groups of a PrometheusRule, loaded as the Prometheus
 *   Operator loads them);
 * - KEDA (namespace `keda`) from its own manifests (`config/minimal`: CRDs, RBAC, the operator and
 *   its metrics server registered as the `v1beta1.external.metrics.k8s.io` APIService);
 * - metrics-server (kube-system) from its release manifests, serving `v1beta1.metrics.k8s.io` (HPA
 *   on CPU), with `--kubelet-insecure-tls` as on kind (kubelets serve self-signed certificates).
 *
 * Binaries and images come from `e2e/infra/monitoring-parts.sh` (built once per machine, cached);
 * the images carry their upstream names, so an external cluster pulls them instead.
 *
 * Prometheus is read through the API server's service proxy (`kubectl get --raw`), which works
 * on any cluster without a port of its own.
 */
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, stringify } from 'yaml';
import { runScript, type Cluster } from './cluster.js';
import { waitFor } from '../fixtures/wait.js';

const PARTS_SCRIPT = fileURLToPath(new URL('../../infra/monitoring-parts.sh', import.meta.url));

export const PROMETHEUS_NAMESPACE = 'monitoring';
/** The in-cluster address of Prometheus (the chart's `router.prometheusAddress`). */
export const PROMETHEUS_ADDRESS = `http://prometheus.${PROMETHEUS_NAMESPACE}.svc:9090`;
export const SCRAPE_INTERVAL_SECONDS = 5;

export interface MonitoringParts {
  prometheusImage: string;
  kedaImage: string;
  kedaAdapterImage: string;
  metricsServerImage: string;
  /** `docker save`-style archives of the four images. */
  archives: string[];
  /** KEDA's `config/` directory (kustomize bases). */
  kedaConfig: string;
  /** metrics-server's `manifests/` directory (kustomize bases and overlays). */
  metricsServerManifests: string;
  /** promtool of the same Prometheus release. */
  promtool: string;
}

let parts: Promise<MonitoringParts> | undefined;

/** Builds (first run: tens of minutes) or finds the parts. */
export function monitoringParts(): Promise<MonitoringParts> {
  parts ??= runScript(PARTS_SCRIPT, []).then((lines) => {
    const env: Record<string, string> = {};
    for (const line of lines) {
      const eq = line.indexOf('=');
      if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
    }
    const need = (key: string): string => {
      if (!env[key]) throw new Error(`${basename(PARTS_SCRIPT)} printed no ${key}`);
      return env[key];
    };
    const imageDir = need('IMAGE_DIR');
    return {
      prometheusImage: need('PROMETHEUS_IMAGE'),
      kedaImage: need('KEDA_IMAGE'),
      kedaAdapterImage: need('KEDA_ADAPTER_IMAGE'),
      metricsServerImage: need('METRICS_SERVER_IMAGE'),
      archives: ['prometheus', 'keda', 'keda-metrics-apiserver', 'metrics-server'].map(
        (name) => `${imageDir}/${name}.tar`,
      ),
      kedaConfig: need('KEDA_CONFIG'),
      metricsServerManifests: need('METRICS_SERVER_MANIFESTS'),
      promtool: need('PROMTOOL'),
    };
  });
  return parts;
}

// ---------------------------------------------------------------------------------------------
// Prometheus

export interface Sample {
  metric: Record<string, string>;
  value: number;
}

export interface Prometheus {
  /** An instant query; rejects on a query error (bad PromQL). */
  query(expr: string): Promise<Sample[]>;
  /** Every scrape target (`/api/v1/targets`), active ones. */
  targets(): Promise<
    { labels: Record<string, string>; health: string; scrapeUrl: string; lastError: string }[]
  >;
  /** The loaded rule groups (`/api/v1/rules`). */
  rules(): Promise<
    {
      name: string;
      rules: {
        name: string;
        type: 'alerting' | 'recording';
        query: string;
        health: string;
        lastError?: string;
        state?: string;
        alerts?: { labels: Record<string, string>; state: string }[];
      }[];
    }[]
  >;
}

type Obj = Record<string, any>;

function prometheusApi(cluster: Cluster): Prometheus {
  const base = `/api/v1/namespaces/${PROMETHEUS_NAMESPACE}/services/prometheus:9090/proxy`;
  const get = async (path: string): Promise<Obj> => {
    let text: string;
    try {
      text = await cluster.kubectl(['get', '--raw', `${base}${path}`]);
    } catch (error) {
      // kubectl prints the body of a 400 (a PromQL error) in its message.
      throw new Error(`Prometheus ${path}: ${(error as Error).message}`);
    }
    const body = JSON.parse(text) as Obj;
    if (body.status !== 'success') throw new Error(`Prometheus ${path}: ${text.slice(0, 500)}`);
    return body.data as Obj;
  };
  return {
    async query(expr) {
      const data = await get(`/api/v1/query?query=${encodeURIComponent(expr)}`);
      if (data.resultType !== 'vector') {
        throw new Error(`${expr}: a ${String(data.resultType)}, not an instant vector`);
      }
      return (data.result as Obj[]).map((r) => ({
        metric: r.metric as Record<string, string>,
        value: Number((r.value as [number, string])[1]),
      }));
    },
    async targets() {
      return (await get('/api/v1/targets?state=active')).activeTargets;
    },
    async rules() {
      return (await get('/api/v1/rules')).groups;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Manifests

function prometheusConfig(): Obj {
  const keepAnnotated = (prefix: string) => [
    { source_labels: [`${prefix}_annotation_prometheus_io_scrape`], action: 'keep', regex: 'true' },
    {
      source_labels: [`${prefix}_annotation_prometheus_io_path`],
      action: 'replace',
      regex: '(.+)',
      target_label: '__metrics_path__',
    },
  ];
  return {
    global: {
      scrape_interval: `${SCRAPE_INTERVAL_SECONDS}s`,
      scrape_timeout: `${SCRAPE_INTERVAL_SECONDS - 1}s`,
      evaluation_interval: `${SCRAPE_INTERVAL_SECONDS}s`,
    },
    rule_files: ['/etc/prometheus/rules/*.yaml'],
    scrape_configs: [
      {
        // Pods annotated prometheus.io/scrape (the router pods the operator renders are).
        job_name: 'kubernetes-pods',
        kubernetes_sd_configs: [{ role: 'pod' }],
        relabel_configs: [
          ...keepAnnotated('__meta_kubernetes_pod'),
          {
            source_labels: ['__meta_kubernetes_pod_phase'],
            action: 'drop',
            regex: 'Pending|Succeeded|Failed',
          },
          {
            source_labels: [
              '__meta_kubernetes_pod_ip',
              '__meta_kubernetes_pod_annotation_prometheus_io_port',
            ],
            action: 'replace',
            regex: '(.+);(\\d+)',
            replacement: '$1:$2',
            target_label: '__address__',
          },
          { source_labels: ['__meta_kubernetes_namespace'], target_label: 'namespace' },
          { source_labels: ['__meta_kubernetes_pod_name'], target_label: 'pod' },
        ],
      },
      {
        // Services annotated prometheus.io/scrape: every ready endpoint behind them.
        job_name: 'kubernetes-service-endpoints',
        kubernetes_sd_configs: [{ role: 'endpointslice' }],
        relabel_configs: [
          ...keepAnnotated('__meta_kubernetes_service'),
          {
            source_labels: ['__address__', '__meta_kubernetes_service_annotation_prometheus_io_port'],
            action: 'replace',
            regex: '([^:]+)(?::\\d+)?;(\\d+)',
            replacement: '$1:$2',
            target_label: '__address__',
          },
          { source_labels: ['__meta_kubernetes_namespace'], target_label: 'namespace' },
          { source_labels: ['__meta_kubernetes_service_name'], target_label: 'service' },
          { source_labels: ['__meta_kubernetes_pod_name'], target_label: 'pod' },
        ],
      },
    ],
  };
}

function prometheusManifests(image: string, ruleGroups: Obj[]): Obj[] {
  const ns = PROMETHEUS_NAMESPACE;
  const labels = { 'app.kubernetes.io/name': 'prometheus' };
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'prometheus', namespace: ns } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'edfs-e2e-prometheus' },
      rules: [
        {
          apiGroups: [''],
          resources: ['nodes', 'services', 'endpoints', 'pods'],
          verbs: ['get', 'list', 'watch'],
        },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'edfs-e2e-prometheus' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'edfs-e2e-prometheus' },
      subjects: [{ kind: 'ServiceAccount', name: 'prometheus', namespace: ns }],
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'prometheus-config', namespace: ns },
      data: { 'prometheus.yml': stringify(prometheusConfig()) },
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'prometheus-rules', namespace: ns },
      data: { 'edfs.yaml': stringify({ groups: ruleGroups }) },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'prometheus', namespace: ns, labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: 'prometheus',
            securityContext: {
              runAsNonRoot: true,
              runAsUser: 65534,
              fsGroup: 65534,
              seccompProfile: { type: 'RuntimeDefault' },
            },
            containers: [
              {
                name: 'prometheus',
                image,
                imagePullPolicy: 'IfNotPresent',
                args: [
                  '--config.file=/etc/prometheus/prometheus.yml',
                  '--storage.tsdb.path=/prometheus',
                  '--storage.tsdb.retention.time=2h',
                  '--web.enable-lifecycle',
                ],
                ports: [{ name: 'http', containerPort: 9090 }],
                readinessProbe: { httpGet: { path: '/-/ready', port: 'http' }, periodSeconds: 2 },
                resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '1Gi' } },
                securityContext: {
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ['ALL'] },
                },
                volumeMounts: [
                  { name: 'config', mountPath: '/etc/prometheus', readOnly: true },
                  { name: 'rules', mountPath: '/etc/prometheus/rules', readOnly: true },
                  { name: 'data', mountPath: '/prometheus' },
                ],
              },
            ],
            volumes: [
              { name: 'config', configMap: { name: 'prometheus-config' } },
              { name: 'rules', configMap: { name: 'prometheus-rules' } },
              { name: 'data', emptyDir: {} },
            ],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'prometheus', namespace: ns, labels },
      spec: { selector: labels, ports: [{ name: 'http', port: 9090, targetPort: 'http' }] },
    },
  ];
}

/** Upstream kustomize output with the images pinned to the built ones and nothing pulled. */
async function kustomized(cluster: Cluster, dir: string, images: Record<string, string>): Promise<Obj[]> {
  const docs = parseAllDocuments(await cluster.kubectl(['kustomize', dir]))
    .map((d) => d.toJS() as Obj | null)
    .filter((d): d is Obj => d !== null);
  for (const doc of docs) {
    const spec = doc.spec?.template?.spec as Obj | undefined;
    for (const container of (spec?.containers ?? []) as Obj[]) {
      const name = String(container.image).replace(/[:@].*$/, '');
      const pinned = Object.entries(images).find(([upstream]) => upstream === name);
      if (pinned) {
        container.image = pinned[1];
        container.imagePullPolicy = 'IfNotPresent';
      }
    }
  }
  return docs;
}

// ---------------------------------------------------------------------------------------------

export interface MonitoringOptions {
  /** Rule groups (a PrometheusRule's `spec.groups`) Prometheus loads. */
  ruleGroups?: Obj[];
  /** Also install KEDA (default true). */
  keda?: boolean;
  /** Also install metrics-server (default true). */
  metricsServer?: boolean;
}

export interface Monitoring {
  prometheus: Prometheus;
  parts: MonitoringParts;
}

const stripTag = (image: string) => image.replace(/:[^:/]+$/, '');

/**
 * Installs Prometheus, KEDA and metrics-server and resolves once Prometheus answers and the
 * aggregated APIs (external metrics, resource metrics) are Available.
 */
export async function installMonitoring(
  cluster: Cluster,
  options: MonitoringOptions = {},
): Promise<Monitoring> {
  const p = await monitoringParts();
  for (const archive of p.archives) await cluster.importArchive(archive);
  const objects: Obj[] = [...prometheusManifests(p.prometheusImage, options.ruleGroups ?? [])];
  if (options.keda !== false) {
    objects.push(
      ...(await kustomized(cluster, `${p.kedaConfig}/minimal`, {
        [stripTag(p.kedaImage)]: p.kedaImage,
        [stripTag(p.kedaAdapterImage)]: p.kedaAdapterImage,
      })),
    );
  }
  if (options.metricsServer !== false) {
    const docs = await kustomized(cluster, `${p.metricsServerManifests}/overlays/release`, {
      [stripTag(p.metricsServerImage)]: p.metricsServerImage,
    });
    for (const doc of docs) {
      if (doc.kind === 'Deployment') {
        doc.spec.template.spec.containers[0].args.push('--kubelet-insecure-tls');
      }
    }
    objects.push(...docs);
  }
  // CRDs and Namespaces first, so the rest of one apply finds them.
  const first = objects.filter((o) => o.kind === 'CustomResourceDefinition' || o.kind === 'Namespace');
  const rest = objects.filter((o) => !first.includes(o));
  await cluster.kubectl(['apply', '--server-side', '-f', '-'], first.map((o) => stringify(o)).join('---\n'));
  await cluster.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
  await cluster.kubectl(['apply', '--server-side', '-f', '-'], rest.map((o) => stringify(o)).join('---\n'));

  const waits: Promise<unknown>[] = [
    cluster.kubectl([
      'rollout',
      'status',
      '-n',
      PROMETHEUS_NAMESPACE,
      'deployment/prometheus',
      '--timeout=300s',
    ]),
  ];
  if (options.keda !== false) {
    waits.push(
      cluster.kubectl(['rollout', 'status', '-n', 'keda', 'deployment/keda-operator', '--timeout=300s']),
      cluster.kubectl([
        'rollout',
        'status',
        '-n',
        'keda',
        'deployment/keda-metrics-apiserver',
        '--timeout=300s',
      ]),
      apiServiceAvailable(cluster, 'v1beta1.external.metrics.k8s.io'),
    );
  }
  if (options.metricsServer !== false) {
    waits.push(
      cluster.kubectl([
        'rollout',
        'status',
        '-n',
        'kube-system',
        'deployment/metrics-server',
        '--timeout=300s',
      ]),
      apiServiceAvailable(cluster, 'v1beta1.metrics.k8s.io'),
    );
  }
  await Promise.all(waits);
  return { prometheus: prometheusApi(cluster), parts: p };
}

async function apiServiceAvailable(cluster: Cluster, name: string): Promise<void> {
  await waitFor(
    async () => {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const service = JSON.parse(await cluster.kubectl(['get', 'apiservice', name, '-o', 'json'])) as Obj;
      const available = (service.status?.conditions as Obj[] | undefined)?.find(
        (c) => c.type === 'Available',
      );
      // Thrown, so a timeout reports the last reason.
      if (available?.status !== 'True') {
        throw new Error(`${String(available?.reason)}: ${String(available?.message)}`);
      }
      return true;
    },
    `APIService ${name} Available`,
    300_000,
  );
}
