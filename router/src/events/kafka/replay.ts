/**
 * Replays of the Kafka provider (EventProvider.replay): a subscription's past messages, per topic
 * partition, from just after a client's cursor up to where each partition ended when the replay
 * started, so a client resumes on any replica with what it missed.
 *
 * Why a second Kafka client. kafkajs, which does everything else here, reads only through a
 * consumer group: no manual partition assignment, no plain fetch. A group costs a join
 * (`group.initial.rebalance.delay.ms`, 3 s by default) and cannot change its topics, while
 * hundreds of clients resume within seconds when a router drains, on topics of their own. One
 * group consumer batching concurrent replays would still pay a join per batch, seek back whenever
 * a later request wants older offsets, and sort each message out to its requests by hand.
 * `@platformatic/kafka` (pure JavaScript, no native build) exposes what the protocol offers:
 * Metadata, ListOffsets and Fetch sent to a partition's leader, with no group at all. So a replay
 * is a few round trips (watermarks, then fetches from the cursor on), and replays run side by
 * side on the one client's connections. Its 1.x line runs on Node 20 and needs Kafka 3.5 or later
 * (the live path runs on whatever kafkajs speaks).
 *
 * Sharing, for the burst after a drain: replays that start in the same turn share one watermark
 * lookup per topic (a lookup is sent after every replay that joins it started, so its ends are
 * never older than the replay), and identical fetches in flight (clients resuming from the same
 * event carry the same cursor) are sent once. (The engine starts a replay once the subscription
 * it continues has resolved, i.e. once its start positions are fixed: the ends read here are at or
 * past them, so no event falls between replay and live delivery.)
 *
 * Reads are READ_COMMITTED, as kafkajs' consumer reads: ends are last stable offsets, aborted
 * transactions are left out, and control records and tombstones (null values) move the position
 * on without being delivered. What is read and what is refused is decided up front by
 * replay-plan.ts.
 *
 * The library is loaded at the first replay, not with the router: it is hundreds of modules and
 * about 30 MB of memory that a router which never replays from Kafka does not need.
 *
 * Invariants: every refusal (CursorError) of a cursor comes before the first message; each lane's
 * messages are delivered in offset order, each once; nothing is delivered once the signal aborts,
 * and the replay then resolves without waiting for the broker; the client never joins a group
 * and never commits.
 */
import type { Consumer, GenericError, MultipleErrors, RecordsBatch } from '@platformatic/kafka';
import type { Logger } from 'pino';
import { CursorError, ProviderError, messageOf, withDeadline, type ReplayRequest } from '../provider.js';
import type { ReplayClientOptions } from './options.js';
import { planReplay, type LaneRange, type TopicEnds } from './replay-plan.js';

/** What replays need from the provider. */
export interface ReplayHost {
  readonly providerId: string;
  readonly brokers: readonly string[];
  readonly logger: Logger | undefined;
  /** Deadline of one lookup or fetch. */
  readonly operationTimeoutMs: number;
}

/** A topic as the replay reads it: its id and partition leaders (for Fetch) and its watermarks. */
interface TopicInfo {
  id: string;
  leaders: number[];
  ends: TopicEnds;
}

/** One partition's answer to a fetch. */
interface Fetched {
  batches: RecordsBatch[];
  logStartOffset: number;
  lastStableOffset: number;
}

/** Bytes asked for per partition and fetch (a larger first batch still comes whole). */
const PARTITION_MAX_BYTES = 1024 * 1024;
const FETCH_MAX_BYTES = 8 * 1024 * 1024;
/** Control record batches (transaction markers) carry no events. */
const IS_CONTROL = 1 << 5;
/** Fetches in a row that bring a partition no further before the replay gives up. */
const MAX_STALLS = 5;
/** Metadata refreshes after a leader moved, per replay. */
const MAX_LEADER_RETRIES = 3;

type Client = Consumer<Buffer, Buffer, Buffer, Buffer>;
type Library = typeof import('@platformatic/kafka');
let loading: Promise<Library> | undefined;
type FetchResponse = Awaited<ReturnType<Client['fetch']>>;

