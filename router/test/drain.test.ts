import { describe, expect, it } from '@jest/globals';
import { Drain, drainSchedule } from '../src/server/drain.js';
import { readBody, startTestRouter, TOPIC, waitFor } from './protocols/harness.js';

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

describe('draining streamed responses (SSE, multipart)', () => {
  it('ends open streams in jittered batches over the window, without completion; new ones get 503', async () => {
    const drain = new Drain();
    const router = await startTestRouter('', { drain });
    try {
      const open = (accept: string) =>
        fetch(router.url, {
          method: 'POST',
          headers: { accept, 'content-type': 'application/json' },
          body: JSON.stringify({ query: TOPIC, variables: { topic: 'quiet' } }),
        });
      const responses = await Promise.all([
        ...Array.from({ length: 10 }, () => open('text/event-stream')),
        ...Array.from({ length: 10 }, () => open('multipart/mixed;subscriptionSpec="1.0"')),
      ]);
      const ends = responses.map(async (res) => {
        let text = '';
        await readBody(res, (piece) => (text += piece));
        return { at: Date.now(), text };
      });
      await waitFor(() => router.operations.active() === 20, '20 open streams');

      const drained = drain.run(1_000);
      const refused = await open('text/event-stream');
      expect(refused.status).toBe(503);
      expect(await refused.json()).toEqual({
        errors: [{ message: 'The router is shutting down: retry the request (on another replica).' }],
      });
      await drained;

      const ended = await Promise.all(ends);
      expect(router.operations.active()).toBe(0);
      // Cut short, so clients reconnect: no `complete` event, no closing multipart delimiter.
      for (const { text } of ended) {
        expect(text).not.toContain('event: complete');
        expect(text).not.toContain('--graphql--');
      }
      const times = ended.map((e) => e.at).sort((a, b) => a - b);
      expect(times[times.length - 1]! - times[0]!).toBeGreaterThan(200);
    } finally {
      await router.close();
    }
  });
});
