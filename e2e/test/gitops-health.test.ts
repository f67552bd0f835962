/**
 * GitOps health of the edfs.io kinds, judged by the real evaluators (Argo CD's Lua on gopher-lua
 * and Flux's kstatus, e2e/src/infra/gitops-health.ts) on real objects: the operator runs against a
 * real kube-apiserver (e2e/src/infra/kube.ts) and takes examples/chat through the states a GitOps
 * engine waits on: not reconciled yet, a spec not observed yet, routers rolling out, healthy, and
 * broken (an invalid schema, a composition that fails while the routers keep the last good config,
 * a Secret that does not exist). No controller-manager runs, so the test plays the Deployment
 * controller: it writes the router Deployment's status.
 *
 * The health checks come from what users install: argocd-cm as `kubectl kustomize` renders it with
 * the component in charts/edfs-operator/files/argocd. Each state's object is also an Argo-style
 * fixture (testdata/<state>.yaml beside each health.lua, listed in health_test.yaml): the test
 * fails when a fixture no longer gets the verdicts its live object gets.
 * EDFS_UPDATE_GITOPS_FIXTURES=1 rewrites the fixtures and health_test.yaml from the live objects.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parse as parseYaml, parseAllDocuments, stringify } from 'yaml';
import { startOperator, type RunningOperator } from '@edfs/operator';
import { kubeApi } from '../src/fixtures/kube.js';
import { waitFor } from '../src/fixtures/wait.js';
import {
  healthOf,
  kustomizeArgocdCm,
  runHealthTests,
  runKubectl,
  type HealthVerdicts,
} from '../src/infra/gitops-health.js';
import { helmBinary, startControlPlane, type ControlPlane } from '../src/infra/kube.js';

const BUILD_TIMEOUT_MS = 40 * 60_000;
const ROOT = new URL('../../', import.meta.url);
const ARGOCD = fileURLToPath(new URL('charts/edfs-operator/files/argocd/', ROOT));
const CUSTOMIZATIONS = join(ARGOCD, 'resource_customizations');
const CHAT = fileURLToPath(new URL('examples/chat/manifests/', ROOT));
const NS = 'demo';
const KINDS = ['EventProvider', 'Subgraph', 'Supergraph'] as const;
const UPDATE = process.env.EDFS_UPDATE_GITOPS_FIXTURES === '1';

type Kind = (typeof KINDS)[number];
type Obj = { apiVersion: string; kind: string; metadata: Record<string, any>; [k: string]: any };

const PATHS: Record<string, string> = {
  CustomResourceDefinition: '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
  Namespace: '/api/v1/namespaces',
  Secret: `/api/v1/namespaces/${NS}/secrets`,
  Deployment: `/apis/apps/v1/namespaces/${NS}/deployments`,
  EventProvider: `/apis/edfs.io/v1alpha1/namespaces/${NS}/eventproviders`,
  Subgraph: `/apis/edfs.io/v1alpha1/namespaces/${NS}/subgraphs`,
  Supergraph: `/apis/edfs.io/v1alpha1/namespaces/${NS}/supergraphs`,
};

let cp: ControlPlane;
let argocdCm: string;
let scratch: string;
let operator: RunningOperator | undefined;

// ---------------------------------------------------------------------------------------------
// The API, through a client of our own (not the operator's).

async function apply(obj: Obj): Promise<void> {
  const res = await kubeApi(
    cp,
    'PATCH',
    `${PATHS[obj.kind]}/${obj.metadata.name}?fieldManager=e2e-user&force=true`,
    obj,
    { contentType: 'application/apply-patch+yaml' },
  );
  if (res.status >= 300)
    throw new Error(`apply ${obj.kind} ${obj.metadata.name}: HTTP ${res.status} ${res.body?.message}`);
}

async function get(kind: string, name: string): Promise<Obj> {
  const res = await kubeApi(cp, 'GET', `${PATHS[kind]}/${name}`);
  if (res.status !== 200) throw new Error(`get ${kind} ${name}: HTTP ${res.status} ${res.body?.message}`);
  return res.body;
}

const condition = (obj: Obj, type: string) =>
  obj.status?.conditions?.find((c: { type: string }) => c.type === type) as Record<string, any> | undefined;

/** Waits until `kind/name` satisfies `check` (reading it from the API each time). */
const until = (kind: Kind, name: string, what: string, check: (obj: Obj) => boolean) =>
  waitFor(async () => {
    const obj = await get(kind, name);
    return check(obj) ? obj : undefined;
  }, `${kind} ${name}: ${what}`);

