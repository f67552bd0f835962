/**
 * The gateways under load, each started the way its users start it, as its own process:
 *
 * - ours: `router/bin/edfs-router.js -c router.yaml`, the execution config composed by
 *   `composeSupergraph` written beside it (as the e2e suites and the operator's pods run it);
 * - Hive Gateway: its `hive-gateway supergraph FILE` command on the Federation supergraph SDL that
 *   `@theguild/federation-composition` (the composition Hive itself uses) makes of the same four
 *   subgraph SDLs and URLs.
 *
 * The bench reads each process's CPU time and resident memory from /proc (common/machine.ts), so
 * nothing inside a gateway has to cooperate. Both run with NODE_ENV=production and warn-level logs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'graphql';
import { composeServices } from '@theguild/federation-composition';
import { freePort } from '@edfs/e2e/dist/infra/nats.js';

export interface RunningGateway {
  label: string;
  /** The GraphQL endpoint. */
  url: string;
  pid: number;
  close(): Promise<void>;
}

const ROUTER_BIN = fileURLToPath(new URL('../../../router/bin/edfs-router.js', import.meta.url));
const require = createRequire(import.meta.url);
const HIVE_BIN = join(dirname(require.resolve('@graphql-hive/gateway/package.json')), 'dist', 'bin.js');

/**
 * Ours: `yaml` lines are added to the generated router.yaml (e.g. traffic_shaping); `bin` is
 * another build's `edfs-router.js` (a baseline to compare with), default this checkout's.
 */
export async function startOurs(
  label: string,
  configJson: string,
  yaml: string[] = [],
  bin = ROUTER_BIN,
): Promise<RunningGateway> {
  const dir = await mkdtemp(join(tmpdir(), 'edfs-bench-router-'));
  const port = await freePort();
  const metricsPort = await freePort();
  await writeFile(join(dir, 'config.json'), configJson);
  await writeFile(
    join(dir, 'router.yaml'),
    [
      `listen_addr: 127.0.0.1:${port}`,
      'log_level: warn',
      'shutdown_delay: 0s',
      'execution_config: { file: { path: ./config.json, watch: false } }',
      `telemetry: { metrics: { prometheus: { listen_addr: 127.0.0.1:${metricsPort} } } }`,
      ...yaml,
    ].join('\n'),
  );
  // For finding where time and memory go: e.g. --trace-gc, --cpu-prof, --heapsnapshot-signal=SIGUSR2.
  const nodeArgs = (process.env.BENCH_ROUTER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const stdout = process.env.BENCH_ROUTER_STDOUT ? openSync(process.env.BENCH_ROUTER_STDOUT, 'a') : 'ignore';
  const child = spawn(process.execPath, [...nodeArgs, bin, '-c', join(dir, 'router.yaml')], {
    cwd: dir,
    env: { ...process.env, NODE_ENV: 'production' },
    stdio: ['ignore', stdout, 'pipe'],
  });
  return ready(label, `http://127.0.0.1:${port}/graphql`, child, () =>
    rm(dir, { recursive: true, force: true }),
  );
}

/** Hive Gateway on the supergraph SDL of the same subgraphs. */
export async function startHive(
  subgraphs: { name: string; url: string; sdl: string }[],
): Promise<RunningGateway> {
  const composed = composeServices(
    subgraphs.map((s) => ({ name: s.name, url: s.url, typeDefs: parse(s.sdl) })),
  );
  if (!composed.supergraphSdl)
    throw new Error(
      `supergraph SDL for Hive Gateway: ${(composed.errors ?? []).map((e) => e.message).join('; ')}`,
    );
  const dir = await mkdtemp(join(tmpdir(), 'edfs-bench-hive-'));
  const file = join(dir, 'supergraph.graphql');
  await writeFile(file, composed.supergraphSdl);
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [HIVE_BIN, 'supergraph', file, '--host', '127.0.0.1', '--port', String(port)],
    {
      cwd: dir,
      env: { ...process.env, NODE_ENV: 'production', LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  return ready('Hive Gateway', `http://127.0.0.1:${port}/graphql`, child, () =>
    rm(dir, { recursive: true, force: true }),
  );
}

/** Resolves once `url` answers `{ __typename }`; rejects with the process's stderr if it never does. */
async function ready(
  label: string,
  url: string,
  child: ChildProcess,
  cleanup: () => Promise<void>,
): Promise<RunningGateway> {
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  /** SIGTERM first, so profiles asked for by node flags are written; SIGKILL after 5 s. */
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    await cleanup();
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      await cleanup();
      throw new Error(`${label} exited with ${child.exitCode} before it served:\n${stderr}`);
    }
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"query":"{ __typename }"}',
      });
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await close();
      throw new Error(`${label} did not answer at ${url} within 30 s:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { label, url, pid: child.pid!, close };
}
