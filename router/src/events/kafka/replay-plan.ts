/**
 * What a Kafka replay reads, decided before anything is read: per partition of the subscription's
 * topics, the offsets from just after the cursor up to where the partition ends now, or a refusal
 * (CursorError) the client can act on. Pure: the broker's answers (watermarks) come in as data,
 * so every rule here is tested without a broker.
 *
 * Rules, in this order:
 * - `invalid`: a lane that is not a partition of the subscription's topics (the cursor belongs to
 *   another subscription), a partition the topic does not have, or a cursor past a partition's end
 *   (both mean the topic was re-created or changed since the cursor was made);
 * - `expired`: the partition's retention removed events after the cursor (its low watermark is
 *   past `after + 1`);
 * - `too_far`: more than `maxMessages` offsets wait in all (tombstones and transaction markers
 *   included: the broker counts offsets, not events).
 * A partition the cursor does not name is read from its first retained offset: it had no event
 * when the cursor was made.
 */
import { CursorError, type Offsets } from '../provider.js';
import { laneOf, parseLane } from './topics.js';

/** A topic's partitions (by index): first retained offset and end (the next offset to be written). */
export interface TopicEnds {
  low: readonly number[];
  high: readonly number[];
}

/** One partition to read: offsets `from` (inclusive) to `end` (exclusive). */
export interface LaneRange {
  topic: string;
  partition: number;
  lane: string;
  from: number;
  end: number;
}

export interface ReplayPlanInput {
  /** The subscription's topics. */
  topics: readonly string[];
  /** Per lane, the last offset the client has. */
  after: Offsets;
  /** Per topic, its watermarks now; undefined for a topic that does not exist. */
  ends: ReadonlyMap<string, TopicEnds | undefined>;
  maxMessages: number;
}

export function planReplay({ topics, after, ends, maxMessages }: ReplayPlanInput): LaneRange[] {
  const read = topics.map((t) => `"${t}"`).join(', ');
  for (const [lane, offset] of after) {
    const parsed = parseLane(lane);
    if (!parsed || !topics.includes(parsed.topic))
      throw new CursorError(
        'invalid',
        `the cursor is for ${parsed ? `topic "${parsed.topic}"` : `"${lane}"`}, which this subscription (topic ${read}) does not read`,
      );
    const topic = ends.get(parsed.topic);
    if (!topic)
      throw new CursorError(
        'invalid',
        `topic "${parsed.topic}" no longer exists (the cursor names its partition ${parsed.partition})`,
      );
    const count = topic.high.length;
    if (parsed.partition >= count)
      throw new CursorError(
        'invalid',
        `topic "${parsed.topic}" has ${count} partition${count === 1 ? '' : 's'}, but the cursor names partition ${parsed.partition}: the topic was re-created or changed since`,
      );
    const end = topic.high[parsed.partition]!;
    if (offset + 1 > end)
      throw new CursorError(
        'invalid',
        `the cursor is at offset ${offset} of topic "${parsed.topic}" partition ${parsed.partition}, past its end (${end - 1}): the topic was re-created since`,
      );
  }

  const ranges: LaneRange[] = [];
  for (const topic of new Set(topics)) {
    const topicEnds = ends.get(topic);
    if (!topicEnds) continue;
    topicEnds.high.forEach((end, partition) => {
      const lane = laneOf(topic, partition);
      const low = topicEnds.low[partition] ?? 0;
      const offset = after.get(lane);
      if (offset !== undefined && offset + 1 < low)
        throw new CursorError(
          'expired',
          `topic "${topic}" partition ${partition} no longer holds the events after the cursor (it starts at offset ${low}, the cursor is at ${offset}): its retention removed them`,
        );
      const from = offset === undefined ? low : offset + 1;
      if (from < end) ranges.push({ topic, partition, lane, from, end });
    });
  }

  const waiting = ranges.reduce((sum, r) => sum + (r.end - r.from), 0);
  if (waiting > maxMessages)
    throw new CursorError(
      'too_far',
      `up to ${waiting} events wait after the cursor on topic ${read}, more than a replay may deliver (${maxMessages}, subscriptions.resume.max_replay_events)`,
    );
  return ranges;
}
