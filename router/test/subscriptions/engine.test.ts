/**
 * The subscription engine on the in-process memory broker (a real provider: real broker
 * subscriptions, asynchronous delivery in publish order): a slow Group drops what exceeds its
 * backlog and says so while the other Groups of its Trigger miss nothing; a Trigger outlives its
 * last subscriber by the grace period and is reused within it; and on a new execution config
 * (`replan`) live subscriptions move to their new plan without missing or repeating an event,
 * however many reloads overlap, while an old plan finishes only the events it still owes.
 *
 * The plans are written here: each stands for one execution config, names itself in its results
 * (`e1@v1`) and resolves at once or when the test releases it, so backlogs fill exactly when the
 * test says. Waits are for events (the broker's turns), never for wall-clock time; the grace
 * period runs on fake timers.
 */
import { afterEach, describe, expect, it, jest } from '@jest/globals';
import type { Plan } from '../../src/engine/plan.js';
import type {
  ExecutionResult,
  GraphQLRequest,
  PreparedRequest,
  PreparedSubscription,
} from '../../src/engine/types.js';
import { MemoryProvider } from '../../src/events/memory/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { createRouterMetrics, type RouterMetrics } from '../../src/observability/metrics.js';
import { SubscriptionEngine } from '../../src/subscriptions/engine.js';
import type { Started } from '../../src/subscriptions/service.js';

const REQUEST: GraphQLRequest = { query: 'subscription { messageAdded { id } }' };

/**
 * One execution config's plan of `messageAdded` on one subject: what a Gateway built from that
 * config prepares for the test subscription. Results read `{"id": ..., "plan": name}`.
 */
class Config {
  /** A new config plans anew: a new plan object, so a new Group. */
  private readonly plan = {} as Plan;
  /** Events this plan was asked to resolve (once per Group and event). */
  resolutions = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    readonly name: string,
    private readonly options: { subject?: string; held?: boolean; refuse?: string } = {},
  ) {}

  /** `Gateway.prepare` for the test subscription (the Group follows its variables). */
  prepare(request: GraphQLRequest): PreparedRequest {
    if (this.options.refuse) return { kind: 'errors', errors: [{ message: this.options.refuse }] };
    return {
      kind: 'operation',
      operationKind: 'subscription',
      query: request.query,
      execute: () => Promise.reject(new Error('a subscription is served by the engine')),
      subscription: this.subscription(request.variables ?? {}),
    };
  }

  subscription(variables: Record<string, unknown> = {}): PreparedSubscription {
    return {
      plan: this.plan,
      variables,
      args: {},
      source: {
        type: 'subscribe',
        providerKind: 'nats',
        providerId: 'default',
        subjects: [this.options.subject ?? 'room'],
        parentType: 'Subscription',
        fieldName: 'messageAdded',
        responseKey: 'messageAdded',
        args: [],
        returnType: 'Message',
      },
      check: () => undefined,
      headers: () => undefined,
      resolve: (event) => {
        this.resolutions++;
        const result: ExecutionResult = {
          data: { messageAdded: { id: (event as { id: string }).id, plan: this.name } },
        };
        if (!this.options.held) return Promise.resolve(result);
        return new Promise((resolve) => this.waiting.push(() => resolve(result)));
      },
    };
  }

  /** Lets every held resolution finish, and the deliveries after them run. */
  async release(): Promise<void> {
    while (this.waiting.length > 0) {
      for (const go of this.waiting.splice(0)) go();
      await turn();
    }
  }
}

/** A client of the engine: what it received, in order. */
class Client {
  /** `e1@v1` per result, `gap:N:reason` per EVENTS_DROPPED signal, `errors:message`, `complete`. */
  readonly timeline: string[] = [];
  readonly gaps: unknown[] = [];
  started: Started | undefined;

