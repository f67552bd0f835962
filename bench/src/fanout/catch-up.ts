/**
 * The catch-up figure of the fan-out benchmark: M clients resume at once from a cursor K events
 * back on the router's JetStream variant, while a live client goes on receiving events published
 * at a steady rate; the bench times how long until every resuming client has its K events, and
 * checks that each then goes on live with no gap and no repeat.
 *
 * The clients here are few (M ~ 100) and keep every result, unlike the load generator's (load.ts),
 * which counts the deliveries of 10,000 clients as cheaply as it can: each `StreamClient` records
 * per result its event's sequence number (-1 for a result without data, e.g. a subgraph error),
 * its cursor and its arrival time, and says exactly what went wrong (an error result, a gap, a
 * repeat, a result without cursor, the subscription or the connection ending).
 */
import { performance } from 'node:perf_hooks';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import WebSocket from 'ws';
import { fmt, median, percentile, table } from '../stats.js';
import { cursorIn, eventJson, sequenceOf, SUBJECT, subscribeFrame } from './graph.js';
import { forkChild, type Child } from '../common/ipc.js';
import { sleep } from './load.js';
import type { ServerStats } from './server.js';
import { consuming, freshStream } from './stream.js';
import type { SystemOptions } from './systems/types.js';

const CONNECT_TIMEOUT_MS = 30_000;

/** One graphql-transport-ws client of the subscription, optionally resuming from a cursor. */
export class StreamClient {
  /** Per result, in arrival order: its event's sequence number, or -1 when it carries no data. */
  readonly seqs: number[] = [];
  /** Per result, its cursor ('' when it has none). */
  readonly cursors: string[] = [];
  /** Per result, performance.now() when it arrived. */
  readonly at: number[] = [];
  /** The subscription or the connection ended (an `error`, a `complete`, a close). */
  ended = false;
  /** What went wrong, the first time (undefined: nothing yet). */
  problem: string | undefined;

  private constructor(private readonly ws: WebSocket) {}

  /** Connects and completes the handshake (connection_init / connection_ack). */
  static open(url: string): Promise<StreamClient> {
    return new Promise<StreamClient>((resolve, reject) => {
      const ws = new WebSocket(url, ['graphql-transport-ws'], { perMessageDeflate: false });
      const client = new StreamClient(ws);
      let ready = false;
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`catch-up client: no connection_ack from ${url} within ${CONNECT_TIMEOUT_MS} ms`));
      }, CONNECT_TIMEOUT_MS);
      ws.on('error', (err) => {
        clearTimeout(timer);
        if (!ready) reject(new Error(`catch-up client: ${url}: ${err.message}`));
        else client.end(`socket error: ${err.message}`);
      });
      ws.on('close', (code) => {
        clearTimeout(timer);
        if (!ready) reject(new Error(`catch-up client: ${url} closed the connection (${code})`));
        else client.end(`the server closed the connection (${code})`);
      });
      ws.on('open', () => ws.send('{"type":"connection_init"}'));
      ws.on('message', (data: Buffer) => {
        const now = performance.now();
        const text = data.toString('utf8');
        const seq = sequenceOf(data);
        if (seq >= 0) return client.result(seq, text, now);
        let type: unknown;
        try {
          type = (JSON.parse(text) as { type?: unknown }).type;
        } catch {
          type = undefined;
        }
        if (type === 'connection_ack') {
          ready = true;
          clearTimeout(timer);
          resolve(client);
        } else if (type === 'ping') ws.send('{"type":"pong"}');
        else if (type === 'next') client.result(-1, text, now);
        else if (type === 'error' || type === 'complete')
          client.end(`the subscription ended: ${text.slice(0, 400)}`);
        else if (type !== 'pong') client.problem ??= `unexpected message: ${text.slice(0, 400)}`;
      });
    });
  }

  subscribe(cursor?: string): void {
    this.ws.send(subscribeFrame(cursor));
  }

  private result(seq: number, text: string, now: number): void {
    const cursor = cursorIn(text);
    if (seq < 0) this.problem ??= `a result without data: ${text.slice(0, 400)}`;
    else if (cursor === undefined) this.problem ??= `event ${seq} came without extensions.cursor`;
    this.seqs.push(seq);
    this.cursors.push(cursor ?? '');
    this.at.push(now);
  }

  private end(why: string): void {
    if (this.ended) return;
    this.ended = true;
    this.problem ??= why;
  }

  /** Results received so far (with data or not). */
  get results(): number {
    return this.seqs.length;
  }

  /** Whether event `seq`, or a later one, has arrived. */
  has(seq: number): boolean {
    for (let i = this.seqs.length - 1; i >= 0; i--) if (this.seqs[i]! >= 0) return this.seqs[i]! >= seq;
    return false;
  }

  /** The cursor that came with event `seq` (undefined if it did not come). */
  cursorOf(seq: number): string | undefined {
    const i = this.seqs.lastIndexOf(seq);
    return i < 0 ? undefined : this.cursors[i];
  }

  /** When event `seq` arrived (undefined if it did not come). */
  arrivalOf(seq: number): number | undefined {
    const i = this.seqs.lastIndexOf(seq);
    return i < 0 ? undefined : this.at[i];
  }

  /**
   * Why the results are not exactly the events `from`..`to` in order (no gap, no repeat), each
   * with a cursor, or the first other problem; undefined when all is well.
   */
  check(from: number, to: number): string | undefined {
    if (this.problem) return this.problem;
    const expected = to - from + 1;
    for (let i = 0; i < Math.min(expected, this.seqs.length); i++)
      if (this.seqs[i] !== from + i)
        return `result #${i + 1} is event ${this.seqs[i]}, expected ${from + i}: a gap or a repeat`;
    if (this.seqs.length !== expected)
      return `got ${this.seqs.length} results, expected ${expected} (events ${from}..${to})`;
    return undefined;
  }

  close(): void {
    this.ws.terminate();
  }
}

