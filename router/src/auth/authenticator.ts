/**
 * Who a client is: finds the token of a request (a header) or of a WebSocket connection (its
 * `connection_init` payload, else its upgrade request's header), verifies it and gives the
 * `AuthContext` the engine reads (engine/types.ts), or says why the client is refused.
 *
 * Verification (jose): signature against the key sets of `authentication.jwt.jwks`, only with the
 * asymmetric algorithms each set accepts (so `alg: none` and a token HMAC-signed with a public key
 * never verify), then `exp`/`nbf` with the configured clock skew, `iss` and `aud` where a set names
 * them. A token is tried against each set in order; the first that verifies it wins.
 *
 * Invariants:
 * - A request with no token is anonymous (`auth` undefined), unless
 *   `authorization.require_authentication` refuses it; a token that is present but does not
 *   verify is always refused, never treated as anonymous.
 * - `expiresAt` is when this router stops accepting the token: `exp` plus the clock skew.
 * - Refusal messages say what is wrong with the token, never anything about the keys.
 */
import { errors, jwtVerify, type JWTPayload } from 'jose';
import type { Logger } from 'pino';
import type { AuthorizationConfig, JwtConfig } from '../config/types.js';
import type { AuthContext } from '../engine/types.js';
import { loadKeySets, type KeySet } from './key-sets.js';

/** `extensions.code` of a refused client: no valid token. */
export const UNAUTHENTICATED = 'UNAUTHENTICATED';
/** `extensions.code` of the last result of an operation whose token expired while it ran. */
export const TOKEN_EXPIRED = 'TOKEN_EXPIRED';

/** Whether a client may go on, and as whom (undefined: anonymous). */
export type AuthOutcome = { ok: true; auth?: AuthContext } | { ok: false; message: string };

type Headers = Readonly<Record<string, string | string[] | undefined>>;

const ANONYMOUS: AuthOutcome = Object.freeze({ ok: true });

export class Authenticator {
  private constructor(
    private readonly jwt: JwtConfig | undefined,
    private readonly authorization: AuthorizationConfig,
    readonly keySets: readonly KeySet[],
  ) {}

  /** Loads the key sets (fetching remote ones once); rejects when a local set cannot be read. */
  static async create(
    authentication: { jwt?: JwtConfig },
    authorization: AuthorizationConfig,
    logger: Logger,
  ): Promise<Authenticator> {
    const sets = authentication.jwt ? await loadKeySets(authentication.jwt.keySets, logger) : [];
    return new Authenticator(authentication.jwt, authorization, sets);
  }

  /** Whether any token is ever looked at. */
  get enabled(): boolean {
    return this.jwt !== undefined;
  }

  /** An HTTP request (GraphQL over HTTP, SSE, multipart): its token is in the configured header. */
  async request(headers: Headers): Promise<AuthOutcome> {
    return this.decide(this.tokenOf(headers));
  }

  /**
   * A WebSocket connection: the token under `payloadKey` in its `connection_init` payload, else the
   * one in its upgrade request's header (`upgradeToken`, from `tokenOf`).
   */
  async connection(
    payload: Readonly<Record<string, unknown>> | undefined,
    payloadKey: string | undefined,
    upgradeToken: TokenLookup,
  ): Promise<AuthOutcome> {
    if (payloadKey !== undefined && payload && payload[payloadKey] !== undefined) {
      const value = payload[payloadKey];
      if (typeof value !== 'string' || value.trim() === '')
        return {
          ok: false,
          message: `connection_init payload.${payloadKey} must be a token (a non-empty string)`,
        };
      return this.decide({ token: this.stripPrefix(value.trim()) });
    }
    return this.decide(upgradeToken);
  }

  close(): void {
    for (const set of this.keySets) set.close();
  }

  private async decide(lookup: TokenLookup): Promise<AuthOutcome> {
    if ('problem' in lookup) return { ok: false, message: lookup.problem };
    if (lookup.token === undefined) {
      if (!this.authorization.requireAuthentication) return ANONYMOUS;
      return {
        ok: false,
        message: `Authentication required: send a token${this.jwt ? ` in the ${this.jwt.headerName} header${this.jwt.headerValuePrefix ? ` as "${this.jwt.headerValuePrefix} <token>"` : ''}` : ''}.`,
      };
    }
    return this.verify(lookup.token);
  }

