/**
 * A Group: the client subscriptions of one Trigger with the same plan, variables and subgraph
 * headers, which therefore get the same result for every event. Per event a Group checks,
 * filters, resolves and serializes once, and every member gets the same string.
 *
 * Invariants:
 * - Events reach the members in the order the Trigger received them, though resolutions overlap.
 * - At most `maxPendingEvents` unresolved events: beyond them new events are dropped (counted),
 *   so a slow subgraph cannot grow memory without bound; an event the filter refuses on its own
 *   fields is not a drop.
 * - Loss is never silent: a run of drops, or a broker gap, reaches every member it concerns as
 *   one `next` with an `EVENTS_DROPPED` error, in order at the point of the gap, saying how many
 *   (when known) and why. Only a run costs an allocation, never an event.
 * - A member takes the Trigger's events `from` on from its `current` Group, and the events before
 *   that from the Groups it left on re-plans, one Handover range each (any number of reloads may
 *   overlap): the ranges and `from` partition its events, so none comes twice and none is missed.
 * - A Group without members of its own resolves no new event: it only finishes those its
 *   Handovers hold, and leaves its Trigger as soon as they are out (delivered or signalled).
 */
import type { GraphQLFormattedError } from 'graphql';
import type { Logger } from 'pino';
import type { CompiledFilter } from '../event-fields/filter.js';
import type { BrokerMessage, DeliveryGap } from '../events/provider.js';
import type { SubgraphHeaders } from '../engine/headers.js';
import type {
  ExecutionResult,
  GraphQLRequest,
  PreparedSubscription,
  RequestContext,
} from '../engine/types.js';
import type { RouterMetrics } from '../observability/metrics.js';
import type { ResultSink } from './service.js';
import type { Trigger } from './trigger.js';
import { AT_MOST_ONCE, withCursor, withExtension, type Mark } from './cursor.js';

/** What Members, Groups and Triggers ask of the engine that owns them (engine.ts). */
export interface EngineContext {
  readonly metrics: RouterMetrics;
  readonly logger: Logger;
  /** Unresolved events a Group may hold before it drops new ones. */
  readonly maxPendingEvents: number;
  /** Ends a client subscription (idempotent); `then` runs after detaching, if it was live. */
  endMember(member: Member, then?: () => void): void;
  /** Forgets `trigger` and closes its broker subscription. */
  dropTrigger(trigger: Trigger): void;
}

/**
 * One client subscription, and the `Started` handed back to its protocol. It takes the events
 * (Trigger sequence numbers) from `from` on from its `current` Group, and earlier ones from the
 * Groups in `handovers`. Plain fields, no closures: there is one of these per subscribed client.
 */
export class Member {
  /** Until the subscription ends (either way). */
  live = true;
  current: Group | undefined = undefined;
  from = 0;
  /** Ranges that Groups it left still owe it, oldest first; empty outside a re-plan. */
  readonly handovers: Handover[] = [];
  /**
   * Set while its results need more than `sink.next`: a resume catching up (catch-up.ts), or the
   * first result of an at-most-once subscription, which says so. Undefined for everyone else.
   */
  special: SpecialDelivery | undefined = undefined;

  constructor(
    private readonly engine: EngineContext,
    readonly sink: ResultSink,
    /** The client's request, prepared again on a new execution config. */
    readonly request: GraphQLRequest,
    readonly context: RequestContext,
  ) {}

  get ok(): true {
    return true;
  }

  /** Stops the subscription (Started); idempotent. */
  stop(): void {
    this.engine.endMember(this);
  }

  /** One result for this client: `frame` is shared by every client it goes to. */
  take(frame: string, mark: Mark | undefined): void {
    if (this.special === undefined) this.sink.next(frame, mark?.cursor);
    else this.special.take(this, frame, mark);
  }
}

/** A Member's delivery while it is not plain `sink.next` (Member.special). */
export interface SpecialDelivery {
  take(member: Member, frame: string, mark: Mark | undefined): void;
  /** The member leaves its Trigger: work under way for it stops. */
  stop?(): void;
}

/** The first result of a subscription whose events cannot be replayed says `"delivery":"at-most-once"`. */
export const AT_MOST_ONCE_NOTICE: SpecialDelivery = {
  take(member, frame) {
    member.special = undefined;
    // Only Triggers without cursors set this notice: their frames have no extensions yet.
    member.sink.next(withExtension(frame, AT_MOST_ONCE));
  },
};

