/**
 * The load generator: N WebSocket clients (`ws`, no compression) in this process, and the
 * publisher of events to NATS. Clients speak graphql-transport-ws (connection_init, one
 * `subscribe`, pong to pings) or nothing at all (raw, for the bare-ws floor).
 *
 * Every event carries its sequence number in its id; the generator remembers when it published
 * each one, and every client frame is timed on arrival against that (same process, same clock).
 * Latency therefore includes this process's own time to read the frame: with 10,000 sockets a
 * burst of receipts takes a while to drain, which the bare-ws floor measures too.
 *
 * A delivery is a frame at least as long as the plain result frame, with an event id in place; its
 * length is counted (a result may carry `extensions`, e.g. a cursor), and the first event after
 * connecting is checked at every client against the system's FrameShape (graph.ts).
 *
 * Two ways to publish:
 * - `throughput`: closed loop. Keep at most `maxOutstanding` events not yet received by every
 *   live client; publish the next one as soon as one completes (or expires after `expireMs`).
 * - `latency`: open loop at a fixed rate, whatever the deliveries do.
 */
import { performance } from 'node:perf_hooks';
import type { NatsConnection } from '@nats-io/transport-node';
import WebSocket from 'ws';
import { percentile } from '../stats.js';
import {
  eventJson,
  expectedFrame,
  frameMismatch,
  sequenceOf,
  SUBJECT,
  subscribeFrame,
  type FrameShape,
} from './graph.js';

export type ClientProtocol = 'graphql-transport-ws' | 'raw';

/** Enough for the longest throughput run against the fastest system. */
const CAPACITY = 1 << 21;
const CONNECT_CONCURRENCY = 200;
const CONNECT_TIMEOUT_MS = 30_000;

export interface ThroughputWindow {
  ms: number;
  eventsPerSec: number;
  deliveriesPerSec: number;
}

export interface LatencyWindow {
  events: number;
  /** Receipts / (events x live clients). */
  delivered: number;
  p50: number;
  p99: number;
  max: number;
}

export class LoadGenerator {
  private readonly sockets: WebSocket[] = [];
  private alive = 0;
  private tearingDown = false;
  private readonly frameBytes = Buffer.byteLength(expectedFrame(0));
  private readonly subscribeFrame = subscribeFrame();
  /** What the system under test adds to results besides the data (set before connecting). */
  shape: FrameShape = 'plain';

  private seq = 0;
  private readonly sentAt = new Float64Array(CAPACITY);
  private readonly received = new Uint32Array(CAPACITY);
  private readonly done = new Uint8Array(CAPACITY);
  private readonly windowOf = new Int32Array(CAPACITY).fill(-1);
  private samples: number[][] = [];
  private deliveries = 0;
  private deliveryBytes = 0;
  private deliveryHeaderBytes = 0;
  private outstanding = 0;
  private oldestOpen = 0;
  private onComplete: (() => void) | undefined;
  /** The first event after connecting is compared byte for byte with the expected frame. */
  private verifySeq = -1;

  /** Frames that were not the expected delivery (wrong size, errors, unexpected messages). */
  badFrames = 0;
  badFrameExample: string | undefined;
  mismatchExample: string | undefined;
  verified = 0;
  /** Sockets the server closed while they were supposed to stay open, by close code. */
  readonly unexpectedCloses = new Map<number, number>();
  expired = 0;

  constructor(private readonly nats: NatsConnection) {}

  get clients(): number {
    return this.alive;
  }

  /** Frames received that were deliveries of a published event. */
  get totalDeliveries(): number {
    return this.deliveries;
  }

  /**
   * Bytes of delivery frames received since the last reset: the WebSocket payloads, and the same
   * with each frame's header (2 or 4 bytes here: server frames are not masked).
   */
  get receivedBytes(): { payload: number; wire: number } {
    return { payload: this.deliveryBytes, wire: this.deliveryBytes + this.deliveryHeaderBytes };
  }

  /** Events published since the last reset. */
  get published(): number {
    return this.seq;
  }

