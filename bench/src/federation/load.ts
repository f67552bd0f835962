/**
 * Gateways under HTTP load, side by side in one run: the classic four-subgraph graph (graph.ts),
 * each subgraph its own process, and on it our router (dedup off, the defaults, and with inbound
 * dedup too), Hive Gateway, and the floor: the load generator talking to the products subgraph
 * directly. The load generator is autocannon, in this process, closed loop at 32 and 128
 * connections, with two bodies:
 *
 * - fixed: the deep query without variables, every request identical (what dedup can share);
 * - varied: the same query with a random `$offset` per request, so no two requests, and none of
 *   their subgraph requests, are alike (what dedup cannot share: its cost shows here).
 *
 * Per row: requests/s, latency p50 and p99, the gateway process's CPU time per request and its
 * peak resident memory (both from /proc), and subgraph requests per client request, counted at
 * the subgraphs. Windows of all systems are interleaved (window 1 of each, then window 2 of
 * each, ...), so the noise of this shared machine falls on all of them; figures are medians of
 * the windows, memory the peak. Every gateway's answer is checked against ours before the load.
 * Nothing is asserted.
 *
 * Knobs (environment): BENCH_QUICK=1 one 3 s window; BENCH_FED_WINDOWS (3), BENCH_FED_SECONDS (5),
 * BENCH_FED_CONNECTIONS (32,128), BENCH_FED_BODIES (fixed,varied), BENCH_FED_SYSTEMS (keys below);
 * BENCH_ROUTER_BASELINES other builds of our router to run beside (see `baselines`);
 * BENCH_ROUTER_NODE_ARGS extra node flags for our router (e.g. --trace-gc, --heapsnapshot-signal=SIGUSR2)
 * with BENCH_ROUTER_STDOUT a file for what they print.
 */
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { composeSupergraph } from '@edfs/operator';
import { forkChild, type Child } from '../common/ipc.js';
import { foreignCores, processTree, sampleCpu } from '../common/machine.js';
import { median, table } from '../stats.js';
import { startHive, startOurs, type RunningGateway } from './gateways.js';
import { DEEP_QUERY, DIRECT_QUERY, SDL, SUBGRAPHS, type SubgraphName } from './graph.js';

type Body = 'fixed' | 'varied';

interface SystemDef {
  key: string;
  label: string;
  start(ctx: {
    configJson: string;
    subgraphs: { name: string; url: string; sdl: string }[];
  }): Promise<RunningGateway>;
}

const SYSTEMS: SystemDef[] = [
  {
    key: 'ours-nodedup',
    label: 'ours, dedup off',
    start: (c) =>
      startOurs('ours, dedup off', c.configJson, [
        'traffic_shaping: { all: { deduplicate_requests: false } }',
      ]),
  },
  { key: 'ours', label: 'ours (defaults)', start: (c) => startOurs('ours (defaults)', c.configJson) },
  {
    key: 'ours-inbound',
    label: 'ours + inbound dedup',
    start: (c) =>
      startOurs('ours + inbound dedup', c.configJson, [
        'traffic_shaping: { router: { deduplicate_requests: true } }',
      ]),
  },
  { key: 'hive', label: 'Hive Gateway', start: (c) => startHive(c.subgraphs) },
];

/**
 * BENCH_ROUTER_BASELINES=name=/path/to/router/bin/edfs-router.js,...: other builds of our router
 * (an earlier commit, built), each a row `ours @name` with its defaults, for before/after figures
 * in the same run.
 */
function baselines(): SystemDef[] {
  return (process.env.BENCH_ROUTER_BASELINES ?? '')
    .split(',')
    .filter(Boolean)
    .map((entry) => {
      const [name, bin] = entry.split('=') as [string, string];
      const label = `ours @${name}`;
      return { key: label, label, start: (c) => startOurs(label, c.configJson, [], bin) };
    });
}

interface Window {
  rps: number;
  p50: number;
  p99: number;
  cpuUsPerRequest: number;
  peakRssBytes: number;
  subgraphRequestsPerRequest: number;
  errors: number;
  otherCores: number;
}

export interface LoadRow {
  body: Body;
  connections: number;
  system: string;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  cpuUsPerRequest: number;
  peakRssMb: number;
  subgraphRequestsPerRequest: number;
  errors: number;
  otherCores: number;
  windows: Window[];
}

export interface LoadResult {
  query: string;
  machine: { cpus: number; node: string };
  windows: number;
  seconds: number;
  /** Systems whose answer to the deep query differed from ours (dedup off), with the first difference. */
  mismatches: Record<string, string>;
  /** Per system: resident memory once started and its answers checked, before any load. */
  idleRssMb: Record<string, number>;
  rows: LoadRow[];
}

const subgraphEntry = fileURLToPath(new URL('./subgraph.js', import.meta.url));

