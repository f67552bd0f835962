/**
 * The operator against a real kube-apiserver + etcd (e2e/src/infra/kube.ts), running as its own
 * ServiceAccount with exactly the RBAC the Helm chart renders (`helm template`), nothing more.
 *
 * Shown here: examples/chat turns into the router objects with the right content and owner
 * references and honest status; an SDL edit reaches the ConfigMap and configHash within seconds;
 * a broken SDL is reported and the ConfigMap stays byte for byte; a missing Secret key is named on
 * the EventProvider; an operator killed mid-way (SIGKILL of a real `edfs operator` process) is
 * replaced and the result converges without churn; SIGTERM releases the Lease and exits 0; two
 * replicas never reconcile at the same time; `kubectl get sup` columns; a rotated credential rolls
 * the routers (an unrelated key does not); switching to an HPA keeps the live replica count.
 *
 * No controller-manager runs (envtest-style), so Deployments never get pods: `Ready` stays False
 * (`RoutersNotReady`) and `Progressing` True. Each scenario uses its own namespace where it needs
 * a clean slate; namespaces are never deleted (nothing would finalize them).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import {
  composeSupergraph,
  loadComposeInputs,
  renderDesired,
  startOperator,
  type ReconcileRecord,
  type RunningOperator,
  type StartOptions,
} from '@edfs/operator';
import { kubeApi, type KubeRequestOptions, type KubeResponse } from '../src/fixtures/kube.js';
import { metric as metricAt } from '../src/fixtures/metrics.js';
import { waitFor } from '../src/fixtures/wait.js';
import { helmBinary, startControlPlane, type ControlPlane } from '../src/infra/kube.js';

const run = promisify(execFile);
const BUILD_TIMEOUT_MS = 40 * 60_000;
const ROOT = new URL('../../', import.meta.url);
const CHAT = fileURLToPath(new URL('examples/chat/manifests/', ROOT));
const EDFS_BIN = fileURLToPath(new URL('operator/bin/edfs.js', ROOT));
const OPERATOR_NS = 'edfs-system';
const SA = 'edfs-operator';
/** Short leader election timings so handovers take seconds (defaults are 15 s / 10 s / 2 s). */
const LEASE = { leaseDurationMs: 4_000, renewDeadlineMs: 3_000, retryPeriodMs: 500 };

type Obj = { apiVersion: string; kind: string; metadata: Record<string, any>; [k: string]: any };

let cp: ControlPlane;
let token: string;
let helm: string;
const rbacKinds: string[] = [];
const operators: RunningOperator[] = [];
const children: ChildProcess[] = [];

// ---------------------------------------------------------------------------------------------
// A small client of our own (not the operator's), so assertions do not trust the code under test.

const RESOURCES: Record<string, { base: string; plural: string; namespaced: boolean }> = {
  CustomResourceDefinition: {
    base: '/apis/apiextensions.k8s.io/v1',
    plural: 'customresourcedefinitions',
    namespaced: false,
  },
  Namespace: { base: '/api/v1', plural: 'namespaces', namespaced: false },
  ServiceAccount: { base: '/api/v1', plural: 'serviceaccounts', namespaced: true },
  Secret: { base: '/api/v1', plural: 'secrets', namespaced: true },
  ConfigMap: { base: '/api/v1', plural: 'configmaps', namespaced: true },
  Service: { base: '/api/v1', plural: 'services', namespaced: true },
  Event: { base: '/api/v1', plural: 'events', namespaced: true },
  Pod: { base: '/api/v1', plural: 'pods', namespaced: true },
  Deployment: { base: '/apis/apps/v1', plural: 'deployments', namespaced: true },
  PodDisruptionBudget: { base: '/apis/policy/v1', plural: 'poddisruptionbudgets', namespaced: true },
  Ingress: { base: '/apis/networking.k8s.io/v1', plural: 'ingresses', namespaced: true },
  HorizontalPodAutoscaler: {
    base: '/apis/autoscaling/v2',
    plural: 'horizontalpodautoscalers',
    namespaced: true,
  },
  Lease: { base: '/apis/coordination.k8s.io/v1', plural: 'leases', namespaced: true },
  ClusterRole: { base: '/apis/rbac.authorization.k8s.io/v1', plural: 'clusterroles', namespaced: false },
  ClusterRoleBinding: {
    base: '/apis/rbac.authorization.k8s.io/v1',
    plural: 'clusterrolebindings',
    namespaced: false,
  },
  Role: { base: '/apis/rbac.authorization.k8s.io/v1', plural: 'roles', namespaced: true },
  RoleBinding: { base: '/apis/rbac.authorization.k8s.io/v1', plural: 'rolebindings', namespaced: true },
  EventProvider: { base: '/apis/edfs.io/v1alpha1', plural: 'eventproviders', namespaced: true },
  Subgraph: { base: '/apis/edfs.io/v1alpha1', plural: 'subgraphs', namespaced: true },
  Supergraph: { base: '/apis/edfs.io/v1alpha1', plural: 'supergraphs', namespaced: true },
};

function pathOf(kind: string, namespace?: string, name?: string): string {
  const r = RESOURCES[kind];
  if (!r) throw new Error(`no path for ${kind}`);
  return `${r.base}${r.namespaced ? `/namespaces/${namespace}` : ''}/${r.plural}${name ? `/${name}` : ''}`;
}

const api = (
  method: string,
  path: string,
  body?: unknown,
  opts?: KubeRequestOptions,
): Promise<KubeResponse> => kubeApi(cp, method, path, body, opts);

