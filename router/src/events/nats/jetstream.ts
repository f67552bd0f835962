/**
 * JetStream subscriptions of the NATS provider: one durable pull consumer per subject (created if
 * missing, refiltered if it exists with another filter), named `consumerName`, or `consumerName-0`,
 * `consumerName-1`... when there are several subjects, because servers before 2.10 accept a single
 * filter subject per consumer. With an `instanceId`, names get a short hash of it, as Cosmo does,
 * so every replica consumes the whole stream instead of splitting it with the others.
 *
 * A message is acked after `onMessage` returns; one arriving after `close()` is nak'ed, so the
 * server redelivers it at once to the next subscriber of the durable consumer.
 *
 * A new consumer delivers what is published from its creation on (a client that wants earlier
 * events resumes from a cursor); an existing one goes on from its ack floor, so a router that
 * restarts under the same instance id misses nothing in between.
 *
 * Positions: each consumer's filter subject is a lane, a message's stream sequence its offset (a
 * consumer delivers in stream order); a subscription starts after its consumer's ack floor.
 * `replay` reads a lane again from a sequence on through an ephemeral consumer of its own
 * (no acks, memory storage, removed when done or idle), which reports up front how many
 * messages wait, so a replay too long is refused before it starts.
 *
 * Invariants: a subject outside the stream's subjects, a missing stream or a server without
 * JetStream is a ProviderError naming what to fix, before any consumer is created; the consumer
 * API subject (which carries the filter subject) is checked against max_control_line first.
 */
import { createHash } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type ConsumerMessages,
  type JetStreamManager,
} from '@nats-io/jetstream';
import type { Logger } from 'pino';
import {
  CursorError,
  ProviderError,
  type BrokerMessage,
  type BrokerSubscription,
  type ReplayRequest,
  type SubscribeSpec,
  messageOf,
} from '../provider.js';
import { natsControlLineBytes, subjectsOverlap } from '../subjects.js';
import { deliver, notify, WIDEST_REPLY, type ActiveSubscription } from './subscriptions.js';

export type StreamSpec = NonNullable<SubscribeSpec['stream']>;

/** What stream subscriptions need from the provider that owns the connection. */
export interface StreamHost {
  readonly providerId: string;
  readonly url: string;
  readonly logger: Logger | undefined;
  /** Deadline of JetStream API calls. */
  readonly operationTimeoutMs: number;
  /** Identifies this router instance (NatsProviderOptions.instanceId). */
  readonly instanceId: string | undefined;
  /** The provider's live subscriptions: stopped on close, failed when the connection ends. */
  readonly active: Set<ActiveSubscription>;
  /** Throws a ProviderError when a protocol line would exceed the server's max_control_line. */
  assertControlLine(operation: string, subject: string, bytes: number): void;
}

/** Stand-in of the widest payload size the client puts on a protocol line. */
const WIDEST_SIZE = 999_999_999;

export class JetStreamConsumers {
  /** The JetStream manager of the current connection, shared by every stream subscription. */
  private jsm: { nc: NatsConnection; manager: Promise<JetStreamManager> } | undefined;

  constructor(private readonly host: StreamHost) {}

  /** The connection is gone, and its JetStream manager with it. */
  forget(): void {
    this.jsm = undefined;
  }

