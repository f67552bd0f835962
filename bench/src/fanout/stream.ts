/**
 * The JetStream stream the router's resumable variants read (graph.ts STREAM_NAME), on the
 * bench's nats-server. Each run gets a fresh one, so no other run stores events and every run
 * starts with an empty stream and no consumers.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import { STREAM_NAME, SUBJECT } from './graph.js';
import { sleep } from './load.js';

/** Creates the stream afresh (file storage, the server's defaults); resolves to its removal. */
export async function freshStream(jsm: JetStreamManager): Promise<() => Promise<void>> {
  await jsm.streams.delete(STREAM_NAME).catch(() => undefined);
  await jsm.streams.add({ name: STREAM_NAME, subjects: [SUBJECT] });
  return async () => {
    await jsm.streams.delete(STREAM_NAME).catch(() => undefined);
  };
}

/**
 * Waits until the router's durable consumer exists, so events published from then on reach it:
 * a new consumer delivers what comes after its creation, and the router counts a subscription
 * before its consumer is created.
 */
export async function consuming(jsm: JetStreamManager, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await jsm.consumers.list(STREAM_NAME).next()).length === 0) {
    if (Date.now() > deadline) throw new Error(`fan-out bench: timed out waiting for ${what}`);
    await sleep(50);
  }
}
