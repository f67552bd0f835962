/**
 * A Trigger: one broker subscription, keyed by (provider, rendered subjects, stream), shared by
 * every Group that needs those events. It numbers the events it receives (`seq`), which is how a
 * re-planned subscription knows which events its old Group still owes it.
 *
 * On a resumable provider (JetStream, Kafka) it also keeps, per lane, the broker offset of the
 * last message received, and marks every event with the cursor of that moment (cursor.ts): the
 * position a client that has this event can continue from, on any replica.
 *
 * Invariants: nothing here throws into a broker callback; an event that is not JSON reaches every
 * member as an INVALID_EVENT error; a broker gap is handed to every Group in order with the events;
 * when the broker subscription fails or ends, every member gets the error and the Trigger is gone.
 */
import type {
  BrokerMessage,
  BrokerSubscription,
  DeliveryGap,
  EventProvider,
  SubscribeSpec,
} from '../events/provider.js';
import { encodeCursor, withCursor, type CursorSource, type Mark } from './cursor.js';
import { invalidEventPayload, type EngineContext, type Group } from './group.js';

export class Trigger {
  readonly groups = new Map<string, Group>();
  refs = 0;
  subscription: BrokerSubscription | undefined;
  ready: Promise<void>;
  closed = false;
  graceTimer: NodeJS.Timeout | undefined;
  /** Sequence number of the last event received. */
  seq = 0;
  /** Whether its provider keeps these events (cursors, replay). */
  readonly resumable: boolean;
  /** Resumable: what its cursors name, and per lane the offset of the last message received. */
  readonly source: CursorSource;
  private readonly offsets = new Map<string, number>();

  constructor(
    readonly key: string,
    readonly provider: EventProvider,
    readonly spec: SubscribeSpec,
    private readonly engine: EngineContext,
  ) {
    this.resumable = provider.replay !== undefined && provider.resumable?.(spec) === true;
    this.source = spec.stream
      ? { providerId: provider.id, stream: spec.stream.streamName }
      : { providerId: provider.id };
    this.ready = provider
      .subscribe(
        spec,
        (message) => this.onMessage(message),
        (error) => this.fail(error),
        (gap) => this.onGap(gap),
      )
      .then((sub) => {
        if (this.closed) void sub.close();
        else this.subscription = sub;
        // Lanes that delivered before this are further on already.
        for (const [lane, offset] of sub.start ?? [])
          if (!this.offsets.has(lane)) this.offsets.set(lane, offset);
      });
    this.ready.catch((error: unknown) => this.fail(error as Error));
  }

  private onMessage(message: BrokerMessage): void {
    const received = performance.now();
    const { metrics } = this.engine;
    metrics.eventsReceived.inc({ provider_id: this.provider.id });
    const mark =
      this.resumable && message.position
        ? this.mark(message.position.lane, message.position.offset)
        : undefined;
    let event: unknown;
    try {
      event = JSON.parse(
        Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength).toString('utf8'),
      );
    } catch {
      metrics.droppedMessages.inc({ reason: 'invalid_json' });
      this.engine.logger.warn({ subject: message.subject }, 'invalid event: not JSON');
      const json = invalidEventPayload(message.subject, 'the event is not valid JSON');
      const frame = mark ? withCursor(json, mark.cursor) : json;
      this.seq++;
      for (const group of this.groups.values()) for (const m of group.members) m.take(frame, mark);
      return;
    }
    const seq = ++this.seq;
    const dedupe = new Map<string, Promise<unknown>>();
    for (const group of this.groups.values())
      group.accept(event, message.subject, dedupe, received, seq, mark);
  }

  /** Moves `lane` to `offset` and marks the event there with the cursor of that moment. */
  private mark(lane: string, offset: number): Mark {
    const offsets = this.offsets;
    offsets.set(lane, offset);
    // One lane (a JetStream subject): no copy of the map is worth keeping beyond this one event.
    const snapshot = offsets.size === 1 ? new Map([[lane, offset]]) : new Map(offsets);
    return { cursor: encodeCursor(this.source, snapshot), lane, offset, offsets: snapshot };
  }

  /** The broker may have lost events before the next one: every Group signals it in order. */
  private onGap(gap: DeliveryGap): void {
    if (this.closed) return;
    // One line per Trigger: debug (the provider logs the reconnect itself).
    this.engine.logger.debug(
      { trigger: this.key, reason: gap.reason },
      'events may have been lost: telling the subscribers',
    );
    const next = this.seq + 1;
    for (const group of this.groups.values()) group.interrupted(gap.reason, next, gap.dropped);
  }

  /** The broker subscription failed or ended: every client of this Trigger gets the error. */
  fail(error: Error): void {
    if (this.closed) return;
    this.engine.logger.warn({ err: error, trigger: this.key }, 'trigger failed');
    const errors = [{ message: error.message, extensions: { code: 'EVENT_SOURCE_FAILED' } }];
    const members = [...this.groups.values()].flatMap((g) => [...g.members]);
    this.engine.dropTrigger(this);
    for (const m of members) this.engine.endMember(m, () => m.sink.error(errors));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.graceTimer);
    await this.ready.catch(() => undefined);
    await this.subscription
      ?.close()
      .catch((err: unknown) =>
        this.engine.logger.warn({ err, trigger: this.key }, 'closing a broker subscription failed'),
      );
  }
}

export function triggerKeyOf(provider: EventProvider, spec: SubscribeSpec): string {
  return JSON.stringify([provider.id, spec.subjects, spec.stream ?? null]);
}
