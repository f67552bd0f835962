/**
 * The Kafka event provider (kafkajs): every message of the subscribed topics reaches every router
 * replica, the router's own publish mutations go out through one shared producer.
 *
 * Broadcast, not work sharing: each provider instance consumes in a consumer group of its own
 * (`edfs-router-<instance>-<random>-<0|1>`), never commits offsets and never replays history: a topic
 * is read from the position it had when it was first subscribed. Replicas therefore never split
 * a topic between them, and a restarted router does not resume where its predecessor stopped.
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
 * Nothing is lost across a replacement, a rebalance or a consumer crash: the provider tracks, per
 * partition, the next offset to deliver (the topic's end offsets when it was subscribed, then last
 * delivered + 1) and seeks every assigned partition there whenever a consumer joins or takes over.
 * A partition the provider has no position for (the topic did not exist yet when subscribed, or
 * gained partitions) is read from its beginning, since everything in it was written after the
 * subscription.
 *
 * Topics are never created by the router. A topic that does not exist yet is looked up every
 * `missingTopicPollMs` and joins the consumer once some producer created it; kept out of the
 * consumer until then, because kafkajs fails the whole consumer on an unknown topic.
 *
 * `subscribe` resolves once the subscription's start position is fixed (end offsets read, or the
 * topic found missing), not once the consumer has joined: every event written after it resolves
 * is delivered, just possibly after the next rebuild. A subscription that joins a topic another
 * subscription already reads starts at the shared position.
 *
 * Health: a probe (cluster metadata, no retries) runs every `healthCheckIntervalMs`, and at once
 * when a broker connection errors or is closed by the broker. While it fails, `status()` is not
 * ready; when it succeeds again after a failure, the outage is counted (`reconnects`,
 * `onReconnect`). A crashed consumer (kafkajs gives up after its retries) is rebuilt with
 * exponential backoff, positions kept, whatever the cause.
 *
 * Invariants: as EventProvider requires; errors are ProviderErrors naming the topic and brokers;
 * callbacks never throw into kafkajs; no callback runs after a subscription's `close()` returns;
 * the provider's `close()` returns once every consumer, retired ones included, has disconnected.
 */
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import {
  Kafka,
  Partitioners,
  type Admin,
  type Consumer,
  type EachBatchPayload,
  type ISocketFactory,
  type KafkaConfig,
  type Producer,
  type SASLOptions,
} from 'kafkajs';
import type { Logger } from 'pino';
import type { KafkaProviderConfig } from '../../config/types.js';
import {
  ProviderError,
  type BrokerMessage,
  type BrokerSubscription,
  type EventProvider,
  type ProviderStatus,
  type SubscribeSpec,
  messageOf,
  withoutPrefix,
} from '../provider.js';
import { kafkaTopicProblem } from '../subjects.js';
import { kafkajsLevel, kafkajsLogCreator } from './log.js';

export interface KafkaProviderOptions {
  logger?: Logger;
  /**
   * Identifies this router instance in the consumer group id (a random suffix is always added, so
   * two instances never share a group). Default: the hostname.
   */
  instanceId?: string;
  /** Quiet time after the last topic change before the consumer is rebuilt. Default 100 ms. */
  resubscribeDebounceMs?: number;
  /** How often topics that do not exist yet are looked up. Default 1000 ms. */
  missingTopicPollMs?: number;
  /** First pause before rebuilding a crashed consumer; doubles up to 30 s. Default 500 ms. */
  restartBackoffMs?: number;
  /** Period of the connection probe while connected. Default 5000 ms. */
  healthCheckIntervalMs?: number;
  /** Period of the connection probe while the brokers are unreachable. Default 1000 ms. */
  reconnectTimeWaitMs?: number;
  /** Deadline of one TCP/TLS connection attempt. Default 3000 ms. */
  connectTimeoutMs?: number;
  /** Deadline of a subscribe's offset lookup and of a publish. Default 10000 ms. */
  operationTimeoutMs?: number;
  /** Called each time the provider reaches the brokers again after losing them (a metric hook). */
  onReconnect?: () => void;
  /** TLS settings (CA, client certificate) used when the config enables TLS. Default: system CAs. */
  tls?: ConnectionOptions;
  /** kafkajs client id (shown in broker logs and quotas). Default `edfs-router-<provider id>`. */
  clientId?: string;
}

