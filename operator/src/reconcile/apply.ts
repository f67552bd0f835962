/**
 * When a desired child needs a server-side apply, decided without a request.
 *
 * A child is up to date when (1) it carries the hash of exactly this desired object in the
 * `edfs.io/applied-hash` annotation, which catches fields the desired object stopped setting, and
 * (2) every field of the desired object is present in the live one with the same value, which
 * catches edits by anyone else. Live objects carry more (defaults, status, other managers'
 * fields); those are ignored. When in doubt (say, the API server normalized a quantity) the
 * answer is "apply", which is a no-op on the server: it costs a request, never a change.
 */
import { createHash } from 'node:crypto';
import type { AnyObject } from '../kube/resources.js';

export const APPLIED_HASH_ANNOTATION = 'edfs.io/applied-hash';

/** The desired object with the annotation holding the hash of its own content. */
export function withAppliedHash<T extends AnyObject>(desired: T): T {
  const hash = createHash('sha256').update(canonicalJson(desired)).digest('hex').slice(0, 32);
  return {
    ...desired,
    metadata: {
      ...desired.metadata,
      annotations: { ...desired.metadata.annotations, [APPLIED_HASH_ANNOTATION]: hash },
    },
  };
}

export function isUpToDate(desired: AnyObject, live: AnyObject | undefined): boolean {
  if (!live) return false;
  const want = desired.metadata.annotations?.[APPLIED_HASH_ANNOTATION];
  if (want === undefined || live.metadata.annotations?.[APPLIED_HASH_ANNOTATION] !== want) return false;
  return contains(live, desired);
}

/** Every field of `want` is in `have` with an equal value (lists: same length, element-wise). */
export function contains(have: unknown, want: unknown): boolean {
  if (Array.isArray(want)) {
    return Array.isArray(have) && have.length === want.length && want.every((w, i) => contains(have[i], w));
  }
  if (isObject(want)) {
    if (!isObject(have)) return false;
    return Object.entries(want).every(([key, w]) => w === undefined || contains(have[key], w));
  }
  return have === want;
}

function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (isObject(value)) {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .filter((k) => value[k] !== undefined)
        .map((k) => [k, sortKeys(value[k])]),
    );
  }
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
