/**
 * Routers scaled by their own metrics in a real cluster (`e2e/src/infra/cluster.ts`), with the
 * monitoring a platform team runs (`e2e/src/infra/monitoring.ts`: Prometheus scraping by
 * annotations, KEDA with its external metrics API, metrics-server), the chart installed by helm
 * and the chat example applied with `spec.autoscaling`:
 *
 *  1. Prometheus scrapes the router pods by the `prometheus.io/*` annotations the operator renders,
 *     and the operator through the annotations of its metrics Service (chart values);
 *  2. KEDA mode (a ScaledObject on `router_engine_connections`, target 10 per pod, 1..3 routers):
 *     WebSocket subscriptions opened through the Ingress scale the Deployment out to 3, and new
 *     connections land on the new pods;
 *  3. the PodDisruptionBudget (maxUnavailable 1) admits one eviction and refuses a second at
 *     once; the evicted router drains and its clients reconnect;
 *  4. the load gone, it scales in to 1; the removed pods drain (1001, at jittered times within
 *     the drain window), their clients reconnect through the Ingress to the remaining router and
 *     receive the next event: 0 subscriptions lost (no resumption), no flapping afterwards;
 *  5. HPA mode on CPU (`targetCPUUtilizationPercentage`, the resource metrics API of
 *     metrics-server): query load through the Ingress scales out, and in once it stops;
 *  6. the chart's Grafana dashboard and PrometheusRule alerts: every panel query and every alert
 *     expression returns series from this Prometheus (each alert while its condition is made
 *     real: bad events, a slow consumer, a config the routers refuse, a Subgraph that breaks
 *     composition, NATS gone), and every rule loads and evaluates.
 *
 * Figures printed: replicas over time, time from load to scale-out (decision and Ready), open
 * connections per pod before and after, the drain (close times of the drained clients, pod
 * deletion to gone), subscriptions lost on scale-in.
 *
 * One file on purpose: it is one ordered scenario on one cluster (install, load, scale out, scale
 * in, HPA), each step starting from the state the one before left, after a setup (cluster, images,
 * monitoring, chart) too costly to repeat per file.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { parseAllDocuments, stringify } from 'yaml';
import { GraphqlHttp, ingressLookup, subscriber, type Subscriber } from '../src/fixtures/ingress-clients.js';
import { eventually, waitFor } from '../src/fixtures/wait.js';
import { startCluster, type Cluster } from '../src/infra/cluster.js';
import { buildImages, type ProjectImages } from '../src/infra/images.js';
import { helmBinary } from '../src/infra/kube.js';
import {
  installMonitoring,
  monitoringParts,
  PROMETHEUS_ADDRESS,
  SCRAPE_INTERVAL_SECONDS,
  type Monitoring,
} from '../src/infra/monitoring.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHART = `${ROOT}charts/edfs-operator`;
const MANIFESTS = `${ROOT}examples/chat/manifests`;
const SETUP_TIMEOUT_MS = 90 * 60_000;
const STEP_TIMEOUT_MS = 8 * 60_000;
const RELEASE = 'edfs-operator';
const SYSTEM_NS = 'edfs-system';
const NS = 'demo';
const HOST = 'chat.localtest.me';
const SUBSCRIPTION = 'subscription ($room: ID!) { messageAdded(roomID: $room) { id text user { name } } }';
const ROUTER_PODS = 'app.kubernetes.io/instance=chat,app.kubernetes.io/name=edfs-router';
const OPERATOR_PODS = `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/name=edfs-operator`;

/** Target open connections per router, and how many clients make the load. */
const TARGET_CONNECTIONS = 10;
const MAX_REPLICAS = 3;
const LOAD_CLIENTS = 28;
/** Clients that stay through the whole loop: few enough for one router (below the target). */
const FIRST_WATCHERS = 2;
const LATER_WATCHERS = 6;

/**
 * Fast but not flapping: scale up at once (the HPA's default), scale down after 30 s of lower
 * recommendations, all surplus pods at once. A production Supergraph keeps the operator's default
 * (300 s, one pod a minute); the README explains the trade.
 */
const BEHAVIOR = {
  scaleUp: { stabilizationWindowSeconds: 0, policies: [{ type: 'Percent', value: 200, periodSeconds: 15 }] },
  scaleDown: {
    stabilizationWindowSeconds: 30,
    policies: [{ type: 'Percent', value: 100, periodSeconds: 15 }],
  },
};

type Obj = Record<string, any>;

let cluster: Cluster;
let images: ProjectImages;
let helm: string;
let monitoring: Monitoring;
let http: GraphqlHttp;
let wsUrl: string;
const subscribers: Subscriber[] = [];

// ---------------------------------------------------------------------------------------------

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

function report(line: string): void {
  process.stdout.write(`cluster-autoscaling: ${line}\n`);
}

async function kubectlJson(args: string[]): Promise<Obj> {
  return JSON.parse(await cluster.kubectl([...args, '-o', 'json'])) as Obj;
}

async function helmRun(args: string[]): Promise<string> {
  const { stdout } = await run(helm, [...args, '--kubeconfig', cluster.kubeconfigPath], {
    cwd: ROOT,
    maxBuffer: 16 << 20,
  });
  return stdout;
}

function splitImage(image: string): { repository: string; tag: string } {
  const at = image.lastIndexOf(':');
  return { repository: image.slice(0, at), tag: image.slice(at + 1) };
}

