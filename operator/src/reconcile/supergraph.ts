/**
 * The Supergraph reconciler: Subgraphs in, composed config and router workload out.
 *
 * reconcile(namespace/name):
 *   1. select the Subgraphs (label selector, same namespace), read their SDL, compose;
 *   2. resolve the EventProviders the composed config's event fields name (by providerId);
 *   3. render the desired children (`renderDesired`, pure; given a digest of the referenced Secret
 *      values so a rotated credential rolls the routers) and server-side apply each one that is
 *      not already up to date (one field manager, forced, controller owner reference). When the
 *      Deployment's replicas pass to an autoscaler, the live count is first applied under a
 *      handover field manager so it is kept until the autoscaler changes it;
 *   4. delete children of kinds no longer rendered (an Ingress taken out of the spec);
 *   5. write status through the status subresource when it changed, and record Events for
 *      transitions (composed, composition failed, apply failed).
 *
 * Invariants:
 * - a Supergraph whose inputs do not compose, or whose `spec.router.config` makes a router.yaml
 *   the router would refuse (`InvalidRouterConfig`), keeps its ConfigMap and Deployment exactly as they
 *   are: routers keep serving the last good config with the wiring that goes with it;
 *   `Composed=False` carries the errors. Service, Ingress, autoscaler, PDB and ServiceMonitor still
 *   follow the spec;
 * - objects controlled by anything else are never modified or deleted;
 * - unchanged inputs make no writes: applies are skipped for up-to-date children, status is
 *   compared before patching, Events are only recorded with a status change;
 * - spec is never written.
 */
import {
  API_VERSION,
  configMapName,
  routerName,
  type DesiredInput,
  type DesiredResult,
  type EventProvider,
  type KubeObject,
  type Supergraph,
  type SupergraphStatus,
} from '../api/v1alpha1.js';
import { composeSupergraph, type ComposeResult, type SubgraphInput } from '../compose/compose.js';
import {
  CHILD_KINDS,
  CONFIG_JSON_KEY,
  jwksBindings,
  routerConfigProblems,
  routerSelector,
} from '../desired/index.js';
import type { Reconciler, Result } from '../controller/controller.js';
import { exportSupergraphConditions, type ControllerMetrics } from '../controller/metrics.js';
import {
  RESOURCES,
  controllerOwner,
  isDeleting,
  resourceOf,
  splitKey,
  type AnyObject,
  type ResourceType,
} from '../kube/resources.js';
import {
  FIELD_MANAGER,
  HANDOVER_FIELD_MANAGER,
  isUpToDate,
  replicasHandover,
  withAppliedHash,
} from './apply.js';
import { metaTime, sameStatus, statusPatch } from './conditions.js';
import type { Capabilities, ReconcileContext } from './context.js';
import { dep, type DependencyIndex } from './dependency-index.js';
import { providersUsed, readSubgraph, resolveProviders, selectedSubgraphs, sha256 } from './inputs.js';
import { secretsHash } from './secrets-hash.js';
import { WrittenStatus } from './written-status.js';
import {
  describeErrors,
  statusEvents,
  supergraphStatus,
  type CompositionOutcome,
  type DeploymentView,
} from './supergraph-status.js';

export interface SupergraphReconcilerOptions extends ReconcileContext {
  index: DependencyIndex;
  /** Where the Supergraphs' conditions are exported (`edfs_supergraph_status_condition`). */
  metrics?: ControllerMetrics;
  capabilities(): Promise<Capabilities>;
  render(input: DesiredInput): DesiredResult | KubeObject[];
  defaults: DesiredInput['defaults'];
}

type Composition =
  | {
      ok: true;
      configJson: string;
      providers: EventProvider[];
      subgraphs: { name: string; schemaHash: string }[];
    }
  | { ok: false; reason: string; errors: { subgraph?: string; message: string }[] };

interface ConfigMapObject extends AnyObject {
  data?: Record<string, string>;
}

/** Kinds left as they are while the inputs do not compose. */
const FROZEN_ON_FAILURE = new Set(['ConfigMap', 'Deployment']);