  /** Resolves once every subject's durable consumer exists and is being consumed. */
  async subscribe(
    nc: NatsConnection,
    subjects: readonly string[],
    stream: StreamSpec,
    onMessage: (message: BrokerMessage) => void,
    onError: (error: Error) => void,
  ): Promise<BrokerSubscription> {
    const { streamName, consumerName } = stream;
    const where = `stream "${streamName}"`;
    const manager = await this.manager(nc, where);
    let streamSubjects: string[];
    try {
      streamSubjects = (await manager.streams.info(streamName)).config.subjects ?? [];
    } catch (error) {
      if (isApiError(error, JetStreamApiCodes.StreamNotFound))
        throw new ProviderError(
          this.host.providerId,
          `JetStream stream "${streamName}" does not exist on ${this.host.url}; create it (for example \`nats stream add ${streamName} --subjects '${subjects.join(' ')}'\`) or fix streamName in the field's streamConfiguration`,
          { cause: error },
        );
      throw new ProviderError(
        this.host.providerId,
        `cannot look up JetStream ${where}: ${messageOf(error)}`,
        {
          cause: error,
        },
      );
    }

    // The server accepts a consumer filter outside the stream's subjects; it would never deliver.
    // (A stream without subjects sources or mirrors others: nothing to check against.)
    for (const subject of subjects)
      if (
        streamSubjects.length > 0 &&
        !streamSubjects.some((streamSubject) => subjectsOverlap(subject, streamSubject))
      )
        throw new ProviderError(
          this.host.providerId,
          `subject "${subject}" is outside JetStream stream "${streamName}" (its subjects: ${streamSubjects.map((s) => `"${s}"`).join(', ')}), so durable consumer "${consumerName}" would never receive anything; fix the field's subjects or streamName`,
        );

    const base = this.host.instanceId
      ? `${consumerName}-${createHash('sha256').update(this.host.instanceId).digest('hex').slice(0, 12)}`
      : consumerName;
    const names = subjects.length === 1 ? [base] : subjects.map((_, i) => `${base}-${i}`);
    // Creating or refiltering a consumer puts the filter subject into the API subject.
    subjects.forEach((subject, i) =>
      this.host.assertControlLine(
        'consume',
        subject,
        natsControlLineBytes(
          'PUB',
          `$JS.API.CONSUMER.CREATE.${streamName}.${names[i]}.${subject}`,
          WIDEST_REPLY,
          WIDEST_SIZE,
        ),
      ),
    );
    const start = new Map<string, number>();
    for (let i = 0; i < subjects.length; i++)
      start.set(
        subjects[i]!,
        await this.ensureConsumer(
          manager,
          streamName,
          names[i]!,
          subjects[i]!,
          stream.consumerInactiveThresholdSeconds,
        ),
      );

    let open = true;
    const consumers: ConsumerMessages[] = [];
    const stop = (): void => {
      if (!open) return;
      open = false;
      this.host.active.delete(record);
    };
    const close = async (): Promise<void> => {
      stop();
      await Promise.all(consumers.map((messages) => messages.close().catch(() => undefined)));
    };
    const record: ActiveSubscription = {
      stop,
      close,
      fail: (error) => {
        if (!open) return;
        void close();
        notify(this.host.logger, onError, error);
      },
    };

    this.host.active.add(record);
    try {
      const js = jetstream(nc, { timeout: this.host.operationTimeoutMs });
      for (let i = 0; i < subjects.length; i++) {
        const name = names[i]!;
        const lane = subjects[i]!;
        const consumer = await js.consumers.get(streamName, name);
        const messages = await consumer.consume({
          abort_on_missing_resource: true,
          callback: (msg) => {
            // After close, a nak hands the message back at once (left unacked, it would wait for the
            // ack timeout): the next subscriber of this durable consumer gets it.
            if (!open) {
              msg.nak();
              return;
            }
            deliver(this.host.logger, onMessage, msg.subject, msg.data, { lane, offset: msg.seq });
            msg.ack();
          },
        });
        consumers.push(messages);
        void messages.closed().then((error) => {
          if (error && open)
            record.fail(
              new ProviderError(
                this.host.providerId,
                `durable consumer "${name}" on JetStream stream "${streamName}" stopped: ${messageOf(error)}`,
                { cause: error },
              ),
            );
        });
        void this.watchConsumer(messages, streamName, name);
      }
    } catch (error) {
      await close();
      throw new ProviderError(
        this.host.providerId,
        `cannot consume from durable consumer "${consumerName}" on JetStream stream "${streamName}": ${messageOf(error)}`,
        { cause: error },
      );
    }
    return { close, start };
  }