  readonly sink = {
    next: (json: string): boolean => {
      const result = JSON.parse(json) as {
        data?: { messageAdded: { id: string; plan: string } };
        errors?: { message: string; extensions?: { code?: string; reason?: string; dropped?: number } }[];
      };
      const error = result.errors?.[0];
      if (result.data) this.timeline.push(`${result.data.messageAdded.id}@${result.data.messageAdded.plan}`);
      else if (error?.extensions?.code === 'EVENTS_DROPPED') {
        this.gaps.push(result);
        this.timeline.push(`gap:${error.extensions.dropped ?? '?'}:${error.extensions.reason}`);
      } else this.timeline.push(`errors:${error?.message}`);
      return true;
    },
    error: (errors: readonly { message: string }[]): void => {
      this.timeline.push(`error:${errors[0]?.message}`);
    },
    complete: (): void => {
      this.timeline.push('complete');
    },
  };

  /** The results received, whatever their order. */
  events(): string[] {
    return this.timeline.filter((entry) => entry.includes('@')).sort();
  }

  stop(): void {
    if (this.started?.ok) this.started.stop();
  }
}

let brokers = 0;

function setup(options: { maxPendingEvents?: number; triggerGracePeriodMs?: number } = {}) {
  // A broker of its own per test: the memory broker is one per name and process.
  const provider = new MemoryProvider({ id: 'default', url: `memory://engine-test-${++brokers}` });
  const subscribe = jest.spyOn(provider, 'subscribe');
  const metrics = createRouterMetrics({ processMetrics: false });
  const engine = new SubscriptionEngine({
    providers: new Map([['default', provider]]),
    metrics,
    logger: createLogger({ level: 'silent' }),
    ...options,
  });
  const join = (config: Config, variables?: Record<string, unknown>): Client => {
    const client = new Client();
    client.started = engine.subscribe(config.subscription(variables), client.sink, {
      ...REQUEST,
      ...(variables ? { variables } : {}),
    });
    expect(client.started.ok).toBe(true);
    return client;
  };
  const publish = (id: string, subject = 'room') =>
    provider.broker.publish(subject, JSON.stringify({ __typename: 'Message', id }));
  /** Open broker subscriptions. */
  const brokerSubscriptions = () => provider.broker.subscriptionCount();
  return { provider, subscribe, metrics, engine, join, publish, brokerSubscriptions };
}

/** One turn of the event loop: the memory broker delivers what was published before it. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Waits, turn by turn, until `done` holds; fails naming `what` if it never does. */
async function until(done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (done()) return;
    await turn();
  }
  throw new Error(`still waiting for ${what}`);
}

async function droppedForBacklog(metrics: RouterMetrics): Promise<number> {
  const { values } = await metrics.droppedMessages.get();
  return values.find((v) => v.labels.reason === 'backlog')?.value ?? 0;
}

describe('a slow Group whose backlog is full', () => {
  it('drops the events beyond max_group_backlog and signals EVENTS_DROPPED; the other Groups of the Trigger get every event', async () => {
    const { engine, metrics, join, publish, brokerSubscriptions, subscribe } = setup({ maxPendingEvents: 2 });
    const slowPlan = new Config('slow', { held: true });
    const fastPlan = new Config('fast');
    const slow = [join(slowPlan), join(slowPlan)];
    const fast = join(fastPlan);
    await until(() => brokerSubscriptions() === 1, 'the broker subscription');
    expect(engine.triggerCount).toBe(1);
    expect(subscribe).toHaveBeenCalledTimes(1);

    // One event per turn: the fast Group keeps up; the slow one holds e1 and e2 and drops e3..e6.
    for (let i = 1; i <= 6; i++) {
      publish(`e${i}`);
      await until(() => fast.timeline.length === i, `e${i} at the fast client`);
    }
    expect(slowPlan.resolutions).toBe(2);
    for (const client of slow) expect(client.timeline).toEqual([]);

    await slowPlan.release();
    publish('e7');
    await until(() => fast.timeline.length === 7, 'e7 at the fast client');
    await until(() => slowPlan.resolutions === 3, 'e7 at the slow Group');
    await slowPlan.release();

    expect(fast.timeline).toEqual([
      'e1@fast',
      'e2@fast',
      'e3@fast',
      'e4@fast',
      'e5@fast',
      'e6@fast',
      'e7@fast',
    ]);
    for (const client of slow) {
      expect(client.timeline).toEqual(['e1@slow', 'e2@slow', 'gap:4:backlog', 'e7@slow']);
      expect(client.gaps).toEqual([
        {
          errors: [
            {
              message: expect.stringContaining('4 events were dropped here'),
              extensions: { code: 'EVENTS_DROPPED', reason: 'backlog', dropped: 4 },
            },
          ],
        },
      ]);
    }
    // Counted once per client that missed them.
    expect(await droppedForBacklog(metrics)).toBe(8);
  });
});