/** `waitFor` at kubectl's pace: one check every second. */
function until<T>(check: () => Promise<T | undefined | false>, what: string, timeoutMs = STEP_TIMEOUT_MS) {
  return waitFor(
    async () => {
      await sleep(1000);
      return check();
    },
    what,
    timeoutMs,
  );
}

function condition(obj: Obj, type: string): Obj | undefined {
  return (obj.status?.conditions as Obj[] | undefined)?.find((c) => c.type === type);
}

const podReady = (pod: Obj): boolean =>
  pod.metadata?.deletionTimestamp === undefined && condition(pod, 'Ready')?.status === 'True';

async function routerPods(): Promise<Obj[]> {
  return (await kubectlJson(['get', 'pods', '-n', NS, '-l', ROUTER_PODS])).items as Obj[];
}

/** The example's manifests, the NATS image swapped for the local one, the Supergraph autoscaled. */
function exampleManifests(autoscaling: Obj): string {
  const docs: Obj[] = [];
  for (const file of readdirSync(MANIFESTS)
    .filter((f) => f.endsWith('.yaml'))
    .sort()) {
    const text = readFileSync(`${MANIFESTS}/${file}`, 'utf8');
    const swapped = cluster.external
      ? text
      : text.replaceAll('image: nats:2.11-alpine', `image: ${images.nats}`);
    for (const doc of parseAllDocuments(swapped)) {
      const obj = doc.toJS() as Obj | null;
      if (!obj) continue;
      if (obj.kind === 'Supergraph') {
        delete obj.spec.router.replicas;
        obj.spec.autoscaling = autoscaling;
        // A small per-client send buffer, so the slow consumer of the monitoring step is cut off
        // after a few MB instead of the default 1 MiB beyond the socket buffers.
        obj.spec.router.config = { subscriptions: { send_buffer_limit: '64KiB' } };
      }
      docs.push(obj);
    }
  }
  return docs.map((d) => stringify(d)).join('---\n');
}

// ---------------------------------------------------------------------------------------------
// Observations

/** Open client connections per router pod, read from each pod's metrics endpoint right now. */
async function connectionsPerPod(): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const pod of await routerPods()) {
    if (pod.status?.phase !== 'Running' || pod.metadata.deletionTimestamp) continue;
    const name = pod.metadata.name as string;
    const text = await cluster
      .kubectl(['get', '--raw', `/api/v1/namespaces/${NS}/pods/${name}:8088/proxy/metrics`])
      .catch(() => '');
    const match = /^router_engine_connections (\d+)/m.exec(text);
    if (match) out.set(name, Number(match[1]));
  }
  return out;
}

const formatPods = (pods: Map<string, number>): string =>
  [...pods].map(([name, n]) => `${name.replace(/^chat-router-/, '')}=${n}`).join(', ') || '(none)';

/** Records the router Deployment's desired and ready replicas whenever they change. */
class ReplicaTimeline {
  readonly entries: { at: number; replicas: number; ready: number }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private polling = false;

  constructor(readonly origin: number) {}

  start(): this {
    const poll = async () => {
      if (this.polling) return;
      this.polling = true;
      try {
        const d = await kubectlJson(['get', 'deployment', 'chat-router', '-n', NS]);
        const replicas = Number(d.spec?.replicas ?? 0);
        const ready = Number(d.status?.readyReplicas ?? 0);
        const last = this.entries[this.entries.length - 1];
        if (!last || last.replicas !== replicas || last.ready !== ready) {
          this.entries.push({ at: Date.now(), replicas, ready });
        }
      } catch {
        // A transient API error: the next poll records the state.
      } finally {
        this.polling = false;
      }
    };
    void poll();
    this.timer = setInterval(() => void poll(), 1000).unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** When `replicas` (desired) first reached `count`. */
  firstDesired(count: number): number | undefined {
    return this.entries.find((e) => e.replicas >= count)?.at;
  }

  firstReady(count: number): number | undefined {
    return this.entries.find((e) => e.ready >= count)?.at;
  }

  toString(): string {
    return this.entries
      .map((e) => `t=${((e.at - this.origin) / 1000).toFixed(0)}s ${e.replicas} desired/${e.ready} ready`)
      .join(' -> ');
  }
}

let sent = 0;

async function sendMessage(): Promise<string> {
  const text = `autoscaling message ${++sent} at ${Date.now()}`;
  const res = await http.request(
    'mutation ($text: String!) { sendMessage(roomID: "123", text: $text, userID: "1") { id } }',
    { text },
  );
  if (!res.data?.sendMessage?.id) throw new Error(`sendMessage failed: ${JSON.stringify(res)}`);
  return text;
}

const received = (s: Subscriber, text: string): boolean =>
  s.results.some((r) => r.data?.messageAdded?.text === text);

/**
 * Sends messages until every subscriber received one (a subscription is live only once its router
 * subscribed to NATS, which no protocol message acknowledges); returns that message's text.
 */
async function deliveredToAll(clients: Subscriber[], timeoutMs = 90_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // Through the Ingress: while no router is ready (a restarted broker) it answers 404 or 503.
    const text = await sendMessage().catch((error: Error) => {
      if (Date.now() > deadline) throw error;
      return undefined;
    });
    if (text === undefined) {
      await sleep(500);
      continue;
    }
    const arrived = await eventually(() => clients.every((s) => received(s, text)), text, 3_000, 50)
      .then(() => true)
      .catch(() => false);
    if (arrived) return text;
    if (Date.now() > deadline) {
      const missing = clients.filter((s) => !received(s, text));
      throw new Error(
        `no message reached all ${clients.length} subscribers within ${timeoutMs} ms; ${missing.length} missing, e.g. ${JSON.stringify(
          missing
            .slice(0, 2)
            .map((s) => ({ connects: s.connects, closes: s.closes, last: s.results.slice(-1) })),
        )}`,
      );
    }
  }
}