/**
 * The events `from`..`until` that `group` still owes `member`, which has moved on to a Group of a
 * newer plan: they arrived before the move and are resolving on the old plan.
 */
export interface Handover {
  readonly member: Member;
  readonly group: Group;
  readonly from: number;
  readonly until: number;
}

/**
 * Events a Group's clients miss, between two Trigger sequence numbers: a run of events the Group
 * dropped (`count` of them, `first`..`last`), or a broker outage before event `first` (`count`
 * unknown). Its signal follows the events before it and precedes those after it.
 */
class Gap {
  last: number;
  constructor(
    readonly reason: 'backlog' | DeliveryGap['reason'],
    readonly first: number,
    public count: number | undefined,
  ) {
    this.last = first;
  }

  /** How many of these events a client that takes the events `from`..`until` missed (-1: unknown). */
  missedBy(from: number, until: number): number {
    const count = this.count;
    if (this.reason !== 'backlog') return from <= this.first && this.first <= until ? (count ?? -1) : 0;
    if (count === undefined) return 0;
    const lo = Math.max(this.first, from);
    const hi = Math.min(this.last, until);
    return hi < lo ? 0 : Math.min(count, hi - lo + 1);
  }
}

/** The `next` payload that tells a client it missed events (`dropped` -1: how many is unknown). */
export function eventsDroppedPayload(reason: Gap['reason'], dropped: number): string {
  const message =
    reason === 'backlog'
      ? `${dropped} event${dropped === 1 ? ' was' : 's were'} dropped here: they arrived faster than this subscription's events could be resolved (subscriptions.max_group_backlog); resynchronise if every event matters`
      : 'events may have been missed here: the router lost its connection to the event broker, and events published meanwhile were not delivered; resynchronise if every event matters';
  const extensions =
    dropped < 0 ? { code: 'EVENTS_DROPPED', reason } : { code: 'EVENTS_DROPPED', reason, dropped };
  return JSON.stringify({ errors: [{ message, extensions }] });
}

export class Group {
  /** The members whose `current` Group this is. */
  readonly members = new Set<Member>();
  /** What it still owes members that moved on (their ranges end before its next event). */
  private readonly handovers = new Set<Handover>();
  private tail: Promise<void> = Promise.resolve();
  /** Events accepted and not yet resolved: the backlog. */
  private pending = 0;
  /** Steps on `tail` not yet run (events and loss signals): 0 when every event is out. */
  private queued = 0;
  /** The run of dropped events not yet closed by an accepted one. */
  private dropping: Gap | undefined = undefined;
  /**
   * Results of replayed events by position, shared by the clients that catch up at once (after a
   * drain, hundreds resume from nearly the same cursor): each event is resolved once for them all.
   */
  private replays: Map<string, Promise<string | undefined>> | undefined;
  /** Clients replaying on this Group now; the shared results go when the last one is done. */
  private replayers = 0;
  /** The filter with this Group's arguments bound, and the field paths it reads. */
  private readonly filter: { matches: (data: unknown) => boolean; paths: string[][] } | undefined;

  constructor(
    readonly key: string,
    readonly trigger: Trigger,
    readonly prepared: PreparedSubscription,
    filter: CompiledFilter | undefined,
    private readonly engine: EngineContext,
    /** The headers its subgraph requests carry: every member's are these. */
    private readonly headers: SubgraphHeaders | undefined,
  ) {
    this.filter = filter && { matches: filter.bind(prepared.args), paths: filter.fieldPaths() };
  }

  /** `member` takes this Group's events from `from` on. */
  join(member: Member, from: number): void {
    this.members.add(member);
    member.current = this;
    member.from = from;
  }

  /**
   * `member` moves to another Group, which takes the events after `until`; this one still
   * delivers it those up to `until` that are not out yet.
   */
  handOver(member: Member, until: number): void {
    this.members.delete(member);
    if (this.queued === 0 || member.from > until) return this.releaseIfUnused();
    const handover: Handover = { member, group: this, from: member.from, until };
    this.handovers.add(handover);
    member.handovers.push(handover);
  }

  /** `member` ended or left for another Trigger: it takes nothing more from this Group. */
  leave(member: Member): void {
    this.members.delete(member);
    this.releaseIfUnused();
  }

