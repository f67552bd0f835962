/**
 * The edfs.io CustomResourceDefinitions (crds/*.yaml) in a real kube-apiserver + etcd: they are
 * accepted and established, the API server applies their defaults, and it refuses invalid
 * objects through their CEL rules, with the rule's message: exactly one schema source on a
 * Subgraph, exactly one of nats/kafka and one auth method on an EventProvider, selector and
 * autoscaling rules on a Supergraph. `kubectl get` columns are checked in operator-controller-reconcile.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parseAllDocuments } from 'yaml';
import { kubeApi, type KubeResponse } from '../src/fixtures/kube.js';
import { eventuallyResolves as eventually } from '../src/fixtures/wait.js';
import { startControlPlane, type ControlPlane } from '../src/infra/kube.js';

const BUILD_TIMEOUT_MS = 40 * 60_000;
const CRDS = new URL('../../crds/', import.meta.url);

let cp: ControlPlane;

/** One request with the admin token; JSON in and out. */
const api = (method: string, path: string, body?: unknown, contentType?: string): Promise<KubeResponse> =>
  kubeApi(cp, method, path, body, { contentType });

const PATHS: Record<string, string> = {
  CustomResourceDefinition: '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
  Namespace: '/api/v1/namespaces',
  EventProvider: '/apis/edfs.io/v1alpha1/namespaces/crd-test/eventproviders',
  Subgraph: '/apis/edfs.io/v1alpha1/namespaces/crd-test/subgraphs',
  Supergraph: '/apis/edfs.io/v1alpha1/namespaces/crd-test/supergraphs',
};

function create(obj: { kind: string; metadata: { name: string } }): Promise<KubeResponse> {
  return api('POST', PATHS[obj.kind]!, obj);
}

beforeAll(async () => {
  cp = await startControlPlane();
  for (const file of readdirSync(CRDS).filter((f) => f.endsWith('.yaml'))) {
    for (const doc of parseAllDocuments(readFileSync(new URL(file, CRDS), 'utf8'))) {
      const crd = doc.toJS();
      const res = await create(crd);
      if (res.status !== 201) throw new Error(`${file}: HTTP ${res.status}: ${JSON.stringify(res.body)}`);
    }
  }
  await create({ kind: 'Namespace', metadata: { name: 'crd-test' } });
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  await cp?.stop();
});

const subgraph = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'edfs.io/v1alpha1',
  kind: 'Subgraph',
  metadata: { name },
  spec,
});
const provider = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'edfs.io/v1alpha1',
  kind: 'EventProvider',
  metadata: { name },
  spec,
});
const supergraph = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'edfs.io/v1alpha1',
  kind: 'Supergraph',
  metadata: { name },
  spec,
});

/** Creates `obj`, expecting a 422 whose message contains `message`. */
async function rejected(obj: { kind: string; metadata: { name: string } }, message: string): Promise<void> {
  const res = await create(obj);
  expect({ status: res.status, message: res.body?.message }).toEqual({
    status: 422,
    message: expect.stringContaining(message),
  });
}