describe('a Trigger after its last subscriber leaves', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  it('keeps its broker subscription for the grace period, serves a subscriber arriving within it, and closes after it', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'clearImmediate', 'nextTick', 'queueMicrotask'] });
    const { engine, join, publish, brokerSubscriptions, subscribe } = setup({ triggerGracePeriodMs: 30_000 });
    const plan = new Config('v1');

    const first = join(plan);
    await until(() => brokerSubscriptions() === 1, 'the broker subscription');
    first.stop();
    jest.advanceTimersByTime(29_999);
    await turn();
    expect(engine.triggerCount).toBe(1);
    expect(brokerSubscriptions()).toBe(1);

    // Within the grace period: the same broker subscription serves the newcomer.
    const second = join(plan);
    publish('e1');
    await until(() => second.timeline.length === 1, 'e1 at the second subscriber');
    expect(second.timeline).toEqual(['e1@v1']);
    expect(first.timeline).toEqual([]);
    expect(subscribe).toHaveBeenCalledTimes(1);
    expect(brokerSubscriptions()).toBe(1);

    // A held Trigger has no grace timer running.
    jest.advanceTimersByTime(60_000);
    await turn();
    expect(engine.triggerCount).toBe(1);
    expect(brokerSubscriptions()).toBe(1);

    second.stop();
    jest.advanceTimersByTime(29_999);
    await turn();
    expect(brokerSubscriptions()).toBe(1);
    jest.advanceTimersByTime(1);
    expect(engine.triggerCount).toBe(0);
    await until(() => brokerSubscriptions() === 0, 'the broker subscription to close');

    // After the grace period a subscriber gets a broker subscription of its own.
    const third = join(plan);
    await until(() => brokerSubscriptions() === 1, 'a new broker subscription');
    expect(subscribe).toHaveBeenCalledTimes(2);
    publish('e2');
    await until(() => third.timeline.length === 1, 'e2 at the third subscriber');
    expect(third.timeline).toEqual(['e2@v1']);
  });

  it('without a grace period, closes its broker subscription with the last subscriber', async () => {
    const { engine, join, brokerSubscriptions } = setup();
    const plan = new Config('v1');
    const clients = [join(plan), join(plan)];
    await until(() => brokerSubscriptions() === 1, 'the broker subscription');
    clients[0]!.stop();
    await turn();
    expect(brokerSubscriptions()).toBe(1);
    clients[1]!.stop();
    expect(engine.triggerCount).toBe(0);
    await until(() => brokerSubscriptions() === 0, 'the broker subscription to close');
  });
});