  /** Verifies one token against the key sets in order. */
  async verify(token: string): Promise<AuthOutcome> {
    const jwt = this.jwt;
    if (!jwt) return ANONYMOUS;
    let failure: unknown;
    for (const set of this.keySets) {
      const { algorithms, issuer, audiences } = set.config;
      const options = {
        algorithms,
        clockTolerance: jwt.clockSkewMs / 1000,
        ...(issuer !== undefined ? { issuer } : {}),
        ...(audiences.length > 0 ? { audience: audiences } : {}),
      };
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          const { payload } = await jwtVerify(token, set.getKey, options);
          return { ok: true, auth: authContext(payload, jwt.clockSkewMs) };
        } catch (err) {
          // An unknown kid may be a key the provider rotated in: fetch the set once more.
          if (attempt === 0 && isNoKey(err) && (await set.refreshForUnknownKid())) continue;
          // Not this set's key or algorithm: another set may have it. Keep the most telling reason.
          if (!failure || (isNoKey(failure) && !isNoKey(err))) failure = err;
          break;
        }
      }
    }
    return { ok: false, message: `Invalid token: ${reason(failure)}.` };
  }

  /**
   * The token in the configured header: of an HTTP request, or of an upgrade request (kept by the
   * connection until its `connection_init`).
   */
  tokenOf(headers: Headers): TokenLookup {
    const jwt = this.jwt;
    if (!jwt) return NO_TOKEN;
    const raw = headers[jwt.headerName];
    const value = (Array.isArray(raw) ? raw[0] : raw)?.trim();
    if (!value) return NO_TOKEN;
    const prefix = jwt.headerValuePrefix;
    if (prefix === '') return { token: value };
    const [scheme, ...rest] = value.split(/\s+/);
    // Another scheme (Basic, ...) is meant for someone else: the client is anonymous here.
    if (scheme!.toLowerCase() !== prefix.toLowerCase()) return NO_TOKEN;
    if (rest.length !== 1)
      return { problem: `Invalid token: the ${jwt.headerName} header must be "${prefix} <token>".` };
    return { token: rest[0]! };
  }

  /** A `connection_init` token may be written with or without the header's scheme. */
  private stripPrefix(value: string): string {
    const prefix = this.jwt?.headerValuePrefix ?? '';
    if (prefix !== '' && value.toLowerCase().startsWith(`${prefix.toLowerCase()} `))
      return value.slice(prefix.length).trim();
    return value;
  }
}

/** A request's token, none, or why what it sent cannot be a token. */
export type TokenLookup = { token: string | undefined } | { problem: string };

const NO_TOKEN: TokenLookup = Object.freeze({ token: undefined });

/** The verified identity; scopes from OAuth's `scope` (space-separated) and `scp` (list or string). */
export function authContext(payload: JWTPayload, clockSkewMs = 0): AuthContext {
  const scopes = new Set<string>();
  const add = (value: unknown) => {
    const list: unknown[] =
      typeof value === 'string' ? value.split(/\s+/) : Array.isArray(value) ? value : [];
    for (const s of list) if (typeof s === 'string' && s !== '') scopes.add(s);
  };
  add(payload.scope);
  add(payload.scp);
  return {
    claims: Object.freeze({ ...payload }),
    scopes,
    ...(typeof payload.exp === 'number' ? { expiresAt: payload.exp * 1000 + clockSkewMs } : {}),
  };
}

function isNoKey(err: unknown): boolean {
  return (
    err instanceof errors.JWKSNoMatchingKey ||
    (err instanceof Error && err.message.startsWith('no signing keys'))
  );
}

/** Why a token was refused, in words a client developer can act on. */
function reason(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'the token has expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'iss') return 'the token was not issued by an accepted issuer (iss)';
    if (err.claim === 'aud') return 'the token is not meant for this audience (aud)';
    if (err.claim === 'nbf') return 'the token is not valid yet (nbf)';
    return `the token's ${err.claim} claim is not valid`;
  }
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported)
    return 'the token is signed with an algorithm that is not accepted';
  if (err instanceof errors.JWKSNoMatchingKey) return 'no key matches the token (kid)';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'the signature does not verify';
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return 'the token is malformed';
  if (err instanceof Error && err.message.startsWith('no signing keys'))
    return 'no signing keys are available yet';
  return 'the token cannot be verified';
}
