/**
 * Request/reply over a forked child's IPC channel: the bench process asks, the child (a server
 * under test or the subgraph) answers. One request in flight per id; a child that dies fails every
 * pending request with its exit code, so a crashed server ends the run with a clear message.
 */
import { fork, type ChildProcess } from 'node:child_process';

interface Request {
  id: number;
  type: string;
  payload?: unknown;
}

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

export interface Child {
  readonly process: ChildProcess;
  request<T = unknown>(type: string, payload?: unknown, timeoutMs?: number): Promise<T>;
  /** Resolves when the process has exited (at once if it already has). */
  exited: Promise<void>;
  kill(): Promise<void>;
}

/**
 * Forks `entry` (a compiled module path) with `--expose-gc`, so children can report RSS after GC,
 * plus `execArgv` (e.g. `--cpu-prof`).
 */
export function forkChild(entry: string, name: string, execArgv: string[] = []): Child {
  const child = fork(entry, [], {
    execArgv: ['--expose-gc', ...execArgv],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
  });
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let exitInfo: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = `${name} exited (code ${code ?? '-'}, signal ${signal ?? '-'})`;
      for (const p of pending.values()) p.reject(new Error(exitInfo));
      pending.clear();
      resolve();
    });
  });
  child.on('message', (message: Reply) => {
    const p = pending.get(message.id);
    if (!p) return;
    pending.delete(message.id);
    if (message.ok) p.resolve(message.value);
    else p.reject(new Error(`${name}: ${message.error}`));
  });
  return {
    process: child,
    exited,
    request<T>(type: string, payload?: unknown, timeoutMs = 120_000): Promise<T> {
      if (exitInfo) return Promise.reject(new Error(exitInfo));
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${name}: no answer to "${type}" within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, {
          resolve: (v) => (clearTimeout(timer), resolve(v as T)),
          reject: (e) => (clearTimeout(timer), reject(e)),
        });
        child.send({ id, type, payload } satisfies Request);
      });
    },
    async kill() {
      if (exitInfo === undefined) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** The child side: answers each request with its handler's result (or error message). */
export function serveRequests(handlers: Record<string, (payload: any) => unknown>): void {
  process.on('message', (message: Request) => {
    const handler = handlers[message.type];
    const reply = (r: Reply) => process.send?.(r);
    if (!handler) return reply({ id: message.id, ok: false, error: `unknown request "${message.type}"` });
    Promise.resolve()
      .then(() => handler(message.payload))
      .then(
        (value) => reply({ id: message.id, ok: true, value }),
        (err: unknown) => reply({ id: message.id, ok: false, error: (err as Error)?.stack ?? String(err) }),
      );
  });
  // The bench process going away (even by a crash) takes its children with it.
  process.on('disconnect', () => process.exit(0));
}

/** RSS in bytes after a full GC (when the process runs with --expose-gc) and a short settle. */
export async function rssAfterGc(): Promise<{ rss: number; heapUsed: number }> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 2; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 100));
  }
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed };
}
