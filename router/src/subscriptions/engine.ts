/**
 * The subscription engine: the registry of Triggers and Groups, and the life of each client
 * subscription in them. Hand-written because it is the product's reason to exist (no library
 * shares broker subscriptions and per-event work across clients).
 *
 * - A Trigger (trigger.ts) is one broker subscription, keyed by (provider, rendered subjects,
 *   stream). It lives while at least one client subscription holds it, plus the grace period
 *   (`triggerGracePeriodMs`): a subscriber arriving within it reuses the broker subscription.
 * - Subject templates may read the client's verified claims (`{{ request.auth.claims.tenant }}`):
 *   clients with different claims then render different subjects, so different Triggers. A claim
 *   template for an anonymous client, or a token without the claim, refuses the subscription
 *   before any broker call (`UNAUTHENTICATED`, `MISSING_CLAIM`).
 * - A Group (group.ts) is the set of client subscriptions of one Trigger with the same plan
 *   (field-level authorization prunes a separate plan per denial), variables and subgraph headers
 *   (the authorization-relevant context: see engine/headers.ts): per event it checks, filters, resolves and serializes once, delivers in arrival order, drops
 *   beyond its backlog and signals every loss (`EVENTS_DROPPED`). Entity fetches of one event are
 *   deduplicated across Groups.
 * - Resumable subscriptions (a JetStream stream, Kafka): every result carries a cursor, the
 *   broker's position (cursor.ts). A client that subscribes with one (`extensions.cursor`, or an
 *   SSE `Last-Event-ID`) joins its Group like any other and catches up first (catch-up.ts). On a
 *   provider that keeps no events (core NATS, memory) the first result says
 *   `"delivery":"at-most-once"`, and a cursor is refused (RESUME_UNSUPPORTED), never ignored.
 * - On a new execution config, `replan` prepares every client subscription again: still valid, it
 *   moves to its new Group (on the same Trigger when its subjects did not change, so the broker
 *   subscription is kept); no longer valid, it gets the errors as a result, then `complete`.
 *   Each Trigger numbers its events; a moved subscription takes events up to the move from its old
 *   Group and later ones from the new Group, so it neither misses nor repeats an event, however
 *   many reloads overlap (one Handover range per Group still finishing: group.ts). Within one
 *   plan's range events keep their order; a newer plan's events may reach the client before those
 *   an older plan is still resolving.
 *
 * Invariants: `router_engine_triggers` equals the number of live Triggers; every started
 * subscription decrements `router_engine_subscriptions` exactly once; nothing here throws into a
 * broker callback, and a bad event reaches only the subscriptions it was for, as a GraphQL error.
 */
import type { GraphQLFormattedError } from 'graphql';
import type { Logger } from 'pino';
import type { EventProvider, SubscribeSpec } from '../events/provider.js';
import { compileFilter, type CompiledFilter } from '../event-fields/filter.js';
import { ClaimError, renderSubjects, type SubjectLimits } from '../event-fields/subject-templates.js';
import { SubjectError } from '../events/subjects.js';
import type { GraphQLRequest, PreparedSubscription, RequestContext } from '../engine/types.js';
import type { Gateway } from '../engine/gateway.js';
import type { SubgraphHeaders } from '../engine/headers.js';
import type { RouterMetrics } from '../observability/metrics.js';
import { CursorError } from '../events/provider.js';
import {
  CatchUp,
  ReplaySlots,
  cursorErrorOf,
  resumeOutcomeOf,
  type CatchUpHost,
  type CatchUpLimits,
} from './catch-up.js';
import { decodeCursor, type Cursor } from './cursor.js';
import { AT_MOST_ONCE_NOTICE, Group, Member, type EngineContext } from './group.js';
import type { ResultSink, Started } from './service.js';
import { Trigger, triggerKeyOf } from './trigger.js';

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
  /** Bounds of one resuming client's catch-up (router.yaml `subscriptions.resume`). */
  resume?: CatchUpLimits;
}

/**
 * Replayed events resolving at once, all resuming clients together: a burst of resumes queues
 * behind them instead of taking every subgraph connection from the live Groups (the subgraph
 * client pools 64 connections per subgraph).
 */
const REPLAY_CONCURRENCY = 32;