function settings() {
  const quick = process.env.BENCH_QUICK === '1';
  const list = (name: string, fallback: string) => (process.env[name] ?? fallback).split(',').filter(Boolean);
  return {
    windows: Number(process.env.BENCH_FED_WINDOWS ?? (quick ? 1 : 3)),
    seconds: Number(process.env.BENCH_FED_SECONDS ?? (quick ? 3 : 5)),
    connections: list('BENCH_FED_CONNECTIONS', '32,128').map(Number),
    bodies: list('BENCH_FED_BODIES', 'fixed,varied') as Body[],
    systems: list(
      'BENCH_FED_SYSTEMS',
      ['direct', ...SYSTEMS.map((s) => s.key), ...baselines().map((s) => s.key)].join(','),
    ),
  };
}

export async function runLoadBench(): Promise<LoadResult> {
  const s = settings();
  console.log(
    `\nGateways under load: the deep query on accounts/products/inventory/reviews, each subgraph its own process; ` +
      `${s.windows} x ${s.seconds} s windows per row, interleaved`,
  );
  const children = new Map<SubgraphName, Child>();
  const gateways: RunningGateway[] = [];
  try {
    const subgraphs: { name: string; url: string; sdl: string }[] = [];
    for (const name of SUBGRAPHS) {
      const child = forkChild(subgraphEntry, `${name} subgraph`);
      children.set(name, child);
      const { url } = await child.request<{ url: string }>('start', { name });
      subgraphs.push({ name, url, sdl: SDL[name] });
    }
    const composed = composeSupergraph(
      subgraphs.map((g) => ({ name: g.name, routingUrl: g.url, sdl: g.sdl })),
    );
    if (!composed.ok) throw new Error(composed.errors.map((e) => e.message).join('\n'));
    for (const def of [...baselines(), ...SYSTEMS].filter((d) => s.systems.includes(d.key)))
      gateways.push(await def.start({ configJson: composed.configJson, subgraphs }));

    const products = subgraphs.find((g) => g.name === 'products')!;
    const targets: Target[] = [
      ...(s.systems.includes('direct')
        ? [
            {
              label: 'direct: products subgraph (floor)',
              url: products.url,
              pid: children.get('products')!.process.pid!,
              direct: true,
            },
          ]
        : []),
      ...gateways.map((g) => ({ label: g.label, url: g.url, pid: g.pid, direct: false })),
    ];
    const mismatches = await checkAnswers(gateways);
    const idleRssMb: Record<string, number> = {};
    for (const t of targets) idleRssMb[t.label] = (processTree(t.pid)?.rssBytes ?? NaN) / 2 ** 20;
    const subgraphRequests = async () => {
      let total = 0;
      for (const child of children.values())
        total += (await child.request<{ requests: number }>('stats')).requests;
      return total;
    };

    const rows: LoadRow[] = [];
    for (const body of s.bodies)
      for (const connections of s.connections) {
        const windows = new Map<Target, Window[]>(targets.map((t) => [t, []]));
        for (const t of targets) await load(t, body, connections, 1); // warm-up
        for (let w = 0; w < s.windows; w++)
          for (const t of targets)
            windows.get(t)!.push(await measure(t, body, connections, s.seconds, subgraphRequests));
        for (const t of targets) {
          const ws = windows.get(t)!;
          rows.push({
            body,
            connections,
            system: t.label,
            rps: median(ws.map((x) => x.rps)),
            p50Ms: median(ws.map((x) => x.p50)),
            p99Ms: median(ws.map((x) => x.p99)),
            cpuUsPerRequest: median(ws.map((x) => x.cpuUsPerRequest)),
            peakRssMb: Math.max(...ws.map((x) => x.peakRssBytes)) / 2 ** 20,
            subgraphRequestsPerRequest: median(ws.map((x) => x.subgraphRequestsPerRequest)),
            errors: ws.reduce((n, x) => n + x.errors, 0),
            otherCores: median(ws.map((x) => x.otherCores)),
            windows: ws,
          });
        }
      }
    const result: LoadResult = {
      query: DEEP_QUERY,
      machine: { cpus: cpus().length, node: process.version },
      windows: s.windows,
      seconds: s.seconds,
      mismatches,
      idleRssMb,
      rows,
    };
    print(result);
    return result;
  } finally {
    for (const g of gateways) await g.close();
    for (const c of children.values()) await c.kill();
  }
}

interface Target {
  label: string;
  url: string;
  pid: number;
  direct: boolean;
}

function requestBody(target: Target, offset?: number): string {
  const query = target.direct ? DIRECT_QUERY : DEEP_QUERY;
  return JSON.stringify(offset === undefined ? { query } : { query, variables: { offset } });
}

/** One autocannon run; the varied body draws a fresh offset for every request. */
function load(target: Target, body: Body, connections: number, seconds: number): Promise<autocannon.Result> {
  const fixed = requestBody(target);
  return autocannon({
    url: target.url,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    connections,
    duration: seconds,
    ...(body === 'fixed'
      ? { body: fixed }
      : {
          requests: [
            {
              setupRequest: (req: autocannon.Request) => ({
                ...req,
                body: requestBody(target, Math.floor(Math.random() * 1_000_000)),
              }),
            },
          ],
        }),
  });
}

