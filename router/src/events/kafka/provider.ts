/**
 * The Kafka event provider (kafkajs): every message of the subscribed topics reaches every router
 * replica, the router's own publish mutations go out through one shared producer.
 *
 * Broadcast, not work sharing: each provider instance consumes in a consumer group of its own
 * (`edfs-router-<instance>-<random>-<0|1>`) and never commits offsets: a topic is read live from
 * the position it had when it was first subscribed. Replicas therefore never split a topic between
 * them. Clients, not routers, resume: every message carries its position (lane
 * `<topic>:<partition>`, the partition offset), each subscription says where it starts on every
 * partition (`start`), and `replay` reads a subscription's partitions again from a client's
 * cursor, on any replica.
 *
 * The parts: this file tracks the topics (topics.ts) and does publish; consumers.ts runs the one
 * consumer that reads every subscribed topic and replaces it when topics are added; replay.ts
 * (with replay-plan.ts) serves replays through a client of its own, without a consumer group;
 * health.ts probes the brokers; options.ts turns router.yaml into both clients' options.
 *
 * Topics are never created by the router. A topic that does not exist yet is looked up every
 * `missingTopicPollMs` and joins the consumer once some producer created it; kept out of the
 * consumer until then, because kafkajs fails the whole consumer on an unknown topic.
 *
 * `subscribe` resolves once the subscription's start position is fixed (end offsets read, or the
 * topic found missing), not once the consumer has joined: every event written after it resolves
 * is delivered, just possibly after the next rebuild. A subscription that joins a topic another
 * subscription already reads starts at the shared position. Its `start` is, per partition, the
 * offset before that position; partitions read from their beginning (a missing topic, a partition
 * added since, one nothing was written to yet) have none: a replay reads those from their first
 * retained offset too.
 *
 * Health: while the broker probe fails, `status()` is not ready and a subscribe is refused; when
 * it succeeds again after a failure, the outage is counted (`reconnects`, `onReconnect`).
 *
 * Invariants: as EventProvider requires; errors are ProviderErrors naming the topic and brokers;
 * callbacks never throw into kafkajs; no callback runs after a subscription's `close()` returns;
 * the provider's `close()` returns once every consumer, retired ones included, has disconnected.
 */
import type { ConnectionOptions } from 'node:tls';
import { Kafka, Partitioners, type Admin, type Producer } from 'kafkajs';
import type { Logger } from 'pino';
import type { KafkaProviderConfig } from '../../config/types.js';
import {
  ProviderError,
  type BrokerMessage,
  type BrokerSubscription,
  type EventProvider,
  type ProviderStatus,
  type ReplayRequest,
  type SubscribeSpec,
  withDeadline,
  withoutPrefix,
} from '../provider.js';
import { kafkaTopicProblem } from '../subjects.js';
import { SharedConsumer } from './consumers.js';
import { BrokerHealth } from './health.js';
import { kafkaClientConfig, replayClientOptions } from './options.js';
import { KafkaReplays } from './replay.js';
import { startOffsets, type Listener, type TopicPhase, type TopicState } from './topics.js';

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
  /** Deadline of a subscribe's offset lookup, of a publish and of each request of a replay. Default 10000 ms. */
  operationTimeoutMs?: number;
  /** Called each time the provider reaches the brokers again after losing them (a metric hook). */
  onReconnect?: () => void;
  /** TLS settings (CA, client certificate) used when the config enables TLS. Default: system CAs. */
  tls?: ConnectionOptions;
  /** kafkajs client id (shown in broker logs and quotas). Default `edfs-router-<provider id>`. */
  clientId?: string;
}

const DEFAULT_DEBOUNCE_MS = 100;
const DEFAULT_MISSING_POLL_MS = 1000;
const DEFAULT_RESTART_BACKOFF_MS = 500;
const DEFAULT_HEALTH_INTERVAL_MS = 5000;
const DEFAULT_RECONNECT_WAIT_MS = 1000;
const DEFAULT_CONNECT_TIMEOUT_MS = 3000;
const DEFAULT_OPERATION_TIMEOUT_MS = 10_000;
/** kafkajs' admin remembers every topic it looked up; a fresh one bounds that list. */
const ADMIN_TOPIC_BUDGET = 500;

export class KafkaProvider implements EventProvider {
  readonly kind = 'kafka' as const;
  readonly id: string;
  readonly brokers: readonly string[];
  private readonly logger: Logger | undefined;
  private readonly kafka: Kafka;
  private readonly missingPollMs: number;
  private readonly operationTimeoutMs: number;
  private readonly consumers: SharedConsumer;
  private readonly replays: KafkaReplays;
  private readonly health: BrokerHealth;

  private readonly topicStates = new Map<string, TopicState>();
  private missingTimer: NodeJS.Timeout | undefined;
  private admin: { client: Admin; ready: Promise<void>; topicsLookedUp: number } | undefined;
  private listing: Promise<Set<string>> | undefined;
  private producer: { client: Producer; ready: Promise<void> } | undefined;
  private connected: Promise<void> | undefined;
  private closing = false;

