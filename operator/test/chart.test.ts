/**
 * charts/edfs-operator through the real helm (e2e/infra/helm.sh, built once per machine): lint
 * and template pass in both modes, the rendered RBAC is least privilege (exact rules, no
 * wildcards, namespaced mode grants nothing cluster-wide but CRD reads) and covers every kind the
 * router renderer produces, and the chart ships the CRDs of crds/ unchanged.
 */
import { beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { helmBinary } from '../../e2e/src/infra/kube.js';
import { CHILD_KINDS } from '../src/desired/index.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHART = `${ROOT}charts/edfs-operator`;
const RELEASE_NS = 'edfs-system';
// A cold machine builds helm first (a few minutes).
const BUILD_TIMEOUT_MS = 15 * 60_000;

let helm: string;

beforeAll(async () => {
  helm = await helmBinary();
}, BUILD_TIMEOUT_MS);

async function helmRun(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(helm, args, { maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, out: stdout + stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

async function template(...set: string[]): Promise<any[]> {
  const { code, out } = await helmRun([
    'template',
    'edfs',
    CHART,
    '--namespace',
    RELEASE_NS,
    ...set.flatMap((s) => ['--set', s]),
  ]);
  if (code !== 0) throw new Error(`helm template failed:\n${out}`);
  return parseAllDocuments(out)
    .map((d) => d.toJS())
    .filter((o) => o !== null && o !== undefined);
}

function find(objects: any[], kind: string, name?: string): any {
  return objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
}

/** `group/resource verb` for every grant of a role's rules. */
function grants(rules: any[]): string[] {
  const out: string[] = [];
  for (const rule of rules)
    for (const group of rule.apiGroups ?? [])
      for (const resource of rule.resources ?? [])
        for (const verb of rule.verbs ?? []) out.push(`${group || 'core'}/${resource} ${verb}`);
  return out.sort();
}

const WRITE = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
const each = (resources: string[], verbs: string[]) =>
  resources.flatMap((r) => verbs.map((v) => `${r} ${v}`));
/** What the operator may do in the namespaces it watches; nothing more. */
const WATCH_GRANTS = [
  ...each(['edfs.io/eventproviders', 'edfs.io/subgraphs', 'edfs.io/supergraphs'], ['get', 'list', 'watch']),
  ...each(
    [
      'edfs.io/eventproviders/status',
      'edfs.io/subgraphs/status',
      'edfs.io/supergraphs/status',
      'edfs.io/supergraphs/scale',
    ],
    ['get', 'patch', 'update'],
  ),
  'edfs.io/supergraphs/finalizers update',
  ...each(
    [
      'core/configmaps',
      'core/services',
      'apps/deployments',
      'networking.k8s.io/ingresses',
      'autoscaling/horizontalpodautoscalers',
      'policy/poddisruptionbudgets',
      'monitoring.coreos.com/servicemonitors',
      'keda.sh/scaledobjects',
    ],
    WRITE,
  ),
  ...each(['core/secrets'], ['get', 'list', 'watch']),
  ...each(['core/events', 'events.k8s.io/events'], ['create', 'patch']),
].sort();
const CRD_GRANTS = [
  'apiextensions.k8s.io/customresourcedefinitions get',
  'apiextensions.k8s.io/customresourcedefinitions list',
];
const LEADER_GRANTS = [
  ...each(['coordination.k8s.io/leases'], ['create', 'get', 'list', 'patch', 'update', 'watch']),
  ...each(['core/events', 'events.k8s.io/events'], ['create', 'patch']),
].sort();

function expectNoWildcards(objects: any[]): void {
  for (const role of objects.filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole')) {
    for (const rule of role.rules) {
      for (const list of [
        rule.apiGroups,
        rule.resources,
        rule.verbs,
        rule.resourceNames ?? [],
        rule.nonResourceURLs ?? [],
      ]) {
        for (const entry of list)
          expect({ role: role.metadata.name, entry }).not.toEqual({ role: role.metadata.name, entry: '*' });
      }
      expect(rule.nonResourceURLs).toBeUndefined();
    }
  }
}

describe('helm lint', () => {
  it.each([[[]], [['watchNamespace=demo']], [['crds.install=false', 'metrics.serviceMonitor.enabled=true']]])(
    'passes with --strict for values %j',
    async (set) => {
      const { code, out } = await helmRun([
        'lint',
        CHART,
        '--strict',
        '--namespace',
        RELEASE_NS,
        ...set.flatMap((s) => ['--set', s]),
      ]);
      expect({ code, out }).toEqual({
        code: 0,
        out: expect.stringContaining('1 chart(s) linted, 0 chart(s) failed'),
      });
    },
  );
});

describe('helm template with default values (cluster-wide)', () => {
  let objects: any[];
  beforeAll(async () => {
    objects = await template();
  });

  it('renders the CRDs, the operator and its RBAC, ServiceAccount and metrics Service', () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
      [
        'ClusterRole/edfs-edfs-operator',
        'ClusterRoleBinding/edfs-edfs-operator',
        'CustomResourceDefinition/eventproviders.edfs.io',
        'CustomResourceDefinition/subgraphs.edfs.io',
        'CustomResourceDefinition/supergraphs.edfs.io',
        'Deployment/edfs-edfs-operator',
        'Role/edfs-edfs-operator-leader-election',
        'RoleBinding/edfs-edfs-operator-leader-election',
        'Service/edfs-edfs-operator-metrics',
        'ServiceAccount/edfs-edfs-operator',
      ].sort(),
    );
  });

  it('ships the CRDs exactly as in crds/, kept on uninstall', () => {
    const rendered = objects.filter((o) => o.kind === 'CustomResourceDefinition');
    const source = readdirSync(`${ROOT}crds`)
      .sort()
      .map((f) => parseAllDocuments(readFileSync(`${ROOT}crds/${f}`, 'utf8'))[0]!.toJS());
    expect(rendered).toEqual(source);
    for (const crd of rendered) expect(crd.metadata.annotations['helm.sh/resource-policy']).toBe('keep');
  });

  it('runs 2 replicas of `edfs operator --leader-elect` with probes on 8081 and metrics on 8080', () => {
    const deployment = find(objects, 'Deployment');
    expect(deployment.metadata.namespace).toBe(RELEASE_NS);
    expect(deployment.spec.replicas).toBe(2);
    const pod = deployment.spec.template.spec;
    expect(pod.serviceAccountName).toBe('edfs-edfs-operator');
    const [container] = pod.containers;
    expect(container.image).toBe('ghcr.io/edfs/edfs-operator:0.1.0');
    expect(container.args).toEqual(['operator', '--leader-elect']);
    expect(container.ports).toEqual([
      { name: 'metrics', containerPort: 8080, protocol: 'TCP' },
      { name: 'health', containerPort: 8081, protocol: 'TCP' },
    ]);
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'health' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'health' });
    expect(container.env.map((e: any) => e.name)).toEqual(['POD_NAME', 'POD_NAMESPACE', 'EDFS_ROUTER_IMAGE']);
    expect(container.env[2].value).toBe('ghcr.io/edfs/edfs-router:0.1.0');
    expect(container.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
    });
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true });
    const service = find(objects, 'Service');
    expect(service.spec.ports).toEqual([
      { name: 'metrics', port: 8080, targetPort: 'metrics', protocol: 'TCP' },
    ]);
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels);
  });

  it('grants exactly the watch rules and CRD reads cluster-wide, and Leases only in the release namespace', () => {
    const clusterRole = find(objects, 'ClusterRole');
    expect(grants(clusterRole.rules)).toEqual([...WATCH_GRANTS, ...CRD_GRANTS].sort());
    const binding = find(objects, 'ClusterRoleBinding');
    expect(binding.roleRef).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: clusterRole.metadata.name,
    });
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: 'edfs-edfs-operator', namespace: RELEASE_NS },
    ]);
    const leader = find(objects, 'Role');
    expect(leader.metadata.namespace).toBe(RELEASE_NS);
    expect(grants(leader.rules)).toEqual(LEADER_GRANTS);
    expect(find(objects, 'RoleBinding').subjects).toEqual(binding.subjects);
  });

  it('has no wildcard verbs, resources or groups', () => {
    expectNoWildcards(objects);
  });

  it('lets the operator server-side apply and prune every kind the router renderer produces', () => {
    const granted = new Set(grants(find(objects, 'ClusterRole').rules));
    for (const { apiVersion, plural } of CHILD_KINDS) {
      const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : 'core';
      for (const verb of ['get', 'list', 'watch', 'create', 'patch', 'delete'])
        expect(granted).toContain(`${group}/${plural} ${verb}`);
    }
  });
});