/** Waits until `done()` or `timeoutMs`; false on timeout. */
export async function until(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) return false;
    await sleep(5);
  }
  return true;
}

export interface CatchUpPlan {
  /** Each: M clients resuming at once, K events back. */
  sizes: { clients: number; events: number }[];
  rounds: number;
  /** A round that has not caught up by then is written off. */
  roundTimeoutMs: number;
  /** Live events per second published while the clients catch up. */
  liveRate: number;
}

export interface CatchUpRound {
  /** Subscribe frames sent -> the last client has its K-th result. */
  allCaughtUpMs: number;
  /** Per client, subscribe -> its K-th result: median. */
  clientP50Ms: number;
  /** Subscribe -> first replayed result, median over clients. */
  firstEventP50Ms: number;
  /** Results replayed per second, all clients together (M x K / allCaughtUpMs). */
  eventsPerSec: number;
  /** Subgraph requests and server CPU from the subscribe frames to the last client caught up. */
  subgraphRequests: number;
  serverCpuMs: number;
  /** Replayed results (the first K of each client) without data: errors, e.g. a subgraph timeout. */
  replayErrors: number;
  /** Clients that got exactly the K events and then every live one, in order, each with a cursor. */
  exact: number;
  problemExample?: string;
  /** The live client meanwhile: events published during the round, their latency, errors. */
  live: { events: number; p50Ms: number; maxMs: number; errors: number };
}

/** One size: M clients resuming at once from a cursor K events back (`edfs-cursors`). */
export interface CatchUpResult {
  clients: number;
  /** Events each client replays (K). */
  events: number;
  rounds: CatchUpRound[];
  /** Medians over the rounds. */
  allCaughtUpMs: number;
  clientP50Ms: number;
  firstEventP50Ms: number;
  eventsPerSec: number;
  subgraphRequestsPerReplayedEvent: number;
  serverCpuUsPerReplayedEvent: number;
  liveP50Ms: number;
  liveMaxMs: number;
  error?: string;
}

/**
 * One size of the catch-up figure: a fresh `edfs-cursors` router (forked from `serverEntry`) and
 * stream, one live client that gets every event (it keeps the Trigger up and supplies the
 * cursors), then per round M clients subscribing at once with the cursor of the event K back from
 * the last one published, while live events keep coming at `liveRate`. Each must get exactly those
 * K events, then every live one, in order, each with its cursor.
 */
