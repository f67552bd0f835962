/**
 * A broker's client libraries are loaded only for a provider of its kind in router.yaml, and the
 * Kafka replay client only at the first replay: a router without Kafka does not carry kafkajs
 * (about 12 MB) or `@platformatic/kafka` (hundreds of modules, about 30 MB). Each case runs a fresh
 * `node` over the built router (dist/, as `edfs-router` runs it), loads the whole router, builds
 * the providers of a router.yaml (nothing connects) and records every module loaded.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { loadModules, packagesOf } from '../../../e2e/src/fixtures/modules.js';
import type { ProvidersConfig } from '../../src/events/providers.js';

const ROUTER_DIR = fileURLToPath(new URL('../..', import.meta.url));
const dist = (path: string) => pathToFileURL(join(ROUTER_DIR, 'dist', path)).href;
const BROKER_PACKAGES = ['kafkajs', '@platformatic/kafka', '@nats-io/transport-node', '@nats-io/jetstream'];

/** The broker packages loaded by the router once it has built the providers of `config`. */
async function brokerPackagesFor(config: ProvidersConfig): Promise<string[]> {
  const script = join(mkdtempSync(join(tmpdir(), 'edfs-providers-')), 'build.mjs');
  writeFileSync(
    script,
    `import { createProviders } from ${JSON.stringify(dist('events/providers.js'))};
export default () => createProviders(${JSON.stringify(config)});\n`,
  );
  const loaded = await loadModules(ROUTER_DIR, [dist('main.js')], pathToFileURL(script).href);
  const packages = packagesOf(loaded);
  return BROKER_PACKAGES.filter((name) => packages.has(name));
}

describe('broker client libraries', () => {
  it('a router with only the in-process broker loads none', async () => {
    expect(await brokerPackagesFor({ nats: [{ id: 'default', url: 'memory://demo' }] })).toEqual([]);
  }, 30_000);

  it('a NATS provider loads the NATS client only', async () => {
    expect(await brokerPackagesFor({ nats: [{ id: 'default', url: 'nats://127.0.0.1:4222' }] })).toEqual([
      '@nats-io/transport-node',
      '@nats-io/jetstream',
    ]);
  }, 30_000);

  it('a Kafka provider loads kafkajs; the replay client waits for the first replay', async () => {
    expect(
      await brokerPackagesFor({
        nats: [],
        kafka: [{ id: 'kafka', brokers: ['127.0.0.1:9092'], tls: { enabled: false } }],
      }),
    ).toEqual(['kafkajs']);
  }, 30_000);
});