describe('helm template with watchNamespace=demo', () => {
  let objects: any[];
  beforeAll(async () => {
    objects = await template('watchNamespace=demo');
  });

  it('grants the watch rules through a Role and RoleBinding in demo only', () => {
    const role = find(objects, 'Role', 'edfs-edfs-operator');
    expect(role.metadata.namespace).toBe('demo');
    expect(grants(role.rules)).toEqual(WATCH_GRANTS);
    const binding = find(objects, 'RoleBinding', 'edfs-edfs-operator');
    expect(binding.metadata.namespace).toBe('demo');
    expect(binding.roleRef).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'Role',
      name: 'edfs-edfs-operator',
    });
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: 'edfs-edfs-operator', namespace: RELEASE_NS },
    ]);
  });

  it('grants nothing cluster-wide but reading CRD definitions', () => {
    const clusterRoles = objects.filter((o) => o.kind === 'ClusterRole');
    expect(clusterRoles.map((r) => r.metadata.name)).toEqual(['edfs-edfs-operator-crd-reader']);
    expect(grants(clusterRoles[0].rules)).toEqual(CRD_GRANTS);
    expect(objects.filter((o) => o.kind === 'ClusterRoleBinding').map((b) => b.roleRef.name)).toEqual([
      'edfs-edfs-operator-crd-reader',
    ]);
    const leader = find(objects, 'Role', 'edfs-edfs-operator-leader-election');
    expect(leader.metadata.namespace).toBe(RELEASE_NS);
    expect(grants(leader.rules)).toEqual(LEADER_GRANTS);
  });

  it('has no wildcard verbs, resources or groups', () => {
    expectNoWildcards(objects);
  });

  it('tells the operator to watch only demo', () => {
    expect(find(objects, 'Deployment').spec.template.spec.containers[0].args).toEqual([
      'operator',
      '--leader-elect',
      '--namespace',
      'demo',
    ]);
  });
});

