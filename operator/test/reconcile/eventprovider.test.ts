/**
 * The EventProvider reconciler against the in-memory API server (test/fixtures/api-server.ts):
 * Ready names the missing Secret or key and the spec field that references it.
 */
import { describe, expect, it } from '@jest/globals';
import type { EventProvider } from '../../src/api/v1alpha1.js';
import { RESOURCES, type AnyObject } from '../../src/kube/resources.js';
import { dep } from '../../src/reconcile/dependency-index.js';
import { condition, setup } from '../fixtures/api-server.js';

describe('EventProvider reconciler', () => {
  const provider = (auth: Record<string, unknown>) =>
    ({
      apiVersion: 'edfs.io/v1alpha1',
      kind: 'EventProvider',
      metadata: { name: 'nats', namespace: 'demo' },
      spec: { nats: { url: 'nats://nats:4222', auth } },
    }) as EventProvider;
  const secret = (data: Record<string, string>) =>
    ({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'nats-auth', namespace: 'demo' },
      data,
    }) as AnyObject;

  it('names the missing Secret and the spec field that references it', async () => {
    const { api, providers, indexes } = setup();
    api.put(provider({ tokenSecretRef: { name: 'nats-auth', key: 'token' } }));
    await providers.reconcile('demo/nats');
    expect(condition(api.find(RESOURCES.EventProvider, 'demo', 'nats')!, 'Ready')).toMatchObject({
      status: 'False',
      reason: 'SecretNotFound',
      message: 'Secret "nats-auth" (spec.nats.auth.tokenSecretRef) not found in namespace "demo"',
    });
    expect(indexes.eventProvider.dependents(dep('Secret', 'demo', 'nats-auth'))).toEqual(['demo/nats']);
  });

  it('names the missing key, then turns Ready once it exists', async () => {
    const { api, providers } = setup();
    api.put(
      provider({ userPasswordSecretRef: { name: 'nats-auth', usernameKey: 'user', passwordKey: 'pass' } }),
    );
    api.put(secret({ user: 'YQ==' }));
    await providers.reconcile('demo/nats');
    expect(condition(api.find(RESOURCES.EventProvider, 'demo', 'nats')!, 'Ready')).toMatchObject({
      status: 'False',
      reason: 'SecretKeyNotFound',
      message: 'Secret "nats-auth" has no key "pass" (spec.nats.auth.userPasswordSecretRef.passwordKey)',
    });
    api.put(secret({ user: 'YQ==', pass: 'Yg==' }));
    await providers.reconcile('demo/nats');
    expect(condition(api.find(RESOURCES.EventProvider, 'demo', 'nats')!, 'Ready')).toMatchObject({
      status: 'True',
      reason: 'SecretsFound',
    });
    expect(api.events.map((e) => `${e.type} ${e.reason}`)).toEqual([
      'Warning SecretKeyNotFound',
      'Normal SecretsFound',
    ]);
  });
});
