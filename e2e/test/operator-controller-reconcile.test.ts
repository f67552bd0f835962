/**
 * What the operator writes, against a real kube-apiserver + etcd, running as its own
 * ServiceAccount with exactly the RBAC the Helm chart renders (fixtures/operator-controller.ts).
 *
 * Shown here: examples/chat turns into the router objects with the right content and owner
 * references and honest status; `kubectl get sup` columns; an SDL edit reaches the ConfigMap and
 * configHash within seconds; a broken SDL is reported and the ConfigMap stays byte for byte; a
 * missing Secret key is named on the EventProvider; in single-namespace mode, with the chart's RBAC
 * for that mode, only that namespace is reconciled. The cases run in order on namespace `demo`,
 * each starting from what the one before left.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parse as parseYaml } from 'yaml';
import { composeSupergraph, loadComposeInputs, type RunningOperator } from '@edfs/operator';
import {
  CHAT,
  OPERATOR_NS,
  OPERATOR_SA,
  START_TIMEOUT_MS,
  chatManifests,
  condition,
  operatorMetric,
  pathOf,
  sdlOf,
  sha256,
  sleep,
  startOperatorCluster,
  type OperatorCluster,
} from '../src/fixtures/operator-controller.js';
import { waitFor } from '../src/fixtures/wait.js';

let kube: OperatorCluster;

beforeAll(async () => {
  kube = await startOperatorCluster();
}, START_TIMEOUT_MS);

afterAll(async () => {
  await kube?.stop();
}, 60_000);

describe('the operator with exactly the chart RBAC', () => {
  let operator: RunningOperator;

  it('runs as its ServiceAccount, holds only what the chart grants, becomes ready and takes the Lease', async () => {
    expect(kube.rbacKinds.sort()).toEqual([
      'ClusterRole',
      'ClusterRoleBinding',
      'Role',
      'RoleBinding',
      'ServiceAccount',
    ]);
    const review = await kube.api(
      'POST',
      '/apis/authentication.k8s.io/v1/selfsubjectreviews',
      {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'SelfSubjectReview',
      },
      { bearer: kube.token },
    );
    expect(review.body.status.userInfo.username).toBe(`system:serviceaccount:${OPERATOR_NS}:${OPERATOR_SA}`);
    // Not an admin: the chart grants nothing on Pods, and Secrets are read-only.
    expect((await kube.api('GET', pathOf('Pod', 'default'), undefined, { bearer: kube.token })).status).toBe(
      403,
    );
    expect(
      (
        await kube.api(
          'POST',
          pathOf('Secret', 'default'),
          { metadata: { name: 'x' } },
          { bearer: kube.token },
        )
      ).status,
    ).toBe(403);

    operator = await kube.launch();
    const ready = await waitFor(async () => {
      const res = await fetch(`${operator.healthUrl}/readyz`);
      return res.status === 200 ? res.text() : undefined;
    }, '/readyz');
    expect(ready).toContain('readyz check passed');
    expect((await fetch(`${operator.healthUrl}/healthz`)).status).toBe(200);
    await waitFor(
      async () => (await operatorMetric(operator.metricsUrl, 'leader_election_master_status')) === 1,
      'leading',
    );
    const lease = await kube.must('Lease', OPERATOR_NS, 'edfs-operator');
    expect(lease.spec.holderIdentity).toBe(operator.identity);
  }, 30_000);

  it('turns examples/chat into the router objects, owned by the Supergraph, with Composed=True', async () => {
    const started = Date.now();
    await kube.applyChat('demo');
    const sup = await waitFor(async () => {
      const s = await kube.get('Supergraph', 'demo', 'chat');
      return condition(s, 'Composed')?.status === 'True' ? s : undefined;
    }, 'Composed=True');
    const composedMs = Date.now() - started;

    // The ConfigMap holds exactly what `edfs compose` makes of the same manifests.
    const configMap = await kube.must('ConfigMap', 'demo', 'chat-router-config');
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

    const deployment = await kube.must('Deployment', 'demo', 'chat-router');
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
    const service = await kube.must('Service', 'demo', 'chat-router');
    expect(service.spec.ports.map((p: { name: string; port: number }) => [p.name, p.port])).toEqual([
      ['http', 3002],
      ['metrics', 8088],
    ]);
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels);
    const pdb = await kube.must('PodDisruptionBudget', 'demo', 'chat-router');
    const ingress = await kube.must('Ingress', 'demo', 'chat-router');
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
        ['edfs', 'messages', 'users'].map((n) => kube.get('Subgraph', 'demo', n)),
      );
      return subgraphs.every(
        (s) =>
          s !== undefined &&
          condition(s, 'Valid')?.status === 'True' &&
          s.status?.schemaHash === sha256(sdlOf('demo', s.metadata.name)),
      );
    }, 'Subgraphs Valid');
    await waitFor(
      async () => condition(await kube.get('EventProvider', 'demo', 'default'), 'Ready')?.status === 'True',
      'EventProvider Ready',
    );
    expect((await kube.eventRecorded('demo', 'Supergraph/chat Composed'))[0]).toMatchObject({
      type: 'Normal',
      source: { component: 'edfs-operator' },
      message: expect.stringContaining('composed 3 subgraph(s)'),
    });
    expect(await operatorMetric(operator.metricsUrl, 'controller_runtime_reconcile_errors_total')).toBe(0);
    expect(composedMs).toBeLessThan(10_000);
  }, 30_000);

  it('shows Ready, Composed, Replicas and Age as `kubectl get sup` does (Table)', async () => {
    const res = await kube.api('GET', pathOf('Supergraph', 'demo'), undefined, {
      accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
    });
    expect(res.body.kind).toBe('Table');
    const columns = res.body.columnDefinitions.map(
      (c: { name: string; priority: number }) => `${c.name}${c.priority ? '*' : ''}`,
    );
    expect(columns).toEqual(['Name', 'Ready', 'Composed', 'Replicas', 'Ready Replicas*', 'Config*', 'Age']);
    const sup = await kube.must('Supergraph', 'demo', 'chat');
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
    const deployment = await kube.must('Deployment', 'demo', 'chat-router');
    const sdl = sdlOf('demo', 'users').replace('email: String!', 'email: String!\n  nickname: String');
    const started = Date.now();
    await kube.setSdl('demo', 'users', sdl);
    const configMap = await waitFor(async () => {
      const cm = await kube.get('ConfigMap', 'demo', 'chat-router-config');
      return cm?.data['config.json'].includes('nickname') ? cm : undefined;
    }, 'the new field in the ConfigMap');
    await waitFor(
      async () =>
        (await kube.get('Supergraph', 'demo', 'chat'))?.status?.configHash ===
        sha256(configMap.data['config.json']),
      'configHash of the new config',
    );
    const elapsed = Date.now() - started;
    expect(elapsed).toBeLessThan(5_000);
    expect((await kube.must('Deployment', 'demo', 'chat-router')).metadata.resourceVersion).toBe(
      deployment.metadata.resourceVersion,
    );
    await waitFor(
      async () => (await kube.get('Subgraph', 'demo', 'users'))?.status?.schemaHash === sha256(sdl),
      'Subgraph schemaHash',
    );
  }, 20_000);

  it('a broken SDL gives Composed=False with the error and leaves the ConfigMap byte-identical', async () => {
    const before = await kube.must('ConfigMap', 'demo', 'chat-router-config');
    const deployment = await kube.must('Deployment', 'demo', 'chat-router');
    const hash = (await kube.must('Supergraph', 'demo', 'chat')).status.configHash;
    await kube.setSdl('demo', 'users', 'type User @key(fields: "id") {\n  id: ID!\n  name:\n}');

    const sup = await waitFor(async () => {
      const s = await kube.get('Supergraph', 'demo', 'chat');
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
      const s = await kube.get('Subgraph', 'demo', 'users');
      return condition(s, 'Valid')?.status === 'False' ? s : undefined;
    }, 'Subgraph Valid=False');
    expect(condition(sg, 'Valid')).toMatchObject({
      reason: 'InvalidSchema',
      message: expect.stringContaining('line 4, column 1'),
    });

    await sleep(1_500); // every event of the change has been handled by now
    const after = await kube.must('ConfigMap', 'demo', 'chat-router-config');
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    expect(after.data).toEqual(before.data);
    expect((await kube.must('Deployment', 'demo', 'chat-router')).metadata.resourceVersion).toBe(
      deployment.metadata.resourceVersion,
    );
    const failures = await kube.eventRecorded('demo', 'Supergraph/chat CompositionFailed');
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({
      type: 'Warning',
      message: expect.stringContaining('subgraph "users"'),
    });

    // Fixed again: composes to the config it had before the break.
    await kube.setSdl(
      'demo',
      'users',
      sdlOf('demo', 'users').replace('email: String!', 'email: String!\n  nickname: String'),
    );
    await waitFor(async () => {
      const s = await kube.get('Supergraph', 'demo', 'chat');
      return (
        s !== undefined &&
        condition(s, 'Composed')?.status === 'True' &&
        s.status?.configHash === hash &&
        !s.status.errors
      );
    }, 'Composed=True again');
  }, 30_000);

  it('a missing Secret key is reported on the EventProvider, and clears when the key appears', async () => {
    await kube.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'nats-auth', namespace: 'demo' },
      stringData: { tokn: 's3cr3t-value' },
    });
    const ep = chatManifests('demo').find((o) => o.kind === 'EventProvider')!;
    await kube.apply({
      ...ep,
      spec: {
        ...ep.spec,
        nats: { ...ep.spec.nats, auth: { tokenSecretRef: { name: 'nats-auth', key: 'token' } } },
      },
    });

    const provider = await waitFor(async () => {
      const p = await kube.get('EventProvider', 'demo', 'default');
      return condition(p, 'Ready')?.status === 'False' ? p : undefined;
    }, 'EventProvider Ready=False');
    expect(condition(provider, 'Ready')).toMatchObject({
      reason: 'SecretKeyNotFound',
      message: 'Secret "nats-auth" has no key "token" (spec.nats.auth.tokenSecretRef)',
      observedGeneration: 2,
    });
    expect((await kube.eventRecorded('demo', 'EventProvider/default SecretKeyNotFound'))[0]?.type).toBe(
      'Warning',
    );

    // The credential reaches routers as an env var from the Secret, never in the ConfigMap.
    const configMap = await waitFor(async () => {
      const cm = await kube.get('ConfigMap', 'demo', 'chat-router-config');
      return cm?.data['router.yaml'].includes('EDFS_PROVIDER_DEFAULT_TOKEN') ? cm : undefined;
    }, 'router.yaml with the token reference');
    expect(JSON.stringify(configMap.data)).not.toContain('s3cr3t');
    // The Deployment is applied after the ConfigMap in the same pass: wait for it too.
    const tokenEnv = {
      name: 'EDFS_PROVIDER_DEFAULT_TOKEN',
      valueFrom: { secretKeyRef: { name: 'nats-auth', key: 'token' } },
    };
    const container = await waitFor(async () => {
      const c = (await kube.must('Deployment', 'demo', 'chat-router')).spec.template.spec.containers[0];
      return c.env?.some((e: { name: string }) => e.name === tokenEnv.name) ? c : undefined;
    }, 'Deployment with the token env var');
    expect(container.env).toContainEqual(tokenEnv);
    expect(JSON.stringify((await kube.must('Supergraph', 'demo', 'chat')).status)).not.toContain('s3cr3t');

    // Adding the key is a Secret change, which re-queues the EventProvider that references it.
    await kube.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'nats-auth', namespace: 'demo' },
      stringData: { token: 's3cr3t-value' },
    });
    await waitFor(
      async () => condition(await kube.get('EventProvider', 'demo', 'default'), 'Ready')?.status === 'True',
      'Ready=True',
      5_000,
    );
  }, 30_000);

  it('in single-namespace mode, with the chart RBAC for that mode, it reconciles that namespace only', async () => {
    await kube.stopOperators(); // the cluster-wide operator above
    for (const name of ['edfs-scoped', 'team-a', 'team-b']) {
      await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    }
    const kinds = (await kube.applyChartRbac('scoped', 'edfs-scoped', ['watchNamespace=team-a'])).map(
      (obj) => `${obj.kind}${obj.metadata.namespace ? `@${obj.metadata.namespace}` : ''}`,
    );
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
    const scopedToken = await kube.cp.tokenFor('edfs-scoped', 'scoped-edfs-operator');
    await waitFor(
      async () =>
        (await kube.api('GET', pathOf('Supergraph', 'team-a'), undefined, { bearer: scopedToken })).status ===
        200,
      'RBAC in team-a',
    );
    expect(
      (await kube.api('GET', pathOf('Supergraph', 'team-b'), undefined, { bearer: scopedToken })).status,
    ).toBe(403);

    const scoped = await kube.launch({
      kubeConfig: kube.cp.kubeConfig(scopedToken),
      namespace: 'team-a',
      leaderElection: { namespace: 'edfs-scoped' },
    });
    await kube.applyChat('team-a');
    await kube.applyChat('team-b');
    await waitFor(
      async () => condition(await kube.get('Supergraph', 'team-a', 'chat'), 'Composed')?.status === 'True',
      'team-a composed',
    );
    expect((await fetch(`${scoped.healthUrl}/readyz`)).status).toBe(200);
    expect(await operatorMetric(scoped.metricsUrl, 'controller_runtime_reconcile_errors_total')).toBe(0);
    await sleep(1_000);
    expect((await kube.must('Supergraph', 'team-b', 'chat')).status).toBeUndefined();
    expect(await kube.get('ConfigMap', 'team-b', 'chat-router-config')).toBeUndefined();
    expect((await kube.must('Lease', 'edfs-scoped', 'edfs-operator')).spec.holderIdentity).toBe(
      scoped.identity,
    );
  }, 30_000);
});
