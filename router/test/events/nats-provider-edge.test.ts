/**
 * The NATS provider against a stand-in server (a fake: an in-process TCP server speaking just
 * enough of the NATS protocol, INFO and PONG, and recording every line the client sends). The
 * real nats-server runs in e2e/test/hardening-edge.test.ts; here the point is what the provider
 * sends, or does not send:
 * - a subject whose protocol line would exceed the server's max_control_line is refused before
 *   anything is written, so the shared connection stays up;
 * - every time the connection comes back, `onReconnect` fires (the reconnect metric).
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { NatsProvider } from '../../src/events/nats/index.js';
import { ProviderError } from '../../src/events/provider.js';
import { createProviders } from '../../src/events/providers.js';
import { createRouterMetrics } from '../../src/observability/metrics.js';

interface FakeNats {
  url: string;
  /** Protocol lines received (first 60 characters each). */
  lines: string[];
  /** Connections ever accepted. */
  accepted: number;
  /** Drops every client connection, as a server restart would. */
  dropClients(): void;
  close(): Promise<void>;
}

async function startFakeNats(): Promise<FakeNats> {
  const sockets = new Set<Socket>();
  const fake: FakeNats = {
    url: '',
    lines: [],
    accepted: 0,
    dropClients: () => {
      for (const socket of sockets) socket.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((socket) => {
    fake.accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.write(
      'INFO {"server_id":"FAKE","server_name":"fake","version":"2.10.0","proto":1,"max_payload":1048576,"headers":true}\r\n',
    );
    let buffer = '';
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      for (let end = buffer.indexOf('\r\n'); end >= 0; end = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        fake.lines.push(line.slice(0, 60));
        if (line === 'PING') socket.write('PONG\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `nats://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}

let fake: FakeNats | undefined;
let provider: NatsProvider | undefined;
afterEach(async () => {
  await provider?.close();
  await fake?.close();
  provider = undefined;
  fake = undefined;
});

const noop = (): void => undefined;
const huge = `room.${'r'.repeat(4100)}.messages`;

async function rejection(promise: Promise<unknown>): Promise<ProviderError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ProviderError);
    return error as ProviderError;
  }
  throw new Error('expected a ProviderError');
}

describe('protocol lines longer than the server accepts are never sent', () => {
  it('a SUB, PUB or request over max_control_line is refused and the connection stays up', async () => {
    fake = await startFakeNats();
    provider = new NatsProvider({ id: 'default', url: fake.url });
    await provider.connect();

    const sub = await rejection(provider.subscribe({ subjects: [huge] }, noop, noop));
    expect(sub.message).toContain('max_control_line of 4096 bytes');
    expect(sub.message).toContain('(4114 bytes)');
    expect(sub.message.length).toBeLessThan(500);
    expect((await rejection(provider.publish(huge, new Uint8Array(2)))).message).toContain(
      'max_control_line',
    );
    expect((await rejection(provider.request(huge, new Uint8Array(2), 1000))).message).toContain(
      'max_control_line',
    );

    // Nothing about the refused subject reached the server; the same connection still serves.
    await provider.subscribe({ subjects: ['room.1.messages'] }, noop, noop);
    expect(fake.lines.some((line) => line.includes('rrrr'))).toBe(false);
    expect(fake.lines).toContain('SUB room.1.messages 1');
    expect(fake.accepted).toBe(1);
    expect(provider.status()).toEqual({ ready: true });
  });

  it("a server configured with a smaller max_control_line is the provider's limit", async () => {
    fake = await startFakeNats();
    provider = new NatsProvider({ id: 'default', url: fake.url, maxControlLine: 1024 });
    await provider.connect();
    const subject = `a.${'x'.repeat(1010)}`;
    expect((await rejection(provider.subscribe({ subjects: [subject] }, noop, noop))).message).toContain(
      'max_control_line of 1024 bytes',
    );
    await provider.subscribe({ subjects: [`a.${'x'.repeat(990)}`] }, noop, noop);
  });
});

describe('reconnects are counted', () => {
  it('onReconnect fires once per reconnect', async () => {
    fake = await startFakeNats();
    let reconnects = 0;
    provider = new NatsProvider(
      { id: 'default', url: fake.url },
      { reconnectTimeWaitMs: 50, onReconnect: () => reconnects++ },
    );
    await provider.connect();
    expect(reconnects).toBe(0);
    for (let round = 1; round <= 2; round++) {
      fake.dropClients();
      const deadline = Date.now() + 10_000;
      while (reconnects < round && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(reconnects).toBe(round);
    }
    expect(provider.status()).toEqual({ ready: true });
  });

  it('createProviders wires NATS reconnects to router_events_provider_reconnects_total', async () => {
    fake = await startFakeNats();
    const metrics = createRouterMetrics({ processMetrics: false });
    const providers = await createProviders(
      { nats: [{ id: 'chat', url: fake.url }] },
      { metrics, nats: { reconnectTimeWaitMs: 50 } },
    );
    provider = providers.get('chat') as NatsProvider;
    await provider.connect();
    fake.dropClients();
    const read = async () =>
      (await metrics.providerReconnects.get()).values.find((v) => v.labels.provider_id === 'chat')?.value ??
      0;
    const deadline = Date.now() + 10_000;
    while ((await read()) < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(await read()).toBe(1);
  });
});
