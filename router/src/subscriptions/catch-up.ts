/**
 * Catch-up of a resuming client: it subscribed with a cursor, so it first gets every event after
 * the cursor, resolved as live ones are, then continues live, with no gap and no repeat at the
 * switch. Hand-written because the switch is the engine's own business (its Groups, its marks).
 *
 * How:
 * - The client joins its Group at once, like any subscriber: live events keep coming, and while
 *   the replay runs they wait in this client's buffer (the Group never waits for it). The replay
 *   starts once the Trigger's broker subscription is in place, so the lanes' ends it reads up to
 *   are at or past where the live side started.
 * - The provider replays, per lane, what follows the cursor up to the lane's end when the replay
 *   started (events/provider.ts `replay`), through a reader of this client's own; each event is
 *   rendered by the client's current Group (once for all the clients replaying it at the same
 *   time) and sent with a cursor of its own.
 * - Then the buffer goes out, and live events follow. Per lane, `floor` is the offset the client
 *   has: any event at or below it (a live consumer behind the replay, the cursor of a replica
 *   further on) is skipped. Live events carry the Trigger's cursor; while the client is ahead of
 *   the Trigger on some lane, its frames get a cursor of its own (the greater offset per lane), so
 *   a cursor never moves back. Once the Trigger has passed the client on every lane, the client
 *   is an ordinary member again (`member.special` cleared).
 * - Replayed events resolve at most `REPLAY_CONCURRENCY` at a time router-wide (ReplaySlots),
 *   in turn across resuming clients, so a burst of resumes leaves the subgraphs to live events
 *   too; clients replaying the same events at once share each resolution (group.ts).
 * - Bounded: more than `maxEvents` events (replayed plus waiting in the buffer) or `maxBytes`
 *   bytes end the subscription with REPLAY_LIMIT_EXCEEDED; so does a broker that says up front
 *   that more are waiting.
 *
 * Invariants: events reach the client in lane order, each once; nothing here throws into a broker
 * callback; a replay whose client went away stops (its reader is removed).
 */
import type { GraphQLFormattedError } from 'graphql';
import { CursorError, messageOf, type BrokerMessage, type CursorProblem } from '../events/provider.js';
import { encodeCursor, replaceCursor, withCursor, type Cursor, type Mark } from './cursor.js';
import { resolveFailedPayload, type Group, type Member, type SpecialDelivery } from './group.js';
import type { Trigger } from './trigger.js';
import type { ResumeOutcome, RouterMetrics } from '../observability/metrics.js';

/** `extensions.code` of a resume the router cannot serve, by cause (docs/resumable-subscriptions.md). */
export const CURSOR_ERROR_CODES: Record<CursorProblem | 'unsupported', string> = {
  invalid: 'CURSOR_INVALID',
  expired: 'CURSOR_EXPIRED',
  too_far: 'REPLAY_LIMIT_EXCEEDED',
  unsupported: 'RESUME_UNSUPPORTED',
};

/** The `result` of `router_subscription_resumes_total` for a refusal with `error`. */
export function resumeOutcomeOf(error: GraphQLFormattedError): ResumeOutcome {
  const code = error.extensions?.code;
  return typeof code === 'string' && Object.values(CURSOR_ERROR_CODES).includes(code)
    ? (code.toLowerCase() as ResumeOutcome)
    : 'failed';
}

export function cursorErrorOf(
  problem: CursorProblem | 'unsupported',
  message: string,
): GraphQLFormattedError {
  const hint =
    problem === 'too_far' || problem === 'expired' || problem === 'invalid'
      ? '; subscribe again without a cursor and resynchronise'
      : '';
  return {
    message: `cannot resume the subscription: ${message}${hint}`,
    extensions: { code: CURSOR_ERROR_CODES[problem] },
  };
}

export interface CatchUpLimits {
  /** Events replayed plus live events held meanwhile. */
  maxEvents: number;
  /** Their bytes (broker payloads replayed, frames held). */
  maxBytes: number;
}