function open(count: number): Subscriber[] {
  const opened = Array.from({ length: count }, () =>
    subscriber({
      url: wsUrl,
      ingressAddress: cluster.ingress.address,
      query: SUBSCRIPTION,
      variables: { room: '123' },
    }),
  );
  subscribers.push(...opened);
  return opened;
}

// ---------------------------------------------------------------------------------------------
// Dashboards and alerts as the chart ships them

/**
 * Alerts evaluated earlier in the last step, while the test held their condition: a state that is
 * over by the end (NATS back, composition fixed), or a count whose window may have passed.
 */
const CHECKED_WHILE_HELD = new Set([
  'EdfsRouterConfigReloadFailed',
  'EdfsSupergraphNotComposed',
  'EdfsEventProviderDisconnected',
  'EdfsSupergraphNotReady',
]);

/** The chart's PrometheusRule groups, rendered by helm (what the Prometheus Operator would load). */
async function chartRuleGroups(): Promise<Obj[]> {
  const out = await helmRun([
    'template',
    RELEASE,
    CHART,
    '-n',
    SYSTEM_NS,
    '--set',
    'monitoring.prometheusRules.enabled=true',
    '--show-only',
    'templates/prometheusrule.yaml',
  ]);
  const rule = parseAllDocuments(out)[0]!.toJS() as Obj;
  return rule.spec.groups as Obj[];
}

let ruleExprs: Map<string, string> | undefined;

/** The expression of one of the chart's alerts (read once). */
function alertExpr(name: string): string {
  const expr = ruleExprs?.get(name);
  if (!expr) throw new Error(`the chart has no alert ${name}`);
  return expr;
}

/** The chart's dashboard as helm renders it into its ConfigMap. */
async function chartDashboard(): Promise<Obj> {
  const out = await helmRun([
    'template',
    RELEASE,
    CHART,
    '-n',
    SYSTEM_NS,
    '--set',
    'monitoring.dashboards.enabled=true',
    '--show-only',
    'templates/dashboards.yaml',
  ]);
  const configMap = parseAllDocuments(out)[0]!.toJS() as Obj;
  return JSON.parse(configMap.data['edfs-routers.json'] as string) as Obj;
}

/** A panel query as Grafana sends it with namespace demo, Supergraph chat and every pod chosen. */
function grafanaQuery(expr: string): string {
  return expr
    .replaceAll('$namespace', NS)
    .replaceAll('$supergraph', 'chat')
    .replaceAll('$pod', '.+')
    .replaceAll('$__rate_interval', '1m');
}

/** Publishes raw payloads on NATS from inside the cluster (the messages subgraph's pod and client). */
async function natsPublish(messages: { subject: string; data: string; times?: number }[]): Promise<void> {
  const script = `
    import { connect } from '@nats-io/transport-node';
    const nc = await connect({ servers: process.env.NATS_URL });
    for (const m of ${JSON.stringify(messages)}) for (let i = 0; i < (m.times ?? 1); i++) nc.publish(m.subject, m.data);
    await nc.flush();
    await nc.close();`;
  await cluster.kubectl([
    'exec',
    '-n',
    NS,
    'deployment/chat-messages',
    '--',
    'node',
    '--input-type=module',
    '-e',
    script,
  ]);
}

/** A graphql-transport-ws client that subscribes and then stops reading its socket. */
async function slowConsumer(room: string): Promise<{ socket: WebSocket; closed: Promise<number> }> {
  const socket = new WebSocket(wsUrl, 'graphql-transport-ws', {
    lookup: ingressLookup(cluster.ingress.address) as never,
  });
  const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  socket.send(JSON.stringify({ type: 'connection_init' }));
  await new Promise((resolve) => socket.once('message', resolve));
  socket.send(
    JSON.stringify({
      id: '1',
      type: 'subscribe',
      payload: { query: `subscription { messageAdded(roomID: "${room}") { id text } }` },
    }),
  );
  return { socket, closed };
}