  constructor(config: KafkaProviderConfig, options: KafkaProviderOptions = {}) {
    if (config.brokers.length === 0)
      throw new ProviderError(
        config.id,
        'no brokers configured; list at least one "host:port" under brokers',
      );
    this.id = config.id;
    this.brokers = [...config.brokers];
    this.logger = options.logger?.child({
      provider_id: config.id,
      provider_brokers: config.brokers.join(','),
    });
    this.missingPollMs = options.missingTopicPollMs ?? DEFAULT_MISSING_POLL_MS;
    this.operationTimeoutMs = options.operationTimeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS;
    const settings = {
      clientId: options.clientId ?? `edfs-router-${config.id}`,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      tls: options.tls,
    };
    const client = kafkaClientConfig(config, {
      ...settings,
      logger: this.logger,
      quiet: () => this.health.everReached && !this.health.reachable,
      onConnectionLost: () => this.health.probeSoon(),
    });
    this.kafka = new Kafka(client);
    this.replays = new KafkaReplays(
      {
        providerId: this.id,
        brokers: this.brokers,
        logger: this.logger,
        operationTimeoutMs: this.operationTimeoutMs,
      },
      replayClientOptions(config, settings),
    );
    this.consumers = new SharedConsumer(
      {
        kafka: this.kafka,
        logger: this.logger,
        topics: this.topicStates,
        listTopics: () => this.listTopics(),
        pollMissingSoon: () => this.pollMissingSoon(),
        probeSoon: () => this.health.probeSoon(),
      },
      {
        ...(options.instanceId !== undefined ? { instanceId: options.instanceId } : {}),
        debounceMs: options.resubscribeDebounceMs ?? DEFAULT_DEBOUNCE_MS,
        restartBackoffMs: options.restartBackoffMs ?? DEFAULT_RESTART_BACKOFF_MS,
      },
    );
    this.health = new BrokerHealth(client, {
      brokers: this.brokers,
      logger: this.logger,
      healthIntervalMs: options.healthCheckIntervalMs ?? DEFAULT_HEALTH_INTERVAL_MS,
      reconnectWaitMs: options.reconnectTimeWaitMs ?? DEFAULT_RECONNECT_WAIT_MS,
      deadline: (promise, what) => this.withTimeout(promise, what),
      ...(options.onReconnect ? { onReconnect: options.onReconnect } : {}),
      onBack: () => this.consumers.brokersBack(),
    });
  }

  /** Outages survived so far: each time the brokers answered again after failing to. */
  get reconnects(): number {
    return this.health.reconnects;
  }

  /**
   * The consumer group of the current (or last) consumer. Unique to this provider instance: two
   * ids, `edfs-router-<instance>-<random>-0` and `-1`, used in turn by successive consumers.
   */
  get groupId(): string {
    return this.consumers.groupId;
  }

  /** Consumers started so far, the first included: each later one is a rebuild. */
  get rebuilds(): number {
    return this.consumers.rebuilds;
  }

  /** Every topic the provider tracks and where it stands (for tests and status pages). */
  topics(): Record<string, TopicPhase> {
    return Object.fromEntries([...this.topicStates.values()].map((s) => [s.name, s.phase]));
  }

  async connect(): Promise<void> {
    if (this.closing) throw new ProviderError(this.id, 'cannot connect: the provider is closed');
    this.connected ??= (async () => {
      const ok = await this.health.probe();
      if (!ok)
        throw new ProviderError(
          this.id,
          `cannot reach Kafka brokers ${this.brokers.join(', ')}: ${this.health.problem ?? 'no answer'} (retrying in the background)`,
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
    const { reachable, everReached, problem } = this.health;
    if (reachable) return { ready: true };
    if (everReached) return { ready: `reconnecting to Kafka brokers ${where}: ${problem ?? 'no answer'}` };
    if (problem) return { ready: `cannot reach Kafka brokers ${where}: ${problem} (retrying)` };
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
    const { reachable, everReached, problem } = this.health;
    if (!reachable && (everReached || problem))
      throw new ProviderError(
        this.id,
        `cannot subscribe to topic ${what}: ${everReached ? 'reconnecting to' : 'cannot reach'} Kafka brokers ${this.brokers.join(', ')} (${problem ?? 'no answer'})`,
      );

    if (!everReached) void this.connect().catch(() => undefined);
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
      start: startOffsets(attached),
    };
  }

  /** Kafka keeps every topic's messages (for its retention): any subscription can be replayed. */
  resumable(spec: SubscribeSpec): boolean {
    return spec.stream === undefined;
  }

  /** See replay.ts; refusals are CursorErrors, broker failures ProviderErrors. */
  async replay(request: ReplayRequest): Promise<void> {
    if (this.closing)
      throw new ProviderError(
        this.id,
        `cannot replay topic ${request.spec.subjects.map((t) => `"${t}"`).join(', ')}: the provider is closed`,
      );
    await this.replays.replay(request);
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
    clearTimeout(this.missingTimer);
    for (const state of this.topicStates.values())
      for (const listener of state.listeners) listener.open = false;
    this.topicStates.clear();
    await Promise.all([
      this.consumers.close(),
      this.replays.close(),
      this.health.close(),
      this.producer?.client.disconnect().catch(() => undefined),
      this.admin?.client.disconnect().catch(() => undefined),
    ]);
    this.producer = undefined;
    this.admin = undefined;
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

  /** A positioned topic goes to the consumer, unless its subscribers left meanwhile. */
  private placePositioned(state: TopicState): void {
    if (state.listeners.size === 0) this.settle(state);
    else this.consumers.place(state);
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
    if (!this.consumers.release(state)) this.topicStates.delete(state.name);
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
        this.consumers.rebuildSoon();
      }
    } catch (error) {
      this.logger?.debug({ err: error }, 'looking up missing topics failed');
    }
    if ([...this.topicStates.values()].some((s) => s.phase === 'missing')) this.pollMissingSoon();
  }

  // -------------------------------------------------------------------------------------------
  // Admin and producer

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

  private withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
    return withDeadline(
      promise,
      this.operationTimeoutMs,
      () =>
        new ProviderError(
          this.id,
          `${what} within ${this.operationTimeoutMs} ms (${this.brokers.join(', ')})`,
        ),
    );
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
