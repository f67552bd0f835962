/**
 * The platform team's and the API team's whole journey, in a real cluster (kubelet, container
 * runtime, kube-proxy, CoreDNS, a real Ingress controller; `e2e/src/infra/cluster.ts`), with the
 * images our Dockerfiles build and the chart as users install it:
 *
 *  1. `helm install` the chart with the locally built operator image: two operator pods, one leader;
 *  2. `kubectl apply -f examples/chat/manifests/` (NATS, the two subgraph servers, the Subgraphs,
 *     the EventProvider and the Supergraph; only the NATS image name is swapped for the locally
 *     made one): the Supergraph reaches Ready=True with two Ready router pods;
 *  3. clients connect through the Ingress (graphql-transport-ws and SSE), subscribe to
 *     `messageAdded`, and a `sendMessage` mutation through the Ingress reaches both, joined with
 *     the author from the users subgraph;
 *  4. a new field in the messages Subgraph reaches both running routers through the ConfigMap
 *     volume the kubelet updates: the open subscriptions keep streaming on the same connections,
 *     and a query can select the field;
 *  5. `kubectl scale sup chat --replicas=3` gives a third Ready router;
 *  6. a router pod deleted under live subscriptions closes them with 1001; the clients reconnect
 *     through the Ingress and receive the next event;
 *  7. the leader operator pod deleted: the other one takes the Lease and reconciles a new change;
 *  8. `helm upgrade` with a changed value reaches the operator pods; `helm uninstall` keeps the
 *     CRDs and the Supergraph (and so the running routers).
 *
 * Figures printed: `kubectl apply` to Ready=True, and a Subgraph change to its field being served.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createClient as createSseClient, type Client as SseClient } from 'graphql-sse';
import { fetch as undiciFetch } from 'undici';
import { parseAllDocuments, stringify } from 'yaml';
import { GraphqlHttp, subscriber, type Subscriber } from '../src/fixtures/ingress-clients.js';
import { eventually, waitFor } from '../src/fixtures/wait.js';
import { startCluster, type Cluster } from '../src/infra/cluster.js';
import { buildImages, type ProjectImages } from '../src/infra/images.js';
import { helmBinary } from '../src/infra/kube.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHART = `${ROOT}charts/edfs-operator`;
const MANIFESTS = `${ROOT}examples/chat/manifests`;
const SETUP_TIMEOUT_MS = 60 * 60_000;
const STEP_TIMEOUT_MS = 6 * 60_000;
const RELEASE = 'edfs-operator';
const SYSTEM_NS = 'edfs-system';
const NS = 'demo';
const HOST = 'chat.localtest.me';
const SUBSCRIPTION = 'subscription ($room: ID!) { messageAdded(roomID: $room) { id text user { name } } }';

type Obj = Record<string, any>;

let cluster: Cluster;
let images: ProjectImages;
let helm: string;
/** Base URL of the GraphQL endpoint through the Ingress (`http://chat.localtest.me:PORT/graphql`). */
let graphqlUrl: string;
/** Queries and mutations through the Ingress; its Agent also carries the SSE streams. */
let http: GraphqlHttp;
const disposers: (() => unknown)[] = [];

// ---------------------------------------------------------------------------------------------
// Tools as a user runs them.

const run = promisify(execFile);

async function kubectl(args: string[], input?: string): Promise<string> {
  return cluster.kubectl(args, input);
}

async function kubectlJson(args: string[]): Promise<Obj> {
  return JSON.parse(await kubectl([...args, '-o', 'json'])) as Obj;
}

async function helmRun(args: string[]): Promise<string> {
  const { stdout } = await run(helm, [...args, '--kubeconfig', cluster.kubeconfigPath], {
    cwd: ROOT,
    maxBuffer: 16 << 20,
  });
  return stdout;
}

/** `repository` and `tag` of an image reference, for the chart's `image.*` values. */
function splitImage(image: string): { repository: string; tag: string } {
  const at = image.lastIndexOf(':');
  return { repository: image.slice(0, at), tag: image.slice(at + 1) };
}

/**
 * The example's manifests as written. On the cluster assembled here, which cannot pull, the NATS
 * image is swapped for the locally made one (the same nats-server, same arguments); an external
 * cluster pulls the official image.
 */
function exampleManifests(): string {
  return readdirSync(MANIFESTS)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => readFileSync(`${MANIFESTS}/${f}`, 'utf8'))
    .map((text) =>
      cluster.external ? text : text.replaceAll('image: nats:2.11-alpine', `image: ${images.nats}`),
    )
    .join('\n---\n');
}