/** Where a topic stands: see the module header. */
export type TopicPhase = 'positioning' | 'missing' | 'wanted' | 'joining' | 'live' | 'idle';

interface Listener {
  open: boolean;
  onMessage: (message: BrokerMessage) => void;
  /**
   * Kept for the contract, not called today: a Kafka subscription does not end by itself (a topic
   * that disappears is waited for, a crashed consumer is rebuilt).
   */
  onError: (error: Error) => void;
}

interface TopicState {
  readonly name: string;
  readonly listeners: Set<Listener>;
  phase: TopicPhase;
  /** Next offset to deliver per partition (int64 as a decimal string). */
  positions: Map<number, string>;
  /** The lookup of the start position in flight, shared by concurrent subscribers. */
  positioning?: Promise<void>;
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

const DEFAULT_DEBOUNCE_MS = 100;
const DEFAULT_MISSING_POLL_MS = 1000;
const DEFAULT_RESTART_BACKOFF_MS = 500;
const MAX_RESTART_BACKOFF_MS = 30_000;
const DEFAULT_HEALTH_INTERVAL_MS = 5000;
const DEFAULT_RECONNECT_WAIT_MS = 1000;
const DEFAULT_CONNECT_TIMEOUT_MS = 3000;
const DEFAULT_OPERATION_TIMEOUT_MS = 10_000;
/** A rebuild waits at most this many debounce periods, however busy the subscriptions. */
const MAX_DEBOUNCE_PERIODS = 10;
/** Paused topics without subscribers the consumer may carry before a rebuild sheds them. */
const IDLE_TOPIC_LIMIT = 64;
/** kafkajs' admin remembers every topic it looked up; a fresh one bounds that list. */
const ADMIN_TOPIC_BUDGET = 500;
/** Long-poll time of a fetch: bounds how long stopping the consumer for a rebuild waits. */
const FETCH_MAX_WAIT_MS = 500;

export class KafkaProvider implements EventProvider {
  readonly kind = 'kafka' as const;
  readonly id: string;
  readonly brokers: readonly string[];
  private readonly config: KafkaProviderConfig;
  private readonly logger: Logger | undefined;
  private readonly kafka: Kafka;
  private readonly probeKafka: Kafka;
  private readonly debounceMs: number;
  private readonly missingPollMs: number;
  private readonly restartBackoffMs: number;
  private readonly healthIntervalMs: number;
  private readonly reconnectWaitMs: number;
  private readonly operationTimeoutMs: number;
  private readonly onReconnect: (() => void) | undefined;

  private readonly topicStates = new Map<string, TopicState>();
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
  private missingTimer: NodeJS.Timeout | undefined;

  private admin: { client: Admin; ready: Promise<void>; topicsLookedUp: number } | undefined;
  private listing: Promise<Set<string>> | undefined;
  private producer: { client: Producer; ready: Promise<void> } | undefined;

  private probeAdmin: Admin | undefined;
  private probing: Promise<boolean> | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private connected: Promise<void> | undefined;
  private up = false;
  private everUp = false;
  private lastProblem: string | undefined;
  private reconnectCount = 0;
  private closing = false;