export async function measureCatchUp(
  size: { clients: number; events: number },
  plan: CatchUpPlan,
  deps: {
    serverEntry: string;
    options: SystemOptions;
    publisher: NatsConnection;
    jsm: JetStreamManager;
    subgraph: Child;
  },
): Promise<CatchUpResult> {
  const { clients: m, events: k } = size;
  const result: CatchUpResult = {
    clients: m,
    events: k,
    rounds: [],
    allCaughtUpMs: NaN,
    clientP50Ms: NaN,
    firstEventP50Ms: NaN,
    eventsPerSec: NaN,
    subgraphRequestsPerReplayedEvent: NaN,
    serverCpuUsPerReplayedEvent: NaN,
    liveP50Ms: NaN,
    liveMaxMs: NaN,
  };
  const { publisher, jsm, subgraph } = deps;
  const removeStream = await freshStream(jsm);
  const server = forkChild(deps.serverEntry, 'catch-up server');
  const open: StreamClient[] = [];
  try {
    const { url } = await server.request<{ url: string }>('start', {
      system: 'edfs-cursors',
      options: deps.options,
    });
    const live = await StreamClient.open(url);
    open.push(live);
    live.subscribe();
    await consuming(jsm, 'the catch-up router: its durable consumer');
    const sentAt: number[] = [];
    let last = -1;
    const publish = () => {
      sentAt[++last] = performance.now();
      publisher.publish(SUBJECT, eventJson(last));
    };
    for (let i = 0; i <= k; i++) publish();
    await publisher.flush();
    if (!(await until(() => live.has(last), plan.roundTimeoutMs)))
      throw new Error(
        `the live client did not get the first ${k + 1} events within ${plan.roundTimeoutMs} ms`,
      );
    const cpuUs = async () => (await server.request<ServerStats>('stats')).cpuUs;
    const requests = async () => (await subgraph.request<{ requests: number }>('stats')).requests;

    for (let r = 0; r < plan.rounds; r++) {
      const end = last;
      const from = end - k;
      const cursor = live.cursorOf(from);
      if (!cursor) throw new Error(`the live client has no cursor for event ${from}`);
      const resumed = await Promise.all(Array.from({ length: m }, () => StreamClient.open(url)));
      open.push(...resumed);
      const liveFrom = live.results;
      const [cpu0, requests0] = [await cpuUs(), await requests()];
      const t0 = performance.now();
      for (const client of resumed) client.subscribe(cursor);
      const ticker = setInterval(publish, 1000 / plan.liveRate);
      const caughtUp = await until(
        () => resumed.every((cl) => cl.results >= k || cl.ended),
        plan.roundTimeoutMs,
      );
      const [cpu1, requests1] = [await cpuUs(), await requests()];
      clearInterval(ticker);
      // One live event more, published once all have caught up (or given up), then all of them.
      publish();
      await publisher.flush();
      const final = last;
      await until(
        () => live.has(final) && resumed.every((cl) => cl.has(final) || cl.ended),
        caughtUp ? plan.roundTimeoutMs : 1_000,
      );
      const doneAt = resumed.map((cl) => (cl.results >= k ? cl.at[k - 1]! - t0 : Infinity));
      const firstAt = resumed.map((cl) => (cl.results > 0 ? cl.at[0]! - t0 : Infinity));
      const problems = resumed.map((cl) => cl.check(from + 1, final)).filter((x) => x !== undefined);
      const problemExample = caughtUp
        ? problems[0]
        : `after ${plan.roundTimeoutMs} ms, ${resumed.filter((cl) => cl.results < k && !cl.ended).length} of ${m} clients were still catching up`;
      const liveLatency: number[] = [];
      for (let seq = end + 1; seq <= final; seq++) {
        const at = live.arrivalOf(seq);
        if (at !== undefined) liveLatency.push(at - sentAt[seq]!);
      }
      const all = Math.max(...doneAt);
      result.rounds.push({
        allCaughtUpMs: all,
        clientP50Ms: median(doneAt),
        firstEventP50Ms: median(firstAt),
        eventsPerSec: (m * k * 1000) / all,
        subgraphRequests: requests1 - requests0,
        serverCpuMs: (cpu1 - cpu0) / 1000,
        replayErrors: resumed.reduce((n, cl) => n + cl.seqs.slice(0, k).filter((seq) => seq < 0).length, 0),
        exact: m - problems.length,
        ...(problemExample !== undefined ? { problemExample } : {}),
        live: {
          events: final - end,
          p50Ms: percentile(liveLatency, 50),
          maxMs: liveLatency.length > 0 ? Math.max(...liveLatency) : NaN,
          errors: live.seqs.slice(liveFrom).filter((seq) => seq < 0).length,
        },
      });
      for (const client of resumed) client.close();
      open.splice(1);
    }
    const rounds = result.rounds;
    const replayed = m * k;
    Object.assign(result, {
      allCaughtUpMs: median(rounds.map((x) => x.allCaughtUpMs)),
      clientP50Ms: median(rounds.map((x) => x.clientP50Ms)),
      firstEventP50Ms: median(rounds.map((x) => x.firstEventP50Ms)),
      eventsPerSec: median(rounds.map((x) => x.eventsPerSec)),
      subgraphRequestsPerReplayedEvent: median(rounds.map((x) => x.subgraphRequests / replayed)),
      serverCpuUsPerReplayedEvent: median(rounds.map((x) => (x.serverCpuMs * 1000) / replayed)),
      liveP50Ms: median(rounds.map((x) => x.live.p50Ms)),
      liveMaxMs: median(rounds.map((x) => x.live.maxMs)),
    });
  } catch (err) {
    result.error = (err as Error).message;
  } finally {
    for (const client of open) client.close();
    await server.kill();
    await removeStream();
  }
  return result;
}

