/**
 * A controller: a work queue of object keys and a few workers calling `reconcile(key)`.
 *
 * Invariants:
 * - a key is reconciled by one worker at a time (the queue guarantees it);
 * - a failed reconcile is retried with per-key exponential backoff; a successful one resets the
 *   key's backoff; `requeueAfterMs` schedules the next run without counting as a failure;
 * - the controller reconciles only between `start()` and `stop()` (while this replica leads);
 *   `stop()` drops every queued key and waits for in-flight reconciles to return;
 * - every reconcile is counted in controller-runtime's metrics.
 */
import { systemClock, type Clock } from '../kube/clock.js';
import { NotLeaderError } from '../kube/client.js';
import type { Logger } from '../kube/logger.js';
import type { ControllerMetrics, ReconcileResult } from './metrics.js';
import { WorkQueue, type RateLimiter } from './queue.js';

export interface Result {
  /** Reconcile again after this long (e.g. to poll something that sends no events). */
  requeueAfterMs?: number;
  /** Reconcile again soon, with backoff, without logging an error. */
  requeue?: boolean;
}

export interface Reconciler {
  reconcile(key: string): Promise<Result | void>;
}

export interface ReconcileRecord {
  controller: string;
  key: string;
  startedAt: number;
  endedAt: number;
  result: ReconcileResult;
  error?: string;
}

export interface ControllerOptions {
  name: string;
  reconciler: Reconciler;
  metrics: ControllerMetrics;
  logger: Logger;
  /** Concurrent reconciles of different keys. Default 2. */
  workers?: number;
  clock?: Clock;
  rateLimiter?: () => RateLimiter;
  /** Observes every finished reconcile (tests, audit logs). */
  onReconcile?(record: ReconcileRecord): void;
}

export class Controller {
  readonly name: string;
  private queue: WorkQueue | undefined;
  private workers: Promise<void>[] = [];
  private readonly clock: Clock;
  private readonly logger: Logger;

  constructor(private readonly opts: ControllerOptions) {
    this.name = opts.name;
    this.clock = opts.clock ?? systemClock;
    this.logger = opts.logger.child({ controller: opts.name });
  }

  isRunning(): boolean {
    return this.queue !== undefined;
  }

  enqueue(key: string): void {
    if (!this.queue) return;
    this.opts.metrics.queueAdds.inc({ name: this.name });
    this.queue.add(key);
  }

  enqueueAfter(key: string, ms: number): void {
    this.queue?.addAfter(key, ms);
  }

  /** Starts the workers with `initial` keys queued (everything the caches hold). */
  start(initial: Iterable<string>): void {
    if (this.queue) return;
    const depth = this.opts.metrics.queueDepth;
    const queue = new WorkQueue({
      name: this.name,
      clock: this.clock,
      rateLimiter: this.opts.rateLimiter?.(),
      onDepth: (n) => depth.set({ name: this.name }, n),
    });
    this.queue = queue;
    depth.set({ name: this.name }, 0);
    this.opts.metrics.activeWorkers.set({ controller: this.name }, 0);
    for (const key of initial) this.enqueue(key);
    const n = Math.max(1, this.opts.workers ?? 2);
    this.workers = Array.from({ length: n }, () => this.work(queue));
    this.logger.info({ workers: n }, 'controller started');
  }

  async stop(): Promise<void> {
    const queue = this.queue;
    if (!queue) return;
    this.queue = undefined;
    queue.shutDown();
    await Promise.all(this.workers);
    this.workers = [];
    this.logger.info('controller stopped');
  }

  private async work(queue: WorkQueue): Promise<void> {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      await this.process(queue, key);
    }
  }

  private async process(queue: WorkQueue, key: string): Promise<void> {
    const { metrics } = this.opts;
    const controller = this.name;
    const startedAt = this.clock.now();
    const started = process.hrtime.bigint();
    metrics.activeWorkers.inc({ controller });
    let result: ReconcileResult;
    let error: string | undefined;
    try {
      const outcome = (await this.opts.reconciler.reconcile(key)) ?? {};
      if (outcome.requeueAfterMs !== undefined && outcome.requeueAfterMs > 0) {
        queue.forget(key);
        queue.addAfter(key, outcome.requeueAfterMs);
        result = 'requeue_after';
      } else if (outcome.requeue) {
        metrics.queueRetries.inc({ name: controller });
        queue.addRateLimited(key);
        result = 'requeue';
      } else {
        queue.forget(key);
        result = 'success';
      }
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
      metrics.queueRetries.inc({ name: controller });
      queue.addRateLimited(key);
      if (err instanceof NotLeaderError) {
        // Leadership ended mid-reconcile; the next leader redoes it. Not a failure of the object.
        result = 'requeue';
        this.logger.info({ key }, 'reconcile cut short: no longer the leader');
      } else {
        result = 'error';
        metrics.reconcileErrors.inc({ controller });
        this.logger.error(
          { key, err: error, retries: queue.numRequeues(key) },
          'reconcile failed; will retry',
        );
      }
    } finally {
      metrics.activeWorkers.dec({ controller });
      queue.done(key);
    }
    metrics.reconcileTotal.inc({ controller, result });
    metrics.reconcileTime.observe({ controller }, Number(process.hrtime.bigint() - started) / 1e9);
    this.opts.onReconcile?.({ controller, key, startedAt, endedAt: this.clock.now(), result, error });
  }
}
