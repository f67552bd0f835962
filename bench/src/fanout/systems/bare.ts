/**
 * Baseline (b), the physical floor: a bare `ws` server with one NATS subscription that sends a
 * pre-built frame (the exact bytes the GraphQL servers send, the event id filled in once per
 * event) to every socket. No protocol, no GraphQL, no subgraph: what is left is the cost of
 * NATS in, WebSocket framing and socket writes out.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from '@nats-io/transport-node';
import { WebSocketServer } from 'ws';
import { ID_PLACEHOLDER } from '../graph.js';
import type { RunningSystem, SystemOptions } from './types.js';

export async function startBare(options: SystemOptions): Promise<RunningSystem> {
  const nc = await connect({ servers: options.natsUrl });
  const [head, tail] = options.frameTemplate.split(ID_PLACEHOLDER) as [string, string];
  const server = createServer();
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  wss.on('connection', (ws) => ws.on('error', () => undefined));
  nc.subscribe(options.subject, {
    callback: (err, msg) => {
      if (err) return;
      const { id } = msg.json<{ id: string }>();
      const frame = Buffer.from(head + id + tail);
      for (const ws of wss.clients) ws.send(frame, { binary: false });
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    subscriptions: () => wss.clients.size,
    async close() {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      server.close();
      await nc.close();
    },
  };
}
