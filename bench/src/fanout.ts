/**
 * Fan-out benchmark: N WebSocket subscribers of one subscription on one NATS subject, one entity
 * join per event, servers side by side:
 *
 * - ours: the EDFS router (NATS provider): one NATS subscription, one `_entities` fetch and one
 *   serialization per event for the whole group, the same string written to every socket;
 * - ours, JetStream + cursors (`edfs-cursors`): the same router and graph, the subscription field
 *   reading the subject from a JetStream stream (`streamConfiguration`, a durable consumer), so
 *   every result carries a cursor in `extensions.cursor`: per event one cursor encoded and one
 *   splice per Group, and a longer frame to every client;
 * - ours, JetStream, no cursors (`edfs-jetstream`): that stream variant with cursors switched
 *   off inside the bench's router process (systems/edfs.ts), which splits the stream variant's
 *   cost between reading JetStream and the cursors themselves;
 * - (a) naive: graphql-ws `useServer` + graphql-js `subscribe`, one NATS subscription, one
 *   execution and one subgraph fetch per client and event (systems/naive.ts);
 * - (b) bare ws: one NATS subscription, a pre-built frame of the same bytes sent to every socket
 *   (systems/bare.ts): the floor set by NATS, `ws` framing, the kernel and this load generator.
 *
 * The stream variants get a fresh stream (file storage, the server's defaults) per scenario,
 * removed afterwards, so no other run stores events; the load generator publishes the same core
 * NATS messages to the same subject, which the stream captures.
 *
 * Each server runs in its own forked process, started fresh per scenario and killed before the
 * next, with the load generator (this process), the `messages` subgraph (another process) and a
 * real nats-server (with JetStream) beside it. Phases per server: idle RSS per subscribed
 * connection (after GC), a byte-for-byte check of one delivery at every client (the cursor's text
 * aside: graph.ts FrameShape), latency at a steady 5 events/s, then closed-loop throughput; bytes
 * per delivery frame are counted at the clients. Numbers are medians over repeated windows.
 * Nothing here asserts: the table states the targets and whether this run met them.
 *
 * Then, when `edfs-cursors` ran, the catch-up figure: M clients resume at once from a cursor K
 * events back while a live client gets 5 events/s; time until every one has its K events, and
 * whether each goes on live with no gap (fanout/catch-up.ts), per size in its own table.
 *
 * Knobs (environment): BENCH_QUICK=1 one short window per phase; BENCH_FANOUT_N=1000,10000 the
 * scenarios; BENCH_FANOUT_SYSTEMS=edfs,edfs-cursors,edfs-jetstream,naive,bare the servers;
 * BENCH_FANOUT_INFLIGHT deliveries the closed loop keeps in flight;
 * BENCH_FANOUT_CATCHUP=10x1000,100x1000 the catch-up's sizes, M clients x K events each (K at most
 * the router's default subscriptions.resume.max_replay_events, 10,000), `off` to skip it
 * (BENCH_QUICK: one round per size, else three); BENCH_PROFILE=DIR a V8 CPU
 * profile per server process; BENCH_HEAPSNAPSHOT=DIR heap snapshots at 0 and N idle connections
 * (inflates the RSS figures). Each process holds N sockets: the open-file limit (`ulimit -n`)
 * must exceed N + 512.
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { startNatsServer, type NatsServer } from '@edfs/e2e/dist/infra/nats.js';
import { composeSupergraph } from '@edfs/operator';
import { fmt, median, table } from './stats.js';
import { measureCatchUp, printCatchUp, type CatchUpPlan, type CatchUpResult } from './fanout/catch-up.js';
import {
  EVENTS_SDL,
  expectedFrame,
  frameTemplate,
  MESSAGES_SDL,
  STREAM_EVENTS_SDL,
  STREAM_NAME,
  SUBJECT,
  SUBSCRIPTION,
  type FrameShape,
} from './fanout/graph.js';
import { forkChild, type Child } from './common/ipc.js';
import { LoadGenerator, sleep, type ClientProtocol } from './fanout/load.js';
import { foreignCores, sampleCpu } from './common/machine.js';
import type { ServerStats } from './fanout/server.js';
import { consuming, freshStream } from './fanout/stream.js';
import type { SystemName, SystemOptions } from './fanout/systems/types.js';

interface System {
  name: SystemName;
  label: string;
  /** Its column in the table. */
  column: string;
  protocol: ClientProtocol;
  /** What its results carry besides the data (the delivery check's expectation). */
  shape: FrameShape;
  /** Reads the subject from the JetStream stream (the bench creates it per scenario). */
  stream?: true;
}

