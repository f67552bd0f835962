/**
 * The router.yaml a Supergraph's routers run with, and the pod wiring its secrets need.
 *
 * Invariants:
 * - No secret value ever enters router.yaml. Credentials appear only as `${ENV}` references
 *   (filled from `secretKeyRef` env vars) or as paths of files mounted from Secrets (NATS creds,
 *   CA certificates). The renderer never sees a Secret's data at all.
 * - The keys the pod wiring depends on (listen address, metrics listener, execution config path,
 *   shutdown delay) belong to the operator; `spec.router.config` may change everything else and
 *   an attempt to change these is ignored with a warning.
 * - Env var names are a function of (providerId, field) alone, so the reconciler, the tests and a
 *   human reading `kubectl describe pod` agree on them.
 * - `spec.router.authentication` becomes `authentication.jwt` and `authorization` in router.yaml;
 *   a key set from a Secret is a file mounted from it (`jwksBindings`), named in router.yaml by
 *   path only.
 */
import { createHash } from 'node:crypto';
import { parseRouterConfig, RouterConfigError } from '@edfs/router/config';
import { stringify } from 'yaml';
import type { EventProvider, SecretKeyRef, Supergraph } from '../api/v1alpha1.js';
import { getPath, isPlainObject, mergePatch, setPath, sortKeysDeep } from './merge.js';
import {
  CONFIG_DIR,
  CONFIG_JSON_KEY,
  DEFAULT_DRAIN_SECONDS,
  ROUTER_HTTP_PORT,
  ROUTER_METRICS_PORT,
  SECRETS_DIR,
} from './meta.js';

/** What a Secret key feeds: an env var (token, username, password) or a file (creds, ca). */
export type SecretField = 'token' | 'username' | 'password' | 'creds' | 'ca';

export interface SecretBinding {
  providerId: string;
  field: SecretField;
  secret: { name: string; key: string };
  /** Set for fields passed as environment variables. */
  env?: string;
  /** Set for fields passed as files: the volume, where it is mounted and the file's path. */
  file?: { volume: string; mountPath: string; fileName: string; path: string };
}

export interface EnvVar {
  name: string;
  valueFrom: { secretKeyRef: { name: string; key: string } };
}

export interface RenderedRouterConfig {
  /** router.yaml as an object (snake_case keys). */
  config: Record<string, unknown>;
  /** router.yaml as written to the ConfigMap. */
  yaml: string;
  /** sha256 of `yaml`. */
  hash: string;
  env: EnvVar[];
  volumes: Record<string, unknown>[];
  volumeMounts: Record<string, unknown>[];
  /** The GraphQL path and metrics path the routers serve (after overrides). */
  graphqlPath: string;
  metricsPath: string;
  warnings: string[];
}

/**
 * The env var carrying `field` of provider `providerId`: `EDFS_PROVIDER_<ID>_<FIELD>`, with the id
 * upper-cased and every run of other characters than letters and digits turned into `_`
 * (`envVarName('my-nats', 'token')` is `EDFS_PROVIDER_MY_NATS_TOKEN`).
 */
export function envVarName(providerId: string, field: string): string {
  return `EDFS_PROVIDER_${envPart(providerId)}_${envPart(field)}`;
}

