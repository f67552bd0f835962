/**
 * Lease-based leader election (coordination.k8s.io/v1 Lease), as client-go's leaderelection does
 * it: a candidate takes the Lease when it is free or its holder stopped renewing for
 * `leaseDuration` (measured on the candidate's own clock, from when it last saw the Lease change,
 * so clock skew between machines does not matter); the leader renews every `retryPeriod`.
 *
 * Invariants:
 * - `isLeader()` is false as soon as `renewDeadline` has passed since the last successful renew,
 *   even before the renew loop notices; `renewDeadline < leaseDuration`, so a deposed leader stops
 *   before anyone else may take over;
 * - `onStoppedLeading` runs at once when leadership is lost (failed renewals, another holder) and
 *   on `stop()`, before the Lease is released, so reconciling has stopped when a successor starts;
 * - `stop()` releases a held Lease (empty holder) so a standby takes over without waiting.
 */
import { sleep, systemClock, type Clock, type TimerHandle } from './clock.js';
import { isConflict, type KubeClient } from './client.js';
import type { Logger } from './logger.js';
import { RESOURCES, type AnyObject } from './resources.js';

export interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number | null;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number | null;
}

export interface Lease extends AnyObject {
  spec?: LeaseSpec;
}

/** Where the Lease lives; `update` must fail (throw) when the Lease changed since it was read. */
export interface LeaseStore {
  get(): Promise<Lease | undefined>;
  create(spec: LeaseSpec): Promise<Lease>;
  update(lease: Lease): Promise<Lease>;
  describe(): string;
}

export function kubeLeaseStore(client: KubeClient, namespace: string, name: string): LeaseStore {
  return {
    get: () => client.get<Lease>(RESOURCES.Lease, namespace, name),
    create: (spec) => client.create<Lease>(RESOURCES.Lease, { metadata: { name, namespace }, spec }),
    update: (lease) => client.replace<Lease>(RESOURCES.Lease, lease),
    describe: () => `Lease ${namespace}/${name}`,
  };
}

export type LeaderState = 'candidate' | 'leader' | 'stopped';

export interface LeaderElectorOptions {
  identity: string;
  store: LeaseStore;
  /** Default 15 s. */
  leaseDurationMs?: number;
  /** Default 10 s; must be below leaseDuration. */
  renewDeadlineMs?: number;
  /** Default 2 s. */
  retryPeriodMs?: number;
  clock?: Clock;
  logger?: Logger;
  onStartedLeading(): void;
  onStoppedLeading(): void;
  onNewLeader?(identity: string): void;
}

export class LeaderElector {
  private state: LeaderState = 'candidate';
  private observed: LeaseSpec | undefined;
  private observedAt = 0;
  private lastRenew = 0;
  private deadline: TimerHandle | undefined;
  private loop: Promise<void> | undefined;
  private readonly abort = new AbortController();
  private readonly clock: Clock;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private lastLeader: string | undefined;

  constructor(private readonly opts: LeaderElectorOptions) {
    this.clock = opts.clock ?? systemClock;
    this.leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    if (this.renewDeadlineMs >= this.leaseDurationMs) {
      throw new Error('leader election: renewDeadline must be shorter than leaseDuration');
    }
    if (this.retryPeriodMs >= this.renewDeadlineMs) {
      throw new Error('leader election: retryPeriod must be shorter than renewDeadline');
    }
  }

  get identity(): string {
    return this.opts.identity;
  }

  currentState(): LeaderState {
    return this.state;
  }

  /** Leading, and the last renewal is younger than the renew deadline. */
  isLeader(): boolean {
    return this.state === 'leader' && this.clock.now() - this.lastRenew < this.renewDeadlineMs;
  }

  /** The holder last seen on the Lease ('' when free). */
  observedLeader(): string {
    return this.observed?.holderIdentity ?? '';
  }

  /** Starts campaigning in the background. */
  start(): void {
    this.loop ??= this.run();
  }

  /** Stops campaigning; a leader stops leading (callback first) and releases the Lease. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    const wasLeader = this.state === 'leader';
    this.state = 'stopped';
    this.deadline?.cancel();
    this.abort.abort();
    await this.loop?.catch(() => undefined);
    if (wasLeader) {
      this.opts.onStoppedLeading();
      await this.release().catch((err: unknown) =>
        this.opts.logger?.warn({ err: String(err) }, `could not release ${this.opts.store.describe()}`),
      );
    }
  }

  /**
   * One attempt to take or renew the Lease; true when we hold it afterwards. Exposed for tests:
   * the loop is nothing but this on a timer.
   */
  async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.clock.now();
    const lease = await this.opts.store.get();
    const spec: LeaseSpec = {
      holderIdentity: this.opts.identity,
      leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
      acquireTime: microTime(now),
      renewTime: microTime(now),
      leaseTransitions: 0,
    };
    if (!lease) {
      try {
        const created = await this.opts.store.create(spec);
        this.observe(created.spec ?? spec, now);
        return true;
      } catch (err) {
        if (isConflict(err)) return false; // someone else created it first
        throw err;
      }
    }