  /**
   * Delivers the messages of every lane (filter subject) of `request.spec` after its offset, up to
   * what the stream holds now; lanes run one after the other. Refuses, before delivering
   * anything, a lane unknown to the subscription, a position the stream's retention has passed,
   * and more waiting messages than `request.maxMessages`.
   */
  async replay(nc: NatsConnection, request: ReplayRequest): Promise<void> {
    const { spec, after, signal } = request;
    const { streamName } = spec.stream!;
    const where = `stream "${streamName}"`;
    for (const lane of after.keys())
      if (!spec.subjects.includes(lane))
        throw new CursorError(
          'invalid',
          `the cursor is for subject "${lane}", which this subscription (${spec.subjects.map((s) => `"${s}"`).join(', ')}) does not read`,
        );
    const manager = await this.manager(nc, where);
    let state;
    try {
      state = (await manager.streams.info(streamName)).state;
    } catch (error) {
      if (isApiError(error, JetStreamApiCodes.StreamNotFound))
        throw new CursorError('invalid', `JetStream stream "${streamName}" no longer exists`);
      throw new ProviderError(
        this.host.providerId,
        `cannot look up JetStream ${where}: ${messageOf(error)}`,
        {
          cause: error,
        },
      );
    }
    for (const [lane, offset] of after)
      if (offset > 0 && offset + 1 < state.first_seq && offset < state.last_seq)
        throw new CursorError(
          'expired',
          `JetStream stream "${streamName}" no longer holds the events after the cursor on subject "${lane}" (it starts at sequence ${state.first_seq}, the cursor is at ${offset}): its retention removed them`,
        );

    // One ephemeral consumer per lane, created up front: each reports how many messages wait.
    const readers: { lane: string; name: string; pending: number }[] = [];
    const remove = () =>
      Promise.all(readers.map((r) => manager.consumers.delete(streamName, r.name).catch(() => undefined)));
    try {
      for (const lane of spec.subjects) {
        const from = (after.get(lane) ?? 0) + 1;
        if (from > state.last_seq) continue;
        const info = await manager.consumers.add(streamName, {
          ack_policy: AckPolicy.None,
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: from,
          filter_subject: lane,
          mem_storage: true,
          num_replicas: 1,
          inactive_threshold: REPLAY_IDLE_NANOS,
        });
        readers.push({ lane, name: info.name, pending: info.num_pending });
      }
      const waiting = readers.reduce((sum, r) => sum + r.pending, 0);
      if (waiting > request.maxMessages)
        throw new CursorError(
          'too_far',
          `${waiting} events wait after the cursor on JetStream stream "${streamName}", more than a replay may deliver (${request.maxMessages}, subscriptions.resume.max_replay_events)`,
        );
      const js = jetstream(nc, { timeout: this.host.operationTimeoutMs });
      for (const reader of readers) {
        if (reader.pending === 0 || signal.aborted) continue;
        await this.readLane(js, streamName, reader, request);
      }
    } finally {
      await remove();
    }
  }

  /** Reads `reader.pending` messages (those waiting when it was created) of one lane, in order. */
  private async readLane(
    js: ReturnType<typeof jetstream>,
    streamName: string,
    reader: { lane: string; name: string; pending: number },
    request: ReplayRequest,
  ): Promise<void> {
    const consumer = await js.consumers.get(streamName, reader.name);
    let left = reader.pending;
    const messages = await consumer.consume({ max_messages: Math.min(left, 512) });
    const abort = () => messages.stop();
    request.signal.addEventListener('abort', abort, { once: true });
    try {
      for await (const msg of messages) {
        if (request.signal.aborted) break;
        deliver(this.host.logger, request.onMessage, msg.subject, msg.data, {
          lane: reader.lane,
          offset: msg.seq,
        });
        if (--left <= 0 || msg.info.pending === 0) break;
      }
    } finally {
      request.signal.removeEventListener('abort', abort);
      messages.stop();
    }
  }