const observed = (obj: Obj) => obj.status?.observedGeneration === obj.metadata.generation;

/** The edfs.io objects of examples/chat (its NATS and subgraph servers run only in the cluster suites). */
function chat(): Obj[] {
  return readdirSync(CHAT)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((f) => parseAllDocuments(readFileSync(join(CHAT, f), 'utf8')).map((d) => d.toJS() as Obj))
    .filter((o) => String(o.apiVersion).startsWith('edfs.io/'));
}
const chatObject = (kind: Kind, name: string) =>
  structuredClone(chat().find((o) => o.kind === kind && o.metadata.name === name)!);

/**
 * Plays the Deployment controller for the routers: it has observed the Deployment's spec and runs
 * `status` (default: every wanted pod updated and ready).
 */
async function routersRun(status: Record<string, number> = {}): Promise<void> {
  const d = await get('Deployment', 'chat-router');
  const wanted = d.spec.replicas as number;
  const res = await kubeApi(
    cp,
    'PATCH',
    `${PATHS.Deployment}/chat-router/status`,
    {
      status: {
        observedGeneration: d.metadata.generation,
        replicas: wanted,
        updatedReplicas: wanted,
        readyReplicas: wanted,
        availableReplicas: wanted,
        ...status,
      },
    },
    { contentType: 'application/merge-patch+json' },
  );
  if (res.status !== 200) throw new Error(`Deployment status: HTTP ${res.status} ${res.body?.message}`);
}

async function startTheOperator(): Promise<void> {
  operator = await startOperator({
    kubeConfig: cp.kubeConfig(),
    metricsBindAddress: '0',
    healthBindAddress: '0',
    env: { ...process.env, EDFS_LOG_LEVEL: 'error' },
  });
}

// ---------------------------------------------------------------------------------------------
// Verdicts and fixtures

interface Want {
  argocd: string;
  kstatus: string;
  /** Argo CD's message (kstatus' is checked where it says more than its status). */
  message: string | RegExp;
}

/** The fixture states judged so far, per kind, in order (health_test.yaml lists them so). */
const judged: Record<Kind, { state: string; argocd: HealthVerdicts['argocd'] }[]> = {
  EventProvider: [],
  Subgraph: [],
  Supergraph: [],
};

/**
 * Both verdicts on `kind/name` as the API returns it now, checked against `want`; the object is
 * the fixture `testdata/<state>.yaml`, which must get the same verdicts offline.
 */
async function judge(kind: Kind, name: string, state: string, want: Want): Promise<HealthVerdicts> {
  const obj = await get(kind, name);
  const [live] = await healthOf(argocdCm, [obj]);
  expect({ argocd: live!.argocd.status, kstatus: live!.kstatus.status, error: live!.argocd.error }).toEqual({
    argocd: want.argocd,
    kstatus: want.kstatus,
    error: undefined,
  });
  expect(live!.argocd.message).toMatch(want.message);

  const file = join(CUSTOMIZATIONS, 'edfs.io', kind, 'testdata', `${state}.yaml`);
  if (UPDATE) writeFileSync(file, fixtureYaml(obj, state));
  expect(existsSync(file)).toBe(true);
  const [offline] = await healthOf(argocdCm, [parseYaml(readFileSync(file, 'utf8'))]);
  expect(offline).toEqual(live);
  judged[kind].push({ state, argocd: live!.argocd });
  return live!;
}

/** A captured object without the fields that only identify this run (uid, versions, managers). */
function fixtureYaml(obj: Obj, state: string): string {
  const {
    managedFields: _m,
    uid: _u,
    resourceVersion: _r,
    creationTimestamp: _c,
    ...metadata
  } = obj.metadata;
  return (
    `# ${obj.kind} "${state}", captured from the API by e2e/test/gitops-health.test.ts\n` +
    `# (EDFS_UPDATE_GITOPS_FIXTURES=1 recaptures it).\n` +
    stringify({ ...obj, metadata }, { lineWidth: 0, singleQuote: true })
  );
}

