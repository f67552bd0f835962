/**
 * The NATS event provider (core NATS and JetStream) over `@nats-io/transport-node`: the connection,
 * publish, request and core subscriptions. Connection options come from options.ts, stream
 * subscriptions from jetstream.ts.
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
 * Subscribe: one core subscription per subject, all feeding one callback; with a stream spec, one
 * durable JetStream consumer per subject (jetstream.ts).
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
import {
  connect as natsConnect,
  NoRespondersError,
  TimeoutError,
  type NatsConnection,
  type Subscription,
} from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { NatsProviderConfig } from '../../config/types.js';
import {
  CursorError,
  describeConnectError,
  ProviderError,
  type BrokerMessage,
  type BrokerSubscription,
  type DeliveryGap,
  type EventProvider,
  type ProviderStatus,
  type ReplayRequest,
  type SubscribeSpec,
  messageOf,
  withDeadline,
  withoutPrefix,
} from '../provider.js';
import {
  NATS_DEFAULT_MAX_CONTROL_LINE,
  natsControlLineBytes,
  natsSubjectProblem,
  preview,
} from '../subjects.js';
import { JetStreamConsumers } from './jetstream.js';
import { natsConnectionOptions } from './options.js';
import { deliver, notify, WIDEST_REPLY, type ActiveSubscription } from './subscriptions.js';

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

const DEFAULT_RECONNECT_WAIT_MS = 1000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_OPERATION_TIMEOUT_MS = 10_000;
/** Stand-in of the widest subscription id the client puts on a SUB line. */
const WIDEST_SID = '9999999999';

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
  private pendingFlush: Promise<void> | undefined;
  private readonly active = new Set<ActiveSubscription>();
  private readonly jetstream: JetStreamConsumers;

  constructor(config: NatsProviderConfig, options: NatsProviderOptions = {}) {
    this.config = config;
    this.id = config.id;
    this.url = config.url;
    this.logger = options.logger?.child({ provider_id: config.id, provider_url: config.url });
    this.reconnectWaitMs = options.reconnectTimeWaitMs ?? DEFAULT_RECONNECT_WAIT_MS;
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.operationTimeoutMs = options.operationTimeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS;
    this.connectionName = options.connectionName ?? `edfs-router provider ${config.id}`;
    this.onReconnect = options.onReconnect;
    this.maxControlLine = config.maxControlLine ?? NATS_DEFAULT_MAX_CONTROL_LINE;
    this.jetstream = new JetStreamConsumers({
      providerId: this.id,
      url: this.url,
      logger: this.logger,
      operationTimeoutMs: this.operationTimeoutMs,
      instanceId: options.instanceId,
      active: this.active,
      assertControlLine: (operation, subject, bytes) => this.assertControlLine(operation, subject, bytes),
    });
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
      ? this.jetstream.subscribe(nc, spec.subjects, spec.stream, onMessage, onError)
      : this.subscribeCore(nc, spec.subjects, onMessage, onError, onGap);
  }

  /** JetStream subscriptions keep their messages; core NATS ones are at-most-once. */
  resumable(spec: SubscribeSpec): boolean {
    return spec.stream !== undefined;
  }

  async replay(request: ReplayRequest): Promise<void> {
    const stream = request.spec.stream;
    if (!stream)
      throw new CursorError(
        'invalid',
        'core NATS subscriptions keep no events to replay (only JetStream streams do)',
      );
    const nc = await this.connection(`replay stream "${stream.streamName}"`);
    return this.jetstream.replay(nc, request);
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
    return natsConnect(
      await natsConnectionOptions(this.config, {
        name: this.connectionName,
        reconnectWaitMs: this.reconnectWaitMs,
        connectTimeoutMs: this.connectTimeoutMs,
      }),
    );
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
    this.jetstream.forget();
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
        notify(this.logger, onError, error);
      },
      lost: () => {
        interrupted = true;
      },
      regained: () => {
        if (!interrupted || !open) return;
        interrupted = false;
        if (onGap) notify(this.logger, onGap, { reason: 'broker_outage' });
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
              deliver(this.logger, onMessage, msg.subject, msg.data);
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
  // Helpers

  /** One flush for every publish of the same tick: its PONG follows all of them on the wire. */
  private flushSoon(nc: NatsConnection): Promise<void> {
    this.pendingFlush ??= Promise.resolve().then(() => {
      this.pendingFlush = undefined;
      return nc.flush();
    });
    return this.pendingFlush;
  }

  private withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
    return withDeadline(
      promise,
      this.operationTimeoutMs,
      () => new ProviderError(this.id, `${what} within ${this.operationTimeoutMs} ms (${this.url})`),
    );
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

function hasCause(error: unknown, type: abstract new (...args: never[]) => Error): boolean {
  let current: unknown = error;
  for (let depth = 0; current instanceof Error && depth < 5; depth++) {
    if (current instanceof type) return true;
    current = (current as Error).cause;
  }
  return false;
}
