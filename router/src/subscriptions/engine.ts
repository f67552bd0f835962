/**
 * The subscription engine: Triggers, Groups and fan-out. Hand-written because it is the product's
 * reason to exist (no library shares broker subscriptions and per-event work across clients).
 *
 * - A Trigger is one broker subscription, keyed by (provider, rendered subjects, stream). It lives
 *   while at least one client subscription holds it (plus an optional grace period), however many
 *   clients and selections share it.
 * - A Group is the set of client subscriptions of one Trigger with the same plan, variables and
 *   subgraph headers (the authorization-relevant context: see engine/headers.ts):
 *   per event, a Group checks, filters, resolves and serializes once; every client of the Group
 *   gets the same string. Entity fetches of one event are deduplicated across Groups.
 * - Events are delivered to a Group in the order they arrived, even though resolutions overlap;
 *   a Group with more than `maxPendingEvents` unresolved events drops new ones (counted), so a
 *   slow subgraph cannot grow memory without bound.
 * - Loss is never silent: where a Group dropped events, or the broker lost some (core NATS across
 *   a reconnect: `onGap`), its clients get a `next` with an `EVENTS_DROPPED` error in order, at the
 *   point of the gap: how many (when known) and why, so they can resynchronise. One run of drops
 *   is one signal; only a run costs an allocation, never an event.
 *
 * - On a new execution config, `replan` prepares every client subscription again: still valid, it
 *   moves to its new Group (on the same Trigger when its subjects did not change, so the broker
 *   subscription is kept); no longer valid, it gets the errors as a result, then `complete`.
 *   Each Trigger numbers its events; a moved subscription takes events up to the move from its old
 *   Group and later ones from the new Group, so it neither misses nor repeats an event.
 *
 * Invariants: `router_engine_triggers` equals the number of live Triggers; every started
 * subscription decrements `router_engine_subscriptions` exactly once; nothing here throws into a
 * broker callback, and a bad event reaches only the subscriptions it was for, as a GraphQL error.
 */
import type { GraphQLFormattedError } from 'graphql';
import type { Logger } from 'pino';
import type {
  BrokerMessage,
  BrokerSubscription,
  DeliveryGap,
  EventProvider,
  SubscribeSpec,
} from '../events/provider.js';
import { compileFilter, type CompiledFilter } from '../event-fields/filter.js';
import { eventSubjects } from '../event-fields/fetches.js';
import type { SubjectLimits } from '../event-fields/subject-templates.js';
import { SubjectError } from '../events/subjects.js';
import type {
  ExecutionResult,
  GraphQLRequest,
  PreparedSubscription,
  RequestContext,
} from '../engine/types.js';
import type { Gateway } from '../engine/gateway.js';
import type { SubgraphHeaders } from '../engine/headers.js';
import type { RouterMetrics } from '../observability/metrics.js';
import type { ResultSink, Started } from './service.js';

export interface SubscriptionEngineOptions {
  providers: Map<string, EventProvider>;
  metrics: RouterMetrics;
  logger: Logger;
  /** Keep an unused Trigger this long before unsubscribing from the broker (0 = at once). */
  triggerGracePeriodMs?: number;
  /** Unresolved events a Group may hold before it drops new ones. */
  maxPendingEvents?: number;
  /** Bounds of rendered subjects (router.yaml `events.subjects`); default DEFAULT_SUBJECT_LIMITS. */
  subjectLimits?: SubjectLimits;
}

/**
 * One client subscription, and the `Started` handed back to its protocol. It takes the events
 * (Trigger sequence numbers) from `from` on from its `current` Group; during a handover also
 * `previousFrom`..`previousUntil` from its `previous` Group. Plain fields, no closures: there is
 * one of these per subscribed client.
 */
class Member {
  /** Until the subscription ends (either way). */
  live = true;
  current: Group | undefined = undefined;
  from = 0;
  previous: Group | undefined = undefined;
  previousFrom = 0;
  previousUntil = 0;

  constructor(
    private readonly engine: SubscriptionEngine,
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

class Group {
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
    private readonly engine: SubscriptionEngine,
    /** The headers its subgraph requests carry: every member's are these. */
    private readonly headers: SubgraphHeaders | undefined,
  ) {
    this.filter = filter && { matches: filter.bind(prepared.args), paths: filter.fieldPaths() };
  }

  /** Starts the work for one event; delivery waits for the events before it. */
  get idle(): boolean {
    return this.pending === 0;
  }

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

class Trigger {
  readonly groups = new Map<string, Group>();
  refs = 0;
  subscription: BrokerSubscription | undefined;
  ready: Promise<void>;
  closed = false;
  graceTimer: NodeJS.Timeout | undefined;
  /** Sequence number of the last event received. */
  seq = 0;

  constructor(
    readonly key: string,
    readonly provider: EventProvider,
    readonly spec: SubscribeSpec,
    private readonly engine: SubscriptionEngine,
  ) {
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
      });
    this.ready.catch((error: unknown) => this.fail(error as Error));
  }

