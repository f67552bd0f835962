/**
 * kstatus' `Reconciling` / `Stalled` as each kind's status carries them (summary-status.ts): which
 * reasons stall, which only delay, and that the steady state carries neither. What kstatus and
 * Argo CD make of the real objects is e2e/test/gitops-health.test.ts.
 */
import { describe, expect, it } from '@jest/globals';
import type { Condition, Subgraph, Supergraph } from '../src/api/v1alpha1.js';
import { subgraphStatus } from '../src/reconcile/subgraph.js';
import { eventProviderSummary } from '../src/reconcile/summary-status.js';
import {
  supergraphStatus,
  type DeploymentView,
  type SupergraphObservation,
} from '../src/reconcile/supergraph-status.js';

const now = '2026-01-01T00:00:00Z';
const later = '2026-01-01T00:10:00Z';

/** The kstatus conditions of a status, as `Type=Status Reason: message`. */
const summary = (conditions: Condition[] | undefined) =>
  (conditions ?? [])
    .filter((c) => c.type === 'Reconciling' || c.type === 'Stalled')
    .map((c) => `${c.type}=${c.status} ${c.reason}: ${c.message}`);

describe('Supergraph', () => {
  const supergraph: Supergraph = {
    apiVersion: 'edfs.io/v1alpha1',
    kind: 'Supergraph',
    metadata: { name: 'chat', namespace: 'demo', generation: 2 },
    spec: {},
  };
  const deployment = (status: DeploymentView['status'], replicas = 2): DeploymentView => ({
    metadata: { generation: 1 },
    spec: { replicas },
    status: { observedGeneration: 1, ...status },
  });
  const rolledOut = deployment({ replicas: 2, readyReplicas: 2, updatedReplicas: 2 });
  const observe = (o: Partial<SupergraphObservation> = {}): SupergraphObservation => ({
    supergraph,
    composition: { ok: true, subgraphs: [{ name: 'users' }] },
    servedConfigHash: 'cfg1',
    deployment: rolledOut,
    selector: 'app.kubernetes.io/instance=chat',
    ...o,
  });
  const failed = (reason: string, message = 'broken'): SupergraphObservation['composition'] => ({
    ok: false,
    reason,
    errors: [{ subgraph: 'users', message }],
  });

  it('composed and rolled out, with every router ready: neither condition', () => {
    expect(summary(supergraphStatus(observe(), undefined, now).conditions)).toEqual([]);
  });

  it('a composition that fails while the routers keep the last good config is Stalled with the errors', () => {
    const good = supergraphStatus(observe(), undefined, now);
    const status = supergraphStatus(observe({ composition: failed('CompositionFailed') }), good, later);
    expect(summary(status.conditions)).toEqual([
      'Stalled=True CompositionFailed: subgraph "users": broken; the last good config keeps running',
    ]);
    expect(status.conditions?.find((c) => c.type === 'Stalled')).toMatchObject({
      observedGeneration: 2,
      lastTransitionTime: later,
    });
    // Composing again clears it.
    expect(summary(supergraphStatus(observe(), status, later).conditions)).toEqual([]);
  });

  it('an invalid selector or router config is Stalled too: only a spec change fixes it', () => {
    for (const reason of ['InvalidSelector', 'InvalidRouterConfig']) {
      const status = supergraphStatus(observe({ composition: failed(reason) }), undefined, now);
      expect(summary(status.conditions)).toEqual([
        `Stalled=True ${reason}: subgraph "users": broken; the last good config keeps running`,
      ]);
    }
  });

  it('an input that may still appear (no Subgraphs, a missing ConfigMap or EventProvider) is Reconciling', () => {
    for (const reason of ['NoSubgraphs', 'SchemaUnavailable', 'EventProviderNotFound']) {
      const status = supergraphStatus(
        observe({
          composition: failed(reason, 'missing'),
          servedConfigHash: undefined,
          deployment: undefined,
        }),
        undefined,
        now,
      );
      expect(summary(status.conditions)).toEqual([`Reconciling=True ${reason}: subgraph "users": missing`]);
    }
  });

  it('an apply the API server refused is Stalled with its message', () => {
    const status = supergraphStatus(
      observe({ applyErrors: ['Ingress "chat-router" is controlled by another owner'] }),
      undefined,
      now,
    );
    expect(summary(status.conditions)).toEqual([
      'Stalled=True ApplyFailed: Ingress "chat-router" is controlled by another owner',
    ]);
  });

  it('a rollout is Reconciling even while enough pods are ready for Ready=True', () => {
    const status = supergraphStatus(
      observe({ deployment: deployment({ replicas: 3, readyReplicas: 2, updatedReplicas: 1 }) }),
      undefined,
      now,
    );
    expect(status.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(summary(status.conditions)).toEqual(['Reconciling=True RollingOut: 1/2 router pods updated']);
  });

  it('routers not ready yet are Reconciling; a Deployment scaled to zero is neither', () => {
    const starting = supergraphStatus(
      observe({ deployment: deployment({ replicas: 2, readyReplicas: 1, updatedReplicas: 2 }) }),
      undefined,
      now,
    );
    expect(summary(starting.conditions)).toEqual(['Reconciling=True RollingOut: 1/2 router pods ready']);
    const zero = supergraphStatus(observe({ deployment: deployment({}, 0) }), undefined, now);
    expect(zero.conditions?.find((c) => c.type === 'Ready')?.reason).toBe('ScaledToZero');
    expect(summary(zero.conditions)).toEqual([]);
  });
});

describe('Subgraph', () => {
  const subgraph: Subgraph = {
    apiVersion: 'edfs.io/v1alpha1',
    kind: 'Subgraph',
    metadata: { name: 'users', namespace: 'demo', generation: 4 },
    spec: { schema: { sdl: '' } },
  };

  it('a valid schema carries neither condition', () => {
    const status = subgraphStatus(subgraph, { sdl: 'type Query { me: ID }' }, now);
    expect(summary(status.conditions)).toEqual([]);
  });

  it('an invalid schema is Stalled with the errors: only a new schema fixes it', () => {
    const status = subgraphStatus(subgraph, { sdl: 'type Query { me: }' }, now);
    expect(summary(status.conditions)).toEqual([
      'Stalled=True InvalidSchema: syntax error at line 1, column 18: Expected Name, found "}".',
    ]);
    expect(status.conditions?.find((c) => c.type === 'Stalled')?.observedGeneration).toBe(4);
  });

  it('a schema that cannot be read yet (its ConfigMap is missing) is Reconciling', () => {
    const status = subgraphStatus(subgraph, { error: 'ConfigMap "users-sdl" not found' }, now);
    expect(summary(status.conditions)).toEqual([
      'Reconciling=True SchemaUnavailable: ConfigMap "users-sdl" not found',
    ]);
  });
});

describe('EventProvider', () => {
  const ready = (status: 'True' | 'False', reason: string) => ({
    type: 'Ready',
    status,
    reason,
    message: `${reason} message`,
  });

  it('Ready carries neither; a missing Secret or key is Reconciling; an invalid spec is Stalled', () => {
    expect(eventProviderSummary(ready('True', 'SecretsFound'))).toEqual([]);
    for (const reason of ['SecretNotFound', 'SecretKeyNotFound']) {
      expect(eventProviderSummary(ready('False', reason))).toEqual([
        { type: 'Reconciling', status: 'True', reason, message: `${reason} message` },
      ]);
    }
    expect(eventProviderSummary(ready('False', 'InvalidSpec'))).toEqual([
      { type: 'Stalled', status: 'True', reason: 'InvalidSpec', message: 'InvalidSpec message' },
    ]);
  });
});
