/**
 * How busy the machine was with work other than this benchmark, from Linux's /proc: CPU time of
 * the whole machine minus that of this process and its descendants (load generator, servers
 * under test, subgraph, nats-server). The bench shares its CPUs with whatever else runs; this
 * says how much did, per run, so a noisy number can be recognised as such. Off Linux: undefined.
 *
 * Also the CPU time and resident memory of one process and its descendants (`processTree`), for
 * servers the bench starts as plain commands and so cannot ask over IPC.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';

export interface CpuSample {
  /** Non-idle and total CPU ticks of the machine (all CPUs). */
  machineBusy: number;
  machineTotal: number;
  /** CPU ticks of this process tree. */
  ours: number;
}

export function sampleCpu(): CpuSample | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8')
      .split('\n', 1)[0]!
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    // user nice system idle iowait irq softirq steal ...
    const idle = fields[3]! + fields[4]!;
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
    return { machineBusy: total - idle, machineTotal: total, ours: treeTicks(process.pid) };
  } catch {
    return undefined;
  }
}

/** CPUs' worth of work by other processes between two samples (0.5 = half a core). */
export function foreignCores(a: CpuSample | undefined, b: CpuSample | undefined): number {
  if (!a || !b || b.machineTotal <= a.machineTotal) return NaN;
  const foreign = b.machineBusy - a.machineBusy - (b.ours - a.ours);
  return Math.max(0, (foreign / (b.machineTotal - a.machineTotal)) * cpus().length);
}

/** Linux reports CPU time in clock ticks of 1/100 s (`getconf CLK_TCK` on every mainstream kernel). */
const TICK_MS = 10;

/**
 * CPU time (user + system, ms) and resident memory (bytes) of `root` and every descendant,
 * from /proc; undefined off Linux or when `root` has exited.
 */
export function processTree(root: number): { cpuMs: number; rssBytes: number } | undefined {
  const { stats, children } = processTable();
  if (!stats.has(root)) return undefined;
  let ticks = 0;
  let rssBytes = 0;
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    ticks += stats.get(pid)?.ticks ?? 0;
    try {
      const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (match) rssBytes += Number(match[1]) * 1024;
    } catch {
      // The process ended while we looked.
    }
    queue.push(...(children.get(pid) ?? []));
  }
  return { cpuMs: ticks * TICK_MS, rssBytes };
}

function treeTicks(root: number): number {
  const { stats, children } = processTable();
  let ticks = 0;
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    ticks += stats.get(pid)?.ticks ?? 0;
    queue.push(...(children.get(pid) ?? []));
  }
  return ticks;
}

function processTable(): {
  stats: Map<number, { ppid: number; ticks: number }>;
  children: Map<number, number[]>;
} {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const text = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
      stats.set(Number(entry), { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) });
    } catch {
      // The process ended while we looked.
    }
  }
  const children = new Map<number, number[]>();
  for (const [pid, s] of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), pid]);
  return { stats, children };
}