  private onMessage(message: BrokerMessage): void {
    const received = performance.now();
    const { metrics } = this.engine;
    metrics.eventsReceived.inc({ provider_id: this.provider.id });
    let event: unknown;
    try {
      event = JSON.parse(
        Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength).toString('utf8'),
      );
    } catch {
      metrics.droppedMessages.inc({ reason: 'invalid_json' });
      this.engine.logger.warn({ subject: message.subject }, 'invalid event: not JSON');
      const json = invalidEventPayload(message.subject, 'the event is not valid JSON');
      this.seq++;
      for (const group of this.groups.values()) for (const m of group.members) m.sink.next(json);
      return;
    }
    const seq = ++this.seq;
    const dedupe = new Map<string, Promise<unknown>>();
    for (const group of this.groups.values()) group.accept(event, message.subject, dedupe, received, seq);
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
    const members = [...new Set([...this.groups.values()].flatMap((g) => [...g.members]))];
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

export class SubscriptionEngine {
  private readonly triggers = new Map<string, Trigger>();
  readonly metrics: RouterMetrics;
  readonly logger: Logger;
  readonly maxPendingEvents: number;
  private readonly gracePeriodMs: number;
  private readonly filters = new WeakMap<object, CompiledFilter>();

  constructor(private readonly options: SubscriptionEngineOptions) {
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.maxPendingEvents = options.maxPendingEvents ?? 1024;
    this.gracePeriodMs = options.triggerGracePeriodMs ?? 0;
  }

  /** Live Triggers (for tests and the status page). */
  get triggerCount(): number {
    return this.triggers.size;
  }

  subscribe(
    prepared: PreparedSubscription,
    sink: ResultSink,
    request: GraphQLRequest,
    context: RequestContext = {},
  ): Started {
    const member = new Member(this, sink, request, context);
    const problem = this.attach(member, prepared);
    if (problem) return { ok: false, errors: [problem] };
    this.metrics.engineSubscriptions.inc();
    return member;
  }

  /**
   * Serves every live subscription from `gateway` (a new execution config). Subscriptions it can
   * no longer serve get their errors as a result, then `complete`; the others keep streaming.
   */
  replan(gateway: Gateway): { kept: number; ended: number } {
    let kept = 0;
    let ended = 0;
    for (const member of this.liveMembers()) {
      const prepared = gateway.prepare(member.request);
      const errors =
        prepared.kind === 'errors'
          ? prepared.errors
          : prepared.subscription
            ? undefined
            : [{ message: 'the new execution config serves this operation without an event source' }];
      const problem = errors
        ? undefined
        : this.move(member, (prepared as { subscription: PreparedSubscription }).subscription);
      if (errors || problem) {
        const payload = JSON.stringify({ errors: errors ?? [problem] });
        this.endMember(member, () => {
          member.sink.next(payload);
          member.sink.complete();
        });
        ended++;
      } else kept++;
    }
    return { kept, ended };
  }

  /** Joins `member` to the Trigger and Group `prepared` needs; returns a problem or undefined. */
  private attach(member: Member, prepared: PreparedSubscription): GraphQLFormattedError | undefined {
    const target = this.target(prepared);
    if ('message' in target) return target;
    const trigger = this.acquire(target.provider, target.spec);
    const group = this.groupOf(trigger, prepared, target.filter, member.context);
    group.members.add(member);
    trigger.refs++;
    member.current = group;
    member.from = trigger.seq + 1;
    return undefined;
  }

  /** Re-homes a live member; on the same Trigger it is a handover without a gap or a repeat. */
  private move(member: Member, prepared: PreparedSubscription): GraphQLFormattedError | undefined {
    const target = this.target(prepared);
    if ('message' in target) return target;
    const current = member.current!;
    const trigger = current.trigger;
    if (trigger.key !== triggerKeyOf(target.provider, target.spec) || trigger.closed) {
      this.detach(member);
      return this.attach(member, prepared);
    }
    const group = this.groupOf(trigger, prepared, target.filter, member.context);
    if (group === current) return undefined;
    if (member.previous) this.leave(member.previous, member);
    member.previous = current;
    member.previousFrom = member.from;
    member.previousUntil = trigger.seq;
    group.members.add(member);
    member.current = group;
    member.from = trigger.seq + 1;
    if (current.idle) this.finishHandovers(current, trigger.seq);
    return undefined;
  }

  /** Drops members of `group` whose range ended at or before `seq` (their new Group took over). */
  finishHandovers(group: Group, seq: number): void {
    for (const member of group.members) {
      if (member.previous !== group || member.previousUntil > seq) continue;
      this.leave(group, member);
      member.previous = undefined;
    }
  }

  private leave(group: Group, member: Member): void {
    group.members.delete(member);
    const trigger = group.trigger;
    if (group.members.size === 0 && trigger.groups.get(group.key) === group) trigger.groups.delete(group.key);
  }

