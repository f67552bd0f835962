/**
 * The two pieces around a rollout that the renderer cannot see: the digest of the Secret values
 * the providers reference (rotation), and handing `spec.replicas` over to an autoscaler without
 * the Deployment dropping to one replica (server-side apply ownership).
 */
import { describe, expect, it } from '@jest/globals';
import type { EventProvider } from '../src/api/v1alpha1.js';
import { RESOURCES, type AnyObject, type ResourceType } from '../src/kube/resources.js';
import { HANDOVER_FIELD_MANAGER, replicasHandover } from '../src/reconcile/apply.js';
import type { ObjectReader } from '../src/reconcile/context.js';
import { digestSecret, secretValueDigest, secretsHash } from '../src/reconcile/secrets-hash.js';

type Secret = AnyObject & { data?: Record<string, string> };

const b64 = (text: string) => Buffer.from(text).toString('base64');

function secret(name: string, data: Record<string, string>, uid = `uid-${name}`): Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: 'demo', uid },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  };
}

/** A cache holding Secrets as the operator's informer does: digested. */
function cacheOf(...secrets: Secret[]): ObjectReader {
  const stored = secrets.map((s) => digestSecret(structuredClone(s)));
  return {
    get: <T extends AnyObject>(type: ResourceType, namespace: string, name: string) =>
      (type === RESOURCES.Secret
        ? stored.find((s) => s.metadata.namespace === namespace && s.metadata.name === name)
        : undefined) as T | undefined,
    list: <T extends AnyObject>() => [] as T[],
    caches: () => true,
  };
}

function provider(auth: NonNullable<EventProvider['spec']['nats']>['auth']): EventProvider {
  return {
    apiVersion: 'edfs.io/v1alpha1',
    kind: 'EventProvider',
    metadata: { name: 'default', namespace: 'demo' },
    spec: { nats: { url: 'nats://nats:4222', ...(auth ? { auth } : {}) } },
  };
}

const token = provider({ tokenSecretRef: { name: 'nats-auth', key: 'token' } });

describe('secrets hash', () => {
  it('changes with a referenced value and is stable otherwise', () => {
    const a = secretsHash('demo', [token], cacheOf(secret('nats-auth', { token: 'one', other: 'x' })));
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(secretsHash('demo', [token], cacheOf(secret('nats-auth', { token: 'one', other: 'x' })))).toBe(a);
    expect(secretsHash('demo', [token], cacheOf(secret('nats-auth', { token: 'two', other: 'x' })))).not.toBe(
      a,
    );
  });

  it('ignores keys nobody references', () => {
    const a = secretsHash('demo', [token], cacheOf(secret('nats-auth', { token: 'one', other: 'x' })));
    expect(secretsHash('demo', [token], cacheOf(secret('nats-auth', { token: 'one', other: 'y' })))).toBe(a);
    expect(secretsHash('demo', [token], cacheOf(secret('nats-auth', { token: 'one' })))).toBe(a);
  });

  it('is undefined when no provider references a Secret', () => {
    expect(secretsHash('demo', [provider(undefined)], cacheOf())).toBeUndefined();
    expect(secretsHash('demo', [], cacheOf())).toBeUndefined();
  });

  it('tells a missing Secret, a missing key and a present key apart', () => {
    const missing = secretsHash('demo', [token], cacheOf());
    const noKey = secretsHash('demo', [token], cacheOf(secret('nats-auth', { other: 'x' })));
    const present = secretsHash('demo', [token], cacheOf(secret('nats-auth', { token: '' })));
    expect(missing).toBe(noKey);
    expect(new Set([noKey, present]).size).toBe(2);
  });

  it('covers every key a provider references (user and password, files)', () => {
    const user = provider({ userPasswordSecretRef: { name: 'nats-user' } });
    const a = secretsHash('demo', [user], cacheOf(secret('nats-user', { username: 'u', password: 'p' })));
    const b = secretsHash('demo', [user], cacheOf(secret('nats-user', { username: 'u', password: 'q' })));
    expect(a).not.toBe(b);
    const creds = provider({ credsSecretRef: { name: 'nats-creds', key: 'user.creds' } });
    expect(secretsHash('demo', [creds], cacheOf(secret('nats-creds', { 'user.creds': 'c1' })))).not.toBe(
      secretsHash('demo', [creds], cacheOf(secret('nats-creds', { 'user.creds': 'c2' }))),
    );
  });
});

describe('the cached Secret', () => {
  it('keeps its keys, replaces each value with a digest keyed by its uid, and drops kubectl’s copy', () => {
    const s = secret('nats-auth', { token: 's3cr3t-value' });
    s.metadata.annotations = {
      'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify({ stringData: { token: 's3cr3t' } }),
      keep: 'me',
    };
    const cached = digestSecret(structuredClone(s));
    expect(Object.keys(cached.data!)).toEqual(['token']);
    expect(cached.data!.token).toBe(secretValueDigest('uid-nats-auth', b64('s3cr3t-value')));
    expect(cached.metadata.annotations).toEqual({ keep: 'me' });
    expect(JSON.stringify(cached)).not.toContain(b64('s3cr3t-value'));
    expect(JSON.stringify(cached)).not.toContain('s3cr3t');
    // Another Secret with the same value has another digest: nothing to compare across Secrets.
    expect(secretValueDigest('uid-other', b64('s3cr3t-value'))).not.toBe(cached.data!.token);
  });
});

describe('handing replicas over to an autoscaler', () => {
  const desired = (replicas?: number): AnyObject =>
    ({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'chat-router', namespace: 'demo' },
      spec: { ...(replicas !== undefined ? { replicas } : {}), selector: {} },
    }) as AnyObject;
  const live = (managers: { manager: string; replicas: boolean; subresource?: string }[]): AnyObject =>
    ({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name: 'chat-router',
        namespace: 'demo',
        uid: 'u',
        managedFields: managers.map((m) => ({
          manager: m.manager,
          operation: m.subresource ? 'Update' : 'Apply',
          ...(m.subresource ? { subresource: m.subresource } : {}),
          fieldsType: 'FieldsV1',
          fieldsV1: { 'f:spec': m.replicas ? { 'f:replicas': {}, 'f:selector': {} } : { 'f:selector': {} } },
        })),
      },
      spec: { replicas: 3, selector: {} },
    }) as AnyObject;

  it('applies the live count under the handover manager when the operator applied replicas and stops', () => {
    expect(HANDOVER_FIELD_MANAGER).toBe('edfs-operator-handover');
    expect(
      replicasHandover(desired(), live([{ manager: 'edfs-operator', replicas: true }]), 'edfs-operator'),
    ).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'chat-router', namespace: 'demo' },
      spec: { replicas: 3 },
    });
  });

  it('does nothing while replicas are set, once handed over, for a new object, or when someone else owns them', () => {
    const owned = live([{ manager: 'edfs-operator', replicas: true }]);
    expect(replicasHandover(desired(2), owned, 'edfs-operator')).toBeUndefined();
    expect(replicasHandover(desired(), undefined, 'edfs-operator')).toBeUndefined();
    expect(
      replicasHandover(
        desired(),
        live([
          { manager: 'edfs-operator', replicas: false },
          { manager: HANDOVER_FIELD_MANAGER, replicas: true },
        ]),
        'edfs-operator',
      ),
    ).toBeUndefined();
    expect(
      replicasHandover(
        desired(),
        live([
          { manager: 'edfs-operator', replicas: false },
          { manager: 'kube-controller-manager', replicas: true, subresource: 'scale' },
        ]),
        'edfs-operator',
      ),
    ).toBeUndefined();
  });
});