export class SupergraphReconciler implements Reconciler {
  /** The last composition per Supergraph, by a fingerprint of its inputs (composing is the costly step). */
  private readonly memo = new Map<string, { fingerprint: string; result: ComposeResult }>();
  private readonly written = new WrittenStatus<SupergraphStatus>();

  constructor(private readonly opts: SupergraphReconcilerOptions) {}

  async reconcile(key: string): Promise<Result | void> {
    const { cache, client, index } = this.opts;
    const { namespace, name } = splitKey(key);
    const found = cache.get<Supergraph>(RESOURCES.Supergraph, namespace, name);
    if (!found || isDeleting(found)) {
      // Children carry owner references: the garbage collector removes them.
      index.remove(key);
      this.memo.delete(key);
      this.written.forget(key);
      this.exportConditions(namespace, name, undefined);
      return;
    }
    const sup: Supergraph = { ...found, apiVersion: API_VERSION, kind: 'Supergraph' };
    const log = this.opts.logger.child({ supergraph: key });

    const deps = new Set<string>();
    const composition = this.compose(key, sup, deps);
    // A key set's Secret changing rolls the routers (secrets-hash.ts): watch it.
    for (const binding of jwksBindings(sup)) deps.add(dep('Secret', namespace, binding.secret.name));

    const liveConfigMap = this.owned(
      cache.get<ConfigMapObject>(RESOURCES.ConfigMap, namespace, configMapName(sup)),
      sup,
    );
    let configJson: string | undefined;
    let providers: EventProvider[] = [];
    if (composition.ok) {
      configJson = composition.configJson;
      providers = composition.providers;
    } else {
      configJson = liveConfigMap?.data?.[CONFIG_JSON_KEY];
      if (configJson !== undefined) {
        providers = resolveProviders(namespace, providersUsed(safeJson(configJson)), cache, deps).providers;
      }
    }
    index.set(key, deps);

    const applied = new Map<string, AnyObject>();
    const applyErrors: string[] = [];
    let changed = false;
    let warnings: string[] = [];
    let configProblems: string[] = [];
    if (configJson !== undefined) {
      const capabilities = await this.opts.capabilities();
      let desired: KubeObject[] = [];
      try {
        const rendered = this.opts.render({
          supergraph: sup,
          configJson,
          configHash: sha256(configJson),
          providers,
          secretsHash: secretsHash(namespace, providers, cache, sup),
          capabilities,
          defaults: this.opts.defaults,
        });
        desired = Array.isArray(rendered) ? rendered : rendered.objects;
        warnings = Array.isArray(rendered) ? [] : rendered.warnings;
        configProblems = routerConfigProblems(desired);
      } catch (err) {
        applyErrors.push(`rendering the router objects failed: ${message(err)}`);
      }
      // A router.yaml the routers would refuse never reaches them, like a schema that does not compose.
      const frozen = composition.ok && configProblems.length === 0 ? new Set<string>() : FROZEN_ON_FAILURE;
      for (const obj of desired) {
        if (frozen.has(obj.kind)) continue;
        const outcome = await this.applyChild(sup, obj);
        if ('error' in outcome) applyErrors.push(outcome.error);
        else {
          applied.set(obj.kind, outcome.object);
          changed ||= outcome.changed;
        }
      }
      if (applyErrors.length === 0) {
        const rendered = new Set(desired.map((o) => o.kind));
        for (const child of CHILD_KINDS) {
          if (rendered.has(child.kind) || frozen.has(child.kind)) continue;
          const type = resourceOf(child.apiVersion, child.kind);
          if (!type) continue;
          const error = await this.prune(sup, type, capabilities);
          if (error) applyErrors.push(error);
        }
      }
    }
    if (changed) {
      log.info({ kinds: [...applied.keys()] }, 'applied router objects');
      if (warnings.length > 0) {
        await this.opts.events.record(sup, 'Warning', 'ConfigWarning', warnings.join('; '));
      }
    }

    const configMap = (applied.get('ConfigMap') as ConfigMapObject | undefined) ?? liveConfigMap;
    const served = configMap?.data?.[CONFIG_JSON_KEY];
    const deployment = (applied.get('Deployment') ??
      this.owned(cache.get(RESOURCES.Deployment, namespace, routerName(sup)), sup)) as
      DeploymentView | undefined;
    const outcome: CompositionOutcome = !composition.ok
      ? { ok: false, reason: composition.reason, errors: composition.errors }
      : configProblems.length > 0
        ? { ok: false, reason: 'InvalidRouterConfig', errors: configProblems.map((m) => ({ message: m })) }
        : { ok: true, subgraphs: composition.subgraphs };
    const previous = this.written.current(key, sup);
    const status = supergraphStatus(
      {
        supergraph: sup,
        composition: outcome,
        servedConfigHash: served !== undefined ? sha256(served) : undefined,
        deployment,
        selector: routerSelector(sup),
        applyErrors,
      },
      previous,
      metaTime(this.opts.now()),
    );
    this.exportConditions(namespace, name, status.conditions);
    if (!sameStatus(previous, status)) {
      await client.patchStatus(
        RESOURCES.Supergraph,
        namespace,
        name,
        statusPatch({ ...sup.status, ...previous }, status),
      );
      this.written.remember(key, sup.metadata.resourceVersion, status);
      if (!outcome.ok)
        log.warn({ errors: describeErrors(outcome.errors), reason: outcome.reason }, 'not served');
      for (const event of statusEvents(previous, status)) {
        await this.opts.events.record(sup, event.type, event.reason, event.message);
      }
    }
    if (applyErrors.length > 0) throw new Error(applyErrors.join('; '));
  }

