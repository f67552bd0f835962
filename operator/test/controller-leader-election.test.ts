/**
 * Lease-based leader election as a state machine: taking a free or expired Lease, leaving a
 * fresh one alone, renewing, losing it at the renew deadline, releasing it on stop, and never
 * two leaders. The Lease lives in an in-memory store with the API server's optimistic
 * concurrency (a stale resourceVersion is a 409); time is a fake clock.
 */
import { describe, expect, it } from '@jest/globals';
import { FakeClock, flushPromises } from '../src/kube/clock.js';
import { KubeApiError } from '../src/kube/client.js';
import {
  LeaderElector,
  microTime,
  type Lease,
  type LeaseSpec,
  type LeaseStore,
} from '../src/kube/leader-election.js';

/** A Lease with resourceVersion checks; `down` makes every call fail like an unreachable server. */
class MemoryLeaseStore implements LeaseStore {
  lease: Lease | undefined;
  down = false;
  writes = 0;
  private rv = 0;

  async get() {
    this.check();
    return this.lease ? structuredClone(this.lease) : undefined;
  }
  async create(spec: LeaseSpec) {
    this.check();
    if (this.lease) throw new KubeApiError(409, 'already exists');
    this.writes++;
    this.lease = { metadata: { name: 'l', namespace: 'ns', resourceVersion: String(++this.rv) }, spec };
    return structuredClone(this.lease);
  }
  async update(lease: Lease) {
    this.check();
    if (lease.metadata.resourceVersion !== this.lease?.metadata.resourceVersion)
      throw new KubeApiError(409, 'conflict');
    this.writes++;
    this.lease = { ...lease, metadata: { ...lease.metadata, resourceVersion: String(++this.rv) } };
    return structuredClone(this.lease);
  }
  describe() {
    return 'Lease ns/l';
  }
  private check() {
    if (this.down) throw new Error('connect ECONNREFUSED');
  }
}

function elector(store: LeaseStore, clock: FakeClock, identity: string, log: string[] = []) {
  return new LeaderElector({
    identity,
    store,
    clock,
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    onStartedLeading: () => log.push(`${identity} started`),
    onStoppedLeading: () => log.push(`${identity} stopped`),
  });
}