function healthTestYaml(kind: Kind): string {
  const tests = judged[kind].map(({ state, argocd }) => ({
    healthStatus: { status: argocd.status, message: argocd.message },
    inputPath: `testdata/${state}.yaml`,
  }));
  return (
    `# Argo CD's test layout for health.lua (as in argo-cd's resource_customizations): each input is\n` +
    `# a real ${kind} captured by e2e/test/gitops-health.test.ts, which keeps this list in step.\n` +
    stringify({ tests }, { lineWidth: 0, singleQuote: true })
  );
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  const stub = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'argocd-cm', labels: { 'app.kubernetes.io/part-of': 'argocd' } },
    data: { 'timeout.reconciliation': '180s' },
  };
  const [plane, rendered, dir] = await Promise.all([
    startControlPlane(),
    kustomizeArgocdCm(stub, ARGOCD),
    mkdtemp(join(tmpdir(), 'edfs-gitops-')),
  ]);
  cp = plane;
  scratch = dir;
  argocdCm = join(scratch, 'argocd-cm.yaml');
  await writeFile(argocdCm, rendered);

  for (const file of readdirSync(new URL('crds/', ROOT)).filter((f) => f.endsWith('.yaml'))) {
    const crd = parseYaml(readFileSync(new URL(`crds/${file}`, ROOT), 'utf8')) as Obj;
    await apply(crd);
    await waitFor(
      async () =>
        condition(await get('CustomResourceDefinition', crd.metadata.name), 'Established')?.status === 'True',
      `${crd.metadata.name} established`,
    );
  }
  await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  await operator?.stop();
  await cp?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
}, 60_000);

describe('what users install', () => {
  const lua = (kind: Kind) => readFileSync(join(CUSTOMIZATIONS, 'edfs.io', kind, 'health.lua'), 'utf8');
  const key = (kind: Kind) => `resource.customizations.health.edfs.io_${kind}`;

  it('the Kustomize component merges the three health.lua files into argocd-cm and keeps its other keys', () => {
    const cm = parseYaml(readFileSync(argocdCm, 'utf8')) as Obj;
    expect(cm.metadata).toMatchObject({ name: 'argocd-cm', namespace: 'argocd' });
    expect(cm.data).toEqual({
      'timeout.reconciliation': '180s',
      ...Object.fromEntries(KINDS.map((k) => [key(k), lua(k)])),
    });
  });

  it('argocd-cm.yaml holds the same scripts, and `kubectl patch --patch-file` merges it into a live argocd-cm', async () => {
    const patch = parseYaml(readFileSync(join(ARGOCD, 'argocd-cm.yaml'), 'utf8')) as Obj;
    expect(patch.data).toEqual(Object.fromEntries(KINDS.map((k) => [key(k), lua(k)])));

    await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'argocd' } });
    const created = await kubeApi(cp, 'POST', '/api/v1/namespaces/argocd/configmaps', {
      metadata: { name: 'argocd-cm' },
      data: { 'timeout.reconciliation': '180s' },
    });
    expect(created.status).toBe(201);
    await runKubectl([
      '--kubeconfig',
      cp.kubeconfigPath,
      'patch',
      'configmap',
      'argocd-cm',
      '-n',
      'argocd',
      '--patch-file',
      join(ARGOCD, 'argocd-cm.yaml'),
    ]);
    const live = (await kubeApi(cp, 'GET', '/api/v1/namespaces/argocd/configmaps/argocd-cm')).body as Obj;
    expect(live.data).toEqual({ 'timeout.reconciliation': '180s', ...patch.data });
  });

  it("the Helm way: --set-file puts each health.lua under the argo-cd chart's configs.cm", async () => {
    // A stand-in for the argo-cd chart's argocd-cm template, which renders configs.cm as data.
    const chart = join(scratch, 'argo-cd');
    await mkdir(join(chart, 'templates'), { recursive: true });
    await writeFile(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: argo-cd\nversion: 0.0.0\n');
    await writeFile(
      join(chart, 'templates', 'argocd-cm.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\ndata:\n{{- toYaml .Values.configs.cm | nindent 2 }}\n',
    );
    // Exactly the flags docs/gitops.md gives.
    const flags = KINDS.flatMap((k) => [
      '--set-file',
      `configs.cm.resource\\.customizations\\.health\\.edfs\\.io_${k}=${join(CUSTOMIZATIONS, 'edfs.io', k, 'health.lua')}`,
    ]);
    const { stdout } = await promisify(execFile)(await helmBinary(), ['template', 'argocd', chart, ...flags]);
    const cm = parseAllDocuments(stdout)
      .map((d) => d.toJS() as Obj | null)
      .find((d) => d?.kind === 'ConfigMap')!;
    expect(cm.data).toEqual(Object.fromEntries(KINDS.map((k) => [key(k), lua(k)])));
  });
});