describe('replan: live subscriptions on a new execution config', () => {
  it('events in flight at the swap come from the old plan, later ones from the new, each exactly once, on the same broker subscription', async () => {
    const { engine, join, publish, brokerSubscriptions, subscribe } = setup();
    const v1 = new Config('v1', { held: true });
    const v2 = new Config('v2', { held: true });
    const clients = [join(v1), join(v1)];
    await until(() => brokerSubscriptions() === 1, 'the broker subscription');

    for (const id of ['e1', 'e2', 'e3']) publish(id);
    await until(() => v1.resolutions === 3, 'e1..e3 resolving on v1');
    expect(engine.replan(v2)).toEqual({ kept: 2, ended: 0 });
    for (const id of ['e4', 'e5']) publish(id);
    await until(() => v2.resolutions === 2, 'e4, e5 resolving on v2');

    // The new plan finishes first: its events may arrive before the old plan's, never instead.
    await v2.release();
    await v1.release();
    for (const client of clients)
      expect(client.events()).toEqual(['e1@v1', 'e2@v1', 'e3@v1', 'e4@v2', 'e5@v2']);

    // The handover is over: the old plan resolves nothing more.
    const v1Resolutions = v1.resolutions;
    publish('e6');
    await until(() => v2.resolutions === 3, 'e6 resolving on v2');
    await v2.release();
    for (const client of clients) expect(client.timeline.slice(5)).toEqual(['e6@v2']);
    expect(v1.resolutions).toBe(v1Resolutions);
    expect(subscribe).toHaveBeenCalledTimes(1);
    expect(brokerSubscriptions()).toBe(1);
  });

  it('an idle subscription takes the events after the swap from the new plan alone', async () => {
    const { engine, join, publish, brokerSubscriptions } = setup();
    const v1 = new Config('v1');
    const v2 = new Config('v2');
    const client = join(v1);
    await until(() => brokerSubscriptions() === 1, 'the broker subscription');
    publish('e1');
    await until(() => client.timeline.length === 1, 'e1');
    expect(engine.replan(v2)).toEqual({ kept: 1, ended: 0 });
    publish('e2');
    publish('e3');
    await until(() => client.timeline.length === 3, 'e2, e3');
    expect(client.timeline).toEqual(['e1@v1', 'e2@v2', 'e3@v2']);
    expect(v1.resolutions).toBe(1);
  });

  it('events the old Group dropped before the swap are signalled once, with their count, and it delivers nothing after the swap', async () => {
    const { engine, join, publish, brokerSubscriptions } = setup({ maxPendingEvents: 1 });
    const v1 = new Config('v1', { held: true });
    const v2 = new Config('v2', { held: true });
    const client = join(v1);
    await until(() => brokerSubscriptions() === 1, 'the broker subscription');
    // One turn: e1 fills the backlog, e2 and e3 are dropped.
    for (const id of ['e1', 'e2', 'e3']) publish(id);
    await until(() => v1.resolutions === 1, 'e1 resolving on v1');
    await turn();
    engine.replan(v2);
    publish('e4');
    await until(() => v2.resolutions === 1, 'e4 resolving on v2');
    await v1.release();
    await v2.release();
    expect(client.timeline).toEqual(['e1@v1', 'gap:2:backlog', 'e4@v2']);
    // The old Group took no event after the swap into its range: e5 comes from the new plan alone.
    publish('e5');
    await until(() => v2.resolutions === 2, 'e5 resolving on v2');
    await v1.release();
    await v2.release();
    expect(client.timeline).toEqual(['e1@v1', 'gap:2:backlog', 'e4@v2', 'e5@v2']);
  });

  it('a subscription whose subjects change moves to a new broker subscription, and the old one closes', async () => {
    const { engine, join, publish, brokerSubscriptions, subscribe } = setup();
    const v1 = new Config('v1');
    const v2 = new Config('v2', { subject: 'room.v2' });
    const client = join(v1);
    await until(() => brokerSubscriptions() === 1, 'the broker subscription');
    expect(engine.replan(v2)).toEqual({ kept: 1, ended: 0 });
    expect(subscribe).toHaveBeenCalledTimes(2);
    expect(subscribe.mock.calls[1]![0]).toEqual({ subjects: ['room.v2'] });
    await until(
      () => brokerSubscriptions() === 1 && engine.triggerCount === 1,
      'the old subscription to close',
    );
    publish('e1', 'room');
    publish('e2', 'room.v2');
    await until(() => client.timeline.length === 1, 'e2');
    await turn();
    expect(client.timeline).toEqual(['e2@v2']);
  });

  it('a subscription the new config cannot serve gets the errors as a result, then complete, and frees its Trigger', async () => {
    const { engine, metrics, join, brokerSubscriptions } = setup();
    const client = join(new Config('v1'));
    await until(() => brokerSubscriptions() === 1, 'the broker subscription');
    const refusing = new Config('v2', {
      refuse: 'Cannot query field "messageAdded" on type "Subscription".',
    });
    expect(engine.replan(refusing)).toEqual({ kept: 0, ended: 1 });
    expect(client.timeline).toEqual([
      'errors:Cannot query field "messageAdded" on type "Subscription".',
      'complete',
    ]);
    expect((await metrics.engineSubscriptions.get()).values[0]?.value).toBe(0);
    expect(engine.triggerCount).toBe(0);
    await until(() => brokerSubscriptions() === 0, 'the broker subscription to close');
  });
});

