/**
 * Loss is never silent: where a Group drops events (its backlog is full) or the broker loses some
 * (core NATS across a reconnect), every client of the Group gets a `next` with an `EVENTS_DROPPED`
 * error at the point of the gap, in order with the events around it, saying how many (when known)
 * and why. The engine runs here on a scripted provider and a scripted subscription, whose
 * resolutions the test completes by hand, so the backlog fills exactly when the test says.
 */
import { describe, expect, it } from '@jest/globals';
import type { BrokerMessage, DeliveryGap, EventProvider } from '../../src/events/provider.js';
import { createLogger } from '../../src/observability/logger.js';
import { createRouterMetrics } from '../../src/observability/metrics.js';
import type { ExecutionResult, PreparedSubscription } from '../../src/engine/types.js';
import type { Plan } from '../../src/engine/plan.js';
import { SubscriptionEngine } from '../../src/subscriptions/engine.js';
import { eventsDroppedPayload } from '../../src/subscriptions/group.js';
import type { ResultSink } from '../../src/subscriptions/service.js';

/** A provider whose one subscription the test drives: messages and gaps on demand. */
function scriptedProvider() {
  let onMessage: ((m: BrokerMessage) => void) | undefined;
  let onGap: ((gap: DeliveryGap) => void) | undefined;
  const provider: EventProvider = {
    id: 'default',
    kind: 'nats',
    connect: async () => undefined,
    async subscribe(_spec, message, _error, gap) {
      onMessage = message;
      onGap = gap;
      return { close: async () => undefined };
    },
    publish: async () => undefined,
    request: async () => new Uint8Array(),
    status: () => ({ ready: true }),
    close: async () => undefined,
  };
  return {
    provider,
    publish(event: unknown) {
      onMessage!({ subject: 'room', data: new TextEncoder().encode(JSON.stringify(event)) });
    },
    gap(gap: DeliveryGap) {
      onGap!(gap);
    },
  };
}

/** Resolutions wait until the test lets them go (`release`), so the backlog fills on demand. */
function heldSubscription(filter?: unknown) {
  const waiting: (() => void)[] = [];
  const plan = {} as Plan;
  const prepared = (): PreparedSubscription => ({
    plan,
    variables: {},
    args: {},
    source: {
      type: 'subscribe',
      providerKind: 'nats',
      providerId: 'default',
      subjects: ['room'],
      parentType: 'Subscription',
      fieldName: 'messageAdded',
      responseKey: 'messageAdded',
      args: [],
      returnType: 'Message',
      ...(filter ? { filter } : {}),
    },
    check: () => undefined,
    headers: () => undefined,
    resolve: (event) =>
      new Promise<ExecutionResult>((resolve) =>
        waiting.push(() => resolve({ data: { messageAdded: event as Record<string, unknown> } })),
      ),
  });
  return {
    prepared,
    /** Lets every held resolution finish, and the deliveries run. */
    async release() {
      while (waiting.length > 0) {
        for (const go of waiting.splice(0)) go();
        await new Promise((resolve) => setImmediate(resolve));
      }
    },
  };
}

/** A client: what it received, as parsed payloads. */
function client() {
  const received: {
    data?: { messageAdded: { id: string } };
    errors?: { extensions: Record<string, unknown> }[];
  }[] = [];
  const sink: ResultSink = {
    next: (json) => (received.push(JSON.parse(json)), true),
    error: () => undefined,
    complete: () => undefined,
  };
  return {
    sink,
    received,
    /** Ids of the events received, and `gap:N` (`gap:?` when unknown) where a gap was signalled. */
    timeline: () =>
      received.map((r) =>
        r.data
          ? r.data.messageAdded.id
          : `gap:${(r.errors![0]!.extensions.dropped as number | undefined) ?? '?'}:${r.errors![0]!.extensions.reason}`,
      ),
  };
}

