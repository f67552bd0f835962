/**
 * Where `edfs compose` finds its subgraphs: Kubernetes manifests (Subgraph, Supergraph,
 * EventProvider, ConfigMap; multi-document YAML, `kind: List` too) or a Cosmo `graph.yaml`.
 *
 * Reading is split from deciding: `readComposeSources` only parses files; `selectSubgraphs` and
 * `subgraphInputFromManifest` are pure and mirror what the Supergraph reconciler does in a
 * cluster, so a pre-merge check composes exactly what the operator will compose.
 * Every error names the file and, where there is one, the object to fix; all errors found are
 * reported together rather than stopping at the first.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type {
  CompositionError,
  SubgraphInput,
  SubscriptionProtocol,
  WebsocketSubprotocol,
} from './compose.js';
import { API_VERSION, GROUP, type LabelSelector } from '../api/v1alpha1.js';
import { InvalidLabelSelectorError, matchesLabelSelector } from './label-selector.js';
const DEFAULT_NAMESPACE = 'default';

export interface ObjectMeta {
  name: string;
  namespace: string;
  labels: Record<string, string>;
}

/** An object read from a file; `file` prefixes error messages (empty for objects from the API). */
export interface Manifest<Spec> {
  kind: string;
  metadata: ObjectMeta;
  spec: Spec;
  file: string;
}

export interface SubgraphSpec {
  routingUrl?: string;
  schema?: { sdl?: string; configMapRef?: { name?: string; key?: string } };
  subscription?: { url?: string; protocol?: string; websocketSubprotocol?: string };
}

export interface SupergraphSpec {
  subgraphSelector?: LabelSelector;
  [field: string]: unknown;
}

export type SubgraphManifest = Manifest<SubgraphSpec>;
export type SupergraphManifest = Manifest<SupergraphSpec>;
export type EventProviderManifest = Manifest<Record<string, unknown>>;

export interface ConfigMapManifest {
  metadata: ObjectMeta;
  data: Record<string, string>;
  file: string;
}

export interface ComposeSources {
  subgraphs: SubgraphManifest[];
  supergraphs: SupergraphManifest[];
  /** Not needed to compose; collected so callers can check provider ids or render router config. */
  eventProviders: EventProviderManifest[];
  configMaps: ConfigMapManifest[];
  /** Subgraphs listed in Cosmo graph.yaml files, schema files already read. */
  graphYamlSubgraphs: SubgraphInput[];
}

/** One or more problems with the inputs, each a line the user can act on. */
export class ComposeInputError extends Error {
  override name = 'ComposeInputError';
  constructor(readonly errors: CompositionError[]) {
    super(errors.map((e) => (e.subgraph ? `subgraph "${e.subgraph}": ${e.message}` : e.message)).join('\n'));
  }
}

export interface LoadOptions {
  /** Which Supergraph's selector to apply when the inputs hold more than one: `name` or `namespace/name`. */
  supergraph?: string;
}

/**
 * Reads files and directories (recursively, `*.yaml`/`*.yml`; `-` is stdin) and returns the
 * subgraphs to compose: those selected by the Supergraph in the inputs (or `opts.supergraph`),
 * all Subgraphs when there is none, plus every graph.yaml subgraph.
 */
export function loadComposeInputs(paths: string[], opts: LoadOptions = {}): SubgraphInput[] {
  const sources = readComposeSources(paths);
  const selected = selectSubgraphs(sources, opts.supergraph);
  const errors: CompositionError[] = [];
  const inputs: SubgraphInput[] = [...sources.graphYamlSubgraphs];
  const configMaps = new Map(
    sources.configMaps.map((cm) => [`${cm.metadata.namespace}/${cm.metadata.name}`, cm]),
  );
  for (const subgraph of selected) {
    const result = subgraphInputFromManifest(
      subgraph,
      (namespace, name) => configMaps.get(`${namespace}/${name}`)?.data,
    );
    if ('error' in result) errors.push(result.error);
    else inputs.push(result);
  }
  if (errors.length > 0) throw new ComposeInputError(errors);
  if (inputs.length === 0) {
    throw new ComposeInputError([{ message: `no Subgraph found in ${paths.join(', ')}` }]);
  }
  return inputs;
}

