import { describe, expect, it } from '@jest/globals';
import { drainSchedule } from '../src/server/drain.js';

/** A deterministic random source (LCG) so the schedule is reproducible. */
function seeded(seed: number): () => number {
  let x = seed;
  return () => (x = (x * 1664525 + 1013904223) % 4294967296) / 4294967296;
}

describe('drain schedule', () => {
  it('spreads 1,000 closes over three quarters of the window in batches at least 50 ms apart', () => {
    const times = drainSchedule(1000, 20_000, seeded(1));
    expect(times).toHaveLength(1000);
    expect(Math.min(...times)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...times)).toBeLessThanOrEqual(15_000);
    const batches = [...new Set(times)].sort((a, b) => a - b);
    expect(batches.length).toBe(300);
    for (let i = 1; i < batches.length; i++) expect(batches[i]! - batches[i - 1]!).toBeGreaterThan(0);
    // No batch holds more than a few connections: no thundering herd.
    const perBatch = new Map<number, number>();
    for (const t of times) perBatch.set(t, (perBatch.get(t) ?? 0) + 1);
    expect(Math.max(...perBatch.values())).toBeLessThanOrEqual(4);
  });

  it('jitters batch times: two seeds give different schedules', () => {
    expect(drainSchedule(100, 10_000, seeded(1))).not.toEqual(drainSchedule(100, 10_000, seeded(2)));
  });

  it('closes everything at once with a zero window, and nothing with no connections', () => {
    expect(drainSchedule(5, 0, seeded(1))).toEqual([0, 0, 0, 0, 0]);
    expect(drainSchedule(0, 10_000)).toEqual([]);
  });

  it('uses one batch per connection when there are fewer connections than slots', () => {
    const times = drainSchedule(3, 10_000, () => 0);
    expect(times).toEqual([0, 2500, 5000]);
  });
});