async function measure(
  target: Target,
  body: Body,
  connections: number,
  seconds: number,
  subgraphRequests: () => Promise<number>,
): Promise<Window> {
  const before = processTree(target.pid);
  const machine = sampleCpu();
  const subgraphBefore = await subgraphRequests();
  let peakRssBytes = before?.rssBytes ?? 0;
  const sampler = setInterval(() => {
    peakRssBytes = Math.max(peakRssBytes, processTree(target.pid)?.rssBytes ?? 0);
  }, 250);
  let result: autocannon.Result;
  try {
    result = await load(target, body, connections, seconds);
  } finally {
    clearInterval(sampler);
  }
  const after = processTree(target.pid);
  const subgraphAfter = await subgraphRequests();
  const ok = result['2xx'];
  return {
    rps: ok / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuUsPerRequest: before && after && ok > 0 ? ((after.cpuMs - before.cpuMs) * 1000) / ok : NaN,
    peakRssBytes: Math.max(peakRssBytes, after?.rssBytes ?? 0),
    subgraphRequestsPerRequest: ok > 0 ? (subgraphAfter - subgraphBefore) / ok : NaN,
    errors: result.errors + result.non2xx,
    otherCores: foreignCores(machine, sampleCpu()),
  };
}

/**
 * Every gateway must answer the deep query (fixed and with an offset) as ours does with dedup
 * off, also when 20 identical requests arrive together: a benchmark of wrong answers is void.
 */
async function checkAnswers(gateways: RunningGateway[]): Promise<Record<string, string>> {
  const post = async (url: string, body: string) => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    return canonical(await res.json());
  };
  const mismatches: Record<string, string> = {};
  const reference = gateways[0];
  if (!reference) return mismatches;
  for (const body of [
    JSON.stringify({ query: DEEP_QUERY }),
    JSON.stringify({ query: DEEP_QUERY, variables: { offset: 4242 } }),
  ]) {
    const expected = await post(reference.url, body);
    if (expected.includes('"errors"')) mismatches[reference.label] = `errors: ${expected.slice(0, 300)}`;
    for (const g of gateways) {
      const answers = await Promise.all(Array.from({ length: 20 }, () => post(g.url, body)));
      const wrong = answers.find((a) => a !== expected);
      if (wrong !== undefined && !mismatches[g.label]) mismatches[g.label] = firstDifference(expected, wrong);
    }
  }
  return mismatches;
}

/** JSON with object keys sorted, so gateways that order keys differently still compare equal. */
function canonical(value: unknown): string {
  const sort = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sort)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, sort((v as Record<string, unknown>)[k])]),
          )
        : v;
  return JSON.stringify(sort(value));
}

function firstDifference(a: string, b: string): string {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return `expected ...${a.slice(Math.max(0, i - 60), i + 60)}... got ...${b.slice(Math.max(0, i - 60), i + 60)}...`;
}

function print(result: LoadResult): void {
  for (const [system, diff] of Object.entries(result.mismatches))
    console.log(`ANSWER MISMATCH ${system}: ${diff}`);
  const groups = new Map<string, LoadRow[]>();
  for (const r of result.rows) {
    const key = `${r.body} body, ${r.connections} connections`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  for (const [key, rows] of groups) {
    const hive = rows.find((r) => r.system === 'Hive Gateway');
    const off = rows.find((r) => r.system === 'ours, dedup off');
    console.log(
      `\n${key} (other work on the machine: ${rows.map((r) => r.otherCores.toFixed(2)).join('/')} cores)`,
    );
    console.log(
      table([
        [
          'system',
          'req/s',
          'p50 ms',
          'p99 ms',
          'p99/p50',
          'CPU µs/req',
          'peak RSS MB',
          'subgraph req/req',
          'errors',
          'vs Hive',
          'vs dedup off',
        ],
        ...rows.map((r) => [
          r.system,
          r.rps,
          r.p50Ms,
          r.p99Ms,
          `${(r.p99Ms / r.p50Ms).toFixed(2)}x`,
          r.cpuUsPerRequest,
          r.peakRssMb,
          r.subgraphRequestsPerRequest,
          String(r.errors),
          hive && r !== hive && !r.system.startsWith('direct') ? `${(r.rps / hive.rps).toFixed(2)}x` : '',
          off && r !== off && r.system.startsWith('ours') ? `${(r.rps / off.rps).toFixed(2)}x` : '',
        ]),
      ]),
    );
  }
  console.log(
    "direct: the products subgraph alone answering its root list (CPU and memory are that subgraph process's).",
  );
  console.log(
    `RSS before any load (started, answers checked): ${Object.entries(result.idleRssMb)
      .map(([system, mb]) => `${system} ${mb.toFixed(0)} MB`)
      .join(', ')}`,
  );
}
