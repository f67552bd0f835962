/**
 * The send buffer budget (`subscriptions.send_buffer_budget`): what every client's queue together
 * may hold. Beyond it the largest queues are cut first, as slow consumers, until the total is
 * within it again; a client that keeps up is never cut. Also what a queued frame costs: its bytes
 * plus what the transport holds per frame, so many small frames cannot hide behind their bytes.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { IncomingMessage } from 'node:http';
import { describe, expect, it, jest } from '@jest/globals';
import type { WebSocket } from 'ws';
import {
  backlogCost,
  heldCost,
  nextAverage,
  SendBudget,
  type QueuedOutlet,
} from '../../src/protocols/send-budget.js';
import { SocketWriter } from '../../src/server/socket-writer.js';
import { pausedResponse, RawClient, startTestRouter, TOPIC, waitFor, type TestRouter } from './harness.js';

/** A queue the test sizes by hand; `cut` records the order. */
class FakeOutlet implements QueuedOutlet {
  closing = false;
  dropped = false;
  constructor(
    readonly name: string,
    public bytes: number,
    private readonly cuts: string[],
  ) {}
  queuedBytes(): number {
    return this.dropped ? 0 : this.bytes;
  }
  cut(): boolean {
    this.cuts.push(this.name);
    if (this.closing) {
      this.dropped = true;
      return false;
    }
    this.closing = true;
    return true;
  }
}

describe('what a queue costs', () => {
  it('against its own limit: the backlog of earlier turns, every frame with its overhead', () => {
    expect(backlogCost(5000, 5000, 100, 400)).toBe(0);
    expect(backlogCost(6000, 5000, 100, 400)).toBe(1000 + 10 * 400);
    expect(backlogCost(0, 0, 0, 400)).toBe(0);
  });

  it('against the budget: nothing while the client keeps up; once behind, all it holds', () => {
    expect(heldCost(5000, 5000, 100, 400)).toBe(0);
    expect(heldCost(5001, 5000, 100, 400)).toBe(5001 + 51 * 400);
  });

  it('the frame size follows the recent frames, in integers', () => {
    let average = 0;
    average = nextAverage(average, 100);
    expect(average).toBe(100);
    for (let i = 0; i < 100; i++) average = nextAverage(average, 1000);
    expect(average).toBeGreaterThan(980);
    expect(Number.isInteger(average)).toBe(true);
  });
});

describe('SendBudget', () => {
  it('cuts nothing while the total is within the budget', async () => {
    const cuts: string[] = [];
    const outlets = [new FakeOutlet('a', 400, cuts), new FakeOutlet('b', 500, cuts)];
    const budget = new SendBudget(1000);
    budget.addSource(() => outlets);
    expect(budget.sweep()).toBe(0);
    expect(cuts).toEqual([]);
  });

  it('cuts the largest queues first, until the total is within the budget', () => {
    const cuts: string[] = [];
    const reported: [number, number][] = [];
    const budget = new SendBudget(1000, { onCut: (cut, before) => reported.push([cut, before]) });
    const ws = [new FakeOutlet('small', 100, cuts), new FakeOutlet('largest', 700, cuts)];
    const streams = [new FakeOutlet('large', 500, cuts), new FakeOutlet('medium', 300, cuts)];
    budget.addSource(() => ws);
    budget.addSource(() => streams);
    // 1600 queued: cutting 700 leaves 900, within 1000.
    expect(budget.sweep()).toBe(1);
    expect(cuts).toEqual(['largest']);
    expect(reported).toEqual([[1, 1600]]);
  });

  it('a queue cut before that still holds its bytes is dropped at once, and not counted again', () => {
    const cuts: string[] = [];
    const budget = new SendBudget(1000);
    const a = new FakeOutlet('a', 900, cuts);
    const b = new FakeOutlet('b', 400, cuts);
    budget.addSource(() => [a, b]);
    expect(budget.sweep()).toBe(1); // a closed as a slow consumer; its close frame waits behind its queue
    expect(budget.sweep()).toBe(0); // still holding: dropped now
    expect(cuts).toEqual(['a', 'a']);
    expect(a.dropped).toBe(true);
  });

  it('queues of connections closed already go first, however small: a live client is cut last', () => {
    const cuts: string[] = [];
    const budget = new SendBudget(1000);
    const live = new FakeOutlet('live', 800, cuts);
    const dead = [new FakeOutlet('dead-1', 300, cuts), new FakeOutlet('dead-2', 400, cuts)];
    for (const d of dead) d.closing = true;
    budget.addSource(() => [live, ...dead]);
    // 1500 queued: dropping both dead queues (400, then 300) is enough.
    expect(budget.sweep()).toBe(0);
    expect(cuts).toEqual(['dead-2', 'dead-1']);
  });

  it('charges sweep at the end of the turn once over the budget, and at once when far over', async () => {
    const cuts: string[] = [];
    const outlet = new FakeOutlet('slow', 0, cuts);
    const budget = new SendBudget(1024 * 1024); // step: 128 KiB
    budget.addSource(() => [outlet]);
    outlet.bytes = 1100 * 1024;
    budget.charge(1100 * 1024); // over by less than a step: swept as the turn ends
    expect(cuts).toEqual([]);
    await nextTurn();
    expect(cuts).toEqual(['slow']);

    outlet.bytes = 0; // its queue is gone
    const other = new FakeOutlet('other', 0, cuts);
    budget.addSource(() => [other]);
    other.bytes = 2 * 1024 * 1024;
    budget.charge(2 * 1024 * 1024); // far over: swept between two frames
    expect(cuts).toEqual(['slow', 'other']);
  });
});