export class KafkaReplays {
  private client: Client | undefined;
  /** The client library, once a replay has loaded it. */
  private lib: Library | undefined;
  /** Watermark lookups not sent yet, by topic: replays of this turn join them. */
  private readonly lookups = new Map<string, Promise<TopicInfo | undefined>>();
  /** Fetches in flight, by what they ask for. */
  private readonly fetches = new Map<string, Promise<Map<string, Fetched>>>();
  private closed = false;

  constructor(
    private readonly host: ReplayHost,
    private readonly options: ReplayClientOptions,
  ) {}

  async replay(request: ReplayRequest): Promise<void> {
    this.lib ??= await this.guard('load the Kafka client', (loading ??= import('@platformatic/kafka')));
    const topics = [...new Set(request.spec.subjects)];
    const infos = new Map<string, TopicInfo | undefined>();
    await this.guard(
      `look up topic ${topics.map((t) => `"${t}"`).join(', ')}`,
      Promise.all(topics.map(async (topic) => infos.set(topic, await this.lookup(topic)))),
    );
    const ranges = planReplay({
      topics,
      after: request.after,
      ends: new Map([...infos].map(([topic, info]) => [topic, info?.ends])),
      maxMessages: request.maxMessages,
    });
    if (ranges.length === 0 || request.signal.aborted) return;
    await this.read(ranges, infos as Map<string, TopicInfo>, request);
  }