function envPart(text: string): string {
  return text
    .toUpperCase()
    .replace(/[^A-Z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
}

/** The id the schema's directives use for this provider (`spec.providerId`, default the name). */
export function providerIdOf(provider: EventProvider): string {
  return provider.spec.providerId || provider.metadata.name;
}

/**
 * Every Secret key a provider references and how it reaches the router. The reconciler watches
 * these Secrets and the EventProvider reconciler checks that each key exists.
 */
export function secretBindings(provider: EventProvider): SecretBinding[] {
  const providerId = providerIdOf(provider);
  const out: SecretBinding[] = [];
  const asEnv = (field: SecretField, name: string, key: string) =>
    out.push({ providerId, field, secret: { name, key }, env: envVarName(providerId, field) });
  const asFile = (field: SecretField, name: string, key: string, fileName: string) => {
    const volume = `ep-${dnsPart(providerId)}-${field}`;
    const mountPath = `${SECRETS_DIR}/${volume}`;
    out.push({
      providerId,
      field,
      secret: { name, key },
      file: { volume, mountPath, fileName, path: `${mountPath}/${fileName}` },
    });
  };
  const nats = provider.spec.nats;
  if (nats) {
    const auth = nats.auth ?? {};
    if (auth.tokenSecretRef) asEnv('token', auth.tokenSecretRef.name, auth.tokenSecretRef.key);
    if (auth.userPasswordSecretRef) {
      const ref = auth.userPasswordSecretRef;
      asEnv('username', ref.name, ref.usernameKey ?? 'username');
      asEnv('password', ref.name, ref.passwordKey ?? 'password');
    }
    if (auth.credsSecretRef) asFile('creds', auth.credsSecretRef.name, auth.credsSecretRef.key, 'user.creds');
    if (nats.tls?.caSecretRef) asFile('ca', nats.tls.caSecretRef.name, nats.tls.caSecretRef.key, 'ca.crt');
  } else if (provider.spec.kafka?.sasl) {
    const ref = provider.spec.kafka.sasl.secretRef;
    asEnv('username', ref.name, ref.usernameKey ?? 'username');
    asEnv('password', ref.name, ref.passwordKey ?? 'password');
  }
  return out;
}

/** A DNS-label-safe, injective form of a provider id (a hash suffix when it had to change). */
function dnsPart(providerId: string): string {
  const clean = providerId
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-|-$/g, '');
  if (clean === providerId && clean.length <= 40) return clean;
  const hash = createHash('sha256').update(providerId).digest('hex').slice(0, 8);
  return `${clean.slice(0, 30).replace(/-$/, '')}-${hash}`.replace(/^-/, '');
}

/** A key set (JWKS) from a Secret, mounted as a file: where, and from which Secret key. */
export interface JwksBinding {
  /** Its index in `spec.router.authentication.jwt.jwks`. */
  index: number;
  secret: SecretKeyRef;
  file: { volume: string; mountPath: string; fileName: string; path: string };
}

/** The key sets of `spec.router.authentication` that come from Secrets (watched, hashed, mounted). */
export function jwksBindings(supergraph: Supergraph): JwksBinding[] {
  const out: JwksBinding[] = [];
  (supergraph.spec.router?.authentication?.jwt?.jwks ?? []).forEach((source, index) => {
    if (!source.secretRef) return;
    const volume = `jwks-${index}`;
    const mountPath = `${SECRETS_DIR}/${volume}`;
    out.push({
      index,
      secret: { name: source.secretRef.name, key: source.secretRef.key },
      file: { volume, mountPath, fileName: 'jwks.json', path: `${mountPath}/jwks.json` },
    });
  });
  return out;
}

/** `spec.router.authentication` as router.yaml's `authentication` and `authorization` sections. */
function authenticationSections(supergraph: Supergraph, jwks: JwksBinding[]): Record<string, unknown> {
  const auth = supergraph.spec.router?.authentication;
  if (!auth) return {};
  const jwt: Record<string, unknown> = {
    jwks: auth.jwt.jwks.map((source, index) => {
      const entry: Record<string, unknown> = {};
      if (source.url !== undefined) entry.url = source.url;
      const binding = jwks.find((b) => b.index === index);
      if (binding) entry.file = binding.file.path;
      if (source.refreshInterval !== undefined) entry.refresh_interval = source.refreshInterval;
      if (source.algorithms) entry.algorithms = [...source.algorithms];
      if (source.audiences) entry.audiences = [...source.audiences];
      if (source.issuer !== undefined) entry.issuer = source.issuer;
      return entry;
    }),
  };
  if (auth.jwt.headerName !== undefined) jwt.header_name = auth.jwt.headerName;
  if (auth.jwt.headerValuePrefix !== undefined) jwt.header_value_prefix = auth.jwt.headerValuePrefix;
  if (auth.jwt.clockSkew !== undefined) jwt.clock_skew = auth.jwt.clockSkew;
  const sections: Record<string, unknown> = { authentication: { jwt } };
  if (auth.requireAuthentication !== undefined)
    sections.authorization = { require_authentication: auth.requireAuthentication };
  return sections;
}

/** router.yaml keys the pod wiring relies on; `spec.router.config` cannot change them. */
const OPERATOR_OWNED: readonly (readonly string[])[] = [
  ['listen_addr'],
  ['execution_config'],
  ['shutdown_delay'],
  ['telemetry', 'metrics', 'prometheus', 'enabled'],
  ['telemetry', 'metrics', 'prometheus', 'listen_addr'],
];

export function drainSecondsOf(supergraph: Supergraph): number {
  return supergraph.spec.router?.drainSeconds ?? DEFAULT_DRAIN_SECONDS;
}

/**
 * Renders router.yaml for `supergraph` with `providers` (those the composed schema uses). Providers
 * are ordered by id; a second provider with an id (or env name) already taken is left out with a
 * warning, since the router would refuse the duplicate.
 */
export function renderRouterConfig(supergraph: Supergraph, providers: EventProvider[]): RenderedRouterConfig {
  const warnings: string[] = [];
  const nats: Record<string, unknown>[] = [];
  const kafka: Record<string, unknown>[] = [];
  const bindings: SecretBinding[] = [];
  const usedIds = new Map<string, string>();
  const usedEnv = new Map<string, string>();

  const ordered = [...providers].sort(
    (a, b) => compare(providerIdOf(a), providerIdOf(b)) || compare(a.metadata.name, b.metadata.name),
  );
  for (const provider of ordered) {
    const id = providerIdOf(provider);
    const where = `EventProvider "${provider.metadata.namespace}/${provider.metadata.name}"`;
    const taken = usedIds.get(id) ?? usedEnv.get(envPart(id));
    if (taken !== undefined) {
      warnings.push(
        `${where}: provider id "${id}" clashes with ${taken} (same id or same env var prefix ${envVarName(id, '')}); left out of router.yaml`,
      );
      continue;
    }
    if (!provider.spec.nats === !provider.spec.kafka) {
      warnings.push(`${where}: needs exactly one of spec.nats or spec.kafka; left out of router.yaml`);
      continue;
    }
    usedIds.set(id, where);
    usedEnv.set(envPart(id), where);
    const own = secretBindings(provider);
    bindings.push(...own);
    const ref = (field: SecretField) => {
      const binding = own.find((b) => b.field === field);
      return binding?.env !== undefined ? `\${${binding.env}}` : (binding?.file?.path ?? '');
    };

    if (provider.spec.nats) {
      const spec = provider.spec.nats;
      const entry: Record<string, unknown> = { id, url: spec.url };
      const auth = spec.auth ?? {};
      if (auth.tokenSecretRef) entry.authentication = { token: ref('token') };
      else if (auth.userPasswordSecretRef)
        entry.authentication = { user_info: { username: ref('username'), password: ref('password') } };
      else if (auth.credsSecretRef) entry.authentication = { creds_file: ref('creds') };
      if (spec.tls?.enabled || spec.tls?.caSecretRef) {
        entry.tls = spec.tls.caSecretRef ? { enabled: true, ca_file: ref('ca') } : { enabled: true };
      }
      nats.push(entry);
    } else if (provider.spec.kafka) {
      const spec = provider.spec.kafka;
      const entry: Record<string, unknown> = { id, brokers: [...spec.brokers] };
      if (spec.sasl) {
        const credentials = { username: ref('username'), password: ref('password') };
        const mechanism = spec.sasl.mechanism;
        entry.authentication =
          mechanism === 'SCRAM-SHA-256' || mechanism === 'SCRAM-SHA-512'
            ? { sasl_scram: { ...credentials, mechanism } }
            : { sasl_plain: credentials };
      }
      if (spec.tls?.enabled) entry.tls = { enabled: true };
      kafka.push(entry);
    }
  }

  const generated: Record<string, unknown> = {
    version: '1',
    listen_addr: `0.0.0.0:${ROUTER_HTTP_PORT}`,
    graphql_path: '/graphql',
    execution_config: { file: { path: `${CONFIG_DIR}/${CONFIG_JSON_KEY}`, watch: true } },
  };
  if (nats.length > 0 || kafka.length > 0) {
    const list: Record<string, unknown> = {};
    if (nats.length > 0) list.nats = nats;
    if (kafka.length > 0) list.kafka = kafka;
    generated.events = { providers: list };
  }
  generated.telemetry = {
    metrics: {
      prometheus: { enabled: true, listen_addr: `0.0.0.0:${ROUTER_METRICS_PORT}`, path: '/metrics' },
    },
  };
  generated.shutdown_delay = `${drainSecondsOf(supergraph)}s`;
  const jwks = jwksBindings(supergraph);
  Object.assign(generated, authenticationSections(supergraph, jwks));

  let config = generated;
  const overrides = supergraph.spec.router?.config;
  if (isPlainObject(overrides) && Object.keys(overrides).length > 0) {
    config = mergePatch(generated, overrides) as Record<string, unknown>;
    for (const path of OPERATOR_OWNED) {
      const want = getPath(generated, path);
      const got = getPath(config, path);
      if (JSON.stringify(sortKeysDeep(got)) !== JSON.stringify(sortKeysDeep(want))) {
        const hint = path[0] === 'shutdown_delay' ? ' (set spec.router.drainSeconds instead)' : '';
        warnings.push(
          `spec.router.config.${path.join('.')} is set by the operator${hint}; the override is ignored`,
        );
        config = setPath(config, path, want);
      }
    }
  }

  const name = `${supergraph.metadata.namespace}/${supergraph.metadata.name}`;
  const yaml =
    `# Generated by edfs-operator for Supergraph ${name}; edits here are overwritten.\n` +
    `# Change spec.router.config of the Supergraph instead. Secrets are \${ENV} references\n` +
    `# filled from the pod's environment, or files mounted from Secrets.\n` +
    stringify(config, { lineWidth: 0 });

  const env = bindings
    .filter((b) => b.env !== undefined)
    .map((b): EnvVar => ({ name: b.env!, valueFrom: { secretKeyRef: { ...b.secret } } }))
    .sort((a, b) => compare(a.name, b.name));
  const files = bindings
    .filter((b) => b.file !== undefined)
    .sort((a, b) => compare(a.file!.volume, b.file!.volume));
  const mounted = [
    ...files.map((b) => ({ secret: b.secret, file: b.file! })),
    ...jwks.map((b) => ({ secret: b.secret, file: b.file })),
  ];
  const volumes = mounted.map((b) => ({
    name: b.file.volume,
    secret: { secretName: b.secret.name, items: [{ key: b.secret.key, path: b.file.fileName }] },
  }));
  const volumeMounts = mounted.map((b) => ({
    name: b.file.volume,
    mountPath: b.file.mountPath,
    readOnly: true,
  }));

  const graphqlPath = getPath(config, ['graphql_path']);
  const metricsPath = getPath(config, ['telemetry', 'metrics', 'prometheus', 'path']);
  return {
    config,
    yaml,
    hash: sha256(yaml),
    env,
    volumes,
    volumeMounts,
    graphqlPath: typeof graphqlPath === 'string' ? graphqlPath : '/graphql',
    metricsPath: typeof metricsPath === 'string' ? metricsPath : '/metrics',
    warnings,
  };
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * What the router would refuse in a rendered router.yaml, as its own loader words it (one line
 * per problem, naming the key). Secret references are filled with placeholders: only the
 * structure and the values written in the Supergraph are checked. Empty when the routers will
 * start with it.
 */
export function routerYamlProblems(yaml: string, envNames: readonly string[]): string[] {
  try {
    parseRouterConfig(yaml, {
      env: Object.fromEntries(envNames.map((name) => [name, 'placeholder'])),
      baseDir: CONFIG_DIR,
      source: 'router.yaml',
    });
    return [];
  } catch (err) {
    if (!(err instanceof RouterConfigError)) return [`router.yaml: ${(err as Error).message}`];
    return err.issues.map((issue) =>
      issue.path ? `spec.router.config: ${issue.path}: ${issue.message}` : `router.yaml: ${issue.message}`,
    );
  }
}