  constructor(config: KafkaProviderConfig, options: KafkaProviderOptions = {}) {
    if (config.brokers.length === 0)
      throw new ProviderError(
        config.id,
        'no brokers configured; list at least one "host:port" under brokers',
      );
    this.config = config;
    this.id = config.id;
    this.brokers = [...config.brokers];
    this.logger = options.logger?.child({
      provider_id: config.id,
      provider_brokers: config.brokers.join(','),
    });
    this.debounceMs = options.resubscribeDebounceMs ?? DEFAULT_DEBOUNCE_MS;
    this.missingPollMs = options.missingTopicPollMs ?? DEFAULT_MISSING_POLL_MS;
    this.restartBackoffMs = options.restartBackoffMs ?? DEFAULT_RESTART_BACKOFF_MS;
    this.restartDelay = this.restartBackoffMs;
    this.healthIntervalMs = options.healthCheckIntervalMs ?? DEFAULT_HEALTH_INTERVAL_MS;
    this.reconnectWaitMs = options.reconnectTimeWaitMs ?? DEFAULT_RECONNECT_WAIT_MS;
    this.operationTimeoutMs = options.operationTimeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS;
    this.onReconnect = options.onReconnect;
    const instance = (options.instanceId ?? hostname()).replace(/[^a-zA-Z0-9._-]+/g, '-').slice(0, 100);
    this.groupBase = `edfs-router-${instance}-${randomBytes(4).toString('hex')}`;
    this.lastGroupId = `${this.groupBase}-0`;
    const client: KafkaConfig = {
      clientId: options.clientId ?? `edfs-router-${config.id}`,
      brokers: [...config.brokers],
      ...(config.tls.enabled ? { ssl: options.tls ?? tlsFromFiles(config.tls) } : {}),
      ...(config.authentication ? { sasl: saslOptions(config.authentication) } : {}),
      connectionTimeout: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      logLevel: kafkajsLevel(this.logger),
      logCreator: kafkajsLogCreator(this.logger, () => this.everUp && !this.up),
      socketFactory: this.socketFactory(),
    };
    this.kafka = new Kafka(client);
    // The probe answers "reachable now?": no retries, not even for the connection itself.
    this.probeKafka = new Kafka({ ...client, retry: { retries: 0 } });
  }

  /** Outages survived so far: each time the brokers answered again after failing to. */
  get reconnects(): number {
    return this.reconnectCount;
  }

  /**
   * The consumer group of the current (or last) consumer. Unique to this provider instance: two
   * ids, `edfs-router-<instance>-<random>-0` and `-1`, used in turn by successive consumers.
   */
  get groupId(): string {
    return this.lastGroupId;
  }

  /** Consumers started so far, the first included: each later one is a rebuild. */
  get rebuilds(): number {
    return this.generation;
  }

  /** Every topic the provider tracks and where it stands (for tests and status pages). */
  topics(): Record<string, TopicPhase> {
    return Object.fromEntries([...this.topicStates.values()].map((s) => [s.name, s.phase]));
  }

  async connect(): Promise<void> {
    if (this.closing) throw new ProviderError(this.id, 'cannot connect: the provider is closed');
    this.connected ??= (async () => {
      const ok = await this.probe();
      if (!ok)
        throw new ProviderError(
          this.id,
          `cannot reach Kafka brokers ${this.brokers.join(', ')}: ${this.lastProblem ?? 'no answer'} (retrying in the background)`,
        );
    })();
    const attempt = this.connected;
    attempt.catch(() => {
      if (this.connected === attempt) this.connected = undefined;
    });
    return attempt;
  }

  status(): ProviderStatus {
    const where = this.brokers.join(', ');
    if (this.closing) return { ready: `closed (${where})` };
    if (this.up) return { ready: true };
    if (this.everUp)
      return { ready: `reconnecting to Kafka brokers ${where}: ${this.lastProblem ?? 'no answer'}` };
    if (this.lastProblem)
      return { ready: `cannot reach Kafka brokers ${where}: ${this.lastProblem} (retrying)` };
    return { ready: `not connected yet to Kafka brokers ${where}` };
  }