  async close(): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = undefined;
    await client?.close().catch(() => undefined);
  }

  /**
   * Reads every range to its end: one fetch per leader and round, for all the partitions it
   * leads, until each partition is done or the replay stops.
   */
  private async read(
    ranges: LaneRange[],
    infos: Map<string, TopicInfo>,
    request: ReplayRequest,
  ): Promise<void> {
    const lanes = ranges.map((range) => ({ ...range, position: range.from, stalls: 0 }));
    let leaderRetries = 0;
    while (!request.signal.aborted) {
      const open = lanes.filter((l) => l.position < l.end);
      if (open.length === 0) return;
      const byLeader = new Map<number, typeof open>();
      for (const lane of open) {
        const leader = infos.get(lane.topic)!.leaders[lane.partition] ?? -1;
        byLeader.set(leader, [...(byLeader.get(leader) ?? []), lane]);
      }
      let answers: (readonly [typeof open, Map<string, Fetched>])[] | undefined;
      try {
        answers = await untilAborted(
          Promise.all(
            [...byLeader].map(
              async ([leader, group]) => [group, await this.fetch(leader, group, infos)] as const,
            ),
          ),
          request.signal,
        );
      } catch (error) {
        const outOfRange = findBy(error, 'apiId', 'OFFSET_OUT_OF_RANGE');
        if (outOfRange)
          throw new CursorError(
            'expired',
            `the events after the cursor on topic ${describeLanes(open)} were removed by retention while they were being replayed`,
          );
        if (!findBy(error, 'hasStaleMetadata', true) || ++leaderRetries > MAX_LEADER_RETRIES)
          throw this.failure(`read topic ${describeLanes(open)}`, error);
        // A leader moved (or the topic went): look the topics up again and go on from here.
        for (const topic of new Set(open.map((l) => l.topic))) {
          const info = await this.guard(`look up topic "${topic}"`, this.lookup(topic));
          if (!info) throw new CursorError('invalid', `topic "${topic}" was deleted during the replay`);
          infos.set(topic, info);
        }
        continue;
      }
      if (answers === undefined) return;
      for (const [group, fetched] of answers)
        for (const lane of group) {
          const answer = fetched.get(lane.lane);
          if (answer) this.take(lane, answer, request);
          if (request.signal.aborted) return;
        }
    }
  }

  /** Delivers one partition's fetched messages in range and moves its position on. */
  private take(
    lane: LaneRange & { position: number; stalls: number },
    answer: Fetched,
    request: ReplayRequest,
  ): void {
    const before = lane.position;
    for (const batch of answer.batches) {
      const first = Number(batch.firstOffset);
      if ((batch.attributes & IS_CONTROL) === 0)
        for (const record of batch.records) {
          const offset = first + record.offsetDelta;
          if (offset < lane.position) continue;
          if (offset >= lane.end || request.signal.aborted) break;
          lane.position = offset + 1;
          // A null value is a compaction tombstone, not an event (as on the live path).
          if (record.value === null) continue;
          try {
            request.onMessage({
              subject: lane.topic,
              data: record.value,
              position: { lane: lane.lane, offset },
            });
          } catch (error) {
            this.host.logger?.error({ err: error, topic: lane.topic }, 'replayed event handler failed');
          }
        }
      if (request.signal.aborted) return;
      lane.position = Math.max(lane.position, Math.min(first + batch.lastOffsetDelta + 1, lane.end));
    }
    if (lane.position > before) {
      lane.stalls = 0;
      return;
    }
    if (answer.logStartOffset > lane.position)
      throw new CursorError(
        'expired',
        `topic "${lane.topic}" partition ${lane.partition} no longer holds the events from offset ${lane.position} on (it starts at ${answer.logStartOffset}): its retention removed them while they were being replayed`,
      );
    // Nothing more is readable (a transaction still open): what was committed is all there is.
    if (answer.lastStableOffset <= lane.position) lane.end = lane.position;
    else if (++lane.stalls > MAX_STALLS)
      throw new ProviderError(
        this.host.providerId,
        `replaying topic "${lane.topic}" partition ${lane.partition}: the brokers returned nothing at offset ${lane.position} ${MAX_STALLS} times in a row (${this.host.brokers.join(', ')})`,
      );
  }

  /** One Fetch to `leader` for `lanes` at their positions; identical ones in flight are shared. */
  private fetch(
    leader: number,
    lanes: readonly (LaneRange & { position: number })[],
    infos: Map<string, TopicInfo>,
  ): Promise<Map<string, Fetched>> {
    const key = `${leader} ${lanes.map((l) => `${l.lane}@${l.position}`).join(' ')}`;
    let shared = this.fetches.get(key);
    if (!shared) {
      const topics = new Map<string, { topicId: string; partitions: FetchPartition[] }>();
      for (const lane of lanes) {
        let entry = topics.get(lane.topic);
        if (!entry) {
          entry = { topicId: infos.get(lane.topic)!.id, partitions: [] };
          topics.set(lane.topic, entry);
        }
        entry.partitions.push({
          partition: lane.partition,
          fetchOffset: BigInt(lane.position),
          partitionMaxBytes: PARTITION_MAX_BYTES,
          currentLeaderEpoch: -1,
          lastFetchedEpoch: -1,
        });
      }
      const ids = new Map([...topics].map(([name, t]) => [t.topicId, name]));
      const fetching = this.deadline(
        this.connect().fetch({
          node: leader,
          maxWaitTime: 0,
          minBytes: 0,
          maxBytes: FETCH_MAX_BYTES,
          isolationLevel: this.lib!.FetchIsolationLevels.READ_COMMITTED,
          topics: [...topics.values()],
        }),
        `fetch from topic ${describeLanes(lanes)}`,
      ).then((response) => answersOf(response, ids));
      this.fetches.set(key, fetching);
      const forget = () => {
        if (this.fetches.get(key) === fetching) this.fetches.delete(key);
      };
      fetching.then(forget, forget);
      shared = fetching;
    }
    return shared;
  }

  /** A topic's id, leaders and watermarks; undefined when it does not exist. Shared within a turn. */
  private lookup(topic: string): Promise<TopicInfo | undefined> {
    let pending = this.lookups.get(topic);
    if (!pending) {
      pending = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        this.lookups.delete(topic);
        return this.readTopic(topic);
      });
      this.lookups.set(topic, pending);
    }
    return pending;
  }

  private async readTopic(topic: string): Promise<TopicInfo | undefined> {
    const client = this.connect();
    const { FetchIsolationLevels, ListOffsetTimestamps, UserError } = this.lib!;
    let metadata;
    try {
      metadata = await this.deadline(
        client.metadata({ topics: [topic], forceUpdate: true }),
        `look up topic "${topic}"`,
      );
    } catch (error) {
      // The client reports a missing topic as a UserError of this wording (and no code of its own).
      if (error instanceof UserError && /^Unknown topic/.test(error.message)) return undefined;
      throw error;
    }
    const described = metadata.topics.get(topic);
    if (!described) return undefined;
    const [low, high] = await Promise.all([
      this.deadline(
        client.listOffsets({ topics: [topic], timestamp: ListOffsetTimestamps.EARLIEST }),
        `look up the first offsets of topic "${topic}"`,
      ),
      this.deadline(
        client.listOffsets({
          topics: [topic],
          timestamp: ListOffsetTimestamps.LATEST,
          isolationLevel: FetchIsolationLevels.READ_COMMITTED,
        }),
        `look up the end offsets of topic "${topic}"`,
      ),
    ]);
    return {
      id: described.id,
      leaders: described.partitions.map((p) => p.leader),
      ends: {
        low: [...(low.get(topic) ?? [])].map(Number),
        high: [...(high.get(topic) ?? [])].map(Number),
      },
    };
  }

  private connect(): Client {
    if (this.closed) throw new ProviderError(this.host.providerId, 'cannot replay: the provider is closed');
    this.client ??= new this.lib!.Consumer({
      ...this.options,
      // Required by the client's constructor; never joined: replays fetch without a group.
      groupId: `${this.options.clientId}-replay`,
      timeout: this.host.operationTimeoutMs,
      retries: 2,
      retryDelay: 200,
    });
    return this.client;
  }

  private deadline<T>(promise: Promise<T>, what: string): Promise<T> {
    return withDeadline(
      promise,
      this.host.operationTimeoutMs,
      () =>
        new ProviderError(
          this.host.providerId,
          `the brokers did not answer (${what}) within ${this.host.operationTimeoutMs} ms (${this.host.brokers.join(', ')})`,
        ),
    );
  }

  /** `promise`, with any failure other than a CursorError as a ProviderError saying what failed. */
  private async guard<T>(what: string, promise: Promise<T>): Promise<T> {
    try {
      return await promise;
    } catch (error) {
      throw this.failure(what, error);
    }
  }

  private failure(what: string, error: unknown): Error {
    if (error instanceof CursorError || error instanceof ProviderError) return error;
    const hint =
      this.lib && error instanceof this.lib.UnsupportedApiError
        ? ' (replaying needs Kafka 3.5 or later; live events do not)'
        : '';
    return new ProviderError(
      this.host.providerId,
      `cannot replay: ${what} failed: ${messageOf(error)}${hint} (${this.host.brokers.join(', ')})`,
      { cause: error },
    );
  }
}

