/**
 * What the operator's process loads. The operator shares the router's config loader (so it refuses
 * what a router would refuse) through `@edfs/router/config`, which must not bring the router
 * runtime with it: no broker client, HTTP server or WebSocket library, and never the demo.
 *
 * Each case runs a fresh `node` over the built packages (dist/, as `edfs` runs them) with module
 * resolution hooks (fixtures/modules/record-resolved.mjs) recording every ES module resolved, and
 * reads `require.cache` for the CommonJS ones.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from '@jest/globals';

const OPERATOR_DIR = fileURLToPath(new URL('..', import.meta.url));
const HOOKS = new URL('./fixtures/modules/record-resolved.mjs', import.meta.url).href;
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

const SCRIPT = `
import { createRequire, register } from 'node:module';
register(process.env.HOOKS);
for (const entry of JSON.parse(process.env.ENTRIES)) await import(entry);
process.stdout.write(JSON.stringify(Object.keys(createRequire(process.cwd() + '/').cache)));
`;

interface Loaded {
  /** ES modules: the importing module's URL ('' for the entry points) and the resolved URL. */
  esm: { parent: string; url: string }[];
  /** CommonJS modules, as URLs. */
  cjs: string[];
}

/** Imports `entries` (URLs or package specifiers, resolved from operator/) in a new process. */
async function load(entries: string[]): Promise<Loaded> {
  const record = join(mkdtempSync(join(tmpdir(), 'edfs-modules-')), 'resolved.tsv');
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', SCRIPT], {
    cwd: OPERATOR_DIR,
    env: { ...process.env, HOOKS, ENTRIES: JSON.stringify(entries), EDFS_RECORD_MODULES: record },
  });
  const esm = readFileSync(record, 'utf8')
    .trimEnd()
    .split('\n')
    .map((line) => {
      const [parent = '', url = ''] = line.split('\t');
      return { parent, url };
    });
  const cjs = (JSON.parse(stdout) as string[]).map((path) => pathToFileURL(path).href);
  return { esm, cjs };
}

function urls(loaded: Loaded): string[] {
  return [...new Set([...loaded.esm.map((m) => m.url), ...loaded.cjs])];
}

/** The npm package a module URL belongs to, if any. */
function packageOf(url: string): string | undefined {
  return /.*\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
}

function packages(loaded: Loaded): Set<string> {
  return new Set(urls(loaded).flatMap((url) => packageOf(url) ?? []));
}

/** Modules of the router workspace, relative to its dist/. */
function routerModules(loaded: Loaded): string[] {
  return urls(loaded).flatMap((url) => /\/router\/dist\/(.*)$/.exec(url)?.[1] ?? []);
}

describe('modules the operator loads', () => {
  it('@edfs/router/config loads the config modules and none of the router runtime or its libraries', async () => {
    const loaded = await load(['@edfs/router/config']);

    expect(routerModules(loaded)).toContain('config/load.js');
    expect(routerModules(loaded).filter((path) => !path.startsWith('config/'))).toEqual([]);
    expect(RUNTIME_PACKAGES.filter((name) => packages(loaded).has(name))).toEqual([]);
  }, 30_000);

  it('the package root, by contrast, loads the brokers, the HTTP server and the WebSocket library', async () => {
    const loaded = await load(['@edfs/router']);

    expect(RUNTIME_PACKAGES.filter((name) => packages(loaded).has(name))).toEqual(RUNTIME_PACKAGES);
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