/** The catch-up table: one column per size (medians over rounds). */
export function printCatchUp(results: CatchUpResult[], liveRate: number): void {
  if (results.length === 0) return;
  console.log('\nCatch-up (ours JS+cursors): M clients resume at once from a cursor K events back');
  const per = (c: CatchUpResult, f: (r: CatchUpRound) => number) => median(c.rounds.map(f));
  const rows: [string, (c: CatchUpResult) => string][] = [
    ['all caught up, ms', (c) => fmt(c.allCaughtUpMs)],
    ['one client caught up (p50), ms', (c) => fmt(c.clientP50Ms)],
    ['first replayed event (p50), ms', (c) => fmt(c.firstEventP50Ms)],
    ['events replayed/s (all clients)', (c) => fmt(c.eventsPerSec)],
    ['subgraph requests per replayed event', (c) => fmt(c.subgraphRequestsPerReplayedEvent)],
    ['server CPU µs per replayed event', (c) => fmt(c.serverCpuUsPerReplayedEvent)],
    [
      'replayed results that are errors %',
      (c) => fmt(per(c, (r) => (r.replayErrors * 100) / (c.clients * c.events))),
    ],
    [`live client meanwhile (${liveRate} ev/s): p50 ms`, (c) => fmt(c.liveP50Ms)],
    ['live client meanwhile: max ms', (c) => fmt(c.liveMaxMs)],
    ['live client meanwhile: error results', (c) => String(per(c, (r) => r.live.errors))],
    ['clients exact (replay, then live)', (c) => c.rounds.map((r) => `${r.exact}/${c.clients}`).join(' ')],
  ];
  console.log(
    table([
      ['metric', ...results.map((c) => `${c.clients} x ${c.events.toLocaleString('en-US')}`)],
      ...rows.map(([label, f]) => [label, ...results.map((c) => (c.error ? 'failed' : f(c)))]),
    ]),
  );
  console.log(
    [
      `Columns: M clients x K events. Medians over rounds; times from the subscribe frames (sent together, connections`,
      `already open) to the client reading its K-th result. Each client replays through a JetStream consumer of its own.`,
      `'exact' per round: it got the K events in order, each with a cursor, then every live event. Same machine and noise as above.`,
    ].join('\n'),
  );
  for (const c of results) {
    if (c.error) console.log(`  ${c.clients} x ${c.events}: failed: ${c.error}`);
    for (const r of c.rounds)
      if (r.problemExample) console.log(`  ${c.clients} x ${c.events}: ${r.problemExample.slice(0, 300)}`);
  }
}