/** Server-side apply as a user (field manager `e2e-user`). */
async function apply(obj: Obj): Promise<Obj> {
  const res = await api(
    'PATCH',
    `${pathOf(obj.kind, obj.metadata.namespace, obj.metadata.name)}?fieldManager=e2e-user&force=true`,
    obj,
    { contentType: 'application/apply-patch+yaml' },
  );
  if (res.status >= 300)
    throw new Error(`apply ${obj.kind} ${obj.metadata.name}: HTTP ${res.status} ${res.body?.message}`);
  return res.body;
}

async function get(kind: string, namespace: string | undefined, name: string): Promise<Obj | undefined> {
  const res = await api('GET', pathOf(kind, namespace, name));
  if (res.status === 404) return undefined;
  if (res.status !== 200) throw new Error(`get ${kind} ${name}: HTTP ${res.status} ${res.body?.message}`);
  return res.body;
}

async function must(kind: string, namespace: string | undefined, name: string): Promise<Obj> {
  const obj = await get(kind, namespace, name);
  if (!obj) throw new Error(`${kind} ${namespace}/${name} not found`);
  return obj;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const condition = (obj: Obj | undefined, type: string) =>
  obj?.status?.conditions?.find((c: { type: string }) => c.type === type) as Record<string, any> | undefined;

/** Waits for an Event `Kind/name Reason` in `namespace`. */
function eventRecorded(namespace: string, what: string, count = 1): Promise<Obj[]> {
  return waitFor(async () => {
    const items = (await api('GET', pathOf('Event', namespace))).body.items as Obj[];
    const found = items.filter(
      (e) => `${e.involvedObject.kind}/${e.involvedObject.name} ${e.reason}` === what,
    );
    return found.length >= count ? found : undefined;
  }, `Event ${what}`);
}

/**
 * The edfs.io objects of examples/chat/manifests (its NATS and subgraph workloads run only in the
 * cluster suites), optionally moved to another namespace.
 */
function chatManifests(namespace = 'demo'): Obj[] {
  return readdirSync(CHAT)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((f) => parseAllDocuments(readFileSync(`${CHAT}/${f}`, 'utf8')).map((d) => d.toJS() as Obj))
    .filter((o) => String(o.apiVersion).startsWith('edfs.io/'))
    .map((o) => ({ ...o, metadata: { ...o.metadata, namespace } }));
}

async function applyChat(namespace: string): Promise<void> {
  await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
  for (const obj of chatManifests(namespace)) await apply(obj);
}

function sdlOf(namespace: string, name: string): string {
  return chatManifests(namespace).find((o) => o.kind === 'Subgraph' && o.metadata.name === name)!.spec.schema
    .sdl;
}

async function setSdl(namespace: string, name: string, sdl: string): Promise<void> {
  const sg = chatManifests(namespace).find((o) => o.kind === 'Subgraph' && o.metadata.name === name)!;
  await apply({ ...sg, spec: { ...sg.spec, schema: { sdl } } });
}

/** A metric of the operator serving `/metrics` under `url`; see `metricAt`. */
const metric = (url: string | undefined, name: string, labels?: Record<string, string>) =>
  metricAt(`${url}/metrics`, name, labels);

function operatorOptions(extra: Partial<StartOptions> = {}): StartOptions {
  return {
    kubeConfig: cp.kubeConfig(token),
    leaderElect: true,
    metricsBindAddress: '127.0.0.1:0',
    healthBindAddress: '127.0.0.1:0',
    env: { ...process.env, EDFS_LOG_LEVEL: 'error' },
    ...extra,
    leaderElection: { namespace: OPERATOR_NS, ...LEASE, ...extra.leaderElection },
  };
}

async function launch(extra: Partial<StartOptions> = {}): Promise<RunningOperator> {
  const operator = await startOperator(operatorOptions(extra));
  operators.push(operator);
  return operator;
}

/** A matcher for `want` where objects may carry more fields (server defaults, status); lists match item by item. */
function containing(want: unknown): any {
  if (Array.isArray(want)) return want.map(containing);
  if (want && typeof want === 'object') {
    return expect.objectContaining(
      Object.fromEntries(Object.entries(want).map(([k, v]) => [k, containing(v)])),
    );
  }
  return want;
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  const [plane, helmPath] = await Promise.all([startControlPlane(), helmBinary()]);
  cp = plane;
  helm = helmPath;

  for (const file of readdirSync(new URL('crds/', ROOT)).filter((f) => f.endsWith('.yaml'))) {
    await apply(parseYaml(readFileSync(new URL(`crds/${file}`, ROOT), 'utf8')));
  }
  await waitFor(async () => (await api('GET', '/apis/edfs.io/v1alpha1')).status === 200, 'edfs.io discovery');
  await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: OPERATOR_NS } });

  // Exactly the chart's RBAC: whatever `helm template` renders for it, applied as is.
  const { stdout } = await run(helm, [
    'template',
    'edfs-operator',
    fileURLToPath(new URL('charts/edfs-operator', ROOT)),
    '--namespace',
    OPERATOR_NS,
    '--set',
    'crds.install=false',
  ]);
  for (const doc of parseAllDocuments(stdout)) {
    const obj = doc.toJS() as Obj | null;
    if (
      !obj ||
      !['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(obj.kind)
    )
      continue;
    if (RESOURCES[obj.kind]!.namespaced) obj.metadata.namespace ??= OPERATOR_NS;
    await apply(obj);
    rbacKinds.push(obj.kind);
  }
  token = await cp.tokenFor(OPERATOR_NS, SA);
  // The RBAC authorizer catches up with new bindings within moments.
  await waitFor(
    async () =>
      (await api('GET', '/apis/edfs.io/v1alpha1/supergraphs', undefined, { bearer: token })).status === 200,
    'the ServiceAccount may list Supergraphs',
  );
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await Promise.all(operators.map((o) => o.stop()));
  await cp?.stop();
}, 60_000);

// ---------------------------------------------------------------------------------------------

