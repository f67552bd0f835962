/**
 * The one interface every broker adapter implements (memory, nats, kafka), so the trigger registry
 * and the publish/request resolvers never know which broker they talk to. Payloads are raw bytes:
 * decoding and validation of events happen once per event in the engine, not per adapter.
 *
 * Invariants: `subscribe` resolves only once the broker subscription is established (or rejects
 * with an error naming the subject/stream to fix); a subscription's `onMessage` is never called
 * after `close()` resolves; a provider never throws from a callback into the caller.
 *
 * Resumable providers (JetStream streams, Kafka) also say where each message sits (`Position`)
 * and can deliver a subscription's past messages again (`replay`): the engine builds client
 * cursors from the first and resumes clients with the second. Positions are the broker's, not
 * the router's, so a cursor from one replica is good on any other.
 *
 * Also here, so that every adapter words them alike: ProviderError, CursorError, connection
 * failures (`describeConnectError`) and operation deadlines (`withDeadline`).
 */

/** What one trigger listens to. Subjects/topics are already rendered (no templates). */
export interface SubscribeSpec {
  /** NATS subjects (may contain `*`/`>`) or Kafka topics. */
  subjects: string[];
  /** NATS JetStream: bind a durable consumer instead of a core subscription. */
  stream?: { streamName: string; consumerName: string; consumerInactiveThresholdSeconds?: number };
}

export interface BrokerMessage {
  /** The subject/topic the message arrived on. */
  subject: string;
  data: Uint8Array;
  /** Where the message sits in the broker; set by resumable providers only. */
  position?: Position;
}

/**
 * A message's place: an offset along a lane. A lane is what the broker orders (a JetStream
 * consumer's filter subject, offsets being stream sequences; a Kafka topic partition, offsets
 * being partition offsets). Messages of one lane arrive in offset order; lanes are independent.
 */
export interface Position {
  readonly lane: string;
  readonly offset: number;
}

/** Per lane, the offset of the last message taken (lanes not listed: none taken yet). */
export type Offsets = ReadonlyMap<string, number>;

export interface BrokerSubscription {
  close(): Promise<void>;
  /**
   * Resumable providers: per lane, the offset just before the first message this subscription
   * delivers (the stream's or partition's position when it started).
   */
  readonly start?: Offsets;
}

/** A subscription's past messages, delivered again (`EventProvider.replay`). */
export interface ReplayRequest {
  spec: SubscribeSpec;
  /**
   * Per lane, the last offset already delivered: replay starts after it. A lane of the
   * subscription that is not listed starts at its first retained message.
   */
  after: Offsets;
  /** Every message after `after`, each lane in offset order, each with its position. */
  onMessage: (message: BrokerMessage) => void;
  /** Refuse (CursorError `too_far`) when the broker says more messages than this are waiting. */
  maxMessages: number;
  /** Stops the replay; the promise then resolves without further messages. */
  signal: AbortSignal;
}

/** Why a cursor cannot be served; `extensions.code` of the client's error (see docs/resumable-subscriptions.md). */
export type CursorProblem = 'invalid' | 'expired' | 'too_far';

/** A cursor the broker cannot serve: unknown lanes, events past retention, too many behind. */
export class CursorError extends Error {
  override name = 'CursorError';
  constructor(
    readonly problem: CursorProblem,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Events may have been lost before the next message: core NATS across a reconnect (at-most-once:
 * what was published while the router was away never reaches it). Providers that resume where
 * they stopped (Kafka, JetStream) never report one.
 */
export interface DeliveryGap {
  reason: 'broker_outage';
  /** How many were lost, when the provider knows; a broker outage does not tell. */
  dropped?: number;
}

export interface ProviderStatus {
  /** true when connected; otherwise a short reason ("reconnecting to nats://...:4222"). */
  ready: true | string;
}

export interface EventProvider {
  readonly id: string;
  readonly kind: 'memory' | 'nats' | 'kafka';
  /** Connects (idempotent). Rejects with an error naming the provider id and URL. */
  connect(): Promise<void>;
  subscribe(
    spec: SubscribeSpec,
    onMessage: (message: BrokerMessage) => void,
    /** Called when the subscription ends by itself (stream deleted, permission revoked...). */
    onError: (error: Error) => void,
    /** Called, in order with `onMessage`, where events may have been lost (the subscription goes on). */
    onGap?: (gap: DeliveryGap) => void,
  ): Promise<BrokerSubscription>;
  publish(subject: string, data: Uint8Array): Promise<void>;
  /** Request/reply: resolves with the reply's bytes, rejects on timeout or no responders. */
  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  status(): ProviderStatus;
  close(): Promise<void>;
  /**
   * Present on providers that keep messages (JetStream streams, Kafka): delivers `request.spec`'s
   * messages after `request.after`, up to each lane's end when the replay started, then
   * resolves. Rejects with a CursorError when the positions cannot be served; undefined (and
   * `resumable` false for the spec) means at-most-once delivery.
   */
  replay?(request: ReplayRequest): Promise<void>;
  /** Whether subscriptions of `spec` carry positions and can be replayed. */
  resumable?(spec: SubscribeSpec): boolean;
}

/** Raised by providers for errors a user must fix (bad subject, missing stream, auth). */
export class ProviderError extends Error {
  override name = 'ProviderError';
  constructor(
    readonly providerId: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`provider "${providerId}": ${message}`, options);
  }
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A ProviderError's message without its `provider "id": ` prefix, for nesting in another one. */
export function withoutPrefix(error: unknown): string {
  const message = messageOf(error);
  return error instanceof ProviderError ? message.replace(/^provider "[^"]*": /, '') : message;
}

/**
 * A failed connection attempt in words a user can act on: an authentication or TLS failure names
 * the settings to check; the error's code and its cause are added when the message lacks them.
 */
export function describeConnectError(error: unknown): string {
  let message = messageOf(error);
  const { name, code, cause } = (error ?? {}) as { name?: unknown; code?: unknown; cause?: unknown };
  if (name === 'KafkaJSSASLAuthenticationError' || /SASL|authentication|authorization/i.test(message))
    return `${message} (check the provider's authentication settings)`;
  if (/certificate|self.signed|SSL|TLS/i.test(message))
    return `${message} (check the provider's tls settings)`;
  if (typeof code === 'string' && !message.includes(code)) message = `${message} (${code})`;
  if (cause instanceof Error && !message.includes(cause.message)) message = `${message}: ${cause.message}`;
  return message;
}

/** Settles as `promise` does, or rejects with `timeoutError()` once `ms` have passed first. */
export async function withDeadline<T>(
  promise: Promise<T>,
  ms: number,
  timeoutError: () => Error,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeoutError()), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
