/**
 * What the NATS provider's core and JetStream subscriptions share: the record the provider keeps
 * of each live one, so that connection events reach all of them (close stops them, a closed
 * connection fails them, a reconnect tells core subscribers of the gap), and the guards around
 * subscriber callbacks.
 *
 * Invariant: a subscriber's callback never throws into the NATS client; a failure is logged.
 */
import type { Logger } from 'pino';
import type { BrokerMessage, Position } from '../provider.js';

export interface ActiveSubscription {
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

/** A reply subject as wide as the client's inboxes (`_INBOX.<nuid>.<token>`, 52 bytes), with room. */
export const WIDEST_REPLY = '_'.repeat(64);

export function deliver(
  logger: Logger | undefined,
  onMessage: (message: BrokerMessage) => void,
  subject: string,
  data: Uint8Array,
  position?: Position,
): void {
  try {
    onMessage(position ? { subject, data, position } : { subject, data });
  } catch (error) {
    logger?.error({ err: error, subject }, 'event handler failed');
  }
}

export function notify<T>(logger: Logger | undefined, callback: (value: T) => void, value: T): void {
  try {
    callback(value);
  } catch (callbackError) {
    logger?.error({ err: callbackError }, 'subscription error handler failed');
  }
}
