/**
 * Reading a Supergraph's inputs out of the caches: the Subgraphs its selector picks, their SDL
 * (inline or from a ConfigMap) and the EventProviders its composed config uses.
 *
 * Selection and SDL lookup are the composition module's own pure functions (`selectSubgraphs`,
 * `subgraphInputFromManifest`), fed with API objects instead of files, so `edfs compose` on the
 * same manifests picks and reads exactly the same. Every object read, and every object looked for
 * but missing, is recorded as a dependency.
 */
import { createHash } from 'node:crypto';
import type { EventProvider, Subgraph, Supergraph } from '../api/v1alpha1.js';
import type { SubgraphInput } from '../compose/compose.js';
import {
  ComposeInputError,
  selectSubgraphs,
  subgraphInputFromManifest,
  type SubgraphManifest,
  type SupergraphManifest,
} from '../compose/sources.js';
import { providerIdOf, secretBindings } from '../desired/index.js';
import { RESOURCES, type AnyObject, isDeleting } from '../kube/resources.js';
import type { ObjectReader } from './context.js';
import { dep } from './dependency-index.js';
import type { CompositionError } from './supergraph-status.js';

interface ConfigMapObject extends AnyObject {
  data?: Record<string, string>;
}

export function subgraphManifest(sg: Subgraph): SubgraphManifest {
  return {
    kind: 'Subgraph',
    metadata: { name: sg.metadata.name, namespace: sg.metadata.namespace, labels: sg.metadata.labels ?? {} },
    spec: sg.spec ?? {},
    file: '',
  };
}

function supergraphManifest(sup: Supergraph): SupergraphManifest {
  return {
    kind: 'Supergraph',
    metadata: {
      name: sup.metadata.name,
      namespace: sup.metadata.namespace,
      labels: sup.metadata.labels ?? {},
    },
    spec: (sup.spec ?? {}) as SupergraphManifest['spec'],
    file: '',
  };
}

/** The Subgraphs of the Supergraph's namespace its selector matches (deleting ones left out). */
export function selectedSubgraphs(
  sup: Supergraph,
  cache: ObjectReader,
): { subgraphs: Subgraph[] } | { error: CompositionError } {
  const all = cache.list<Subgraph>(RESOURCES.Subgraph, sup.metadata.namespace).filter((s) => !isDeleting(s));
  const byName = new Map(all.map((s) => [s.metadata.name, s]));
  try {
    const picked = selectSubgraphs(
      {
        subgraphs: all.map(subgraphManifest),
        supergraphs: [supergraphManifest(sup)],
        eventProviders: [],
        configMaps: [],
        graphYamlSubgraphs: [],
      },
      `${sup.metadata.namespace}/${sup.metadata.name}`,
    );
    return { subgraphs: picked.map((m) => byName.get(m.metadata.name)!).sort(byObjectName) };
  } catch (err) {
    if (!(err instanceof ComposeInputError)) throw err;
    // Messages name a file first; objects from the API have none.
    return { error: { message: err.message.replace(/^:\s*/, '') } };
  }
}

/** A Subgraph as a composition input, reading `configMapRef` from the cache. */
export function readSubgraph(
  sg: Subgraph,
  cache: ObjectReader,
  deps?: Set<string>,
): SubgraphInput | { error: CompositionError } {
  return subgraphInputFromManifest(subgraphManifest(sg), (namespace, name) => {
    deps?.add(dep('ConfigMap', namespace, name));
    const configMap = cache.get<ConfigMapObject>(RESOURCES.ConfigMap, namespace, name);
    return configMap ? (configMap.data ?? {}) : undefined;
  });
}

export type ProviderType = 'nats' | 'kafka';

export interface ProviderUse {
  type: ProviderType;
  subgraphs: string[];
}

/** The provider ids an execution config's event fields use, with their broker type and subgraphs. */
export function providersUsed(config: unknown): Map<string, ProviderUse> {
  const used = new Map<string, ProviderUse>();
  const root = (config ?? {}) as {
    engineConfig?: { datasourceConfigurations?: { id?: string; customEvents?: Record<string, unknown> }[] };
    subgraphs?: { id?: string; name?: string }[];
  };
  const names = new Map((root.subgraphs ?? []).map((s) => [s.id, s.name]));
  for (const ds of root.engineConfig?.datasourceConfigurations ?? []) {
    for (const type of ['nats', 'kafka'] as const) {
      const events = ds.customEvents?.[type];
      if (!Array.isArray(events)) continue;
      for (const event of events as { engineEventConfiguration?: { providerId?: string } }[]) {
        const id = event.engineEventConfiguration?.providerId;
        if (!id) continue;
        const entry = used.get(id) ?? { type, subgraphs: [] };
        const subgraph = names.get(ds.id);
        if (subgraph && !entry.subgraphs.includes(subgraph)) entry.subgraphs.push(subgraph);
        used.set(id, entry);
      }
    }
  }
  return used;
}

/**
 * The EventProviders (in the Supergraph's namespace) behind the used provider ids. Errors name the
 * provider id and the subgraphs that use it.
 */
export function resolveProviders(
  namespace: string,
  used: Map<string, ProviderUse>,
  cache: ObjectReader,
  deps: Set<string>,
): { providers: EventProvider[]; errors: CompositionError[] } {
  const all = cache.list<EventProvider>(RESOURCES.EventProvider, namespace).filter((p) => !isDeleting(p));
  const providers: EventProvider[] = [];
  const errors: CompositionError[] = [];
  for (const [id, use] of [...used].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    deps.add(dep('ProviderId', namespace, id));
    const matches = all.filter((p) => providerIdOf(p) === id).sort(byObjectName);
    const usedBy =
      use.subgraphs.length > 0 ? ` (used by subgraph ${use.subgraphs.map((s) => `"${s}"`).join(', ')})` : '';
    const subgraph = use.subgraphs.length === 1 ? use.subgraphs[0] : undefined;
    const fail = (message: string) => errors.push(subgraph ? { subgraph, message } : { message });
    if (matches.length === 0) {
      fail(`no EventProvider with providerId "${id}" in namespace "${namespace}"${usedBy}`);
      continue;
    }
    if (matches.length > 1) {
      fail(
        `EventProviders ${matches.map((p) => `"${p.metadata.name}"`).join(' and ')} in namespace "${namespace}" all have providerId "${id}"${usedBy}`,
      );
      continue;
    }
    const provider = matches[0]!;
    deps.add(dep('EventProvider', namespace, provider.metadata.name));
    for (const binding of secretBindings(provider)) deps.add(dep('Secret', namespace, binding.secret.name));
    const type: ProviderType | undefined = provider.spec.nats
      ? 'nats'
      : provider.spec.kafka
        ? 'kafka'
        : undefined;
    if (type !== use.type) {
      fail(
        `EventProvider "${provider.metadata.name}" (providerId "${id}") is ${type ?? 'neither nats nor kafka'}, but the schema uses it for ${use.type} events${usedBy}`,
      );
      continue;
    }
    providers.push(provider);
  }
  return { providers, errors };
}

function byObjectName(a: { metadata: { name: string } }, b: { metadata: { name: string } }): number {
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