  /** Opens `n` clients to `url`; resolves once each is connected and (graphql) has subscribed. */
  async connect(url: string, n: number, protocol: ClientProtocol): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < n) {
        next++;
        await this.open(url, protocol);
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONNECT_CONCURRENCY, n) }, worker));
  }

  private open(url: string, protocol: ClientProtocol): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(url, protocol === 'raw' ? [] : [protocol], {
        perMessageDeflate: false,
        skipUTF8Validation: true,
      });
      let settled = false;
      const settle = (err?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => {
        ws.terminate();
        settle(
          new Error(
            `client: no ${protocol === 'raw' ? 'open' : 'connection_ack'} from ${url} within ${CONNECT_TIMEOUT_MS} ms`,
          ),
        );
      }, CONNECT_TIMEOUT_MS);
      ws.on('unexpected-response', (_req, res) => {
        settle(new Error(`client: ${url} refused the upgrade with HTTP ${res.statusCode}`));
        ws.terminate();
      });
      ws.on('error', (err) => settle(new Error(`client: ${url}: ${err.message}`)));
      ws.on('open', () => {
        this.sockets.push(ws);
        this.alive++;
        if (protocol === 'raw') settle();
        else ws.send('{"type":"connection_init"}');
      });
      ws.on('close', (code) => {
        this.alive--;
        if (!this.tearingDown) this.unexpectedCloses.set(code, (this.unexpectedCloses.get(code) ?? 0) + 1);
        settle(new Error(`client: ${url} closed the connection (${code}) before it was ready`));
        this.checkCompletions();
      });
      let first = true;
      ws.on('message', (data: Buffer) => {
        if (data.length >= this.frameBytes) {
          const seq = sequenceOf(data);
          if (seq >= 0 && seq < this.seq) {
            this.delivery(seq, data, first);
            first = false;
            return;
          }
        }
        this.control(ws, data, settle);
      });
    });
  }

  /** Anything but a delivery: the handshake, pings, or a frame that should not be there. */
  private control(ws: WebSocket, data: Buffer, settle: (err?: Error) => void): void {
    const text = data.toString('utf8');
    let type: unknown;
    try {
      type = (JSON.parse(text) as { type?: unknown }).type;
    } catch {
      type = undefined;
    }
    if (type === 'connection_ack') {
      ws.send(this.subscribeFrame);
      settle();
    } else if (type === 'ping') {
      ws.send('{"type":"pong"}');
    } else if (type !== 'pong') {
      this.badFrames++;
      this.badFrameExample ??= text.slice(0, 500);
    }
  }

  private delivery(seq: number, data: Buffer, first: boolean): void {
    const now = performance.now();
    this.deliveries++;
    this.deliveryBytes += data.length;
    this.deliveryHeaderBytes += data.length < 126 ? 2 : data.length < 65_536 ? 4 : 10;
    if (seq === this.verifySeq) {
      const text = data.toString('utf8');
      const mismatch = frameMismatch(this.shape, text, seq, first);
      if (mismatch === undefined) this.verified++;
      else this.mismatchExample ??= `${mismatch}: ${text}`;
    }
    const w = this.windowOf[seq]!;
    if (w >= 0) this.samples[w]!.push(now - this.sentAt[seq]!);
    if (++this.received[seq]! >= this.alive && !this.done[seq]) this.complete(seq);
  }

  private complete(seq: number): void {
    this.done[seq] = 1;
    this.outstanding--;
    this.onComplete?.();
  }

  /** A client left: events it was still owed may now be complete. */
  private checkCompletions(): void {
    for (let s = this.oldestOpen; s < this.seq; s++)
      if (!this.done[s] && this.received[s]! >= this.alive) this.complete(s);
  }

  private publish(window: number): number {
    const seq = this.seq++;
    if (seq >= CAPACITY) throw new Error('load generator: event capacity exceeded');
    this.windowOf[seq] = window;
    this.outstanding++;
    this.sentAt[seq] = performance.now();
    this.nats.publish(SUBJECT, eventJson(seq));
    return seq;
  }

  /**
   * Moves past completed events; an incomplete one published before `cutoff` (a performance.now()
   * time) is written off as expired: lost or very late. Late frames still count as deliveries.
   */
  private advance(cutoff: number): void {
    while (
      this.oldestOpen < this.seq &&
      (this.done[this.oldestOpen] || this.sentAt[this.oldestOpen]! < cutoff)
    ) {
      if (!this.done[this.oldestOpen]) {
        this.done[this.oldestOpen] = 1;
        this.outstanding--;
        this.expired++;
      }
      this.oldestOpen++;
    }
  }

  /** Waits until every published event is complete, or `timeoutMs`; what is missing then expires. */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (this.outstanding > 0 && performance.now() < deadline) await sleep(20);
    const drained = this.outstanding === 0;
    this.advance(Infinity);
    return drained;
  }

  /** One event, checked byte for byte at every client; resolves with how many clients got it. */
  async verifyOne(timeoutMs: number): Promise<{ received: number; exact: number }> {
    this.verified = 0;
    this.verifySeq = this.seq;
    const seq = this.publish(-1);
    await this.drain(timeoutMs);
    this.verifySeq = -1;
    return { received: this.received[seq]!, exact: this.verified };
  }

  /** Closed-loop publishing; deliveries/s and events/s per window after a warm-up. */
  async throughput(o: {
    warmupMs: number;
    windowMs: number;
    windows: number;
    maxOutstanding: number;
    expireMs: number;
    drainMs: number;
  }): Promise<ThroughputWindow[]> {
    let running = true;
    const pump = () => {
      while (running && this.outstanding < o.maxOutstanding) this.publish(-1);
    };
    this.onComplete = pump;
    const expiry = setInterval(() => {
      this.advance(performance.now() - o.expireMs);
      pump();
    }, 100);
    pump();
    await sleep(o.warmupMs);
    const out: ThroughputWindow[] = [];
    for (let w = 0; w < o.windows; w++) {
      const t0 = performance.now();
      const d0 = this.deliveries;
      const e0 = this.seq;
      await sleep(o.windowMs);
      const ms = performance.now() - t0;
      out.push({
        ms,
        eventsPerSec: ((this.seq - e0) * 1000) / ms,
        deliveriesPerSec: ((this.deliveries - d0) * 1000) / ms,
      });
    }
    running = false;
    clearInterval(expiry);
    this.onComplete = undefined;
    await this.drain(o.drainMs);
    return out;
  }

  /** Open-loop publishing at `rate` events/s; per-window latency percentiles after a warm-up. */
  async latency(o: {
    rate: number;
    warmupMs: number;
    windowMs: number;
    windows: number;
    drainMs: number;
  }): Promise<LatencyWindow[]> {
    const interval = 1000 / o.rate;
    const warmupEvents = Math.round((o.warmupMs / 1000) * o.rate);
    const perWindow = Math.max(1, Math.round((o.windowMs / 1000) * o.rate));
    const total = warmupEvents + perWindow * o.windows;
    this.samples = Array.from({ length: o.windows }, () => []);
    const first = this.seq;
    const aliveAt: number[] = [];
    await new Promise<void>((resolve) => {
      const start = performance.now();
      let k = 0;
      const tick = () => {
        const now = performance.now();
        while (k < total && now >= start + k * interval) {
          const window = k < warmupEvents ? -1 : Math.floor((k - warmupEvents) / perWindow);
          aliveAt.push(this.alive);
          this.publish(window);
          k++;
        }
        if (k >= total) return resolve();
        setTimeout(tick, Math.max(0, start + k * interval - performance.now()));
      };
      tick();
    });
    await this.drain(o.drainMs);
    return Array.from({ length: o.windows }, (_, w) => {
      const from = first + warmupEvents + w * perWindow;
      let got = 0;
      let owed = 0;
      for (let s = from; s < from + perWindow; s++) {
        got += this.received[s]!;
        owed += aliveAt[s - first]!;
      }
      const samples = this.samples[w]!;
      // A window of which nothing arrived in time is later than any that did (for medians).
      const late = samples.length === 0 ? Infinity : undefined;
      return {
        events: perWindow,
        delivered: owed > 0 ? got / owed : 0,
        p50: late ?? percentile(samples, 50),
        p99: late ?? percentile(samples, 99),
        max: late ?? samples.reduce((m, v) => (v > m ? v : m), 0),
      };
    });
  }

  /** Per-event bookkeeping restarts (between scenarios; the arrays are reused). */
  reset(): void {
    this.received.fill(0, 0, this.seq);
    this.done.fill(0, 0, this.seq);
    this.windowOf.fill(-1, 0, this.seq);
    this.seq = 0;
    this.oldestOpen = 0;
    this.outstanding = 0;
    this.deliveries = 0;
    this.deliveryBytes = 0;
    this.deliveryHeaderBytes = 0;
    this.samples = [];
    this.badFrames = 0;
    this.badFrameExample = undefined;
    this.mismatchExample = undefined;
    this.expired = 0;
    this.unexpectedCloses.clear();
  }

  /**
   * Closes every client after the server is gone (the server closing first keeps TIME_WAIT on its
   * side, so the next system's 10,000 connections find free ephemeral ports); stragglers are
   * terminated.
   */
  async teardown(timeoutMs = 10_000): Promise<void> {
    this.tearingDown = true;
    const deadline = performance.now() + timeoutMs;
    while (this.alive > 0 && performance.now() < deadline) await sleep(50);
    for (const ws of this.sockets) if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
    while (this.alive > 0 && performance.now() < deadline + 5000) await sleep(50);
    this.sockets.length = 0;
    this.tearingDown = false;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