/** Sum of a router metric over the router pods, read from the pods right now. */
async function routerMetric(line: RegExp): Promise<number> {
  let total = 0;
  for (const pod of await routerPods()) {
    if (pod.status?.phase !== 'Running') continue;
    const text = await cluster
      .kubectl(['get', '--raw', `/api/v1/namespaces/${NS}/pods/${pod.metadata.name}:8088/proxy/metrics`])
      .catch(() => '');
    for (const l of text.split('\n')) {
      const m = line.exec(l);
      if (m) total += Number(l.slice(l.lastIndexOf(' ') + 1));
    }
  }
  return total;
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  const started = Date.now();
  let parts;
  [images, helm, cluster, parts] = await Promise.all([
    buildImages(),
    helmBinary(),
    startCluster(),
    monitoringParts(),
  ]);
  report(`images and parts built, cluster up in ${seconds(Date.now() - started)}`);
  for (const image of Object.values(images)) await cluster.loadImage(image);
  const monitoringStarted = Date.now();
  const ruleGroups = await chartRuleGroups();
  ruleExprs = new Map(
    ruleGroups.flatMap((g) => (g.rules as Obj[]).map((r) => [r.alert as string, r.expr as string])),
  );
  monitoring = await installMonitoring(cluster, { ruleGroups });
  report(
    `Prometheus ${parts.prometheusImage.split(':').pop()}, KEDA ${parts.kedaImage.split(':').pop()} and metrics-server ${parts.metricsServerImage.split(':').pop()} running in ${seconds(Date.now() - monitoringStarted)}`,
  );

  // The chart after KEDA (the operator notices KEDA's CRDs at start), pointing KEDA triggers at
  // Prometheus and asking Prometheus to scrape the operator through its metrics Service.
  const operator = splitImage(images.operator);
  const router = splitImage(images.router);
  await helmRun([
    'install',
    RELEASE,
    CHART,
    '-n',
    SYSTEM_NS,
    '--create-namespace',
    '--set',
    `image.repository=${operator.repository},image.tag=${operator.tag}`,
    '--set',
    `router.image.repository=${router.repository},router.image.tag=${router.tag}`,
    '--set',
    `router.prometheusAddress=${PROMETHEUS_ADDRESS}`,
    '--set-string',
    'metrics.service.annotations.prometheus\\.io/scrape=true',
    '--set-string',
    'metrics.service.annotations.prometheus\\.io/port=8080',
    '--wait',
    '--timeout',
    '5m',
  ]);

  http = new GraphqlHttp(`http://${HOST}:${cluster.ingress.port}/graphql`, cluster.ingress.address);
  wsUrl = `ws://${HOST}:${cluster.ingress.port}/graphql`;
  await cluster.kubectl(['create', 'namespace', NS]);
  await cluster.kubectl(
    ['apply', '-f', '-'],
    exampleManifests({
      mode: 'KEDA',
      minReplicas: 1,
      maxReplicas: MAX_REPLICAS,
      targetConnectionsPerPod: TARGET_CONNECTIONS,
      behavior: BEHAVIOR,
      keda: { pollingInterval: 5 },
    }),
  );
  await until(async () => {
    const s = await kubectlJson(['get', 'supergraph', 'chat', '-n', NS]);
    return condition(s, 'Ready')?.status === 'True' ? s : undefined;
  }, 'Supergraph chat Ready=True');
  for (const deployment of ['nats', 'chat-messages', 'chat-users']) {
    await cluster.kubectl(['rollout', 'status', '-n', NS, `deployment/${deployment}`, '--timeout=300s']);
  }
  report(`setup done in ${seconds(Date.now() - started)}`);
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  for (const s of subscribers) s.dispose();
  await http?.close().catch(() => undefined);
  await cluster?.stop();
}, 180_000);

