/**
 * The work queue and the controller loop around it: client-go's rate limiting (per-key
 * exponential backoff, overall token bucket), dedup, one worker per key, and what a controller
 * does with success, failure and requeue-after. Time is a fake clock; nothing sleeps.
 */
import { describe, expect, it } from '@jest/globals';
import { Controller } from '../src/controller/controller.js';
import { createControllerMetrics } from '../src/controller/metrics.js';
import {
  BucketRateLimiter,
  defaultRateLimiter,
  ExponentialFailureRateLimiter,
  MaxOfRateLimiter,
  WorkQueue,
} from '../src/controller/queue.js';
import { FakeClock, flushPromises } from '../src/kube/clock.js';
import { silentLogger } from '../src/kube/logger.js';

describe('rate limiters', () => {
  it('backs a failing key off exponentially from 5 ms, capped at 1000 s', () => {
    const limiter = new ExponentialFailureRateLimiter();
    const delays = Array.from({ length: 20 }, () => limiter.when('a'));
    expect(delays.slice(0, 6)).toEqual([5, 10, 20, 40, 80, 160]);
    expect(delays[17]).toBe(5 * 2 ** 17); // 655 s
    expect(delays[18]).toBe(1_000_000); // would be 1310 s: capped
    expect(delays[19]).toBe(1_000_000);
    expect(limiter.numRequeues('a')).toBe(20);
  });

  it('keeps each key its own count, and forget resets it', () => {
    const limiter = new ExponentialFailureRateLimiter();
    limiter.when('a');
    limiter.when('a');
    expect(limiter.when('b')).toBe(5);
    limiter.forget('a');
    expect(limiter.when('a')).toBe(5);
  });

  it('lets a burst through, then spaces keys at the bucket rate', () => {
    const clock = new FakeClock();
    const bucket = new BucketRateLimiter(10, 3, clock);
    expect([bucket.when(), bucket.when(), bucket.when()]).toEqual([0, 0, 0]);
    expect(bucket.when()).toBeCloseTo(100);
    expect(bucket.when()).toBeCloseTo(200);
  });

  it('the default limiter takes the slower of both verdicts', () => {
    const clock = new FakeClock();
    const limiter = defaultRateLimiter(clock);
    expect(limiter.when('x')).toBe(5);
    expect(limiter.when('x')).toBe(10);
    const max = new MaxOfRateLimiter(new ExponentialFailureRateLimiter(), new BucketRateLimiter(1, 1, clock));
    expect(max.when('y')).toBe(5);
    expect(max.when('z')).toBeCloseTo(1000); // bucket empty: one per second
  });
});

describe('WorkQueue', () => {
  it('queues a key once however often it is added', async () => {
    const q = new WorkQueue({ name: 't', clock: new FakeClock() });
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.len()).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
  });

  it('never hands a key to two workers: an add while processing waits for done()', async () => {
    const q = new WorkQueue({ name: 't', clock: new FakeClock() });
    q.add('a');
    const first = await q.get();
    q.add('a'); // changed again while a worker holds it
    expect(q.len()).toBe(0);
    expect(q.isProcessing('a')).toBe(true);
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await flushPromises();
    expect(second).toBeUndefined();
    q.done(first!);
    await flushPromises();
    expect(second).toBe('a');
  });

  it('hands a key to a waiting worker at once', async () => {
    const q = new WorkQueue({ name: 't', clock: new FakeClock() });
    const got = q.get();
    q.add('k');
    expect(await got).toBe('k');
  });

  it('delays addAfter keys on the clock and keeps the earliest time per key', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ name: 't', clock });
    q.addAfter('a', 1000);
    q.addAfter('a', 300);
    q.addAfter('a', 5000);
    expect(q.delayed()).toBe(1);
    await clock.advance(299);
    expect(q.len()).toBe(0);
    await clock.advance(1);
    expect(q.len()).toBe(1);
    await clock.advance(10_000);
    expect(q.len()).toBe(1); // the later timers were replaced, not added
  });

  it('addRateLimited waits longer after each failure of the same key', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ name: 't', clock, rateLimiter: new ExponentialFailureRateLimiter(5, 1000) });
    const readyAt: number[] = [];
    for (let i = 0; i < 4; i++) {
      const start = clock.now();
      q.addRateLimited('a');
      while (q.len() === 0) await clock.advance(1);
      readyAt.push(clock.now() - start);
      q.done((await q.get())!);
    }
    expect(readyAt).toEqual([5, 10, 20, 40]);
  });

  it('reports its depth and wakes waiting workers on shutdown', async () => {
    const depths: number[] = [];
    const q = new WorkQueue({ name: 't', clock: new FakeClock(), onDepth: (d) => depths.push(d) });
    q.add('a');
    q.add('b');
    await q.get();
    await q.get();
    const waiting = q.get();
    q.shutDown();
    expect(await waiting).toBeUndefined();
    q.add('c');
    expect(q.len()).toBe(0);
    expect(depths).toEqual([1, 2, 1, 0, 0]);
  });
});