const SYSTEMS: System[] = [
  {
    name: 'edfs',
    label: 'ours (EDFS)',
    column: 'ours',
    protocol: 'graphql-transport-ws',
    shape: 'at-most-once',
  },
  {
    name: 'edfs-cursors',
    label: 'ours, JetStream + cursors',
    column: 'ours JS+cursors',
    protocol: 'graphql-transport-ws',
    shape: 'cursor',
    stream: true,
  },
  {
    name: 'edfs-jetstream',
    label: 'ours, JetStream, no cursors',
    column: 'ours JS',
    protocol: 'graphql-transport-ws',
    shape: 'at-most-once',
    stream: true,
  },
  {
    name: 'naive',
    label: '(a) naive graphql-ws',
    column: '(a) naive',
    protocol: 'graphql-transport-ws',
    shape: 'plain',
  },
  { name: 'bare', label: '(b) bare ws', column: '(b) bare ws', protocol: 'raw', shape: 'plain' },
];

/** The catch-up sizes (M clients x K events) by default. */
const CATCH_UP_SIZES = [
  { clients: 10, events: 1_000 },
  { clients: 100, events: 1_000 },
];

interface Plan {
  quick: boolean;
  scenarios: number[];
  latency: { rate: number; warmupMs: number; windowMs: number; windows: number; drainMs: number };
  throughput: { warmupMs: number; windowMs: number; windows: number; expireMs: number; drainMs: number };
  /** Deliveries the closed loop keeps in flight (at least 4 events). */
  inFlightDeliveries: number;
  /** M clients resuming from a cursor K events back; undefined: skipped. */
  catchUp: CatchUpPlan | undefined;
}

function plan(): Plan {
  const quick = process.env.BENCH_QUICK === '1';
  const base: Plan = quick
    ? {
        quick,
        scenarios: [1_000, 10_000],
        latency: { rate: 5, warmupMs: 400, windowMs: 2_000, windows: 1, drainMs: 2_000 },
        throughput: { warmupMs: 500, windowMs: 1_500, windows: 1, expireMs: 3_000, drainMs: 2_000 },
        inFlightDeliveries: 40_000,
        catchUp: { sizes: CATCH_UP_SIZES, rounds: 1, roundTimeoutMs: 120_000, liveRate: 5 },
      }
    : {
        quick,
        scenarios: [1_000, 10_000],
        latency: { rate: 5, warmupMs: 1_000, windowMs: 3_000, windows: 3, drainMs: 4_000 },
        throughput: { warmupMs: 1_000, windowMs: 2_000, windows: 3, expireMs: 5_000, drainMs: 4_000 },
        inFlightDeliveries: 40_000,
        catchUp: { sizes: CATCH_UP_SIZES, rounds: 3, roundTimeoutMs: 120_000, liveRate: 5 },
      };
  const n = process.env.BENCH_FANOUT_N;
  if (n) base.scenarios = n.split(',').map(Number);
  const inFlight = process.env.BENCH_FANOUT_INFLIGHT;
  if (inFlight) base.inFlightDeliveries = Number(inFlight);
  const catchUp = process.env.BENCH_FANOUT_CATCHUP;
  if (catchUp === 'off' || catchUp === '0') base.catchUp = undefined;
  else if (catchUp)
    base.catchUp = {
      ...base.catchUp!,
      sizes: catchUp.split(',').map((size) => {
        const m = /^(\d+)x(\d+)$/.exec(size.trim());
        if (!m || Number(m[1]) < 1 || Number(m[2]) < 1)
          throw new Error(
            `BENCH_FANOUT_CATCHUP=${catchUp}: expected CLIENTSxEVENTS[,...] (e.g. 100x1000), or off`,
          );
        return { clients: Number(m[1]), events: Number(m[2]) };
      }),
    };
  return base;
}

