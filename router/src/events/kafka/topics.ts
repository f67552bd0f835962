/**
 * Where each Kafka topic the provider tracks stands: its subscribers, its phase and the next
 * offset to deliver per partition. The provider (provider.ts) adds and drops subscribers and fixes
 * start positions; the shared consumer (consumers.ts) reads the topics and advances positions.
 *
 * Phases:
 * - `positioning`: its start position (the end offsets) is being looked up;
 * - `missing`: the topic does not exist yet; looked up again until a producer creates it;
 * - `wanted`: it has subscribers and waits for the next consumer rebuild;
 * - `joining`: a consumer that carries it is joining its group;
 * - `live`: the consumer reads it;
 * - `idle`: no subscribers left; paused in the running consumer until a rebuild drops it.
 *
 * Invariant: a position is always the next offset to deliver, so seeking there after any join
 * loses and repeats nothing.
 *
 * Also the lanes of Kafka cursors (events/provider.ts `Position`): one per topic partition,
 * `<topic>:<partition>`, its offsets the partition's. Topic names cannot contain ':', so the last
 * ':' separates the two.
 */
import type { BrokerMessage, Offsets } from '../provider.js';

export type TopicPhase = 'positioning' | 'missing' | 'wanted' | 'joining' | 'live' | 'idle';

export interface Listener {
  open: boolean;
  onMessage: (message: BrokerMessage) => void;
  /**
   * Kept for the contract, not called today: a Kafka subscription does not end by itself (a topic
   * that disappears is waited for, a crashed consumer is rebuilt).
   */
  onError: (error: Error) => void;
}

export interface TopicState {
  readonly name: string;
  readonly listeners: Set<Listener>;
  phase: TopicPhase;
  /** Next offset to deliver per partition (int64 as a decimal string). */
  positions: Map<number, string>;
  /** The lookup of the start position in flight, shared by concurrent subscribers. */
  positioning?: Promise<void>;
}

/** Whether a topic has subscribers waiting for (or getting) its messages. */
export function wanted(state: TopicState): boolean {
  return (
    state.listeners.size > 0 &&
    (state.phase === 'wanted' || state.phase === 'joining' || state.phase === 'live')
  );
}

/** Topics with subscribers that the consumer should read now. */
export function wantedTopics(states: ReadonlyMap<string, TopicState>): Set<string> {
  const names = new Set<string>();
  for (const state of states.values()) if (wanted(state)) names.add(state.name);
  return names;
}

/** The cursor lane of a topic partition. */
export function laneOf(topic: string, partition: number): string {
  return `${topic}:${partition}`;
}

/** A lane's topic and partition; undefined for text that is not a lane of ours. */
export function parseLane(lane: string): { topic: string; partition: number } | undefined {
  const colon = lane.lastIndexOf(':');
  const partition = lane.slice(colon + 1);
  if (colon <= 0 || !/^(0|[1-9][0-9]{0,9})$/.test(partition)) return undefined;
  return { topic: lane.slice(0, colon), partition: Number(partition) };
}

/**
 * Where a subscription of `states` starts (BrokerSubscription.start): per partition, the offset
 * before the next one to deliver. Left out, and so read from their first retained offset by a
 * replay, as live delivery reads them from their beginning: partitions without a position yet,
 * and those whose next offset is 0 (nothing was ever written there; cursors hold no offset
 * before 0).
 */
export function startOffsets(states: readonly TopicState[]): Offsets {
  const start = new Map<string, number>();
  for (const state of states)
    for (const [partition, next] of state.positions)
      if (next !== '0') start.set(laneOf(state.name, partition), Number(next) - 1);
  return start;
}
