/**
 * The chart, its CRDs and the rendered router objects on a real kube-apiserver (+ etcd, from
 * e2e/infra/kube.sh), installed by the real helm (e2e/infra/helm.sh):
 * - the CRDs the chart installs are accepted as structural schemas, apply defaults, reject invalid
 *   objects through their CEL rules and bounds with messages that name the fix, accept
 *   examples/chat as written (strict field validation: no unknown fields), serve the scale
 *   subresource, and `kubectl get sup` shows the printer columns;
 * - the operator's ServiceAccount, with exactly the chart's RBAC, can server-side apply every object
 *   `renderDesired` produces (owner references with blockOwnerDeletion, under the
 *   OwnerReferencesPermissionEnforcement admission plugin), a second apply changes nothing, and it
 *   cannot do what it was not granted.
 * The first run on a machine builds the binaries (minutes); later runs start in seconds.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { request } from 'node:https';
import { fileURLToPath } from 'node:url';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { eventually } from '../src/fixtures/wait.js';
import { helmBinary, startControlPlane, type ControlPlane } from '../src/infra/kube.js';
import type { KubeObject, Supergraph } from '../../operator/src/api/v1alpha1.js';
import { CHILD_KINDS, renderDesired } from '../../operator/src/desired/index.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BUILD_TIMEOUT_MS = 40 * 60_000;
const PLURALS: Record<string, string> = {
  EventProvider: 'eventproviders',
  Subgraph: 'subgraphs',
  Supergraph: 'supergraphs',
};

const RELEASE_NS = 'edfs-system';
const OPERATOR_SA = 'edfs-edfs-operator';

let cp: ControlPlane;
/** Bearer token of the operator's ServiceAccount (the chart's RBAC, nothing more). */
let operatorToken: string;

interface Response {
  status: number;
  body: any;
}

function call(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
  token = cp.token,
): Promise<Response> {
  const url = new URL(path, cp.server);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        rejectUnauthorized: false,
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/json',
          ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON: keep the text
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function crPath(namespace: string, kind: string, name?: string): string {
  return `/apis/edfs.io/v1alpha1/namespaces/${namespace}/${PLURALS[kind]}${name ? `/${name}` : ''}`;
}

/** Creates an object with strict field validation (unknown fields are errors, as kubectl does). */
async function create(object: any): Promise<Response> {
  const ns = object.metadata.namespace;
  return call('POST', `${crPath(ns, object.kind)}?fieldValidation=Strict`, object);
}

async function ensureNamespace(name: string): Promise<void> {
  const res = await call('POST', '/api/v1/namespaces', {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name },
  });
  if (res.status !== 201 && res.status !== 409)
    throw new Error(`namespace ${name}: ${JSON.stringify(res.body)}`);
}

let namespaces = 0;
async function freshNamespace(): Promise<string> {
  const name = `crd-test-${++namespaces}`;
  await ensureNamespace(name);
  return name;
}

function readYaml(path: string): any[] {
  return parseAllDocuments(readFileSync(path, 'utf8')).map((d) => d.toJS());
}