  /** Ends `handover`: its events are out, or its member is gone. */
  endHandover(handover: Handover): void {
    this.handovers.delete(handover);
    const owed = handover.member.handovers;
    owed.splice(owed.indexOf(handover), 1);
    this.releaseIfUnused();
  }

  /** Leaves the Trigger once nobody takes events from this Group any more. */
  private releaseIfUnused(): void {
    if (this.members.size > 0 || this.handovers.size > 0) return;
    if (this.trigger.groups.get(this.key) === this) this.trigger.groups.delete(this.key);
  }

  /**
   * A step on `tail` has run: every event up to `through` is out (all of them when the tail is
   * empty), so the Handovers that end there are over.
   */
  private settled(through: number): void {
    this.queued--;
    if (this.handovers.size === 0) return;
    for (const handover of this.handovers)
      if (this.queued === 0 || handover.until <= through) this.endHandover(handover);
  }

  /** Starts the work for one event; delivery waits for the events before it. */
  accept(
    event: unknown,
    subject: string,
    dedupe: Map<string, Promise<unknown>>,
    received: number,
    seq: number,
    mark: Mark | undefined,
  ): void {
    if (this.members.size === 0) {
      // Only Handovers left, and they all end before this event: it is nobody's here.
      this.dropping = undefined;
      return;
    }
    if (this.pending >= this.engine.maxPendingEvents) return this.drop(event, seq);
    this.dropping = undefined;
    const work = this.render(event, subject, dedupe);
    // Handled where the tail reaches it; until then a failure must not count as unhandled.
    work.catch(() => undefined);
    this.pending++;
    this.queued++;
    this.tail = this.tail
      .then(() => work)
      .then(
        (json) => {
          this.pending--;
          this.fanOut(json, received, seq, mark);
        },
        (err: unknown) => {
          this.pending--;
          this.engine.logger.error({ err, subject }, 'resolving an event failed');
          this.fanOut(resolveFailedPayload(subject), received, seq, mark);
        },
      );
  }

  /** A client starts (+1) or ends (-1) a replay on this Group. */
  replaying(delta: 1 | -1): void {
    this.replayers += delta;
    if (this.replayers === 0) this.replays = undefined;
  }

