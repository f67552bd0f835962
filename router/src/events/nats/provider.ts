/**
 * The NATS event provider (core NATS and JetStream) over `@nats-io/transport-node`.
 *
 * Connection: `connect()` reports the first attempt's outcome (an error naming the provider, the
 * URL and the cause), but the provider keeps trying in the background until it gets through, and
 * once connected the client reconnects forever; `status()` is not ready while disconnected, so
 * /health/ready tells the truth. Subscriptions survive reconnects (the client re-subscribes).
 *
 * Core NATS is at-most-once: what is published while the connection is down never arrives. A core
 * subscription that lived through a disconnect reports a gap (`onGap`, reason `broker_outage`)
 * once the connection is back, before its next message, so its clients learn they missed events.
 *
 * Subscribe: one core subscription per subject, all feeding one callback. With a stream spec, one
 * durable pull consumer per subject (created if missing, filtered on that subject), named
 * `consumerName`, or `consumerName-0`, `consumerName-1`... when there are several subjects,
 * because servers before 2.10 accept a single filter subject per consumer. A message is acked after
 * `onMessage` returns; one arriving after `close()` is nak'ed, so the server redelivers it at once.
 *
 * Publish resolves once the server has the message (a flush round trip, shared by the publishes of
 * the same tick); request/reply tells "no responders" from "timed out".
 *
 * One connection serves every subscription, so nothing one client asks for may get it closed: a
 * protocol line longer than the server's `max_control_line` (SUB, PUB, a request's PUB with its
 * inbox, a JetStream consumer's API subject) is refused before it is written. Every time the
 * connection comes back after a loss, `onReconnect` is called (the reconnect metric).
 *
 * Invariants: as EventProvider requires; errors are ProviderErrors naming what to fix; callbacks
 * never throw into the NATS client; `close()` stops every callback, then drains the connection.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  connect as natsConnect,
  credsAuthenticator,
  nkeyAuthenticator,
  NoRespondersError,
  TimeoutError,
  type NatsConnection,
  type NodeConnectionOptions,
  type Subscription,
} from '@nats-io/transport-node';
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
import type { NatsProviderConfig } from '../../config/types.js';
import {
  ProviderError,
  type BrokerMessage,
  type BrokerSubscription,
  type DeliveryGap,
  type EventProvider,
  type ProviderStatus,
  type SubscribeSpec,
  messageOf,
  withoutPrefix,
} from '../provider.js';
import {
  NATS_DEFAULT_MAX_CONTROL_LINE,
  natsControlLineBytes,
  natsSubjectProblem,
  preview,
  subjectsOverlap,
} from '../subjects.js';

export interface NatsProviderOptions {
  logger?: Logger;
  /** Pause between connection attempts, initial and after a disconnect. Default 1000 ms. */
  reconnectTimeWaitMs?: number;
  /** Deadline of one connection attempt. Default 10000 ms. */
  connectTimeoutMs?: number;
  /** Deadline for the server to confirm a publish or a subscription, and of JetStream API calls. Default 10000 ms. */
  operationTimeoutMs?: number;
  /** The connection name the server shows (`nats server report connections`). */
  connectionName?: string;
  /**
   * Identifies this router instance (e.g. hostname and listen address). Durable consumer names get
   * a short hash of it, as Cosmo does, so every replica consumes the whole stream instead of
   * splitting it with the others. Unset: consumer names are used as configured.
   */
  instanceId?: string;
  /**
   * Called each time the provider reaches the server again after losing it: the client's own
   * reconnect, or a new connection after the previous one closed (a metric hook).
   */
  onReconnect?: () => void;
}

type StreamSpec = NonNullable<SubscribeSpec['stream']>;

interface ActiveSubscription {
  /** Stops delivery at once (no callback after this returns). */
  stop(): void;
  close(): Promise<void>;
  /** Ends the subscription because of `error` and tells the subscriber. */
  fail(error: Error): void;
  /**
   * Core subscriptions: the connection dropped (`lost`), and came back (`regained`): whatever was
   * published meanwhile is gone, and the subscriber is told so before its next message.
   */
  lost?(): void;
  regained?(): void;
}