function setup(maxPendingEvents: number, filter?: unknown) {
  const broker = scriptedProvider();
  const metrics = createRouterMetrics({ processMetrics: false });
  const engine = new SubscriptionEngine({
    providers: new Map([['default', broker.provider]]),
    metrics,
    logger: createLogger({ level: 'silent' }),
    maxPendingEvents,
  });
  const held = heldSubscription(filter);
  const join = () => {
    const c = client();
    const started = engine.subscribe(held.prepared(), c.sink, { query: 'subscription { x }' });
    expect(started.ok).toBe(true);
    return c;
  };
  const backlogDrops = async () =>
    (await metrics.droppedMessages.get()).values.find((v) => v.labels.reason === 'backlog')?.value ?? 0;
  return { broker, engine, held, join, backlogDrops };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('a Group whose backlog is full', () => {
  it('drops new events and tells every client how many, in order, where they were dropped', async () => {
    const { broker, held, join, backlogDrops } = setup(2);
    const a = join();
    const b = join();
    await tick();
    for (let i = 1; i <= 5; i++) broker.publish({ __typename: 'Message', id: `e${i}` });
    // e1 and e2 fill the backlog; e3..e5 are dropped.
    await held.release();
    broker.publish({ __typename: 'Message', id: 'e6' });
    await held.release();
    for (const c of [a, b]) expect(c.timeline()).toEqual(['e1', 'e2', 'gap:3:backlog', 'e6']);
    expect(a.received[2]).toEqual({
      errors: [
        {
          message: expect.stringContaining('3 events were dropped here'),
          extensions: { code: 'EVENTS_DROPPED', reason: 'backlog', dropped: 3 },
        },
      ],
    });
    // Counted per client, as before.
    expect(await backlogDrops()).toBe(6);
  });

  it('signals a run of drops that nothing follows once the events before it are out', async () => {
    const { broker, held, join } = setup(1);
    const a = join();
    await tick();
    for (let i = 1; i <= 4; i++) broker.publish({ __typename: 'Message', id: `e${i}` });
    await held.release();
    expect(a.timeline()).toEqual(['e1', 'gap:3:backlog']);
  });

  it('received plus dropped is every event published, over several runs', async () => {
    const { broker, held, join } = setup(3);
    const a = join();
    await tick();
    let published = 0;
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 7 + round; i++)
        broker.publish({ __typename: 'Message', id: `r${round}-${published++}` });
      await held.release();
    }
    const events = a.received.filter((r) => r.data).length;
    const dropped = a.received
      .filter((r) => r.errors)
      .reduce((sum, r) => sum + (r.errors![0]!.extensions.dropped as number), 0);
    expect(events + dropped).toBe(published);
    expect(events).toBe(15);
  });

  it('a client that joined after the drops hears nothing of them', async () => {
    const { broker, held, join } = setup(1);
    const early = join();
    await tick();
    broker.publish({ __typename: 'Message', id: 'e1' });
    broker.publish({ __typename: 'Message', id: 'e2' });
    broker.publish({ __typename: 'Message', id: 'e3' });
    const late = join();
    await held.release();
    expect(early.timeline()).toEqual(['e1', 'gap:2:backlog']);
    expect(late.timeline()).toEqual([]);
  });

  it('an event the filter refuses on its own fields is not a loss', async () => {
    const { broker, held, join, backlogDrops } = setup(1, {
      in: { fieldPath: ['id'], json: '["e1", "e3"]' },
    });
    const a = join();
    await tick();
    broker.publish({ __typename: 'Message', id: 'e1' });
    broker.publish({ __typename: 'Message', id: 'e2' });
    broker.publish({ __typename: 'Message', id: 'e3' });
    await held.release();
    expect(a.timeline()).toEqual(['e1', 'gap:1:backlog']);
    expect(await backlogDrops()).toBe(1);
  });
});

describe('a gap reported by the broker', () => {
  it('reaches every client after the events before it and before those after it, without a count', async () => {
    const { broker, held, join } = setup(10);
    const a = join();
    const b = join();
    await tick();
    broker.publish({ __typename: 'Message', id: 'e1' });
    broker.gap({ reason: 'broker_outage' });
    broker.publish({ __typename: 'Message', id: 'e2' });
    await held.release();
    for (const c of [a, b]) expect(c.timeline()).toEqual(['e1', 'gap:?:broker_outage', 'e2']);
    expect(a.received[1]!.errors![0]!.extensions).toEqual({
      code: 'EVENTS_DROPPED',
      reason: 'broker_outage',
    });
  });

  it('carries the count when the provider knows it', async () => {
    const { broker, held, join } = setup(10);
    const a = join();
    await tick();
    broker.gap({ reason: 'broker_outage', dropped: 4 });
    await held.release();
    expect(a.timeline()).toEqual(['gap:4:broker_outage']);
  });
});

describe('the EVENTS_DROPPED payload', () => {
  it('is a GraphQL response with one error and no data', () => {
    expect(JSON.parse(eventsDroppedPayload('backlog', 1))).toEqual({
      errors: [
        {
          message: expect.stringContaining('1 event was dropped here'),
          extensions: { code: 'EVENTS_DROPPED', reason: 'backlog', dropped: 1 },
        },
      ],
    });
  });
});