describe('a slow consumer’s socket', () => {
  it('is dropped 5 s after its close when it has not read up to the close frame by then', () => {
    jest.useFakeTimers();
    try {
      const calls: string[] = [];
      const ws = {
        readyState: 1,
        OPEN: 1,
        CLOSED: 3,
        close: (code: number) => {
          calls.push(`close ${code}`);
          ws.readyState = 2;
        },
        terminate: () => calls.push('terminate'),
      };
      new SocketWriter(ws as unknown as WebSocket).close(4503, 'slow consumer');
      jest.advanceTimersByTime(4999);
      expect(calls).toEqual(['close 4503']);
      jest.advanceTimersByTime(1);
      expect(calls).toEqual(['close 4503', 'terminate']);

      // Other closes are left to the closing handshake.
      calls.length = 0;
      ws.readyState = 1;
      new SocketWriter(ws as unknown as WebSocket).close(1001, 'going away');
      jest.advanceTimersByTime(60_000);
      expect(calls).toEqual(['close 1001']);
    } finally {
      jest.useRealTimers();
    }
  });
});

/** The number of clients the budget cut (`router_dropped_messages_total{reason="send_buffer_budget"}`). */
async function budgetCuts(router: TestRouter): Promise<number> {
  const values = (await router.metrics.droppedMessages.get()).values;
  return values.find((v) => v.labels.reason === 'send_buffer_budget')?.value ?? 0;
}

describe('the budget in a router', () => {
  it('the client with the largest queue is cut first (4503), then the next; a fast client gets everything', async () => {
    // Per client far more than the budget: only the budget cuts here.
    const router = await startTestRouter(
      'subscriptions: { send_buffer_limit: 512MiB, send_buffer_budget: 4MiB }',
    );
    const payload = `{"data":{"news":"${'x'.repeat(64 * 1024)}"}}`;
    const first = await RawClient.acknowledged(router.wsUrl);
    const second = await RawClient.acknowledged(router.wsUrl);
    const fast = await RawClient.acknowledged(router.wsUrl);
    try {
      for (const [i, client] of [first, second, fast].entries())
        client.subscribe(String(i), TOPIC, { topic: 'news' });
      await waitFor(() => router.operations.subscribers('news') === 3, 'three subscribers');
      const [firstOp, secondOp] = router.operations.started;
      let published = 0;
      const publish = async () => {
        router.operations.publish('news', payload);
        published++;
        await waitFor(
          () => fast.received.filter((m) => m.type === 'next').length === published,
          'the fast client to receive each result',
        );
      };

      // `first` stops reading long before `second`: its queue is the largest.
      first.ws.pause();
      for (let i = 0; i < 150; i++) await publish();
      second.ws.pause();
      while (!firstOp!.stopped && published < 2000) await publish();
      expect(firstOp!.stopped).toBe(true);
      expect(secondOp!.stopped).toBe(false);
      expect(await budgetCuts(router)).toBe(1);

      while (!secondOp!.stopped && published < 2000) await publish();
      expect(secondOp!.stopped).toBe(true);
      expect(await budgetCuts(router)).toBe(2);

      // The fast client was never cut and has every result.
      await publish();
      expect(fast.received.filter((m) => m.type === 'next')).toHaveLength(published);

      for (const slow of [first, second]) slow.ws.resume();
      // `second` reads up to its close frame. `first` still held its queue when the budget was
      // exceeded again (by `second`): it was dropped then, without a close frame.
      expect(await second.closed).toEqual({
        code: 4503,
        reason: 'slow consumer: the send buffer budget is used up',
      });
      expect((await first.closed).code).toBe(1006);
    } finally {
      for (const client of [first, second, fast]) client.ws.terminate();
      await router.close();
    }
  }, 60_000);

  it('an SSE stream is cut by the budget like a WebSocket', async () => {
    const router = await startTestRouter(
      'subscriptions: { send_buffer_limit: 512MiB, send_buffer_budget: 2MiB }',
    );
    const payload = `{"data":{"news":"${'x'.repeat(64 * 1024)}"}}`;
    let slow: IncomingMessage | undefined;
    try {
      const { res, closed } = await pausedResponse(router.url, 'text/event-stream', {
        query: TOPIC,
        variables: { topic: 'news' },
      });
      slow = res;
      await waitFor(() => router.operations.subscribers('news') === 1, 'the SSE subscriber');
      const op = router.operations.started[0]!;
      for (let i = 0; i < 2000 && !op.stopped; i++) {
        router.operations.publish('news', payload);
        await nextTurn();
      }
      expect(op.stopped).toBe(true);
      expect(await budgetCuts(router)).toBe(1);
      res.resume();
      await closed;
      expect(res.complete).toBe(false);
    } finally {
      slow?.destroy();
      await router.close();
    }
  }, 60_000);
});
