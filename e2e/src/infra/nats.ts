/**
 * A real nats-server for tests: installed once per machine by `e2e/infra/nats.sh` (cached outside
 * the repository), started per test file on a free 127.0.0.1 port.
 *
 * Invariants: every server this module starts is stopped by pid, by `stop()` or at process exit;
 * `restart()` brings the server back on the same port with the same JetStream store, so clients
 * see an outage, not a new server; a start that loses its port to another process retries on a
 * fresh one.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NatsServerOptions {
  /** Enable JetStream with a temporary store directory. */
  jetstream?: boolean;
  /** Require this token (`--auth`). */
  token?: string;
  /** Require this user and password (`--user`/`--pass`). */
  user?: string;
  password?: string;
  /** Listen on this port instead of a free one (no retry elsewhere if it is taken). */
  port?: number;
}

export interface NatsServer {
  /** `nats://127.0.0.1:PORT` (no credentials in it). */
  url: string;
  port: number;
  /** The JetStream store directory, when JetStream is on. */
  storeDir?: string;
  /** Stops the server and removes its store. Idempotent. */
  stop(): Promise<void>;
  /** Stops the server and starts it again on the same port with the same store. */
  restart(): Promise<void>;
  /** Client subscriptions the server holds on exactly `subject` (from its monitoring endpoint). */
  subscriptionCount(subject: string): Promise<number>;
}

const SCRIPT = fileURLToPath(new URL('../../infra/nats.sh', import.meta.url));
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;
const START_ATTEMPTS = 5;

let binary: Promise<string> | undefined;

/** Path of the nats-server binary, installing it on first use (once per process). */
export function natsServerBinary(): Promise<string> {
  binary ??= new Promise<string>((resolve, reject) => {
    const child = execFile('bash', [SCRIPT], { maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) {
        reject(new Error(`${SCRIPT} failed (${error.message}):\n${stderr}`));
        return;
      }
      const path = stdout.trim().split('\n').pop()?.trim();
      if (!path) reject(new Error(`${SCRIPT} printed no binary path:\n${stderr}`));
      else resolve(path);
    });
    // Progress of a first install (a minute or so) shows up while the tests wait.
    child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  });
  binary.catch(() => {
    binary = undefined;
  });
  return binary;
}

export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const bin = await natsServerBinary();
  const storeDir = options.jetstream ? await mkdtemp(join(tmpdir(), 'edfs-nats-js-')) : undefined;
  const monitorPort = await freePort();
  const args = (port: number): string[] => [
    '-a',
    '127.0.0.1',
    '-p',
    String(port),
    '-m',
    String(monitorPort),
    ...(storeDir ? ['-js', '-sd', storeDir] : []),
    ...(options.token ? ['--auth', options.token] : []),
    ...(options.user ? ['--user', options.user, '--pass', options.password ?? ''] : []),
  ];

  let running: Running | undefined;
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < START_ATTEMPTS && !running; attempt++) {
    try {
      running = await launch(bin, args(options.port ?? (await freePort())));
    } catch (error) {
      lastError = error as Error;
      if (!(error instanceof PortInUseError) || options.port !== undefined) break;
    }
  }
  if (!running) {
    if (storeDir) await rm(storeDir, { recursive: true, force: true });
    throw lastError ?? new Error('nats-server did not start');
  }

  const port = running.port;
  let stopped = false;
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    ...(storeDir ? { storeDir } : {}),
    async stop() {
      if (stopped) return;
      stopped = true;
      await running?.stop();
      if (storeDir) await rm(storeDir, { recursive: true, force: true });
    },
    async subscriptionCount(subject) {
      const res = await fetch(`http://127.0.0.1:${monitorPort}/connz?subs=1`);
      const connz = (await res.json()) as { connections?: { subscriptions_list?: string[] }[] };
      return (connz.connections ?? []).flatMap((c) => c.subscriptions_list ?? []).filter((s) => s === subject)
        .length;
    },
    async restart() {
      if (stopped) throw new Error('nats-server was stopped; start a new one');
      await running?.stop();
      running = undefined;
      // The port was ours a moment ago; retry briefly in case the kernel still holds it.
      for (let attempt = 0; ; attempt++) {
        try {
          running = await launch(bin, args(port));
          return;
        } catch (error) {
          if (!(error instanceof PortInUseError) || attempt >= 20) throw error;
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------

class PortInUseError extends Error {}

interface Running {
  port: number;
  stop(): Promise<void>;
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

async function launch(bin: string, args: string[]): Promise<Running> {
  const port = Number(args[args.indexOf('-p') + 1]);
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  let log = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then(() => children.delete(child));

  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`nats-server on port ${port} not ready after ${READY_TIMEOUT_MS} ms:\n${log}`)),
      READY_TIMEOUT_MS,
    );
    child.stderr!.on('data', (chunk: Buffer) => {
      log = (log + chunk.toString()).slice(-20_000);
      if (log.includes('Server is ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      const message = `nats-server ${args.join(' ')} exited with code ${code}:\n${log}`;
      reject(/address already in use/i.test(log) ? new PortInUseError(message) : new Error(message));
    });
  });

  try {
    await ready;
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    throw error;
  }
  return {
    port,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A port on 127.0.0.1 that was free a moment ago. */
/** `count` distinct ports that were free a moment ago (held open together, so never the same one twice). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.unref();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => {
    const address = server.address();
    return typeof address === 'object' && address ? address.port : 0;
  });
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  if (ports.includes(0)) throw new Error('no free port');
  return ports;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}
