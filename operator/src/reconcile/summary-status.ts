/**
 * `Reconciling` and `Stalled`: the two "abnormal-true" conditions of kstatus
 * (sigs.k8s.io/cli-utils), which Flux's health checks wait on, derived from each kind's own
 * conditions. kstatus reads only these two and `Ready`; without them it would call a Subgraph with
 * an invalid schema (it has no `Ready`) and a Supergraph whose composition failed while its
 * routers keep the last good config (`Ready=True`) Current, i.e. done. docs/gitops.md has the table.
 *
 * - `Stalled=True`: the reconcile cannot succeed until someone changes an input (the object's spec
 *   or the Subgraphs it composes); kstatus says Failed, and Flux stops waiting with the message.
 * - `Reconciling=True`: the operator expects to get there: a rollout or pods starting, or an input
 *   that may still appear (a Secret, a ConfigMap, a Subgraph, an EventProvider); kstatus says
 *   InProgress until it clears.
 *
 * Invariants: pure functions of the conditions given; at most one of the two, and only when True
 * (absent means normal, as kstatus expects, so the steady state carries neither); reason and
 * message are those of the condition that caused it.
 */
import type { ConditionInput } from './conditions.js';

/** Supergraph `Composed=False` reasons no retry fixes: the spec or a Subgraph must change. */
const COMPOSITION_STALLED = new Set(['CompositionFailed', 'InvalidSelector', 'InvalidRouterConfig']);

export function supergraphSummary(
  composed: ConditionInput,
  ready: ConditionInput,
  progressing: ConditionInput,
): ConditionInput[] {
  if (composed.status === 'False')
    return [COMPOSITION_STALLED.has(composed.reason) ? stalled(composed) : reconciling(composed)];
  if (ready.status === 'False' && ready.reason === 'ApplyFailed') return [stalled(ready)];
  if (progressing.status === 'True') return [reconciling(progressing)];
  // ScaledToZero is a wanted state, not work in progress (kstatus still reads Ready=False).
  if (ready.status === 'False' && ready.reason !== 'ScaledToZero') return [reconciling(ready)];
  return [];
}

/** Subgraph `Valid`: an invalid schema waits for a new one; an unreadable one for its ConfigMap. */
export function subgraphSummary(valid: ConditionInput): ConditionInput[] {
  if (valid.status !== 'False') return [];
  return [valid.reason === 'InvalidSchema' ? stalled(valid) : reconciling(valid)];
}

/** EventProvider `Ready`: a missing Secret or key may still be created; an invalid spec will not fix itself. */
export function eventProviderSummary(ready: ConditionInput): ConditionInput[] {
  if (ready.status !== 'False') return [];
  return [ready.reason === 'InvalidSpec' ? stalled(ready) : reconciling(ready)];
}

function stalled(from: ConditionInput): ConditionInput {
  return { type: 'Stalled', status: 'True', reason: from.reason, message: from.message };
}

function reconciling(from: ConditionInput): ConditionInput {
  return { type: 'Reconciling', status: 'True', reason: from.reason, message: from.message };
}