  async subscribe(
    spec: SubscribeSpec,
    onMessage: (message: BrokerMessage) => void,
    onError: (error: Error) => void,
  ): Promise<BrokerSubscription> {
    const topics = [...new Set(spec.subjects)];
    const what = topics.map((t) => `"${t}"`).join(', ');
    if (topics.length === 0) throw new ProviderError(this.id, 'subscribe needs at least one topic');
    if (spec.stream)
      throw new ProviderError(
        this.id,
        `cannot subscribe to topic ${what} with a stream configuration: streams are NATS JetStream; remove streamConfiguration or use a NATS provider`,
      );
    for (const topic of topics) {
      const problem = kafkaTopicProblem(topic);
      if (problem !== undefined)
        throw new ProviderError(this.id, `cannot subscribe to topic "${topic}": ${problem}`);
    }
    if (this.closing)
      throw new ProviderError(this.id, `cannot subscribe to topic ${what}: the provider is closed`);
    if (!this.up && (this.everUp || this.lastProblem))
      throw new ProviderError(
        this.id,
        `cannot subscribe to topic ${what}: ${this.everUp ? 'reconnecting to' : 'cannot reach'} Kafka brokers ${this.brokers.join(', ')} (${this.lastProblem ?? 'no answer'})`,
      );

    if (!this.everUp) void this.connect().catch(() => undefined);
    const listener: Listener = { open: true, onMessage, onError };
    const attached: TopicState[] = [];
    try {
      for (const topic of topics) {
        let state = this.topicStates.get(topic);
        if (!state) {
          state = { name: topic, listeners: new Set(), phase: 'positioning', positions: new Map() };
          this.topicStates.set(topic, state);
        }
        state.listeners.add(listener);
        attached.push(state);
        if (state.phase === 'idle') state.phase = 'positioning';
      }
      await Promise.all(attached.map((state) => this.position(state)));
    } catch (error) {
      this.detach(listener, attached);
      throw new ProviderError(this.id, `cannot subscribe to topic ${what}: ${withoutPrefix(error)}`, {
        cause: error,
      });
    }
    if (this.closing || !listener.open) {
      this.detach(listener, attached);
      throw new ProviderError(this.id, `cannot subscribe to topic ${what}: the provider is closed`);
    }
    return {
      close: async () => {
        this.detach(listener, attached);
      },
    };
  }

  async publish(topic: string, data: Uint8Array): Promise<void> {
    const problem = kafkaTopicProblem(topic);
    if (problem !== undefined)
      throw new ProviderError(this.id, `cannot publish to topic "${topic}": ${problem}`);
    if (this.closing)
      throw new ProviderError(this.id, `cannot publish to topic "${topic}": the provider is closed`);
    try {
      const producer = await this.producerClient();
      await this.withTimeout(
        producer.send({
          topic,
          acks: -1,
          messages: [{ value: Buffer.from(data.buffer, data.byteOffset, data.byteLength) }],
        }),
        `the brokers did not acknowledge the event for topic "${topic}"`,
      );
    } catch (error) {
      throw new ProviderError(
        this.id,
        `publish to topic "${topic}" failed: ${withoutPrefix(error)}${hint(error)}`,
        {
          cause: error,
        },
      );
    }
  }