  private async manager(nc: NatsConnection, where: string): Promise<JetStreamManager> {
    if (!this.jsm || this.jsm.nc !== nc) {
      const manager = jetstreamManager(nc, { timeout: this.host.operationTimeoutMs });
      this.jsm = { nc, manager };
      manager.catch(() => {
        if (this.jsm?.manager === manager) this.jsm = undefined;
      });
    }
    try {
      return await this.jsm.manager;
    } catch (error) {
      throw new ProviderError(
        this.host.providerId,
        `JetStream is not available on ${this.host.url} (needed for ${where}): ${messageOf(error)}; start the server with JetStream enabled (-js)`,
        { cause: error },
      );
    }
  }

  /**
   * Creates the durable consumer, or points an existing one at `subject`; returns the stream
   * sequence its delivery starts after (its ack floor).
   */
  private async ensureConsumer(
    manager: JetStreamManager,
    streamName: string,
    name: string,
    subject: string,
    inactiveThresholdSeconds: number | undefined,
  ): Promise<number> {
    const where = `durable consumer "${name}" on JetStream stream "${streamName}"`;
    let existing;
    try {
      existing = await manager.consumers.info(streamName, name);
    } catch (error) {
      if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound))
        throw new ProviderError(this.host.providerId, `cannot look up ${where}: ${messageOf(error)}`, {
          cause: error,
        });
    }
    if (!existing) {
      try {
        const created = await manager.consumers.add(streamName, {
          durable_name: name,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.New,
          filter_subject: subject,
          ...(inactiveThresholdSeconds && inactiveThresholdSeconds > 0
            ? { inactive_threshold: inactiveThresholdSeconds * 1_000_000_000 }
            : {}),
        });
        this.host.logger?.info(
          { stream: streamName, consumer: name, subject },
          'created durable JetStream consumer',
        );
        return created.delivered.stream_seq;
      } catch (error) {
        throw new ProviderError(
          this.host.providerId,
          `cannot create ${where} for subject "${subject}": ${messageOf(error)} (is "${subject}" within the stream's subjects?)`,
          { cause: error },
        );
      }
    }
    const filters =
      existing.config.filter_subjects ??
      (existing.config.filter_subject ? [existing.config.filter_subject] : []);
    const floor = existing.ack_floor.stream_seq;
    if (filters.length === 1 && filters[0] === subject) return floor;
    try {
      await manager.consumers.update(streamName, name, { filter_subject: subject });
      this.host.logger?.info(
        { stream: streamName, consumer: name, subject, previous: filters },
        'refiltered durable JetStream consumer',
      );
      return floor;
    } catch (error) {
      throw new ProviderError(
        this.host.providerId,
        `${where} exists with filter ${filters.length ? filters.map((f) => `"${f}"`).join(', ') : '(none)'} and cannot be changed to "${subject}": ${messageOf(error)}; delete the consumer or use another consumerName`,
        { cause: error },
      );
    }
  }

  private async watchConsumer(messages: ConsumerMessages, streamName: string, name: string): Promise<void> {
    try {
      for await (const event of messages.status()) {
        if (event.type === 'heartbeats_missed')
          this.host.logger?.debug(
            { stream: streamName, consumer: name, count: event.count },
            'JetStream heartbeats missed',
          );
        else if (
          event.type === 'consumer_deleted' ||
          event.type === 'consumer_not_found' ||
          event.type === 'stream_not_found'
        )
          this.host.logger?.warn(
            { stream: streamName, consumer: name, event: event.type },
            'JetStream consumer lost',
          );
      }
    } catch {
      // the status stream ends with the consumer
    }
  }
}

/** An abandoned replay consumer is removed by the server after this long (nanoseconds). */
const REPLAY_IDLE_NANOS = 30 * 1_000_000_000;

function isApiError(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}