describe('Controller', () => {
  function setup(reconcile: (key: string) => Promise<{ requeueAfterMs?: number } | void>) {
    const clock = new FakeClock();
    const metrics = createControllerMetrics({ processMetrics: false });
    const calls: string[] = [];
    const controller = new Controller({
      name: 'test',
      reconciler: {
        reconcile: async (key) => {
          calls.push(`${clock.now()}:${key}`);
          return reconcile(key);
        },
      },
      metrics,
      logger: silentLogger,
      clock,
      workers: 2,
    });
    const value = async (name: string, labels: Record<string, string>) =>
      (await metrics.registry.getSingleMetric(name)?.get())?.values.find((v) =>
        Object.entries(labels).every(([k, l]) => v.labels[k] === l),
      )?.value ?? 0;
    return { clock, metrics, calls, controller, value };
  }

  it('retries a failing key with growing delays and counts the errors', async () => {
    let failures = 3;
    const { clock, calls, controller, value } = setup(async () => {
      if (failures-- > 0) throw new Error('API server said no');
    });
    controller.start(['ns/a']);
    await clock.advance(1000);
    expect(calls).toEqual(['0:ns/a', '5:ns/a', '15:ns/a', '35:ns/a']);
    expect(await value('controller_runtime_reconcile_errors_total', { controller: 'test' })).toBe(3);
    expect(await value('controller_runtime_reconcile_total', { controller: 'test', result: 'error' })).toBe(
      3,
    );
    expect(await value('controller_runtime_reconcile_total', { controller: 'test', result: 'success' })).toBe(
      1,
    );
    await controller.stop();
  });

  it('forgets the backoff after a success, so the next failure starts at 5 ms again', async () => {
    let fail = true;
    const { clock, calls, controller } = setup(async () => {
      if (fail) {
        fail = false;
        throw new Error('once');
      }
    });
    controller.start(['a']);
    await clock.advance(100);
    fail = true;
    controller.enqueue('a');
    await clock.advance(100);
    expect(calls).toEqual(['0:a', '5:a', '100:a', '105:a']);
    await controller.stop();
  });

  it('reconciles again after requeueAfterMs without counting an error', async () => {
    const { clock, calls, controller, value } = setup(async () => ({ requeueAfterMs: 30_000 }));
    controller.start(['a']);
    await clock.advance(65_000);
    expect(calls).toEqual(['0:a', '30000:a', '60000:a']);
    expect(
      await value('controller_runtime_reconcile_total', { controller: 'test', result: 'requeue_after' }),
    ).toBe(3);
    expect(await value('controller_runtime_reconcile_errors_total', { controller: 'test' })).toBe(0);
    await controller.stop();
  });

  it('never runs two reconciles of one key at once, even with several workers', async () => {
    let running = 0;
    let overlap = false;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { controller } = setup(async () => {
      running++;
      if (running > 1) overlap = true;
      await gate;
      running--;
    });
    controller.start(['a']);
    await flushPromises();
    controller.enqueue('a');
    controller.enqueue('a');
    await flushPromises();
    release();
    await flushPromises();
    await controller.stop();
    expect(overlap).toBe(false);
  });

  it('does nothing before start and after stop; stop waits for the reconcile in flight', async () => {
    let finished = false;
    let release!: () => void;
    const { calls, controller } = setup(async () => {
      await new Promise<void>((r) => (release = r));
      finished = true;
    });
    controller.enqueue('early');
    controller.start(['a']);
    await flushPromises();
    const stopped = controller.stop();
    controller.enqueue('late');
    release();
    await stopped;
    expect(finished).toBe(true);
    expect(calls.map((c) => c.split(':')[1])).toEqual(['a']);
  });
});
