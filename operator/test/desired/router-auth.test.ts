/**
 * `spec.router.authentication` rendered (operator/src/desired/router-config.ts): a JWKS URL goes
 * to router.yaml as written; a key set from a Secret is a mounted file, so no key material is in
 * the ConfigMap, the Deployment or anything else rendered; its Secret counts in the secrets hash;
 * the router's own loader accepts the result.
 */
import { describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';
import type { Supergraph } from '../../src/api/v1alpha1.js';
import { jwksBindings, renderDesired } from '../../src/desired/index.js';
import { secretsHash } from '../../src/reconcile/secrets-hash.js';
import { RESOURCES } from '../../src/kube/resources.js';
import { find, input, loadAsRouter, routerContainer, routerYaml } from '../fixtures/desired.js';

const authentication: NonNullable<Supergraph['spec']['router']>['authentication'] = {
  jwt: {
    jwks: [
      {
        url: 'https://idp.example/.well-known/jwks.json',
        refreshInterval: '5m',
        audiences: ['chat'],
        issuer: 'https://idp.example/',
      },
      { secretRef: { name: 'chat-jwks', key: 'jwks.json' }, algorithms: ['ES256'] },
    ],
    clockSkew: '30s',
  },
  requireAuthentication: true,
};

function rendered() {
  return renderDesired(
    input((i) => {
      i.supergraph.spec.router = { ...i.supergraph.spec.router, authentication };
      i.secretsHash = 'digest-of-secrets';
    }),
  );
}

describe('spec.router.authentication', () => {
  it('becomes authentication.jwt and authorization in router.yaml, the Secret key set as a file path', () => {
    const { objects, warnings } = rendered();
    expect(warnings).toEqual([]);
    const yaml = parse(routerYaml(objects));
    expect(yaml.authentication).toEqual({
      jwt: {
        jwks: [
          {
            url: 'https://idp.example/.well-known/jwks.json',
            refresh_interval: '5m',
            audiences: ['chat'],
            issuer: 'https://idp.example/',
          },
          { file: '/etc/edfs-secrets/jwks-1/jwks.json', algorithms: ['ES256'] },
        ],
        clock_skew: '30s',
      },
    });
    expect(yaml.authorization).toEqual({ require_authentication: true });
    const config = loadAsRouter(routerYaml(objects), { EDFS_PROVIDER_DEFAULT_TOKEN: 'x' });
    expect(config.authentication.jwt?.keySets.map((s) => s.source.kind)).toEqual(['url', 'file']);
    expect(config.authorization.requireAuthentication).toBe(true);
  });

  it('mounts the key set Secret read-only, and rolls the pods when it changes (secrets hash)', () => {
    const { objects } = rendered();
    const deployment = find(objects, 'Deployment');
    expect(deployment.spec.template.spec.volumes).toContainEqual({
      name: 'jwks-1',
      secret: { secretName: 'chat-jwks', items: [{ key: 'jwks.json', path: 'jwks.json' }] },
    });
    expect(routerContainer(objects).volumeMounts).toContainEqual({
      name: 'jwks-1',
      mountPath: '/etc/edfs-secrets/jwks-1',
      readOnly: true,
    });
    expect(deployment.spec.template.metadata.annotations['edfs.io/secrets-hash']).toBe('digest-of-secrets');
  });

  it('puts no key material anywhere it renders: the Secret is referenced by name and key only', () => {
    const text = JSON.stringify(rendered().objects);
    expect(text).not.toContain('kty');
    expect(text).not.toMatch(/"keys"\s*:/);
  });

  it('the secrets hash covers the key set Secret: a new value, a new hash', () => {
    const supergraph = input().supergraph;
    supergraph.spec.router = { ...supergraph.spec.router, authentication };
    expect(jwksBindings(supergraph).map((b) => b.secret)).toEqual([{ name: 'chat-jwks', key: 'jwks.json' }]);
    let value = 'digest-1';
    const cache = {
      get: (resource: unknown, _ns: string, name: string) =>
        resource === RESOURCES.Secret && name === 'chat-jwks' ? { data: { 'jwks.json': value } } : undefined,
      list: () => [],
    } as never;
    const first = secretsHash('demo', [], cache, supergraph);
    value = 'digest-2';
    const second = secretsHash('demo', [], cache, supergraph);
    expect(first).toBeDefined();
    expect(second).not.toBe(first);
    expect(secretsHash('demo', [], cache)).toBeUndefined();
  });
});
