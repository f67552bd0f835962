/**
 * What the operator's process loads. The operator shares the router's config loader (so it refuses
 * what a router would refuse) through `@edfs/router/config`, which must not bring the router
 * runtime with it: no broker client, HTTP server or WebSocket library, and never the demo.
 *
 * Each case runs a fresh `node` over the built packages (dist/, as `edfs` runs them) and records
 * every module it loads (e2e/src/fixtures/modules.ts).
 */
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import {
  loadModules,
  moduleUrls as urls,
  packageOf,
  packagesOf as packages,
  routerModules,
} from '../../e2e/src/fixtures/modules.js';

const OPERATOR_DIR = fileURLToPath(new URL('..', import.meta.url));
/** What `edfs operator` loads: the CLI, then the controller's entry point. */
const CONTROLLER_ENTRIES = ['cli/main.js', 'controller/run.js'].map(
  (path) => pathToFileURL(join(OPERATOR_DIR, 'dist', path)).href,
);
/** The router runtime's libraries: brokers, HTTP server and client, WebSocket server. */
const RUNTIME_PACKAGES = [
  'kafkajs',
  'fastify',
  '@nats-io/transport-node',
  '@nats-io/jetstream',
  'ws',
  'undici',
];
/** Of those, the ones the router loads whatever router.yaml says (brokers only for their providers). */
const SERVER_PACKAGES = ['fastify', 'ws', 'undici'];

const load = (entries: string[]) => loadModules(OPERATOR_DIR, entries);

describe('modules the operator loads', () => {
  it('@edfs/router/config loads the config modules and none of the router runtime or its libraries', async () => {
    const loaded = await load(['@edfs/router/config']);

    expect(routerModules(loaded)).toContain('config/load.js');
    expect(routerModules(loaded).filter((path) => !path.startsWith('config/'))).toEqual([]);
    expect(RUNTIME_PACKAGES.filter((name) => packages(loaded).has(name))).toEqual([]);
  }, 30_000);

  it('the package root, by contrast, loads the HTTP server and the WebSocket library', async () => {
    const loaded = await load(['@edfs/router']);

    expect(RUNTIME_PACKAGES.filter((name) => packages(loaded).has(name))).toEqual(SERVER_PACKAGES);
  }, 30_000);

  it('the controller (edfs operator) loads only the router config, never the router runtime or the demo', async () => {
    const loaded = await load(CONTROLLER_ENTRIES);

    expect(packages(loaded)).toContain('@kubernetes/client-node');
    expect(routerModules(loaded)).toContain('config/load.js');
    expect(routerModules(loaded).filter((path) => !path.startsWith('config/'))).toEqual([]);
    expect(urls(loaded).filter((url) => url.includes('/operator/dist/demo/'))).toEqual([]);
    // The Kubernetes client brings `ws` itself (through isomorphic-ws, for exec and attach).
    expect(RUNTIME_PACKAGES.filter((name) => name !== 'ws' && packages(loaded).has(name))).toEqual([]);
    const wsImporters = loaded.esm
      .filter((m) => ['ws', 'isomorphic-ws'].includes(packageOf(m.url) ?? ''))
      .map((m) => packageOf(m.parent) ?? m.parent);
    expect(
      wsImporters.filter((name) => !['@kubernetes/client-node', 'isomorphic-ws', 'ws'].includes(name)),
    ).toEqual([]);
  }, 30_000);
});
