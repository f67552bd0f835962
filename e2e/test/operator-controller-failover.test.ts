/**
 * The operator losing its process or its Lease, against a real kube-apiserver + etcd, running as
 * its own ServiceAccount with exactly the RBAC the Helm chart renders
 * (fixtures/operator-controller.ts).
 *
 * Shown here: an operator killed mid-way (SIGKILL of a real `edfs operator` process) is replaced
 * and the result converges to what an uninterrupted operator made, without churn; SIGTERM releases
 * the Lease and exits 0; two replicas never reconcile at the same time, a replica whose Lease is
 * taken stops at once, and a graceful stop hands over within about one retry period.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  composeSupergraph,
  loadComposeInputs,
  renderDesired,
  type ReconcileRecord,
  type RunningOperator,
} from '@edfs/operator';
import {
  CHAT,
  LEASE,
  OPERATOR_NS,
  START_TIMEOUT_MS,
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

describe('the operator with exactly the chart RBAC', () => {
  let operator: RunningOperator;
  /** `Kind/name` of every object an operator that was never interrupted made for examples/chat. */
  let uninterrupted: string[];

  beforeAll(async () => {
    operator = await kube.launch();
    await kube.applyChat('demo');
    const sup = await waitFor(async () => {
      const s = await kube.get('Supergraph', 'demo', 'chat');
      return condition(s, 'Composed')?.status === 'True' ? s : undefined;
    }, 'demo Composed=True');
    uninterrupted = (await kube.owned('demo', sup.metadata.uid))
      .map((o) => `${o.kind}/${o.metadata.name}`)
      .sort();
  }, 30_000);

  it('SIGKILL mid-way, a new operator process converges to the same objects, then writes nothing; SIGTERM releases the Lease', async () => {
    await operator.stop(); // releases the Lease: the processes below need not wait for it

    const first = kube.spawnOperator('operator-1');
    await waitFor(
      async () =>
        (await kube.get('Lease', OPERATOR_NS, 'edfs-operator'))?.spec.holderIdentity?.startsWith(
          'operator-1_',
        ),
      'operator-1 leads',
    );
    await kube.applyChat('restart');
    // Kill it as soon as it has written its first object, before it could finish.
    const deadline = Date.now() + 15_000;
    while (!(await kube.get('ConfigMap', 'restart', 'chat-router-config'))) {
      if (Date.now() > deadline) throw new Error(`operator-1 wrote nothing:\n${first.log()}`);
    }
    first.child.kill('SIGKILL');
    expect(await first.exited).toBeNull();

    const second = kube.spawnOperator('operator-2');
    const converged = await waitFor(
      async () => {
        const s = await kube.get('Supergraph', 'restart', 'chat');
        return condition(s, 'Composed')?.status === 'True' && s?.status?.configHash ? s : undefined;
      },
      'convergence after the restart',
      20_000,
    );
    expect((await kube.must('Lease', OPERATOR_NS, 'edfs-operator')).spec.holderIdentity).toMatch(
      /^operator-2_/,
    );

    // The objects are exactly the desired state of these inputs (the pure renderer's output), and
    // the same set as in namespace demo, where nothing was interrupted.
    const composed = composeSupergraph(loadComposeInputs([CHAT]));
    if (!composed.ok) throw new Error('examples/chat does not compose');
    const desired = renderDesired({
      supergraph: converged as never,
      configJson: composed.configJson,
      configHash: sha256(composed.configJson),
      providers: [await kube.must('EventProvider', 'restart', 'default')] as never,
      capabilities: { serviceMonitor: false, keda: false },
      defaults: { routerImage: 'ghcr.io/edfs/edfs-router:0.1.0' },
    });
    expect(desired.objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(uninterrupted);
    for (const want of desired.objects) {
      const live = await kube.must(want.kind, 'restart', want.metadata.name);
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
          names.map(async ([k, n]) => [
            `${k}/${n}`,
            (await kube.must(k, 'restart', n)).metadata.resourceVersion,
          ]),
        ),
      );
    };
    await sleep(1_500);
    const settled = await snapshot();
    const metricsUrl = await second.metricsUrl;
    const reconcilesBefore = await operatorMetric(metricsUrl, 'controller_runtime_reconcile_total', {
      controller: 'supergraph',
    });
    await sleep(3_500);
    expect(await snapshot()).toEqual(settled);
    // Resyncs did run meanwhile (one a second): they found nothing to do.
    expect(
      await operatorMetric(metricsUrl, 'controller_runtime_reconcile_total', { controller: 'supergraph' }),
    ).toBeGreaterThanOrEqual(reconcilesBefore + 2);
    expect(await operatorMetric(metricsUrl, 'controller_runtime_reconcile_errors_total')).toBe(0);

    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect((await kube.must('Lease', OPERATOR_NS, 'edfs-operator')).spec.holderIdentity).toBe('');
    expect(second.log()).toContain('released Lease');
  }, 60_000);

  it('two replicas with leader election never reconcile at the same time', async () => {
    kube.killOperatorProcesses();
    const logs: Record<string, ReconcileRecord[]> = { b: [], c: [] };
    const b = await kube.launch({
      leaderElection: { identity: 'replica-b' },
      onReconcile: (r) => logs.b!.push(r),
    });
    const c = await kube.launch({
      leaderElection: { identity: 'replica-c' },
      onReconcile: (r) => logs.c!.push(r),
    });
    const leaderOf = async () => {
      const [lb, lc] = await Promise.all(
        [b, c].map((o) => operatorMetric(o.metricsUrl, 'leader_election_master_status').catch(() => -1)), // -1: stopped
      );
      return lb === 1 && lc !== 1 ? 'b' : lc === 1 && lb !== 1 ? 'c' : undefined;
    };
    const first = await waitFor(leaderOf, 'one leader');
    const [leader, standby] = first === 'b' ? [b, c] : [c, b];
    const standbyName = first === 'b' ? 'c' : 'b';

    // Both are ready: the standby has warm caches and is campaigning.
    for (const o of [b, c]) expect((await fetch(`${o.healthUrl}/readyz`)).status).toBe(200);

    // Work arrives: only the leader reconciles.
    await kube.setSdl(
      'demo',
      'messages',
      sdlOf('demo', 'messages').replace('roomID: ID!\n', 'roomID: ID!\n  edited: Boolean\n'),
    );
    await waitFor(
      async () =>
        (await kube.get('ConfigMap', 'demo', 'chat-router-config'))?.data['config.json'].includes('edited'),
      'leader applied the edit',
    );
    expect(await operatorMetric(leader.metricsUrl, 'controller_runtime_reconcile_total')).toBeGreaterThan(0);
    expect(await operatorMetric(standby.metricsUrl, 'controller_runtime_reconcile_total')).toBe(0);
    expect(logs[standbyName]).toEqual([]);

    // Someone else takes the Lease (as a replica with a newer view would): the leader stops at once.
    let stolenAt = 0;
    await waitFor(async () => {
      const lease = await kube.must('Lease', OPERATOR_NS, 'edfs-operator');
      const now = new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
      stolenAt = Date.now();
      const res = await kube.api('PUT', pathOf('Lease', OPERATOR_NS, 'edfs-operator'), {
        ...lease,
        spec: { ...lease.spec, holderIdentity: 'intruder', renewTime: now, acquireTime: now },
      });
      return res.status === 200; // 409 when the leader renewed in between: read again
    }, 'taking the Lease');
    await waitFor(
      async () => (await operatorMetric(leader.metricsUrl, 'leader_election_master_status')) === 0,
      'the leader steps down',
      5_000,
    );
    const stepDownMs = Date.now() - stolenAt;
    // The intruder never renews: after the lease duration one replica takes over again.
    const second = await waitFor(leaderOf, 'a leader after the intruder', 15_000);
    const current = second === 'b' ? b : c;
    await kube.setSdl('demo', 'messages', sdlOf('demo', 'messages'));
    await waitFor(
      async () =>
        !(await kube.get('ConfigMap', 'demo', 'chat-router-config'))?.data['config.json'].includes('edited'),
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
});
