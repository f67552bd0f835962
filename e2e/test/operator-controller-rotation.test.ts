/**
 * What the operator does to running routers when their inputs change, against a real
 * kube-apiserver + etcd, running as its own ServiceAccount with exactly the RBAC the Helm chart
 * renders (fixtures/operator-controller.ts).
 *
 * Shown here: a rotated credential rolls the routers (an unrelated key of the same Secret does
 * not, and no value is ever written); switching to an HPA keeps the live replica count.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type ReconcileRecord, type RunningOperator } from '@edfs/operator';
import {
  START_TIMEOUT_MS,
  chatManifests,
  operatorMetric,
  pathOf,
  sleep,
  startOperatorCluster,
  type Obj,
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
    operator = await kube.launch({ onReconcile: (r) => reconciles.push(r) });
    await waitFor(
      async () => (await operatorMetric(operator.metricsUrl, 'leader_election_master_status')) === 1,
      'leading',
      20_000,
    );
  }, 30_000);

  it('a new value of the referenced Secret key rolls the pod template; another key of that Secret changes nothing', async () => {
    const ns = 'rotation';
    await kube.applyChat(ns);
    const secret = (token: string, other: string) =>
      kube.apply({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'nats-auth', namespace: ns },
        data: { token: b64(token), other: b64(other) },
      });
    await secret('r0tate-first', 'unrelated-1');
    const ep = chatManifests(ns).find((o) => o.kind === 'EventProvider')!;
    await kube.apply({
      ...ep,
      spec: {
        ...ep.spec,
        nats: { ...ep.spec.nats, auth: { tokenSecretRef: { name: 'nats-auth', key: 'token' } } },
      },
    });
    const before = await waitFor(async () => {
      const d = await kube.get('Deployment', ns, 'chat-router');
      return d?.spec.template.metadata.annotations?.[SECRETS_HASH] ? d : undefined;
    }, 'the Deployment with the secrets hash');
    const hash = before.spec.template.metadata.annotations[SECRETS_HASH];
    expect(hash).toMatch(/^[0-9a-f]{64}$/);

    // Another key of the same Secret: the Supergraph is reconciled, and writes nothing.
    let since = Date.now();
    await secret('r0tate-first', 'unrelated-2');
    await reconciledSince(`${ns}/chat`, since);
    await sleep(1_000); // any write would be in by now
    const unchanged = await kube.must('Deployment', ns, 'chat-router');
    expect(unchanged.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    expect(unchanged.metadata.generation).toBe(before.metadata.generation);

    // The referenced key: the pod template changes (a rollout), within seconds of the Secret.
    since = Date.now();
    await secret('r0tate-second', 'unrelated-2');
    const after = await waitFor(async () => {
      const d = await kube.get('Deployment', ns, 'chat-router');
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
      await kube.must('ConfigMap', ns, 'chat-router-config'),
      (await kube.must('Supergraph', ns, 'chat')).status,
      (await kube.must('EventProvider', ns, 'default')).status,
      (await kube.api('GET', pathOf('Event', ns))).body.items,
    ]);
    for (const value of ['r0tate', b64('r0tate-first'), b64('r0tate-second')]) {
      expect(written).not.toContain(value);
    }
    expect(await operatorMetric(operator.metricsUrl, 'controller_runtime_reconcile_errors_total')).toBe(0);
  }, 30_000);

  it('switching from 3 fixed replicas to an HPA keeps spec.replicas at 3 (ownership handed over, never reset)', async () => {
    const ns = 'handover';
    await kube.applyChat(ns);
    const sup = chatManifests(ns).find((o) => o.kind === 'Supergraph')!;
    await kube.apply({ ...sup, spec: { ...sup.spec, router: { ...sup.spec.router, replicas: 3 } } });
    const fixed = await waitFor(async () => {
      const d = await kube.get('Deployment', ns, 'chat-router');
      return d?.spec.replicas === 3 ? d : undefined;
    }, 'the Deployment at 3 replicas');
    expect(replicasOwners(fixed)).toEqual(['edfs-operator/Apply']);

    await kube.apply({
      ...sup,
      spec: {
        ...sup.spec,
        router: { ...sup.spec.router, replicas: 3 },
        autoscaling: { minReplicas: 2, maxReplicas: 5, targetConnectionsPerPod: 1000 },
      },
    });
    const hpa = await waitFor(() => kube.get('HorizontalPodAutoscaler', ns, 'chat-router'), 'the HPA');
    expect(hpa.spec).toMatchObject({
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'chat-router' },
      minReplicas: 2,
      maxReplicas: 5,
    });
    const handedOver = await waitFor(async () => {
      const d = await kube.must('Deployment', ns, 'chat-router');
      return replicasOwners(d).includes('edfs-operator/Apply') ? undefined : d;
    }, 'the operator no longer applying spec.replicas');
    expect(handedOver.spec.replicas).toBe(3);
    expect(replicasOwners(handedOver)).toEqual(['edfs-operator-handover/Apply']);
    // Exactly one change of the Deployment (its applied-hash annotation, which bumps a
    // Deployment's generation): a reset to 1 and back would have taken more.
    expect(handedOver.metadata.generation).toBe(fixed.metadata.generation + 1);

    // Settled: further reconciles leave it as it is.
    const since = Date.now();
    const owner = (await kube.must('Supergraph', ns, 'chat')).metadata;
    await kube.apply({
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
    const settled = await kube.must('Deployment', ns, 'chat-router');
    expect(settled.metadata.resourceVersion).toBe(handedOver.metadata.resourceVersion);
    expect(settled.spec.replicas).toBe(3);
    expect(await operatorMetric(operator.metricsUrl, 'controller_runtime_reconcile_errors_total')).toBe(0);
  }, 30_000);
});