  /** Condition types exported per Supergraph key, so types no longer reported are removed. */
  private readonly exported = new Map<string, string[]>();

  private exportConditions(
    namespace: string,
    name: string,
    conditions: { type: string; status: string }[] | undefined,
  ): void {
    const { metrics } = this.opts;
    if (!metrics) return;
    const key = `${namespace}/${name}`;
    exportSupergraphConditions(metrics, namespace, name, conditions, this.exported.get(key));
    if (conditions)
      this.exported.set(
        key,
        conditions.map((c) => c.type),
      );
    else this.exported.delete(key);
  }

  private compose(key: string, sup: Supergraph, deps: Set<string>): Composition {
    const { cache } = this.opts;
    const { namespace } = sup.metadata;
    const selection = selectedSubgraphs(sup, cache);
    if ('error' in selection) return { ok: false, reason: 'InvalidSelector', errors: [selection.error] };
    for (const sg of selection.subgraphs) deps.add(dep('Subgraph', namespace, sg.metadata.name));
    if (selection.subgraphs.length === 0) {
      return {
        ok: false,
        reason: 'NoSubgraphs',
        errors: [{ message: `no Subgraph in namespace "${namespace}" matches spec.subgraphSelector` }],
      };
    }

    const inputs: SubgraphInput[] = [];
    const errors: { subgraph?: string; message: string }[] = [];
    for (const sg of selection.subgraphs) {
      const input = readSubgraph(sg, cache, deps);
      if ('error' in input) errors.push(input.error);
      else inputs.push(input);
    }
    if (errors.length > 0) return { ok: false, reason: 'SchemaUnavailable', errors };

    const fingerprint = sha256(JSON.stringify(inputs));
    let result = this.memo.get(key)?.fingerprint === fingerprint ? this.memo.get(key)!.result : undefined;
    if (!result) {
      result = composeSupergraph(inputs);
      this.memo.set(key, { fingerprint, result });
    }
    if (!result.ok) return { ok: false, reason: 'CompositionFailed', errors: result.errors };

    const resolved = resolveProviders(namespace, providersUsed(result.config), cache, deps);
    if (resolved.errors.length > 0)
      return { ok: false, reason: 'EventProviderNotFound', errors: resolved.errors };
    return {
      ok: true,
      configJson: result.configJson,
      providers: resolved.providers,
      subgraphs: inputs.map((i) => ({ name: i.name, schemaHash: sha256(i.sdl) })),
    };
  }