/**
 * The Subgraphs a Supergraph composes: those in its namespace matching its `subgraphSelector`.
 * Without a Supergraph in the sources, all Subgraphs. With several, `supergraphName` (`name` or
 * `namespace/name`) picks one.
 */
export function selectSubgraphs(sources: ComposeSources, supergraphName?: string): SubgraphManifest[] {
  const { supergraphs, subgraphs } = sources;
  let supergraph: SupergraphManifest | undefined;
  if (supergraphName !== undefined) {
    const named = supergraphs.filter((s) =>
      supergraphName.includes('/')
        ? `${s.metadata.namespace}/${s.metadata.name}` === supergraphName
        : s.metadata.name === supergraphName,
    );
    if (named.length === 0) {
      throw new ComposeInputError([
        {
          message:
            `Supergraph "${supergraphName}" not found in the inputs` +
            (supergraphs.length > 0 ? ` (found: ${describeNames(supergraphs)})` : ''),
        },
      ]);
    }
    if (named.length > 1) {
      throw new ComposeInputError([
        { message: `Supergraph "${supergraphName}" is defined more than once: ${describeNames(named)}` },
      ]);
    }
    supergraph = named[0];
  } else if (supergraphs.length > 1) {
    throw new ComposeInputError([
      {
        message: `the inputs define ${supergraphs.length} Supergraphs (${describeNames(supergraphs)}); choose one with --supergraph NAME`,
      },
    ]);
  } else {
    supergraph = supergraphs[0];
  }
  if (!supergraph) return subgraphs;

  const { namespace } = supergraph.metadata;
  try {
    return subgraphs.filter(
      (s) =>
        s.metadata.namespace === namespace &&
        matchesLabelSelector(supergraph.spec.subgraphSelector, s.metadata.labels),
    );
  } catch (err) {
    if (!(err instanceof InvalidLabelSelectorError)) throw err;
    throw new ComposeInputError([
      {
        message: `${supergraph.file}: Supergraph "${supergraph.metadata.name}": spec.subgraphSelector.${err.message}`,
      },
    ]);
  }
}

/**
 * Turns a Subgraph object into a composition input. `lookupConfigMap(namespace, name)` returns a
 * ConfigMap's data (or undefined when there is none) for `spec.schema.configMapRef`.
 */
export function subgraphInputFromManifest(
  subgraph: SubgraphManifest,
  lookupConfigMap: (namespace: string, name: string) => Record<string, string> | undefined,
): SubgraphInput | { error: CompositionError } {
  const { name, namespace } = subgraph.metadata;
  const where = subgraph.file ? `${subgraph.file}: ` : '';
  const fail = (message: string) => ({ error: { subgraph: name, message: `${where}${message}` } });
  const spec = subgraph.spec;
  const schema = spec.schema ?? {};
  const hasSdl = schema.sdl !== undefined && schema.sdl !== null;
  const ref = schema.configMapRef;
  if (hasSdl === (ref !== undefined && ref !== null)) {
    return fail('spec.schema needs exactly one of sdl or configMapRef');
  }

  let sdl: string;
  if (hasSdl) {
    if (typeof schema.sdl !== 'string') return fail('spec.schema.sdl must be a string');
    sdl = schema.sdl;
  } else {
    if (typeof ref?.name !== 'string' || typeof ref.key !== 'string') {
      return fail('spec.schema.configMapRef needs name and key');
    }
    const data = lookupConfigMap(namespace, ref.name);
    if (data === undefined) {
      return fail(
        `ConfigMap "${ref.name}" (namespace "${namespace}") referenced by spec.schema.configMapRef not found`,
      );
    }
    const value = data[ref.key];
    if (typeof value !== 'string') {
      return fail(`ConfigMap "${ref.name}" (namespace "${namespace}") has no key "${ref.key}"`);
    }
    sdl = value;
  }

  for (const [field, value] of [
    ['routingUrl', spec.routingUrl],
    ['subscription.url', spec.subscription?.url],
    ['subscription.protocol', spec.subscription?.protocol],
    ['subscription.websocketSubprotocol', spec.subscription?.websocketSubprotocol],
  ] as const) {
    if (value !== undefined && value !== null && typeof value !== 'string') {
      return fail(`spec.${field} must be a string`);
    }
  }
  return dropUndefined({
    name,
    routingUrl: spec.routingUrl ?? undefined,
    sdl,
    subscriptionUrl: spec.subscription?.url ?? undefined,
    // Values are checked by composeSupergraph, which names the subgraph.
    subscriptionProtocol: (spec.subscription?.protocol ?? undefined) as SubscriptionProtocol | undefined,
    websocketSubprotocol: (spec.subscription?.websocketSubprotocol ?? undefined) as
      WebsocketSubprotocol | undefined,
  });
}

