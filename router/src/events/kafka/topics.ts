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
 */
import type { BrokerMessage } from '../provider.js';

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
