/**
 * One operation on one streamed HTTP response, the life GraphQL over SSE (sse.ts) and over
 * multipart (multipart.ts) share; each of them is a `StreamFraming`. This module knows nothing of
 * HTTP: the adapter (server/stream-route.ts) hands it a socket whose first write commits the `200` head.
 *
 * Invariants:
 * - The operation is started before anything is written, so an operation refused by the service
 *   can still be answered with another status (the adapter's choice).
 * - A result costs the framing's string concatenations around the payload exactly as the engine
 *   serialized it (shared by all its clients); it is never parsed or re-serialized.
 * - Memory per stream is bounded: a result that finds more than `sendBufferLimitBytes` unsent
 *   drops the connection instead of queueing behind them.
 * - Once the stream ends, by either side, the operation is stopped and nothing more is written.
 * - A stream opened with a token that expires ends then: `TOKEN_EXPIRED` as its last result, then
 *   its proper end (delivery.ts); the timer goes with the stream.
 */
import type { GraphQLFormattedError } from 'graphql';
import type { GraphQLRequest, RequestContext } from '../engine/types.js';
import type { OperationService } from '../subscriptions/service.js';
import {
  ExpiryTimer,
  OperationRun,
  TOKEN_EXPIRED_RESULT,
  type DeliveryHooks,
  type Outlet,
} from './delivery.js';
import type { QueuedOutlet } from './send-budget.js';

export interface StreamSocket {
  /** Queues text on the response; never blocks. The first write commits the response head. */
  write(text: string): void;
  /** Ends the response after what is queued. */
  end(): void;
  /** Drops the connection now, discarding what is queued (a slow consumer). */
  destroy(): void;
  /** The backlog: what earlier turns queued and the network has not taken (with its overhead). */
  bufferedAmount(): number;
  /** What the queue holds against the send buffer budget (protocols/send-budget.ts `heldCost`). */
  queuedBytes(): number;
}

export interface StreamOptions {
  socket: StreamSocket;
  operations: OperationService;
  request: GraphQLRequest;
  context: RequestContext;
  /** The framing's heartbeat this often; 0 = none. */
  heartbeatIntervalMs: number;
  sendBufferLimitBytes: number;
  hooks: DeliveryHooks;
}

/** How a protocol writes one operation's stream; every text goes out as it is. */
export interface StreamFraming {
  /** Written before the first text (the opening delimiter of a multipart body). */
  preamble: string;
  /** One result; `json` is the engine's text, `cursor` its resume position (if resumable). */
  result(json: string, cursor?: string): string;
  /** The end of the body when the operation ends with errors. */
  failed(errors: readonly GraphQLFormattedError[]): string;
  /** The end of the body after the last result. */
  completed: string;
  /** Written once the operation runs; '' only commits the head, if nothing has been written yet. */
  opening: string;
  /** Written every `heartbeatIntervalMs`; undefined = never. */
  heartbeat: string | undefined;
}

export interface OperationStream extends QueuedOutlet {
  /** The client went away (or the response failed): stop the operation. Idempotent. */
  closed(): void;
  /** Ends the stream from the server side (shutdown), without its proper end: the client may retry. */
  end(): void;
}

export type StreamStart =
  { ok: false; errors: readonly GraphQLFormattedError[] } | { ok: true; stream: OperationStream };

/** One operation on one response: its state, its sink, its framing, its outlet and its handle. */
class StreamRun extends OperationRun implements Outlet, OperationStream {
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private expiry: ExpiryTimer | undefined;
  private opened = false;

  constructor(
    readonly socket: StreamSocket,
    private readonly framing: StreamFraming,
    readonly sendBufferLimitBytes: number,
    readonly hooks: DeliveryHooks,
  ) {
    super();
  }

  protected get outlet(): Outlet {
    return this;
  }

  bufferedAmount(): number {
    return this.socket.bufferedAmount();
  }

  /** A slow consumer: the connection is cut, without the stream's proper end. */
  drop(): void {
    this.cancel();
    this.socket.destroy();
  }

  // OperationStream: the adapter's handle on the stream.
  closed(): void {
    this.cancel();
  }

  end(): void {
    if (this.ended) return;
    this.cancel();
    this.socket.end();
  }

  queuedBytes(): number {
    return this.socket.queuedBytes();
  }

  get closing(): boolean {
    return this.ended;
  }

  /** The send buffer budget cuts this stream: a slow consumer (true), or one already ended. */
  cut(): boolean {
    const live = !this.ended;
    this.drop();
    return live;
  }

  /** Every write goes through here, so the preamble precedes the first text. */
  write(text: string): void {
    if (this.opened) return this.socket.write(text);
    this.opened = true;
    this.socket.write(this.framing.preamble + text);
  }

  /** The head is committed now at the latest: the client learns the operation runs before its first result. */
  open(heartbeatIntervalMs: number): void {
    const { framing } = this;
    if (framing.opening !== '' || !this.opened) this.write(framing.opening);
    const beat = framing.heartbeat;
    if (beat !== undefined && heartbeatIntervalMs > 0) {
      this.heartbeat = setInterval(() => this.write(beat), heartbeatIntervalMs);
      this.heartbeat.unref?.();
    }
  }

  /** Ends the stream when its token stops being accepted. */
  expireAt(expiresAt: number): void {
    this.expiry = new ExpiryTimer(expiresAt, () => {
      if (this.expire(TOKEN_EXPIRED_RESULT)) this.hooks.tokenExpired?.(1);
    });
  }

  protected onEnd(): void {
    clearInterval(this.heartbeat);
    this.expiry?.cancel();
  }

  protected writeNext(json: string, cursor?: string): void {
    this.write(this.framing.result(json, cursor));
  }

  protected writeError(errors: readonly GraphQLFormattedError[]): void {
    this.write(this.framing.failed(errors));
    this.socket.end();
  }

  protected writeComplete(): void {
    this.write(this.framing.completed);
    this.socket.end();
  }
}

/** Starts the operation; on success the stream is open and its head written. */
export function startStream(options: StreamOptions, framing: StreamFraming): StreamStart {
  const run = new StreamRun(options.socket, framing, options.sendBufferLimitBytes, options.hooks);
  const started = options.operations.start(options.request, options.context, run);

  if (!started.ok) {
    run.finish();
    return { ok: false, errors: started.errors };
  }
  if (run.started(started)) {
    run.open(options.heartbeatIntervalMs);
    const expiresAt = options.context.auth?.expiresAt;
    if (expiresAt !== undefined && !run.ended) run.expireAt(expiresAt);
  }
  return { ok: true, stream: run };
}
