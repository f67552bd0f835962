/**
 * The pure parts of reconciling: the dependency index, metav1.Condition bookkeeping, the
 * Supergraph status rules (Composed / Ready / Progressing), the Events a status change deserves,
 * status patches, and when a child needs applying.
 */
import { describe, expect, it } from '@jest/globals';
import type { Condition, Supergraph } from '../../src/api/v1alpha1.js';
import { contains, isUpToDate, withAppliedHash } from '../../src/reconcile/apply.js';
import { metaTime, sameStatus, setConditions, statusPatch } from '../../src/reconcile/conditions.js';
import { dep, DependencyIndex } from '../../src/reconcile/dependency-index.js';
import {
  statusEvents,
  supergraphStatus,
  type DeploymentView,
  type SupergraphObservation,
} from '../../src/reconcile/supergraph-status.js';

describe('DependencyIndex', () => {
  it('finds every owner that used a dependency', () => {
    const index = new DependencyIndex();
    index.set('demo/chat', [dep('Subgraph', 'demo', 'users'), dep('Secret', 'demo', 'nats')]);
    index.set('demo/jobs', [dep('Secret', 'demo', 'nats')]);
    expect(index.dependents(dep('Secret', 'demo', 'nats'))).toEqual(['demo/chat', 'demo/jobs']);
    expect(index.dependents(dep('Subgraph', 'demo', 'users'))).toEqual(['demo/chat']);
    expect(index.dependents(dep('Subgraph', 'other', 'users'))).toEqual([]);
  });

  it('a new set replaces the old one: dropped dependencies stop triggering', () => {
    const index = new DependencyIndex();
    index.set('demo/chat', [dep('ConfigMap', 'demo', 'sdl-v1')]);
    index.set('demo/chat', [dep('ConfigMap', 'demo', 'sdl-v2')]);
    expect(index.dependents(dep('ConfigMap', 'demo', 'sdl-v1'))).toEqual([]);
    expect(index.dependents(dep('ConfigMap', 'demo', 'sdl-v2'))).toEqual(['demo/chat']);
    expect(index.size()).toBe(1);
  });

  it('remembers dependencies that do not exist yet (a providerId nobody provides)', () => {
    const index = new DependencyIndex();
    index.set('demo/chat', [dep('ProviderId', 'demo', 'default')]);
    expect(
      index.dependents(dep('EventProvider', 'demo', 'default'), dep('ProviderId', 'demo', 'default')),
    ).toEqual(['demo/chat']);
  });

  it('forgets a deleted owner entirely', () => {
    const index = new DependencyIndex();
    index.set('demo/chat', [dep('Subgraph', 'demo', 'a'), dep('Subgraph', 'demo', 'b')]);
    index.remove('demo/chat');
    expect(index.size()).toBe(0);
    expect(index.dependenciesOf('demo/chat')).toEqual([]);
  });
});

describe('conditions', () => {
  const t0 = '2026-01-01T00:00:00Z';
  const t1 = '2026-01-01T00:05:00Z';

  it('keeps lastTransitionTime while the status stays, even when reason and message change', () => {
    const first = setConditions(
      undefined,
      [{ type: 'Ready', status: 'False', reason: 'A', message: 'a' }],
      1,
      t0,
    );
    const second = setConditions(
      first,
      [{ type: 'Ready', status: 'False', reason: 'B', message: 'b' }],
      2,
      t1,
    );
    expect(second).toEqual([
      {
        type: 'Ready',
        status: 'False',
        observedGeneration: 2,
        lastTransitionTime: t0,
        reason: 'B',
        message: 'b',
      },
    ]);
    const third = setConditions(
      second,
      [{ type: 'Ready', status: 'True', reason: 'C', message: 'c' }],
      2,
      t1,
    );
    expect(third[0]?.lastTransitionTime).toBe(t1);
  });

  it('metaTime is RFC 3339 in whole seconds', () => {
    expect(metaTime(Date.UTC(2026, 0, 2, 3, 4, 5, 678))).toBe('2026-01-02T03:04:05Z');
  });

  it('statusPatch nulls fields the new status no longer has; sameStatus ignores key order', () => {
    expect(statusPatch({ errors: [{ message: 'x' }], configHash: 'a' }, { configHash: 'b' })).toEqual({
      status: { configHash: 'b', errors: null },
    });
    expect(sameStatus({ a: 1, b: { c: [1, 2] } }, { b: { c: [1, 2] }, a: 1 })).toBe(true);
    expect(sameStatus({ a: 1 }, { a: 1, b: undefined })).toBe(true);
    expect(sameStatus({ a: [1, 2] }, { a: [2, 1] })).toBe(false);
    expect(sameStatus(undefined, { a: 1 })).toBe(false);
  });
});

