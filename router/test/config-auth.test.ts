/**
 * router.yaml: `authentication.jwt` and `authorization` (Cosmo's shape): defaults, env expansion,
 * and every bad setting refused at start with the key to fix.
 */
import { describe, expect, it } from '@jest/globals';
import { parseRouterConfig, RouterConfigError } from '../src/config/load.js';

const minimal = 'execution_config: { file: { path: ./config.json } }\n';

function parse(yaml: string, env: Record<string, string> = {}) {
  return parseRouterConfig(minimal + yaml, { env, baseDir: '/srv/router' });
}

function messageOf(yaml: string): string {
  try {
    parse(yaml);
  } catch (err) {
    expect(err).toBeInstanceOf(RouterConfigError);
    return (err as RouterConfigError).message;
  }
  throw new Error('expected the configuration to be refused');
}

const RSA_JWK = '{ kty: RSA, kid: k1, n: AQAB, e: AQAB }';

describe('router.yaml: authentication and authorization', () => {
  it('defaults: no authentication, anonymous clients allowed', () => {
    const config = parse('');
    expect(config.authentication).toEqual({});
    expect(config.authorization).toEqual({
      requireAuthentication: false,
      rejectOperationIfUnauthorized: false,
    });
  });

  it('a url key set: Cosmo defaults (Authorization, Bearer, 1m refresh, every asymmetric algorithm)', () => {
    const config = parse(
      'authentication: { jwt: { jwks: [ { url: "${IDP}/.well-known/jwks.json", audiences: [chat], issuer: "https://idp/" } ] } }\n' +
        'authorization: { require_authentication: true }\n',
      { IDP: 'https://idp.example' },
    );
    expect(config.authentication.jwt).toEqual({
      keySets: [
        {
          at: 'authentication.jwt.jwks[0]',
          source: {
            kind: 'url',
            url: 'https://idp.example/.well-known/jwks.json',
            refreshIntervalMs: 60_000,
            unknownKidRefetchMs: 10_000,
          },
          algorithms: [
            'RS256',
            'RS384',
            'RS512',
            'PS256',
            'PS384',
            'PS512',
            'ES256',
            'ES384',
            'ES512',
            'EdDSA',
            'Ed25519',
          ],
          audiences: ['chat'],
          issuer: 'https://idp/',
        },
      ],
      headerName: 'authorization',
      headerValuePrefix: 'Bearer',
      clockSkewMs: 0,
    });
    expect(config.authorization.requireAuthentication).toBe(true);
  });

  it('a file key set is resolved against the config directory; inline keys are kept; clock_skew is a duration', () => {
    const config = parse(
      `authentication: { jwt: { clock_skew: 30s, header_name: X-Token, header_value_prefix: "", jwks: [ { file: keys/jwks.json }, { keys: [ ${RSA_JWK} ], algorithms: [ES256] } ] } }\n`,
    );
    const jwt = config.authentication.jwt!;
    expect(jwt.keySets[0]!.source).toEqual({ kind: 'file', path: '/srv/router/keys/jwks.json' });
    expect(jwt.keySets[1]!.source).toEqual({
      kind: 'inline',
      keys: [{ kty: 'RSA', kid: 'k1', n: 'AQAB', e: 'AQAB' }],
    });
    expect(jwt.keySets[1]!.algorithms).toEqual(['ES256']);
    expect(jwt).toMatchObject({ clockSkewMs: 30_000, headerName: 'x-token', headerValuePrefix: '' });
  });

  it('the connection_init key is taken when from_initial_payload is enabled', () => {
    const config = parse(
      'websocket: { authentication: { from_initial_payload: { enabled: true, key: token } } }\n',
    );
    expect(config.websocket.initialPayloadToken?.key).toBe('token');
  });

  it.each([
    [
      'a key set with no source',
      'authentication: { jwt: { jwks: [ { algorithms: [RS256] } ] } }',
      'authentication.jwt.jwks[0]: needs one of url',
    ],
    [
      'a key set with two sources',
      'authentication: { jwt: { jwks: [ { url: "https://idp/jwks", file: ./jwks.json } ] } }',
      'authentication.jwt.jwks[0]: takes one of url, file or keys, not url and file',
    ],
    [
      'an empty jwks list',
      'authentication: { jwt: { jwks: [] } }',
      'authentication.jwt.jwks: must not be empty',
    ],
    [
      'no jwks at all',
      'authentication: { jwt: { header_name: Authorization } }',
      'authentication.jwt.jwks: is required',
    ],
    [
      'a url that is not http(s)',
      'authentication: { jwt: { jwks: [ { url: "ftp://idp/jwks" } ] } }',
      'authentication.jwt.jwks[0].url: must be an http(s) URL',
    ],
    [
      'a symmetric algorithm',
      'authentication: { jwt: { jwks: [ { url: "https://idp/jwks", algorithms: [RS256, HS256] } ] } }',
      'authentication.jwt.jwks[0].algorithms[1]: "HS256" is not accepted: only asymmetric algorithms',
    ],
    [
      'alg none',
      'authentication: { jwt: { jwks: [ { url: "https://idp/jwks", algorithms: [none] } ] } }',
      'authentication.jwt.jwks[0].algorithms[0]: "none" is not accepted',
    ],
    [
      'an unknown algorithm',
      'authentication: { jwt: { jwks: [ { url: "https://idp/jwks", algorithms: [RS999] } ] } }',
      'authentication.jwt.jwks[0].algorithms[0]: "RS999" is not accepted: unknown algorithm',
    ],
    [
      'a zero refresh interval',
      'authentication: { jwt: { jwks: [ { url: "https://idp/jwks", refresh_interval: 0s } ] } }',
      'authentication.jwt.jwks[0].refresh_interval: must be greater than zero',
    ],
    [
      'a refresh interval that is not a duration',
      'authentication: { jwt: { jwks: [ { url: "https://idp/jwks", refresh_interval: often } ] } }',
      'authentication.jwt.jwks[0].refresh_interval: must be a duration',
    ],
    [
      'refresh_interval on a local set',
      'authentication: { jwt: { jwks: [ { file: ./jwks.json, refresh_interval: 1m } ] } }',
      'authentication.jwt.jwks[0].refresh_interval: applies to a url key set only',
    ],
    [
      'a refetch interval while refetching is off',
      'authentication: { jwt: { jwks: [ { url: "https://idp/jwks", refresh_unknown_kid: { enabled: false, interval: 1s } } ] } }',
      'authentication.jwt.jwks[0].refresh_unknown_kid.interval: does nothing while refresh_unknown_kid.enabled is false',
    ],
    [
      'a bad clock skew',
      'authentication: { jwt: { clock_skew: "-1s", jwks: [ { url: "https://idp/jwks" } ] } }',
      'authentication.jwt.clock_skew: must be a duration',
    ],
    [
      'a header name with a space',
      'authentication: { jwt: { header_name: "X Token", jwks: [ { url: "https://idp/jwks" } ] } }',
      'authentication.jwt.header_name: must be an HTTP header name',
    ],
    [
      'an inline shared secret',
      'authentication: { jwt: { jwks: [ { keys: [ { kty: oct, k: c2VjcmV0 } ] } ] } }',
      'authentication.jwt.jwks[0].keys[0].kty: "oct" (a shared secret) is not accepted',
    ],
    [
      'an inline private key',
      'authentication: { jwt: { jwks: [ { keys: [ { kty: RSA, n: AQAB, e: AQAB, d: AQAB } ] } ] } }',
      'authentication.jwt.jwks[0].keys[0]: holds private key material (d)',
    ],
    [
      'an inline key without kty',
      'authentication: { jwt: { jwks: [ { keys: [ { n: AQAB } ] } ] } }',
      'authentication.jwt.jwks[0].keys[0].kty: is required',
    ],
    [
      'require_authentication without authentication',
      'authorization: { require_authentication: true }',
      'authorization.require_authentication: needs authentication.jwt',
    ],
    [
      'a misspelled key',
      'authentication: { jwt: { jwks: [ { url: "https://idp/jwks", audience: [chat] } ] } }',
      'authentication.jwt.jwks[0].audience: unknown key (did you mean "audiences"?)',
    ],
  ])('refuses %s, naming the key', (_what, yaml, expected) => {
    expect(messageOf(`${yaml}\n`)).toContain(`router.yaml: ${expected}`);
  });
});