describe('the operator with exactly the chart RBAC', () => {
  let operator: RunningOperator;
  const reconciles: ReconcileRecord[] = [];
  /** The chat objects as first created, to compare the restarted operator's result with. */
  const firstResult: Record<string, Obj> = {};

  it('runs as its ServiceAccount, holds only what the chart grants, becomes ready and takes the Lease', async () => {
    expect(rbacKinds.sort()).toEqual([
      'ClusterRole',
      'ClusterRoleBinding',
      'Role',
      'RoleBinding',
      'ServiceAccount',
    ]);
    const review = await api(
      'POST',
      '/apis/authentication.k8s.io/v1/selfsubjectreviews',
      {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'SelfSubjectReview',
      },
      { bearer: token },
    );
    expect(review.body.status.userInfo.username).toBe(`system:serviceaccount:${OPERATOR_NS}:${SA}`);
    // Not an admin: the chart grants nothing on Pods, and Secrets are read-only.
    expect((await api('GET', pathOf('Pod', 'default'), undefined, { bearer: token })).status).toBe(403);
    expect(
      (await api('POST', pathOf('Secret', 'default'), { metadata: { name: 'x' } }, { bearer: token })).status,
    ).toBe(403);

    operator = await launch({ onReconcile: (r) => reconciles.push(r) });
    const ready = await waitFor(async () => {
      const res = await fetch(`${operator.healthUrl}/readyz`);
      return res.status === 200 ? res.text() : undefined;
    }, '/readyz');
    expect(ready).toContain('readyz check passed');
    expect((await fetch(`${operator.healthUrl}/healthz`)).status).toBe(200);
    await waitFor(
      async () => (await metric(operator.metricsUrl, 'leader_election_master_status')) === 1,
      'leading',
    );
    const lease = await must('Lease', OPERATOR_NS, 'edfs-operator');
    expect(lease.spec.holderIdentity).toBe(operator.identity);
  }, 30_000);

  it('turns examples/chat into the router objects, owned by the Supergraph, with Composed=True', async () => {
    const started = Date.now();
    await applyChat('demo');
    const sup = await waitFor(async () => {
      const s = await get('Supergraph', 'demo', 'chat');
      return condition(s, 'Composed')?.status === 'True' ? s : undefined;
    }, 'Composed=True');
    const composedMs = Date.now() - started;

    // The ConfigMap holds exactly what `edfs compose` makes of the same manifests.
    const configMap = await must('ConfigMap', 'demo', 'chat-router-config');
    const composed = composeSupergraph(loadComposeInputs([CHAT]));
    if (!composed.ok) throw new Error('examples/chat does not compose');
    expect(Object.keys(configMap.data).sort()).toEqual(['config.json', 'router.yaml']);
    expect(configMap.data['config.json']).toBe(composed.configJson);
    const routerYaml = parseYaml(configMap.data['router.yaml']);
    expect(routerYaml).toMatchObject({
      listen_addr: '0.0.0.0:3002',
      execution_config: { file: { path: '/etc/edfs/config.json', watch: true } },
      events: { providers: { nats: [{ id: 'default', url: 'nats://nats.demo.svc:4222' }] } },
      telemetry: { metrics: { prometheus: { enabled: true, listen_addr: '0.0.0.0:8088' } } },
    });

    const deployment = await must('Deployment', 'demo', 'chat-router');
    expect(deployment.spec.replicas).toBe(2);
    const pod = deployment.spec.template.spec;
    expect(pod.volumes).toContainEqual({
      name: 'config',
      configMap: expect.objectContaining({ name: 'chat-router-config' }),
    });
    const container = pod.containers[0];
    expect(container.image).toBe('ghcr.io/edfs/edfs-router:0.1.0');
    expect(container.args).toEqual(['-c', '/etc/edfs/router.yaml']);
    expect(container.volumeMounts).toEqual([{ name: 'config', mountPath: '/etc/edfs', readOnly: true }]); // no subPath
    expect(container.readinessProbe.httpGet).toMatchObject({ path: '/health/ready' });
    expect(
      container.ports.map((p: { name: string; containerPort: number }) => [p.name, p.containerPort]),
    ).toEqual([
      ['http', 3002],
      ['metrics', 8088],
    ]);
    const service = await must('Service', 'demo', 'chat-router');
    expect(service.spec.ports.map((p: { name: string; port: number }) => [p.name, p.port])).toEqual([
      ['http', 3002],
      ['metrics', 8088],
    ]);
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels);
    const pdb = await must('PodDisruptionBudget', 'demo', 'chat-router');
    const ingress = await must('Ingress', 'demo', 'chat-router');
    expect(ingress.spec.rules[0].host).toBe('chat.localtest.me');

    for (const child of [configMap, deployment, service, pdb, ingress]) {
      expect(child.metadata.ownerReferences).toEqual([
        {
          apiVersion: 'edfs.io/v1alpha1',
          kind: 'Supergraph',
          name: 'chat',
          uid: sup.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
      const managers = child.metadata.managedFields.map(
        (m: { manager: string; operation: string }) => `${m.manager}/${m.operation}`,
      );
      expect(managers).toEqual(['edfs-operator/Apply']);
      firstResult[`${child.kind}/${child.metadata.name}`] = child;
    }

    expect(sup.status).toMatchObject({
      observedGeneration: 1,
      configHash: sha256(configMap.data['config.json']),
      subgraphs: [
        { name: 'edfs', schemaHash: sha256(sdlOf('demo', 'edfs')) },
        { name: 'messages', schemaHash: sha256(sdlOf('demo', 'messages')) },
        { name: 'users', schemaHash: sha256(sdlOf('demo', 'users')) },
      ],
      replicas: 0,
      readyReplicas: 0,
      selector: 'app.kubernetes.io/instance=chat,app.kubernetes.io/name=edfs-router',
    });
    expect(sup.status.errors).toBeUndefined();
    // No pods run here (no controller-manager): the Deployment is never observed, so not Ready.
    expect(condition(sup, 'Ready')).toMatchObject({
      status: 'False',
      reason: 'RoutersNotReady',
      observedGeneration: 1,
    });
    expect(condition(sup, 'Progressing')).toMatchObject({ status: 'True', reason: 'RollingOut' });
    // The operator wrote status only: the spec it read is the spec the user applied.
    const supManagers = sup.metadata.managedFields.map(
      (m: { manager: string; subresource?: string }) => `${m.manager}/${m.subresource ?? ''}`,
    );
    expect(supManagers.sort()).toEqual(['e2e-user/', 'edfs-operator/status']);

    await waitFor(async () => {
      const subgraphs = await Promise.all(
        ['edfs', 'messages', 'users'].map((n) => get('Subgraph', 'demo', n)),
      );
      return subgraphs.every(
        (s) =>
          s !== undefined &&
          condition(s, 'Valid')?.status === 'True' &&
          s.status?.schemaHash === sha256(sdlOf('demo', s.metadata.name)),
      );
    }, 'Subgraphs Valid');
    await waitFor(
      async () => condition(await get('EventProvider', 'demo', 'default'), 'Ready')?.status === 'True',
      'EventProvider Ready',
    );
    expect((await eventRecorded('demo', 'Supergraph/chat Composed'))[0]).toMatchObject({
      type: 'Normal',
      source: { component: 'edfs-operator' },
      message: expect.stringContaining('composed 3 subgraph(s)'),
    });
    expect(await metric(operator.metricsUrl, 'controller_runtime_reconcile_errors_total')).toBe(0);
    expect(composedMs).toBeLessThan(10_000);
  }, 30_000);

  it('shows Ready, Composed, Replicas and Age as `kubectl get sup` does (Table)', async () => {
    const res = await api('GET', pathOf('Supergraph', 'demo'), undefined, {
      accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
    });
    expect(res.body.kind).toBe('Table');
    const columns = res.body.columnDefinitions.map(
      (c: { name: string; priority: number }) => `${c.name}${c.priority ? '*' : ''}`,
    );
    expect(columns).toEqual(['Name', 'Ready', 'Composed', 'Replicas', 'Ready Replicas*', 'Config*', 'Age']);
    const sup = await must('Supergraph', 'demo', 'chat');
    expect(res.body.rows).toHaveLength(1);
    expect(res.body.rows[0].cells.slice(0, 6)).toEqual([
      'chat',
      'False',
      'True',
      0,
      0,
      sup.status.configHash,
    ]);
    expect(res.body.rows[0].cells[6]).toMatch(/^\d+s$/);
  });

  it('an SDL edit reaches the ConfigMap and configHash within seconds; HotReload leaves the Deployment alone', async () => {
    const deployment = await must('Deployment', 'demo', 'chat-router');
    const sdl = sdlOf('demo', 'users').replace('email: String!', 'email: String!\n  nickname: String');
    const started = Date.now();
    await setSdl('demo', 'users', sdl);
    const configMap = await waitFor(async () => {
      const cm = await get('ConfigMap', 'demo', 'chat-router-config');
      return cm?.data['config.json'].includes('nickname') ? cm : undefined;
    }, 'the new field in the ConfigMap');
    await waitFor(
      async () =>
        (await get('Supergraph', 'demo', 'chat'))?.status?.configHash ===
        sha256(configMap.data['config.json']),
      'configHash of the new config',
    );
    const elapsed = Date.now() - started;
    expect(elapsed).toBeLessThan(5_000);
    expect((await must('Deployment', 'demo', 'chat-router')).metadata.resourceVersion).toBe(
      deployment.metadata.resourceVersion,
    );
    await waitFor(
      async () => (await get('Subgraph', 'demo', 'users'))?.status?.schemaHash === sha256(sdl),
      'Subgraph schemaHash',
    );
  }, 20_000);

  it('a broken SDL gives Composed=False with the error and leaves the ConfigMap byte-identical', async () => {
    const before = await must('ConfigMap', 'demo', 'chat-router-config');
    const deployment = await must('Deployment', 'demo', 'chat-router');
    const hash = (await must('Supergraph', 'demo', 'chat')).status.configHash;
    await setSdl('demo', 'users', 'type User @key(fields: "id") {\n  id: ID!\n  name:\n}');

    const sup = await waitFor(async () => {
      const s = await get('Supergraph', 'demo', 'chat');
      return condition(s, 'Composed')?.status === 'False' ? s : undefined;
    }, 'Composed=False');
    expect(condition(sup, 'Composed')).toMatchObject({ reason: 'CompositionFailed', observedGeneration: 1 });
    expect(sup.status.errors).toEqual([
      {
        subgraph: 'users',
        message: expect.stringMatching(/^schema syntax error at line 4, column 1: Expected Name/),
      },
    ]);
    expect(sup.status.configHash).toBe(hash);
    const sg = await waitFor(async () => {
      const s = await get('Subgraph', 'demo', 'users');
      return condition(s, 'Valid')?.status === 'False' ? s : undefined;
    }, 'Subgraph Valid=False');
    expect(condition(sg, 'Valid')).toMatchObject({
      reason: 'InvalidSchema',
      message: expect.stringContaining('line 4, column 1'),
    });

    await sleep(1_500); // every event of the change has been handled by now
    const after = await must('ConfigMap', 'demo', 'chat-router-config');
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    expect(after.data).toEqual(before.data);
    expect((await must('Deployment', 'demo', 'chat-router')).metadata.resourceVersion).toBe(
      deployment.metadata.resourceVersion,
    );
    const failures = await eventRecorded('demo', 'Supergraph/chat CompositionFailed');
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({
      type: 'Warning',
      message: expect.stringContaining('subgraph "users"'),
    });

    // Fixed again: composes to the config it had before the break.
    await setSdl(
      'demo',
      'users',
      sdlOf('demo', 'users').replace('email: String!', 'email: String!\n  nickname: String'),
    );
    await waitFor(async () => {
      const s = await get('Supergraph', 'demo', 'chat');
      return (
        s !== undefined &&
        condition(s, 'Composed')?.status === 'True' &&
        s.status?.configHash === hash &&
        !s.status.errors
      );
    }, 'Composed=True again');
  }, 30_000);

  it('a missing Secret key is reported on the EventProvider, and clears when the key appears', async () => {
    await apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'nats-auth', namespace: 'demo' },
      stringData: { tokn: 's3cr3t-value' },
    });
    const ep = chatManifests('demo').find((o) => o.kind === 'EventProvider')!;
    await apply({
      ...ep,
      spec: {
        ...ep.spec,
        nats: { ...ep.spec.nats, auth: { tokenSecretRef: { name: 'nats-auth', key: 'token' } } },
      },
    });

    const provider = await waitFor(async () => {
      const p = await get('EventProvider', 'demo', 'default');
      return condition(p, 'Ready')?.status === 'False' ? p : undefined;
    }, 'EventProvider Ready=False');
    expect(condition(provider, 'Ready')).toMatchObject({
      reason: 'SecretKeyNotFound',
      message: 'Secret "nats-auth" has no key "token" (spec.nats.auth.tokenSecretRef)',
      observedGeneration: 2,
    });
    expect((await eventRecorded('demo', 'EventProvider/default SecretKeyNotFound'))[0]?.type).toBe('Warning');

    // The credential reaches routers as an env var from the Secret, never in the ConfigMap.
    const configMap = await waitFor(async () => {
      const cm = await get('ConfigMap', 'demo', 'chat-router-config');
      return cm?.data['router.yaml'].includes('EDFS_PROVIDER_DEFAULT_TOKEN') ? cm : undefined;
    }, 'router.yaml with the token reference');
    expect(JSON.stringify(configMap.data)).not.toContain('s3cr3t');
    // The Deployment is applied after the ConfigMap in the same pass: wait for it too.
    const tokenEnv = {
      name: 'EDFS_PROVIDER_DEFAULT_TOKEN',
      valueFrom: { secretKeyRef: { name: 'nats-auth', key: 'token' } },
    };
    const container = await waitFor(async () => {
      const c = (await must('Deployment', 'demo', 'chat-router')).spec.template.spec.containers[0];
      return c.env?.some((e: { name: string }) => e.name === tokenEnv.name) ? c : undefined;
    }, 'Deployment with the token env var');
    expect(container.env).toContainEqual(tokenEnv);
    expect(JSON.stringify((await must('Supergraph', 'demo', 'chat')).status)).not.toContain('s3cr3t');

    // Adding the key is a Secret change, which re-queues the EventProvider that references it.
    await apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'nats-auth', namespace: 'demo' },
      stringData: { token: 's3cr3t-value' },
    });
    await waitFor(
      async () => condition(await get('EventProvider', 'demo', 'default'), 'Ready')?.status === 'True',
      'Ready=True',
      5_000,
    );
  }, 30_000);

  it('SIGKILL mid-way, a new operator process converges to the same objects, then writes nothing; SIGTERM releases the Lease', async () => {
    if (!existsSync(fileURLToPath(new URL('operator/dist/cli/main.js', ROOT)))) {
      throw new Error('operator/dist is missing: run `npx tsc -b` before the e2e tests');
    }
    await operator.stop(); // releases the Lease: the processes below need not wait for it
    const kubeconfig = await cp.kubeconfigFor(token);
    const start = (name: string) => {
      const child = spawn(
        process.execPath,
        [EDFS_BIN, 'operator', '--kubeconfig', kubeconfig, '--leader-elect'],
        {
          env: {
            ...process.env,
            POD_NAME: name,
            POD_NAMESPACE: OPERATOR_NS,
            EDFS_LEASE_DURATION: '4',
            EDFS_RENEW_DEADLINE: '3',
            EDFS_RETRY_PERIOD: '0.5',
            EDFS_RESYNC_PERIOD: '1',
            EDFS_METRICS_BIND_ADDRESS: '127.0.0.1:0',
            EDFS_HEALTH_BIND_ADDRESS: '127.0.0.1:0',
            EDFS_LOG_LEVEL: 'info',
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      children.push(child);
      let log = '';
      child.stdout!.on('data', (chunk: Buffer) => (log += chunk.toString()));
      child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      const metricsUrl = waitFor(async () => /"metrics":"([^"]+)"/.exec(log)?.[1], `${name} started`);
      return { child, exited, metricsUrl, log: () => log };
    };

    const first = start('operator-1');
    await waitFor(
      async () =>
        (await get('Lease', OPERATOR_NS, 'edfs-operator'))?.spec.holderIdentity?.startsWith('operator-1_'),
      'operator-1 leads',
    );
    await applyChat('restart');
    // Kill it as soon as it has written its first object, before it could finish.
    const deadline = Date.now() + 15_000;
    while (!(await get('ConfigMap', 'restart', 'chat-router-config'))) {
      if (Date.now() > deadline) throw new Error(`operator-1 wrote nothing:\n${first.log()}`);
    }
    first.child.kill('SIGKILL');
    expect(await first.exited).toBeNull();

    const second = start('operator-2');
    const converged = await waitFor(
      async () => {
        const s = await get('Supergraph', 'restart', 'chat');
        return condition(s, 'Composed')?.status === 'True' && s?.status?.configHash ? s : undefined;
      },
      'convergence after the restart',
      20_000,
    );
    expect((await must('Lease', OPERATOR_NS, 'edfs-operator')).spec.holderIdentity).toMatch(/^operator-2_/);

    // The objects are exactly the desired state of these inputs (the pure renderer's output), and
    // the same set as in namespace demo, where nothing was interrupted.
    const composed = composeSupergraph(loadComposeInputs([CHAT]));
    if (!composed.ok) throw new Error('examples/chat does not compose');
    const desired = renderDesired({
      supergraph: converged as never,
      configJson: composed.configJson,
      configHash: sha256(composed.configJson),
      providers: [await must('EventProvider', 'restart', 'default')] as never,
      capabilities: { serviceMonitor: false, keda: false },
      defaults: { routerImage: 'ghcr.io/edfs/edfs-router:0.1.0' },
    });
    expect(desired.objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
      Object.keys(firstResult).sort(),
    );
    for (const want of desired.objects) {
      const live = await must(want.kind, 'restart', want.metadata.name);
      expect(live).toEqual(containing(want));
      expect(live.metadata.ownerReferences[0].uid).toBe(converged.metadata.uid);
    }
    expect(converged.status.configHash).toBe(sha256(composed.configJson));

    // No churn: with a resync every second, nothing is written again.
    const snapshot = async () => {
      const names: [string, string][] = [
        ['Supergraph', 'chat'],
        ['Subgraph', 'edfs'],
        ['Subgraph', 'messages'],
        ['Subgraph', 'users'],
        ['EventProvider', 'default'],
        ['ConfigMap', 'chat-router-config'],
        ['Deployment', 'chat-router'],
        ['Service', 'chat-router'],
        ['PodDisruptionBudget', 'chat-router'],
        ['Ingress', 'chat-router'],
      ];
      return Object.fromEntries(
        await Promise.all(
          names.map(async ([k, n]) => [`${k}/${n}`, (await must(k, 'restart', n)).metadata.resourceVersion]),
        ),
      );
    };
    await sleep(1_500);
    const settled = await snapshot();
    const metricsUrl = await second.metricsUrl;
    const reconcilesBefore = await metric(metricsUrl, 'controller_runtime_reconcile_total', {
      controller: 'supergraph',
    });
    await sleep(3_500);
    expect(await snapshot()).toEqual(settled);
    // Resyncs did run meanwhile (one a second): they found nothing to do.
    expect(
      await metric(metricsUrl, 'controller_runtime_reconcile_total', { controller: 'supergraph' }),
    ).toBeGreaterThanOrEqual(reconcilesBefore + 2);
    expect(await metric(metricsUrl, 'controller_runtime_reconcile_errors_total')).toBe(0);

    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect((await must('Lease', OPERATOR_NS, 'edfs-operator')).spec.holderIdentity).toBe('');
    expect(second.log()).toContain('released Lease');
  }, 60_000);

  it('two replicas with leader election never reconcile at the same time', async () => {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    const logs: Record<string, ReconcileRecord[]> = { b: [], c: [] };
    const b = await launch({
      leaderElection: { identity: 'replica-b' },
      onReconcile: (r) => logs.b!.push(r),
    });
    const c = await launch({
      leaderElection: { identity: 'replica-c' },
      onReconcile: (r) => logs.c!.push(r),
    });
    const leaderOf = async () => {
      const [lb, lc] = await Promise.all(
        [b, c].map((o) => metric(o.metricsUrl, 'leader_election_master_status').catch(() => -1)), // -1: stopped
      );
      return lb === 1 && lc !== 1 ? 'b' : lc === 1 && lb !== 1 ? 'c' : undefined;
    };
    const first = await waitFor(leaderOf, 'one leader');
    const [leader, standby] = first === 'b' ? [b, c] : [c, b];
    const standbyName = first === 'b' ? 'c' : 'b';

    // Both are ready: the standby has warm caches and is campaigning.
    for (const o of [b, c]) expect((await fetch(`${o.healthUrl}/readyz`)).status).toBe(200);

    // Work arrives: only the leader reconciles.
    await setSdl(
      'demo',
      'messages',
      sdlOf('demo', 'messages').replace('roomID: ID!\n', 'roomID: ID!\n  edited: Boolean\n'),
    );
    await waitFor(
      async () =>
        (await get('ConfigMap', 'demo', 'chat-router-config'))?.data['config.json'].includes('edited'),
      'leader applied the edit',
    );
    expect(await metric(leader.metricsUrl, 'controller_runtime_reconcile_total')).toBeGreaterThan(0);
    expect(await metric(standby.metricsUrl, 'controller_runtime_reconcile_total')).toBe(0);
    expect(logs[standbyName]).toEqual([]);

    // Someone else takes the Lease (as a replica with a newer view would): the leader stops at once.
    let stolenAt = 0;
    await waitFor(async () => {
      const lease = await must('Lease', OPERATOR_NS, 'edfs-operator');
      const now = new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
      stolenAt = Date.now();
      const res = await api('PUT', pathOf('Lease', OPERATOR_NS, 'edfs-operator'), {
        ...lease,
        spec: { ...lease.spec, holderIdentity: 'intruder', renewTime: now, acquireTime: now },
      });
      return res.status === 200; // 409 when the leader renewed in between: read again
    }, 'taking the Lease');
    await waitFor(
      async () => (await metric(leader.metricsUrl, 'leader_election_master_status')) === 0,
      'the leader steps down',
      5_000,
    );
    const stepDownMs = Date.now() - stolenAt;
    // The intruder never renews: after the lease duration one replica takes over again.
    const second = await waitFor(leaderOf, 'a leader after the intruder', 15_000);
    const current = second === 'b' ? b : c;
    await setSdl('demo', 'messages', sdlOf('demo', 'messages'));
    await waitFor(
      async () =>
        !(await get('ConfigMap', 'demo', 'chat-router-config'))?.data['config.json'].includes('edited'),
      'new leader applied',
    );

    // A graceful stop hands over within about one retry period, not a lease duration.
    const handover = Date.now();
    await current.stop();
    await waitFor(leaderOf, 'handover', 5_000);
    const handoverMs = Date.now() - handover;
    await sleep(500);

    const all = [...logs.b!.map((r) => ({ ...r, who: 'b' })), ...logs.c!.map((r) => ({ ...r, who: 'c' }))];
    const overlaps = all.flatMap((x) =>
      all
        .filter((y) => x.who < y.who && x.startedAt < y.endedAt && y.startedAt < x.endedAt)
        .map((y) => [x, y]),
    );
    expect(overlaps).toEqual([]);
    expect(all.length).toBeGreaterThan(0);
    // From the leader noticing until the intruder's lease could expire, nobody reconciled.
    expect(
      all.filter(
        (r) => r.startedAt >= stolenAt + stepDownMs && r.startedAt < stolenAt + LEASE.leaseDurationMs,
      ),
    ).toEqual([]);
    // Noticed at its next renewal (every 500 ms), plus polling and a loaded machine's slack.
    expect(stepDownMs).toBeLessThan(2_500);
    expect(handoverMs).toBeLessThan(5_000);
  }, 60_000);

  it('in single-namespace mode, with the chart RBAC for that mode, it reconciles that namespace only', async () => {
    await Promise.all(operators.map((o) => o.stop())); // the cluster-wide replicas above
    for (const name of ['edfs-scoped', 'team-a', 'team-b']) {
      await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    }
    const { stdout } = await run(helm, [
      'template',
      'scoped',
      fileURLToPath(new URL('charts/edfs-operator', ROOT)),
      '--namespace',
      'edfs-scoped',
      '--set',
      'crds.install=false',
      '--set',
      'watchNamespace=team-a',
    ]);
    const kinds: string[] = [];
    for (const doc of parseAllDocuments(stdout)) {
      const obj = doc.toJS() as Obj | null;
      if (
        !obj ||
        !['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(obj.kind)
      )
        continue;
      if (RESOURCES[obj.kind]!.namespaced) obj.metadata.namespace ??= 'edfs-scoped';
      await apply(obj);
      kinds.push(`${obj.kind}${obj.metadata.namespace ? `@${obj.metadata.namespace}` : ''}`);
    }
    // A Role in the watched namespace; cluster-wide only the read of CRD definitions.
    expect(kinds.sort()).toEqual([
      'ClusterRole',
      'ClusterRoleBinding',
      'Role@edfs-scoped',
      'Role@team-a',
      'RoleBinding@edfs-scoped',
      'RoleBinding@team-a',
      'ServiceAccount@edfs-scoped',
    ]);
    const scopedToken = await cp.tokenFor('edfs-scoped', 'scoped-edfs-operator');
    await waitFor(
      async () =>
        (await api('GET', pathOf('Supergraph', 'team-a'), undefined, { bearer: scopedToken })).status === 200,
      'RBAC in team-a',
    );
    expect(
      (await api('GET', pathOf('Supergraph', 'team-b'), undefined, { bearer: scopedToken })).status,
    ).toBe(403);

    const scoped = await launch({
      kubeConfig: cp.kubeConfig(scopedToken),
      namespace: 'team-a',
      leaderElection: { namespace: 'edfs-scoped' },
    });
    await applyChat('team-a');
    await applyChat('team-b');
    await waitFor(
      async () => condition(await get('Supergraph', 'team-a', 'chat'), 'Composed')?.status === 'True',
      'team-a composed',
    );
    expect((await fetch(`${scoped.healthUrl}/readyz`)).status).toBe(200);
    expect(await metric(scoped.metricsUrl, 'controller_runtime_reconcile_errors_total')).toBe(0);
    await sleep(1_000);
    expect((await must('Supergraph', 'team-b', 'chat')).status).toBeUndefined();
    expect(await get('ConfigMap', 'team-b', 'chat-router-config')).toBeUndefined();
    expect((await must('Lease', 'edfs-scoped', 'edfs-operator')).spec.holderIdentity).toBe(scoped.identity);
  }, 30_000);
});

describe('credential rotation and autoscaler handover', () => {
  const reconciles: ReconcileRecord[] = [];
  let operator: RunningOperator;
  const b64 = (text: string) => Buffer.from(text).toString('base64');
  const SECRETS_HASH = 'edfs.io/secrets-hash';

  /** A Supergraph reconcile of `key` that started after `since` has finished. */
  const reconciledSince = (key: string, since: number) =>
    waitFor(
      async () =>
        reconciles.some((r) => r.controller === 'supergraph' && r.key === key && r.startedAt > since),
      `a reconcile of ${key}`,
    );

  /** Who owns spec.replicas of a Deployment, by server-side apply bookkeeping. */
  const replicasOwners = (deployment: Obj): string[] =>
    deployment.metadata.managedFields
      .filter((m: { fieldsV1?: any }) => m.fieldsV1?.['f:spec']?.['f:replicas'] !== undefined)
      .map((m: { manager: string; operation: string }) => `${m.manager}/${m.operation}`)
      .sort();

  beforeAll(async () => {
    // The describe block above stops every operator it started (its last test): start afresh.
    await Promise.all(operators.map((o) => o.stop()));
    operator = await launch({ onReconcile: (r) => reconciles.push(r) });
    await waitFor(
      async () => (await metric(operator.metricsUrl, 'leader_election_master_status')) === 1,
      'leading',
      20_000,
    );
  }, 30_000);

  it('a new value of the referenced Secret key rolls the pod template; another key of that Secret changes nothing', async () => {
    const ns = 'rotation';
    await applyChat(ns);
    const secret = (token: string, other: string) =>
      apply({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'nats-auth', namespace: ns },
        data: { token: b64(token), other: b64(other) },
      });
    await secret('r0tate-first', 'unrelated-1');
    const ep = chatManifests(ns).find((o) => o.kind === 'EventProvider')!;
    await apply({
      ...ep,
      spec: {
        ...ep.spec,
        nats: { ...ep.spec.nats, auth: { tokenSecretRef: { name: 'nats-auth', key: 'token' } } },
      },
    });
    const before = await waitFor(async () => {
      const d = await get('Deployment', ns, 'chat-router');
      return d?.spec.template.metadata.annotations?.[SECRETS_HASH] ? d : undefined;
    }, 'the Deployment with the secrets hash');
    const hash = before.spec.template.metadata.annotations[SECRETS_HASH];
    expect(hash).toMatch(/^[0-9a-f]{64}$/);

    // Another key of the same Secret: the Supergraph is reconciled, and writes nothing.
    let since = Date.now();
    await secret('r0tate-first', 'unrelated-2');
    await reconciledSince(`${ns}/chat`, since);
    await sleep(1_000); // any write would be in by now
    const unchanged = await must('Deployment', ns, 'chat-router');
    expect(unchanged.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    expect(unchanged.metadata.generation).toBe(before.metadata.generation);

    // The referenced key: the pod template changes (a rollout), within seconds of the Secret.
    since = Date.now();
    await secret('r0tate-second', 'unrelated-2');
    const after = await waitFor(async () => {
      const d = await get('Deployment', ns, 'chat-router');
      const value = d?.spec.template.metadata.annotations?.[SECRETS_HASH];
      return value && value !== hash ? d : undefined;
    }, 'a new secrets hash on the pod template');
    expect(Date.now() - since).toBeLessThan(5_000);
    expect(after.metadata.generation).toBe(before.metadata.generation + 1);
    const { [SECRETS_HASH]: _new, ...restAfter } = after.spec.template.metadata.annotations;
    const { [SECRETS_HASH]: _old, ...restBefore } = before.spec.template.metadata.annotations;
    expect(restAfter).toEqual(restBefore);
    expect(after.spec.template.spec).toEqual(before.spec.template.spec);

    // No value anywhere the operator writes.
    const written = JSON.stringify([
      after,
      await must('ConfigMap', ns, 'chat-router-config'),
      (await must('Supergraph', ns, 'chat')).status,
      (await must('EventProvider', ns, 'default')).status,
      (await api('GET', pathOf('Event', ns))).body.items,
    ]);
    for (const value of ['r0tate', b64('r0tate-first'), b64('r0tate-second')]) {
      expect(written).not.toContain(value);
    }
    expect(await metric(operator.metricsUrl, 'controller_runtime_reconcile_errors_total')).toBe(0);
  }, 30_000);

  it('switching from 3 fixed replicas to an HPA keeps spec.replicas at 3 (ownership handed over, never reset)', async () => {
    const ns = 'handover';
    await applyChat(ns);
    const sup = chatManifests(ns).find((o) => o.kind === 'Supergraph')!;
    await apply({ ...sup, spec: { ...sup.spec, router: { ...sup.spec.router, replicas: 3 } } });
    const fixed = await waitFor(async () => {
      const d = await get('Deployment', ns, 'chat-router');
      return d?.spec.replicas === 3 ? d : undefined;
    }, 'the Deployment at 3 replicas');
    expect(replicasOwners(fixed)).toEqual(['edfs-operator/Apply']);

    await apply({
      ...sup,
      spec: {
        ...sup.spec,
        router: { ...sup.spec.router, replicas: 3 },
        autoscaling: { minReplicas: 2, maxReplicas: 5, targetConnectionsPerPod: 1000 },
      },
    });
    const hpa = await waitFor(() => get('HorizontalPodAutoscaler', ns, 'chat-router'), 'the HPA');
    expect(hpa.spec).toMatchObject({
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'chat-router' },
      minReplicas: 2,
      maxReplicas: 5,
    });
    const handedOver = await waitFor(async () => {
      const d = await must('Deployment', ns, 'chat-router');
      return replicasOwners(d).includes('edfs-operator/Apply') ? undefined : d;
    }, 'the operator no longer applying spec.replicas');
    expect(handedOver.spec.replicas).toBe(3);
    expect(replicasOwners(handedOver)).toEqual(['edfs-operator-handover/Apply']);
    // Exactly one change of the Deployment (its applied-hash annotation, which bumps a
    // Deployment's generation): a reset to 1 and back would have taken more.
    expect(handedOver.metadata.generation).toBe(fixed.metadata.generation + 1);

    // Settled: further reconciles leave it as it is.
    const since = Date.now();
    const owner = (await must('Supergraph', ns, 'chat')).metadata;
    await apply({
      apiVersion: 'edfs.io/v1alpha1',
      kind: 'Supergraph',
      metadata: { name: owner.name, namespace: ns, labels: { touched: 'yes' } },
      spec: {
        ...sup.spec,
        router: { ...sup.spec.router, replicas: 3 },
        autoscaling: { minReplicas: 2, maxReplicas: 5, targetConnectionsPerPod: 1000 },
      },
    });
    await reconciledSince(`${ns}/chat`, since);
    await sleep(1_000);
    const settled = await must('Deployment', ns, 'chat-router');
    expect(settled.metadata.resourceVersion).toBe(handedOver.metadata.resourceVersion);
    expect(settled.spec.replicas).toBe(3);
    expect(await metric(operator.metricsUrl, 'controller_runtime_reconcile_errors_total')).toBe(0);
  }, 30_000);
});