describe('Supergraph status', () => {
  const now = '2026-01-01T00:00:00Z';
  const supergraph: Supergraph = {
    apiVersion: 'edfs.io/v1alpha1',
    kind: 'Supergraph',
    metadata: { name: 'chat', namespace: 'demo', generation: 3, uid: 'u1' },
    spec: {},
  };
  const deployment = (
    d: Partial<DeploymentView['status']>,
    replicas = 2,
    generation = 1,
  ): DeploymentView => ({
    metadata: { generation },
    spec: { replicas },
    status: { observedGeneration: generation, ...d },
  });
  const observe = (o: Partial<SupergraphObservation> = {}): SupergraphObservation => ({
    supergraph,
    composition: { ok: true, subgraphs: [{ name: 'users', schemaHash: 'h1' }] },
    servedConfigHash: 'cfg1',
    selector: 'app.kubernetes.io/instance=chat,app.kubernetes.io/name=edfs-router',
    ...o,
  });
  const cond = (conditions: Condition[] | undefined, type: string) =>
    conditions?.find((c) => c.type === type);

  it('composed, Deployment not yet seen by its controller: Composed=True, Ready=False, Progressing=True', () => {
    const status = supergraphStatus(
      observe({ deployment: { metadata: { generation: 1 }, spec: { replicas: 2 } } }),
      undefined,
      now,
    );
    expect(status).toMatchObject({
      observedGeneration: 3,
      configHash: 'cfg1',
      subgraphs: [{ name: 'users', schemaHash: 'h1' }],
      replicas: 0,
      readyReplicas: 0,
      selector: 'app.kubernetes.io/instance=chat,app.kubernetes.io/name=edfs-router',
    });
    expect(status.errors).toBeUndefined();
    expect(cond(status.conditions, 'Composed')).toMatchObject({
      status: 'True',
      reason: 'Composed',
      observedGeneration: 3,
    });
    expect(cond(status.conditions, 'Ready')).toMatchObject({ status: 'False', reason: 'RoutersNotReady' });
    expect(cond(status.conditions, 'Progressing')).toMatchObject({ status: 'True', reason: 'RollingOut' });
  });

  it('Ready once spec.replicas pods are ready, Progressing=False once the rollout is complete', () => {
    const d = deployment({ replicas: 2, readyReplicas: 2, updatedReplicas: 2, availableReplicas: 2 });
    const status = supergraphStatus(observe({ deployment: d }), undefined, now);
    expect(cond(status.conditions, 'Ready')).toMatchObject({
      status: 'True',
      reason: 'RoutersReady',
      message: '2/2 router pods ready',
    });
    expect(cond(status.conditions, 'Progressing')).toMatchObject({
      status: 'False',
      reason: 'RolloutComplete',
    });
    expect(status).toMatchObject({ replicas: 2, readyReplicas: 2 });
  });

  it('a rollout with one of two pods ready is Progressing and not Ready', () => {
    const status = supergraphStatus(
      observe({ deployment: deployment({ replicas: 3, readyReplicas: 1, updatedReplicas: 1 }) }),
      undefined,
      now,
    );
    expect(cond(status.conditions, 'Ready')).toMatchObject({
      status: 'False',
      message: '1/2 router pods ready',
    });
    expect(cond(status.conditions, 'Progressing')).toMatchObject({
      status: 'True',
      message: '1/2 router pods updated',
    });
  });

  it('a failed composition keeps the served config hash and subgraphs and Ready untouched', () => {
    const good = supergraphStatus(
      observe({ deployment: deployment({ replicas: 2, readyReplicas: 2, updatedReplicas: 2 }) }),
      undefined,
      now,
    );
    const failed = supergraphStatus(
      observe({
        composition: {
          ok: false,
          reason: 'CompositionFailed',
          errors: [{ subgraph: 'users', message: 'schema syntax error at line 1, column 5: Expected Name' }],
        },
        deployment: deployment({ replicas: 2, readyReplicas: 2, updatedReplicas: 2 }),
      }),
      good,
      '2026-01-01T00:10:00Z',
    );
    expect(failed.configHash).toBe('cfg1');
    expect(failed.subgraphs).toEqual(good.subgraphs);
    expect(failed.errors).toEqual([
      { subgraph: 'users', message: 'schema syntax error at line 1, column 5: Expected Name' },
    ]);
    expect(cond(failed.conditions, 'Composed')).toMatchObject({
      status: 'False',
      reason: 'CompositionFailed',
      lastTransitionTime: '2026-01-01T00:10:00Z',
      message:
        'subgraph "users": schema syntax error at line 1, column 5: Expected Name; the last good config keeps running',
    });
    expect(cond(failed.conditions, 'Ready')).toEqual(cond(good.conditions, 'Ready'));
  });

  it('before any config was composed: Ready=False NoConfig, no configHash', () => {
    const status = supergraphStatus(
      observe({
        composition: { ok: false, reason: 'NoSubgraphs', errors: [{ message: 'none' }] },
        servedConfigHash: undefined,
      }),
      undefined,
      now,
    );
    expect(status.configHash).toBeUndefined();
    expect(cond(status.conditions, 'Ready')).toMatchObject({ status: 'False', reason: 'NoConfig' });
    expect(cond(status.conditions, 'Composed')?.message).toBe('none');
  });

  it('apply errors make Ready False with the message', () => {
    const status = supergraphStatus(
      observe({ applyErrors: ['Ingress "chat-router" already exists and is controlled by X "y"'] }),
      undefined,
      now,
    );
    expect(cond(status.conditions, 'Ready')).toMatchObject({ status: 'False', reason: 'ApplyFailed' });
  });

  it('the same observation twice gives an identical status (nothing to write)', () => {
    const first = supergraphStatus(observe({ deployment: deployment({}) }), undefined, now);
    const second = supergraphStatus(observe({ deployment: deployment({}) }), first, '2026-01-01T01:00:00Z');
    expect(sameStatus(first, second)).toBe(true);
    expect(statusEvents(first, second)).toEqual([]);
  });

  it('records Composed for a new config, and a Warning once per distinct failure', () => {
    const first = supergraphStatus(observe(), undefined, now);
    expect(statusEvents(undefined, first)).toEqual([
      { type: 'Normal', reason: 'Composed', message: 'composed 1 subgraph(s); config cfg1' },
    ]);
    const fail = (message: string) =>
      observe({ composition: { ok: false, reason: 'CompositionFailed', errors: [{ message }] } });
    const failed = supergraphStatus(fail('bad'), first, now);
    expect(statusEvents(first, failed)).toEqual([
      { type: 'Warning', reason: 'CompositionFailed', message: 'bad; the last good config keeps running' },
    ]);
    expect(statusEvents(failed, supergraphStatus(fail('bad'), failed, now))).toEqual([]);
    expect(statusEvents(failed, supergraphStatus(fail('worse'), failed, now))).toHaveLength(1);
    const fixed = supergraphStatus(observe({ servedConfigHash: 'cfg2' }), failed, now);
    expect(statusEvents(failed, fixed)).toEqual([
      { type: 'Normal', reason: 'Composed', message: 'composed 1 subgraph(s); config cfg2' },
    ]);
  });
});

describe('applying children', () => {
  const desired = withAppliedHash({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'chat-router', namespace: 'demo', labels: { a: 'b' } },
    spec: { ports: [{ name: 'http', port: 3002 }] },
  });

  it('a live object with server defaults on top of the desired fields is up to date', () => {
    const live = {
      ...desired,
      metadata: { ...desired.metadata, uid: 'x', resourceVersion: '5', managedFields: [] },
      spec: {
        ports: [{ name: 'http', port: 3002, protocol: 'TCP', targetPort: 3002 }],
        clusterIP: '10.0.0.7',
      },
    };
    expect(isUpToDate(desired, live)).toBe(true);
  });

  it('an edited field, a removed list item, or a different desired hash means apply', () => {
    const live = { ...desired, spec: { ports: [{ name: 'http', port: 9999 }] } };
    expect(isUpToDate(desired, live)).toBe(false);
    expect(contains({ a: [1, 2] }, { a: [1] })).toBe(false);
    const other = withAppliedHash({ ...desired, metadata: { ...desired.metadata, labels: {} } });
    expect(isUpToDate(other, desired)).toBe(false);
    expect(isUpToDate(desired, undefined)).toBe(false);
  });
});
