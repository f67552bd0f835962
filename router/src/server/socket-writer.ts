/**
 * The frames of one WebSocket connection on their way to the TCP socket, written through `ws`'s
 * internals where `ws` would cost too much at fan-out: result frames are framed here around text
 * encoded once per event (`ws.send` encodes per socket), and frames corked into one write per
 * event-loop turn when events come fast. The WebSocket transport (websocket.ts) makes one per
 * connection; the protocols see only its `ProtocolSocket` face.
 *
 * Invariants: frames leave in the order they were sent, `ws`'s own frames included (no
 * compression, so `ws` writes straight to the socket too); a turn's corked frames leave when the
 * turn ends; every frame is charged to the send buffer budget.
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import {
  ConnectionCloseCode,
  type ProtocolConnection,
  type ProtocolSocket,
  type ResultEnvelope,
} from '../protocols/connection.js';
import {
  backlogCost,
  heldCost,
  nextAverage,
  WEBSOCKET_FRAME_OVERHEAD_BYTES,
  type QueuedOutlet,
  type SendBudget,
} from '../protocols/send-budget.js';

/**
 * Writes one connection's frames, coalescing them when events come fast. Sparse events: the
 * first frame of an event-loop turn leaves at once (lowest latency); a second frame in the same
 * turn corks the socket, and everything queued in that turn leaves in one write when it ends.
 * Once a turn has coalesced frames on any socket (events arrive faster than turns end), the turns
 * of the next second cork every socket from its first frame: each socket costs one write per turn
 * however many events the turn delivers, and the fan-out loop itself only queues (the writes
 * follow in one run), so more events land in the next turn together. Measured: 1.3x the
 * deliveries/s of first-frame-at-once at 10,000 sockets (`npm run bench -- fanout`). One
 * `setImmediate` per turn serves every socket.
 * Bytes queued in the current turn are not backlog, so they do not count against the send buffer
 * limit (`bufferedAmount`). What is queued counts what it holds in memory: its bytes plus the
 * overhead of each frame in it (protocols/send-budget.ts), and every frame is charged to the
 * router's send buffer budget, which may cut this connection (`cut`) when it holds the most.
 */
export class SocketWriter implements ProtocolSocket, QueuedOutlet {
  private readonly tcp: Socket | undefined;
  /** The socket's `bytesRead` when the last heartbeat ping went out; -1: none went out yet. */
  private readAtPing = -1;
  /** Bytes (about: characters of `send`) queued in the current turn (0: none yet). */
  private turnBytes = 0;
  /** The recent frames' size, to tell how many frames a backlog holds. */
  private frameBytes = 0;
  private corked = false;
  /** The protocol connection on this socket, closed as a slow consumer when the budget cuts it. */
  connection: ProtocolConnection | undefined = undefined;

  constructor(
    private readonly ws: WebSocket,
    private readonly budget?: SendBudget,
  ) {
    this.tcp = (ws as unknown as { _socket?: Socket })._socket;
  }

  send(text: string): void {
    this.beginFrame(text.length);
    this.ws.send(text);
    this.budget?.charge(text.length + WEBSOCKET_FRAME_OVERHEAD_BYTES);
  }

  /**
   * A result frame, framed here rather than by `ws`: the engine's text is encoded once per event
   * for all sockets (`encodedOnce`) and written after this socket's own frame header, envelope and
   * id, one gather write; `ws.send` would encode the whole text again for every socket. Frames
   * leave in order with those `ws` writes itself (it writes straight to the socket: no
   * compression).
   */
  sendResult(envelope: ResultEnvelope, idJson: string, json: string): void {
    const tcp = this.tcp;
    if (!tcp || this.ws.readyState !== this.ws.OPEN)
      return this.send(envelope.open + idJson + envelope.close + json + '}');
    const body = encodedOnce(json);
    const idBytes = Buffer.byteLength(idJson);
    const prefixBytes = envelope.open.length + idBytes + envelope.close.length;
    const length = prefixBytes + body.length;
    const headerBytes = length < 126 ? 2 : length < 65536 ? 4 : 10;
    const head = Buffer.allocUnsafe(headerBytes + prefixBytes);
    head[0] = 0x81; // FIN, text
    if (headerBytes === 2) head[1] = length;
    else if (headerBytes === 4) {
      head[1] = 126;
      head.writeUInt16BE(length, 2);
    } else {
      head[1] = 127;
      head.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
      head.writeUInt32BE(length >>> 0, 6);
    }
    let at = headerBytes + head.write(envelope.open, headerBytes, 'latin1');
    at += head.write(idJson, at);
    head.write(envelope.close, at, 'latin1');

    this.beginFrame(length);
    if (this.corked) {
      tcp.write(head);
      tcp.write(body);
    } else {
      tcp.cork();
      tcp.write(head);
      tcp.write(body);
      tcp.uncork();
    }
    this.budget?.charge(length + WEBSOCKET_FRAME_OVERHEAD_BYTES);
  }

