/**
 * The rate-limited work queue of a controller, with client-go's semantics.
 *
 * Invariants:
 * - a key is queued at most once: adding a key that is already waiting does nothing (dedup);
 * - a key is never handed to two workers at once: a key added while it is being processed is
 *   marked dirty and queued again when `done(key)` is called;
 * - `addRateLimited` delays a key by the rate limiter's verdict: per key `5 ms * 2^failures`
 *   capped at 1000 s, and never faster than the overall token bucket (10/s, burst 100);
 *   `forget` resets the key's failures after a success;
 * - `addAfter` keeps only the earliest pending time per key;
 * - after `shutDown()` nothing is queued and waiting `get()` calls return undefined.
 */
import { systemClock, type Clock, type TimerHandle } from '../kube/clock.js';

export interface RateLimiter {
  /** How long to wait before the key may be processed again. */
  when(key: string): number;
  forget(key: string): void;
  numRequeues(key: string): number;
}

/** Per key: base * 2^failures, capped (client-go's ItemExponentialFailureRateLimiter). */
export class ExponentialFailureRateLimiter implements RateLimiter {
  private readonly failures = new Map<string, number>();

  constructor(
    private readonly baseMs = 5,
    private readonly maxMs = 1_000_000,
  ) {}

  when(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const delay = this.baseMs * 2 ** n;
    return Number.isFinite(delay) ? Math.min(delay, this.maxMs) : this.maxMs;
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }
}

/** An overall token bucket: `qps` tokens per second, at most `burst` saved (client-go's BucketRateLimiter). */
export class BucketRateLimiter implements RateLimiter {
  private tokens: number;
  private last: number;

  constructor(
    private readonly qps = 10,
    private readonly burst = 100,
    private readonly clock: Clock = systemClock,
  ) {
    this.tokens = burst;
    this.last = clock.now();
  }

  when(): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
    this.tokens -= 1; // reserve a token, possibly in the future
    return this.tokens >= 0 ? 0 : (-this.tokens / this.qps) * 1000;
  }

  forget(): void {}

  numRequeues(): number {
    return 0;
  }
}

/** The slowest verdict of several limiters (client-go's MaxOfRateLimiter). */
export class MaxOfRateLimiter implements RateLimiter {
  private readonly limiters: RateLimiter[];

  constructor(...limiters: RateLimiter[]) {
    this.limiters = limiters;
  }

  when(key: string): number {
    return Math.max(0, ...this.limiters.map((l) => l.when(key)));
  }

  forget(key: string): void {
    for (const l of this.limiters) l.forget(key);
  }

  numRequeues(key: string): number {
    return Math.max(0, ...this.limiters.map((l) => l.numRequeues(key)));
  }
}

export function defaultRateLimiter(clock: Clock = systemClock): RateLimiter {
  return new MaxOfRateLimiter(
    new ExponentialFailureRateLimiter(5, 1_000_000),
    new BucketRateLimiter(10, 100, clock),
  );
}

export interface WorkQueueOptions {
  name: string;
  rateLimiter?: RateLimiter;
  clock?: Clock;
  /** Called whenever the number of waiting keys changes (for the depth gauge). */
  onDepth?(depth: number): void;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly waiting = new Map<string, { at: number; timer: TimerHandle }>();
  private readonly getters: ((key: string | undefined) => void)[] = [];
  private shuttingDown = false;
  readonly name: string;
  readonly rateLimiter: RateLimiter;
  private readonly clock: Clock;

  constructor(private readonly opts: WorkQueueOptions) {
    this.name = opts.name;
    this.clock = opts.clock ?? systemClock;
    this.rateLimiter = opts.rateLimiter ?? defaultRateLimiter(this.clock);
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    const getter = this.getters.shift();
    if (getter) {
      this.dirty.delete(key);
      this.processing.add(key);
      getter(key);
      return;
    }
    this.queue.push(key);
    this.opts.onDepth?.(this.queue.length);
  }

  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = this.clock.now() + ms;
    const pending = this.waiting.get(key);
    if (pending && pending.at <= at) return;
    pending?.timer.cancel();
    const timer = this.clock.setTimer(() => {
      this.waiting.delete(key);
      this.add(key);
    }, ms);
    this.waiting.set(key, { at, timer });
  }

  addRateLimited(key: string): void {
    this.addAfter(key, this.rateLimiter.when(key));
  }

  forget(key: string): void {
    this.rateLimiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.rateLimiter.numRequeues(key);
  }

  /** The next key to process (marked as processing), or undefined once the queue shuts down. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      this.opts.onDepth?.(this.queue.length);
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.getters.push(resolve));
  }

  /** Marks the key as processed; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key) && !this.shuttingDown) {
      this.dirty.delete(key);
      this.add(key);
    }
  }

  len(): number {
    return this.queue.length;
  }

  isProcessing(key: string): boolean {
    return this.processing.has(key);
  }

  /** Keys waiting for a delay to pass (rate-limited or addAfter). */
  delayed(): number {
    return this.waiting.size;
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.waiting.values()) timer.cancel();
    this.waiting.clear();
    this.queue.length = 0;
    this.dirty.clear();
    this.opts.onDepth?.(0);
    for (const getter of this.getters.splice(0)) getter(undefined);
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }
}
