/**
 * Rolling the routers when a broker credential (or a key set of `spec.router.authentication`, read
 * once at start) changes, without the operator holding credentials.
 *
 * Routers get credentials as env vars from Secrets, which a running container never re-reads. So
 * the Supergraph reconciler renders a digest of the referenced values as a pod-template annotation
 * (`edfs.io/secrets-hash`): a new value rolls the Deployment, an unchanged one changes no byte.
 *
 * Invariants:
 * - no Secret value stays in memory: the Secret informer stores, in place of each value, a digest
 *   keyed with the Secret's uid (`digestSecret`); the annotation is a hash of those digests, so it
 *   does not allow guessing a value offline without reading the Secret;
 * - only the keys the providers reference count: another key of the same Secret changing rolls
 *   nothing;
 * - a missing Secret or key counts as "missing", so its appearance rolls the pods (they were
 *   failing to start anyway).
 */
import { createHmac } from 'node:crypto';
import type { EventProvider, Supergraph } from '../api/v1alpha1.js';
import { jwksBindings, secretBindings } from '../desired/index.js';
import { RESOURCES, type AnyObject } from '../kube/resources.js';
import type { ObjectReader } from './context.js';
import { sha256 } from './inputs.js';

interface SecretObject extends AnyObject {
  data?: Record<string, string> | null;
  stringData?: unknown;
}

/** What the Secret informer keeps of one value: an HMAC-SHA256 keyed with the Secret's uid. */
export function secretValueDigest(uid: string | undefined, value: string): string {
  return createHmac('sha256', uid ?? '')
    .update(value)
    .digest('hex');
}

/**
 * The Secret as the informer caches it: each value replaced by its digest, so a change is still
 * seen (and which keys exist), but the value is gone. Also drops kubectl's
 * `last-applied-configuration` annotation, which holds the whole Secret, values included.
 */
export function digestSecret<T extends AnyObject>(obj: T): T {
  const secret = obj as unknown as SecretObject;
  if (secret.data) {
    for (const [key, value] of Object.entries(secret.data)) {
      secret.data[key] = secretValueDigest(secret.metadata.uid, value ?? '');
    }
  }
  delete secret.stringData;
  const annotations = secret.metadata.annotations;
  if (annotations && 'kubectl.kubernetes.io/last-applied-configuration' in annotations) {
    delete annotations['kubectl.kubernetes.io/last-applied-configuration'];
  }
  return obj;
}

/**
 * The digest of every Secret key `providers` and the Supergraph's key sets reference, read from
 * the cache; undefined when they reference none. Deterministic: the same cached Secrets give the
 * same string.
 */
export function secretsHash(
  namespace: string,
  providers: EventProvider[],
  cache: ObjectReader,
  supergraph?: Supergraph,
): string | undefined {
  const refs = new Map<string, { name: string; key: string }>();
  const secrets = [
    ...providers.flatMap((provider) => secretBindings(provider).map((b) => b.secret)),
    ...(supergraph ? jwksBindings(supergraph).map((b) => b.secret) : []),
  ];
  for (const secret of secrets) refs.set(`${secret.name}\u0000${secret.key}`, secret);
  if (refs.size === 0) return undefined;
  const entries = [...refs.keys()].sort().map((id) => {
    const { name, key } = refs.get(id)!;
    const secret = cache.get<SecretObject>(RESOURCES.Secret, namespace, name);
    const data = secret?.data ?? {};
    const value = Object.prototype.hasOwnProperty.call(data, key) ? data[key] : undefined;
    return [name, key, value === undefined ? null : sha256(value ?? '')];
  });
  return sha256(JSON.stringify(entries));
}
