/**
 * A Supergraph's status, computed from what the reconcile observed: a pure function, so every
 * rule below is tested without a cluster.
 *
 * - `Composed`: True when the selected Subgraphs composed and every EventProvider they use was
 *   found; False with the errors otherwise. While False, the ConfigMap keeps the last good config
 *   and `configHash` / `subgraphs` keep describing that config (what the routers serve).
 * - `Ready`: True when routers serve a config: the ConfigMap exists, the Deployment controller
 *   has observed the latest Deployment spec, and at least `spec.replicas` (at least one) router
 *   pods are ready. It is independent of `Composed`: a failed composition leaves running routers
 *   ready on the last good config. False before the first successful composition (`NoConfig`),
 *   when applying objects failed (`ApplyFailed`), or while pods are missing (`RoutersNotReady`).
 * - `Progressing`: True while the router Deployment rolls out (created but not yet observed by
 *   the Deployment controller, pods not yet updated or ready), False once it is complete.
 *   `HotReload` config changes never make it True: pods stay and reload the mounted file.
 * - `Reconciling` / `Stalled`: the summary kstatus (Flux) reads, see summary-status.ts.
 * - `replicas` / `readyReplicas` come from the Deployment's status; `selector` is the router pods'
 *   label selector (for the scale subresource).
 */
import type { Condition, Supergraph, SupergraphStatus } from '../api/v1alpha1.js';
import { findCondition, setConditions, type ConditionInput } from './conditions.js';
import { supergraphSummary } from './summary-status.js';

export interface CompositionError {
  subgraph?: string;
  message: string;
}

export type CompositionOutcome =
  | { ok: true; subgraphs: { name: string; schemaHash?: string }[] }
  | { ok: false; reason: string; errors: CompositionError[] };

/** The parts of an apps/v1 Deployment the status needs. */
export interface DeploymentView {
  metadata: { generation?: number };
  spec?: { replicas?: number };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    readyReplicas?: number;
    updatedReplicas?: number;
    availableReplicas?: number;
  };
}

export interface SupergraphObservation {
  supergraph: Supergraph;
  composition: CompositionOutcome;
  /** Hash of the execution config in the ConfigMap (after this reconcile's apply), if there is one. */
  servedConfigHash?: string;
  deployment?: DeploymentView;
  selector: string;
  /** Errors applying or deleting children (ownership conflicts, API refusals). */
  applyErrors?: string[];
}

export function supergraphStatus(
  obs: SupergraphObservation,
  previous: SupergraphStatus | undefined,
  now: string,
): SupergraphStatus {
  const { supergraph, composition, deployment } = obs;
  const generation = supergraph.metadata.generation;

  const composed: ConditionInput = composition.ok
    ? {
        type: 'Composed',
        status: 'True',
        reason: 'Composed',
        message: `composed ${composition.subgraphs.length} subgraph(s)`,
      }
    : {
        type: 'Composed',
        status: 'False',
        reason: composition.reason,
        message: `${describeErrors(composition.errors)}${obs.servedConfigHash ? '; the last good config keeps running' : ''}`,
      };

  const routers = ready(obs);
  const rollout = progressing(obs);
  const conditions = setConditions(
    previous?.conditions,
    [composed, routers, rollout, ...supergraphSummary(composed, routers, rollout)],
    generation,
    now,
  );

  const subgraphs = composition.ok
    ? composition.subgraphs
    : obs.servedConfigHash !== undefined && obs.servedConfigHash === previous?.configHash
      ? previous?.subgraphs
      : undefined;

  const status: SupergraphStatus = {
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    conditions,
    ...(obs.servedConfigHash ? { configHash: obs.servedConfigHash } : {}),
    ...(subgraphs ? { subgraphs } : {}),
    ...(!composition.ok ? { errors: composition.errors.map(normalizeError) } : {}),
    replicas: deployment?.status?.replicas ?? 0,
    readyReplicas: deployment?.status?.readyReplicas ?? 0,
    selector: obs.selector,
  };
  return status;
}