  close(code: number, reason: string): void {
    this.ws.close(code, reason);
    // A slow consumer's close frame waits behind its queue; the queue is freed by then at the latest.
    if (code === ConnectionCloseCode.SlowConsumer)
      setTimeout(terminateSocket, SLOW_CONSUMER_CLOSE_GRACE_MS, this.ws).unref();
  }

  /**
   * One heartbeat tick: pings the peer, or returns false when it sent nothing at all since the
   * previous ping, not even the pong every WebSocket client answers with (a dead peer). Reading
   * the socket's byte count needs no `pong` listener per socket.
   */
  heartbeat(): boolean {
    const tcp = this.tcp;
    if (!tcp) return true;
    if (this.readAtPing >= 0 && tcp.bytesRead === this.readAtPing) return false;
    this.readAtPing = tcp.bytesRead;
    this.ws.ping();
    return true;
  }

  /** Backlog (what earlier turns queued), with the overhead of each frame in it. */
  bufferedAmount(): number {
    return backlogCost(
      this.ws.bufferedAmount,
      this.turnBytes,
      this.frameBytes,
      WEBSOCKET_FRAME_OVERHEAD_BYTES,
    );
  }

  /** What the queue holds against the send buffer budget: this turn's frames too, once behind. */
  queuedBytes(): number {
    return heldCost(this.ws.bufferedAmount, this.turnBytes, this.frameBytes, WEBSOCKET_FRAME_OVERHEAD_BYTES);
  }

  get closing(): boolean {
    return this.ws.readyState !== this.ws.OPEN;
  }

  /** The budget's cut: closes as a slow consumer; a socket already closing is dropped at once. */
  cut(): boolean {
    const connection = this.connection;
    if (this.ws.readyState === this.ws.OPEN && connection) {
      connection.close(ConnectionCloseCode.SlowConsumer, 'slow consumer: the send buffer budget is used up');
      return true;
    }
    this.ws.terminate();
    return false;
  }

  endTurn(): void {
    this.turnBytes = 0;
    if (this.corked) {
      this.corked = false;
      this.tcp?.uncork();
    }
  }

  /** Before each frame: leave at once, or corked (a second frame this turn, or coalescing). */
  private beginFrame(size: number): void {
    this.frameBytes = nextAverage(this.frameBytes, size);
    if (this.turnBytes === 0) {
      touchedThisTurn(this);
      if (turns.coalescing) this.cork();
    } else {
      turns.coalesced = true;
      if (!this.corked) this.cork();
    }
    this.turnBytes += size;
  }

  private cork(): void {
    if (!this.tcp) return;
    this.corked = true;
    this.tcp.cork();
  }
}

/**
 * How long a slow consumer's socket may take to flush its queue and close frame before it is
 * dropped (`ws` would wait 30 s, holding the queue's memory all that time).
 */
const SLOW_CONSUMER_CLOSE_GRACE_MS = 5000;
function terminateSocket(ws: WebSocket): void {
  if (ws.readyState !== ws.CLOSED) ws.terminate();
}

/** The bytes of `json + "}"`, encoded once while every socket of an event gets the same text. */
const encoded = { json: '', bytes: Buffer.alloc(0) };
function encodedOnce(json: string): Buffer {
  // The same string object for every client of an event: `===` is then a pointer comparison.
  if (json !== encoded.json) {
    encoded.json = json;
    encoded.bytes = Buffer.from(json + '}');
  }
  return encoded.bytes;
}

/** Frames keep coalescing from the first frame this long after a turn last coalesced them. */
const COALESCING_HOLD_MS = 1000;
/** The writers touched in this turn; whether frames coalesce in it; until when they do. */
const turns = { touched: [] as SocketWriter[], coalesced: false, coalescing: false, coalescingUntil: 0 };
function touchedThisTurn(writer: SocketWriter): void {
  if (turns.touched.length === 0) {
    setImmediate(endTurn);
    turns.coalescing = performance.now() < turns.coalescingUntil;
  }
  turns.touched.push(writer);
}
function endTurn(): void {
  for (const writer of turns.touched) writer.endTurn();
  turns.touched.length = 0;
  if (turns.coalesced) turns.coalescingUntil = performance.now() + COALESCING_HOLD_MS;
  turns.coalesced = false;
}
