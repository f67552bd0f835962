/**
 * The CRDs the operator's Helm chart installs, on a real kube-apiserver + etcd (e2e/infra/kube.sh)
 * with the real helm (e2e/infra/helm.sh): they are the files in crds/, accepted as structural
 * schemas, apply defaults, reject invalid objects through their CEL rules and bounds with messages
 * that name the fix, accept examples/chat as written (strict field validation: no unknown
 * fields), serve the scale subresource, and `kubectl get` shows the printer columns.
 * The first run on a machine builds the binaries (minutes); later runs start in seconds.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import {
  createStrict,
  crPath,
  ensureNamespace,
  installChart,
  PLURALS,
  type InstalledChart,
} from '../src/fixtures/chart.js';
import { kubeApi, type KubeRequestOptions, type KubeResponse } from '../src/fixtures/kube.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BUILD_TIMEOUT_MS = 40 * 60_000;

let chart: InstalledChart;

const api = (
  method: string,
  path: string,
  body?: unknown,
  opts?: KubeRequestOptions,
): Promise<KubeResponse> => kubeApi(chart.cp, method, path, body, opts);
const create = (object: any): Promise<KubeResponse> => createStrict(chart.cp, object);

let namespaces = 0;
async function freshNamespace(): Promise<string> {
  const name = `crd-test-${++namespaces}`;
  await ensureNamespace(chart.cp, name);
  return name;
}

function readYaml(path: string): any[] {
  return parseAllDocuments(readFileSync(path, 'utf8')).map((d) => d.toJS());
}

beforeAll(async () => {
  chart = await installChart();
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  await chart?.cp.stop();
});

describe('the CRDs the chart installs', () => {
  it('are the ones in crds/, accepted as structural schemas with names, short names and the edfs category', async () => {
    for (const file of readdirSync(`${ROOT}crds`)) {
      const source = readYaml(`${ROOT}crds/${file}`)[0];
      const served = await api(
        'GET',
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${source.metadata.name}`,
      );
      expect(served.body.metadata.annotations['meta.helm.sh/release-name']).toBe('edfs');
      expect(served.body.metadata.annotations['helm.sh/resource-policy']).toBe('keep');
      expect(served.body.spec.versions[0].schema).toEqual(source.spec.versions[0].schema);
    }
    for (const [kind, plural] of Object.entries(PLURALS)) {
      const res = await api(
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
    const discovery = await api('GET', '/apis/edfs.io/v1alpha1');
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
    await ensureNamespace(chart.cp, 'demo');
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
    const status = await api(
      'PATCH',
      `${path}/status`,
      {
        status: {
          replicas: 2,
          selector: 'app.kubernetes.io/instance=chat,app.kubernetes.io/name=edfs-router',
        },
      },
      { contentType: 'application/merge-patch+json' },
    );
    expect(status.status).toBe(200);
    const scale = await api('GET', `${path}/scale`);
    expect(scale.body.spec).toEqual({ replicas: 2 });
    expect(scale.body.status).toEqual({
      replicas: 2,
      selector: 'app.kubernetes.io/instance=chat,app.kubernetes.io/name=edfs-router',
    });
    const patched = await api(
      'PATCH',
      `${path}/scale`,
      { spec: { replicas: 3 } },
      { contentType: 'application/merge-patch+json' },
    );
    expect(patched.status).toBe(200);
    expect((await api('GET', path)).body.spec.router.replicas).toBe(3);
  });

  it('show Ready, Composed, Replicas and Age in `kubectl get sup`', async () => {
    const table = await api('GET', crPath('demo', 'Supergraph'), undefined, {
      accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
    });
    const columns = (table.body.columnDefinitions as any[])
      .filter((c) => c.priority === 0)
      .map((c) => c.name);
    expect(columns).toEqual(['Name', 'Ready', 'Composed', 'Replicas', 'Age']);
    const sg = await api('GET', crPath('demo', 'Subgraph'), undefined, {
      accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
    });
    expect((sg.body.columnDefinitions as any[]).filter((c) => c.priority === 0).map((c) => c.name)).toEqual([
      'Name',
      'Valid',
      'Age',
    ]);
    const ep = await api('GET', crPath('demo', 'EventProvider'), undefined, {
      accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
    });
    expect((ep.body.columnDefinitions as any[]).filter((c) => c.priority === 0).map((c) => c.name)).toEqual([
      'Name',
      'Ready',
      'Age',
    ]);
  });
});