describe('replan again before the last handover is over', () => {
  it('two reloads while events still resolve on the first plan: every event exactly once, from the plan it arrived under', async () => {
    const { engine, join, publish, brokerSubscriptions } = setup();
    const v1 = new Config('v1', { held: true });
    const v2 = new Config('v2', { held: true });
    const v3 = new Config('v3', { held: true });
    const clients = [join(v1), join(v1)];
    await until(() => brokerSubscriptions() === 1, 'the broker subscription');

    publish('e1');
    await until(() => v1.resolutions === 1, 'e1 resolving on v1');
    expect(engine.replan(v2)).toEqual({ kept: 2, ended: 0 });
    publish('e2');
    await until(() => v2.resolutions === 1, 'e2 resolving on v2');
    expect(engine.replan(v3)).toEqual({ kept: 2, ended: 0 });
    publish('e3');
    await until(() => v3.resolutions === 1, 'e3 resolving on v3');

    await v1.release();
    await v2.release();
    await v3.release();
    for (const client of clients) expect(client.timeline).toEqual(['e1@v1', 'e2@v2', 'e3@v3']);
    // Each plan resolved only the events that arrived under it, and the old Groups are gone.
    expect([v1.resolutions, v2.resolutions, v3.resolutions]).toEqual([1, 1, 1]);
    expect(engine.groupCount).toBe(1);
  });

  it('three reloads with an event in flight on each plan, the newest finishing first: nothing missed, nothing repeated', async () => {
    const { engine, join, publish, brokerSubscriptions } = setup();
    const plans = ['v1', 'v2', 'v3', 'v4'].map((name) => new Config(name, { held: true }));
    const client = join(plans[0]!);
    await until(() => brokerSubscriptions() === 1, 'the broker subscription');

    for (const [i, plan] of plans.entries()) {
      if (i > 0) expect(engine.replan(plan)).toEqual({ kept: 1, ended: 0 });
      publish(`e${i + 1}`);
      await until(() => plan.resolutions === 1, `e${i + 1} resolving on ${plan.name}`);
    }
    expect(engine.groupCount).toBe(4);

    for (const plan of [...plans].reverse()) await plan.release();
    expect(client.events()).toEqual(['e1@v1', 'e2@v2', 'e3@v3', 'e4@v4']);
    expect(client.timeline).toHaveLength(4);
    expect(engine.groupCount).toBe(1);
  });

  it('reloads while the old plans drop for backlog: each plan delivers its events and signals its drops once, where they happened', async () => {
    const { engine, metrics, join, publish, brokerSubscriptions } = setup({ maxPendingEvents: 1 });
    const v1 = new Config('v1', { held: true });
    const v2 = new Config('v2', { held: true });
    const v3 = new Config('v3', { held: true });
    const client = join(v1);
    await until(() => brokerSubscriptions() === 1, 'the broker subscription');

    // One turn each: v1 holds e1 and drops e2, e3; v2 holds e4 and drops e5.
    for (const id of ['e1', 'e2', 'e3']) publish(id);
    await until(() => v1.resolutions === 1, 'e1 resolving on v1');
    await turn();
    engine.replan(v2);
    for (const id of ['e4', 'e5']) publish(id);
    await until(() => v2.resolutions === 1, 'e4 resolving on v2');
    await turn();
    engine.replan(v3);
    publish('e6');
    await until(() => v3.resolutions === 1, 'e6 resolving on v3');

    await v1.release();
    await v2.release();
    await v3.release();
    expect(client.timeline).toEqual(['e1@v1', 'gap:2:backlog', 'e4@v2', 'gap:1:backlog', 'e6@v3']);
    // Counted where they were lost, once each: no old Group dropped what a newer one delivered.
    expect(await droppedForBacklog(metrics)).toBe(3);
    expect(engine.groupCount).toBe(1);
  });

  it('an old Group whose last events were dropped is released once it has signalled them, without waiting for another event', async () => {
    const { engine, join, publish, brokerSubscriptions } = setup({ maxPendingEvents: 1 });
    const v1 = new Config('v1', { held: true });
    const v2 = new Config('v2');
    const client = join(v1);
    await until(() => brokerSubscriptions() === 1, 'the broker subscription');
    for (const id of ['e1', 'e2', 'e3']) publish(id);
    await until(() => v1.resolutions === 1, 'e1 resolving on v1');
    await turn();

    engine.replan(v2);
    expect(engine.groupCount).toBe(2);
    await v1.release();
    expect(client.timeline).toEqual(['e1@v1', 'gap:2:backlog']);
    expect(engine.groupCount).toBe(1);

    publish('e4');
    await until(() => client.timeline.length === 3, 'e4');
    expect(client.timeline).toEqual(['e1@v1', 'gap:2:backlog', 'e4@v2']);
    expect(v1.resolutions).toBe(1);
  });

  it('an old Group neither resolves nor drops an event that arrives after the swap', async () => {
    const { engine, metrics, join, publish, brokerSubscriptions } = setup({ maxPendingEvents: 2 });
    const v1 = new Config('v1', { held: true });
    const v2 = new Config('v2');
    const client = join(v1);
    await until(() => brokerSubscriptions() === 1, 'the broker subscription');
    publish('e1');
    await until(() => v1.resolutions === 1, 'e1 resolving on v1');

    engine.replan(v2);
    for (const id of ['e2', 'e3']) publish(id);
    await until(() => client.timeline.length === 2, 'e2, e3 from v2');
    expect(v1.resolutions).toBe(1);
    expect(await droppedForBacklog(metrics)).toBe(0);

    await v1.release();
    expect(client.events()).toEqual(['e1@v1', 'e2@v2', 'e3@v2']);
    expect(client.timeline).toHaveLength(3);
    expect(engine.groupCount).toBe(1);
  });

  it('a subscription that ends during a handover frees every Group it was in, and gets nothing more', async () => {
    const { engine, join, publish, brokerSubscriptions } = setup();
    const v1 = new Config('v1', { held: true });
    const v2 = new Config('v2', { held: true });
    const client = join(v1);
    await until(() => brokerSubscriptions() === 1, 'the broker subscription');
    publish('e1');
    await until(() => v1.resolutions === 1, 'e1 resolving on v1');
    engine.replan(v2);
    publish('e2');
    await until(() => v2.resolutions === 1, 'e2 resolving on v2');

    client.stop();
    expect(engine.groupCount).toBe(0);
    expect(engine.triggerCount).toBe(0);
    await v1.release();
    await v2.release();
    expect(client.timeline).toEqual([]);
    await until(() => brokerSubscriptions() === 0, 'the broker subscription to close');
  });
});