describe('tryAcquireOrRenew', () => {
  it('creates the Lease when there is none and holds it', async () => {
    const store = new MemoryLeaseStore();
    const clock = new FakeClock(1_700_000_000_000);
    const a = elector(store, clock, 'a');
    expect(await a.tryAcquireOrRenew()).toBe(true);
    expect(store.lease?.spec).toEqual({
      holderIdentity: 'a',
      leaseDurationSeconds: 15,
      acquireTime: microTime(clock.now()),
      renewTime: microTime(clock.now()),
      leaseTransitions: 0,
    });
    expect(store.lease?.spec?.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  });

  it('leaves a Lease alone while its holder renewed within the lease duration', async () => {
    const store = new MemoryLeaseStore();
    const clock = new FakeClock();
    const a = elector(store, clock, 'a');
    const b = elector(store, clock, 'b');
    await a.tryAcquireOrRenew();
    expect(await b.tryAcquireOrRenew()).toBe(false);
    await clock.advance(14_000);
    expect(await b.tryAcquireOrRenew()).toBe(false);
    expect(store.lease?.spec?.holderIdentity).toBe('a');
  });

  it('takes over once the holder has not renewed for the lease duration (on its own clock)', async () => {
    const store = new MemoryLeaseStore();
    const clock = new FakeClock();
    const a = elector(store, clock, 'a');
    const b = elector(store, clock, 'b');
    await a.tryAcquireOrRenew();
    expect(await b.tryAcquireOrRenew()).toBe(false); // b first sees the record now
    await clock.advance(15_001);
    expect(await b.tryAcquireOrRenew()).toBe(true);
    expect(store.lease?.spec?.holderIdentity).toBe('b');
    expect(store.lease?.spec?.leaseTransitions).toBe(1);
    expect(store.lease?.spec?.acquireTime).toBe(microTime(clock.now()));
  });

  it('a holder that keeps renewing is never taken over; renewals keep acquireTime and transitions', async () => {
    const store = new MemoryLeaseStore();
    const clock = new FakeClock();
    const a = elector(store, clock, 'a');
    const b = elector(store, clock, 'b');
    await a.tryAcquireOrRenew();
    const acquired = store.lease?.spec?.acquireTime;
    for (let i = 0; i < 20; i++) {
      await clock.advance(2_000);
      expect(await a.tryAcquireOrRenew()).toBe(true);
      expect(await b.tryAcquireOrRenew()).toBe(false);
    }
    expect(store.lease?.spec).toMatchObject({
      holderIdentity: 'a',
      acquireTime: acquired,
      leaseTransitions: 0,
    });
  });

  it('loses a race for the same resourceVersion without an error', async () => {
    const store = new MemoryLeaseStore();
    const clock = new FakeClock();
    await elector(store, clock, 'a').tryAcquireOrRenew();
    await clock.advance(20_000);
    const b = elector(store, clock, 'b');
    const c = elector(store, clock, 'c');
    // Both saw the record long ago; both try at the same moment.
    await b.tryAcquireOrRenew();
    await c.tryAcquireOrRenew();
    await clock.advance(16_000);
    const results = await Promise.all([b.tryAcquireOrRenew(), c.tryAcquireOrRenew()]);
    expect(results.filter(Boolean)).toHaveLength(1);
  });
});

describe('the election loop', () => {
  it('leads, renews every retry period, and releases the Lease on stop so a standby takes over at once', async () => {
    const store = new MemoryLeaseStore();
    const clock = new FakeClock();
    const log: string[] = [];
    const a = elector(store, clock, 'a', log);
    const b = elector(store, clock, 'b', log);
    a.start();
    await clock.advance(100);
    b.start();
    await clock.advance(10_000);
    expect(a.isLeader()).toBe(true);
    expect(b.isLeader()).toBe(false);
    expect(log).toEqual(['a started']);
    const renewals = store.writes;
    await clock.advance(10_000);
    expect(store.writes - renewals).toBe(5);

    await a.stop();
    expect(log).toEqual(['a started', 'a stopped']);
    expect(store.lease?.spec?.holderIdentity).toBe('');
    // b retries within about 2 x retryPeriod (jitter), not after the 15 s lease duration.
    await clock.advance(4_500);
    expect(b.isLeader()).toBe(true);
    expect(log).toEqual(['a started', 'a stopped', 'b started']);
    await b.stop();
  });

  it('stops leading at the renew deadline when the API server is unreachable, before anyone may take over', async () => {
    const store = new MemoryLeaseStore();
    const clock = new FakeClock();
    const log: string[] = [];
    const a = elector(store, clock, 'a', log);
    a.start();
    await clock.advance(1);
    expect(a.isLeader()).toBe(true);
    const lastRenew = clock.now();
    store.down = true;
    await clock.advance(9_000);
    expect(a.isLeader()).toBe(true);
    expect(log).toEqual(['a started']);
    await clock.advance(1_000); // renew deadline (10 s) reached
    expect(a.isLeader()).toBe(false);
    expect(log).toEqual(['a started', 'a stopped']);
    // The earliest a candidate could take over: lease duration after the last renewal it saw.
    expect(clock.now() - lastRenew).toBeLessThan(15_000);

    store.down = false;
    await clock.advance(20_000);
    expect(a.isLeader()).toBe(true); // back as a candidate, and the Lease was still its own
    expect(log).toEqual(['a started', 'a stopped', 'a started']);
    await a.stop();
  });

  it('isLeader() turns false at the deadline even if the renew loop is stuck in a request', async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    const a = elector(store, clock, 'a');
    await a.tryAcquireOrRenew();
    a.start();
    await clock.advance(1);
    expect(a.isLeader()).toBe(true);
    // Every request now hangs forever.
    store.get = () => new Promise<never>(() => undefined);
    await clock.advance(9_998); // the last renewal was at t=0
    expect(a.isLeader()).toBe(true);
    await clock.advance(2);
    expect(a.isLeader()).toBe(false);
  });

  it('gives up at once when another holder shows up on the Lease', async () => {
    const store = new MemoryLeaseStore();
    const clock = new FakeClock();
    const log: string[] = [];
    const a = elector(store, clock, 'a', log);
    a.start();
    await clock.advance(1);
    // An operator with a skewed view overwrites the Lease.
    store.lease = {
      ...store.lease!,
      spec: { ...store.lease!.spec, holderIdentity: 'intruder', renewTime: microTime(clock.now()) },
    };
    await clock.advance(2_000);
    expect(log).toEqual(['a started', 'a stopped']);
    expect(a.isLeader()).toBe(false);
    await a.stop();
  });

  it('three candidates with a flaky API server never have two leaders at the same moment', async () => {
    const store = new MemoryLeaseStore();
    const clock = new FakeClock();
    const electors = ['a', 'b', 'c'].map((id) => elector(store, clock, id));
    for (const e of electors) e.start();
    let leaderMoments = 0;
    for (let t = 0; t < 600; t++) {
      store.down = t % 37 < 9; // outages of 9 s every 37 s
      await clock.advance(1_000);
      const leaders = electors.filter((e) => e.isLeader());
      expect(leaders.length).toBeLessThanOrEqual(1);
      if (leaders.length === 1) leaderMoments++;
    }
    expect(leaderMoments).toBeGreaterThan(300);
    await Promise.all(electors.map((e) => e.stop()));
    await flushPromises();
  });

  it('refuses timings where a deposed leader could outlive its lease', () => {
    const store = new MemoryLeaseStore();
    const base = { identity: 'x', store, onStartedLeading() {}, onStoppedLeading() {} };
    expect(() => new LeaderElector({ ...base, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 })).toThrow(
      /renewDeadline/,
    );
    expect(() => new LeaderElector({ ...base, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 })).toThrow(
      /retryPeriod/,
    );
  });
});
