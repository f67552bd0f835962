/**
 * The one Kafka consumer that reads every subscribed topic of a provider, and its replacement.
 *
 * One consumer for all triggers. kafkajs cannot change a running consumer's topics and has no
 * manual partition assignment, and one consumer per trigger would mean one group, one set of
 * connections and one join per subscribed topic set (templated topics such as `orders.{{ args.id
 * }}` make those many). So the provider keeps a single consumer and replaces it when topics must be
 * added: debounced (`resubscribeDebounceMs`), so that a burst of new subscriptions costs one
 * replacement, and serialized, so replacements never overlap. The replacement joins a group of its
 * own (two ids, used in turn) with everything paused while the current consumer keeps delivering,
 * and takes over only once joined: the broker's join delay (`group.initial.rebalance.delay.ms`,
 * 3 s by default) then holds up only the topics being added. Removing a topic costs nothing: it is
 * paused and dropped at the next replacement; the last subscription leaving releases the consumer.
 *
 * Nothing is lost across a replacement, a rebalance or a consumer crash: every assigned partition
 * is sought to its topic's position (topics.ts) whenever a consumer joins or takes over. A
 * partition without a position (the topic did not exist yet when subscribed, or gained
 * partitions) is read from its beginning, since everything in it was written after the
 * subscription. A crashed consumer (kafkajs gives up after its retries) is rebuilt with
 * exponential backoff, positions kept, whatever the cause.
 *
 * Every message is delivered with its position (lane `<topic>:<partition>`, the partition offset:
 * topics.ts), which client cursors are made of; a compaction tombstone (null value) moves the
 * position on but is not delivered. A batch goes to the listeners `DELIVERY_CHUNK` messages per
 * event-loop turn: a consumer that joined behind (a new replica whose join took seconds) fetches
 * thousands at once, and handed over in one turn they would all wait unresolved in the engine at
 * the same time and overflow its Groups' backlog (subscriptions.max_group_backlog).
 *
 * Invariants: offsets are never committed; at most one consumer delivers at a time (a consumer
 * marked dead delivers nothing more); messages of one partition reach listeners in offset order;
 * `close()` returns once every consumer, retired ones included, has disconnected.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import type { Logger } from 'pino';
import { messageOf } from '../provider.js';
import { laneOf, wanted, wantedTopics, type TopicState } from './topics.js';

/** What the consumer needs from the provider that tracks the topics. */
export interface ConsumerHost {
  readonly kafka: Kafka;
  readonly logger: Logger | undefined;
  /** The provider's topics, by name: the consumer reads and updates their phases and positions. */
  readonly topics: Map<string, TopicState>;
  /** The topics on the brokers. */
  listTopics(): Promise<Set<string>>;
  /** Some topic is missing (again): look it up until it exists. */
  pollMissingSoon(): void;
  /** A consumer crashed: check the brokers now. */
  probeSoon(): void;
}

export interface ConsumerOptions {
  /** Identifies this router instance in the consumer group id. Default: the hostname. */
  instanceId?: string;
  /** Quiet time after the last topic change before the consumer is rebuilt. */
  debounceMs: number;
  /** First pause before rebuilding a crashed consumer; doubles up to 30 s. */
  restartBackoffMs: number;
}

interface ConsumerRecord {
  readonly generation: number;
  readonly groupId: string;
  readonly consumer: Consumer;
  readonly topics: Set<string>;
  /** Partitions per topic of the last join. */
  assignment: Record<string, number[]>;
  /** Whether `run()` was called (pause/seek need it). */
  running: boolean;
  joined: boolean;
  dead: boolean;
  /** Joining to take over from the current consumer (see startConsumer). */
  pending: boolean;
}

const MAX_RESTART_BACKOFF_MS = 30_000;
/** A rebuild waits at most this many debounce periods, however busy the subscriptions. */
const MAX_DEBOUNCE_PERIODS = 10;
/** Paused topics without subscribers the consumer may carry before a rebuild sheds them. */
const IDLE_TOPIC_LIMIT = 64;
/** Long-poll time of a fetch: bounds how long stopping the consumer for a rebuild waits. */
const FETCH_MAX_WAIT_MS = 500;
/** Messages handed to the listeners per event-loop turn (see onBatch's note in the header). */
const DELIVERY_CHUNK = 128;

