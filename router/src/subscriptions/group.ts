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
 * - A member takes the Trigger's events `from` on from its `current` Group and, during a re-plan
 *   handover, `previousFrom`..`previousUntil` from its `previous` Group: none twice, none missed.
 */
import type { GraphQLFormattedError } from 'graphql';
import type { Logger } from 'pino';
import type { CompiledFilter } from '../event-fields/filter.js';
import type { DeliveryGap } from '../events/provider.js';
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

/** What Members, Groups and Triggers ask of the engine that owns them (engine.ts). */
export interface EngineContext {
  readonly metrics: RouterMetrics;
  readonly logger: Logger;
  /** Unresolved events a Group may hold before it drops new ones. */
  readonly maxPendingEvents: number;
  /** Ends a client subscription (idempotent); `then` runs after detaching, if it was live. */
  endMember(member: Member, then?: () => void): void;
  /** Drops members of `group` whose handover range ended at or before `seq`. */
  finishHandovers(group: Group, seq: number): void;
  /** Forgets `trigger` and closes its broker subscription. */
  dropTrigger(trigger: Trigger): void;
}

/**
 * One client subscription, and the `Started` handed back to its protocol. It takes the events
 * (Trigger sequence numbers) from `from` on from its `current` Group; during a handover also
 * `previousFrom`..`previousUntil` from its `previous` Group. Plain fields, no closures: there is
 * one of these per subscribed client.
 */
export class Member {
  /** Until the subscription ends (either way). */
  live = true;
  current: Group | undefined = undefined;
  from = 0;
  previous: Group | undefined = undefined;
  previousFrom = 0;
  previousUntil = 0;

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
  readonly members = new Set<Member>();
  private tail: Promise<void> = Promise.resolve();
  private pending = 0;
  /** The run of dropped events not yet closed by an accepted one. */
  private dropping: Gap | undefined = undefined;
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

  /** No event of this Group is still resolving. */
  get idle(): boolean {
    return this.pending === 0;
  }

  /** Starts the work for one event; delivery waits for the events before it. */
  accept(
    event: unknown,
    subject: string,
    dedupe: Map<string, Promise<unknown>>,
    received: number,
    seq: number,
  ): void {
    const { metrics } = this.engine;
    if (this.pending >= this.engine.maxPendingEvents) return this.drop(event, seq);
    this.dropping = undefined;
    const problem = this.prepared.check(event);
    let work: Promise<string | undefined>;
    if (problem) {
      metrics.droppedMessages.inc({ reason: 'invalid_event' });
      this.engine.logger.warn(
        { subject, problem },
        'invalid event: delivered as an error to its subscribers',
      );
      work = Promise.resolve(invalidEventPayload(subject, problem));
    } else {
      work = this.resolve(event, dedupe);
    }
    this.pending++;
    this.tail = this.tail
      .then(() => work)
      .then(
        (json) => {
          this.pending--;
          this.fanOut(json, received, seq);
        },
        (err: unknown) => {
          this.pending--;
          this.engine.logger.error({ err, subject }, 'resolving an event failed');
          this.fanOut(errorPayload(`resolving the event on subject "${subject}" failed`), received, seq);
        },
      );
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
      this.tail = this.tail.then(() => this.signal(opened));
    }
    gap.count!++;
    gap.last = seq;
  }

  /** The broker may have lost events before Trigger event `seq`: signalled after those before it. */
  interrupted(reason: DeliveryGap['reason'], seq: number, dropped: number | undefined): void {
    this.dropping = undefined;
    const gap = new Gap(reason, seq, dropped);
    this.tail = this.tail.then(() => this.signal(gap));
  }

  /** Tells each member what it missed of `gap` (members that joined after it missed nothing). */
  private signal(gap: Gap): void {
    if (this.dropping === gap) this.dropping = undefined;
    let json = '';
    let jsonFor = 0;
    for (const member of this.members) {
      const missed =
        member.current === this
          ? gap.missedBy(member.from, Number.MAX_SAFE_INTEGER)
          : gap.missedBy(member.previousFrom, member.previousUntil);
      if (!missed) continue;
      if (missed !== jsonFor) json = eventsDroppedPayload(gap.reason, (jsonFor = missed));
      member.sink.next(json);
    }
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
  private fanOut(json: string | undefined, received: number, seq: number): void {
    let handedOver = false;
    for (const member of this.members) {
      if (member.current === this) {
        if (json !== undefined && seq >= member.from) member.sink.next(json);
      } else {
        if (json !== undefined && seq >= member.previousFrom && seq <= member.previousUntil)
          member.sink.next(json);
        if (seq >= member.previousUntil) handedOver = true;
      }
    }
    if (json !== undefined)
      this.engine.metrics.eventFanoutSeconds.observe((performance.now() - received) / 1000);
    if (handedOver) this.engine.finishHandovers(this, seq);
  }
}

export function invalidEventPayload(subject: string, problem: string): string {
  return JSON.stringify({
    data: null,
    errors: [
      { message: `invalid event on subject "${subject}": ${problem}`, extensions: { code: 'INVALID_EVENT' } },
    ],
  } satisfies ExecutionResult);
}

function errorPayload(message: string): string {
  const errors: GraphQLFormattedError[] = [{ message }];
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
