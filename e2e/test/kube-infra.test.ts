/**
 * The test control plane itself (`src/infra/kube.ts`): a real kube-apiserver + etcd enforces CEL
 * validation rules of a CustomResourceDefinition and RBAC for ServiceAccount tokens from the
 * TokenRequest API, and helm (from `infra/helm.sh`) runs and installs a chart with the admin
 * kubeconfig. The first run builds the binaries (minutes); later runs start in seconds.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  RbacAuthorizationV1Api,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { eventuallyResolves as eventually } from '../src/fixtures/wait.js';
import { helmBinary, startControlPlane, type ControlPlane } from '../src/infra/kube.js';

const run = promisify(execFile);
// A cold machine builds etcd, kube-apiserver and helm first.
const BUILD_TIMEOUT_MS = 40 * 60_000;

let cp: ControlPlane;

beforeAll(async () => {
  cp = await startControlPlane();
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  await cp?.stop();
});

/** The HTTP status of a failed client call (client-node's ApiException carries it as `code`). */
async function statusOf(call: Promise<unknown>): Promise<number> {
  try {
    await call;
    return 200;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'number') return code;
    throw error;
  }
}

describe('kube-apiserver + etcd', () => {
  it('serves the API with the admin token and reports its version', async () => {
    const core = cp.kubeConfig().makeApiClient(CoreV1Api);
    const namespaces = await core.listNamespace();
    expect(namespaces.items.map((ns) => ns.metadata?.name)).toEqual(
      expect.arrayContaining(['default', 'kube-system']),
    );
    const res = await fetch(`${cp.etcdUrl}/version`);
    expect(((await res.json()) as { etcdserver: string }).etcdserver).toMatch(/^3\.5\./);
  });

  it('enforces a CRD validation rule written in CEL (x-kubernetes-validations)', async () => {
    const kc = cp.kubeConfig();
    const crd: V1CustomResourceDefinition = {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'widgets.infra-test.edfs.io' },
      spec: {
        group: 'infra-test.edfs.io',
        scope: 'Namespaced',
        names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
        versions: [
          {
            name: 'v1alpha1',
            served: true,
            storage: true,
            schema: {
              openAPIV3Schema: {
                type: 'object',
                properties: {
                  spec: {
                    type: 'object',
                    properties: {
                      minReplicas: { type: 'integer', minimum: 0 },
                      maxReplicas: { type: 'integer', minimum: 0 },
                    },
                    // client-node's typed models spell extension fields with underscores; its serializer
                    // writes them as x-kubernetes-validations (a raw 'x-kubernetes-…' key would be dropped).
                    x_kubernetes_validations: [
                      {
                        rule: 'self.minReplicas <= self.maxReplicas',
                        message: 'minReplicas must not exceed maxReplicas',
                      },
                    ],
                  },
                },
              },
            },
          },
        ],
      },
    };
    const ext = kc.makeApiClient(ApiextensionsV1Api);
    await ext.createCustomResourceDefinition({ body: crd });
    await eventually(
      async () => {
        const got = await ext.readCustomResourceDefinition({ name: crd.metadata!.name! });
        const established = got.status?.conditions?.find((c) => c.type === 'Established');
        if (established?.status !== 'True') throw new Error('CRD not Established yet');
      },
      'CRD Established',
      10_000,
    );

    const objects = kc.makeApiClient(CustomObjectsApi);
    const widget = (name: string, minReplicas: number, maxReplicas: number) => ({
      group: 'infra-test.edfs.io',
      version: 'v1alpha1',
      namespace: 'default',
      plural: 'widgets',
      body: {
        apiVersion: 'infra-test.edfs.io/v1alpha1',
        kind: 'Widget',
        metadata: { name },
        spec: { minReplicas, maxReplicas },
      },
    });
    // The discovery of a fresh CRD can lag its Established condition by a moment.
    await eventually(
      () => objects.createNamespacedCustomObject(widget('good', 1, 3)),
      'create a valid Widget',
      10_000,
    );

    let rejection: unknown;
    await objects
      .createNamespacedCustomObject(widget('bad', 5, 2))
      .catch((error: unknown) => (rejection = error));
    expect(rejection).toBeDefined();
    const { code, body } = rejection as { code: number; body: string };
    expect(code).toBe(422);
    expect(body).toContain('minReplicas must not exceed maxReplicas');

    const listed = (await objects.listNamespacedCustomObject({
      group: 'infra-test.edfs.io',
      version: 'v1alpha1',
      namespace: 'default',
      plural: 'widgets',
    })) as { items: { metadata: { name: string } }[] };
    expect(listed.items.map((w) => w.metadata.name)).toEqual(['good']);
  });

  it('enforces RBAC for a ServiceAccount token: forbidden before a RoleBinding, allowed after', async () => {
    const namespace = 'rbac-check';
    const token = await cp.tokenFor(namespace, 'operator', { create: true });
    const asOperator = cp.kubeConfig(token).makeApiClient(CoreV1Api);

    // Authenticated (not 401) as the ServiceAccount, but not authorized.
    expect(await statusOf(asOperator.listNamespacedConfigMap({ namespace }))).toBe(403);

    const rbac = cp.kubeConfig().makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace,
      body: {
        metadata: { name: 'configmap-reader' },
        rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: 'operator-reads-configmaps' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'configmap-reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'operator', namespace }],
      },
    });

    // The RBAC authorizer reads through an informer: the grant lands within moments.
    await eventually(
      async () => {
        expect(await statusOf(asOperator.listNamespacedConfigMap({ namespace }))).toBe(200);
      },
      'list ConfigMaps after the RoleBinding',
      10_000,
    );
    // Exactly what was granted: reading in this namespace, not writing, not elsewhere.
    expect(
      await statusOf(asOperator.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'x' } } })),
    ).toBe(403);
    expect(await statusOf(asOperator.listNamespacedConfigMap({ namespace: 'default' }))).toBe(403);
  });

  it('rejects a token it did not issue', async () => {
    const stranger = cp.kubeConfig('not-a-valid-token').makeApiClient(CoreV1Api);
    expect(await statusOf(stranger.listNamespace())).toBe(401);
  });
});