export class SharedConsumer {
  private readonly debounceMs: number;
  private readonly restartBackoffMs: number;
  private consumer: ConsumerRecord | undefined;
  private pending: ConsumerRecord | undefined;
  private readonly groupBase: string;
  private lastGroupId: string;
  private generation = 0;
  private rebuildChain: Promise<void> = Promise.resolve();
  private rebuildTimer: NodeJS.Timeout | undefined;
  /** Disconnects of retired consumers still under way: `close` waits for them too. */
  private readonly retiring = new Set<Promise<void>>();
  private rebuildFirstAsked = 0;
  private restartDelay: number;
  private backoffUntil = 0;
  private closed = false;

  constructor(
    private readonly host: ConsumerHost,
    options: ConsumerOptions,
  ) {
    this.debounceMs = options.debounceMs;
    this.restartBackoffMs = options.restartBackoffMs;
    this.restartDelay = options.restartBackoffMs;
    const instance = (options.instanceId ?? hostname()).replace(/[^a-zA-Z0-9._-]+/g, '-').slice(0, 100);
    this.groupBase = `edfs-router-${instance}-${randomBytes(4).toString('hex')}`;
    this.lastGroupId = `${this.groupBase}-0`;
  }

  /** The consumer group of the current (or last) consumer (`<base>-0` and `<base>-1` in turn). */
  get groupId(): string {
    return this.lastGroupId;
  }

  /** Consumers started so far, the first included: each later one is a rebuild. */
  get rebuilds(): number {
    return this.generation;
  }

  /** A positioned topic: read it right away if the running consumer has it, else rebuild. */
  place(state: TopicState): void {
    const record = this.consumer;
    if (record && !record.dead && record.running && record.joined && record.topics.has(state.name)) {
      for (const [partition, offset] of state.positions)
        record.consumer.seek({ topic: state.name, partition, offset });
      record.consumer.resume([{ topic: state.name }]);
      state.phase = 'live';
      return;
    }
    const joining = [record, this.pending].some((c) => c && !c.dead && c.topics.has(state.name));
    state.phase = joining ? 'joining' : 'wanted';
    if (state.phase === 'wanted') this.rebuildSoon();
  }

  /**
   * A topic whose last listener left: paused while the consumer carries it (true), until a rebuild
   * sheds it; false when no consumer carries it, so the caller can forget it.
   */
  release(state: TopicState): boolean {
    const record = this.consumer;
    if (!record || record.dead || !record.topics.has(state.name)) return false;
    state.phase = 'idle';
    state.positions = new Map();
    if (record.running) {
      try {
        record.consumer.pause([{ topic: state.name }]);
      } catch (error) {
        this.host.logger?.debug({ err: error, topic: state.name }, 'pausing an unused topic failed');
      }
    }
    if (this.idleCount() > IDLE_TOPIC_LIMIT || wantedTopics(this.host.topics).size === 0) this.rebuildSoon();
    return true;
  }

  /** The brokers answer again: a consumer waiting out its backoff need not wait any longer. */
  brokersBack(): void {
    this.restartDelay = this.restartBackoffMs;
    this.backoffUntil = 0;
    if (!this.consumer && wantedTopics(this.host.topics).size > 0) this.rebuildSoon();
  }

  /** Stops every consumer; resolves once all of them, retired ones included, have disconnected. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.rebuildTimer);
    // A rebuild in flight notices `closed`; the consumer it may be starting is disconnected here.
    const consumers = [this.consumer, this.pending].filter((c): c is ConsumerRecord => c !== undefined);
    this.consumer = undefined;
    this.pending = undefined;
    for (const c of consumers) c.dead = true;
    await Promise.all([
      ...consumers.map((c) => c.consumer.disconnect().catch(() => undefined)),
      // A consumer retired just before (the last subscription left) may still be leaving its group.
      ...this.retiring,
    ]);
  }

  /** Asks for a rebuild. Debounced: a burst of changes costs one; never earlier than a crash backoff allows. */
  rebuildSoon(): void {
    if (this.closed) return;
    const now = Date.now();
    if (!this.rebuildTimer) this.rebuildFirstAsked = now;
    clearTimeout(this.rebuildTimer);
    const debounce = Math.max(
      0,
      Math.min(this.debounceMs, this.debounceMs * MAX_DEBOUNCE_PERIODS - (now - this.rebuildFirstAsked)),
    );
    this.rebuildTimer = setTimeout(
      () => {
        this.rebuildTimer = undefined;
        this.rebuildChain = this.rebuildChain
          .then(() => this.rebuild())
          .catch((error: unknown) => {
            this.host.logger?.warn(
              { err: error, retryInMs: this.restartDelay },
              'rebuilding the Kafka consumer failed; retrying',
            );
            this.retryRebuild();
          });
      },
      Math.max(debounce, this.backoffUntil - now),
    );
  }