beforeAll(async () => {
  const [helm, controlPlane] = await Promise.all([
    helmBinary(),
    startControlPlane({
      apiServerFlags: ['--enable-admission-plugins=OwnerReferencesPermissionEnforcement'],
    }),
  ]);
  cp = controlPlane;
  await promisify(execFile)(helm, [
    'install',
    'edfs',
    `${ROOT}charts/edfs-operator`,
    '--namespace',
    RELEASE_NS,
    '--create-namespace',
    '--kubeconfig',
    cp.kubeconfigPath,
  ]);
  for (const plural of Object.values(PLURALS)) {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const res = await call(
        'GET',
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${plural}.edfs.io`,
      );
      const established = (res.body.status?.conditions ?? []).some(
        (c: any) => c.type === 'Established' && c.status === 'True',
      );
      if (established) break;
      if (Date.now() > deadline)
        throw new Error(`${plural}.edfs.io not established: ${JSON.stringify(res.body)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  // Discovery of a new group can lag behind Established.
  const deadline = Date.now() + 30_000;
  while ((await call('GET', '/apis/edfs.io/v1alpha1')).status !== 200) {
    if (Date.now() > deadline) throw new Error('edfs.io/v1alpha1 never served');
    await new Promise((r) => setTimeout(r, 100));
  }
  operatorToken = await cp.tokenFor(RELEASE_NS, OPERATOR_SA);
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  await cp?.stop();
});

describe('the CRDs the chart installs', () => {
  it('are the ones in crds/, accepted as structural schemas with names, short names and the edfs category', async () => {
    for (const file of readdirSync(`${ROOT}crds`)) {
      const source = readYaml(`${ROOT}crds/${file}`)[0];
      const served = await call(
        'GET',
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${source.metadata.name}`,
      );
      expect(served.body.metadata.annotations['meta.helm.sh/release-name']).toBe('edfs');
      expect(served.body.metadata.annotations['helm.sh/resource-policy']).toBe('keep');
      expect(served.body.spec.versions[0].schema).toEqual(source.spec.versions[0].schema);
    }
    for (const [kind, plural] of Object.entries(PLURALS)) {
      const res = await call(
        'GET',
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${plural}.edfs.io`,
      );
      const conditions = Object.fromEntries(
        (res.body.status.conditions as any[]).map((c) => [c.type, c.status]),
      );
      expect(conditions).toMatchObject({ Established: 'True', NamesAccepted: 'True' });
      expect(conditions.NonStructuralSchema).toBeUndefined();
      expect(res.body.status.acceptedNames.kind).toBe(kind);
      expect(res.body.status.acceptedNames.categories).toEqual(['edfs']);
    }
    const discovery = await call('GET', '/apis/edfs.io/v1alpha1');
    const resources = Object.fromEntries(
      (discovery.body.resources as any[]).map((r) => [
        r.name,
        { shortNames: r.shortNames, namespaced: r.namespaced },
      ]),
    );
    expect(resources).toMatchObject({
      eventproviders: { shortNames: ['ep'], namespaced: true },
      subgraphs: { shortNames: ['sg'], namespaced: true },
      supergraphs: { shortNames: ['sup'], namespaced: true },
      'supergraphs/status': {},
      'supergraphs/scale': {},
      'subgraphs/status': {},
      'eventproviders/status': {},
    });
  });

  it('accept the edfs.io objects of examples/chat/manifests as written, with strict field validation', async () => {
    await ensureNamespace('demo');
    const dir = `${ROOT}examples/chat/manifests`;
    for (const file of readdirSync(dir).sort()) {
      for (const object of readYaml(`${dir}/${file}`).filter((o) =>
        String(o.apiVersion).startsWith('edfs.io/'),
      )) {
        const res = await create(object);
        expect({
          file,
          name: object.metadata.name,
          status: res.status,
          body: res.status === 201 ? '' : res.body,
        }).toEqual({
          file,
          name: object.metadata.name,
          status: 201,
          body: '',
        });
      }
    }
  });

  it('default what a spec leaves out (router replicas 1, HotReload, drain 20 s; HPA; Secret key names)', async () => {
    const ns = await freshNamespace();
    const sup = await create({
      apiVersion: 'edfs.io/v1alpha1',
      kind: 'Supergraph',
      metadata: { name: 'bare', namespace: ns },
    });
    expect(sup.status).toBe(201);
    expect(sup.body.spec).toEqual({ router: { replicas: 1, rollout: 'HotReload', drainSeconds: 20 } });

    const scaled = await create({
      apiVersion: 'edfs.io/v1alpha1',
      kind: 'Supergraph',
      metadata: { name: 'scaled', namespace: ns },
      spec: { autoscaling: { maxReplicas: 5, targetConnectionsPerPod: 1000 } },
    });
    expect(scaled.body.spec.autoscaling).toEqual({
      minReplicas: 1,
      maxReplicas: 5,
      targetConnectionsPerPod: 1000,
      mode: 'HPA',
    });

    const kafka = await create({
      apiVersion: 'edfs.io/v1alpha1',
      kind: 'EventProvider',
      metadata: { name: 'kafka', namespace: ns },
      spec: { kafka: { brokers: ['kafka:9092'], sasl: { secretRef: { name: 'kafka-user' } } } },
    });
    expect(kafka.status).toBe(201);
    expect(kafka.body.spec.kafka.sasl).toEqual({
      mechanism: 'PLAIN',
      secretRef: { name: 'kafka-user', usernameKey: 'username', passwordKey: 'password' },
    });
  });

  const nats = { url: 'nats://nats:4222' };
  const invalid: [string, string, any, string][] = [
    [
      'a Subgraph with both sdl and configMapRef',
      'Subgraph',
      { schema: { sdl: 'type Query { a: Int }', configMapRef: { name: 'c', key: 'k' } } },
      'set exactly one of schema.sdl or schema.configMapRef',
    ],
    [
      'a Subgraph with neither sdl nor configMapRef',
      'Subgraph',
      { schema: {} },
      'set exactly one of schema.sdl or schema.configMapRef',
    ],
    [
      'a Subgraph whose configMapRef has no key',
      'Subgraph',
      { schema: { configMapRef: { name: 'c' } } },
      'spec.schema.configMapRef.key: Required value',
    ],
    [
      'a Subgraph with a relative routing URL',
      'Subgraph',
      { routingUrl: 'users:4001/graphql', schema: { sdl: 'type Query { a: Int }' } },
      'must be an absolute http or https URL',
    ],
    [
      'an EventProvider with both nats and kafka',
      'EventProvider',
      { nats, kafka: { brokers: ['k:9092'] } },
      'set exactly one of spec.nats or spec.kafka',
    ],
    [
      'an EventProvider with neither nats nor kafka',
      'EventProvider',
      {},
      'set exactly one of spec.nats or spec.kafka',
    ],
    [
      'an EventProvider whose token reference has no key',
      'EventProvider',
      { nats: { ...nats, auth: { tokenSecretRef: { name: 's' } } } },
      'spec.nats.auth.tokenSecretRef.key: Required value',
    ],
    [
      'an EventProvider whose token reference has no name',
      'EventProvider',
      { nats: { ...nats, auth: { tokenSecretRef: { key: 'k' } } } },
      'spec.nats.auth.tokenSecretRef.name: Required value',
    ],
    [
      'an EventProvider with two NATS auth methods',
      'EventProvider',
      {
        nats: {
          ...nats,
          auth: { tokenSecretRef: { name: 's', key: 'k' }, credsSecretRef: { name: 's', key: 'c' } },
        },
      },
      'set exactly one of tokenSecretRef, userPasswordSecretRef or credsSecretRef',
    ],
    [
      'an EventProvider whose CA reference has no key',
      'EventProvider',
      { nats: { ...nats, tls: { caSecretRef: { name: 'ca' } } } },
      'spec.nats.tls.caSecretRef.key: Required value',
    ],
    [
      'an EventProvider whose Kafka SASL secret has no name',
      'EventProvider',
      { kafka: { brokers: ['k:9092'], sasl: { secretRef: {} } } },
      'spec.kafka.sasl.secretRef.name: Required value',
    ],
    [
      'a Supergraph with minReplicas above maxReplicas',
      'Supergraph',
      { autoscaling: { minReplicas: 4, maxReplicas: 2, targetConnectionsPerPod: 100 } },
      'minReplicas must not be greater than maxReplicas',
    ],
    [
      'a Supergraph with an unknown rollout',
      'Supergraph',
      { router: { rollout: 'Recreate' } },
      'supported values: "HotReload", "Restart"',
    ],
    [
      'a Supergraph with both budget fields',
      'Supergraph',
      { disruptionBudget: { minAvailable: 1, maxUnavailable: 1 } },
      'set at most one of minAvailable or maxUnavailable',
    ],
    [
      'a Supergraph with keda settings in HPA mode',
      'Supergraph',
      {
        autoscaling: {
          maxReplicas: 2,
          targetConnectionsPerPod: 100,
          keda: { serverAddress: 'http://p:9090' },
        },
      },
      'autoscaling.keda applies only with mode KEDA',
    ],
    [
      'a Supergraph selector In without values',
      'Supergraph',
      { subgraphSelector: { matchExpressions: [{ key: 'graph', operator: 'In' }] } },
      'In and NotIn need values',
    ],
  ];
  it.each(invalid)('reject %s', async (_what, kind, spec, message) => {
    const ns = await freshNamespace();
    const res = await create({
      apiVersion: 'edfs.io/v1alpha1',
      kind,
      metadata: { name: 'x', namespace: ns },
      spec,
    });
    expect(res.status).toBe(422);
    expect(res.body.message).toContain(message);
  });

  it('reject a Supergraph whose router Service name would not be a DNS label', async () => {
    const ns = await freshNamespace();
    const res = await create({
      apiVersion: 'edfs.io/v1alpha1',
      kind: 'Supergraph',
      metadata: { name: 'a'.repeat(57), namespace: ns },
      spec: {},
    });
    expect(res.status).toBe(422);
    expect(res.body.message).toContain('the router Service is named <name>-router');
  });

  it('serve the scale subresource on spec.router.replicas and status.selector', async () => {
    const path = crPath('demo', 'Supergraph', 'chat');
    const status = await call(
      'PATCH',
      `${path}/status`,
      {
        status: {
          replicas: 2,
          selector: 'app.kubernetes.io/instance=chat,app.kubernetes.io/name=edfs-router',
        },
      },
      { 'content-type': 'application/merge-patch+json' },
    );
    expect(status.status).toBe(200);
    const scale = await call('GET', `${path}/scale`);
    expect(scale.body.spec).toEqual({ replicas: 2 });
    expect(scale.body.status).toEqual({
      replicas: 2,
      selector: 'app.kubernetes.io/instance=chat,app.kubernetes.io/name=edfs-router',
    });
    const patched = await call(
      'PATCH',
      `${path}/scale`,
      { spec: { replicas: 3 } },
      {
        'content-type': 'application/merge-patch+json',
      },
    );
    expect(patched.status).toBe(200);
    expect((await call('GET', path)).body.spec.router.replicas).toBe(3);
  });

  it('show Ready, Composed, Replicas and Age in `kubectl get sup`', async () => {
    const table = await call('GET', crPath('demo', 'Supergraph'), undefined, {
      accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
    });
    const columns = (table.body.columnDefinitions as any[])
      .filter((c) => c.priority === 0)
      .map((c) => c.name);
    expect(columns).toEqual(['Name', 'Ready', 'Composed', 'Replicas', 'Age']);
    const sg = await call('GET', crPath('demo', 'Subgraph'), undefined, {
      accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
    });
    expect((sg.body.columnDefinitions as any[]).filter((c) => c.priority === 0).map((c) => c.name)).toEqual([
      'Name',
      'Valid',
      'Age',
    ]);
    const ep = await call('GET', crPath('demo', 'EventProvider'), undefined, {
      accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
    });
    expect((ep.body.columnDefinitions as any[]).filter((c) => c.priority === 0).map((c) => c.name)).toEqual([
      'Name',
      'Ready',
      'Age',
    ]);
  });
});

// ---------------------------------------------------------------------------------------------

function objectPath(object: {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
}): string {
  const kind = CHILD_KINDS.find((k) => k.apiVersion === object.apiVersion && k.kind === object.kind);
  if (!kind) throw new Error(`not a child kind: ${object.apiVersion} ${object.kind}`);
  const base = object.apiVersion === 'v1' ? '/api/v1' : `/apis/${object.apiVersion}`;
  return `${base}/namespaces/${object.metadata.namespace}/${kind.plural}/${object.metadata.name}`;
}

/** Server-side apply as the operator (one field manager), unknown fields rejected. */
function apply(object: KubeObject, token = operatorToken): Promise<Response> {
  return call(
    'PATCH',
    `${objectPath(object)}?fieldManager=edfs-operator&force=true&fieldValidation=Strict`,
    object,
    { 'content-type': 'application/apply-patch+yaml' },
    token,
  );
}

/**
 * Stand-ins for the Prometheus Operator's and KEDA's CRDs, with open schemas (their real schemas
 * are not vendored here): enough for the API server to serve the kinds, so RBAC and apply can be
 * checked; the content of those two objects is checked by desired.test.ts.
 */
function standInCrd(group: string, version: string, kind: string, plural: string) {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${group}` },
    spec: {
      group,
      scope: 'Namespaced',
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
      versions: [
        {
          name: version,
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: { spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
            },
          },
        },
      ],
    },
  };
}

describe("rendered router objects under the chart's RBAC", () => {
  const ns = 'render';
  let supergraph: Supergraph;
  const render = (change: (s: Supergraph) => void = () => {}, configJson = '{"version":"1"}') => {
    const sup = structuredClone(supergraph);
    change(sup);
    return renderDesired({
      supergraph: sup,
      configJson,
      configHash: createHash('sha256').update(configJson).digest('hex'),
      providers: [
        {
          apiVersion: 'edfs.io/v1alpha1',
          kind: 'EventProvider',
          metadata: { name: 'default', namespace: ns },
          spec: {
            nats: {
              url: 'nats://nats:4222',
              auth: { credsSecretRef: { name: 'nats-creds', key: 'user.creds' } },
              tls: { caSecretRef: { name: 'nats-ca', key: 'ca.crt' } },
            },
          },
        },
        {
          apiVersion: 'edfs.io/v1alpha1',
          kind: 'EventProvider',
          metadata: { name: 'kafka', namespace: ns },
          spec: {
            kafka: {
              brokers: ['kafka:9092'],
              sasl: { mechanism: 'PLAIN', secretRef: { name: 'kafka-user' } },
            },
          },
        },
      ],
      capabilities: { serviceMonitor: true, keda: true },
      defaults: {
        routerImage: 'ghcr.io/edfs/edfs-router:0.1.0',
        prometheusAddress: 'http://prometheus:9090',
      },
    });
  };

  beforeAll(async () => {
    for (const crd of [
      standInCrd('monitoring.coreos.com', 'v1', 'ServiceMonitor', 'servicemonitors'),
      standInCrd('keda.sh', 'v1alpha1', 'ScaledObject', 'scaledobjects'),
    ]) {
      const res = await call('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
      if (res.status !== 201) throw new Error(JSON.stringify(res.body));
    }
    await eventually(
      async () =>
        (await call('GET', '/apis/monitoring.coreos.com/v1')).status === 200 &&
        (await call('GET', '/apis/keda.sh/v1alpha1')).status === 200,
      'the stand-in APIs',
      30_000,
      100,
    );
    await ensureNamespace(ns);
    const created = await create({
      apiVersion: 'edfs.io/v1alpha1',
      kind: 'Supergraph',
      metadata: { name: 'chat', namespace: ns },
      spec: {
        router: { replicas: 2, podTemplate: { spec: { nodeSelector: { pool: 'edge' } } } },
        autoscaling: { minReplicas: 2, maxReplicas: 6, targetConnectionsPerPod: 1000, mode: 'KEDA' },
        ingress: { host: 'chat.example.com', className: 'nginx', tls: { secretName: 'chat-tls' } },
        serviceMonitor: { labels: { release: 'prom' }, interval: '15s' },
      },
    });
    if (created.status !== 201) throw new Error(JSON.stringify(created.body));
    supergraph = created.body as Supergraph;
  });

  it('are all server-side applied by the operator ServiceAccount, valid under strict field validation', async () => {
    const { objects, warnings } = render();
    expect(warnings).toEqual([]);
    expect(objects.map((o) => o.kind)).toEqual([
      'ConfigMap',
      'Service',
      'Deployment',
      'PodDisruptionBudget',
      'ScaledObject',
      'Ingress',
      'ServiceMonitor',
    ]);
    for (const object of objects) {
      const res = await apply(object);
      expect({ kind: object.kind, status: res.status, message: res.body.message }).toEqual({
        kind: object.kind,
        status: 201,
        message: undefined,
      });
      expect(res.body.metadata.ownerReferences).toEqual([
        {
          apiVersion: 'edfs.io/v1alpha1',
          kind: 'Supergraph',
          name: 'chat',
          uid: supergraph.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
    }
  });

  it('apply a second time without any change (same resourceVersion): the render is stable', async () => {
    const { objects } = render();
    for (const object of objects) {
      const before = (await call('GET', objectPath(object))).body.metadata.resourceVersion;
      const res = await apply(object);
      expect({
        kind: object.kind,
        status: res.status,
        resourceVersion: res.body.metadata.resourceVersion,
      }).toEqual({
        kind: object.kind,
        status: 200,
        resourceVersion: before,
      });
    }
  });

  it('with HotReload, a new execution config changes the ConfigMap and not the Deployment; with Restart it rolls', async () => {
    const deploymentPath = `/apis/apps/v1/namespaces/${ns}/deployments/chat-router`;
    const generation = (await call('GET', deploymentPath)).body.metadata.generation;
    const next = render(() => {}, '{"version":"2"}').objects;
    for (const object of next) expect((await apply(object)).status).toBe(200);
    expect((await call('GET', deploymentPath)).body.metadata.generation).toBe(generation);
    expect(
      (await call('GET', `/api/v1/namespaces/${ns}/configmaps/chat-router-config`)).body.data['config.json'],
    ).toBe('{"version":"2"}');

    const restart = render((s) => (s.spec.router!.rollout = 'Restart'), '{"version":"3"}').objects;
    for (const object of restart) expect((await apply(object)).status).toBe(200);
    expect((await call('GET', deploymentPath)).body.metadata.generation).toBe(generation + 1);
  });

  it('an autoscaling/v2 HorizontalPodAutoscaler on the Pods metric is accepted too', async () => {
    const { objects } = render((s) => (s.spec.autoscaling!.mode = 'HPA'));
    const hpa = objects.find((o) => o.kind === 'HorizontalPodAutoscaler')!;
    const res = await apply(hpa);
    expect({ status: res.status, message: res.body.message }).toEqual({ status: 201, message: undefined });
    expect(res.body.spec.metrics[0].pods.metric.name).toBe('router_engine_connections');
  });

  it('the operator ServiceAccount can do the rest of its job, and nothing it was not granted', async () => {
    const as = (method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
      call(method, path, body, headers, operatorToken).then((r) => r.status);
    const supPath = crPath(ns, 'Supergraph', 'chat');
    expect(await as('GET', '/apis/edfs.io/v1alpha1/supergraphs')).toBe(200);
    expect(await as('GET', `/api/v1/namespaces/${ns}/secrets`)).toBe(200);
    expect(
      await as(
        'PATCH',
        `${supPath}/status`,
        { status: { replicas: 2 } },
        { 'content-type': 'application/merge-patch+json' },
      ),
    ).toBe(200);
    expect(
      await as(
        'GET',
        '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/servicemonitors.monitoring.coreos.com',
      ),
    ).toBe(200);
    const lease = (namespace: string) => ({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'edfs-operator', namespace },
      spec: { holderIdentity: 'test' },
    });
    expect(
      await as('POST', `/apis/coordination.k8s.io/v1/namespaces/${RELEASE_NS}/leases`, lease(RELEASE_NS)),
    ).toBe(201);
    expect(
      await as('POST', `/api/v1/namespaces/${ns}/events`, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: 'chat.1', namespace: ns },
        involvedObject: { apiVersion: 'edfs.io/v1alpha1', kind: 'Supergraph', name: 'chat', namespace: ns },
        reason: 'Composed',
        message: 'test',
        type: 'Normal',
      }),
    ).toBe(201);

    // Not granted:
    expect(await as('POST', `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`, lease(ns))).toBe(403);
    expect(
      await as('POST', `/api/v1/namespaces/${ns}/secrets`, {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 's' },
      }),
    ).toBe(403);
    expect(await as('DELETE', supPath)).toBe(403);
    expect(
      await as(
        'PATCH',
        supPath,
        { spec: { router: { replicas: 9 } } },
        { 'content-type': 'application/merge-patch+json' },
      ),
    ).toBe(403);
    expect(await as('GET', `/api/v1/namespaces/${ns}/pods`)).toBe(403);
    expect(await as('GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles')).toBe(403);
  });
});
