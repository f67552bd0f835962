/**
 * The `authentication` and `authorization` sections: Cosmo's JWT settings as written, checked and
 * turned into the `JwtConfig` the verifier (auth/) is built from.
 *
 * Refused here, each with the key to fix: a key set that is not exactly one of `url`, `file` and
 * `keys`; a symmetric or `none` algorithm (a JWKS holds public keys, and accepting `HS256` would let
 * anyone who has the public key sign tokens: algorithm confusion); an inline key that is
 * symmetric or carries private material; settings that do nothing where they are
 * (`refresh_interval` on a local set); `require_authentication` without any way to authenticate.
 */
import { DEFAULTS } from './defaults.js';
import type { Issues } from './issues.js';
import type {
  AuthorizationConfig,
  JwksFile,
  JwtConfig,
  KeySetConfig,
  KeySetSource,
  RouterConfigFile,
} from './types.js';

/** The signing algorithms a key set may accept: asymmetric only (jose's names). */
export const ASYMMETRIC_ALGORITHMS = [
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
] as const;

/** JWK members that only a private key has. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'];

export function authenticationConfig(
  file: RouterConfigFile['authentication'],
  filePath: (p: string) => string,
  issues: Issues,
): { jwt?: JwtConfig } {
  const jwt = file?.jwt;
  if (!jwt) return {};
  const keySets = (jwt.jwks ?? []).map((set, i) =>
    keySet(set, `authentication.jwt.jwks[${i}]`, filePath, issues),
  );
  if (keySets.length === 0)
    issues.push({
      path: 'authentication.jwt.jwks',
      message: 'is required: list at least one key set (url, file or keys) to verify tokens with',
    });
  const headerName = jwt.header_name ?? DEFAULTS.authentication.headerName;
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(headerName))
    issues.push({
      path: 'authentication.jwt.header_name',
      message: `must be an HTTP header name (got ${JSON.stringify(headerName)})`,
    });
  return {
    jwt: {
      keySets,
      headerName: headerName.toLowerCase(),
      headerValuePrefix: (jwt.header_value_prefix ?? DEFAULTS.authentication.headerValuePrefix).trim(),
      clockSkewMs: issues.duration(
        'authentication.jwt.clock_skew',
        jwt.clock_skew ?? DEFAULTS.authentication.clockSkew,
      ),
    },
  };
}

function keySet(file: JwksFile, at: string, filePath: (p: string) => string, issues: Issues): KeySetConfig {
  const given = (['url', 'file', 'keys'] as const).filter((k) => file[k] !== undefined);
  if (given.length !== 1)
    issues.push({
      path: at,
      message:
        given.length === 0
          ? 'needs one of url (a JWKS endpoint), file (a JWKS file) or keys (an inline JWKS)'
          : `takes one of url, file or keys, not ${given.join(' and ')}`,
    });
  let source: KeySetSource;
  if (file.url !== undefined) {
    if (!/^https?:\/\/[^\s/]+/.test(file.url))
      issues.push({ path: `${at}.url`, message: `must be an http(s) URL (got ${JSON.stringify(file.url)})` });
    const refetch = file.refresh_unknown_kid ?? {};
    const enabled = refetch.enabled ?? true;
    if (!enabled && refetch.interval !== undefined)
      issues.push({
        path: `${at}.refresh_unknown_kid.interval`,
        message: 'does nothing while refresh_unknown_kid.enabled is false',
      });
    const unknownKidRefetchMs = issues.duration(
      `${at}.refresh_unknown_kid.interval`,
      refetch.interval ?? DEFAULTS.authentication.unknownKidInterval,
    );
    source = {
      kind: 'url',
      url: file.url,
      refreshIntervalMs: issues.duration(
        `${at}.refresh_interval`,
        file.refresh_interval ?? DEFAULTS.authentication.refreshInterval,
        true,
      ),
      ...(enabled ? { unknownKidRefetchMs } : {}),
    };
  } else {
    for (const key of ['refresh_interval', 'refresh_unknown_kid'] as const)
      if (file[key] !== undefined)
        issues.push({
          path: `${at}.${key}`,
          message: 'applies to a url key set only; a local set is read once',
        });
    source =
      file.file !== undefined
        ? { kind: 'file', path: filePath(file.file) }
        : { kind: 'inline', keys: inlineKeys(file.keys ?? [], `${at}.keys`, issues) };
  }
  const algorithms = file.algorithms ?? [...ASYMMETRIC_ALGORITHMS];
  algorithms.forEach((alg, i) => {
    if (!(ASYMMETRIC_ALGORITHMS as readonly string[]).includes(alg))
      issues.push({
        path: `${at}.algorithms[${i}]`,
        message: `${JSON.stringify(alg)} is not accepted: ${
          /^HS/i.test(alg) || alg.toLowerCase() === 'none'
            ? 'only asymmetric algorithms verify against a public key set (a symmetric or unsigned token could be made by anyone)'
            : 'unknown algorithm'
        }; use ${ASYMMETRIC_ALGORITHMS.join(', ')}`,
      });
  });
  return {
    source,
    at,
    algorithms,
    audiences: file.audiences ?? [],
    ...(file.issuer !== undefined ? { issuer: file.issuer } : {}),
  };
}

function inlineKeys(keys: Record<string, unknown>[], at: string, issues: Issues): Record<string, unknown>[] {
  keys.forEach((key, i) => {
    const kty = key.kty;
    if (typeof kty !== 'string')
      issues.push({
        path: `${at}[${i}].kty`,
        message: 'is required: a JWK needs its key type (RSA, EC or OKP)',
      });
    else if (kty === 'oct')
      issues.push({
        path: `${at}[${i}].kty`,
        message: '"oct" (a shared secret) is not accepted: tokens are verified with public keys only',
      });
    const secret = PRIVATE_MEMBERS.filter((m) => m in key && kty !== 'oct');
    if (secret.length > 0)
      issues.push({
        path: `${at}[${i}]`,
        message: `holds private key material (${secret.join(', ')}); give the public key only`,
      });
  });
  return keys;
}

export function authorizationConfig(
  file: RouterConfigFile['authorization'],
  jwt: JwtConfig | undefined,
  issues: Issues,
): AuthorizationConfig {
  const requireAuthentication = file?.require_authentication ?? false;
  if (requireAuthentication && !jwt)
    issues.push({
      path: 'authorization.require_authentication',
      message: 'needs authentication.jwt: without key sets no client could ever authenticate',
    });
  return {
    requireAuthentication,
    rejectOperationIfUnauthorized: file?.reject_operation_if_unauthorized ?? false,
  };
}