function systems(): System[] {
  const only = process.env.BENCH_FANOUT_SYSTEMS?.split(',');
  if (!only) return SYSTEMS;
  const unknown = only.filter((name) => !SYSTEMS.some((s) => s.name === name));
  if (unknown.length > 0)
    throw new Error(
      `BENCH_FANOUT_SYSTEMS: unknown ${unknown.join(', ')}; choose from ${SYSTEMS.map((s) => s.name).join(', ')}`,
    );
  return SYSTEMS.filter((s) => only.includes(s.name));
}

/** One server under test at one N. */
export interface FanoutRun {
  system: SystemName;
  subscribers: number;
  /** Byte size of one delivery frame without `extensions` (the same for every system). */
  frameBytes: number;
  /**
   * Delivery frames as the clients received them, from the check event on: mean WebSocket
   * payload, and mean with the frame header (on the wire, TCP/IP aside).
   */
  frames: { payloadBytesMean: number; wireBytesMean: number };
  /** Clients that got the check event, and how many of those frames matched byte for byte. */
  verify: { received: number; exact: number };
  idle: {
    rssBeforeBytes: number;
    rssSubscribedBytes: number;
    rssPerConnectionBytes: number;
    heapPerConnectionBytes: number;
  };
  latency: {
    rate: number;
    windows: { events: number; delivered: number; p50: number; p99: number; max: number }[];
    p50Ms: number;
    p99Ms: number;
    delivered: number;
    serverCpuUsPerEvent: number;
    /** Event received -> last client write queued, as the router measures it. */
    serverFanoutMsMean?: number;
  };
  throughput: {
    windows: { ms: number; eventsPerSec: number; deliveriesPerSec: number }[];
    eventsPerSec: number;
    deliveriesPerSec: number;
    maxOutstandingEvents: number;
    serverCpuUsPerDelivery: number;
    serverEventLoopBusy: number;
    loadGeneratorCpuUsPerDelivery: number;
  };
  subgraphRequests: number;
  eventsPublished: number;
  /** Frames received, all phases from the check event on. */
  deliveries: number;
  subgraphRequestsPerEvent: number;
  badFrames: number;
  badFrameExample?: string;
  mismatchExample?: string;
  unexpectedCloses: Record<string, number>;
  expiredEvents: number;
  server: Record<string, number>;
  /** Wall time of each phase. */
  phasesMs: Record<string, number>;
  /** The machine's 1-minute load average at the start and the end (other work shares the CPUs). */
  loadAverage: number[];
  /** CPUs' worth of work by processes outside the benchmark during the run (NaN off Linux). */
  otherWorkCores: number;
}

export interface FanoutResult {
  subscription: string;
  subject: string;
  machine: { cpus: number; node: string };
  quick: boolean;
  runs: FanoutRun[];
  catchUp: CatchUpResult[];
  failures: { system: SystemName; subscribers: number; error: string }[];
  skipped: string[];
}

const serverEntry = fileURLToPath(new URL('./fanout/server.js', import.meta.url));
const subgraphEntry = fileURLToPath(new URL('./fanout/subgraph.js', import.meta.url));