function exampleObject(kind: string, name: string): Obj {
  for (const f of readdirSync(MANIFESTS).filter((n) => n.endsWith('.yaml'))) {
    for (const doc of parseAllDocuments(readFileSync(`${MANIFESTS}/${f}`, 'utf8'))) {
      const obj = doc.toJS() as Obj | null;
      if (obj?.kind === kind && obj.metadata?.name === name) return obj;
    }
  }
  throw new Error(`examples/chat/manifests has no ${kind} ${name}`);
}

function condition(obj: Obj, type: string): Obj | undefined {
  return (obj.status?.conditions as Obj[] | undefined)?.find((c) => c.type === type);
}

const podReady = (pod: Obj): boolean =>
  pod.metadata?.deletionTimestamp === undefined && condition(pod, 'Ready')?.status === 'True';

async function pods(namespace: string, selector: string): Promise<Obj[]> {
  return (await kubectlJson(['get', 'pods', '-n', namespace, '-l', selector])).items as Obj[];
}

const ROUTER_PODS = 'app.kubernetes.io/instance=chat,app.kubernetes.io/name=edfs-router';
const OPERATOR_PODS = `app.kubernetes.io/instance=${RELEASE}`;

async function readyPods(namespace: string, selector: string, count: number, timeoutMs = STEP_TIMEOUT_MS) {
  return until(
    async () => {
      const found = await pods(namespace, selector);
      const ready = found.filter(podReady);
      return ready.length === count && found.length === count ? ready : undefined;
    },
    `${count} Ready pods matching ${selector} in ${namespace}`,
    timeoutMs,
  );
}