  private retryRebuild(): void {
    this.backoffUntil = Date.now() + this.restartDelay;
    this.restartDelay = Math.min(this.restartDelay * 2, MAX_RESTART_BACKOFF_MS);
    this.rebuildSoon();
  }

  /** Replaces the consumer when its topics must change; one at a time (see rebuildChain). */
  private async rebuild(): Promise<void> {
    if (this.closed) return;
    const wanted = wantedTopics(this.host.topics);
    const current = this.consumer && !this.consumer.dead ? this.consumer : undefined;
    const idle = this.idleCount();
    const missingFromConsumer = [...wanted].some((topic) => !current?.topics.has(topic));
    if (wanted.size > 0 && current && !missingFromConsumer && idle <= IDLE_TOPIC_LIMIT) return;

    // kafkajs fails the whole consumer on an unknown topic: check before handing topics over.
    if (wanted.size > 0) {
      const existing = await this.host.listTopics();
      for (const topic of wanted) {
        if (existing.has(topic)) continue;
        const state = this.host.topics.get(topic)!;
        state.phase = 'missing';
        state.positions = new Map();
        wanted.delete(topic);
        this.host.logger?.warn({ topic }, 'topic disappeared; waiting for it to be created again');
        this.host.pollMissingSoon();
      }
    }
    if (wanted.size === 0) {
      if (this.consumer) await this.retire(this.consumer);
      for (const state of [...this.host.topics.values()])
        if (state.phase === 'idle') this.host.topics.delete(state.name);
      return;
    }
    if (this.closed) return;
    await this.startConsumer(wanted, this.consumer && !this.consumer.dead ? this.consumer : undefined);
  }

  /** Stops a consumer for good: nothing it fetched after this is delivered. */
  private async retire(record: ConsumerRecord): Promise<void> {
    record.dead = true;
    if (this.consumer === record) {
      this.consumer = undefined;
      for (const state of this.host.topics.values())
        if ((state.phase === 'live' || state.phase === 'joining') && state.listeners.size > 0)
          state.phase = 'wanted';
    }
    const disconnected = record.consumer.disconnect().catch((error: unknown) => {
      this.host.logger?.debug(
        { err: error, group: record.groupId },
        'disconnecting a retired Kafka consumer failed',
      );
    });
    this.retiring.add(disconnected);
    await disconnected;
    this.retiring.delete(disconnected);
  }

