/**
 * How every client protocol delivers one operation's results, whatever its framing and transport:
 * the operation's life cycle, its result sink with the slow-consumer rule, and the hooks that
 * count deliveries. The protocols stay free of the metrics library; `deliveryMetrics` binds the
 * hooks to the router's registry.
 *
 * Invariants:
 * - An operation ends once: the service ends it (`finish`) or this side stops it (`cancel`),
 *   whichever comes first. After that its sink refuses results and writes nothing, and the
 *   service's `stop` is called only for an operation this side stopped while it ran.
 * - `next` adds no allocation to the protocol's own frame (one string concatenation per client).
 * - Memory per client is bounded: a result that finds more than `sendBufferLimitBytes` unsent is
 *   not queued behind them; the client is dropped instead, and counted as a slow consumer.
 * - An operation whose client's token expires gets `TOKEN_EXPIRED_RESULT` as its last result, then
 *   `complete` (`expire`); one timer per connection or stream (`ExpiryTimer`), never per event.
 */
import type { GraphQLFormattedError } from 'graphql';
import { TOKEN_EXPIRED } from '../auth/authenticator.js';
import type { RouterMetrics } from '../observability/metrics.js';
import type { ResultSink } from '../subscriptions/service.js';

export interface DeliveryHooks {
  /** One `next` was handed to the transport. */
  messageSent(): void;
  /** A result was not delivered because the client's send buffer was over the limit. */
  slowConsumer(): void;
  /** The client's token expired and ended `operations` running operations. */
  tokenExpired?(operations: number): void;
}

export function deliveryMetrics(metrics: RouterMetrics): DeliveryHooks {
  return {
    messageSent: () => metrics.messagesSent.inc(),
    slowConsumer: () => metrics.droppedMessages.inc({ reason: 'slow_consumer' }),
    tokenExpired: (operations) => metrics.subscriptionsExpired.inc(operations),
  };
}

/** The last result of an operation whose token expired (then `complete` follows). */
export const TOKEN_EXPIRED_RESULT = JSON.stringify({
  errors: [
    {
      message: 'The token expired: authenticate again with a fresh token and resubscribe.',
      extensions: { code: TOKEN_EXPIRED },
    },
  ],
});

/** setTimeout's longest delay (about 24.8 days); longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Calls `onExpire` once at `expiresAt` (ms since the epoch), unless cancelled first. */
export class ExpiryTimer {
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly expiresAt: number,
    private readonly onExpire: () => void,
  ) {
    this.arm();
  }

  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    const delay = this.expiresAt - Date.now();
    this.timer = setTimeout(
      () => (delay > MAX_TIMER_MS ? this.arm() : this.onExpire()),
      Math.max(0, Math.min(delay, MAX_TIMER_MS)),
    );
    this.timer.unref?.();
  }
}

/** Where a client's results go, and what becomes of a client that does not keep up. */
export interface Outlet {
  /** Bytes queued for the client but not yet handed to the network. */
  bufferedAmount(): number;
  readonly sendBufferLimitBytes: number;
  readonly hooks: DeliveryHooks;
  /** Drops the client, whose send buffer is over the limit. */
  drop(): void;
}

/**
 * One operation as a protocol runs it, and the sink the service writes its results to. `pending`
 * waits to be started (the legacy graphql-ws holds operations until the ack); `starting` covers
 * the synchronous `start` call (the sink may already be used); `finished` means the service ended
 * it, `cancelled` that this side stopped it.
 *
 * A subclass per protocol supplies the frames, so one object per operation serves as its state,
 * its sink and its frames: a connection holds no closures per operation (memory per idle
 * subscriber is one of the figures the product is judged by).
 */
export abstract class OperationRun implements ResultSink {
  private stopper: { stop(): void } | undefined;

  constructor(public state: 'pending' | 'starting' | 'active' | 'finished' | 'cancelled' = 'starting') {}

  /** Where results go, and what becomes of a client that does not keep up. */
  protected abstract get outlet(): Outlet;

  /** Runs once, as the operation ends (either way), before the service is stopped. */
  protected abstract onEnd(): void;
  /**
   * One result; `json` is the engine's text, shared by every client of the operation. `cursor`
   * (resumable subscriptions) is in it already; a framing with a place of its own may repeat it.
   */
  protected abstract writeNext(json: string, cursor?: string): void;
  /** The operation ended with errors. */
  protected abstract writeError(errors: readonly GraphQLFormattedError[]): void;
  protected abstract writeComplete(): void;

  get ended(): boolean {
    return this.state === 'finished' || this.state === 'cancelled';
  }

  /** The service ended the operation; true when it was still running (the client must be told). */
  finish(): boolean {
    if (this.ended) return false;
    this.state = 'finished';
    this.onEnd();
    return true;
  }

  /** This side stops the operation; the service hears no more from it and the client gets nothing. */
  cancel(): void {
    if (this.ended) return;
    const wasActive = this.state === 'active';
    this.state = 'cancelled';
    this.onEnd();
    if (wasActive) this.stopper?.stop();
  }

  /** The service's `start` succeeded: true when the operation is now active. */
  started(started: { stop(): void }): boolean {
    if (this.state === 'starting') {
      this.state = 'active';
      this.stopper = started;
      return true;
    }
    // Stopped while the service was starting (a slow consumer on the first result).
    if (this.state === 'cancelled') started.stop();
    return false;
  }

  /** A result goes out while the client keeps up (ResultSink). */
  next(json: string, cursor?: string): boolean {
    if (this.ended) return false;
    const outlet = this.outlet;
    if (outlet.bufferedAmount() > outlet.sendBufferLimitBytes) {
      outlet.hooks.slowConsumer();
      outlet.drop();
      return false;
    }
    this.writeNext(json, cursor);
    outlet.hooks.messageSent();
    return true;
  }

  /**
   * This side ends a running operation with a last result, then `complete` (the client's token
   * expired); the service is stopped. True when it was running.
   */
  expire(json: string): boolean {
    if (this.state !== 'active') {
      this.cancel();
      return false;
    }
    this.state = 'cancelled';
    this.onEnd();
    this.stopper?.stop();
    this.writeNext(json);
    this.writeComplete();
    return true;
  }

  error(errors: readonly GraphQLFormattedError[]): void {
    if (this.finish()) this.writeError(errors);
  }

  complete(): void {
    if (this.finish()) this.writeComplete();
  }
}