/** Default `subscriptions.resume`. */
export const DEFAULT_RESUME_LIMITS: CatchUpLimits = { maxEvents: 10_000, maxBytes: 16 * 1024 * 1024 };

export class SubscriptionEngine implements EngineContext, CatchUpHost {
  private readonly triggers = new Map<string, Trigger>();
  readonly metrics: RouterMetrics;
  readonly logger: Logger;
  readonly maxPendingEvents: number;
  readonly limits: CatchUpLimits;
  readonly replaySlots = new ReplaySlots(REPLAY_CONCURRENCY);
  private readonly gracePeriodMs: number;
  private readonly filters = new WeakMap<object, CompiledFilter>();

  constructor(private readonly options: SubscriptionEngineOptions) {
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.maxPendingEvents = options.maxPendingEvents ?? 1024;
    this.gracePeriodMs = options.triggerGracePeriodMs ?? 0;
    this.limits = options.resume ?? DEFAULT_RESUME_LIMITS;
  }

  /** Live Triggers (for tests and the status page). */
  get triggerCount(): number {
    return this.triggers.size;
  }

  /** Live Groups, those still finishing a handover included (for tests). */
  get groupCount(): number {
    let count = 0;
    for (const trigger of this.triggers.values()) count += trigger.groups.size;
    return count;
  }

  subscribe(
    prepared: PreparedSubscription,
    sink: ResultSink,
    request: GraphQLRequest,
    context: RequestContext = {},
  ): Started {
    let cursor: Cursor | undefined;
    try {
      cursor = cursorOf(request, context);
    } catch (error) {
      if (!(error instanceof CursorError)) throw error;
      this.metrics.subscriptionResumes.inc({ result: 'cursor_invalid' });
      return { ok: false, errors: [cursorErrorOf(error.problem, error.message)] };
    }
    const member = new Member(this, sink, request, context);
    const problem = this.attach(member, prepared);
    if (problem) return { ok: false, errors: [problem] };
    const trigger = member.current!.trigger;
    const refusal = cursor ? resumeProblem(trigger, cursor) : undefined;
    if (refusal) {
      this.metrics.subscriptionResumes.inc({ result: resumeOutcomeOf(refusal) });
      this.detach(member);
      return { ok: false, errors: [refusal] };
    }
    this.metrics.engineSubscriptions.inc();
    if (cursor) {
      const catchUp = new CatchUp(member, trigger, cursor, this);
      member.special = catchUp;
      catchUp.start();
    } else if (!trigger.resumable) member.special = AT_MOST_ONCE_NOTICE;
    return member;
  }

  /** Ends a subscription with `errors` (CatchUpHost). */
  fail(member: Member, errors: GraphQLFormattedError[]): void {
    this.endMember(member, () => member.sink.error(errors));
  }