describe('examples/chat through the states a GitOps engine waits on', () => {
  it('before the operator wrote any status: Argo CD Progressing; kstatus cannot tell and says Current', async () => {
    for (const obj of chat()) await apply(obj);
    const want = {
      argocd: 'Progressing',
      kstatus: 'Current',
      message: 'Waiting for the operator to report status',
    };
    await judge('EventProvider', 'default', 'no-status', want);
    await judge('Subgraph', 'users', 'no-status', want);
    await judge('Supergraph', 'chat', 'no-status', want);
  });

  it('reconciled, routers not started yet: the inputs are Healthy / Current, the Supergraph Progressing / InProgress', async () => {
    await startTheOperator();
    await until('EventProvider', 'default', 'Ready', (o) => condition(o, 'Ready')?.status === 'True');
    await until('Subgraph', 'users', 'Valid', (o) => condition(o, 'Valid')?.status === 'True');
    await until('Supergraph', 'chat', 'Composed', (o) => condition(o, 'Composed')?.status === 'True');

    await judge('EventProvider', 'default', 'healthy', {
      argocd: 'Healthy',
      kstatus: 'Current',
      message: 'no credentials referenced',
    });
    await judge('Subgraph', 'users', 'healthy', {
      argocd: 'Healthy',
      kstatus: 'Current',
      message: 'the schema is a valid subgraph',
    });
    const starting = await judge('Supergraph', 'chat', 'routers-starting', {
      argocd: 'Progressing',
      kstatus: 'InProgress',
      message: 'waiting for the Deployment controller to observe the new spec',
    });
    expect(starting.kstatus.message).toBe('waiting for the Deployment controller to observe the new spec');
  });

  it('every router pod updated and ready: the Supergraph is Healthy / Current', async () => {
    await routersRun();
    await until('Supergraph', 'chat', 'Ready', (o) => condition(o, 'Ready')?.status === 'True');
    await judge('Supergraph', 'chat', 'healthy', {
      argocd: 'Healthy',
      kstatus: 'Current',
      message: '2/2 router pods ready',
    });
  });

  it('a rollout with enough ready pods for Ready=True is still Progressing / InProgress until it completes', async () => {
    await routersRun({ replicas: 3, updatedReplicas: 1, readyReplicas: 2 });
    const rolling = await until(
      'Supergraph',
      'chat',
      'rolling out',
      (o) => condition(o, 'Progressing')?.status === 'True',
    );
    expect(condition(rolling, 'Ready')?.status).toBe('True');
    const verdicts = await judge('Supergraph', 'chat', 'rolling-out', {
      argocd: 'Progressing',
      kstatus: 'InProgress',
      message: '1/2 router pods updated',
    });
    expect(verdicts.kstatus.message).toBe('1/2 router pods updated');

    await routersRun();
    await until(
      'Supergraph',
      'chat',
      'rollout complete',
      (o) => condition(o, 'Progressing')?.status === 'False',
    );
    const [done] = await healthOf(argocdCm, [await get('Supergraph', 'chat')]);
    expect([done!.argocd.status, done!.kstatus.status]).toEqual(['Healthy', 'Current']);
  });

  it('a spec the operator has not observed yet is Progressing / InProgress for every kind', async () => {
    await operator!.stop();
    operator = undefined;
    const ep = chatObject('EventProvider', 'default');
    ep.spec.nats.url = 'nats://nats.demo.svc:4223';
    const users = chatObject('Subgraph', 'users');
    users.spec.schema.sdl = `${users.spec.schema.sdl}\n# reviewed\n`;
    const sup = chatObject('Supergraph', 'chat');
    sup.spec.router.drainSeconds = 30;
    for (const obj of [ep, users, sup]) await apply(obj);

    for (const [kind, name] of [
      ['EventProvider', 'default'],
      ['Subgraph', 'users'],
      ['Supergraph', 'chat'],
    ] as const) {
      const verdicts = await judge(kind, name, 'generation-not-observed', {
        argocd: 'Progressing',
        kstatus: 'InProgress',
        message: 'Waiting for the operator to observe generation 2',
      });
      expect(verdicts.kstatus.message).toBe(`${kind} generation is 2, but latest observed generation is 1`);
    }

    await startTheOperator();
    for (const [kind, name] of [
      ['EventProvider', 'default'],
      ['Subgraph', 'users'],
      ['Supergraph', 'chat'],
    ] as const)
      await until(kind, name, 'generation 2 observed', observed);
    await routersRun();
    const sups = await until(
      'Supergraph',
      'chat',
      'rollout complete',
      (o) => condition(o, 'Ready')?.status === 'True' && condition(o, 'Progressing')?.status === 'False',
    );
    const verdicts = await healthOf(argocdCm, [
      await get('EventProvider', 'default'),
      await get('Subgraph', 'users'),
      sups,
    ]);
    expect(verdicts.map((v) => [v.argocd.status, v.kstatus.status])).toEqual([
      ['Healthy', 'Current'],
      ['Healthy', 'Current'],
      ['Healthy', 'Current'],
    ]);
  });

  it('an invalid schema: the Subgraph and the Supergraph that keeps the last good config are Degraded / Failed', async () => {
    const good = chatObject('Subgraph', 'users');
    const broken = structuredClone(good);
    broken.spec.schema.sdl = 'type User @key(fields: "id") { id: ID! name: }';
    await apply(broken);
    await until('Subgraph', 'users', 'Valid=False', (o) => condition(o, 'Valid')?.status === 'False');
    const failed = await until(
      'Supergraph',
      'chat',
      'Composed=False',
      (o) => condition(o, 'Composed')?.status === 'False',
    );
    // The routers keep serving the last good config: Ready stays True, which alone would say done.
    expect(condition(failed, 'Ready')?.status).toBe('True');

    const subgraph = await judge('Subgraph', 'users', 'invalid-schema', {
      argocd: 'Degraded',
      kstatus: 'Failed',
      message: /^InvalidSchema: syntax error at line 1, column \d+: Expected Name, found "}"/,
    });
    expect(subgraph.kstatus.message).toBe(condition(await get('Subgraph', 'users'), 'Valid')!.message);
    const supergraph = await judge('Supergraph', 'chat', 'composition-failed', {
      argocd: 'Degraded',
      kstatus: 'Failed',
      message: /^CompositionFailed: subgraph "users": .*; the last good config keeps running$/,
    });
    expect(supergraph.kstatus.message).toBe(condition(failed, 'Composed')!.message);

    // A good schema again: both are healthy again (Stalled is gone).
    await apply(good);
    const again = await until(
      'Supergraph',
      'chat',
      'Composed=True',
      (o) => condition(o, 'Composed')?.status === 'True',
    );
    const verdicts = await healthOf(argocdCm, [await get('Subgraph', 'users'), again]);
    expect(verdicts.map((v) => [v.argocd.status, v.kstatus.status])).toEqual([
      ['Healthy', 'Current'],
      ['Healthy', 'Current'],
    ]);
  });

  it('an EventProvider whose Secret does not exist: Degraded for Argo CD, InProgress for kstatus until it does', async () => {
    await apply({
      apiVersion: 'edfs.io/v1alpha1',
      kind: 'EventProvider',
      metadata: { name: 'secured', namespace: NS },
      spec: {
        nats: {
          url: 'nats://nats.demo.svc:4222',
          auth: { tokenSecretRef: { name: 'nats-token', key: 'token' } },
        },
      },
    });
    await until('EventProvider', 'secured', 'Ready=False', (o) => condition(o, 'Ready')?.status === 'False');
    const missing = 'Secret "nats-token" (spec.nats.auth.tokenSecretRef) not found in namespace "demo"';
    const verdicts = await judge('EventProvider', 'secured', 'secret-not-found', {
      argocd: 'Degraded',
      kstatus: 'InProgress',
      message: `SecretNotFound: ${missing}`,
    });
    expect(verdicts.kstatus.message).toBe(missing);

    await apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'nats-token', namespace: NS },
      stringData: { token: 's3cret' },
    });
    const ready = await until(
      'EventProvider',
      'secured',
      'Ready',
      (o) => condition(o, 'Ready')?.status === 'True',
    );
    const [after] = await healthOf(argocdCm, [ready]);
    expect([after!.argocd.status, after!.kstatus.status]).toEqual(['Healthy', 'Current']);
  });

  it('the fixtures are exactly the states judged here, and pass Argo CD-style health tests offline', async () => {
    for (const kind of KINDS) {
      const dir = join(CUSTOMIZATIONS, 'edfs.io', kind);
      if (UPDATE) writeFileSync(join(dir, 'health_test.yaml'), healthTestYaml(kind));
      expect(parseYaml(readFileSync(join(dir, 'health_test.yaml'), 'utf8'))).toEqual(
        parseYaml(healthTestYaml(kind)),
      );
      expect(readdirSync(join(dir, 'testdata')).sort()).toEqual(
        judged[kind].map((j) => `${j.state}.yaml`).sort(),
      );
    }
    const report = await runHealthTests(CUSTOMIZATIONS);
    expect(report.split('\n').filter((l) => l.startsWith('ok '))).toHaveLength(
      KINDS.reduce((n, k) => n + judged[k].length, 0),
    );
  });
});
