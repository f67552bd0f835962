/**
 * When a desired child needs a server-side apply, decided without a request.
 *
 * A child is up to date when (1) it carries the hash of exactly this desired object in the
 * `edfs.io/applied-hash` annotation, which catches fields the desired object stopped setting, and
 * (2) every field of the desired object is present in the live one with the same value, which
 * catches edits by anyone else. Live objects carry more (defaults, status, other managers'
 * fields); those are ignored. When in doubt (say, the API server normalized a quantity) the
 * answer is "apply", which is a no-op on the server: it costs a request, never a change.
 *
 * Handing `spec.replicas` to an autoscaler: applying an object that no longer sets a field this
 * manager applied before removes the field (a Deployment falls back to 1 replica) unless another
 * manager owns it too. So before the first apply without `spec.replicas`, the live count is applied
 * under a second manager (`HANDOVER_FIELD_MANAGER`), which keeps it until the autoscaler changes
 * it ("Transferring ownership" in the Kubernetes server-side apply documentation).
 */
import { createHash } from 'node:crypto';
import { getPath } from '../desired/merge.js';
import type { AnyObject } from '../kube/resources.js';

export const APPLIED_HASH_ANNOTATION = 'edfs.io/applied-hash';

/** The operator's one server-side apply field manager, also recorded for its other writes. */
export const FIELD_MANAGER = 'edfs-operator';

/** The field manager that holds `spec.replicas` while an autoscaler takes it over. */
export const HANDOVER_FIELD_MANAGER = 'edfs-operator-handover';

/**
 * The object to apply under `HANDOVER_FIELD_MANAGER` before `desired`, or undefined when none is
 * needed: it is needed when `desired` leaves `spec.replicas` out while `manager` has applied it
 * to the live object. It sets exactly the live count, so it changes nothing on the server.
 */
export function replicasHandover(
  desired: AnyObject,
  live: AnyObject | undefined,
  manager: string,
): AnyObject | undefined {
  if (!live || getPath(desired, ['spec', 'replicas']) !== undefined) return undefined;
  const replicas = getPath(live, ['spec', 'replicas']);
  if (typeof replicas !== 'number') return undefined;
  const owned = (live.metadata.managedFields ?? []).some(
    (entry) =>
      entry.manager === manager &&
      entry.operation === 'Apply' &&
      !entry.subresource &&
      getPath(entry.fieldsV1, ['f:spec', 'f:replicas']) !== undefined,
  );
  if (!owned) return undefined;
  return {
    apiVersion: desired.apiVersion,
    kind: desired.kind,
    metadata: { name: live.metadata.name, namespace: live.metadata.namespace },
    spec: { replicas },
  } as AnyObject;
}

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