  /** A replayed broker message's result text (see `render`), shared by every client replaying it. */
  renderReplayed(
    message: BrokerMessage & { position: NonNullable<BrokerMessage['position']> },
  ): Promise<string | undefined> {
    const key = `${message.position.offset} ${message.position.lane}`;
    const replays = (this.replays ??= new Map());
    let work = replays.get(key);
    if (work) return work;
    let event: unknown;
    try {
      event = JSON.parse(
        Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength).toString('utf8'),
      );
      work = this.render(event, message.subject, new Map());
    } catch {
      work = Promise.resolve(invalidEventPayload(message.subject, 'the event is not valid JSON'));
    }
    work.catch(() => undefined);
    if (this.replayers === 0) return work;
    replays.set(key, work);
    if (replays.size > SHARED_REPLAYS) replays.delete(replays.keys().next().value!);
    return work;
  }

  /**
   * One event's result text for this Group's clients, without cursor: an INVALID_EVENT error for
   * an event its field's type refuses, undefined for one the filter refuses. Live events and
   * replayed ones (catch-up.ts) are rendered alike.
   */
  render(
    event: unknown,
    subject: string,
    dedupe: Map<string, Promise<unknown>>,
  ): Promise<string | undefined> {
    const problem = this.prepared.check(event);
    if (!problem) return this.resolve(event, dedupe);
    this.engine.metrics.droppedMessages.inc({ reason: 'invalid_event' });
    this.engine.logger.warn({ subject, problem }, 'invalid event: delivered as an error to its subscribers');
    return Promise.resolve(invalidEventPayload(subject, problem));
  }

  /** The backlog is full: `event` is dropped, and its clients will be told where and how many. */
  private drop(event: unknown, seq: number): void {
    const filter = this.filter;
    if (filter) {
      // An event the filter refuses on its own fields was never for these clients: nothing is lost.
      const view = filterView(event, filter.paths);
      if (view !== undefined && !filter.matches(view)) return;
    }
    this.engine.metrics.droppedMessages.inc({ reason: 'backlog' }, this.members.size);
    let gap = this.dropping;
    if (!gap) {
      const opened = (this.dropping = gap = new Gap('backlog', seq, 0));
      this.queued++;
      this.tail = this.tail.then(() => this.signal(opened));
    }
    gap.count!++;
    gap.last = seq;
  }

  /** The broker may have lost events before Trigger event `seq`: signalled after those before it. */
  interrupted(reason: DeliveryGap['reason'], seq: number, dropped: number | undefined): void {
    this.dropping = undefined;
    // Without members of its own, the Group owes only events before the gap: nobody to tell.
    if (this.members.size === 0) return;
    const gap = new Gap(reason, seq, dropped);
    this.queued++;
    this.tail = this.tail.then(() => this.signal(gap));
  }

  /**
   * Tells each member what it missed of `gap` (members that joined after it missed nothing; one
   * that moved on, what its Handover range missed).
   */
  private signal(gap: Gap): void {
    if (this.dropping === gap) this.dropping = undefined;
    let json = '';
    let jsonFor = 0;
    const tell = (member: Member, missed: number) => {
      if (!missed) return;
      if (missed !== jsonFor) json = eventsDroppedPayload(gap.reason, (jsonFor = missed));
      member.take(json, undefined);
    };
    for (const member of this.members) tell(member, gap.missedBy(member.from, Number.MAX_SAFE_INTEGER));
    for (const h of this.handovers) tell(h.member, gap.missedBy(h.from, h.until));
    this.settled(gap.reason === 'backlog' ? gap.last : gap.first - 1);
  }

  private async resolve(event: unknown, dedupe: Map<string, Promise<unknown>>): Promise<string | undefined> {
    const filter = this.filter;
    if (filter) {
      // Decide on the event alone when it carries every field the filter reads: no subgraph call.
      const view = filterView(event, filter.paths);
      if (view !== undefined && !filter.matches(view)) return undefined;
      if (view === undefined) {
        let store: Record<string, unknown> | undefined;
        const result = await this.prepared.resolve(event, dedupe, (s) => (store = s), this.headers);
        const data = store?.[this.prepared.source.responseKey];
        if (!filter.matches(filterView(data, filter.paths, true) ?? {})) return undefined;
        return JSON.stringify(result);
      }
    }
    return JSON.stringify(await this.prepared.resolve(event, dedupe, undefined, this.headers));
  }

  /** Sends `json` (undefined: filtered out) to the members whose range holds `seq`. */
  private fanOut(json: string | undefined, received: number, seq: number, mark: Mark | undefined): void {
    if (json !== undefined) {
      const frame = mark ? withCursor(json, mark.cursor) : json;
      for (const member of this.members) if (seq >= member.from) member.take(frame, mark);
      for (const h of this.handovers) if (h.from <= seq && seq <= h.until) h.member.take(frame, mark);
      this.engine.metrics.eventFanoutSeconds.observe((performance.now() - received) / 1000);
    }
    this.settled(seq);
  }
}

/** Replayed results a Group keeps for clients catching up at the same time. */
const SHARED_REPLAYS = 4096;

export function invalidEventPayload(subject: string, problem: string): string {
  return JSON.stringify({
    data: null,
    errors: [
      { message: `invalid event on subject "${subject}": ${problem}`, extensions: { code: 'INVALID_EVENT' } },
    ],
  } satisfies ExecutionResult);
}

/** The result of an event whose resolution failed unexpectedly (the log has the cause). */
export function resolveFailedPayload(subject: string): string {
  const errors: GraphQLFormattedError[] = [{ message: `resolving the event on subject "${subject}" failed` }];
  return JSON.stringify({ data: null, errors });
}

/**
 * The values a filter reads, as a plain object of field names. From the event itself (`stored`
 * false: field names) or from the resolved store (`stored` true: internal fields may live under
 * `__edfs_<name>`). Undefined when a path is missing.
 */
function filterView(data: unknown, paths: string[][], stored = false): Record<string, unknown> | undefined {
  const view: Record<string, unknown> = {};
  for (const path of paths) {
    let value: unknown = data;
    let out: Record<string, unknown> = view;
    for (let i = 0; i < path.length; i++) {
      const name = path[i]!;
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
      const obj = value as Record<string, unknown>;
      value = stored && `__edfs_${name}` in obj ? obj[`__edfs_${name}`] : obj[name];
      if (value === undefined) return undefined;
      if (i === path.length - 1) out[name] = value;
      else out = (out[name] ??= {}) as Record<string, unknown>;
    }
  }
  return view;
}
