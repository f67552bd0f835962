/**
 * The rendered router objects under the RBAC the operator's Helm chart grants, on a real
 * kube-apiserver + etcd (e2e/infra/kube.sh) with the real helm (e2e/infra/helm.sh): the operator's
 * ServiceAccount can server-side apply every object `renderDesired` produces (owner references
 * with blockOwnerDeletion, under the OwnerReferencesPermissionEnforcement admission plugin), a
 * second apply changes nothing, and it cannot do what it was not granted.
 * The first run on a machine builds the binaries (minutes); later runs start in seconds.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import type { KubeObject, Supergraph } from '../../operator/src/api/v1alpha1.js';
import { CHILD_KINDS, renderDesired } from '../../operator/src/desired/index.js';
import {
  createStrict,
  crPath,
  ensureNamespace,
  installChart,
  RELEASE_NS,
  type InstalledChart,
} from '../src/fixtures/chart.js';
import { kubeApi, type KubeRequestOptions, type KubeResponse } from '../src/fixtures/kube.js';
import { eventually } from '../src/fixtures/wait.js';

const BUILD_TIMEOUT_MS = 40 * 60_000;

let chart: InstalledChart;

const api = (
  method: string,
  path: string,
  body?: unknown,
  opts?: KubeRequestOptions,
): Promise<KubeResponse> => kubeApi(chart.cp, method, path, body, opts);
const create = (object: any): Promise<KubeResponse> => createStrict(chart.cp, object);

beforeAll(async () => {
  chart = await installChart();
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  await chart?.cp.stop();
});

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
function apply(object: KubeObject): Promise<KubeResponse> {
  return api(
    'PATCH',
    `${objectPath(object)}?fieldManager=edfs-operator&force=true&fieldValidation=Strict`,
    object,
    { contentType: 'application/apply-patch+yaml', bearer: chart.operatorToken },
  );
}

/**
 * Stand-ins for the Prometheus Operator's and KEDA's CRDs, with open schemas (their real schemas
 * are not vendored here): enough for the API server to serve the kinds, so RBAC and apply can be
 * checked; the content of those two objects is checked by operator/test/desired/{monitoring,scaling}.test.ts.
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
      const res = await api('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
      if (res.status !== 201) throw new Error(JSON.stringify(res.body));
    }
    await eventually(
      async () =>
        (await api('GET', '/apis/monitoring.coreos.com/v1')).status === 200 &&
        (await api('GET', '/apis/keda.sh/v1alpha1')).status === 200,
      'the stand-in APIs',
      30_000,
      100,
    );
    await ensureNamespace(chart.cp, ns);
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
      const before = (await api('GET', objectPath(object))).body.metadata.resourceVersion;
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
    const generation = (await api('GET', deploymentPath)).body.metadata.generation;
    const next = render(() => {}, '{"version":"2"}').objects;
    for (const object of next) expect((await apply(object)).status).toBe(200);
    expect((await api('GET', deploymentPath)).body.metadata.generation).toBe(generation);
    expect(
      (await api('GET', `/api/v1/namespaces/${ns}/configmaps/chat-router-config`)).body.data['config.json'],
    ).toBe('{"version":"2"}');

    const restart = render((s) => (s.spec.router!.rollout = 'Restart'), '{"version":"3"}').objects;
    for (const object of restart) expect((await apply(object)).status).toBe(200);
    expect((await api('GET', deploymentPath)).body.metadata.generation).toBe(generation + 1);
  });

  it('an autoscaling/v2 HorizontalPodAutoscaler on the Pods metric is accepted too', async () => {
    const { objects } = render((s) => (s.spec.autoscaling!.mode = 'HPA'));
    const hpa = objects.find((o) => o.kind === 'HorizontalPodAutoscaler')!;
    const res = await apply(hpa);
    expect({ status: res.status, message: res.body.message }).toEqual({ status: 201, message: undefined });
    expect(res.body.spec.metrics[0].pods.metric.name).toBe('router_engine_connections');
  });

  it('the operator ServiceAccount can do the rest of its job, and nothing it was not granted', async () => {
    const as = (method: string, path: string, body?: unknown, contentType?: string) =>
      api(method, path, body, { contentType, bearer: chart.operatorToken }).then((r) => r.status);
    const supPath = crPath(ns, 'Supergraph', 'chat');
    expect(await as('GET', '/apis/edfs.io/v1alpha1/supergraphs')).toBe(200);
    expect(await as('GET', `/api/v1/namespaces/${ns}/secrets`)).toBe(200);
    expect(
      await as('PATCH', `${supPath}/status`, { status: { replicas: 2 } }, 'application/merge-patch+json'),
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
      await as('PATCH', supPath, { spec: { router: { replicas: 9 } } }, 'application/merge-patch+json'),
    ).toBe(403);
    expect(await as('GET', `/api/v1/namespaces/${ns}/pods`)).toBe(403);
    expect(await as('GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles')).toBe(403);
  });
});