export async function runFanoutBench(): Promise<FanoutResult> {
  const p = plan();
  const result: FanoutResult = {
    subscription: SUBSCRIPTION,
    subject: SUBJECT,
    machine: { cpus: cpus().length, node: process.version },
    quick: p.quick,
    runs: [],
    catchUp: [],
    failures: [],
    skipped: [],
  };
  console.log(
    `\nFan-out: N subscribers of one subscription on "${SUBJECT}", one entity join per event${p.quick ? ' (BENCH_QUICK)' : ''}`,
  );

  const fdLimit = openFileLimit();
  const chosen = systems();
  let nats: NatsServer | undefined;
  let subgraph: Child | undefined;
  let publisher: NatsConnection | undefined;
  try {
    nats = await startNatsServer({ jetstream: chosen.some((s) => s.stream) });
    subgraph = forkChild(subgraphEntry, 'messages subgraph');
    const { url: subgraphUrl } = await subgraph.request<{ url: string }>('start');
    const compose = (eventsSdl: string): string => {
      const composed = composeSupergraph([
        { name: 'events', sdl: eventsSdl },
        { name: 'messages', routingUrl: subgraphUrl, sdl: MESSAGES_SDL },
      ]);
      if (!composed.ok)
        throw new Error(
          `fan-out graph does not compose: ${composed.errors.map((e) => e.message).join('; ')}`,
        );
      return composed.configJson;
    };
    publisher = await connect({ servers: nats.url });
    const jsm = chosen.some((s) => s.stream) ? await jetstreamManager(publisher) : undefined;
    const options: SystemOptions = {
      natsUrl: nats.url,
      subgraphUrl,
      configJson: compose(EVENTS_SDL),
      streamConfigJson: compose(STREAM_EVENTS_SDL),
      frameTemplate: frameTemplate(),
      subject: SUBJECT,
    };
    const generator = new LoadGenerator(publisher);
    for (const n of p.scenarios) {
      // This process holds n client sockets; each server process holds n more (same limit).
      if (fdLimit !== undefined && fdLimit < n + 512) {
        const why = `N=${n}: open-file limit ${fdLimit} is below ${n + 512}; raise it (ulimit -n ${n + 1024}) to run this scenario`;
        console.log(`skipped ${why}`);
        result.skipped.push(why);
        continue;
      }
      for (const system of chosen) {
        const started = performance.now();
        process.stdout.write(`  ${system.label} x ${n.toLocaleString('en-US')} ... `);
        let run: FanoutRun;
        try {
          run = await measure(system, n, options, generator, subgraph, p, jsm);
        } catch (err) {
          // One server failing (a crash, a refused connection) leaves the others worth measuring.
          const message = (err as Error).message;
          console.log(`failed: ${message}`);
          result.failures.push({ system: system.name, subscribers: n, error: message });
          continue;
        }
        result.runs.push(run);
        console.log(
          `${fmt(run.throughput.deliveriesPerSec)} deliveries/s, p99 ${fmt(run.latency.p99Ms)} ms, ` +
            `${fmt(run.idle.rssPerConnectionBytes / 1024)} KB/conn, ${fmt(run.frames.wireBytesMean)} B/frame ` +
            `(${((performance.now() - started) / 1000).toFixed(0)} s, ` +
            `other work on the machine: ${fmt(run.otherWorkCores)} CPUs)`,
        );
        warnAbout(run);
      }
    }
    if (p.catchUp && jsm && chosen.some((s) => s.name === 'edfs-cursors'))
      for (const size of p.catchUp.sizes) {
        const started = performance.now();
        process.stdout.write(
          `  catch-up: ${size.clients} clients resuming ${size.events.toLocaleString('en-US')} events back ... `,
        );
        const c = await measureCatchUp(size, p.catchUp, { serverEntry, options, publisher, jsm, subgraph });
        result.catchUp.push(c);
        console.log(
          c.error
            ? `failed: ${c.error}`
            : `all caught up in ${fmt(c.allCaughtUpMs)} ms, ${fmt(c.eventsPerSec)} events/s replayed ` +
                `(${((performance.now() - started) / 1000).toFixed(0)} s)`,
        );
      }
  } finally {
    await publisher?.close().catch(() => undefined);
    await subgraph?.kill();
    await nats?.stop();
  }
  printTable(result);
  printCatchUp(result.catchUp, p.catchUp?.liveRate ?? 0);
  return result;
}

