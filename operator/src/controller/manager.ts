/**
 * The manager wires the control loop: informers (one per watched kind) -> event handlers that
 * map a change to the keys it affects -> one work queue and controller per reconciler, started
 * only while this replica leads -> periodic resync.
 *
 * Event mapping (who is re-queued when something changes):
 * - Supergraph: itself (spec, labels or annotations changed; status-only updates are our own);
 * - Subgraph: itself; every Supergraph that used it (dependency index) or whose selector matches
 *   its labels now;
 * - EventProvider: itself; every Supergraph that used it or waits for its providerId;
 * - ConfigMap: Subgraphs and Supergraphs that read it (SDL); the Supergraph that owns it;
 * - Secret: EventProviders and Supergraphs that reference it (a changed value rolls the routers);
 * - Deployment, Service, Ingress, HPA, PDB: the Supergraph that owns them (drift, rollout status).
 *
 * Invariants: informers run on every replica (a standby has warm caches); reconcilers run only
 * on the leader and every write goes through a client fenced by `isLeader()`; controllers start
 * only after every informer has listed once, so a reconcile never sees a half-filled cache.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import {
  API_VERSION,
  type DesiredInput,
  type DesiredResult,
  type KubeObject,
  type LabelSelector,
} from '../api/v1alpha1.js';
import { matchesLabelSelector } from '../compose/label-selector.js';
import { providerIdOf, renderDesired } from '../desired/index.js';
import { systemClock, type Clock } from '../kube/clock.js';
import { fenceWrites, HttpKubeClient, type KubeClient } from '../kube/client.js';
import { CapabilityProbe } from '../kube/discovery.js';
import { kubeEventRecorder } from '../kube/events.js';
import { Informer } from '../kube/informer.js';
import { kubeLeaseStore, LeaderElector } from '../kube/leader-election.js';
import type { Logger } from '../kube/logger.js';
import {
  RESOURCES,
  controllerOwner,
  keyOf,
  objectKey,
  type AnyObject,
  type KnownKind,
  type ResourceType,
} from '../kube/resources.js';
import type { ObjectReader } from '../reconcile/context.js';
import { dep, DependencyIndex } from '../reconcile/dependency-index.js';
import { EventProviderReconciler } from '../reconcile/eventprovider.js';
import { SubgraphReconciler } from '../reconcile/subgraph.js';
import { FIELD_MANAGER } from '../reconcile/apply.js';
import { digestSecret } from '../reconcile/secrets-hash.js';
import { SupergraphReconciler } from '../reconcile/supergraph.js';
import { Controller, type ReconcileRecord } from './controller.js';
import { createControllerMetrics, type ControllerMetrics } from './metrics.js';

/** The kinds the operator watches. ServiceMonitor and ScaledObject are optional APIs, read on demand. */
const WATCHED = [
  'Supergraph',
  'Subgraph',
  'EventProvider',
  'ConfigMap',
  'Secret',
  'Deployment',
  'Service',
  'Ingress',
  'HorizontalPodAutoscaler',
  'PodDisruptionBudget',
] as const satisfies readonly KnownKind[];
type Watched = (typeof WATCHED)[number];

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

export interface ManagerOptions {
  kubeConfig: KubeConfig;
  /** Watch one namespace; all when omitted. */
  namespace?: string;
  /** Take this Lease before reconciling; reconcile at once when omitted. */
  leaderElection?: LeaderElectionOptions;
  defaults: DesiredInput['defaults'];
  logger: Logger;
  /** Re-queue every object this often (default 10 minutes). */
  resyncPeriodMs?: number;
  /** Workers per controller (default 2). */
  workers?: number;
  metrics?: ControllerMetrics;
  clock?: Clock;
  render?: (input: DesiredInput) => DesiredResult | KubeObject[];
  onReconcile?(record: ReconcileRecord): void;
  /** Identity in Events (`reportingInstance`); default the leader election identity. */
  instance?: string;
}

export class Manager {
  readonly metrics: ControllerMetrics;
  readonly client: HttpKubeClient;
  readonly informers: { [K in Watched]: Informer<AnyObject> };
  readonly controllers: { supergraph: Controller; subgraph: Controller; eventProvider: Controller };
  readonly elector: LeaderElector | undefined;
  private readonly indexes = {
    supergraph: new DependencyIndex(),
    subgraph: new DependencyIndex(),
    eventProvider: new DependencyIndex(),
  };
  private readonly logger: Logger;
  private readonly clock: Clock;
  private resyncTimer: NodeJS.Timeout | undefined;
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private controllersStopped: Promise<void> = Promise.resolve();
  private synced = false;