  /**
   * Serves every live subscription from `gateway` (a new execution config). Subscriptions it can
   * no longer serve get their errors as a result, then `complete`; the others keep streaming.
   */
  replan(gateway: Pick<Gateway, 'prepare'>): { kept: number; ended: number } {
    let kept = 0;
    let ended = 0;
    for (const member of this.liveMembers()) {
      const prepared = gateway.prepare(member.request, member.context);
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
    const target = this.target(prepared, member.context);
    if ('message' in target) return target;
    const trigger = this.acquire(target.provider, target.spec);
    this.groupOf(trigger, prepared, target.filter, member.context).join(member, trigger.seq + 1);
    trigger.refs++;
    return undefined;
  }

  /** Re-homes a live member; on the same Trigger it is a handover without a gap or a repeat. */
  private move(member: Member, prepared: PreparedSubscription): GraphQLFormattedError | undefined {
    const target = this.target(prepared, member.context);
    if ('message' in target) return target;
    const current = member.current!;
    const trigger = current.trigger;
    if (trigger.key !== triggerKeyOf(target.provider, target.spec) || trigger.closed) {
      if (member.special instanceof CatchUp)
        return cursorErrorOf(
          'invalid',
          'the new execution config reads other events than the cursor is for, while the subscription was catching up',
        );
      this.detach(member);
      return this.attach(member, prepared);
    }
    const group = this.groupOf(trigger, prepared, target.filter, member.context);
    if (group === current) return undefined;
    current.handOver(member, trigger.seq);
    group.join(member, trigger.seq + 1);
    return undefined;
  }

  private target(
    prepared: PreparedSubscription,
    context: RequestContext,
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
      const subjects = renderSubjects(source.subjects, prepared.args, source.providerKind, {
        allowWildcards: true,
        ...(this.options.subjectLimits ? { limits: this.options.subjectLimits } : {}),
        ...(context.auth ? { claims: context.auth.claims } : {}),
      });
      const filter = this.filterFor(source);
      return { provider, spec: { subjects: [...new Set(subjects)].sort(), stream: source.stream }, filter };
    } catch (err) {
      if (err instanceof ClaimError)
        return {
          message: err.message,
          extensions: { code: CLAIM_ERROR_CODES[err.reason], claim: err.claim },
        };
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

  /** Takes `member` off its Trigger (every Group it is in) and releases the Trigger. */
  private detach(member: Member): void {
    member.special?.stop?.();
    member.special = undefined;
    for (const handover of [...member.handovers]) handover.group.endHandover(handover);
    const current = member.current;
    if (!current) return;
    member.current = undefined;
    current.leave(member);
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
   * Every live client subscription, each once (it is a member of its current Group only). Kept in
   * the Groups, not in a set of its own: this is per subscriber, and only reloads and shutdown
   * need the whole list.
   */
  private liveMembers(): Member[] {
    const all: Member[] = [];
    for (const trigger of this.triggers.values())
      for (const group of trigger.groups.values()) for (const member of group.members) all.push(member);
    return all;
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

/**
 * The cursor a client resumes from: its request's `extensions.cursor`, else the `Last-Event-ID`
 * header EventSource sends by itself when it reconnects. Throws a CursorError for a bad one.
 */
function cursorOf(request: GraphQLRequest, context: RequestContext): Cursor | undefined {
  const fromRequest = request.extensions?.cursor;
  const header = context.headers?.['last-event-id'];
  const text = fromRequest ?? (Array.isArray(header) ? header[0] : header);
  return text === undefined || text === null ? undefined : decodeCursor(text);
}

/** Why `cursor` cannot resume a subscription on `trigger`, if it cannot. */
function resumeProblem(trigger: Trigger, cursor: Cursor): GraphQLFormattedError | undefined {
  if (!trigger.resumable)
    return cursorErrorOf(
      'unsupported',
      `its events come from ${trigger.provider.kind === 'nats' ? 'core NATS' : `a ${trigger.provider.kind} provider`} (provider "${trigger.provider.id}"), which keeps no events to replay: delivery is at-most-once; subscribe without a cursor, or read the events from a JetStream stream or Kafka`,
    );
  const { source } = trigger;
  if (cursor.providerId !== source.providerId || cursor.stream !== source.stream)
    return cursorErrorOf(
      'invalid',
      `the cursor is for ${describeSource(cursor)}, but this subscription reads ${describeSource(source)}`,
    );
  return undefined;
}

function describeSource(source: { providerId: string; stream?: string }): string {
  return `provider "${source.providerId}"${source.stream ? `, stream "${source.stream}"` : ''}`;
}

/** `extensions.code` of a subscription refused for a claim its subject needs. */
const CLAIM_ERROR_CODES: Record<ClaimError['reason'], string> = {
  anonymous: 'UNAUTHENTICATED',
  missing: 'MISSING_CLAIM',
  invalid: 'INVALID_SUBJECT',
};

/**
 * Same plan object, same variables and same subgraph headers (credentials, from the `headers`
 * rules): the same result for every event. Field-level authorization needs no key of its own: a
 * client denied fields gets the plan pruned for exactly that denial (engine/gateway.ts), so
 * clients denied differently never share a plan object.
 */
const planIds = new WeakMap<object, number>();
let nextPlanId = 1;
function groupKeyOf(prepared: PreparedSubscription, headers: SubgraphHeaders | undefined): string {
  let id = planIds.get(prepared.plan);
  if (id === undefined) planIds.set(prepared.plan, (id = nextPlanId++));
  return `${id}:${JSON.stringify(prepared.variables)}${headers ? `:${JSON.stringify(headers)}` : ''}`;
}