/** What the catch-up asks of the engine. */
export interface CatchUpHost {
  readonly limits: CatchUpLimits;
  /** Router-wide slots for resolving replayed events. */
  readonly replaySlots: ReplaySlots;
  readonly metrics: Pick<RouterMetrics, 'subscriptionResumes' | 'eventsReplayed'>;
  /** Ends the subscription with `errors` (no `complete` follows). */
  fail(member: Member, errors: GraphQLFormattedError[]): void;
  readonly logger: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

interface Held {
  frame: string;
  mark: Mark | undefined;
}

/** A replayed message waiting to be rendered and sent, with its place and cursor. */
interface Replayed {
  message: BrokerMessage;
  lane: string;
  offset: number;
  cursor: string;
}

/**
 * Resolutions of replayed events running at once, router-wide: resuming clients take turns for
 * them, so a burst of resumes (after a drain) cannot flood the subgraphs live events need.
 */
export class ReplaySlots {
  private readonly waiting: (() => void)[] = [];

  constructor(private free: number) {}

  take(): boolean {
    if (this.free === 0) return false;
    this.free--;
    return true;
  }

  /** `then` runs once a slot is free (it takes it itself, or leaves it to the next waiter). */
  wait(then: () => void): void {
    this.waiting.push(then);
  }

  give(): void {
    this.free++;
    while (this.free > 0 && this.waiting.length > 0) this.waiting.shift()!();
  }
}

export class CatchUp implements SpecialDelivery {
  /** Per lane, the offset the client has: the cursor's, then what the replay delivered. */
  private readonly floor: Map<string, number>;
  private replaying = true;
  private held: Held[] = [];
  private events = 0;
  private bytes = 0;
  private tail: Promise<void> = Promise.resolve();
  /** Replayed messages not yet rendering, oldest first; and those rendering, not yet sent. */
  private readonly queue: Replayed[] = [];
  private rendering = 0;
  private waitingForSlot = false;
  private whenDrained: (() => void) | undefined;
  /** The Group whose shared replay results this replay counts in (group.ts `replaying`). */
  private sharing: Group | undefined;
  private readonly abort = new AbortController();
  private ended = false;

  constructor(
    private readonly member: Member,
    private readonly trigger: Trigger,
    cursor: Cursor,
    private readonly host: CatchUpHost,
  ) {
    this.floor = new Map(cursor.offsets);
  }

  /**
   * Starts the replay once the Trigger's broker subscription is in place (the member must already
   * be in its Group): only then is the live side's start known, and a replay up to the lanes' ends
   * from then on meets it. (A Trigger that fails ends the member itself.)
   */
  start(): void {
    this.trigger.ready.then(
      () => this.replay(),
      () => undefined,
    );
  }

  private replay(): void {
    if (this.ended) return;
    this.sharing = this.member.current;
    this.sharing?.replaying(1);
    const provider = this.trigger.provider;
    // The replay's own running offsets: each replayed event's cursor.
    const offsets = new Map(this.floor);
    provider.replay!({
      spec: this.trigger.spec,
      after: new Map(this.floor),
      onMessage: (message) => this.replayed(message, offsets),
      maxMessages: this.host.limits.maxEvents,
      signal: this.abort.signal,
    }).then(
      () => this.drained().then(() => this.goLive()),
      (error: unknown) => {
        if (error instanceof CursorError) return this.fail(cursorErrorOf(error.problem, error.message));
        this.host.logger.error({ err: error, trigger: this.trigger.key }, 'replaying events failed');
        this.fail({
          message: `cannot resume the subscription: the event broker failed to replay (${messageOf(error)}); try again`,
          extensions: { code: 'EVENT_SOURCE_FAILED' },
        });
      },
    );
  }

  /** The client went away (or its subscription ended): the replay stops. */
  stop(): void {
    this.ended = true;
    this.held = [];
    this.queue.length = 0;
    this.abort.abort();
    this.stopSharing();
  }

  private stopSharing(): void {
    this.sharing?.replaying(-1);
    this.sharing = undefined;
  }

  /** A live event from the Group. */
  take(member: Member, frame: string, mark: Mark | undefined): void {
    if (mark) {
      const floor = this.floor.get(mark.lane);
      if (floor !== undefined && mark.offset <= floor) return;
    }
    if (this.replaying) {
      if (!this.count(frame.length)) return;
      this.held.push({ frame, mark });
      return;
    }
    this.send(member, frame, mark);
  }

  /** One replayed broker message: queued to be rendered in order, sent with its own cursor. */
  private replayed(message: BrokerMessage, offsets: Map<string, number>): void {
    if (this.ended || !message.position) return;
    if (!this.count(message.data.byteLength)) return;
    const { lane, offset } = message.position;
    offsets.set(lane, offset);
    this.queue.push({ message, lane, offset, cursor: encodeCursor(this.trigger.source, offsets) });
    this.pump();
  }

