/**
 * SocketWriter (server/socket-writer.ts) on its own: frames coalesce into one write per turn when
 * events come fast, what is queued counts frame overhead, and result frames it frames itself read
 * exactly, in order with `ws`'s own frames, by a real `ws` client.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from '@jest/globals';
import type { WebSocket } from 'ws';
import { WEBSOCKET_FRAME_OVERHEAD_BYTES } from '../../src/protocols/send-budget.js';
import { SocketWriter } from '../../src/server/socket-writer.js';

/** A `ws` WebSocket as far as the writer uses it, logging what reaches the TCP socket. */
function fakeSocket(log: string[], name: string): WebSocket {
  let corks = 0;
  const tcp = {
    cork: () => {
      corks++;
      log.push(`${name}:cork`);
    },
    uncork: () => {
      corks--;
      log.push(`${name}:uncork`);
    },
  };
  return {
    _socket: tcp,
    bufferedAmount: 0,
    send: (text: string) => log.push(`${name}:${corks > 0 ? 'queued' : 'written'} ${text}`),
    close: () => undefined,
  } as unknown as WebSocket;
}

describe('SocketWriter: coalescing frames into one write per turn', () => {
  it('sparse frames leave at once; a second frame in a turn corks; the next second corks from the first frame', async () => {
    await new Promise((r) => setTimeout(r, 1_100)); // no coalescing left from other tests
    const log: string[] = [];
    const a = new SocketWriter(fakeSocket(log, 'a'));
    const b = new SocketWriter(fakeSocket(log, 'b'));

    // Sparse: one frame per socket per turn, each written at once.
    a.send('1');
    b.send('1');
    await nextTurn();
    expect(log).toEqual(['a:written 1', 'b:written 1']);

    // Two events in one turn: the second frame corks, the turn's end writes it.
    log.length = 0;
    a.send('2');
    a.send('3');
    b.send('2');
    await nextTurn();
    expect(log).toEqual(['a:written 2', 'a:cork', 'a:queued 3', 'b:written 2', 'a:uncork']);

    // Events come fast: every socket is corked from its first frame, one write per turn.
    log.length = 0;
    a.send('4');
    b.send('4');
    await nextTurn();
    expect(log).toEqual(['a:cork', 'a:queued 4', 'b:cork', 'b:queued 4', 'a:uncork', 'b:uncork']);

    // A second without a coalesced turn: back to writing at once.
    await new Promise((r) => setTimeout(r, 1_100));
    log.length = 0;
    a.send('5');
    await nextTurn();
    expect(log).toEqual(['a:written 5']);
  });

  it('bytes queued in the current turn are not backlog while the client keeps up', async () => {
    const ws = fakeSocket([], 'a') as unknown as { bufferedAmount: number };
    const writer = new SocketWriter(ws as unknown as WebSocket);
    writer.send('x'.repeat(100));
    ws.bufferedAmount = 100;
    expect(writer.bufferedAmount()).toBe(0);
    await nextTurn();
    // Still queued a turn later: backlog, each frame with what it holds besides its bytes.
    expect(writer.bufferedAmount()).toBe(100 + WEBSOCKET_FRAME_OVERHEAD_BYTES);
  });

  it('a client that is behind: its backlog, and for the budget this turn’s frames too, each with its overhead', async () => {
    const ws = fakeSocket([], 'a') as unknown as { bufferedAmount: number };
    const writer = new SocketWriter(ws as unknown as WebSocket);
    for (let i = 0; i < 10; i++) writer.send('x'.repeat(100));
    await nextTurn();
    ws.bufferedAmount = 1000; // nothing left the process
    for (let i = 0; i < 10; i++) writer.send('x'.repeat(100));
    ws.bufferedAmount = 2000;
    // Its own limit counts the backlog of earlier turns; the budget, all it holds.
    expect(writer.bufferedAmount()).toBe(1000 + 10 * WEBSOCKET_FRAME_OVERHEAD_BYTES);
    expect(writer.queuedBytes()).toBe(2000 + 20 * WEBSOCKET_FRAME_OVERHEAD_BYTES);
  });
});

describe('SocketWriter: result frames framed once per event', () => {
  it('a real ws client reads every size of result frame exactly, in order with plain frames', async () => {
    const { WebSocketServer, WebSocket: Client } = await import('ws');
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as { port: number }).port;
    try {
      const accepted = new Promise<WebSocket>((r) => server.once('connection', r));
      const client = new Client(`ws://127.0.0.1:${port}`);
      const received: string[] = [];
      client.on('message', (data) => received.push(String(data)));
      await new Promise((r) => client.once('open', r));
      const writer = new SocketWriter(await accepted);

      // Payload sizes on both sides of the 7-bit, 16-bit and 64-bit length encodings, and UTF-8.
      const texts = [10, 125 - 12, 126, 300, 65_535 - 12, 65_536, 70_000].map((n) =>
        JSON.stringify({ data: { s: 'é'.repeat(Math.max(0, Math.floor(n / 2) - 20)) } }),
      );
      const expected: string[] = [];
      writer.send('{"type":"connection_ack"}');
      expected.push('{"type":"connection_ack"}');
      const envelope = { open: '{"id":', close: ',"type":"next","payload":' };
      for (const [i, json] of texts.entries()) {
        const id = JSON.stringify(i % 2 ? `op-${i}` : `é${i}`); // ids with multi-byte characters too
        writer.sendResult(envelope, id, json);
        writer.sendResult(envelope, id, json); // the same text again: encoded once
        const frame = `{"id":${id},"type":"next","payload":${json}}`;
        expected.push(frame, frame);
        if (i === 3) await nextTurn(); // some frames alone in a turn, some coalesced
      }
      writer.send('{"type":"ping"}');
      expected.push('{"type":"ping"}');
      await waitUntil(() => received.length >= expected.length);
      expect(received).toEqual(expected);
      client.close();
    } finally {
      server.close();
    }
  });
});

async function waitUntil(done: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
}