async function leaseHolder(): Promise<string> {
  const lease = await kubectlJson(['get', 'lease', 'edfs-operator', '-n', SYSTEM_NS]);
  return String(lease.spec?.holderIdentity ?? '');
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

function report(line: string): void {
  process.stdout.write(`cluster-journey: ${line}\n`);
}

/** `waitFor` at kubectl's pace: one check every half second. */
function until<T>(check: () => Promise<T | undefined | false>, what: string, timeoutMs = STEP_TIMEOUT_MS) {
  return waitFor(
    async () => {
      await new Promise((resolve) => setTimeout(resolve, 500));
      return check();
    },
    what,
    timeoutMs,
  );
}

// ---------------------------------------------------------------------------------------------
// Clients through the Ingress. `chat.localtest.me` is a public name for 127.0.0.1; this machine
// has no DNS, so the clients resolve it the way public DNS would: to the Ingress address.

/** A graphql-ws subscriber to room 123 that reconnects on any close (as graphql-ws clients do). */
function wsSession(): Subscriber {
  const session = subscriber({
    url: graphqlUrl.replace(/^http/, 'ws'),
    ingressAddress: cluster.ingress.address,
    query: SUBSCRIPTION,
    variables: { room: '123' },
  });
  disposers.push(() => session.dispose());
  return session;
}

interface SseSession {
  client: SseClient;
  streams: number;
  results: Obj[];
}

function sseSession(): SseSession {
  const session: SseSession = { client: undefined as never, streams: 0, results: [] };
  session.client = createSseClient({
    url: graphqlUrl,
    retryAttempts: 0,
    fetchFn: (input: string | URL, init?: RequestInit) => {
      session.streams++;
      return undiciFetch(input as string, {
        ...(init as object),
        dispatcher: http.dispatcher,
      }) as unknown as Promise<Response>;
    },
  });
  disposers.push(() => session.client.dispose());
  session.client.subscribe(
    { query: SUBSCRIPTION, variables: { room: '123' } },
    {
      next: (value) => void session.results.push(value as Obj),
      error: (error) => void session.results.push({ error: String(error) }),
      complete: () => undefined,
    },
  );
  return session;
}

let sent = 0;

/** Sends one message through the Ingress; returns its text. */
async function sendMessage(): Promise<string> {
  const text = `journey message ${++sent} at ${Date.now()}`;
  const res = await http.request(
    'mutation ($text: String!) { sendMessage(roomID: "123", text: $text, userID: "1") { id } }',
    { text },
  );
  if (!res.data?.sendMessage?.id) throw new Error(`sendMessage failed: ${JSON.stringify(res)}`);
  return text;
}

const received = (session: { results: Obj[] }, text: string): Obj | undefined =>
  session.results.find((r) => r.data?.messageAdded?.text === text);

/**
 * Sends messages until every session received one (a subscription is live only once the router
 * subscribed to NATS, which no client protocol acknowledges), then returns that message's text.
 */
async function deliveredToAll(sessions: { results: Obj[] }[], timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await sendMessage();
    const arrived = await eventually(
      () => sessions.every((s) => received(s, text)),
      `"${text}" everywhere`,
      3_000,
    )
      .then(() => true)
      .catch(() => false);
    if (arrived) return text;
    if (Date.now() > deadline) {
      throw new Error(
        `no message reached every subscriber within ${timeoutMs} ms; last results: ${JSON.stringify(
          sessions.map((s) => s.results.slice(-2)),
        )}`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  const started = Date.now();
  [images, helm, cluster] = await Promise.all([buildImages(), helmBinary(), startCluster()]);
  for (const image of Object.values(images)) await cluster.loadImage(image);
  graphqlUrl = `http://${HOST}:${cluster.ingress.port}/graphql`;
  http = new GraphqlHttp(graphqlUrl, cluster.ingress.address);
  report(`images built and cluster up in ${seconds(Date.now() - started)}`);
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  for (const dispose of disposers) await Promise.resolve(dispose()).catch(() => undefined);
  await http?.close().catch(() => undefined);
  await cluster?.stop();
}, 120_000);

describe('the journey in a real cluster', () => {
  let ws: Subscriber;
  let sse: SseSession;

  it(
    'helm install: two operator pods from the local image, one of them leading',
    async () => {
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
        '--wait',
        '--timeout',
        '5m',
      ]);
      const operators = await readyPods(SYSTEM_NS, OPERATOR_PODS, 2);
      for (const pod of operators) expect(pod.spec.containers[0].image).toBe(images.operator);
      const holder = await until(async () => (await leaseHolder()) || undefined, 'a Lease holder', 60_000);
      const names = operators.map((p) => p.metadata.name as string);
      expect(names.some((name) => holder.startsWith(`${name}_`))).toBe(true);
    },
    STEP_TIMEOUT_MS,
  );

  it(
    'kubectl apply -f examples/chat/manifests/: Ready=True with two Ready routers',
    async () => {
      await kubectl(['create', 'namespace', NS]);
      const started = Date.now();
      await kubectl(['apply', '-f', '-'], exampleManifests());
      const sup = await until(
        async () => {
          const s = await kubectlJson(['get', 'supergraph', 'chat', '-n', NS]);
          return condition(s, 'Ready')?.status === 'True' && s.status?.readyReplicas === 2 ? s : undefined;
        },
        'Supergraph chat Ready=True with 2 ready replicas',
        STEP_TIMEOUT_MS,
      );
      report(`kubectl apply of examples/chat/manifests to Ready=True: ${seconds(Date.now() - started)}`);
      expect(condition(sup, 'Composed')?.status).toBe('True');
      const routers = await readyPods(NS, ROUTER_PODS, 2);
      for (const pod of routers) expect(pod.spec.containers[0].image).toBe(images.router);
      const ingress = await kubectlJson(['get', 'ingress', 'chat-router', '-n', NS]);
      expect(ingress.spec.rules[0].host).toBe(HOST);
    },
    STEP_TIMEOUT_MS,
  );

  it(
    'through the Ingress: a sendMessage reaches graphql-transport-ws and SSE subscribers, joined with its author',
    async () => {
      // Queries first: the Ingress routes to the routers, which join both subgraphs.
      const seeded = await until(
        async () => {
          const res = await http
            .request('{ messages(roomID: "123") { id text user { name } } }')
            .catch(() => undefined);
          return res?.data ? res : undefined;
        },
        'a query answered through the Ingress',
        120_000,
      );
      expect(seeded.data.messages[0]).toEqual({ id: '1', text: 'Hello, World!', user: { name: 'Alice' } });

      ws = wsSession();
      sse = sseSession();
      const text = await deliveredToAll([ws, sse]);
      for (const session of [ws, sse]) {
        expect(received(session, text)).toMatchObject({
          data: { messageAdded: { id: expect.any(String), text, user: { name: 'Alice' } } },
        });
      }
      expect(ws.connects).toBe(1);
      expect(sse.streams).toBe(1);
    },
    STEP_TIMEOUT_MS,
  );

  it(
    'a new field in the messages Subgraph is served by both routers without a reconnect',
    async () => {
      const before = await http.request('{ messages(roomID: "123") { id editedAt } }');
      expect(JSON.stringify(before.errors)).toMatch(/editedAt/);

      // The messages team rolls out a subgraph serving the new nullable field first...
      const subgraph = exampleObject('Subgraph', 'messages');
      const v2 = String(subgraph.spec.schema.sdl).replace(
        '  createdAt: String!\n',
        '  createdAt: String!\n  "When the text was last changed; null until then."\n  editedAt: String\n',
      );
      expect(v2).toContain('editedAt');
      await kubectl([
        'create',
        'configmap',
        'chat-messages-v2',
        '-n',
        NS,
        '--from-literal',
        `schema.graphql=${v2}`,
      ]);
      await kubectl([
        'patch',
        'deployment',
        'chat-messages',
        '-n',
        NS,
        '--type',
        'strategic',
        '-p',
        JSON.stringify({
          spec: {
            template: {
              spec: {
                containers: [
                  {
                    name: 'messages',
                    env: [{ name: 'SCHEMA_FILE', value: '/schema/schema.graphql' }],
                    volumeMounts: [{ name: 'schema', mountPath: '/schema' }],
                  },
                ],
                volumes: [{ name: 'schema', configMap: { name: 'chat-messages-v2' } }],
              },
            },
          },
        }),
      ]);
      await kubectl(['rollout', 'status', 'deployment/chat-messages', '-n', NS, '--timeout=180s']);

      // ...then publishes its schema: the operator recomposes, the kubelet updates the mounted
      // ConfigMap, each router reloads in place.
      const started = Date.now();
      await kubectl(
        ['apply', '-f', '-'],
        stringify({ ...subgraph, spec: { ...subgraph.spec, schema: { sdl: v2 } } }),
      );
      // The Ingress spreads requests over both routers: 20 answers in a row means both serve it.
      let inARow = 0;
      await eventually(
        async () => {
          const res = await http
            .request('{ messages(roomID: "123") { id editedAt } }')
            .catch(() => undefined);
          inARow = res?.data && !res.errors ? inARow + 1 : 0;
          return inARow >= 20;
        },
        'editedAt served by every router',
        STEP_TIMEOUT_MS - 60_000,
        100,
      );
      report(`Subgraph change to the new field served by both routers: ${seconds(Date.now() - started)}`);
      const after = await http.request('{ messages(roomID: "123") { id editedAt } }');
      expect(after).toEqual({ data: { messages: expect.arrayContaining([{ id: '1', editedAt: null }]) } });

      // The open subscriptions kept streaming on their first connections.
      const text = await deliveredToAll([ws, sse]);
      expect(received(ws, text)?.data.messageAdded.user).toEqual({ name: 'Alice' });
      expect({ wsConnects: ws.connects, sseStreams: sse.streams, wsCloses: ws.closes }).toEqual({
        wsConnects: 1,
        sseStreams: 1,
        wsCloses: [],
      });
      report('subscriptions kept across the schema change: 0 reconnects');
      const routers = await readyPods(NS, ROUTER_PODS, 2);
      expect(routers.every((p) => (p.status.containerStatuses[0].restartCount as number) === 0)).toBe(true);
    },
    STEP_TIMEOUT_MS,
  );

  it(
    'kubectl scale sup chat --replicas=3: a third router becomes Ready',
    async () => {
      await kubectl(['scale', 'supergraph', 'chat', '-n', NS, '--replicas=3']);
      await readyPods(NS, ROUTER_PODS, 3);
      await until(
        async () =>
          (await kubectlJson(['get', 'supergraph', 'chat', '-n', NS])).status?.readyReplicas === 3
            ? 1
            : undefined,
        'status.readyReplicas 3',
        STEP_TIMEOUT_MS,
      );
    },
    STEP_TIMEOUT_MS,
  );

  it(
    'a router pod deleted under live subscriptions: its clients get 1001, reconnect through the Ingress, and receive the next event',
    async () => {
      // The Ingress spreads new connections over the three routers: nine clients cover each.
      const sessions = Array.from({ length: 9 }, () => wsSession());
      await deliveredToAll(sessions);
      const [victim] = await pods(NS, ROUTER_PODS);
      const victimName = victim!.metadata.name as string;
      const deleted = Date.now();
      await kubectl(['delete', 'pod', victimName, '-n', NS, '--wait=false']);
      // preStop, then the router's jittered drain: the pod is gone once its last client is.
      await until(
        async () =>
          (await pods(NS, ROUTER_PODS)).some((p) => p.metadata.name === victimName) ? undefined : true,
        `router pod ${victimName} gone`,
        STEP_TIMEOUT_MS,
      );
      const drained = sessions.filter((s) => s.closes.length > 0);
      const kept = sessions.filter((s) => s.closes.length === 0);
      expect(drained.length).toBeGreaterThan(0);
      for (const s of drained) expect(s.closes.map((c) => c.code)).toEqual([1001]);
      await eventually(
        () => drained.every((s) => s.connects === 2),
        'drained clients reconnected',
        60_000,
        100,
      );
      for (const s of kept) expect(s.connects).toBe(1);
      const gone = Date.now() - deleted;
      const text = await deliveredToAll(sessions);
      for (const s of sessions) expect(received(s, text)?.data.messageAdded.user).toEqual({ name: 'Alice' });
      report(
        `router pod deleted: ${drained.length} of 9 clients closed with 1001, reconnected and received the next ` +
          `event (pod gone after ${seconds(gone)}); ${kept.length} undisturbed`,
      );
      await readyPods(NS, ROUTER_PODS, 3);
    },
    STEP_TIMEOUT_MS,
  );

  it(
    'the leader operator pod deleted: a standby takes the Lease and reconciles a new change',
    async () => {
      const holder = await leaseHolder();
      const leader = holder.slice(0, holder.lastIndexOf('_'));
      const standby = (await pods(SYSTEM_NS, OPERATOR_PODS)).find((p) => p.metadata.name !== leader)!;
      const deleted = Date.now();
      await kubectl(['delete', 'pod', leader, '-n', SYSTEM_NS, '--wait=false']);
      // The leader releases the Lease on SIGTERM; whichever standby asks first takes it: the
      // running one, or the replacement the ReplicaSet starts at the same moment.
      const next = await until(
        async () => {
          const now = await leaseHolder();
          return now && !now.startsWith(`${leader}_`) ? now : undefined;
        },
        'the Lease held by another operator',
        STEP_TIMEOUT_MS,
      );
      const which = next.startsWith(`${standby.metadata.name}_`)
        ? 'the running standby'
        : 'the replacement pod';
      report(`leader deleted: the Lease taken by ${which} after ${seconds(Date.now() - deleted)}`);
      await kubectl(['scale', 'supergraph', 'chat', '-n', NS, '--replicas=2']);
      await until(
        async () =>
          (await kubectlJson(['get', 'deployment', 'chat-router', '-n', NS])).spec.replicas === 2
            ? 1
            : undefined,
        'the new leader scales chat-router to 2',
        STEP_TIMEOUT_MS,
      );
      await readyPods(NS, ROUTER_PODS, 2);
      await readyPods(SYSTEM_NS, OPERATOR_PODS, 2);
    },
    STEP_TIMEOUT_MS,
  );

  it(
    'helm upgrade reaches the operator; helm uninstall keeps the CRDs and the Supergraph',
    async () => {
      const prometheus = 'http://prometheus.monitoring.svc:9090';
      await helmRun([
        'upgrade',
        RELEASE,
        CHART,
        '-n',
        SYSTEM_NS,
        '--reuse-values',
        '--set',
        `router.prometheusAddress=${prometheus}`,
        '--wait',
        '--timeout',
        '5m',
      ]);
      const upgraded = await readyPods(SYSTEM_NS, OPERATOR_PODS, 2);
      for (const pod of upgraded) {
        expect(pod.spec.containers[0].env).toEqual(
          expect.arrayContaining([{ name: 'EDFS_PROMETHEUS_ADDRESS', value: prometheus }]),
        );
      }

      await helmRun(['uninstall', RELEASE, '-n', SYSTEM_NS, '--wait', '--timeout', '3m']);
      await until(
        async () => ((await pods(SYSTEM_NS, OPERATOR_PODS)).length === 0 ? 1 : undefined),
        'operator pods gone',
        STEP_TIMEOUT_MS,
      );
      const crds = await kubectlJson(['get', 'crd']);
      expect(
        (crds.items as Obj[])
          .map((c) => c.metadata.name)
          .filter((n: string) => n.endsWith('.edfs.io'))
          .sort(),
      ).toEqual(['eventproviders.edfs.io', 'subgraphs.edfs.io', 'supergraphs.edfs.io']);
      const sup = await kubectlJson(['get', 'supergraph', 'chat', '-n', NS]);
      expect(condition(sup, 'Ready')?.status).toBe('True');
      // The routers the operator left behind keep serving.
      const text = await deliveredToAll([ws]);
      expect(received(ws, text)).toBeDefined();
    },
    STEP_TIMEOUT_MS,
  );
});