type FetchPartition = {
  partition: number;
  fetchOffset: bigint;
  partitionMaxBytes: number;
  currentLeaderEpoch: number;
  lastFetchedEpoch: number;
};

/** A fetch response, per lane. */
function answersOf(response: FetchResponse, topicNames: Map<string, string>): Map<string, Fetched> {
  const answers = new Map<string, Fetched>();
  for (const topic of response.responses) {
    const name = topicNames.get(topic.topicId);
    if (name === undefined) continue;
    for (const partition of topic.partitions)
      answers.set(`${name}:${partition.partitionIndex}`, {
        batches: partition.records ?? [],
        logStartOffset: Number(partition.logStartOffset),
        lastStableOffset: Number(partition.lastStableOffset),
      });
  }
  return answers;
}

/** `promise`'s value, or undefined as soon as `signal` aborts. */
async function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return undefined;
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<undefined>((resolve) => {
    onAbort = () => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort!);
    // The fetch goes on; its failure, if any, is nobody's business any more.
    promise.catch(() => undefined);
  }
}

function findBy(error: unknown, property: string, value: unknown): unknown {
  const { findBy: find } = (error ?? {}) as Partial<GenericError | MultipleErrors>;
  return typeof find === 'function' ? find.call(error, property, value) : null;
}

function describeLanes(lanes: readonly LaneRange[]): string {
  const byTopic = new Map<string, number[]>();
  for (const l of lanes) byTopic.set(l.topic, [...(byTopic.get(l.topic) ?? []), l.partition]);
  return [...byTopic]
    .map(([topic, partitions]) => `"${topic}" (partition ${partitions.join(', ')})`)
    .join(', ');
}