    const current = lease.spec ?? {};
    if (!sameRecord(current, this.observed)) this.observe(current, now);
    const holder = current.holderIdentity ?? '';
    const durationMs = (current.leaseDurationSeconds ?? 0) * 1000;
    if (holder !== '' && holder !== this.opts.identity && this.observedAt + durationMs > now) {
      return false; // held by someone else who renewed recently enough
    }
    if (holder === this.opts.identity) {
      spec.acquireTime = current.acquireTime ?? spec.acquireTime;
      spec.leaseTransitions = current.leaseTransitions ?? 0;
    } else {
      spec.leaseTransitions = (current.leaseTransitions ?? 0) + 1;
    }
    try {
      const updated = await this.opts.store.update({ ...lease, spec });
      this.observe(updated.spec ?? spec, now);
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  private async run(): Promise<void> {
    while (this.state !== 'stopped') {
      let ok = false;
      try {
        ok = await this.tryAcquireOrRenew();
      } catch (err) {
        this.opts.logger?.warn({ err: String(err) }, `${this.opts.store.describe()}: acquire/renew failed`);
      }
      if (this.stopped()) break;
      if (ok) {
        this.lastRenew = this.clock.now();
        this.armDeadline();
        if (this.state === 'candidate') {
          this.state = 'leader';
          this.opts.logger?.info(
            { identity: this.opts.identity },
            `became leader (${this.opts.store.describe()})`,
          );
          this.opts.onStartedLeading();
        }
      } else if (this.state === 'leader') {
        const holder = this.observedLeader();
        if (holder !== '' && holder !== this.opts.identity) this.lose(`the Lease is now held by ${holder}`);
        else if (this.clock.now() - this.lastRenew >= this.renewDeadlineMs)
          this.lose('renew deadline exceeded');
      }
      const wait = this.state === 'leader' ? this.retryPeriodMs : jitter(this.retryPeriodMs);
      await sleep(this.clock, wait, this.abort.signal);
    }
  }

  /** Re-reads the state: `stop()` may have changed it while an attempt was awaited. */
  private stopped(): boolean {
    return this.state === 'stopped';
  }

  private armDeadline(): void {
    this.deadline?.cancel();
    this.deadline = this.clock.setTimer(() => {
      this.deadline = undefined;
      if (this.state === 'leader' && this.clock.now() - this.lastRenew >= this.renewDeadlineMs) {
        this.lose('renew deadline exceeded');
      }
    }, this.renewDeadlineMs);
  }

  private lose(reason: string): void {
    if (this.state !== 'leader') return;
    this.state = 'candidate';
    this.deadline?.cancel();
    this.opts.logger?.warn({ identity: this.opts.identity, reason }, 'lost leadership; reconciling stopped');
    this.opts.onStoppedLeading();
  }

  private observe(spec: LeaseSpec, now: number): void {
    this.observed = { ...spec };
    this.observedAt = now;
    const leader = spec.holderIdentity ?? '';
    if (leader !== this.lastLeader) {
      this.lastLeader = leader;
      if (leader !== '') this.opts.onNewLeader?.(leader);
    }
  }

  /** Gives the Lease up: empty holder, 1 s duration, so any candidate may take it at once. */
  private async release(): Promise<void> {
    const lease = await this.opts.store.get();
    if (!lease || lease.spec?.holderIdentity !== this.opts.identity) return;
    const now = microTime(this.clock.now());
    await this.opts.store.update({
      ...lease,
      spec: {
        holderIdentity: '',
        leaseDurationSeconds: 1,
        acquireTime: now,
        renewTime: now,
        leaseTransitions: lease.spec.leaseTransitions ?? 0,
      },
    });
    this.opts.logger?.info({ identity: this.opts.identity }, `released ${this.opts.store.describe()}`);
  }
}

function sameRecord(a: LeaseSpec | undefined, b: LeaseSpec | undefined): boolean {
  if (!a || !b) return a === b;
  return (
    (a.holderIdentity ?? '') === (b.holderIdentity ?? '') &&
    (a.renewTime ?? '') === (b.renewTime ?? '') &&
    (a.acquireTime ?? '') === (b.acquireTime ?? '') &&
    (a.leaseDurationSeconds ?? 0) === (b.leaseDurationSeconds ?? 0) &&
    (a.leaseTransitions ?? 0) === (b.leaseTransitions ?? 0)
  );
}

/** metav1.MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** client-go waits retryPeriod * (1 + up to 1.2) between attempts of a candidate. */
function jitter(ms: number): number {
  return ms * (1 + Math.random() * 1.2);
}
