/**
 * The Supergraph reconciler against the in-memory API server (test/fixtures/api-server.ts):
 * composing examples/chat into owned children, writing nothing when nothing changed, composition
 * and router-config errors in status, what it reads (Subgraphs, EventProviders, Secrets,
 * ConfigMaps), Secret rotation, and the hand-over of replicas to an autoscaler.
 */
import { describe, expect, it } from '@jest/globals';
import type { EventProvider, Subgraph } from '../../src/api/v1alpha1.js';
import { createControllerMetrics } from '../../src/controller/metrics.js';
import { RESOURCES, type AnyObject } from '../../src/kube/resources.js';
import { dep } from '../../src/reconcile/dependency-index.js';
import { chatManifests, condition, setup, supergraph, withChat, type Obj } from '../fixtures/api-server.js';

describe('Supergraph reconciler', () => {
  it('composes examples/chat and applies ConfigMap, Service, Deployment, PDB, Ingress owned by the Supergraph', async () => {
    const { api, supergraphs } = setup();
    withChat(api);
    await supergraphs.reconcile('demo/chat');

    expect(api.takeWrites()).toEqual([
      'apply ConfigMap chat-router-config',
      'apply Service chat-router',
      'apply Deployment chat-router',
      'apply PodDisruptionBudget chat-router',
      'apply Ingress chat-router',
      'status Supergraph chat',
    ]);
    const sup = supergraph(api);
    const owner = {
      apiVersion: 'edfs.io/v1alpha1',
      kind: 'Supergraph',
      name: 'chat',
      uid: sup.metadata.uid,
      controller: true,
    };
    for (const [type, name] of [
      [RESOURCES.ConfigMap, 'chat-router-config'],
      [RESOURCES.Service, 'chat-router'],
      [RESOURCES.Deployment, 'chat-router'],
    ] as const) {
      expect(api.find(type, 'demo', name)?.metadata.ownerReferences).toEqual([
        expect.objectContaining(owner),
      ]);
    }
    const configMap = api.find(RESOURCES.ConfigMap, 'demo', 'chat-router-config')!;
    const config = JSON.parse(configMap.data['config.json']);
    expect(config.subgraphs.map((s: { name: string }) => s.name)).toEqual(['edfs', 'messages', 'users']);
    expect(configMap.data['router.yaml']).toContain('nats://nats.demo.svc:4222');

    expect(sup.status).toMatchObject({
      observedGeneration: 1,
      configHash: expect.stringMatching(/^[0-9a-f]{64}$/),
      subgraphs: [{ name: 'edfs' }, { name: 'messages' }, { name: 'users' }],
      replicas: 0,
      readyReplicas: 0,
      selector: 'app.kubernetes.io/instance=chat,app.kubernetes.io/name=edfs-router',
    });
    expect(condition(sup, 'Composed')).toMatchObject({ status: 'True', reason: 'Composed' });
    expect(condition(sup, 'Ready')).toMatchObject({ status: 'False', reason: 'RoutersNotReady' });
    expect(api.events).toEqual([
      expect.objectContaining({ object: 'Supergraph/chat', type: 'Normal', reason: 'Composed' }),
    ]);
  });

  it('a second reconcile of unchanged inputs writes nothing', async () => {
    const { api, supergraphs, tick } = setup();
    withChat(api);
    await supergraphs.reconcile('demo/chat');
    api.takeWrites();
    tick(60_000);
    await supergraphs.reconcile('demo/chat');
    await supergraphs.reconcile('demo/chat');
    expect(api.takeWrites()).toEqual([]);
    expect(api.events).toHaveLength(1);
  });

  it('a changed SDL rewrites only the ConfigMap (hot reload) and the config hash', async () => {
    const { api, supergraphs } = setup();
    withChat(api);
    await supergraphs.reconcile('demo/chat');
    const before = supergraph(api).status!.configHash;
    api.takeWrites();

    const users = api.find<Subgraph>(RESOURCES.Subgraph, 'demo', 'users')!;
    api.put({
      ...users,
      spec: {
        ...users.spec,
        schema: {
          sdl: users.spec.schema.sdl!.replace('email: String!', 'email: String!\n  nickname: String'),
        },
      },
    });
    await supergraphs.reconcile('demo/chat');

    expect(api.takeWrites()).toEqual(['apply ConfigMap chat-router-config', 'status Supergraph chat']);
    const after = supergraph(api).status!.configHash;
    expect(after).not.toBe(before);
    expect(api.find(RESOURCES.ConfigMap, 'demo', 'chat-router-config')!.data['config.json']).toContain(
      'nickname',
    );
  });

  it('a broken SDL sets Composed=False with the error and leaves ConfigMap and Deployment alone', async () => {
    const { api, supergraphs } = setup();
    withChat(api);
    await supergraphs.reconcile('demo/chat');
    const configMap = structuredClone(api.find(RESOURCES.ConfigMap, 'demo', 'chat-router-config'));
    const hash = supergraph(api).status!.configHash;
    api.takeWrites();

    const users = api.find<Subgraph>(RESOURCES.Subgraph, 'demo', 'users')!;
    api.put({
      ...users,
      spec: { ...users.spec, schema: { sdl: 'type User @key(fields: "id") { id: ID! name: }' } },
    });
    await supergraphs.reconcile('demo/chat');

    expect(api.takeWrites()).toEqual(['status Supergraph chat']);
    expect(api.find(RESOURCES.ConfigMap, 'demo', 'chat-router-config')).toEqual(configMap);
    const sup = supergraph(api);
    expect(sup.status!.configHash).toBe(hash);
    expect(sup.status!.errors).toEqual([
      { subgraph: 'users', message: expect.stringContaining('schema syntax error at line 1') },
    ]);
    expect(condition(sup, 'Composed')).toMatchObject({ status: 'False', reason: 'CompositionFailed' });
    expect(api.events.at(-1)).toMatchObject({ type: 'Warning', reason: 'CompositionFailed' });
  });

  it('exports its conditions as edfs_supergraph_status_condition (every status, 1 for the current) and drops them once deleted', async () => {
    const metrics = createControllerMetrics({ processMetrics: false });
    const { api, supergraphs } = setup({ metrics });
    const series = async () =>
      (await metrics.supergraphCondition.get()).values
        .filter((v) => v.value === 1)
        .map(
          (v) =>
            `${v.labels.supergraph_namespace}/${v.labels.supergraph} ${v.labels.type}=${v.labels.status}`,
        )
        .sort();
    withChat(api);
    await supergraphs.reconcile('demo/chat');
    expect(await series()).toEqual([
      'demo/chat Composed=True',
      'demo/chat Progressing=True',
      'demo/chat Ready=False',
      'demo/chat Reconciling=True',
    ]);
    expect((await metrics.supergraphCondition.get()).values).toHaveLength(12);

    const users = api.find<Subgraph>(RESOURCES.Subgraph, 'demo', 'users')!;
    api.put({
      ...users,
      spec: { ...users.spec, schema: { sdl: 'type User @key(fields: "id") { id: ID! name: }' } },
    });
    await supergraphs.reconcile('demo/chat');
    expect(await series()).toContain('demo/chat Composed=False');

    api.remove(RESOURCES.Supergraph, 'demo', 'chat');
    await supergraphs.reconcile('demo/chat');
    expect((await metrics.supergraphCondition.get()).values).toEqual([]);
  });

  it('a spec.router.config the router would refuse sets InvalidRouterConfig naming the key, and keeps ConfigMap and Deployment', async () => {
    const { api, supergraphs } = setup();
    withChat(api);
    await supergraphs.reconcile('demo/chat');
    const configMap = structuredClone(api.find(RESOURCES.ConfigMap, 'demo', 'chat-router-config'));
    const deployment = structuredClone(api.find(RESOURCES.Deployment, 'demo', 'chat-router'));
    api.takeWrites();

    const sup = supergraph(api);
    api.put({
      ...sup,
      metadata: { ...sup.metadata, generation: 2 },
      spec: { ...sup.spec, router: { ...sup.spec.router, config: { websocket: { max_conections: 5 } } } },
    });
    await supergraphs.reconcile('demo/chat');

    expect(api.takeWrites()).toEqual(['status Supergraph chat']);
    expect(api.find(RESOURCES.ConfigMap, 'demo', 'chat-router-config')).toEqual(configMap);
    expect(api.find(RESOURCES.Deployment, 'demo', 'chat-router')).toEqual(deployment);
    const after = supergraph(api);
    expect(condition(after, 'Composed')).toMatchObject({ status: 'False', reason: 'InvalidRouterConfig' });
    expect(after.status!.errors).toEqual([
      {
        message: expect.stringContaining(
          'spec.router.config: websocket.max_conections: unknown key (did you mean "max_connections"?)',
        ),
      },
    ]);
    expect(api.events.at(-1)).toMatchObject({ type: 'Warning', reason: 'InvalidRouterConfig' });

    // Fixed: rolled out, Composed again.
    api.put({
      ...after,
      metadata: { ...after.metadata, generation: 3 },
      spec: {
        ...after.spec,
        router: { ...after.spec.router, config: { websocket: { max_connections: 5 } } },
      },
    });
    await supergraphs.reconcile('demo/chat');
    expect(condition(supergraph(api), 'Composed')).toMatchObject({ status: 'True' });
    expect(
      (api.find(RESOURCES.ConfigMap, 'demo', 'chat-router-config') as { data: Record<string, string> }).data[
        'router.yaml'
      ],
    ).toContain('max_connections: 5');
  });

  it('an EventProvider missing for a providerId the schema uses blocks the rollout and names both', async () => {
    const { api, supergraphs, indexes } = setup();
    for (const obj of chatManifests()) if (obj.kind !== 'EventProvider') api.put(obj);
    await supergraphs.reconcile('demo/chat');
    expect(api.takeWrites()).toEqual(['status Supergraph chat']);
    const sup = supergraph(api);
    expect(condition(sup, 'Composed')).toMatchObject({ status: 'False', reason: 'EventProviderNotFound' });
    expect(sup.status!.errors).toEqual([
      {
        subgraph: 'edfs',
        message: 'no EventProvider with providerId "default" in namespace "demo" (used by subgraph "edfs")',
      },
    ]);
    // Creating the provider must re-trigger this Supergraph.
    expect(indexes.supergraph.dependents(dep('ProviderId', 'demo', 'default'))).toEqual(['demo/chat']);
  });

  it('records what it read: its Subgraphs, the EventProvider and its Secrets', async () => {
    const { api, supergraphs, indexes } = setup();
    withChat(api);
    const ep = api.find<EventProvider>(RESOURCES.EventProvider, 'demo', 'default')!;
    api.put({
      ...ep,
      spec: {
        ...ep.spec,
        nats: { ...ep.spec.nats!, auth: { tokenSecretRef: { name: 'nats-auth', key: 'token' } } },
      },
    });
    await supergraphs.reconcile('demo/chat');
    expect(indexes.supergraph.dependenciesOf('demo/chat')).toEqual(
      [
        dep('EventProvider', 'demo', 'default'),
        dep('ProviderId', 'demo', 'default'),
        dep('Secret', 'demo', 'nats-auth'),
        dep('Subgraph', 'demo', 'edfs'),
        dep('Subgraph', 'demo', 'messages'),
        dep('Subgraph', 'demo', 'users'),
      ].sort(),
    );
    // The token reaches pods as an env var from the Secret, never as a value in the ConfigMap.
    expect(api.find(RESOURCES.ConfigMap, 'demo', 'chat-router-config')!.data['router.yaml']).toContain(
      '${EDFS_PROVIDER_DEFAULT_TOKEN}',
    );
  });

  it('reads an SDL from a ConfigMap and reports a missing one by name', async () => {
    const { api, supergraphs, indexes } = setup();
    withChat(api);
    const users = api.find<Subgraph>(RESOURCES.Subgraph, 'demo', 'users')!;
    const sdl = users.spec.schema.sdl!;
    api.put({
      ...users,
      spec: { ...users.spec, schema: { configMapRef: { name: 'users-schema', key: 'schema.graphql' } } },
    });
    await supergraphs.reconcile('demo/chat');
    expect(supergraph(api).status!.errors).toEqual([
      {
        subgraph: 'users',
        message:
          'ConfigMap "users-schema" (namespace "demo") referenced by spec.schema.configMapRef not found',
      },
    ]);
    expect(indexes.supergraph.dependents(dep('ConfigMap', 'demo', 'users-schema'))).toEqual(['demo/chat']);

    api.put({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'users-schema', namespace: 'demo' },
      data: { 'schema.graphql': sdl },
    } as AnyObject);
    await supergraphs.reconcile('demo/chat');
    expect(condition(supergraph(api), 'Composed')).toMatchObject({ status: 'True' });
    expect(supergraph(api).status!.errors).toBeUndefined();
  });

  it('deletes the Ingress once the spec no longer asks for one', async () => {
    const { api, supergraphs } = setup();
    withChat(api);
    const sup = supergraph(api);
    api.put({ ...sup, spec: { ...sup.spec, ingress: { host: 'chat.example.com' } } });
    await supergraphs.reconcile('demo/chat');
    expect(api.takeWrites()).toContain('apply Ingress chat-router');

    const { ingress: _, ...withoutIngress } = sup.spec;
    api.put({ ...supergraph(api), spec: withoutIngress });
    await supergraphs.reconcile('demo/chat');
    expect(api.takeWrites()).toContain('delete Ingress chat-router');
    expect(api.find(RESOURCES.Ingress, 'demo', 'chat-router')).toBeUndefined();
    expect(api.events.at(-1)).toMatchObject({
      reason: 'Deleted',
      message: expect.stringContaining('Ingress "chat-router"'),
    });
  });

  it('never touches an object another controller owns, and says so in Ready', async () => {
    const { api, supergraphs } = setup();
    withChat(api);
    api.put({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name: 'chat-router',
        namespace: 'demo',
        ownerReferences: [
          { apiVersion: 'apps/v1', kind: 'Deployment', name: 'someone-else', uid: 'x', controller: true },
        ],
      },
      spec: { ports: [{ port: 80 }] },
    } as AnyObject);
    await expect(supergraphs.reconcile('demo/chat')).rejects.toThrow(
      /Service "chat-router" already exists and is controlled by Deployment "someone-else"/,
    );
    expect(api.writes).not.toContain('apply Service chat-router');
    expect(condition(supergraph(api), 'Ready')).toMatchObject({ status: 'False', reason: 'ApplyFailed' });
  });

  it('an invalid selector is a Composed=False error, not a crash', async () => {
    const { api, supergraphs } = setup();
    withChat(api);
    const sup = supergraph(api);
    api.put({
      ...sup,
      spec: {
        ...sup.spec,
        subgraphSelector: { matchExpressions: [{ key: 'graph', operator: 'In', values: [] }] },
      },
    });
    await supergraphs.reconcile('demo/chat');
    expect(condition(supergraph(api), 'Composed')).toMatchObject({
      status: 'False',
      reason: 'InvalidSelector',
      message: expect.stringContaining(
        'spec.subgraphSelector.matchExpressions[0] (key "graph"): operator In needs at least one value',
      ),
    });
  });

  it('a new value of a referenced Secret key rolls the Deployment; another key or no change writes nothing', async () => {
    const { api, supergraphs } = setup();
    withChat(api);
    const ep = api.find<EventProvider>(RESOURCES.EventProvider, 'demo', 'default')!;
    api.put({
      ...ep,
      spec: {
        ...ep.spec,
        nats: { ...ep.spec.nats!, auth: { tokenSecretRef: { name: 'nats-auth', key: 'token' } } },
      },
    });
    const putSecret = (data: Record<string, string>) =>
      api.put({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'nats-auth', namespace: 'demo' },
        data: Object.fromEntries(
          Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
        ),
      } as AnyObject);
    const annotation = () =>
      api.find(RESOURCES.Deployment, 'demo', 'chat-router')!.spec.template.metadata.annotations[
        'edfs.io/secrets-hash'
      ];
    putSecret({ token: 's3cr3t-one', other: 'x' });
    await supergraphs.reconcile('demo/chat');
    const first = annotation();
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    api.takeWrites();

    await supergraphs.reconcile('demo/chat');
    putSecret({ token: 's3cr3t-one', other: 'y' });
    await supergraphs.reconcile('demo/chat');
    expect(api.takeWrites()).toEqual([]);
    expect(annotation()).toBe(first);

    putSecret({ token: 's3cr3t-two', other: 'y' });
    await supergraphs.reconcile('demo/chat');
    expect(api.takeWrites().filter((w) => w.startsWith('apply'))).toEqual(['apply Deployment chat-router']);
    expect(annotation()).not.toBe(first);

    // No value (nor its base64 form) in any object the operator wrote, its status or its Events.
    const written = JSON.stringify([
      [...api.objects.values()].filter((o) => o.kind !== 'Secret'),
      api.events,
    ]);
    for (const value of ['s3cr3t', Buffer.from('s3cr3t-two').toString('base64')]) {
      expect(written).not.toContain(value);
    }
  });

  it('hands spec.replicas to the autoscaler: the live count is applied under a second manager first', async () => {
    const { api, supergraphs } = setup();
    withChat(api);
    await supergraphs.reconcile('demo/chat');
    const deployment = api.find(RESOURCES.Deployment, 'demo', 'chat-router')!;
    expect(deployment.spec.replicas).toBe(2);
    // What the API server records for the operator's earlier apply.
    deployment.metadata.managedFields = [
      {
        manager: 'edfs-operator',
        operation: 'Apply',
        fieldsType: 'FieldsV1',
        fieldsV1: { 'f:spec': { 'f:replicas': {}, 'f:template': {} } },
      },
    ];
    const applies: { kind: string; manager: string; force: boolean; spec: Record<string, unknown> }[] = [];
    const apply = api.client.apply;
    api.client.apply = (type, obj, opts) => {
      const spec = (obj as Obj).spec ?? {};
      applies.push({ kind: type.kind, manager: opts.fieldManager, force: Boolean(opts.force), spec });
      return apply(type, obj, opts);
    };
    const sup = supergraph(api);
    api.put({
      ...sup,
      spec: { ...sup.spec, autoscaling: { minReplicas: 2, maxReplicas: 6, targetConnectionsPerPod: 500 } },
    });
    await supergraphs.reconcile('demo/chat');

    expect(applies.map((a) => `${a.kind} ${a.manager}`)).toEqual([
      'Deployment edfs-operator-handover',
      'Deployment edfs-operator',
      'HorizontalPodAutoscaler edfs-operator',
    ]);
    expect(applies[0]).toMatchObject({ force: false, spec: { replicas: 2 } });
    expect(Object.keys(applies[0]!.spec)).toEqual(['replicas']);
    expect(applies[1]!.spec).not.toHaveProperty('replicas');
  });

  it('never writes spec, and does nothing for a Supergraph that is gone', async () => {
    const { api, supergraphs } = setup();
    withChat(api);
    const spec = structuredClone(supergraph(api).spec);
    await supergraphs.reconcile('demo/chat');
    expect(supergraph(api).spec).toEqual(spec);
    api.takeWrites();
    await supergraphs.reconcile('demo/absent');
    expect(api.takeWrites()).toEqual([]);
  });
});