async function measure(
  system: System,
  n: number,
  options: SystemOptions,
  generator: LoadGenerator,
  subgraph: Child,
  p: Plan,
  jsm: JetStreamManager | undefined,
): Promise<FanoutRun> {
  const profileDir = process.env.BENCH_PROFILE;
  if (system.stream && !jsm) throw new Error(`${system.label}: no JetStream on the bench's nats-server`);
  const removeStream = system.stream ? await freshStream(jsm!) : undefined;
  generator.shape = system.shape;
  const server = forkChild(
    serverEntry,
    `${system.label} server`,
    profileDir
      ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${system.name}-${n}.cpuprofile`]
      : [],
  );
  const stats = (gc = false) => server.request<ServerStats>('stats', { gc });
  const subgraphRequests = async () => (await subgraph.request<{ requests: number }>('stats')).requests;
  const phases: Record<string, number> = {};
  let mark = performance.now();
  const phase = (name: string) => {
    const now = performance.now();
    phases[name] = Math.round(now - mark);
    mark = now;
  };
  const load = [loadAverage()];
  const cpu0 = sampleCpu();
  try {
    const { url } = await server.request<{ url: string }>('start', { system: system.name, options });
    phase('start');

    // Warm up the code paths (handshake, subscribe, one delivery), so the idle RSS below is the
    // connections' cost, not lazily loaded code.
    await generator.connect(url, 20, system.protocol);
    await waitFor(
      async () => (await stats()).subscriptions === 20,
      10_000,
      `${system.label}: 20 warm-up subscriptions`,
    );
    if (system.stream)
      await consuming(jsm!, `${system.label}: its durable consumer on stream ${STREAM_NAME}`);
    await generator.verifyOne(5_000);
    await generator.teardown(0);
    generator.reset();
    await waitFor(
      async () => (await stats()).subscriptions === 0,
      10_000,
      `${system.label}: warm-up subscriptions to end`,
    );
    await sleep(300);
    const before = await stats(true);
    const snapshotDir = process.env.BENCH_HEAPSNAPSHOT;
    if (snapshotDir)
      await server.request('heapSnapshot', {
        path: `${snapshotDir}/${system.name}-${n}-before.heapsnapshot`,
      });
    phase('warmup');

    await generator.connect(url, n, system.protocol);
    await waitFor(
      async () => (await stats()).subscriptions === n,
      60_000,
      `${system.label}: ${n} subscriptions`,
    );
    phase('connect');
    await sleep(1_000);
    const idle = await stats(true);
    if (snapshotDir)
      await server.request('heapSnapshot', { path: `${snapshotDir}/${system.name}-${n}-idle.heapsnapshot` });
    phase('idle');

    const requests0 = await subgraphRequests();
    const bytes0 = generator.receivedBytes;
    const deliveries0 = generator.totalDeliveries;
    const verify = await generator.verifyOne(10_000);
    phase('verify');

    // Latency at a steady rate.
    const l0 = await stats();
    const e0 = generator.published;
    const latencyWindows = await generator.latency(p.latency);
    const l1 = await stats();
    const latencyEvents = generator.published - e0;
    phase('latency');

    // Throughput: closed loop.
    const maxOutstanding = Math.max(4, Math.ceil(p.inFlightDeliveries / n));
    const t0 = await stats();
    const d0 = generator.totalDeliveries;
    const c0 = process.cpuUsage();
    const throughputWindows = await generator.throughput({ ...p.throughput, maxOutstanding });
    const c1 = process.cpuUsage();
    const t1 = await stats();
    const deliveries = generator.totalDeliveries - d0;
    const requests = (await subgraphRequests()) - requests0;
    const bytes1 = generator.receivedBytes;
    const framesSeen = generator.totalDeliveries - deliveries0;
    phase('throughput');
    load.push(loadAverage());
    const otherWork = foreignCores(cpu0, sampleCpu());

    return {
      system: system.name,
      subscribers: n,
      frameBytes: Buffer.byteLength(expectedFrame(0)),
      frames: {
        payloadBytesMean: (bytes1.payload - bytes0.payload) / framesSeen,
        wireBytesMean: (bytes1.wire - bytes0.wire) / framesSeen,
      },
      verify,
      idle: {
        rssBeforeBytes: before.rss,
        rssSubscribedBytes: idle.rss,
        rssPerConnectionBytes: (idle.rss - before.rss) / n,
        heapPerConnectionBytes: (idle.heapUsed - before.heapUsed) / n,
      },
      latency: {
        rate: p.latency.rate,
        windows: latencyWindows,
        p50Ms: median(latencyWindows.map((w) => w.p50)),
        p99Ms: median(latencyWindows.map((w) => w.p99)),
        delivered: median(latencyWindows.map((w) => w.delivered)),
        serverCpuUsPerEvent: (l1.cpuUs - l0.cpuUs) / latencyEvents,
        ...fanoutMean(l0, l1),
      },
      throughput: {
        windows: throughputWindows,
        eventsPerSec: median(throughputWindows.map((w) => w.eventsPerSec)),
        deliveriesPerSec: median(throughputWindows.map((w) => w.deliveriesPerSec)),
        maxOutstandingEvents: maxOutstanding,
        serverCpuUsPerDelivery: deliveries > 0 ? (t1.cpuUs - t0.cpuUs) / deliveries : NaN,
        serverEventLoopBusy: busy(t0, t1),
        loadGeneratorCpuUsPerDelivery:
          deliveries > 0 ? (c1.user + c1.system - c0.user - c0.system) / deliveries : NaN,
      },
      subgraphRequests: requests,
      eventsPublished: generator.published,
      deliveries: generator.totalDeliveries,
      // Per event as delivered to all N clients: a baseline that falls behind has not made the
      // requests for events it never delivered, so dividing by events published would flatter it.
      subgraphRequestsPerEvent:
        generator.totalDeliveries > 0 ? (requests * n) / generator.totalDeliveries : NaN,
      badFrames: generator.badFrames,
      ...(generator.badFrameExample ? { badFrameExample: generator.badFrameExample } : {}),
      ...(generator.mismatchExample ? { mismatchExample: generator.mismatchExample } : {}),
      unexpectedCloses: Object.fromEntries(generator.unexpectedCloses),
      expiredEvents: generator.expired,
      server: t1.details,
      phasesMs: phases,
      loadAverage: load,
      otherWorkCores: otherWork,
    };
  } finally {
    // Kill the server first: its side of every connection then holds TIME_WAIT, not ours.
    if (profileDir) await server.request('exit').catch(() => undefined);
    await Promise.race([server.exited, sleep(profileDir ? 30_000 : 0)]);
    await server.kill();
    await generator.teardown();
    generator.reset();
    await removeStream?.();
  }
}

/** Mean of the router's own `router_event_fanout_seconds` between two samples (ours only). */
function fanoutMean(a: ServerStats, b: ServerStats): { serverFanoutMsMean?: number } {
  const count = (b.details.fanout_count ?? 0) - (a.details.fanout_count ?? 0);
  if (count <= 0) return {};
  return {
    serverFanoutMsMean: ((b.details.fanout_seconds_sum! - a.details.fanout_seconds_sum!) * 1000) / count,
  };
}

function busy(a: ServerStats, b: ServerStats): number {
  const active = b.eluActiveMs - a.eluActiveMs;
  const idle = b.eluIdleMs - a.eluIdleMs;
  return active + idle > 0 ? active / (active + idle) : NaN;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`fan-out bench: timed out waiting for ${what}`);
    await sleep(100);
  }
}

function warnAbout(run: FanoutRun): void {
  const problems: string[] = [];
  if (run.verify.received !== run.subscribers || run.verify.exact !== run.verify.received)
    problems.push(
      `check event: ${run.verify.received}/${run.subscribers} received, ${run.verify.exact} byte-exact`,
    );
  if (run.mismatchExample) problems.push(`unexpected frame: ${run.mismatchExample.slice(0, 300)}`);
  if (run.badFrames > 0) problems.push(`${run.badFrames} unexpected frames, e.g. ${run.badFrameExample}`);
  const closes = Object.entries(run.unexpectedCloses);
  if (closes.length > 0)
    problems.push(`server closed clients: ${closes.map(([c, k]) => `${k} x code ${c}`).join(', ')}`);
  for (const problem of problems) console.log(`    ! ${problem}`);
}

function loadAverage(): number {
  return loadavg()[0]!;
}

/** The soft RLIMIT_NOFILE of this process (children inherit it), when Linux tells us. */
function openFileLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/)[1];
    return soft === undefined || soft === 'unlimited' ? undefined : Number(soft);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// The table.

const ratio = (a: number | undefined, b: number | undefined): string =>
  a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0
    ? '-'
    : `${(a / b).toFixed(2)}x`;

interface Row {
  label: string;
  value: (r: FanoutRun) => number;
  /** No ratio columns (they would say nothing, e.g. a count that is 0 for the floor). */
  ratios?: boolean;
}

const ROWS: Row[] = [
  { label: 'throughput: events/s published', value: (r) => r.throughput.eventsPerSec },
  { label: 'throughput: deliveries/s', value: (r) => r.throughput.deliveriesPerSec },
  { label: 'latency @5 ev/s: p50 ms', value: (r) => r.latency.p50Ms },
  { label: 'latency @5 ev/s: p99 ms', value: (r) => r.latency.p99Ms },
  { label: 'latency @5 ev/s: delivered %', value: (r) => r.latency.delivered * 100 },
  { label: 'bytes per delivery frame (wire, mean)', value: (r) => r.frames.wireBytesMean },
  { label: 'idle RSS per connection KB', value: (r) => r.idle.rssPerConnectionBytes / 1024 },
  { label: 'idle JS heap per connection KB', value: (r) => r.idle.heapPerConnectionBytes / 1024 },
  { label: 'subgraph requests per event', value: (r) => r.subgraphRequestsPerEvent, ratios: false },
  { label: 'server CPU µs per delivery', value: (r) => r.throughput.serverCpuUsPerDelivery },
  {
    label: 'server event loop busy % (throughput)',
    value: (r) => r.throughput.serverEventLoopBusy * 100,
    ratios: false,
  },
  { label: 'other work on the machine (CPUs)', value: (r) => r.otherWorkCores, ratios: false },
];

/** Ratio columns: numerator and denominator systems. */
const RATIOS: { header: string; of: SystemName; to: SystemName }[] = [
  { header: 'ours/(a)', of: 'edfs', to: 'naive' },
  { header: 'ours/(b)', of: 'edfs', to: 'bare' },
  { header: 'cursors/ours', of: 'edfs-cursors', to: 'edfs' },
  { header: 'cursors/JS', of: 'edfs-cursors', to: 'edfs-jetstream' },
];

function printTable(result: FanoutResult): void {
  const find = (system: SystemName, n: number) =>
    result.runs.find((r) => r.system === system && r.subscribers === n);
  const scenarios = [...new Set(result.runs.map((r) => r.subscribers))];
  // Only the systems and ratios this run measured (BENCH_FANOUT_SYSTEMS may pick a few).
  const ran = SYSTEMS.filter((s) => result.runs.some((r) => r.system === s.name));
  const ratios = RATIOS.filter((q) => ran.some((s) => s.name === q.of) && ran.some((s) => s.name === q.to));
  const rows: (string | number)[][] = [
    ['metric', 'N', ...ran.map((s) => s.column), ...ratios.map((q) => q.header)],
  ];
  for (const row of ROWS)
    for (const n of scenarios) {
      const value = (system: SystemName) => {
        const run = find(system, n);
        return run && row.value(run);
      };
      rows.push([
        row.label,
        n.toLocaleString('en-US'),
        ...ran.map((s) => value(s.name)).map((v) => (v === undefined ? '-' : fmt(v))),
        ...ratios.map((q) => (row.ratios === false ? '' : ratio(value(q.of), value(q.to)))),
      ]);
    }
  console.log('');
  console.log(table(rows));
  const frame = result.runs[0]?.frameBytes;
  console.log(
    [
      `One delivery = one ${frame ?? '?'} B result (+ a 4 B WebSocket header); 'ours' adds the at-most-once notice to each client's`,
      `first result, 'ours JS+cursors' a cursor to every result (bytes per frame: the mean over all frames the clients read).`,
      `'ours JS+cursors': the same router and graph, the field reading a JetStream stream (streamConfiguration); 'ours JS': that`,
      `with cursors switched off inside the bench's router process, to split JetStream's cost from the cursors'.`,
      `Medians over ${result.quick ? 1 : 3} windows per phase. Ratios: first ÷ second; cursors/ours is the cost of resumable`,
      `subscriptions as users get it (JetStream + cursors vs core NATS), cursors/JS that of the cursors alone.`,
      `Throughput is closed loop (publish while fewer than max(4, 40,000/N) events are undelivered); latency is publish -> frame`,
      `read by the client, open loop at 5 ev/s. '-': nothing of that window arrived before the drain deadline (or no event`,
      `completed in the window). RSS and heap after GC; at N=1,000 RSS moves in heap-growth steps of MBs, so trust N=10,000.`,
      `Subgraph requests per event = requests x N / deliveries. Each server is a fresh process;`,
      `load generator, server, subgraph and nats-server share ${result.machine.cpus} CPUs. 'Other work': CPU time of processes`,
      `outside the benchmark during that run; where it is well above zero, that column's numbers are noisy.`,
    ].join('\n'),
  );
  console.log('Targets (ours):');
  for (const n of scenarios) {
    const ours = find('edfs', n);
    const bare = find('bare', n);
    if (!ours || !bare) continue;
    const d = ours.throughput.deliveriesPerSec / bare.throughput.deliveriesPerSec;
    const m = ours.idle.rssPerConnectionBytes / bare.idle.rssPerConnectionBytes;
    console.log(
      `  N=${n.toLocaleString('en-US')}: deliveries/s >= bare-ws rate: ${d.toFixed(2)}x ${verdict(d >= 1, d >= 0.95)}`,
    );
    const heap = ours.idle.heapPerConnectionBytes / bare.idle.heapPerConnectionBytes;
    console.log(
      bare.idle.rssPerConnectionBytes > 0
        ? `  N=${n.toLocaleString('en-US')}: idle RSS/conn <= 1.3x bare ws: ${m.toFixed(2)}x ${verdict(m <= 1.3, m <= 1.37)} (JS heap/conn ${heap.toFixed(2)}x)`
        : `  N=${n.toLocaleString('en-US')}: idle RSS/conn <= 1.3x bare ws: not measurable in this run (bare ws RSS did not grow; JS heap/conn ${heap.toFixed(2)}x)`,
    );
  }
  const big = find('edfs', 10_000);
  if (big) {
    const floor = find('bare', 10_000)?.latency.p99Ms ?? NaN;
    console.log(
      `  N=10,000 at 5 ev/s: p99 < 50 ms: ${fmt(big.latency.p99Ms)} ms ${verdict(big.latency.p99Ms < 50, big.latency.p99Ms < 52.5)}` +
        ` (bare-ws floor ${fmt(floor)} ms)`,
    );
    if (floor >= 50)
      console.log(
        '    the floor itself is above 50 ms here: one process writing 10,000 frames (plus this load generator reading\n' +
          '    them on the same CPUs) takes longer than that on this machine, so the target cannot be shown by this run.',
      );
  }
  for (const why of result.skipped) console.log(`  skipped ${why}`);
  for (const f of result.failures) console.log(`  ${f.system} x ${f.subscribers} failed: ${f.error}`);
}

function verdict(met: boolean, withinNoise: boolean): string {
  return met ? 'met' : withinNoise ? 'missed by < 5% (noise on this machine)' : 'NOT met';
}