  constructor(private readonly opts: ManagerOptions) {
    this.logger = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.metrics = opts.metrics ?? createControllerMetrics();
    this.client = new HttpKubeClient(opts.kubeConfig, { fieldManager: FIELD_MANAGER });

    const informers = {} as { [K in Watched]: Informer<AnyObject> };
    for (const kind of WATCHED) {
      informers[kind] = new Informer<AnyObject>(opts.kubeConfig, this.client, {
        type: RESOURCES[kind],
        namespace: opts.namespace,
        logger: this.logger,
        clock: this.clock,
        // Only which keys a Secret has and whether a value changed matter here: each value is
        // kept as a keyed digest, never as itself.
        transform: kind === 'Secret' ? digestSecret : undefined,
      });
    }
    this.informers = informers;

    const le = opts.leaderElection;
    this.elector = le
      ? new LeaderElector({
          identity: le.identity,
          store: kubeLeaseStore(this.client, le.namespace, le.name),
          leaseDurationMs: le.leaseDurationMs,
          renewDeadlineMs: le.renewDeadlineMs,
          retryPeriodMs: le.retryPeriodMs,
          clock: this.clock,
          logger: this.logger,
          // Workers of an earlier term may still be finishing: start only once they have.
          onStartedLeading: () =>
            void this.controllersStopped.then(() => {
              if (this.elector?.isLeader()) this.startControllers();
            }),
          onStoppedLeading: () => {
            this.controllersStopped = this.stopControllers();
          },
          onNewLeader: (identity) => this.logger.info({ leader: identity }, 'observed leader'),
        })
      : undefined;

    const writer: KubeClient = fenceWrites(
      this.client,
      () => !this.stopping && (!this.elector || this.elector.isLeader()),
    );
    const cache = this.reader();
    const events = kubeEventRecorder(writer, {
      component: 'edfs-operator',
      instance: opts.instance ?? le?.identity ?? 'edfs-operator',
      logger: this.logger,
      now: () => this.clock.now(),
    });
    const capabilities = new CapabilityProbe(this.client, 60_000, () => this.clock.now());
    const context = { cache, client: writer, events, logger: this.logger, now: () => this.clock.now() };
    const controller = (
      name: string,
      reconciler: ConstructorParameters<typeof Controller>[0]['reconciler'],
    ) =>
      new Controller({
        name,
        reconciler,
        metrics: this.metrics,
        logger: this.logger,
        workers: opts.workers,
        clock: this.clock,
        onReconcile: opts.onReconcile,
      });
    this.controllers = {
      supergraph: controller(
        'supergraph',
        new SupergraphReconciler({
          ...context,
          index: this.indexes.supergraph,
          capabilities: () => capabilities.get(),
          render: opts.render ?? renderDesired,
          defaults: opts.defaults,
          metrics: this.metrics,
        }),
      ),
      subgraph: controller('subgraph', new SubgraphReconciler({ ...context, index: this.indexes.subgraph })),
      eventProvider: controller(
        'eventprovider',
        new EventProviderReconciler({ ...context, index: this.indexes.eventProvider }),
      ),
    };
    this.wire();
  }

  /** Starts informers; once they have listed, campaigns for the Lease (or reconciles at once). */
  start(): Promise<void> {
    this.starting ??= (async () => {
      for (const informer of Object.values(this.informers)) informer.start();
      await Promise.all(Object.values(this.informers).map((i) => i.waitForSync()));
      if (this.stopping) return;
      this.synced = true;
      this.logger.info({ namespace: this.opts.namespace ?? '(all)' }, 'caches synced');
      const resync = this.opts.resyncPeriodMs ?? 10 * 60_000;
      this.resyncTimer = setInterval(() => this.resync(), resync);
      this.resyncTimer.unref();
      if (this.elector) this.elector.start();
      else this.startControllers();
    })();
    return this.starting;
  }

  /** Stops reconciling (releasing the Lease when held), then the informers. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.resyncTimer) clearInterval(this.resyncTimer);
      if (this.elector) await this.elector.stop();
      else this.controllersStopped = this.stopControllers();
      await this.controllersStopped;
      await Promise.all(Object.values(this.informers).map((i) => i.stop()));
      this.client.close();
    })();
    return this.stopping;
  }

  /** Readiness: caches synced and, with leader election, campaigning (leading or standing by). */
  ready(): true | string {
    if (this.stopping) return 'shutting down';
    const notSynced = Object.entries(this.informers)
      .filter(([, i]) => !i.hasSynced())
      .map(([kind]) => kind);
    if (notSynced.length > 0) return `caches not synced: ${notSynced.join(', ')}`;
    if (this.elector && this.elector.currentState() === 'stopped') return 'leader election stopped';
    return true;
  }

  isLeader(): boolean {
    return this.elector ? this.elector.isLeader() : this.synced && !this.stopping;
  }

  private startControllers(): void {
    if (this.stopping) return;
    this.metrics.leader.set({ name: this.opts.leaderElection?.name ?? 'none' }, 1);
    this.controllers.eventProvider.start(this.informers.EventProvider.keys());
    this.controllers.subgraph.start(this.informers.Subgraph.keys());
    this.controllers.supergraph.start(this.informers.Supergraph.keys());
  }

  private async stopControllers(): Promise<void> {
    this.metrics.leader.set({ name: this.opts.leaderElection?.name ?? 'none' }, 0);
    await Promise.all(Object.values(this.controllers).map((c) => c.stop()));
    // Only the leader reports Supergraph conditions; a former leader's would go stale.
    this.metrics.supergraphCondition.reset();
  }

