/**
 * The merges that put user overrides on top of generated objects, and the key ordering that keeps
 * rendered output byte-stable.
 *
 * Invariants: inputs are never mutated; map keys a user supplied come out sorted, so the same spec
 * renders the same bytes whatever order the API server (or a YAML file) listed them in, and
 * server-side apply sees no change where there is none. `null` in an override removes the key
 * (JSON merge patch, RFC 7386), the one way to drop a generated default.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A deep copy with every object's keys sorted; `undefined` members are dropped. */
export function sortKeysDeep<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => sortKeysDeep(v)) as T;
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = value[key];
      if (v !== undefined) out[key] = sortKeysDeep(v);
    }
    return out as T;
  }
  return value;
}

/** A copy of a string map with sorted keys (labels, annotations); undefined for an empty map. */
export function sortedMap(map: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!map) return undefined;
  const keys = Object.keys(map).sort();
  if (keys.length === 0) return undefined;
  return Object.fromEntries(keys.map((k) => [k, String(map[k])]));
}

/**
 * JSON merge patch: objects merge key by key, anything else (arrays included) replaces, `null`
 * deletes. Keys of `base` keep their order; keys only in `patch` follow, sorted.
 */
export function mergePatch(base: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return sortKeysDeep(patch);
  const out: Record<string, unknown> = isPlainObject(base) ? { ...base } : {};
  for (const key of Object.keys(patch).sort()) {
    const value = patch[key];
    if (value === undefined) continue;
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

/**
 * The list fields of a pod template whose items merge by a key, as `kubectl patch
 * --type=strategic` does (containers by name, volumeMounts by mountPath...). Other lists replace.
 */
const LIST_MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  volumes: 'name',
  env: 'name',
  ports: 'containerPort',
  volumeMounts: 'mountPath',
  imagePullSecrets: 'name',
  hostAliases: 'ip',
};

/**
 * Strategic merge of a pod template override onto a generated one: like `mergePatch`, except the
 * lists named in LIST_MERGE_KEYS merge item by item (an override container named `router` edits
 * the router container; one with a new name is added after the generated ones).
 */
export function strategicMerge(base: unknown, patch: unknown, field?: string): unknown {
  const mergeKey = field === undefined ? undefined : LIST_MERGE_KEYS[field];
  if (mergeKey !== undefined && Array.isArray(patch) && Array.isArray(base)) {
    const out = [...base];
    const extra: unknown[] = [];
    for (const item of patch) {
      const id = isPlainObject(item) ? item[mergeKey] : undefined;
      const at = id === undefined ? -1 : out.findIndex((b) => isPlainObject(b) && b[mergeKey] === id);
      if (at >= 0) out[at] = strategicMerge(out[at], item);
      else extra.push(sortKeysDeep(item));
    }
    return [...out, ...extra];
  }
  if (!isPlainObject(patch)) return sortKeysDeep(patch);
  const out: Record<string, unknown> = isPlainObject(base) ? { ...base } : {};
  for (const key of Object.keys(patch).sort()) {
    const value = patch[key];
    if (value === undefined) continue;
    if (value === null) delete out[key];
    else out[key] = strategicMerge(out[key], value, key);
  }
  return out;
}

/** The value at a dotted path of nested objects, or undefined. */
export function getPath(value: unknown, path: readonly string[]): unknown {
  let at = value;
  for (const key of path) {
    if (!isPlainObject(at)) return undefined;
    at = at[key];
  }
  return at;
}

/** Sets a value at a dotted path, creating (copies of) the objects on the way. Returns a copy. */
export function setPath(
  value: Record<string, unknown>,
  path: readonly string[],
  leaf: unknown,
): Record<string, unknown> {
  const [key, ...rest] = path;
  if (key === undefined) return value;
  const out = { ...value };
  if (rest.length === 0) {
    out[key] = leaf;
  } else {
    const child = isPlainObject(out[key]) ? (out[key] as Record<string, unknown>) : {};
    out[key] = setPath(child, rest, leaf);
  }
  return out;
}
