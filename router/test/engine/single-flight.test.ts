/**
 * SingleFlight on its own: callers of one key share one run while it is in flight and nothing
 * after; a failure reaches every caller; a caller that gives up leaves the others waiting, and
 * the run is cancelled only when every caller has given up. Runs are settled by the test.
 */
import { describe, expect, it } from '@jest/globals';
import { SingleFlight, type Cancellation } from '../../src/engine/single-flight.js';

/** A run the test settles, and the signal it was given. */
function held<T>() {
  let settle!: { resolve: (v: T) => void; reject: (e: Error) => void };
  let signal!: Cancellation;
  let runs = 0;
  const work = (s: Cancellation) => {
    runs++;
    signal = s;
    return new Promise<T>((resolve, reject) => (settle = { resolve, reject }));
  };
  return {
    work,
    get settle() {
      return settle;
    },
    get signal() {
      return signal;
    },
    get runs() {
      return runs;
    },
  };
}

describe('SingleFlight', () => {
  it('callers of one key share one run and its value; the first is not marked shared, the others are', async () => {
    const flights = new SingleFlight<string>();
    const run = held<string>();
    const a = flights.run('k', run.work);
    const b = flights.run('k', run.work);
    const other = flights.run('other', () => Promise.resolve('x'));
    expect([a.shared, b.shared, other.shared]).toEqual([false, true, false]);
    run.settle.resolve('v');
    expect(await Promise.all([a.promise, b.promise, other.promise])).toEqual(['v', 'v', 'x']);
    expect(run.runs).toBe(1);
  });

  it('keeps nothing after the run settles: the next caller starts a new run', async () => {
    const flights = new SingleFlight<number>();
    let runs = 0;
    await flights.run('k', async () => ++runs).promise;
    expect(flights.size).toBe(0);
    expect(await flights.run('k', async () => ++runs).promise).toBe(2);
  });

  it('a failure reaches every caller', async () => {
    const flights = new SingleFlight<string>();
    const run = held<string>();
    const callers = [1, 2, 3].map(() => flights.run('k', run.work).promise);
    run.settle.reject(new Error('subgraph down'));
    for (const c of callers) await expect(c).rejects.toThrow('subgraph down');
    expect(flights.size).toBe(0);
  });

  it('a caller that gives up is rejected with its reason; the others still get the value and the run is not cancelled', async () => {
    const flights = new SingleFlight<string>();
    const run = held<string>();
    const leaving = new AbortController();
    const a = flights.run('k', run.work, leaving.signal);
    const b = flights.run('k', run.work, new AbortController().signal);
    const c = flights.run('k', run.work);
    leaving.abort(new Error('client closed the connection'));
    await expect(a.promise).rejects.toThrow('client closed the connection');
    expect(run.signal.aborted).toBe(false);
    run.settle.resolve('v');
    expect(await Promise.all([b.promise, c.promise])).toEqual(['v', 'v']);
  });

  it('when every caller has given up the run is cancelled, and a new caller starts afresh', async () => {
    const flights = new SingleFlight<string>();
    const run = held<string>();
    const x = new AbortController();
    const y = new AbortController();
    const a = flights.run('k', run.work, x.signal);
    const b = flights.run('k', run.work, y.signal);
    const heard: unknown[] = [];
    const removed = () => heard.push('removed listener');
    run.signal.addEventListener('abort', () => heard.push(run.signal.reason), { once: true });
    run.signal.addEventListener('abort', removed);
    run.signal.removeEventListener('abort', removed);
    x.abort(new Error('x left'));
    expect(run.signal.aborted).toBe(false);
    y.abort(new Error('y left'));
    expect(run.signal.aborted).toBe(true);
    expect(heard).toEqual([new Error('y left')]);
    await expect(a.promise).rejects.toThrow('x left');
    await expect(b.promise).rejects.toThrow('y left');
    // The cancelled run rejects with nobody waiting: no unhandled rejection.
    run.settle.reject(new Error('aborted'));
    const fresh = flights.run('k', async () => 'again');
    expect(fresh.shared).toBe(false);
    expect(await fresh.promise).toBe('again');
  });

  it('a caller whose signal is already aborted never starts or joins a run', async () => {
    const flights = new SingleFlight<string>();
    const gone = new AbortController();
    gone.abort(new Error('gone'));
    let runs = 0;
    await expect(flights.run('k', async () => String(++runs), gone.signal).promise).rejects.toThrow('gone');
    expect(runs).toBe(0);
    expect(flights.size).toBe(0);
  });
});