  /** Applies one child unless it is up to date; refuses objects another controller owns. */
  private async applyChild(
    sup: Supergraph,
    obj: KubeObject,
  ): Promise<{ object: AnyObject; changed: boolean } | { error: string }> {
    const type = resourceOf(obj.apiVersion, obj.kind);
    const what = `${obj.kind} "${obj.metadata.name}"`;
    if (!type) return { error: `${what}: the operator does not know ${obj.apiVersion} ${obj.kind}` };
    const namespace = sup.metadata.namespace;
    const desired = withAppliedHash({
      ...obj,
      metadata: {
        ...obj.metadata,
        namespace,
        ownerReferences: obj.metadata.ownerReferences ?? [ownerRef(sup)],
      },
    } as AnyObject);
    let live: AnyObject | undefined;
    try {
      live = await this.live(type, namespace, obj.metadata.name);
    } catch (err) {
      return { error: `${what}: ${message(err)}` };
    }
    if (live) {
      const owner = controllerOwner(live, API_VERSION, 'Supergraph');
      const other = live.metadata.ownerReferences?.find((r) => r.controller === true);
      if ((owner && owner.uid !== sup.metadata.uid) || (!owner && other)) {
        return {
          error: `${what} already exists and is controlled by ${other?.kind ?? 'Supergraph'} "${other?.name ?? owner?.name}"; rename or delete it`,
        };
      }
      if (isUpToDate(desired, live)) return { object: live, changed: false };
    }
    const handover = replicasHandover(desired, live, FIELD_MANAGER);
    if (handover) {
      try {
        // Not forced: the live count is applied, so no other manager can conflict unless it
        // changed the count meanwhile; then the next reconcile reads it again.
        await this.opts.client.apply<AnyObject>(type, handover, { fieldManager: HANDOVER_FIELD_MANAGER });
      } catch (err) {
        return { error: `handing ${what}'s replicas over to the autoscaler: ${message(err)}` };
      }
    }
    try {
      const object = await this.opts.client.apply<AnyObject>(type, desired, {
        fieldManager: FIELD_MANAGER,
        force: true,
      });
      return { object, changed: true };
    } catch (err) {
      return { error: `applying ${what}: ${message(err)}` };
    }
  }

  /** Deletes this Supergraph's children of `type` (no longer rendered). Returns an error text on failure. */
  private async prune(
    sup: Supergraph,
    type: ResourceType,
    capabilities: Capabilities,
  ): Promise<string | undefined> {
    const { cache, client } = this.opts;
    const namespace = sup.metadata.namespace;
    let candidates: AnyObject[];
    if (cache.caches(type)) {
      candidates = cache.list<AnyObject>(type, namespace);
    } else {
      const served =
        (type === RESOURCES.ServiceMonitor && capabilities.serviceMonitor) ||
        (type === RESOURCES.ScaledObject && capabilities.keda);
      if (!served) return undefined;
      try {
        const one = await client.get<AnyObject>(type, namespace, routerName(sup));
        candidates = one ? [one] : [];
      } catch (err) {
        return `reading ${type.kind} "${routerName(sup)}": ${message(err)}`;
      }
    }
    for (const obj of candidates) {
      if (!this.owned(obj, sup)) continue;
      try {
        const deleted = await client.delete(type, namespace, obj.metadata.name, { uid: obj.metadata.uid });
        if (deleted) {
          await this.opts.events.record(
            sup,
            'Normal',
            'Deleted',
            `deleted ${type.kind} "${obj.metadata.name}": no longer in the Supergraph's spec`,
          );
        }
      } catch (err) {
        return `deleting ${type.kind} "${obj.metadata.name}": ${message(err)}`;
      }
    }
    return undefined;
  }

  private live(type: ResourceType, namespace: string, name: string): Promise<AnyObject | undefined> {
    const { cache, client } = this.opts;
    if (cache.caches(type)) return Promise.resolve(cache.get<AnyObject>(type, namespace, name));
    return client.get<AnyObject>(type, namespace, name);
  }

  private owned<T extends AnyObject>(obj: T | undefined, sup: Supergraph): T | undefined {
    if (!obj) return undefined;
    return controllerOwner(obj, API_VERSION, 'Supergraph')?.uid === sup.metadata.uid ? obj : undefined;
  }
}

function ownerRef(sup: Supergraph) {
  return {
    apiVersion: API_VERSION,
    kind: 'Supergraph',
    name: sup.metadata.name,
    uid: sup.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