/** Parses every YAML file under `paths`; throws ComposeInputError listing all problems found. */
export function readComposeSources(paths: string[]): ComposeSources {
  const sources: ComposeSources = {
    subgraphs: [],
    supergraphs: [],
    eventProviders: [],
    configMaps: [],
    graphYamlSubgraphs: [],
  };
  const errors: CompositionError[] = [];
  for (const file of expandPaths(paths, errors)) {
    let text: string;
    try {
      text = readFileSync(file === '-' ? 0 : file, 'utf8');
    } catch (err) {
      errors.push({ message: `${file}: cannot read: ${(err as Error).message}` });
      continue;
    }
    readYamlText(file === '-' ? '<stdin>' : file, text, sources, errors);
  }
  if (errors.length > 0) throw new ComposeInputError(errors);
  return sources;
}

function expandPaths(paths: string[], errors: CompositionError[]): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => compare(a.name, b.name))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!entry.name.startsWith('.') && entry.name !== 'node_modules') walk(path);
      } else if (/\.ya?ml$/i.test(entry.name)) {
        files.push(path);
      }
    }
  };
  for (const path of paths) {
    if (path === '-') {
      files.push(path);
      continue;
    }
    let isDirectory: boolean;
    try {
      isDirectory = statSync(path).isDirectory();
    } catch {
      errors.push({ message: `${path}: no such file or directory` });
      continue;
    }
    if (isDirectory) walk(path);
    else files.push(path);
  }
  return [...new Set(files)];
}

function readYamlText(file: string, text: string, sources: ComposeSources, errors: CompositionError[]): void {
  for (const document of parseAllDocuments(text)) {
    const syntaxError = document.errors[0];
    if (syntaxError) {
      const firstLine = (syntaxError.message.split('\n')[0] ?? '').replace(/:$/, '');
      errors.push({ message: `${file}: invalid YAML: ${firstLine}` });
      continue;
    }
    let value: unknown;
    try {
      value = document.toJS();
    } catch (err) {
      errors.push({ message: `${file}: invalid YAML: ${(err as Error).message}` });
      continue;
    }
    readObject(file, dirname(file === '<stdin>' ? '.' : file), value, sources, errors);
  }
}

function readObject(
  file: string,
  dir: string,
  value: unknown,
  sources: ComposeSources,
  errors: CompositionError[],
): void {
  if (!isRecord(value)) return;
  const { apiVersion, kind } = value;
  if (apiVersion === undefined && kind === undefined) {
    if ('subgraphs' in value && 'version' in value) readGraphYaml(file, dir, value, sources, errors);
    return;
  }
  if (kind === 'List' && Array.isArray(value.items)) {
    for (const item of value.items) readObject(file, dir, item, sources, errors);
    return;
  }
  if (apiVersion === 'v1' && kind === 'ConfigMap') {
    const data = isRecord(value.data) ? value.data : {};
    sources.configMaps.push({ metadata: readMetadata(value), data: stringValues(data), file });
    return;
  }
  if (typeof apiVersion !== 'string' || !apiVersion.startsWith(`${GROUP}/`)) return;

  const metadata = readMetadata(value);
  const where = `${file}: ${String(kind)} "${metadata.name}"`;
  if (apiVersion !== API_VERSION) {
    errors.push({ message: `${where}: unsupported apiVersion "${apiVersion}" (expected ${API_VERSION})` });
    return;
  }
  if (metadata.name === '') {
    errors.push({ message: `${file}: ${String(kind)} without metadata.name` });
    return;
  }
  const spec = value.spec ?? {};
  if (!isRecord(spec)) {
    errors.push({ message: `${where}: spec must be a mapping` });
    return;
  }
  switch (kind) {
    case 'Subgraph':
      sources.subgraphs.push({ kind, metadata, spec: spec as SubgraphSpec, file });
      return;
    case 'Supergraph':
      if (
        spec.subgraphSelector !== undefined &&
        spec.subgraphSelector !== null &&
        !isRecord(spec.subgraphSelector)
      ) {
        errors.push({ message: `${where}: spec.subgraphSelector must be a label selector mapping` });
        return;
      }
      sources.supergraphs.push({ kind, metadata, spec: spec as SupergraphSpec, file });
      return;
    case 'EventProvider':
      sources.eventProviders.push({ kind, metadata, spec, file });
      return;
    default:
      errors.push({
        message: `${where}: unknown kind "${String(kind)}" in ${API_VERSION} (expected Subgraph, Supergraph or EventProvider)`,
      });
  }
}