  /**
   * Starts rendering queued messages while the router-wide replay slots allow (a catch-up never
   * floods the subgraphs the live Groups need); each is sent in order once rendered.
   */
  private pump(): void {
    const slots = this.host.replaySlots;
    while (this.queue.length > 0 && !this.ended) {
      if (!slots.take()) {
        if (!this.waitingForSlot) {
          this.waitingForSlot = true;
          slots.wait(() => {
            this.waitingForSlot = false;
            this.pump();
          });
        }
        return;
      }
      const item = this.queue.shift()!;
      const group = this.member.current;
      const work =
        group && group.trigger === this.trigger
          ? group.renderReplayed({ ...item.message, position: { lane: item.lane, offset: item.offset } })
          : Promise.reject(new Error('the subscription moved to another event source'));
      void work.then(
        () => slots.give(),
        () => slots.give(),
      );
      this.rendering++;
      this.tail = this.tail
        .then(() => work)
        .then(
          (json) => this.deliver(item, json),
          (error: unknown) => {
            this.host.logger.error(
              { err: error, subject: item.message.subject },
              'resolving a replayed event failed',
            );
            this.deliver(item, resolveFailedPayload(item.message.subject));
          },
        )
        .then(() => {
          this.rendering--;
          this.checkDrained();
        });
    }
  }

  private deliver(item: Replayed, json: string | undefined): void {
    if (this.ended) return;
    this.floor.set(item.lane, item.offset);
    if (json === undefined) return;
    this.host.metrics.eventsReplayed.inc();
    this.member.sink.next(withCursor(json, item.cursor), item.cursor);
  }

  /** Resolves once every replayed message is out (rendered and sent, or filtered). */
  private drained(): Promise<void> {
    if (this.queue.length === 0 && this.rendering === 0) return Promise.resolve();
    return new Promise((resolve) => (this.whenDrained = resolve));
  }

  private checkDrained(): void {
    if (this.queue.length > 0 || this.rendering > 0 || !this.whenDrained) return;
    const resolve = this.whenDrained;
    this.whenDrained = undefined;
    resolve();
  }

  /** The replay is out: what was held goes, then live events flow. */
  private goLive(): void {
    if (this.ended) return;
    this.host.metrics.subscriptionResumes.inc({ result: 'caught_up' });
    this.stopSharing();
    this.replaying = false;
    const held = this.held;
    this.held = [];
    for (const { frame, mark } of held) {
      if (this.ended) return;
      this.take(this.member, frame, mark);
    }
  }

  /**
   * A live event after the replay: with the Trigger's cursor once the Trigger has passed the
   * client on every lane (then the client is an ordinary member again), else with its own.
   */
  private send(member: Member, frame: string, mark: Mark | undefined): void {
    if (!mark) {
      member.sink.next(frame);
      return;
    }
    let ahead = false;
    for (const [lane, offset] of this.floor)
      if (offset > (mark.offsets.get(lane) ?? -1)) {
        ahead = true;
        break;
      }
    if (!ahead) {
      member.special = undefined;
      member.sink.next(frame, mark.cursor);
      return;
    }
    const offsets = new Map(mark.offsets);
    for (const [lane, offset] of this.floor)
      if (offset > (offsets.get(lane) ?? -1)) offsets.set(lane, offset);
    const cursor = encodeCursor(this.trigger.source, offsets);
    this.floor.set(mark.lane, mark.offset);
    member.sink.next(replaceCursor(frame, mark.cursor, cursor), cursor);
  }

  /** Counts one more event of `bytes` against the limits; false (and the subscription ends) past them. */
  private count(bytes: number): boolean {
    const { maxEvents, maxBytes } = this.host.limits;
    this.events++;
    this.bytes += bytes;
    if (this.events <= maxEvents && this.bytes <= maxBytes) return true;
    this.fail(
      cursorErrorOf(
        'too_far',
        this.events > maxEvents
          ? `more than ${maxEvents} events follow the cursor (subscriptions.resume.max_replay_events)`
          : `the events after the cursor take more than ${maxBytes} bytes (subscriptions.resume.max_replay_bytes)`,
      ),
    );
    return false;
  }

  private fail(error: GraphQLFormattedError): void {
    if (this.ended) return;
    this.host.metrics.subscriptionResumes.inc({ result: resumeOutcomeOf(error) });
    this.stop();
    this.host.fail(this.member, [error]);
  }
}