describe('helm', () => {
  let helm: string;
  beforeAll(async () => {
    helm = await helmBinary();
  }, BUILD_TIMEOUT_MS);

  it('runs `helm version`', async () => {
    const { stdout } = await run(helm, ['version', '--short']);
    expect(stdout.trim()).toMatch(/^v3\.19\.\d+/);
  });

  it('installs a chart into the control plane with the admin kubeconfig', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edfs-chart-'));
    try {
      const chart = join(dir, 'hello');
      await mkdir(join(chart, 'templates'), { recursive: true });
      await writeFile(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: hello\nversion: 0.1.0\n');
      await writeFile(join(chart, 'values.yaml'), 'greeting: hi\n');
      await writeFile(
        join(chart, 'templates', 'configmap.yaml'),
        [
          'apiVersion: v1',
          'kind: ConfigMap',
          'metadata:',
          '  name: {{ .Release.Name }}-greeting',
          'data:',
          '  greeting: {{ .Values.greeting | quote }}',
          '  kubeVersion: {{ .Capabilities.KubeVersion.Version | quote }}',
          '',
        ].join('\n'),
      );
      // HOME-independent: helm keeps its cache/config under the temp dir.
      const env = {
        ...process.env,
        HELM_CACHE_HOME: join(dir, 'cache'),
        HELM_CONFIG_HOME: join(dir, 'config'),
        HELM_DATA_HOME: join(dir, 'data'),
      };
      await run(helm, ['lint', chart], { env });
      await run(
        helm,
        [
          'install',
          'demo',
          chart,
          '--namespace',
          'helm-check',
          '--create-namespace',
          '--set',
          'greeting=hello',
          '--kubeconfig',
          cp.kubeconfigPath,
        ],
        { env },
      );
      const core = cp.kubeConfig().makeApiClient(CoreV1Api);
      const cm = await core.readNamespacedConfigMap({ name: 'demo-greeting', namespace: 'helm-check' });
      expect(cm.data?.greeting).toBe('hello');
      // Against a live server, .Capabilities reports the server's version.
      expect(cm.data?.kubeVersion).toMatch(/^v1\.33\./);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