/** Cosmo's `wgc router compose` input, without introspection, plugins or feature flags. */
function readGraphYaml(
  file: string,
  dir: string,
  value: Record<string, unknown>,
  sources: ComposeSources,
  errors: CompositionError[],
): void {
  if (value.version !== 1) {
    errors.push({
      message: `${file}: graph.yaml version ${JSON.stringify(value.version)} is not supported (expected 1)`,
    });
    return;
  }
  if (value.feature_flags !== undefined && value.feature_flags !== null) {
    errors.push({ message: `${file}: feature_flags are not supported` });
  }
  if (!Array.isArray(value.subgraphs)) {
    errors.push({ message: `${file}: subgraphs must be a list` });
    return;
  }
  for (const [index, entry] of value.subgraphs.entries()) {
    const name = isRecord(entry) && typeof entry.name === 'string' ? entry.name : '';
    if (!isRecord(entry) || name === '') {
      errors.push({ message: `${file}: subgraphs[${index}] has no name` });
      continue;
    }
    const fail = (message: string) => errors.push({ subgraph: name, message: `${file}: ${message}` });
    if ('plugin' in entry || 'grpc' in entry) {
      fail('plugin and gRPC subgraphs are not supported');
      continue;
    }
    const schemaFile = isRecord(entry.schema) ? entry.schema.file : undefined;
    if (typeof schemaFile !== 'string' || schemaFile === '') {
      fail('schema.file is required (introspection is not supported)');
      continue;
    }
    // Relative to the graph.yaml (to the working directory for stdin); an absolute path as it is.
    const schemaPath = resolve(dir, schemaFile);
    let sdl: string;
    try {
      sdl = readFileSync(schemaPath, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      fail(
        code === 'ENOENT'
          ? `schema file ${schemaPath} not found`
          : `cannot read schema file ${schemaPath}: ${(err as Error).message}`,
      );
      continue;
    }
    const subscription = isRecord(entry.subscription) ? entry.subscription : {};
    sources.graphYamlSubgraphs.push(
      dropUndefined({
        name,
        routingUrl: optionalString(entry.routing_url),
        sdl,
        subscriptionUrl: optionalString(subscription.url),
        subscriptionProtocol: optionalString(subscription.protocol) as SubscriptionProtocol | undefined,
        websocketSubprotocol: optionalString(subscription.websocketSubprotocol) as
          WebsocketSubprotocol | undefined,
      }),
    );
  }
}

function readMetadata(value: Record<string, unknown>): ObjectMeta {
  const metadata = isRecord(value.metadata) ? value.metadata : {};
  return {
    name: typeof metadata.name === 'string' ? metadata.name : '',
    namespace:
      typeof metadata.namespace === 'string' && metadata.namespace !== ''
        ? metadata.namespace
        : DEFAULT_NAMESPACE,
    labels: isRecord(metadata.labels) ? stringValues(metadata.labels) : {},
  };
}

function describeNames(objects: Manifest<unknown>[]): string {
  return objects.map((o) => `${o.metadata.namespace}/${o.metadata.name}`).join(', ');
}

function stringValues(record: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, String(v)]));
}

function optionalString(value: unknown): string | undefined {
  return value === undefined || value === null ? undefined : String(value);
}

function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