const DEFAULT_RECONNECT_WAIT_MS = 1000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_OPERATION_TIMEOUT_MS = 10_000;
/** Stand-ins of the widest values the client puts on a protocol line with a subject. */
const WIDEST_SID = '9999999999';
const WIDEST_SIZE = 999_999_999;
/** A reply subject as wide as the client's inboxes (`_INBOX.<nuid>.<token>`, 52 bytes), with room. */
const WIDEST_REPLY = '_'.repeat(64);

export class NatsProvider implements EventProvider {
  readonly kind = 'nats' as const;
  readonly id: string;
  readonly url: string;
  private readonly config: NatsProviderConfig;
  private readonly logger: Logger | undefined;
  private readonly reconnectWaitMs: number;
  private readonly connectTimeoutMs: number;
  private readonly operationTimeoutMs: number;
  private readonly connectionName: string;
  private readonly instanceId: string | undefined;
  private readonly onReconnect: (() => void) | undefined;
  private readonly maxControlLine: number;

  private nc: NatsConnection | undefined;
  private attempt: Promise<NatsConnection> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private lastError: ProviderError | undefined;
  private disconnected = false;
  /** A connection was established once: the next one is a reconnect. */
  private everConnected = false;
  private closing = false;
  private jsm: { nc: NatsConnection; manager: Promise<JetStreamManager> } | undefined;
  private pendingFlush: Promise<void> | undefined;
  private readonly active = new Set<ActiveSubscription>();

  constructor(config: NatsProviderConfig, options: NatsProviderOptions = {}) {
    this.config = config;
    this.id = config.id;
    this.url = config.url;
    this.logger = options.logger?.child({ provider_id: config.id, provider_url: config.url });
    this.reconnectWaitMs = options.reconnectTimeWaitMs ?? DEFAULT_RECONNECT_WAIT_MS;
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.operationTimeoutMs = options.operationTimeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS;
    this.connectionName = options.connectionName ?? `edfs-router provider ${config.id}`;
    this.instanceId = options.instanceId;
    this.onReconnect = options.onReconnect;
    this.maxControlLine = config.maxControlLine ?? NATS_DEFAULT_MAX_CONTROL_LINE;
  }

  async connect(): Promise<void> {
    await this.connection('connect');
  }

  status(): ProviderStatus {
    if (this.closing) return { ready: `closed (${this.url})` };
    if (!this.nc) {
      if (this.lastError)
        return { ready: `cannot connect to ${this.url}: ${causeMessage(this.lastError)} (retrying)` };
      return { ready: `not connected yet to ${this.url}` };
    }
    if (this.disconnected) return { ready: `reconnecting to ${this.url}` };
    return { ready: true };
  }

  async subscribe(
    spec: SubscribeSpec,
    onMessage: (message: BrokerMessage) => void,
    onError: (error: Error) => void,
    onGap?: (gap: DeliveryGap) => void,
  ): Promise<BrokerSubscription> {
    if (spec.subjects.length === 0) throw new ProviderError(this.id, 'subscribe needs at least one subject');
    for (const subject of spec.subjects) {
      const problem = natsSubjectProblem(subject, { allowWildcards: true });
      if (problem !== undefined)
        throw new ProviderError(this.id, `cannot subscribe to subject "${preview(subject)}": ${problem}`);
      if (!spec.stream)
        this.assertControlLine('subscribe to', subject, natsControlLineBytes('SUB', subject, WIDEST_SID));
    }
    const what = spec.stream
      ? `consume stream "${spec.stream.streamName}" (consumer "${spec.stream.consumerName}")`
      : `subscribe to ${spec.subjects.map((s) => `"${s}"`).join(', ')}`;
    const nc = await this.connection(what);
    if (this.disconnected) throw new ProviderError(this.id, `cannot ${what}: reconnecting to ${this.url}`);
    return spec.stream
      ? this.subscribeStream(nc, spec.subjects, spec.stream, onMessage, onError)
      : this.subscribeCore(nc, spec.subjects, onMessage, onError, onGap);
  }

