/**
 * An informer that keeps running: a local cache of one resource type plus add/update/delete
 * notifications, built on @kubernetes/client-node's `makeInformer` (list, then watch).
 *
 * The library's informer relists by itself after `410 Gone`, but after any other error (API
 * server restarted, connection reset, 403, 500) it just stops. This wrapper then starts a fresh
 * one after an exponential backoff (800 ms doubling to 30 s, reset once a run lasted a minute)
 * and reconciles the fresh list against its own cache, so objects deleted while it was
 * disconnected are reported as deletes and unchanged objects are not reported at all.
 *
 * Invariants:
 * - the wrapper's cache is the only one readers see; it is updated before handlers run, and a
 *   handler is called at most once per change of an object's resourceVersion;
 * - callbacks of a replaced (stopped) inner informer are ignored;
 * - `hasSynced()` turns true after the first complete list and stays true (readers keep the last
 *   known state while reconnecting, as client-go does).
 */
import {
  makeInformer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import type { KubeClient } from './client.js';
import { keyOf, resourcePath, type AnyObject, type ResourceType } from './resources.js';
import type { Logger } from './logger.js';

export interface InformerHandlers<T> {
  add?(obj: T): void;
  update?(obj: T, old: T): void;
  delete?(obj: T): void;
}

export interface InformerOptions<T> {
  type: ResourceType;
  /** Watch one namespace; all namespaces when omitted. */
  namespace?: string;
  labelSelector?: string;
  /** Applied to every object before it is cached; may change it in place (e.g. drop Secret values). */
  transform?: (obj: T) => T;
  clock?: Clock;
  logger?: Logger;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** A run that lasted this long resets the backoff. */
  backoffResetMs?: number;
}

type Inner = ReturnType<typeof makeInformer<KubernetesObject>>;

export class Informer<T extends AnyObject> {
  private readonly cache = new Map<string, T>();
  private readonly handlers: InformerHandlers<T>[] = [];
  private inner: Inner | undefined;
  private epoch = 0;
  private running = false;
  private synced = false;
  private syncWaiters: (() => void)[] = [];
  private restartTimer: TimerHandle | undefined;
  private backoffMs: number;
  private startedAt = 0;
  private readonly clock: Clock;
  /** Times the inner informer was restarted after an error (for tests and logs). */
  restarts = 0;
  lastError: unknown;

  constructor(
    private readonly kc: KubeConfig,
    private readonly client: KubeClient,
    private readonly opts: InformerOptions<T>,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.backoffMs = opts.initialBackoffMs ?? 800;
  }

  get type(): ResourceType {
    return this.opts.type;
  }

  on(handlers: InformerHandlers<T>): void {
    this.handlers.push(handlers);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.epoch++;
    this.restartTimer?.cancel();
    this.restartTimer = undefined;
    const inner = this.inner;
    this.inner = undefined;
    await inner?.stop().catch(() => undefined);
    for (const wake of this.syncWaiters.splice(0)) wake();
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once the first list is in the cache (or the informer is stopped). */
  waitForSync(): Promise<void> {
    if (this.synced || !this.running) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.cache.get(keyOf(namespace, name));
  }

  list(namespace?: string): T[] {
    const all = [...this.cache.values()];
    return namespace === undefined ? all : all.filter((o) => (o.metadata.namespace ?? '') === namespace);
  }

  keys(): string[] {
    return [...this.cache.keys()];
  }

  private run(): void {
    if (!this.running) return;
    const epoch = ++this.epoch;
    const { type, namespace, labelSelector } = this.opts;
    const path = resourcePath(type, { namespace });
    const current = () => epoch === this.epoch && this.running;

    const listFn = async (): Promise<KubernetesListObject<KubernetesObject>> => {
      const list = await this.client.list<T>(type, namespace, { labelSelector });
      if (current()) this.replace(list.items.map((o) => this.prepare(o)));
      return list as unknown as KubernetesListObject<KubernetesObject>;
    };
    const inner = makeInformer<KubernetesObject>(this.kc, path, listFn, labelSelector);
    inner.on('add', (obj) => current() && this.upsert(this.prepare(obj as unknown as T)));
    inner.on('update', (obj) => current() && this.upsert(this.prepare(obj as unknown as T)));
    inner.on('delete', (obj) => current() && this.remove(obj as unknown as T));
    inner.on('error', (err) => current() && this.failed(err));
    this.inner = inner;
    this.startedAt = this.clock.now();
    inner.start().catch((err: unknown) => current() && this.failed(err));
  }

  private failed(err: unknown): void {
    this.lastError = err;
    const inner = this.inner;
    this.inner = undefined;
    this.epoch++; // late callbacks of the failed informer are ignored from here on
    void inner?.stop().catch(() => undefined);
    if (!this.running) return;
    const lived = this.clock.now() - this.startedAt;
    if (lived >= (this.opts.backoffResetMs ?? 60_000)) this.backoffMs = this.opts.initialBackoffMs ?? 800;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.opts.maxBackoffMs ?? 30_000);
    this.restarts++;
    this.opts.logger?.warn(
      {
        resource: this.opts.type.plural,
        namespace: this.opts.namespace,
        err: describe(err),
        retryInMs: delay,
      },
      `watch of ${this.opts.type.plural} failed; restarting`,
    );
    this.restartTimer = this.clock.setTimer(() => {
      this.restartTimer = undefined;
      this.run();
    }, delay);
  }

  private prepare(obj: T): T {
    return this.opts.transform ? this.opts.transform(obj) : obj;
  }

  /** A complete list: objects missing from it were deleted while nobody watched. */
  private replace(items: T[]): void {
    const seen = new Set(items.map((o) => keyOf(o.metadata.namespace, o.metadata.name)));
    for (const [key, old] of this.cache) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.emit('delete', old);
      }
    }
    for (const obj of items) this.upsert(obj);
    if (!this.synced) {
      this.synced = true;
      for (const wake of this.syncWaiters.splice(0)) wake();
    }
  }

  private upsert(obj: T): void {
    const key = keyOf(obj.metadata.namespace, obj.metadata.name);
    const old = this.cache.get(key);
    if (old && old.metadata.resourceVersion === obj.metadata.resourceVersion) return;
    this.cache.set(key, obj);
    if (old) this.emit('update', obj, old);
    else this.emit('add', obj);
  }

  private remove(obj: T): void {
    const key = keyOf(obj.metadata.namespace, obj.metadata.name);
    const old = this.cache.get(key);
    if (!old) return;
    this.cache.delete(key);
    this.emit('delete', old);
  }

  private emit(event: 'add' | 'update' | 'delete', obj: T, old?: T): void {
    for (const h of this.handlers) {
      try {
        if (event === 'update') h.update?.(obj, old as T);
        else h[event]?.(obj);
      } catch (err) {
        this.opts.logger?.error(
          { err: describe(err), resource: this.opts.type.plural },
          'informer handler failed',
        );
      }
    }
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code =
      (err as { statusCode?: number; code?: unknown }).statusCode ?? (err as { code?: unknown }).code;
    return code !== undefined ? `${err.message} (${String(code)})` : err.message;
  }
  return String(err);
}