  /**
   * Starts a consumer for `topics`. With a `previous` consumer still delivering, the new one joins
   * its own group (the other of two ids) with everything paused, and takes over only once it has
   * joined: the broker's join delay (`group.initial.rebalance.delay.ms`, 3 s by default) then holds
   * up only the topics being added, not the ones already flowing.
   */
  private async startConsumer(topics: Set<string>, previous: ConsumerRecord | undefined): Promise<void> {
    const generation = ++this.generation;
    const groupId = `${this.groupBase}-${generation % 2}`;
    const consumer = this.host.kafka.consumer({
      groupId,
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: FETCH_MAX_WAIT_MS,
      // kafkajs would restart a crashed consumer without our positions; we rebuild it instead.
      retry: { restartOnFailure: async () => false },
    });
    const record: ConsumerRecord = {
      generation,
      groupId,
      consumer,
      topics: new Set(topics),
      assignment: {},
      running: false,
      joined: false,
      dead: false,
      pending: previous !== undefined,
    };
    this.lastGroupId = groupId;
    if (record.pending) this.pending = record;
    else this.consumer = record;
    for (const topic of topics) {
      const state = this.host.topics.get(topic);
      if (state && !previous?.topics.has(topic) && state.phase !== 'positioning') state.phase = 'joining';
    }
    consumer.on(consumer.events.GROUP_JOIN, (event) => this.onJoin(record, event.payload.memberAssignment));
    consumer.on(consumer.events.CRASH, (event) => this.onCrash(record, event.payload.error));
    this.host.logger?.debug(
      { topics: [...topics], group: groupId, generation, handover: record.pending },
      'starting the Kafka consumer',
    );
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [...topics], fromBeginning: true });
      const running = consumer.run({
        autoCommit: false,
        eachBatch: (payload) => this.onBatch(record, payload),
      });
      record.running = true;
      await running; // resolves once joined, or after a crash (onCrash has run then)
    } catch (error) {
      this.onCrash(record, error as Error);
    }
    if (this.closed) {
      await consumer.disconnect().catch(() => undefined);
      return;
    }
    if (record.pending && !record.dead && record.joined) await this.handOver(record, previous);
  }

  /** The new consumer has joined: stop the old one where it is and go on from there. */
  private async handOver(record: ConsumerRecord, previous: ConsumerRecord | undefined): Promise<void> {
    this.pending = undefined;
    record.pending = false;
    // From here the old consumer delivers nothing: its positions are final.
    if (previous) previous.dead = true;
    this.consumer = record;
    try {
      for (const [topic, partitions] of Object.entries(record.assignment)) {
        const state = this.host.topics.get(topic);
        if (!state || !wanted(state)) continue;
        goLive(record, state, partitions);
      }
    } catch (error) {
      this.host.logger?.error(
        { err: error, generation: record.generation },
        'taking over from the previous Kafka consumer failed',
      );
    }
    for (const state of [...this.host.topics.values()])
      if (state.phase === 'idle' && !record.topics.has(state.name)) this.host.topics.delete(state.name);
    this.host.logger?.debug(
      { generation: record.generation, group: record.groupId },
      'Kafka consumer took over',
    );
    if (previous) await this.retire(previous);
  }

  /** After every join (first start, rebalance, rejoin after an outage): go to our positions. */
  private onJoin(record: ConsumerRecord, assignment: Record<string, number[]>): void {
    if (record.dead || (record !== this.consumer && record !== this.pending)) return;
    record.joined = true;
    record.assignment = assignment;
    this.restartDelay = this.restartBackoffMs;
    try {
      // Runs inside kafkajs' join (a synchronous event): pauses and seeks apply before the next fetch.
      for (const [topic, partitions] of Object.entries(assignment)) {
        const state = this.host.topics.get(topic);
        if (record.pending || !state || !wanted(state)) {
          record.consumer.pause([{ topic }]);
          continue;
        }
        goLive(record, state, partitions);
      }
    } catch (error) {
      this.host.logger?.error(
        { err: error, generation: record.generation },
        'positioning the joined Kafka consumer failed',
      );
    }
    this.host.logger?.debug(
      { assignment, generation: record.generation, pending: record.pending },
      'Kafka consumer joined',
    );
  }

  private onCrash(record: ConsumerRecord, error: Error): void {
    if (record.dead || this.closed) return;
    record.dead = true;
    void record.consumer.disconnect().catch(() => undefined);
    if (record === this.pending) {
      this.pending = undefined;
      for (const state of this.host.topics.values()) if (state.phase === 'joining') state.phase = 'wanted';
    } else if (record === this.consumer) {
      this.consumer = undefined;
      for (const state of this.host.topics.values()) {
        if (state.phase === 'idle') this.host.topics.delete(state.name);
        else if (state.phase === 'live' || state.phase === 'joining') state.phase = 'wanted';
      }
    } else return;
    this.host.logger?.warn(
      { err: error, retryInMs: this.restartDelay },
      `the Kafka consumer stopped (${messageOf(error)}); rebuilding it where it left off`,
    );
    this.host.probeSoon();
    this.retryRebuild();
  }

  private async onBatch(record: ConsumerRecord, { batch, isStale }: EachBatchPayload): Promise<void> {
    const state = this.host.topics.get(batch.topic);
    if (record.dead || record !== this.consumer || !state || state.listeners.size === 0) return;
    const lane = laneOf(batch.topic, batch.partition);
    let handed = 0;
    for (const message of batch.messages) {
      if (++handed > DELIVERY_CHUNK) {
        handed = 1;
        await new Promise((resolve) => setImmediate(resolve));
        // Meanwhile the topic may have been released, sought elsewhere or handed to another consumer.
        if (isStale() || state.listeners.size === 0 || this.host.topics.get(batch.topic) !== state) return;
      }
      if (record.dead) return;
      state.positions.set(batch.partition, (BigInt(message.offset) + 1n).toString());
      // A null value is a compaction tombstone, not an event.
      if (message.value === null) continue;
      const delivered = {
        subject: batch.topic,
        data: message.value,
        position: { lane, offset: Number(message.offset) },
      };
      for (const listener of state.listeners) {
        if (!listener.open) continue;
        try {
          listener.onMessage(delivered);
        } catch (error) {
          this.host.logger?.error({ err: error, topic: batch.topic }, 'event handler failed');
        }
      }
    }
  }

  private idleCount(): number {
    return [...this.host.topics.values()].filter((s) => s.phase === 'idle').length;
  }
}

/** Seeks the topic's partitions to the next offsets already read, then lets it flow. */
function goLive(record: ConsumerRecord, state: TopicState, partitions: number[]): void {
  for (const partition of partitions) {
    const offset = state.positions.get(partition);
    if (offset !== undefined) record.consumer.seek({ topic: state.name, partition, offset });
  }
  record.consumer.resume([{ topic: state.name }]);
  state.phase = 'live';
}
