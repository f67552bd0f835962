/**
 * What queued frames cost, and the memory budget for them across every client of every protocol
 * (`subscriptions.send_buffer_budget`). The per-client `send_buffer_limit` bounds one client; this
 * bounds them all together, which the per-client limit alone cannot: 10,000 clients may each
 * hold just under it.
 *
 * Cost of a queued frame: its bytes plus what the transport holds per frame besides (Node's write
 * queue entries, a frame header buffer per WebSocket frame, four writes per chunk of a streamed
 * HTTP response). A small frame costs the process several times its bytes: measured on Node 20
 * with a client that stopped reading, about 400 bytes per WebSocket frame and 580 per SSE event
 * beyond their own bytes, so 200 clients each "under" a 1 MiB limit of 75-byte frames held
 * ~4.5 MB each. Streams report their backlog in bytes only; an outlet estimates the frames in it
 * from its recent frame size (`FrameCost`), so `bufferedAmount` measures memory, not payload.
 *
 * The budget, without work per delivery beyond one addition: every queued frame is charged; once
 * the charges since the last sweep, on top of what that sweep found queued, pass the budget, a
 * sweep runs at the end of the turn, or at once when they pass it by more than a step (only after
 * a step of new charges either way, so its cost spreads over many deliveries). The sweep reads
 * what every connection's queue holds (`heldCost`: nothing for a client that keeps up) and, when
 * the total is over the budget, frees queues until it is within again: first those of connections
 * closed already (a WebSocket's close frame waits behind its queue: such a socket is dropped at
 * once), then the largest live ones, closed as slow consumers (WebSocket 4503, a stream is cut),
 * their operations stopped, so they queue nothing more.
 *
 * Invariants: what clients that are behind hold stays within the budget plus two steps of
 * charges (clients that keep up hold one turn's frames besides, until the turn ends); a client is
 * never cut while the total is within the budget; dead queues go first, then the largest live one.
 */

/** Memory a queued WebSocket frame holds beyond its bytes (measured; see above). */
export const WEBSOCKET_FRAME_OVERHEAD_BYTES = 400;
/** Memory a queued chunk of a streamed HTTP response holds beyond its bytes. */
export const CHUNK_OVERHEAD_BYTES = 600;

/**
 * What a client's queue of `queued` bytes, `thisTurn` of them queued in the current event-loop
 * turn, counts against its own `send_buffer_limit`: its backlog, the bytes of earlier turns, each
 * frame with `overhead` bytes more (frames counted at `averageFrameBytes`, an integer following
 * the recent frames: `nextAverage`). What this turn queued leaves when the turn ends, however
 * many events it carried: a burst is not a slow client.
 */
export function backlogCost(
  queued: number,
  thisTurn: number,
  averageFrameBytes: number,
  overhead: number,
): number {
  const backlog = queued - thisTurn;
  if (backlog <= 0) return 0;
  return backlog + Math.ceil(backlog / (averageFrameBytes || 1)) * overhead;
}

/**
 * What the same queue holds against the send buffer budget: nothing while the client keeps up
 * (its backlog is empty: this turn's frames are leaving); once it is behind, everything it holds,
 * this turn's frames too, so a burst to clients that are behind cannot pass the budget unseen.
 */
export function heldCost(
  queued: number,
  thisTurn: number,
  averageFrameBytes: number,
  overhead: number,
): number {
  if (queued - thisTurn <= 0) return 0;
  return queued + Math.ceil(queued / (averageFrameBytes || 1)) * overhead;
}

/** The running frame size after one more frame of `bytes` (integer arithmetic: stays a small int). */
export function nextAverage(average: number, bytes: number): number {
  return average === 0 ? bytes : average + ((bytes - average) >> 4);
}

/**
 * A number that changes once per event-loop turn (at its end, with `setImmediate`), for outlets
 * that tell the bytes queued in the current turn (not backlog yet) from the rest.
 */
export function currentTurn(): number {
  if (!turnEnding) {
    turnEnding = true;
    setImmediate(endTurn);
  }
  return turn;
}

/** The current turn's number, without marking the turn as used. */
export function turnNumber(): number {
  return turn;
}

let turn = 0;
let turnEnding = false;
function endTurn(): void {
  turn++;
  turnEnding = false;
}

/** One client connection as the budget sees it. */
export interface QueuedOutlet {
  /** What the queue holds (`heldCost`): 0 while the client keeps up. */
  queuedBytes(): number;
  /** Closed already (by a cut or as a slow consumer), its queue still held until it is dropped. */
  readonly closing: boolean;
  /**
   * Frees the queue: a live connection is closed as a slow consumer (true); one already closed
   * that still holds queued frames is dropped at once (false).
   */
  cut(): boolean;
}

export interface SendBudgetHooks {
  /** `cut` live connections were closed to bring `before` bytes within the budget. */
  onCut?(cut: number, before: number): void;
}

export class SendBudget {
  /** What the last sweep left queued. */
  private known = 0;
  /** Charged since the last sweep. */
  private added = 0;
  private scheduled = false;
  /** Charges between two sweeps, at least: a sweep reads every connection. */
  private readonly step: number;
  private readonly sources: (() => Iterable<QueuedOutlet>)[] = [];

  constructor(
    readonly limitBytes: number,
    private readonly hooks: SendBudgetHooks = {},
  ) {
    this.step = Math.min(limitBytes, Math.max(64 * 1024, Math.floor(limitBytes / 8)));
  }

  /** A transport's open connections, read at each sweep. */
  addSource(connections: () => Iterable<QueuedOutlet>): void {
    this.sources.push(connections);
  }

  /**
   * `bytes` were queued for a client (the hot path: one addition and two comparisons). Called
   * after the frame is written: a sweep may close the connection it was written to.
   */
  charge(bytes: number): void {
    const added = (this.added += bytes);
    if (added < this.step) return;
    const over = this.known + added - this.limitBytes;
    if (over <= 0) return;
    // Far over (a burst to clients that are behind): now, between two frames; else as the turn ends.
    if (over > this.step) this.sweep();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.sweepLater);
    }
  }

  private readonly sweepLater = (): void => {
    this.scheduled = false;
    this.sweep();
  };

  /** Reads every backlog and cuts the largest until the total is within the budget; returns how many. */
  sweep(): number {
    this.added = 0;
    const outlets: QueuedOutlet[] = [];
    /** Bytes held, negative for a connection that is closing already: those go first. */
    const sizes: number[] = [];
    let total = 0;
    for (const source of this.sources)
      for (const outlet of source()) {
        const bytes = outlet.queuedBytes();
        if (bytes <= 0) continue;
        outlets.push(outlet);
        sizes.push(outlet.closing ? -bytes : bytes);
        total += bytes;
      }
    const before = total;
    let cut = 0;
    if (total > this.limitBytes) {
      // Connections already closed whose queues are still held, then the largest live ones.
      const order = sizes
        .map((_, i) => i)
        .sort((a, b) => {
          const x = sizes[a]!;
          const y = sizes[b]!;
          return x < 0 !== y < 0 ? x - y : Math.abs(y) - Math.abs(x);
        });
      for (const i of order) {
        if (total <= this.limitBytes) break;
        if (outlets[i]!.cut()) cut++;
        total -= Math.abs(sizes[i]!);
      }
      if (cut > 0) this.hooks.onCut?.(cut, before);
    }
    this.known = total;
    return cut;
  }
}