  private resync(): void {
    for (const key of this.informers.EventProvider.keys()) this.controllers.eventProvider.enqueue(key);
    for (const key of this.informers.Subgraph.keys()) this.controllers.subgraph.enqueue(key);
    for (const key of this.informers.Supergraph.keys()) this.controllers.supergraph.enqueue(key);
  }

  private reader(): ObjectReader {
    const byType = new Map<ResourceType, Informer<AnyObject>>(
      Object.values(this.informers).map((i) => [i.type, i] as const),
    );
    return {
      get: <T extends AnyObject>(type: ResourceType, namespace: string, name: string) =>
        byType.get(type)?.get(namespace, name) as T | undefined,
      list: <T extends AnyObject>(type: ResourceType, namespace: string) =>
        (byType.get(type)?.list(namespace) ?? []) as T[],
      caches: (type: ResourceType) => byType.has(type),
    };
  }

  private wire(): void {
    const { supergraph: sup, subgraph: sg, eventProvider: ep } = this.controllers;
    const idx = this.indexes;
    const supergraphs = (keys: Iterable<string>) => {
      for (const key of keys) sup.enqueue(key);
    };

    this.informers.Supergraph.on(onChange(specChanged, (obj) => sup.enqueue(objectKey(obj))));

    this.informers.Subgraph.on(
      onChange(specChanged, (obj, old) => {
        const key = objectKey(obj);
        sg.enqueue(key);
        supergraphs(idx.supergraph.dependents(dep('Subgraph', obj.metadata.namespace, obj.metadata.name)));
        supergraphs(this.selecting(obj));
        if (old) supergraphs(this.selecting(old));
      }),
    );

    this.informers.EventProvider.on(
      onChange(specChanged, (obj, old) => {
        const { namespace, name } = obj.metadata;
        ep.enqueue(objectKey(obj));
        const ids = [providerIdOf(obj as never), ...(old ? [providerIdOf(old as never)] : [])];
        supergraphs(
          idx.supergraph.dependents(
            dep('EventProvider', namespace, name),
            ...ids.map((id) => dep('ProviderId', namespace, id)),
          ),
        );
      }),
    );

    this.informers.ConfigMap.on(
      onChange(anyChange, (obj) => {
        const d = dep('ConfigMap', obj.metadata.namespace, obj.metadata.name);
        for (const key of idx.subgraph.dependents(d)) sg.enqueue(key);
        supergraphs(idx.supergraph.dependents(d));
        supergraphs(owner(obj));
      }),
    );

    this.informers.Secret.on(
      onChange(anyChange, (obj) => {
        const d = dep('Secret', obj.metadata.namespace, obj.metadata.name);
        for (const key of idx.eventProvider.dependents(d)) ep.enqueue(key);
        supergraphs(idx.supergraph.dependents(d));
      }),
    );

    for (const kind of [
      'Deployment',
      'Service',
      'Ingress',
      'HorizontalPodAutoscaler',
      'PodDisruptionBudget',
    ] as const) {
      this.informers[kind].on(onChange(anyChange, (obj) => supergraphs(owner(obj))));
    }
  }

  /** Supergraphs in the Subgraph's namespace whose selector matches its labels. */
  private selecting(subgraph: AnyObject): string[] {
    const namespace = subgraph.metadata.namespace ?? '';
    return this.informers.Supergraph.list(namespace)
      .filter((s) => {
        try {
          const spec = (s as AnyObject & { spec?: { subgraphSelector?: LabelSelector } }).spec;
          return matchesLabelSelector(spec?.subgraphSelector, subgraph.metadata.labels);
        } catch {
          return true; // an invalid selector: its reconcile reports it
        }
      })
      .map(objectKey);
  }
}

/** Handlers calling `fn` for adds, deletes, and updates that pass `changed`. */
function onChange(
  changed: (obj: AnyObject, old: AnyObject) => boolean,
  fn: (obj: AnyObject, old?: AnyObject) => void,
) {
  return {
    add: (obj: AnyObject) => fn(obj),
    update: (obj: AnyObject, old: AnyObject) => changed(obj, old) && fn(obj, old),
    delete: (obj: AnyObject) => fn(obj),
  };
}

/** Spec (generation), labels, annotations or deletion changed: not just status. */
function specChanged(obj: AnyObject, old: AnyObject): boolean {
  const a = obj.metadata;
  const b = old.metadata;
  return (
    a.generation !== b.generation ||
    a.deletionTimestamp !== b.deletionTimestamp ||
    JSON.stringify(a.labels ?? {}) !== JSON.stringify(b.labels ?? {}) ||
    JSON.stringify(a.annotations ?? {}) !== JSON.stringify(b.annotations ?? {})
  );
}

function anyChange(): boolean {
  return true;
}

function owner(obj: AnyObject): string[] {
  const ref = controllerOwner(obj, API_VERSION, 'Supergraph');
  return ref ? [keyOf(obj.metadata.namespace, ref.name)] : [];
}