describe('routers scaled on their own metrics', () => {
  it(
    'Prometheus scrapes the router pods by their annotations and the operator through its Service',
    async () => {
      const targets = await until(async () => {
        const all = await monitoring.prometheus.targets();
        const routers = all.filter(
          (t) => t.labels.job === 'kubernetes-pods' && t.labels.namespace === NS && t.health === 'up',
        );
        const operators = all.filter(
          (t) =>
            t.labels.job === 'kubernetes-service-endpoints' &&
            t.labels.namespace === SYSTEM_NS &&
            t.health === 'up',
        );
        return routers.length >= 1 && operators.length === 2 ? { routers, operators } : undefined;
      }, 'router pods and both operator pods scraped');
      expect(targets.routers[0]!.scrapeUrl).toMatch(/:8088\/metrics$/);
      const connections = await monitoring.prometheus.query(
        `router_engine_connections{namespace="${NS}",pod=~"chat-router-.+"}`,
      );
      expect(connections.length).toBeGreaterThanOrEqual(1);
      const leader = await monitoring.prometheus.query('leader_election_master_status == 1');
      expect(leader.map((s) => s.metric.namespace)).toEqual([SYSTEM_NS]);

      // The operator rendered KEDA's ScaledObject, and KEDA its HorizontalPodAutoscaler.
      const scaledObject = await until(async () => {
        const so = await kubectlJson(['get', 'scaledobject', 'chat-router', '-n', NS]);
        return condition(so, 'Ready')?.status === 'True' ? so : undefined;
      }, 'ScaledObject chat-router Ready');
      expect(scaledObject.spec.triggers[0]).toMatchObject({
        type: 'prometheus',
        metadata: { serverAddress: PROMETHEUS_ADDRESS, threshold: String(TARGET_CONNECTIONS) },
      });
      const hpa = await kubectlJson(['get', 'hpa', 'keda-hpa-chat-router', '-n', NS]);
      expect(hpa.spec.behavior.scaleDown.stabilizationWindowSeconds).toBe(30);
      report(
        `scraped: ${targets.routers.length} router pod(s) by pod annotations, ${targets.operators.length} operator pods by Service annotations`,
      );
    },
    STEP_TIMEOUT_MS,
  );

  let timeline: ReplicaTimeline;
  let load: Subscriber[] = [];
  let watchers: Subscriber[] = [];

  it(
    'KEDA: WebSocket load through the Ingress scales out to 3 routers; new connections land on the new pods',
    async () => {
      await until(async () => (await routerPods()).filter(podReady).length === 1, 'one Ready router');
      watchers = open(FIRST_WATCHERS);
      await deliveredToAll(watchers);
      const before = await connectionsPerPod();
      report(`connections per pod before the load: ${formatPods(before)}`);

      const loadStarted = Date.now();
      timeline = new ReplicaTimeline(loadStarted).start();
      load = open(LOAD_CLIENTS);
      await eventually(() => load.every((s) => s.connects === 1), 'load clients connected', 60_000, 50);
      const loaded = Date.now();
      report(`${LOAD_CLIENTS} load clients connected in ${seconds(loaded - loadStarted)}`);

      await until(
        async () => ((await routerPods()).filter(podReady).length === MAX_REPLICAS ? true : undefined),
        `${MAX_REPLICAS} Ready routers`,
      );
      const decided = timeline.firstDesired(MAX_REPLICAS) ?? Date.now();
      const ready = Date.now();
      report(
        `load to scale-out: decided ${seconds(decided - loaded)} after the load connected, ${MAX_REPLICAS} routers Ready after ${seconds(ready - loaded)}`,
      );
      const afterScaleOut = await connectionsPerPod();
      report(`connections per pod after scale-out: ${formatPods(afterScaleOut)}`);

      // Open WebSockets stay where they are; new connections go to every ready router, new ones
      // included (Traefik balances over the Service's ready endpoints, once it has seen them).
      await until(async () => {
        const slices = (
          await kubectlJson([
            'get',
            'endpointslices',
            '-n',
            NS,
            '-l',
            'kubernetes.io/service-name=chat-router',
          ])
        ).items as Obj[];
        const ready = slices.flatMap((s) => (s.endpoints ?? []) as Obj[]).filter((e) => e.conditions?.ready);
        return ready.length === MAX_REPLICAS ? true : undefined;
      }, `${MAX_REPLICAS} ready endpoints of Service chat-router`);
      await sleep(5_000);
      const idle = [...afterScaleOut].filter(([, n]) => n === 0).map(([pod]) => pod);
      expect(idle.length).toBe(MAX_REPLICAS - 1);
      watchers.push(...open(LATER_WATCHERS));
      await deliveredToAll([...watchers, ...load]);
      const spread = await connectionsPerPod();
      report(`connections per pod after ${LATER_WATCHERS} new clients: ${formatPods(spread)}`);
      for (const pod of idle) expect(spread.get(pod)).toBeGreaterThan(0);
      expect([...spread.values()].reduce((a, b) => a + b, 0)).toBe(
        LOAD_CLIENTS + FIRST_WATCHERS + LATER_WATCHERS,
      );
    },
    STEP_TIMEOUT_MS,
  );

  it(
    'a PodDisruptionBudget lets voluntary evictions take one router at a time; the evicted one drains',
    async () => {
      const pdb = await until(async () => {
        const found = await kubectlJson(['get', 'pdb', 'chat-router', '-n', NS]);
        return found.status?.disruptionsAllowed === 1 ? found : undefined;
      }, 'PodDisruptionBudget chat-router allowing one disruption');
      expect(pdb.spec.maxUnavailable).toBe(1);
      const before = new Map(watchers.map((s) => [s, s.closes.length]));
      // The two routers started by the scale-out (the first one holds the load).
      const counts = await connectionsPerPod();
      const [first, second] = [...counts].sort((a, b) => a[1] - b[1]).map(([pod]) => pod);
      const evict = (pod: string) =>
        cluster.kubectl(
          ['create', '--raw', `/api/v1/namespaces/${NS}/pods/${pod}/eviction`, '-f', '-'],
          JSON.stringify({
            apiVersion: 'policy/v1',
            kind: 'Eviction',
            metadata: { name: pod, namespace: NS },
          }),
        );
      await evict(first!);
      const refused = await evict(second!).then(
        () => 'accepted',
        (error: Error) => error.message,
      );
      expect(refused).toMatch(/disruption budget/);
      report(
        `eviction of ${first!.replace(/^chat-router-/, '')} accepted, of ${second!.replace(/^chat-router-/, '')} at once refused: ${/Cannot evict[^.\n]*/.exec(refused)?.[0] ?? refused}`,
      );
      // preStop, then the router's jittered drain: the pod is gone once its last client is.
      await until(
        async () => ((await routerPods()).some((p) => p.metadata.name === first) ? undefined : true),
        `evicted router ${first!} gone`,
      );
      await until(
        async () => ((await routerPods()).filter(podReady).length === MAX_REPLICAS ? true : undefined),
        `${MAX_REPLICAS} Ready routers again`,
      );
      const evicted = watchers.filter((s) => s.closes.length > before.get(s)!);
      // Every connection of a router started by the scale-out is a watcher's (the load came first).
      expect(evicted.length).toBe(counts.get(first!));
      for (const s of evicted) expect(s.closes.slice(before.get(s)!).map((c) => c.code)).toEqual([1001]);
      await deliveredToAll(watchers);
      report(
        `the evicted router's ${evicted.length} watching clients closed with 1001, reconnected and received the next event`,
      );
    },
    STEP_TIMEOUT_MS,
  );

  it(
    'the load gone: scales in to 1; the removed routers drain, their clients reconnect and keep receiving events',
    async () => {
      const closesBefore = new Map(watchers.map((s) => [s, s.closes.length]));
      const connectsBefore = new Map(watchers.map((s) => [s, s.connects]));
      const pods = (await routerPods()).map((p) => p.metadata.name as string);
      const unloaded = Date.now();
      for (const s of load) s.dispose();
      const gone = await until(async () => {
        const now = await routerPods();
        return now.length === 1 && podReady(now[0]!) ? now : undefined;
      }, 'one router left');
      const scaledIn = Date.now();
      const survivor = gone[0]!.metadata.name as string;
      const removed = pods.filter((p) => p !== survivor);
      const decided = timeline.entries.find((e) => e.at > unloaded && e.replicas === 1)?.at;
      report(
        `load gone to scale-in: decided after ${decided ? seconds(decided - unloaded) : '?'}, removed pods gone after ${seconds(scaledIn - unloaded)}`,
      );

      // Clients of the removed routers got 1001 at jittered times, reconnected once (to a ready
      // router: a second close would mean they reached a draining one) and receive events.
      const drained = watchers.filter((s) => s.closes.length > closesBefore.get(s)!);
      const kept = watchers.filter((s) => s.closes.length === closesBefore.get(s)!);
      expect(drained.length).toBeGreaterThan(0);
      for (const s of drained)
        expect(s.closes.slice(closesBefore.get(s)!).map((c) => c.code)).toEqual([1001]);
      await eventually(
        () => drained.every((s) => s.connects === connectsBefore.get(s)! + 1),
        'drained clients reconnected',
        60_000,
        100,
      );
      for (const s of kept) expect(s.connects).toBe(connectsBefore.get(s));
      const text = await deliveredToAll(watchers);
      const lost = watchers.filter((s) => !received(s, text)).length;
      const closeTimes = drained.map((s) => s.closes[closesBefore.get(s)!]!.at).sort((a, b) => a - b);
      report(
        `scale-in: ${removed.length} routers removed; ${drained.length} of ${watchers.length} watching clients closed with 1001 over ${seconds(
          closeTimes[closeTimes.length - 1]! - closeTimes[0]!,
        )} (at +${closeTimes.map((t) => seconds(t - closeTimes[0]!)).join(', +')}), all reconnected; subscriptions lost: ${lost}`,
      );
      expect(lost).toBe(0);
      report(`connections per pod after scale-in: ${formatPods(await connectionsPerPod())}`);

      // No flapping: the remaining connections are below one router's target.
      await sleep(45_000);
      timeline.stop();
      const d = await kubectlJson(['get', 'deployment', 'chat-router', '-n', NS]);
      expect(d.spec.replicas).toBe(1);
      report(`replicas over time (t from the load): ${timeline.toString()}`);
      const grace = (await routerPods())[0]!.spec.terminationGracePeriodSeconds as number;
      report(`terminationGracePeriodSeconds ${grace} = preStop 5 s + drain 20 s + 10 s margin`);
      expect(grace).toBe(35);
    },
    STEP_TIMEOUT_MS,
  );

  it(
    'HPA on CPU through metrics-server: query load scales out, its end scales back in',
    async () => {
      await cluster.kubectl([
        'patch',
        'supergraph',
        'chat',
        '-n',
        NS,
        '--type',
        'merge',
        '-p',
        JSON.stringify({
          spec: {
            autoscaling: {
              mode: 'HPA',
              minReplicas: 1,
              maxReplicas: 2,
              targetConnectionsPerPod: null,
              targetCPUUtilizationPercentage: 50,
              keda: null,
              behavior: BEHAVIOR,
            },
          },
        }),
      ]);
      const hpa = await until(async () => {
        const h = await kubectlJson(['get', 'hpa', 'chat-router', '-n', NS]);
        const cpu = (h.status?.currentMetrics as Obj[] | undefined)?.find((m) => m.type === 'Resource');
        return cpu?.resource?.current?.averageUtilization !== undefined ? h : undefined;
      }, 'HPA chat-router reading CPU from metrics-server');
      expect(hpa.spec.metrics).toEqual([
        {
          type: 'Resource',
          resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 50 } },
        },
      ]);
      await until(
        async () =>
          (await kubectlJson(['get', 'scaledobject', '-n', NS])).items.length === 0 ? true : undefined,
        'the ScaledObject removed',
      );
      const idleCpu = hpa.status.currentMetrics[0].resource.current.averageUtilization as number;

      const started = Date.now();
      const cpuTimeline = new ReplicaTimeline(started).start();
      let stop = false;
      let queries = 0;
      const workers = Array.from({ length: 12 }, async () => {
        while (!stop) {
          await http
            .request('{ messages(roomID: "123") { id text createdAt user { name } } }')
            .then(() => queries++)
            .catch(() => undefined);
        }
      });
      try {
        await until(
          async () => ((await routerPods()).filter(podReady).length === 2 ? true : undefined),
          'two Ready routers under CPU load',
        );
      } finally {
        stop = true;
        await Promise.all(workers);
      }
      const loaded = await kubectlJson(['get', 'hpa', 'chat-router', '-n', NS]);
      report(
        `HPA on CPU: idle ${idleCpu}% of the request; under ${queries} queries scaled to 2 after ${seconds(
          (cpuTimeline.firstDesired(2) ?? Date.now()) - started,
        )} (CPU ${loaded.status.currentMetrics?.[0]?.resource?.current?.averageUtilization}%)`,
      );
      const ended = Date.now();
      await until(
        async () => ((await routerPods()).length === 1 ? true : undefined),
        'back to one router once the load ended',
      );
      cpuTimeline.stop();
      report(
        `HPA on CPU: back to 1 router ${seconds(Date.now() - ended)} after the load; ${cpuTimeline.toString()}`,
      );
    },
    STEP_TIMEOUT_MS,
  );

  it(
    "every panel of the chart's dashboard and every alert of its PrometheusRule returns series from this Prometheus",
    async () => {
      const parts = await monitoringParts();
      const rulesFile = `${tmpdir()}/edfs-autoscaling-rules-${process.pid}.yaml`;
      writeFileSync(rulesFile, stringify({ groups: await chartRuleGroups() }));
      const checked = await run(parts.promtool, ['check', 'rules', rulesFile]).finally(() =>
        rmSync(rulesFile),
      );
      expect(checked.stdout).toMatch(/SUCCESS: \d+ rules found/);

      // A config the routers refuse, with the operator stopped (it would restore its ConfigMap at
      // once): the kubelet hands it to the routers, which keep serving the last good one.
      const operator = ['deployment', RELEASE, '-n', SYSTEM_NS];
      const operatorReplicas = (await kubectlJson(['get', ...operator])).spec.replicas as number;
      await cluster.kubectl(['scale', ...operator, '--replicas=0']);
      await until(
        async () =>
          (await kubectlJson(['get', 'pods', '-n', SYSTEM_NS, '-l', OPERATOR_PODS])).items.length === 0
            ? true
            : undefined,
        'the operator stopped',
      );
      const refusals = /^router_execution_config_reloads_total\{result="failure"\}/;
      const refusedBefore = await routerMetric(refusals);
      const routerConfig = ['configmap', 'chat-router-config', '-n', NS];
      await cluster.kubectl([
        'patch',
        ...routerConfig,
        '--type',
        'merge',
        '-p',
        JSON.stringify({ data: { 'config.json': '{}' } }),
      ]);
      await until(
        async () => ((await routerMetric(refusals)) > refusedBefore ? true : undefined),
        'the routers refusing the config',
      );
      const refused = await until(async () => {
        const found = await monitoring.prometheus.query(alertExpr('EdfsRouterConfigReloadFailed'));
        return found.length > 0 ? found : undefined;
      }, 'EdfsRouterConfigReloadFailed returning series');
      expect(refused[0]!.metric).toMatchObject({ namespace: NS });
      expect(await http.request('{ messages(roomID: "123") { id } }')).toMatchObject({
        data: { messages: expect.any(Array) },
      });
      await cluster.kubectl(['scale', ...operator, `--replicas=${operatorReplicas}`]);
      await cluster.kubectl([
        'rollout',
        'status',
        '-n',
        SYSTEM_NS,
        `deployment/${RELEASE}`,
        '--timeout=300s',
      ]);
      await until(
        async () =>
          (await kubectlJson(['get', ...routerConfig])).data['config.json'] !== '{}' ? true : undefined,
        "the operator restoring the routers' ConfigMap",
      );
      report(
        `a refused config counted in router_execution_config_reloads_total{result="failure"} (${(await routerMetric(refusals)) - refusedBefore} router(s)); the last good one kept serving`,
      );

      // Traffic for every panel: queries (subgraph requests, HTTP), events and their fan-out.
      const watcher = open(1)[0]!;
      await deliveredToAll([watcher]);
      for (let i = 0; i < 5; i++) await http.request('{ messages(roomID: "123") { id text user { name } } }');

      // Events a publisher got wrong: not JSON, and without __typename.
      const droppedBefore = await routerMetric(
        /^router_dropped_messages_total\{reason="invalid_(json|event)"\}/,
      );
      await natsPublish([
        { subject: 'room.123.messages', data: 'not json' },
        { subject: 'room.123.messages', data: JSON.stringify({ id: '1' }) },
      ]);
      await eventually(
        async () =>
          (await routerMetric(/^router_dropped_messages_total\{reason="invalid_(json|event)"\}/)) >=
          droppedBefore + 2,
        'invalid events counted',
        30_000,
        500,
      );

      // A client that stops reading while large results keep coming: cut off as a slow consumer.
      const big = await http.request(
        'mutation ($text: String!) { sendMessage(roomID: "slow", text: $text, userID: "1") { id } }',
        { text: 'x'.repeat(100 * 1024) },
      );
      const bigId = big.data.sendMessage.id as string;
      const slow = await slowConsumer('slow');
      await sleep(2_000);
      (slow.socket as unknown as { _socket: { pause(): void } })._socket.pause();
      let published = 0;
      while ((await routerMetric(/^router_dropped_messages_total\{reason="slow_consumer"\}/)) === 0) {
        if (published >= 2_000)
          throw new Error(`no slow consumer dropped after ${published} events of 100 KiB`);
        await natsPublish([
          {
            subject: 'room.slow.messages',
            data: JSON.stringify({ __typename: 'Message', id: bigId }),
            times: 100,
          },
        ]);
        published += 100;
      }
      (slow.socket as unknown as { _socket: { resume(): void } })._socket.resume();
      report(`slow consumer cut off after ${published} events of 100 KiB (close ${await slow.closed})`);

      // A Subgraph that breaks composition: Composed=False, the routers keep the last good config.
      const broken = {
        apiVersion: 'edfs.io/v1alpha1',
        kind: 'Subgraph',
        metadata: { name: 'broken', namespace: NS, labels: { graph: 'chat' } },
        spec: {
          routingUrl: 'http://chat-users.demo.svc:4002/graphql',
          schema: { sdl: 'type Query { messages(roomID: ID!): Int }' },
        },
      };
      await cluster.kubectl(['apply', '-f', '-'], stringify(broken));
      const notComposed = await until(async () => {
        const found = await monitoring.prometheus.query(alertExpr('EdfsSupergraphNotComposed'));
        return found.length > 0 ? found : undefined;
      }, 'EdfsSupergraphNotComposed returning series');
      expect(notComposed[0]!.metric).toMatchObject({ supergraph_namespace: NS, supergraph: 'chat' });
      await cluster.kubectl(['delete', 'subgraph', 'broken', '-n', NS]);

      // NATS gone for a while: the routers turn unready (Supergraph Ready=False), then reconnect.
      await cluster.kubectl(['scale', 'deployment', 'nats', '-n', NS, '--replicas=0']);
      const disconnected = await until(async () => {
        const found = await monitoring.prometheus.query(alertExpr('EdfsEventProviderDisconnected'));
        return found.length > 0 ? found : undefined;
      }, 'EdfsEventProviderDisconnected returning series');
      expect(disconnected[0]!.metric).toMatchObject({ namespace: NS, provider_id: 'default' });
      const notReady = await until(async () => {
        const found = await monitoring.prometheus.query(alertExpr('EdfsSupergraphNotReady'));
        return found.length > 0 ? found : undefined;
      }, 'EdfsSupergraphNotReady returning series');
      expect(notReady[0]!.metric).toMatchObject({ supergraph_namespace: NS, supergraph: 'chat' });
      await cluster.kubectl(['scale', 'deployment', 'nats', '-n', NS, '--replicas=1']);
      await until(
        async () => ((await routerPods()).some(podReady) ? true : undefined),
        'a router ready again',
      );
      await until(
        async () =>
          (await routerMetric(/^router_events_provider_reconnects_total\{/)) > 0 ? true : undefined,
        'the routers reconnected to NATS',
      );
      await deliveredToAll([watcher], 120_000);
      await sleep(3 * SCRAPE_INTERVAL_SECONDS * 1000);

      // Every dashboard query, as Grafana sends it for Supergraph chat in namespace demo.
      const dashboard = await chartDashboard();
      const panels: string[] = [];
      for (const panel of dashboard.panels as Obj[]) {
        for (const target of (panel.targets ?? []) as Obj[]) {
          const series = await monitoring.prometheus.query(grafanaQuery(target.expr as string));
          panels.push(`${panel.title as string} [${target.refId as string}]: ${series.length}`);
          expect({ panel: panel.title, expr: target.expr, series: series.length > 0 }).toEqual({
            panel: panel.title,
            expr: target.expr,
            series: true,
          });
        }
      }
      for (const variable of dashboard.templating.list as Obj[]) {
        if (variable.type !== 'query') continue;
        const match = /^label_values\((.*), (\w+)\)$/.exec(grafanaQuery(variable.query.query as string));
        const series = await monitoring.prometheus.query(match![1]!);
        expect({ variable: variable.name, values: series.some((s) => s.metric[match![2]!]) }).toEqual({
          variable: variable.name,
          values: true,
        });
      }
      report(`dashboard: ${panels.length} panel queries, all with series (${panels.join('; ')})`);

      // Every alert: its expression returns series now, and Prometheus evaluates the rule cleanly.
      const firing: string[] = [];
      for (const group of await chartRuleGroups()) {
        for (const rule of group.rules as Obj[]) {
          const expr = rule.expr as string;
          const series = await monitoring.prometheus.query(expr);
          // Alerts on a state rather than a recent count were checked while it held (above).
          if (CHECKED_WHILE_HELD.has(rule.alert as string)) continue;
          expect({ alert: rule.alert, series: series.length > 0 }).toEqual({
            alert: rule.alert,
            series: true,
          });
          firing.push(
            `${rule.alert as string}: ${series.map((s) => Object.values(s.metric).join('/')).join(', ')}`,
          );
        }
      }
      const loaded = (await monitoring.prometheus.rules()).flatMap((g) => g.rules);
      expect(loaded.map((r) => r.name).sort()).toEqual(
        (await chartRuleGroups()).flatMap((g) => (g.rules as Obj[]).map((r) => r.alert as string)).sort(),
      );
      for (const rule of loaded)
        expect({ rule: rule.name, health: rule.health, error: rule.lastError ?? '' }).toEqual({
          rule: rule.name,
          health: 'ok',
          error: '',
        });
      report(
        `alerts returning series: ${firing.join('; ')}; ${[...CHECKED_WHILE_HELD].join(', ')} while their condition held`,
      );
      report(`rule states in Prometheus: ${loaded.map((r) => `${r.name}=${r.state}`).join(', ')}`);
    },
    // Makes each alert's condition real in turn; the refused config waits on the kubelet.
    2 * STEP_TIMEOUT_MS,
  );
});
