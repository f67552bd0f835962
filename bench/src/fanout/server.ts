/**
 * Entry point of a server-under-test process. The bench forks one per (system, scenario), so
 * every measurement starts from a fresh heap; it asks for `start`, then `stats` (RSS after GC,
 * CPU time, event-loop utilization, subscriptions) between phases, and kills the process at the end.
 */
import { performance } from 'node:perf_hooks';
import { writeHeapSnapshot } from 'node:v8';
import { rssAfterGc, serveRequests } from '../common/ipc.js';
import { startBare } from './systems/bare.js';
import { startEdfs } from './systems/edfs.js';
import { startNaive } from './systems/naive.js';
import type { RunningSystem, SystemName, SystemOptions } from './systems/types.js';

const starters: Record<SystemName, (o: SystemOptions) => Promise<RunningSystem>> = {
  edfs: (o) => startEdfs(o, 'core'),
  'edfs-cursors': (o) => startEdfs(o, 'cursors'),
  'edfs-jetstream': (o) => startEdfs(o, 'jetstream'),
  naive: startNaive,
  bare: startBare,
};

let system: RunningSystem | undefined;

export interface ServerStats {
  rss: number;
  heapUsed: number;
  /** User + system CPU time of the process so far, in microseconds. */
  cpuUs: number;
  /** Event-loop time spent busy so far (ms), and total (ms), for utilization between samples. */
  eluActiveMs: number;
  eluIdleMs: number;
  subscriptions: number;
  details: Record<string, number>;
}

serveRequests({
  async start(payload: { system: SystemName; options: SystemOptions }) {
    system = await starters[payload.system](payload.options);
    return { url: system.url };
  },
  async stats(payload: { gc?: boolean } = {}): Promise<ServerStats> {
    const mem = payload.gc ? await rssAfterGc() : process.memoryUsage();
    const cpu = process.cpuUsage();
    const elu = performance.eventLoopUtilization();
    return {
      rss: mem.rss,
      heapUsed: mem.heapUsed,
      cpuUs: cpu.user + cpu.system,
      eluActiveMs: elu.active,
      eluIdleMs: elu.idle,
      subscriptions: (await system?.subscriptions()) ?? 0,
      details: (await system?.details?.()) ?? {},
    };
  },
  async stop() {
    await system?.close();
    system = undefined;
  },
  /** For finding where per-connection memory goes (BENCH_HEAPSNAPSHOT). */
  heapSnapshot(payload: { path: string }) {
    return writeHeapSnapshot(payload.path);
  },
  /** A normal exit, so `--cpu-prof` writes its profile (the bench otherwise kills the process). */
  exit() {
    setTimeout(() => process.exit(0), 10);
  },
});