describe('helm template options', () => {
  it('crds.install=false leaves the CRDs out', async () => {
    const objects = await template('crds.install=false');
    expect(objects.filter((o) => o.kind === 'CustomResourceDefinition')).toEqual([]);
    expect(find(objects, 'Deployment')).toBeDefined();
  });

  it('metrics.serviceMonitor.enabled adds a ServiceMonitor for the metrics Service', async () => {
    const objects = await template(
      'metrics.serviceMonitor.enabled=true',
      'metrics.serviceMonitor.labels.release=prom',
    );
    const monitor = find(objects, 'ServiceMonitor');
    expect(monitor.metadata.labels.release).toBe('prom');
    expect(monitor.spec.endpoints).toEqual([{ port: 'metrics', path: '/metrics', interval: '30s' }]);
    const service = find(objects, 'Service');
    for (const [k, v] of Object.entries(monitor.spec.selector.matchLabels))
      expect(service.metadata.labels[k]).toBe(v);
  });

  it('router.image and router.prometheusAddress reach the operator as its router defaults', async () => {
    const objects = await template(
      'router.image.repository=registry.example.com/router',
      'router.image.tag=1.2.3',
      'router.prometheusAddress=http://prometheus.monitoring.svc:9090',
    );
    const env = find(objects, 'Deployment').spec.template.spec.containers[0].env;
    expect(env.filter((e: any) => e.name.startsWith('EDFS_'))).toEqual([
      { name: 'EDFS_ROUTER_IMAGE', value: 'registry.example.com/router:1.2.3' },
      { name: 'EDFS_PROMETHEUS_ADDRESS', value: 'http://prometheus.monitoring.svc:9090' },
    ]);
  });

  it('monitoring.dashboards.enabled adds the Grafana dashboard as a ConfigMap with the sidecar label', async () => {
    expect(find(await template(), 'ConfigMap')).toBeUndefined();
    const objects = await template(
      'monitoring.dashboards.enabled=true',
      'monitoring.dashboards.namespace=grafana',
      'monitoring.dashboards.annotations.grafana_folder=EDFS',
    );
    const configMap = find(objects, 'ConfigMap');
    expect(configMap.metadata).toMatchObject({
      name: 'edfs-edfs-operator-dashboard-edfs-routers',
      namespace: 'grafana',
      labels: { grafana_dashboard: '1' },
      annotations: { grafana_folder: 'EDFS' },
    });
    const dashboard = JSON.parse(configMap.data['edfs-routers.json']);
    expect(dashboard).toEqual(
      JSON.parse(readFileSync(`${CHART}/files/dashboards/edfs-routers.json`, 'utf8')),
    );
    const targets = dashboard.panels.flatMap((p: any) => p.targets ?? []);
    expect(targets.length).toBeGreaterThan(10);
    for (const t of targets) expect(t.datasource).toEqual({ type: 'prometheus', uid: '${datasource}' });
  });

  it('monitoring.prometheusRules.enabled adds the alerts of files/prometheus-rules.yaml as a PrometheusRule', async () => {
    expect(find(await template(), 'PrometheusRule')).toBeUndefined();
    const objects = await template(
      'monitoring.prometheusRules.enabled=true',
      'monitoring.prometheusRules.labels.release=prom',
      'monitoring.prometheusRules.additionalRuleLabels.team=platform',
    );
    const rule = find(objects, 'PrometheusRule');
    expect(rule.metadata.labels.release).toBe('prom');
    const file = parseAllDocuments(readFileSync(`${CHART}/files/prometheus-rules.yaml`, 'utf8'))[0]!.toJS();
    expect(rule.spec.groups.map((g: any) => g.name)).toEqual(file.groups.map((g: any) => g.name));
    const alerts = rule.spec.groups.flatMap((g: any) => g.rules);
    expect(alerts.map((a: any) => a.alert)).toEqual(
      file.groups.flatMap((g: any) => g.rules.map((r: any) => r.alert)),
    );
    for (const alert of alerts) {
      expect(alert.labels).toEqual({ severity: expect.any(String), team: 'platform' });
      expect(alert.annotations.summary).toContain('{{ $labels.');
    }
  });

  it('refuses two replicas without leader election', async () => {
    const { code, out } = await helmRun(['template', 'edfs', CHART, '--set', 'leaderElection.enabled=false']);
    expect(code).not.toBe(0);
    expect(out).toContain('replicaCount above 1 needs leaderElection.enabled');
  });
});

describe('values.yaml', () => {
  it('documents every value with a comment line above it', () => {
    const lines = readFileSync(`${CHART}/values.yaml`, 'utf8').split('\n');
    const undocumented: string[] = [];
    lines.forEach((line, index) => {
      if (!/^\s*[A-Za-z][\w.-]*:/.test(line)) return;
      let previous = index - 1;
      while (previous >= 0 && lines[previous]!.trim() === '') previous--;
      if (previous < 0 || !lines[previous]!.trim().startsWith('#'))
        undocumented.push(`line ${index + 1}: ${line.trim()}`);
    });
    expect(undocumented).toEqual([]);
  });
});