function ready(obs: SupergraphObservation): ConditionInput {
  const c = (status: Condition['status'], reason: string, message: string): ConditionInput => ({
    type: 'Ready',
    status,
    reason,
    message,
  });
  if (obs.applyErrors && obs.applyErrors.length > 0)
    return c('False', 'ApplyFailed', obs.applyErrors.join('; '));
  if (!obs.servedConfigHash) return c('False', 'NoConfig', 'no execution config has been composed yet');
  const d = obs.deployment;
  if (!d) return c('False', 'RoutersNotReady', 'the router Deployment does not exist yet');
  const wanted = d.spec?.replicas ?? 1;
  const readyPods = d.status?.readyReplicas ?? 0;
  if (!observed(d))
    return c(
      'False',
      'RoutersNotReady',
      'the Deployment controller has not observed the router Deployment yet',
    );
  if (wanted === 0) return c('False', 'ScaledToZero', 'the router Deployment is scaled to zero');
  if (readyPods < wanted) return c('False', 'RoutersNotReady', `${readyPods}/${wanted} router pods ready`);
  return c('True', 'RoutersReady', `${readyPods}/${wanted} router pods ready`);
}

function progressing(obs: SupergraphObservation): ConditionInput {
  const c = (status: Condition['status'], reason: string, message: string): ConditionInput => ({
    type: 'Progressing',
    status,
    reason,
    message,
  });
  const d = obs.deployment;
  if (!d) {
    return obs.servedConfigHash
      ? c('True', 'Creating', 'creating the router Deployment')
      : c('False', 'NoConfig', 'waiting for a composed execution config');
  }
  const wanted = d.spec?.replicas ?? 1;
  if (!observed(d))
    return c('True', 'RollingOut', 'waiting for the Deployment controller to observe the new spec');
  const updated = d.status?.updatedReplicas ?? 0;
  if (updated < wanted) return c('True', 'RollingOut', `${updated}/${wanted} router pods updated`);
  const readyPods = d.status?.readyReplicas ?? 0;
  if (readyPods < wanted) return c('True', 'RollingOut', `${readyPods}/${wanted} router pods ready`);
  const total = d.status?.replicas ?? 0;
  if (total > wanted) return c('True', 'RollingOut', `${total - wanted} old router pod(s) terminating`);
  return c('False', 'RolloutComplete', `${readyPods}/${wanted} router pods updated and ready`);
}

function observed(d: DeploymentView): boolean {
  return (d.status?.observedGeneration ?? 0) >= (d.metadata.generation ?? 1);
}

function normalizeError(e: CompositionError): CompositionError {
  return e.subgraph ? { subgraph: e.subgraph, message: e.message } : { message: e.message };
}

export function describeErrors(errors: readonly CompositionError[]): string {
  const lines = errors.map((e) => (e.subgraph ? `subgraph "${e.subgraph}": ${e.message}` : e.message));
  return lines.map((l) => l.replace(/\s*\n\s*/g, ' ').trim()).join('; ');
}

/** The Kubernetes Events a status change deserves (none when nothing changed). */
export function statusEvents(
  previous: SupergraphStatus | undefined,
  next: SupergraphStatus,
): { type: 'Normal' | 'Warning'; reason: string; message: string }[] {
  const events: { type: 'Normal' | 'Warning'; reason: string; message: string }[] = [];
  const before = findCondition(previous?.conditions, 'Composed');
  const after = findCondition(next.conditions, 'Composed');
  if (after?.status === 'True' && (before?.status !== 'True' || previous?.configHash !== next.configHash)) {
    events.push({
      type: 'Normal',
      reason: 'Composed',
      message: `${after.message}; config ${next.configHash?.slice(0, 12) ?? ''}`.trim(),
    });
  }
  if (after?.status === 'False' && (before?.status !== 'False' || before.message !== after.message)) {
    events.push({ type: 'Warning', reason: after.reason, message: after.message });
  }
  const readyBefore = findCondition(previous?.conditions, 'Ready');
  const readyAfter = findCondition(next.conditions, 'Ready');
  if (
    readyAfter?.reason === 'ApplyFailed' &&
    (readyBefore?.reason !== 'ApplyFailed' || readyBefore.message !== readyAfter.message)
  ) {
    events.push({ type: 'Warning', reason: 'ApplyFailed', message: readyAfter.message });
  }
  return events;
}
