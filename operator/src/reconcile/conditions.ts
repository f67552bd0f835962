/**
 * metav1.Condition bookkeeping and status comparison, as pure functions.
 *
 * Invariants:
 * - `lastTransitionTime` changes only when a condition's `status` changes (a new reason or
 *   message alone keeps the time), so re-running a reconcile never rewrites it;
 * - conditions come out in the order given, and only the types given (the reconciler owns all);
 * - `statusPatch` turns "the status should be X" into a JSON merge patch that also removes
 *   fields X no longer has, and `sameStatus` says when no patch is needed at all.
 */
import type { Condition } from '../api/v1alpha1.js';

export type ConditionStatus = Condition['status'];

/** A condition as a reconciler computes it: no transition time yet. */
export interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

/** The API server refuses condition messages longer than 32768 characters. */
const MAX_MESSAGE = 32_768;

export function setConditions(
  previous: readonly Condition[] | undefined,
  next: readonly ConditionInput[],
  observedGeneration: number | undefined,
  now: string,
): Condition[] {
  return next.map((c) => {
    const before = previous?.find((p) => p.type === c.type);
    const message = c.message.length > MAX_MESSAGE ? `${c.message.slice(0, MAX_MESSAGE - 3)}...` : c.message;
    return {
      type: c.type,
      status: c.status,
      ...(observedGeneration !== undefined ? { observedGeneration } : {}),
      lastTransitionTime: before && before.status === c.status ? before.lastTransitionTime : now,
      reason: c.reason,
      message,
    };
  });
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** metav1.Time: RFC 3339 in seconds, as the API server stores it. */
export function metaTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

/** Deep equality of JSON values, ignoring key order and treating absent and undefined alike. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => sameJson(item, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const key of keys) if (!sameJson(a[key], b[key])) return false;
    return true;
  }
  return false;
}

export function sameStatus(current: object | undefined, next: object): boolean {
  return sameJson(dropUndefined(current ?? {}), dropUndefined(next));
}

/** `{status: next}` plus `null` for every top-level field `current` has and `next` lacks. */
export function statusPatch(current: object | undefined, next: object): { status: Record<string, unknown> } {
  const status: Record<string, unknown> = { ...dropUndefined(next) };
  for (const key of Object.keys(current ?? {})) if (!(key in status)) status[key] = null;
  return { status };
}

function dropUndefined(value: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined && v !== null));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