  private target(
    prepared: PreparedSubscription,
  ):
    | GraphQLFormattedError
    | { provider: EventProvider; spec: SubscribeSpec; filter: CompiledFilter | undefined } {
    const source = prepared.source;
    const provider = this.options.providers.get(source.providerId);
    if (!provider)
      return {
        message: `${source.parentType}.${source.fieldName} uses event provider "${source.providerId}", which is not configured (add it under events.providers.${source.providerKind} in router.yaml)`,
      };
    if ((provider.kind === 'kafka') !== (source.providerKind === 'kafka'))
      return {
        message: `event provider "${source.providerId}" is a ${provider.kind} provider, but ${source.parentType}.${source.fieldName} expects ${source.providerKind}`,
      };
    try {
      const subjects = eventSubjects(source, prepared.args, this.options.subjectLimits);
      const filter = this.filterFor(source);
      return { provider, spec: { subjects: [...new Set(subjects)].sort(), stream: source.stream }, filter };
    } catch (err) {
      // A subject the broker cannot take (too long, a widening value): the client's to fix.
      if (err instanceof SubjectError)
        return {
          message: err.message,
          extensions: { code: 'INVALID_SUBJECT', ...(err.argument ? { argument: err.argument } : {}) },
        };
      return { message: (err as Error).message };
    }
  }

  private acquire(provider: EventProvider, spec: SubscribeSpec): Trigger {
    const key = triggerKeyOf(provider, spec);
    let trigger = this.triggers.get(key);
    if (!trigger) {
      trigger = new Trigger(key, provider, spec, this);
      this.triggers.set(key, trigger);
      this.metrics.engineTriggers.inc();
    }
    clearTimeout(trigger.graceTimer);
    trigger.graceTimer = undefined;
    return trigger;
  }

  private groupOf(
    trigger: Trigger,
    prepared: PreparedSubscription,
    filter: CompiledFilter | undefined,
    context: RequestContext,
  ): Group {
    const headers = prepared.headers(context);
    const key = groupKeyOf(prepared, headers);
    let group = trigger.groups.get(key);
    if (!group) trigger.groups.set(key, (group = new Group(key, trigger, prepared, filter, this, headers)));
    return group;
  }

  /** Takes `member` off its Trigger (both Groups during a handover) and releases the Trigger. */
  private detach(member: Member): void {
    const { current, previous } = member;
    if (previous) this.leave(previous, member);
    member.previous = undefined;
    if (!current) return;
    member.current = undefined;
    this.leave(current, member);
    const trigger = current.trigger;
    trigger.refs--;
    if (trigger.refs === 0 && !trigger.closed) {
      if (this.gracePeriodMs > 0)
        trigger.graceTimer = setTimeout(() => this.dropTrigger(trigger), this.gracePeriodMs);
      else this.dropTrigger(trigger);
    }
  }

  /** Ends a client subscription (idempotent); `then` runs after detaching, if it was live. */
  endMember(member: Member, then?: () => void): void {
    if (!member.live) return;
    member.live = false;
    this.metrics.engineSubscriptions.dec();
    this.detach(member);
    then?.();
  }

  dropTrigger(trigger: Trigger): void {
    if (this.triggers.get(trigger.key) !== trigger) return;
    this.triggers.delete(trigger.key);
    this.metrics.engineTriggers.dec();
    void trigger.close();
  }

  /** Ends every subscription with `complete` and closes every broker subscription. */
  async close(): Promise<void> {
    for (const member of this.liveMembers()) this.endMember(member, () => member.sink.complete());
    await Promise.all([...this.triggers.values()].map((t) => (this.dropTrigger(t), t.close())));
  }

  /**
   * Every live client subscription, each once (a member is in two Groups during a handover). Kept
   * in the Groups only, not in a set of its own: this is per subscriber, and only reloads and
   * shutdown need the whole list.
   */
  private liveMembers(): Member[] {
    const all = new Set<Member>();
    for (const trigger of this.triggers.values())
      for (const group of trigger.groups.values()) for (const member of group.members) all.add(member);
    return [...all];
  }

  private filterFor(source: PreparedSubscription['source']): CompiledFilter | undefined {
    if (source.filter === undefined || source.filter === null) return undefined;
    const condition = source.filter as object;
    let compiled = this.filters.get(condition);
    if (!compiled)
      this.filters.set(
        condition,
        (compiled = compileFilter(condition, { field: `${source.parentType}.${source.fieldName}` })),
      );
    return compiled;
  }
}

function triggerKeyOf(provider: EventProvider, spec: SubscribeSpec): string {
  return JSON.stringify([provider.id, spec.subjects, spec.stream ?? null]);
}

/**
 * Same plan object, same variables and same subgraph headers (credentials, from the `headers`
 * rules): the same result for every event.
 */
const planIds = new WeakMap<object, number>();
let nextPlanId = 1;
function groupKeyOf(prepared: PreparedSubscription, headers: SubgraphHeaders | undefined): string {
  let id = planIds.get(prepared.plan);
  if (id === undefined) planIds.set(prepared.plan, (id = nextPlanId++));
  return `${id}:${JSON.stringify(prepared.variables)}${headers ? `:${JSON.stringify(headers)}` : ''}`;
}

function invalidEventPayload(subject: string, problem: string): string {
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
