/**
 * The public keys tokens are verified with: one `KeySet` per `authentication.jwt.jwks` entry.
 *
 * A `url` set is fetched at start, then again every `refresh_interval` in the background. A fetch
 * that fails, or answers something that is not a JWKS, keeps the last good keys (an identity
 * provider's hiccup must not log every client out). A token whose `kid` no key has is usually a
 * key rotation: the set is fetched again at once, but at most once per `refresh_unknown_kid`
 * interval, so a client sending made-up key ids cannot make the router hammer the provider.
 * Concurrent refetches share one request.
 *
 * A `file` or `keys` set is read once, at start; a file that cannot be read or is not a JWKS
 * stops the start with the key to fix.
 *
 * Invariants: verification never waits on the network except for an unknown-`kid` refetch; every
 * timer is unref'd and cleared by `close()`.
 */
import { readFile } from 'node:fs/promises';
import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { Logger } from 'pino';
import type { KeySetConfig } from '../config/types.js';

/** How long one JWKS fetch may take. */
const FETCH_TIMEOUT_MS = 5000;

export interface KeySet {
  readonly config: KeySetConfig;
  /** jose's key lookup over the current keys; throws `JWKSNoMatchingKey` for an unknown `kid`. */
  readonly getKey: JWTVerifyGetKey;
  /** An unknown `kid`: fetches the set again when allowed; true when new keys came. */
  refreshForUnknownKid(): Promise<boolean>;
  /** true once keys are there; otherwise why not (for /health/ready). */
  ready(): true | string;
  close(): void;
}

/** Builds and loads every key set; a local set that cannot be read rejects, naming its key. */
export async function loadKeySets(configs: readonly KeySetConfig[], logger: Logger): Promise<KeySet[]> {
  const sets: KeySet[] = [];
  const remote: RemoteKeySet[] = [];
  try {
    for (const config of configs) {
      const source = config.source;
      if (source.kind === 'url') {
        const set = new RemoteKeySet(
          config,
          source.url,
          source.refreshIntervalMs,
          source.unknownKidRefetchMs,
          logger,
        );
        sets.push(set);
        remote.push(set);
      } else if (source.kind === 'file') {
        let text: string;
        try {
          text = await readFile(source.path, 'utf8');
        } catch (err) {
          throw new Error(`${config.at}.file: cannot read ${source.path}: ${(err as Error).message}`, {
            cause: err,
          });
        }
        sets.push(new LocalKeySet(config, parseKeySet(text, `${config.at}.file (${source.path})`)));
      } else sets.push(new LocalKeySet(config, checkKeySet({ keys: source.keys }, `${config.at}.keys`)));
    }
  } catch (err) {
    for (const set of sets) set.close();
    throw err;
  }
  // First fetches side by side: an identity provider that does not answer delays the start once.
  await Promise.all(remote.map((set) => set.start()));
  return sets;
}

function parseKeySet(text: string, where: string): JSONWebKeySet {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${where}: not JSON: ${(err as Error).message}`, { cause: err });
  }
  return checkKeySet(json, where);
}

/** A JWKS of public keys, or an error saying what is wrong with it. */
function checkKeySet(json: unknown, where: string): JSONWebKeySet {
  const keys = (json as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new Error(`${where}: not a JWKS (expected {"keys": [...]})`);
  for (const key of keys as Record<string, unknown>[]) {
    if (key === null || typeof key !== 'object') throw new Error(`${where}: a key is not an object`);
    if (key.kty === 'oct' || 'd' in key)
      throw new Error(
        `${where}: holds a secret or private key; a key set for verification holds public keys only`,
      );
  }
  return json as JSONWebKeySet;
}

class LocalKeySet implements KeySet {
  readonly getKey: JWTVerifyGetKey;
  constructor(
    readonly config: KeySetConfig,
    jwks: JSONWebKeySet,
  ) {
    this.getKey = createLocalJWKSet(jwks);
  }
  refreshForUnknownKid(): Promise<boolean> {
    return Promise.resolve(false);
  }
  ready(): true {
    return true;
  }
  close(): void {}
}

class RemoteKeySet implements KeySet {
  private current: JWTVerifyGetKey | undefined;
  private lastError = 'not fetched yet';
  private lastAttempt = 0;
  private inFlight: Promise<boolean> | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private closed = false;

  constructor(
    readonly config: KeySetConfig,
    private readonly url: string,
    private readonly refreshIntervalMs: number,
    private readonly unknownKidRefetchMs: number | undefined,
    private readonly logger: Logger,
  ) {}

  /** The first fetch (its failure is logged and retried, not thrown), then the refresh timer. */
  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.refreshIntervalMs);
    this.timer.unref();
  }

  readonly getKey: JWTVerifyGetKey = (header, token) => {
    if (!this.current) throw new Error(`no signing keys from ${this.url} yet (${this.lastError})`);
    return this.current(header, token);
  };

  refreshForUnknownKid(): Promise<boolean> {
    if (this.inFlight) return this.inFlight;
    if (this.unknownKidRefetchMs === undefined) return Promise.resolve(false);
    if (Date.now() - this.lastAttempt < this.unknownKidRefetchMs) return Promise.resolve(false);
    return this.refresh();
  }

  ready(): true | string {
    return this.current ? true : `no signing keys from ${this.url} yet: ${this.lastError}`;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
  }

  /** One fetch at a time; true when it brought a key set. */
  private refresh(): Promise<boolean> {
    this.inFlight ??= this.fetchOnce().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async fetchOnce(): Promise<boolean> {
    this.lastAttempt = Date.now();
    try {
      const response = await fetch(this.url, {
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const jwks = parseKeySet(await response.text(), this.url);
      if (this.closed) return false;
      this.current = createLocalJWKSet(jwks);
      return true;
    } catch (err) {
      this.lastError = (err as Error).message;
      this.logger.warn(
        { url: this.url, error: this.lastError, keepingLastKeys: this.current !== undefined },
        'JWKS fetch failed',
      );
      return false;
    }
  }
}