  async request(subject: string, _data: Uint8Array, _timeoutMs: number): Promise<Uint8Array> {
    throw new ProviderError(
      this.id,
      `cannot send a request to topic "${subject}": Kafka has no request/reply; use a NATS provider (@edfs__natsRequest) for request fields, or a subscription and a publish mutation`,
    );
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearTimeout(this.rebuildTimer);
    clearTimeout(this.missingTimer);
    clearTimeout(this.probeTimer);
    for (const state of this.topicStates.values())
      for (const listener of state.listeners) listener.open = false;
    this.topicStates.clear();
    // A rebuild in flight notices `closing`; the consumer it may be starting is disconnected here.
    const consumers = [this.consumer, this.pending].filter((c): c is ConsumerRecord => c !== undefined);
    this.consumer = undefined;
    this.pending = undefined;
    for (const c of consumers) c.dead = true;
    await Promise.all([
      ...consumers.map((c) => c.consumer.disconnect().catch(() => undefined)),
      // A consumer retired just before (the last subscription left) may still be leaving its group.
      ...this.retiring,
      this.producer?.client.disconnect().catch(() => undefined),
      this.admin?.client.disconnect().catch(() => undefined),
      this.probeAdmin?.disconnect().catch(() => undefined),
    ]);
    this.producer = undefined;
    this.admin = undefined;
    this.probeAdmin = undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Topics and positions

  /** Fixes where `state` starts (shared by concurrent subscribers), then places it. */
  private position(state: TopicState): Promise<void> {
    if (state.phase !== 'positioning') return Promise.resolve();
    state.positioning ??= (async () => {
      const existing = await this.listTopics();
      return existing.has(state.name) ? this.endOffsets(state.name) : undefined;
    })().then(
      (positions) => {
        state.positioning = undefined;
        if (this.closing || state.phase !== 'positioning') return;
        if (positions) {
          state.positions = positions;
          this.placePositioned(state);
          return;
        }
        state.positions = new Map();
        state.phase = 'missing';
        this.logger?.info(
          { topic: state.name },
          'topic does not exist yet; it is read from its beginning once a producer creates it',
        );
        if (state.listeners.size === 0) this.settle(state);
        else this.pollMissingSoon();
      },
      (error: unknown) => {
        state.positioning = undefined;
        throw error;
      },
    );
    return state.positioning;
  }

  /** A positioned topic: read it right away if the running consumer has it, else rebuild. */
  private placePositioned(state: TopicState): void {
    if (state.listeners.size === 0) {
      this.settle(state);
      return;
    }
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

  private detach(listener: Listener, states: readonly TopicState[]): void {
    listener.open = false;
    for (const state of states) {
      state.listeners.delete(listener);
      this.settle(state);
    }
  }

  /** A topic whose last listener left: paused while the consumer carries it, else forgotten. */
  private settle(state: TopicState): void {
    if (state.listeners.size > 0 || state.positioning) return;
    if (this.topicStates.get(state.name) !== state) return;
    const record = this.consumer;
    if (record && !record.dead && record.topics.has(state.name)) {
      state.phase = 'idle';
      state.positions = new Map();
      if (record.running) {
        try {
          record.consumer.pause([{ topic: state.name }]);
        } catch (error) {
          this.logger?.debug({ err: error, topic: state.name }, 'pausing an unused topic failed');
        }
      }
      const idle = [...this.topicStates.values()].filter((s) => s.phase === 'idle').length;
      if (idle > IDLE_TOPIC_LIMIT || this.wantedTopics().size === 0) this.rebuildSoon();
    } else {
      this.topicStates.delete(state.name);
    }
  }

  /** Topics with subscribers that the consumer should read now. */
  private wantedTopics(): Set<string> {
    const wanted = new Set<string>();
    for (const state of this.topicStates.values())
      if (
        state.listeners.size > 0 &&
        (state.phase === 'wanted' || state.phase === 'joining' || state.phase === 'live')
      )
        wanted.add(state.name);
    return wanted;
  }

  private pollMissingSoon(): void {
    if (this.missingTimer || this.closing) return;
    this.missingTimer = setTimeout(() => {
      this.missingTimer = undefined;
      void this.pollMissing();
    }, this.missingPollMs);
  }

  private async pollMissing(): Promise<void> {
    const missing = [...this.topicStates.values()].filter((s) => s.phase === 'missing');
    if (missing.length === 0 || this.closing) return;
    try {
      const existing = await this.listTopics();
      for (const state of missing) {
        if (state.phase !== 'missing' || !existing.has(state.name)) continue;
        this.logger?.info({ topic: state.name }, 'topic appeared; subscribing from its beginning');
        state.positions = new Map();
        state.phase = 'wanted';
        this.rebuildSoon();
      }
    } catch (error) {
      this.logger?.debug({ err: error }, 'looking up missing topics failed');
    }
    if ([...this.topicStates.values()].some((s) => s.phase === 'missing')) this.pollMissingSoon();
  }

  // -------------------------------------------------------------------------------------------
  // The consumer

  /** Debounced: a burst of changes costs one rebuild; never earlier than a crash backoff allows. */
  private rebuildSoon(): void {
    if (this.closing) return;
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
            this.logger?.warn(
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
    if (this.closing) return;
    const wanted = this.wantedTopics();
    const current = this.consumer && !this.consumer.dead ? this.consumer : undefined;
    const idle = [...this.topicStates.values()].filter((s) => s.phase === 'idle').length;
    const missingFromConsumer = [...wanted].some((topic) => !current?.topics.has(topic));
    if (wanted.size > 0 && current && !missingFromConsumer && idle <= IDLE_TOPIC_LIMIT) return;

    // kafkajs fails the whole consumer on an unknown topic: check before handing topics over.
    if (wanted.size > 0) {
      const existing = await this.listTopics();
      for (const topic of wanted) {
        if (existing.has(topic)) continue;
        const state = this.topicStates.get(topic)!;
        state.phase = 'missing';
        state.positions = new Map();
        wanted.delete(topic);
        this.logger?.warn({ topic }, 'topic disappeared; waiting for it to be created again');
        this.pollMissingSoon();
      }
    }
    if (wanted.size === 0) {
      if (this.consumer) await this.retire(this.consumer);
      for (const state of [...this.topicStates.values()])
        if (state.phase === 'idle') this.topicStates.delete(state.name);
      return;
    }
    if (this.closing) return;
    await this.startConsumer(wanted, this.consumer && !this.consumer.dead ? this.consumer : undefined);
  }

  /** Stops a consumer for good: nothing it fetched after this is delivered. */
  private async retire(record: ConsumerRecord): Promise<void> {
    record.dead = true;
    if (this.consumer === record) {
      this.consumer = undefined;
      for (const state of this.topicStates.values())
        if ((state.phase === 'live' || state.phase === 'joining') && state.listeners.size > 0)
          state.phase = 'wanted';
    }
    const disconnected = record.consumer.disconnect().catch((error: unknown) => {
      this.logger?.debug(
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
    const consumer = this.kafka.consumer({
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
      const state = this.topicStates.get(topic);
      if (state && !previous?.topics.has(topic) && state.phase !== 'positioning') state.phase = 'joining';
    }
    consumer.on(consumer.events.GROUP_JOIN, (event) => this.onJoin(record, event.payload.memberAssignment));
    consumer.on(consumer.events.CRASH, (event) => this.onCrash(record, event.payload.error));
    this.logger?.debug(
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
    if (this.closing) {
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
        const state = this.topicStates.get(topic);
        if (!state || !wanted(state)) continue;
        goLive(record, state, partitions);
      }
    } catch (error) {
      this.logger?.error(
        { err: error, generation: record.generation },
        'taking over from the previous Kafka consumer failed',
      );
    }
    for (const state of [...this.topicStates.values()])
      if (state.phase === 'idle' && !record.topics.has(state.name)) this.topicStates.delete(state.name);
    this.logger?.debug({ generation: record.generation, group: record.groupId }, 'Kafka consumer took over');
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
        const state = this.topicStates.get(topic);
        if (record.pending || !state || !wanted(state)) {
          record.consumer.pause([{ topic }]);
          continue;
        }
        goLive(record, state, partitions);
      }
    } catch (error) {
      this.logger?.error(
        { err: error, generation: record.generation },
        'positioning the joined Kafka consumer failed',
      );
    }
    this.logger?.debug(
      { assignment, generation: record.generation, pending: record.pending },
      'Kafka consumer joined',
    );
  }

  private onCrash(record: ConsumerRecord, error: Error): void {
    if (record.dead || this.closing) return;
    record.dead = true;
    void record.consumer.disconnect().catch(() => undefined);
    if (record === this.pending) {
      this.pending = undefined;
      for (const state of this.topicStates.values()) if (state.phase === 'joining') state.phase = 'wanted';
    } else if (record === this.consumer) {
      this.consumer = undefined;
      for (const state of this.topicStates.values()) {
        if (state.phase === 'idle') this.topicStates.delete(state.name);
        else if (state.phase === 'live' || state.phase === 'joining') state.phase = 'wanted';
      }
    } else return;
    this.logger?.warn(
      { err: error, retryInMs: this.restartDelay },
      `the Kafka consumer stopped (${messageOf(error)}); rebuilding it where it left off`,
    );
    this.probeSoon();
    this.retryRebuild();
  }

  private async onBatch(record: ConsumerRecord, { batch }: EachBatchPayload): Promise<void> {
    const state = this.topicStates.get(batch.topic);
    if (record.dead || record !== this.consumer || !state || state.listeners.size === 0) return;
    for (const message of batch.messages) {
      if (record.dead) return;
      state.positions.set(batch.partition, (BigInt(message.offset) + 1n).toString());
      // A null value is a compaction tombstone, not an event.
      if (message.value === null) continue;
      const data = message.value;
      for (const listener of state.listeners) {
        if (!listener.open) continue;
        try {
          listener.onMessage({ subject: batch.topic, data });
        } catch (error) {
          this.logger?.error({ err: error, topic: batch.topic }, 'event handler failed');
        }
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Admin, producer, health

  private async adminClient(): Promise<Admin> {
    if (this.admin && this.admin.topicsLookedUp > ADMIN_TOPIC_BUDGET) {
      const stale = this.admin.client;
      this.admin = undefined;
      void stale.disconnect().catch(() => undefined);
    }
    if (!this.admin) {
      const client = this.kafka.admin();
      const entry = { client, ready: client.connect(), topicsLookedUp: 0 };
      this.admin = entry;
      entry.ready.catch(() => {
        if (this.admin === entry) this.admin = undefined;
        void client.disconnect().catch(() => undefined);
      });
    }
    await this.admin.ready;
    return this.admin.client;
  }

  /** The topics on the brokers; concurrent callers share one metadata request. */
  private listTopics(): Promise<Set<string>> {
    this.listing ??= (async () => {
      try {
        const admin = await this.adminClient();
        return new Set(await this.withTimeout(admin.listTopics(), 'the brokers did not list their topics'));
      } finally {
        this.listing = undefined;
      }
    })();
    return this.listing;
  }

  private async endOffsets(topic: string): Promise<Map<number, string>> {
    const admin = await this.adminClient();
    if (this.admin) this.admin.topicsLookedUp++;
    const offsets = await this.withTimeout(
      admin.fetchTopicOffsets(topic),
      `the brokers did not report the end offsets of topic "${topic}"`,
    );
    return new Map(offsets.map((o) => [o.partition, o.high]));
  }

  private producerClient(): Promise<Producer> {
    if (!this.producer) {
      const client = this.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
      const entry = { client, ready: client.connect() };
      this.producer = entry;
      entry.ready.catch(() => {
        if (this.producer === entry) this.producer = undefined;
        void client.disconnect().catch(() => undefined);
      });
    }
    const { client, ready } = this.producer;
    return ready.then(() => client);
  }

  /** One cluster-metadata round trip without retries: true when the brokers answered. */
  private probe(): Promise<boolean> {
    this.probing ??= (async () => {
      clearTimeout(this.probeTimer);
      let ok = false;
      try {
        if (!this.probeAdmin) {
          this.probeAdmin = this.probeKafka.admin({ retry: { retries: 0 } });
          await this.probeAdmin.connect();
        }
        await this.withTimeout(
          this.probeAdmin.describeCluster(),
          'the brokers did not answer a metadata request',
        );
        ok = true;
      } catch (error) {
        const stale = this.probeAdmin;
        this.probeAdmin = undefined;
        void stale?.disconnect().catch(() => undefined);
        this.lastProblem = describeConnectError(error);
      } finally {
        this.probing = undefined;
      }
      if (!this.closing) this.health(ok);
      return ok;
    })();
    return this.probing;
  }

  private health(ok: boolean): void {
    if (ok && !this.up) {
      if (this.everUp) {
        this.reconnectCount++;
        this.logger?.info({ reconnects: this.reconnectCount }, 'Kafka brokers reachable again');
        try {
          this.onReconnect?.();
        } catch (error) {
          this.logger?.error({ err: error }, 'reconnect hook failed');
        }
        // A consumer waiting out its backoff need not wait any longer.
        this.restartDelay = this.restartBackoffMs;
        this.backoffUntil = 0;
        if (!this.consumer && this.wantedTopics().size > 0) this.rebuildSoon();
      }
      this.up = true;
      this.everUp = true;
      this.lastProblem = undefined;
    } else if (!ok && (this.up || !this.everUp)) {
      if (this.up)
        this.logger?.warn(
          { problem: this.lastProblem },
          `lost the Kafka brokers (${this.lastProblem}); check that ${this.brokers.join(', ')} run and are reachable`,
        );
      this.up = false;
    }
    clearTimeout(this.probeTimer);
    this.probeTimer = setTimeout(() => void this.probe(), ok ? this.healthIntervalMs : this.reconnectWaitMs);
  }

  private probeSoon(): void {
    if (this.closing || this.probing || !this.everUp || !this.up) return;
    void this.probe();
  }

  /** kafkajs' default socket factory, plus a probe whenever a broker drops a connection. */
  private socketFactory(): ISocketFactory {
    return ({ host, port, ssl, onConnect }) => {
      const socket: Socket = ssl
        ? tlsConnect(
            { host, port, ...(isIP(host) ? {} : { servername: host }), ...(ssl as ConnectionOptions) },
            onConnect,
          )
        : netConnect({ host, port }, onConnect);
      socket.setKeepAlive(true, 60_000);
      let endedHere = false;
      socket.once('finish', () => {
        endedHere = true;
      });
      socket.on('error', () => this.probeSoon());
      socket.once('end', () => {
        if (!endedHere) this.probeSoon();
      });
      return socket;
    };
  }

  private async withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new ProviderError(
              this.id,
              `${what} within ${this.operationTimeoutMs} ms (${this.brokers.join(', ')})`,
            ),
          ),
        this.operationTimeoutMs,
      );
    });
    try {
      return await Promise.race([promise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function saslOptions(auth: NonNullable<KafkaProviderConfig['authentication']>): SASLOptions {
  switch (auth.mechanism) {
    case 'plain':
      return { mechanism: 'plain', username: auth.username, password: auth.password };
    case 'scram-sha-256':
      return { mechanism: 'scram-sha-256', username: auth.username, password: auth.password };
    case 'scram-sha-512':
      return { mechanism: 'scram-sha-512', username: auth.username, password: auth.password };
  }
}

/** What to check for the errors users can fix. */
function hint(error: unknown): string {
  const type = (error as { type?: unknown } | undefined)?.type;
  if (type === 'TOPIC_AUTHORIZATION_FAILED') return ' (grant the router Write on the topic)';
  if (type === 'UNKNOWN_TOPIC_OR_PARTITION')
    return ' (create the topic, or enable auto.create.topics.enable on the brokers)';
  return '';
}

function describeConnectError(error: unknown): string {
  let message = messageOf(error);
  const name = (error as { name?: unknown } | undefined)?.name;
  if (name === 'KafkaJSSASLAuthenticationError' || /SASL|authentication/i.test(message))
    return `${message} (check the provider's authentication settings)`;
  if (/certificate|self.signed|SSL|TLS/i.test(message))
    return `${message} (check the provider's tls settings)`;
  const cause = (error as { cause?: unknown } | undefined)?.cause;
  if (cause instanceof Error && !message.includes(cause.message)) message = `${message}: ${cause.message}`;
  return message;
}

/** TLS options from router.yaml's file paths (read once, at start); `true` = system CAs only. */
function tlsFromFiles(tls: KafkaProviderConfig['tls']): ConnectionOptions | true {
  if (!tls.caFile && !tls.certFile) return true;
  const read = (path: string, what: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`kafka tls.${what} ${path}: cannot read: ${(err as Error).message}`, { cause: err });
    }
  };
  return {
    ...(tls.caFile ? { ca: read(tls.caFile, 'ca_file') } : {}),
    ...(tls.certFile ? { cert: read(tls.certFile, 'cert_file') } : {}),
    ...(tls.keyFile ? { key: read(tls.keyFile, 'key_file') } : {}),
  };
}

/** Whether a topic has subscribers waiting for (or getting) its messages. */
function wanted(state: TopicState): boolean {
  return (
    state.listeners.size > 0 &&
    (state.phase === 'wanted' || state.phase === 'joining' || state.phase === 'live')
  );
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