  async publish(subject: string, data: Uint8Array): Promise<void> {
    this.assertConcrete(subject, 'publish to');
    this.assertControlLine('publish to', subject, natsControlLineBytes('PUB', subject, data.length));
    const nc = await this.connection(`publish to subject "${subject}"`);
    if (this.disconnected)
      throw new ProviderError(
        this.id,
        `event for subject "${subject}" not sent: reconnecting to ${this.url}`,
      );
    try {
      nc.publish(subject, data);
      await this.withTimeout(
        this.flushSoon(nc),
        `the server did not confirm the event for subject "${subject}"`,
      );
    } catch (error) {
      if (error instanceof ProviderError) throw error;
      throw new ProviderError(this.id, `publish to subject "${subject}" failed: ${messageOf(error)}`, {
        cause: error,
      });
    }
  }

  async request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    this.assertConcrete(subject, 'send a request to');
    this.assertControlLine(
      'send a request to',
      subject,
      natsControlLineBytes('PUB', subject, WIDEST_REPLY, data.length),
    );
    const nc = await this.connection(`send a request to subject "${subject}"`);
    try {
      const reply = await nc.request(subject, data, { timeout: timeoutMs });
      return reply.data;
    } catch (error) {
      if (hasCause(error, NoRespondersError))
        throw new ProviderError(this.id, `no responders on subject "${subject}"`, { cause: error });
      if (hasCause(error, TimeoutError))
        throw new ProviderError(this.id, `request to subject "${subject}" timed out after ${timeoutMs} ms`, {
          cause: error,
        });
      throw new ProviderError(this.id, `request to subject "${subject}" failed: ${messageOf(error)}`, {
        cause: error,
      });
    }
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const subscriptions = [...this.active];
    for (const subscription of subscriptions) subscription.stop();
    await Promise.all(subscriptions.map((subscription) => subscription.close().catch(() => undefined)));
    this.active.clear();
    const nc = this.nc ?? (await this.attempt?.catch(() => undefined));
    this.nc = undefined;
    if (nc && !nc.isClosed()) {
      try {
        await nc.drain();
      } catch (error) {
        this.logger?.debug({ err: error }, 'drain failed; closing');
        await nc.close().catch(() => undefined);
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Connection

  /** The live connection, dialing if needed; rejects naming `purpose` when there is none. */
  private async connection(purpose: string): Promise<NatsConnection> {
    if (this.closing) throw new ProviderError(this.id, `cannot ${purpose}: the provider is closed`);
    if (this.nc) return this.nc;
    try {
      return await this.dialOnce();
    } catch (error) {
      if (purpose === 'connect') throw error;
      throw new ProviderError(this.id, `cannot ${purpose}: ${withoutPrefix(error)}`, { cause: error });
    }
  }

  /** Joins the attempt in flight or starts one now (cancelling a scheduled retry). */
  private dialOnce(): Promise<NatsConnection> {
    if (this.attempt) return this.attempt;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const attempt = this.dial().then(
      (nc) => {
        this.attempt = undefined;
        if (this.closing) {
          void nc.close();
          throw new ProviderError(this.id, 'the provider was closed while connecting');
        }
        this.onConnected(nc);
        return nc;
      },
      (error: unknown) => {
        this.attempt = undefined;
        const wrapped =
          error instanceof ProviderError
            ? error
            : new ProviderError(this.id, `cannot connect to ${this.url}: ${describeConnectError(error)}`, {
                cause: error,
              });
        if (!this.lastError || this.lastError.message !== wrapped.message)
          this.logger?.warn({ err: wrapped }, 'cannot connect to NATS; retrying in the background');
        else this.logger?.debug({ err: wrapped }, 'still cannot connect to NATS');
        this.lastError = wrapped;
        this.scheduleRetry();
        throw wrapped;
      },
    );
    this.attempt = attempt;
    return attempt;
  }

  private scheduleRetry(): void {
    if (this.closing || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.dialOnce().catch(() => undefined);
    }, this.reconnectWaitMs);
    this.retryTimer.unref();
  }

  private async dial(): Promise<NatsConnection> {
    const options: NodeConnectionOptions = {
      servers: this.url
        .split(',')
        .map((server) => server.trim())
        .filter((server) => server.length > 0),
      name: this.connectionName,
      maxReconnectAttempts: -1,
      reconnectTimeWait: this.reconnectWaitMs,
      timeout: this.connectTimeoutMs,
      // Reconnect forever also through auth failures (rotated credentials come back).
      ignoreAuthErrorAbort: true,
      ...(await this.authOptions()),
    };
    const tls = this.config.tls;
    if (tls)
      options.tls = {
        ...(tls.caFile ? { caFile: tls.caFile } : {}),
        ...(tls.certFile ? { certFile: tls.certFile } : {}),
        ...(tls.keyFile ? { keyFile: tls.keyFile } : {}),
      };
    return natsConnect(options);
  }

  private async authOptions(): Promise<Partial<NodeConnectionOptions>> {
    const auth = this.config.authentication;
    if (!auth) return {};
    switch (auth.kind) {
      case 'token':
        return { token: auth.token };
      case 'user_info':
        return { user: auth.username, pass: auth.password };
      case 'creds_file': {
        let creds: Uint8Array;
        try {
          creds = await readFile(auth.path);
        } catch (error) {
          throw new ProviderError(
            this.id,
            `cannot read the credentials file "${auth.path}" (authentication.creds_file): ${messageOf(error)}`,
            { cause: error },
          );
        }
        return { authenticator: credsAuthenticator(creds) };
      }
      case 'nkey':
        return { authenticator: nkeyAuthenticator(new TextEncoder().encode(auth.seed.trim())) };
    }
  }

  private onConnected(nc: NatsConnection): void {
    this.nc = nc;
    this.lastError = undefined;
    this.disconnected = false;
    this.logger?.info({ server: nc.getServer() }, 'connected to NATS');
    if (this.everConnected) this.reconnected();
    this.everConnected = true;
    void this.watchStatus(nc);
    void nc.closed().then((error) => this.onClosed(nc, error));
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    try {
      for await (const status of nc.status()) {
        if (this.nc !== nc) return;
        switch (status.type) {
          case 'disconnect':
            this.disconnected = true;
            this.logger?.warn({ server: status.server }, 'disconnected from NATS; reconnecting');
            for (const subscription of this.active) subscription.lost?.();
            break;
          case 'reconnecting':
            this.logger?.debug('reconnecting to NATS');
            break;
          case 'reconnect':
            this.disconnected = false;
            this.logger?.info({ server: status.server }, 'reconnected to NATS');
            for (const subscription of [...this.active]) subscription.regained?.();
            this.reconnected();
            break;
          case 'error':
            this.logger?.warn({ err: status.error }, 'NATS server reported an error');
            break;
          case 'ldm':
            this.logger?.info({ server: status.server }, 'NATS server entering lame duck mode');
            break;
          case 'staleConnection':
            this.logger?.warn('NATS connection is stale; reconnecting');
            break;
          case 'slowConsumer':
            this.logger?.warn(
              { subject: status.sub.getSubject(), pending: status.pending },
              'slow NATS consumer',
            );
            break;
          default:
            break;
        }
      }
    } catch (error) {
      this.logger?.debug({ err: error }, 'NATS status stream ended');
    }
  }

  private reconnected(): void {
    try {
      this.onReconnect?.();
    } catch (error) {
      this.logger?.error({ err: error }, 'reconnect hook failed');
    }
  }

  /** The connection ended without `close()`: fail its subscriptions and dial again. */
  private onClosed(nc: NatsConnection, error: void | Error): void {
    if (this.nc !== nc || this.closing) return;
    this.nc = undefined;
    this.jsm = undefined;
    const reason = new ProviderError(
      this.id,
      `connection to ${this.url} closed${error ? `: ${error.message}` : ''}; subscriptions ended`,
      error ? { cause: error } : undefined,
    );
    this.lastError = reason;
    this.logger?.error({ err: reason }, 'NATS connection closed unexpectedly; dialing again');
    for (const subscription of [...this.active]) subscription.fail(reason);
    this.scheduleRetry();
  }

  // -------------------------------------------------------------------------------------------
  // Core subscriptions

  private async subscribeCore(
    nc: NatsConnection,
    subjects: readonly string[],
    onMessage: (message: BrokerMessage) => void,
    onError: (error: Error) => void,
    onGap: ((gap: DeliveryGap) => void) | undefined,
  ): Promise<BrokerSubscription> {
    let open = true;
    let established = false;
    /** Disconnected since the last message: events published meanwhile were not delivered. */
    let interrupted = false;
    let setupError: ProviderError | undefined;
    const subs: Subscription[] = [];

    const stop = (): void => {
      if (!open) return;
      open = false;
      for (const sub of subs) if (!sub.isClosed()) sub.unsubscribe();
      this.active.delete(record);
    };
    const record: ActiveSubscription = {
      stop,
      close: async () => stop(),
      fail: (error) => {
        if (!open) return;
        stop();
        this.notify(onError, error);
      },
      lost: () => {
        interrupted = true;
      },
      regained: () => {
        if (!interrupted || !open) return;
        interrupted = false;
        if (onGap) this.notify(onGap, { reason: 'broker_outage' });
      },
    };
    const ended = (subject: string, error: Error): void => {
      const wrapped = new ProviderError(
        this.id,
        `subscription to subject "${subject}" ended: ${error.message}`,
        {
          cause: error,
        },
      );
      if (!established) setupError ??= wrapped;
      else record.fail(wrapped);
    };

    this.active.add(record);
    try {
      for (const subject of subjects) {
        const sub = nc.subscribe(subject, {
          callback: (error, msg) => {
            if (error) ended(subject, error);
            else if (open) {
              // The gap comes first, even when a message overtakes the client's reconnect status.
              if (interrupted) record.regained!();
              this.deliver(onMessage, msg.subject, msg.data);
            }
          },
        });
        subs.push(sub);
        void sub.closed.then((error) => {
          if (error) ended(subject, error);
        });
      }
      // The server handles SUBs in order, so its PONG means they are in place (or refused).
      await this.withTimeout(
        nc.flush(),
        `the server did not confirm the subscription to ${subjects.join(', ')}`,
      );
      await Promise.resolve();
    } catch (error) {
      stop();
      if (error instanceof ProviderError) throw error;
      throw new ProviderError(this.id, `cannot subscribe to ${subjects.join(', ')}: ${messageOf(error)}`, {
        cause: error,
      });
    }
    if (setupError) {
      stop();
      throw setupError;
    }
    established = true;
    return { close: record.close };
  }

  // -------------------------------------------------------------------------------------------
  // JetStream

  private async subscribeStream(
    nc: NatsConnection,
    subjects: readonly string[],
    stream: StreamSpec,
    onMessage: (message: BrokerMessage) => void,
    onError: (error: Error) => void,
  ): Promise<BrokerSubscription> {
    const { streamName, consumerName } = stream;
    const where = `stream "${streamName}"`;
    const manager = await this.jetstreamManager(nc, where);
    let streamSubjects: string[];
    try {
      streamSubjects = (await manager.streams.info(streamName)).config.subjects ?? [];
    } catch (error) {
      if (isApiError(error, JetStreamApiCodes.StreamNotFound))
        throw new ProviderError(
          this.id,
          `JetStream stream "${streamName}" does not exist on ${this.url}; create it (for example \`nats stream add ${streamName} --subjects '${subjects.join(' ')}'\`) or fix streamName in the field's streamConfiguration`,
          { cause: error },
        );
      throw new ProviderError(this.id, `cannot look up JetStream ${where}: ${messageOf(error)}`, {
        cause: error,
      });
    }

    // The server accepts a consumer filter outside the stream's subjects; it would never deliver.
    // (A stream without subjects sources or mirrors others: nothing to check against.)
    for (const subject of subjects)
      if (
        streamSubjects.length > 0 &&
        !streamSubjects.some((streamSubject) => subjectsOverlap(subject, streamSubject))
      )
        throw new ProviderError(
          this.id,
          `subject "${subject}" is outside JetStream stream "${streamName}" (its subjects: ${streamSubjects.map((s) => `"${s}"`).join(', ')}), so durable consumer "${consumerName}" would never receive anything; fix the field's subjects or streamName`,
        );

    const base = this.instanceId
      ? `${consumerName}-${createHash('sha256').update(this.instanceId).digest('hex').slice(0, 12)}`
      : consumerName;
    const names = subjects.length === 1 ? [base] : subjects.map((_, i) => `${base}-${i}`);
    // Creating or refiltering a consumer puts the filter subject into the API subject.
    subjects.forEach((subject, i) =>
      this.assertControlLine(
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
    for (let i = 0; i < subjects.length; i++)
      await this.ensureConsumer(
        manager,
        streamName,
        names[i]!,
        subjects[i]!,
        stream.consumerInactiveThresholdSeconds,
      );

    let open = true;
    const consumers: ConsumerMessages[] = [];
    const stop = (): void => {
      if (!open) return;
      open = false;
      this.active.delete(record);
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
        this.notify(onError, error);
      },
    };

    this.active.add(record);
    try {
      const js = jetstream(nc, { timeout: this.operationTimeoutMs });
      for (let i = 0; i < subjects.length; i++) {
        const name = names[i]!;
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
            this.deliver(onMessage, msg.subject, msg.data);
            msg.ack();
          },
        });
        consumers.push(messages);
        void messages.closed().then((error) => {
          if (error && open)
            record.fail(
              new ProviderError(
                this.id,
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
        this.id,
        `cannot consume from durable consumer "${consumerName}" on JetStream stream "${streamName}": ${messageOf(error)}`,
        { cause: error },
      );
    }
    return { close };
  }

  private async jetstreamManager(nc: NatsConnection, where: string): Promise<JetStreamManager> {
    if (!this.jsm || this.jsm.nc !== nc) {
      const manager = jetstreamManager(nc, { timeout: this.operationTimeoutMs });
      this.jsm = { nc, manager };
      manager.catch(() => {
        if (this.jsm?.manager === manager) this.jsm = undefined;
      });
    }
    try {
      return await this.jsm.manager;
    } catch (error) {
      throw new ProviderError(
        this.id,
        `JetStream is not available on ${this.url} (needed for ${where}): ${messageOf(error)}; start the server with JetStream enabled (-js)`,
        { cause: error },
      );
    }
  }

  /** Creates the durable consumer, or points an existing one at `subject`. */
  private async ensureConsumer(
    manager: JetStreamManager,
    streamName: string,
    name: string,
    subject: string,
    inactiveThresholdSeconds: number | undefined,
  ): Promise<void> {
    const where = `durable consumer "${name}" on JetStream stream "${streamName}"`;
    let existing;
    try {
      existing = await manager.consumers.info(streamName, name);
    } catch (error) {
      if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound))
        throw new ProviderError(this.id, `cannot look up ${where}: ${messageOf(error)}`, { cause: error });
    }
    if (!existing) {
      try {
        await manager.consumers.add(streamName, {
          durable_name: name,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          filter_subject: subject,
          ...(inactiveThresholdSeconds && inactiveThresholdSeconds > 0
            ? { inactive_threshold: inactiveThresholdSeconds * 1_000_000_000 }
            : {}),
        });
        this.logger?.info(
          { stream: streamName, consumer: name, subject },
          'created durable JetStream consumer',
        );
      } catch (error) {
        throw new ProviderError(
          this.id,
          `cannot create ${where} for subject "${subject}": ${messageOf(error)} (is "${subject}" within the stream's subjects?)`,
          { cause: error },
        );
      }
      return;
    }
    const filters =
      existing.config.filter_subjects ??
      (existing.config.filter_subject ? [existing.config.filter_subject] : []);
    if (filters.length === 1 && filters[0] === subject) return;
    try {
      await manager.consumers.update(streamName, name, { filter_subject: subject });
      this.logger?.info(
        { stream: streamName, consumer: name, subject, previous: filters },
        'refiltered durable JetStream consumer',
      );
    } catch (error) {
      throw new ProviderError(
        this.id,
        `${where} exists with filter ${filters.length ? filters.map((f) => `"${f}"`).join(', ') : '(none)'} and cannot be changed to "${subject}": ${messageOf(error)}; delete the consumer or use another consumerName`,
        { cause: error },
      );
    }
  }

  private async watchConsumer(messages: ConsumerMessages, streamName: string, name: string): Promise<void> {
    try {
      for await (const event of messages.status()) {
        if (event.type === 'heartbeats_missed')
          this.logger?.debug(
            { stream: streamName, consumer: name, count: event.count },
            'JetStream heartbeats missed',
          );
        else if (
          event.type === 'consumer_deleted' ||
          event.type === 'consumer_not_found' ||
          event.type === 'stream_not_found'
        )
          this.logger?.warn(
            { stream: streamName, consumer: name, event: event.type },
            'JetStream consumer lost',
          );
      }
    } catch {
      // the status stream ends with the consumer
    }
  }

  // -------------------------------------------------------------------------------------------
  // Helpers

  private deliver(onMessage: (message: BrokerMessage) => void, subject: string, data: Uint8Array): void {
    try {
      onMessage({ subject, data });
    } catch (error) {
      this.logger?.error({ err: error, subject }, 'event handler failed');
    }
  }

  private notify<T>(onError: (value: T) => void, error: T): void {
    try {
      onError(error);
    } catch (callbackError) {
      this.logger?.error({ err: callbackError }, 'subscription error handler failed');
    }
  }

  /** One flush for every publish of the same tick: its PONG follows all of them on the wire. */
  private flushSoon(nc: NatsConnection): Promise<void> {
    this.pendingFlush ??= Promise.resolve().then(() => {
      this.pendingFlush = undefined;
      return nc.flush();
    });
    return this.pendingFlush;
  }

  private async withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new ProviderError(this.id, `${what} within ${this.operationTimeoutMs} ms (${this.url})`)),
        this.operationTimeoutMs,
      );
    });
    try {
      return await Promise.race([promise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Refuses a protocol line longer than the server's `max_control_line`: the server would answer
   * it by closing the connection, and with it every subscription of every client.
   */
  private assertControlLine(operation: string, subject: string, bytes: number): void {
    if (bytes <= this.maxControlLine) return;
    throw new ProviderError(
      this.id,
      `cannot ${operation} subject "${preview(subject)}": its protocol line would be ${bytes} bytes, over the server's max_control_line of ${this.maxControlLine} bytes (events.providers.nats[].max_control_line); sending it would make the server close the connection all subscriptions share`,
    );
  }

  private assertConcrete(subject: string, operation: string): void {
    if (this.closing)
      throw new ProviderError(this.id, `cannot ${operation} subject "${subject}": the provider is closed`);
    const problem = natsSubjectProblem(subject, { allowWildcards: false });
    if (problem !== undefined)
      throw new ProviderError(this.id, `cannot ${operation} subject "${subject}": ${problem}`);
  }
}

/** The innermost useful message of a wrapped error (for status lines). */
function causeMessage(error: ProviderError): string {
  const cause = error.cause;
  return cause instanceof Error ? describeConnectError(cause) : error.message;
}

function describeConnectError(error: unknown): string {
  const message = messageOf(error);
  const code = (error as { code?: unknown } | undefined)?.code;
  if (/authorization|authentication/i.test(message))
    return `${message} (check the provider's authentication settings)`;
  if (typeof code === 'string' && !message.includes(code)) return `${message} (${code})`;
  return message;
}

function hasCause(error: unknown, type: abstract new (...args: never[]) => Error): boolean {
  let current: unknown = error;
  for (let depth = 0; current instanceof Error && depth < 5; depth++) {
    if (current instanceof type) return true;
    current = (current as Error).cause;
  }
  return false;
}

function isApiError(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}
