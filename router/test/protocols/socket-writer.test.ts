import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from '@jest/globals';
import type { WebSocket } from 'ws';
import { SocketWriter } from '../../src/server/websocket.js';

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

  it('bytes queued in the current turn are not backlog', async () => {
    const ws = fakeSocket([], 'a') as unknown as { bufferedAmount: number };
    const writer = new SocketWriter(ws as unknown as WebSocket);
    writer.send('x'.repeat(100));
    ws.bufferedAmount = 130;
    expect(writer.bufferedAmount()).toBe(30);
    await nextTurn();
    expect(writer.bufferedAmount()).toBe(130);
  });
});
