/**
 * What a Kafka replay reads and what it refuses, from a cursor's offsets and the brokers'
 * watermarks (replay-plan.ts): the rules behind CURSOR_INVALID, CURSOR_EXPIRED and
 * REPLAY_LIMIT_EXCEEDED, without a broker. End to end: e2e/test/resume-kafka.test.ts.
 */
import { describe, expect, it } from '@jest/globals';
import { CursorError } from '../../src/events/provider.js';
import { planReplay, type TopicEnds } from '../../src/events/kafka/replay-plan.js';
import { parseLane, startOffsets, type TopicState } from '../../src/events/kafka/topics.js';

const ends = (entries: Record<string, TopicEnds | undefined>) => new Map(Object.entries(entries));
const orders: TopicEnds = { low: [0, 0, 5], high: [10, 0, 8] };

function refusal(run: () => unknown): CursorError {
  try {
    run();
  } catch (error) {
    if (error instanceof CursorError) return error;
    throw error;
  }
  throw new Error('expected a CursorError');
}

describe('planReplay', () => {
  it('reads every partition after the cursor up to its end; a partition the cursor does not name from its first offset', () => {
    const ranges = planReplay({
      topics: ['orders'],
      after: new Map([['orders:0', 3]]),
      ends: ends({ orders }),
      maxMessages: 100,
    });
    expect(ranges).toEqual([
      { topic: 'orders', partition: 0, lane: 'orders:0', from: 4, end: 10 },
      { topic: 'orders', partition: 2, lane: 'orders:2', from: 5, end: 8 },
    ]);
  });

  it('a cursor at the end reads nothing', () => {
    expect(
      planReplay({
        topics: ['orders'],
        after: new Map([
          ['orders:0', 9],
          ['orders:2', 7],
        ]),
        ends: ends({ orders }),
        maxMessages: 0,
      }),
    ).toEqual([]);
  });

  it('a topic that does not exist (yet) has nothing to replay', () => {
    expect(
      planReplay({ topics: ['later'], after: new Map(), ends: ends({ later: undefined }), maxMessages: 5 }),
    ).toEqual([]);
  });

  it('refuses a cursor of another topic as invalid, naming it and the subscription’s topics', () => {
    const error = refusal(() =>
      planReplay({
        topics: ['orders'],
        after: new Map([['payments:0', 1]]),
        ends: ends({ orders }),
        maxMessages: 100,
      }),
    );
    expect(error.problem).toBe('invalid');
    expect(error.message).toBe(
      'the cursor is for topic "payments", which this subscription (topic "orders") does not read',
    );
  });

  it('refuses a lane that is not a partition, a partition the topic lacks, a deleted topic and a cursor past the end', () => {
    const cases: [string, number, RegExp][] = [
      ['orders', 1, /the cursor is for "orders"/],
      ['orders:3', 1, /has 3 partitions, but the cursor names partition 3/],
      ['orders:0', 10, /past its end \(9\): the topic was re-created/],
    ];
    for (const [lane, offset, message] of cases) {
      const error = refusal(() =>
        planReplay({
          topics: ['orders'],
          after: new Map([[lane, offset]]),
          ends: ends({ orders }),
          maxMessages: 100,
        }),
      );
      expect([error.problem, error.message]).toEqual(['invalid', expect.stringMatching(message)]);
    }
    const gone = refusal(() =>
      planReplay({
        topics: ['orders'],
        after: new Map([['orders:0', 1]]),
        ends: ends({ orders: undefined }),
        maxMessages: 100,
      }),
    );
    expect([gone.problem, gone.message]).toEqual([
      'invalid',
      'topic "orders" no longer exists (the cursor names its partition 0)',
    ]);
  });

  it('refuses a cursor whose next offset retention removed as expired, naming topic and partition', () => {
    const error = refusal(() =>
      planReplay({
        topics: ['orders'],
        after: new Map([['orders:2', 3]]),
        ends: ends({ orders }),
        maxMessages: 100,
      }),
    );
    expect(error.problem).toBe('expired');
    expect(error.message).toBe(
      'topic "orders" partition 2 no longer holds the events after the cursor (it starts at offset 5, the cursor is at 3): its retention removed them',
    );
    // Just before the first retained offset is fine: nothing was lost.
    expect(
      planReplay({
        topics: ['orders'],
        after: new Map([['orders:2', 4]]),
        ends: ends({ orders }),
        maxMessages: 100,
      }),
    ).toContainEqual({ topic: 'orders', partition: 2, lane: 'orders:2', from: 5, end: 8 });
  });

  it('refuses more waiting offsets than maxMessages, counted over every partition, before reading any', () => {
    const plan = (maxMessages: number) => () =>
      planReplay({
        topics: ['orders'],
        after: new Map([['orders:0', 3]]),
        ends: ends({ orders }),
        maxMessages,
      });
    expect(plan(9)).not.toThrow(); // 6 on partition 0, 3 on partition 2
    const error = refusal(plan(8));
    expect(error.problem).toBe('too_far');
    expect(error.message).toMatch(/up to 9 events wait .* \(8, subscriptions\.resume\.max_replay_events\)/);
  });

  it('an invalid lane is refused before an expired one', () => {
    const error = refusal(() =>
      planReplay({
        topics: ['orders'],
        after: new Map([
          ['orders:2', 0],
          ['other:0', 0],
        ]),
        ends: ends({ orders }),
        maxMessages: 100,
      }),
    );
    expect(error.problem).toBe('invalid');
  });
});

describe('lanes and start offsets', () => {
  it('a lane is topic and partition; the last colon separates them, and only a partition number counts', () => {
    expect(parseLane('room.1.messages:12')).toEqual({ topic: 'room.1.messages', partition: 12 });
    expect(parseLane('orders')).toBeUndefined();
    expect(parseLane(':1')).toBeUndefined();
    expect(parseLane('orders:01')).toBeUndefined();
    expect(parseLane('orders:-1')).toBeUndefined();
  });

  it('a subscription starts before each partition’s position; a partition never written to is left out', () => {
    const state = (name: string, positions: [number, string][]): TopicState => ({
      name,
      listeners: new Set(),
      phase: 'live',
      positions: new Map(positions),
    });
    expect(
      startOffsets([
        state('a', [
          [0, '0'],
          [1, '42'],
        ]),
        state('b', []),
      ]),
    ).toEqual(new Map([['a:1', 41]]));
  });
});