describe('edfs.io CRDs in a real API server', () => {
  it('are established with their short names and the edfs category', async () => {
    for (const plural of ['eventproviders', 'subgraphs', 'supergraphs']) {
      const crd = await eventually(async () => {
        const res = await api('GET', `${PATHS.CustomResourceDefinition}/${plural}.edfs.io`);
        const established = res.body?.status?.conditions?.find(
          (c: { type: string }) => c.type === 'Established',
        );
        if (established?.status !== 'True') throw new Error(`${plural} not established`);
        return res.body;
      }, `${plural} established`);
      expect(crd.spec.names.categories).toEqual(['edfs']);
    }
    // Discovery catches up with newly established CRDs a moment later, one resource at a time.
    const discovery = await eventually(async () => {
      const res = await api('GET', '/apis/edfs.io/v1alpha1');
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      const body = res.body as { resources: { name: string; shortNames?: string[] }[] };
      const served = body.resources.map((r) => r.name);
      for (const plural of ['eventproviders', 'subgraphs', 'supergraphs'])
        if (!served.includes(plural)) throw new Error(`${plural} not in discovery yet`);
      return body;
    }, 'discovery');
    const shortNames = Object.fromEntries(
      discovery.resources.filter((r) => r.shortNames).map((r) => [r.name, r.shortNames]),
    );
    expect(shortNames).toEqual({ eventproviders: ['ep'], subgraphs: ['sg'], supergraphs: ['sup'] });
  }, 30_000);

  it('accept valid objects of every shape and fill in defaults', async () => {
    await eventually(async () => {
      const res = await create(
        subgraph('inline', {
          routingUrl: 'http://users.demo.svc:4001/graphql',
          schema: { sdl: 'type Query { a: String }' },
        }),
      );
      if (res.status !== 201) throw new Error(`HTTP ${res.status} ${res.body?.message}`);
    }, 'create the first Subgraph');
    expect(
      (
        await create(
          subgraph('from-configmap', { schema: { configMapRef: { name: 'schemas', key: 'users.graphql' } } }),
        )
      ).status,
    ).toBe(201);
    expect(
      (
        await create(
          provider('nats', {
            nats: { url: 'nats://nats:4222', auth: { tokenSecretRef: { name: 'nats', key: 'token' } } },
          }),
        )
      ).status,
    ).toBe(201);

    const userPassword = await create(
      provider('nats-user', {
        nats: { url: 'nats://nats:4222', auth: { userPasswordSecretRef: { name: 'nats' } } },
      }),
    );
    expect(userPassword.status).toBe(201);
    expect(userPassword.body.spec.nats.auth.userPasswordSecretRef).toEqual({
      name: 'nats',
      usernameKey: 'username',
      passwordKey: 'password',
    });

    const kafka = await create(
      provider('kafka', { kafka: { brokers: ['kafka:9092'], sasl: { secretRef: { name: 'kafka' } } } }),
    );
    expect(kafka.status).toBe(201);
    expect(kafka.body.spec.kafka.sasl).toEqual({
      mechanism: 'PLAIN',
      secretRef: { name: 'kafka', usernameKey: 'username', passwordKey: 'password' },
    });

    const sup = await create(supergraph('chat', { subgraphSelector: { matchLabels: { graph: 'chat' } } }));
    expect(sup.status).toBe(201);
    expect(sup.body.spec.router).toMatchObject({ replicas: 1, rollout: 'HotReload' });
  }, 30_000);

  it('refuse a Subgraph with both schema sources or neither', async () => {
    await rejected(
      subgraph('both', {
        schema: { sdl: 'type Query { a: String }', configMapRef: { name: 'schemas', key: 'a.graphql' } },
      }),
      'set exactly one of schema.sdl or schema.configMapRef',
    );
    await rejected(
      subgraph('neither', { schema: {} }),
      'set exactly one of schema.sdl or schema.configMapRef',
    );
    await rejected(
      subgraph('bad-url', { routingUrl: 'users:4001', schema: { sdl: 'type Query { a: String }' } }),
      'must be an absolute http or https URL',
    );
  });

  it('refuse an EventProvider with both nats and kafka, or neither', async () => {
    await rejected(
      provider('both', { nats: { url: 'nats://nats:4222' }, kafka: { brokers: ['kafka:9092'] } }),
      'set exactly one of spec.nats or spec.kafka',
    );
    await rejected(provider('neither', { providerId: 'x' }), 'set exactly one of spec.nats or spec.kafka');
  });

  it('refuse NATS auth with two methods, and a Secret reference without its key', async () => {
    await rejected(
      provider('two-auth', {
        nats: {
          url: 'nats://nats:4222',
          auth: { tokenSecretRef: { name: 's', key: 'token' }, credsSecretRef: { name: 's', key: 'creds' } },
        },
      }),
      'set exactly one of tokenSecretRef, userPasswordSecretRef or credsSecretRef',
    );
    await rejected(
      provider('no-key', { nats: { url: 'nats://nats:4222', auth: { tokenSecretRef: { name: 's' } } } }),
      'spec.nats.auth.tokenSecretRef.key: Required value',
    );
    await rejected(provider('kafka-empty', { kafka: { brokers: [] } }), 'spec.kafka.brokers');
  });

  it('refuse a Supergraph whose selector, autoscaling or name cannot work', async () => {
    await rejected(
      supergraph('selector', { subgraphSelector: { matchExpressions: [{ key: 'graph', operator: 'In' }] } }),
      'In and NotIn need values; Exists and DoesNotExist take none',
    );
    await rejected(
      supergraph('scaling', {
        autoscaling: { minReplicas: 5, maxReplicas: 2, targetConnectionsPerPod: 1000 },
      }),
      'minReplicas must not be greater than maxReplicas',
    );
    await rejected(
      supergraph('no-target', { autoscaling: { maxReplicas: 2 } }),
      'set targetConnectionsPerPod, targetCPUUtilizationPercentage or both',
    );
    await rejected(
      supergraph('behavior', {
        autoscaling: {
          maxReplicas: 2,
          targetCPUUtilizationPercentage: 50,
          behavior: { scaleDown: { policies: [{ type: 'Replicas', value: 1, periodSeconds: 15 }] } },
        },
      }),
      'spec.autoscaling.behavior.scaleDown.policies[0].type: Unsupported value: "Replicas"',
    );
    await rejected(supergraph('a'.repeat(57), {}), 'the name must be a DNS label of at most 56 characters');
  });
});
