/**
 * The full loop, with a real kube-apiserver, a real nats-server and real processes: the operator
 * composes examples/chat into the ConfigMap `chat-router-config`; a router process (`edfs-router`,
 * in place of a pod) runs from exactly the router.yaml and config.json read out of that ConfigMap,
 * with only the cluster addresses swapped for local ones (NATS URL, subgraph URLs, listen ports,
 * file path); the chat subgraphs run as processes; events are published to NATS. Then an SDL edit
 * travels operator -> ConfigMap -> file -> hot reload, without restarting the router.
 *
 * The operator runs with the admin token here; operator-controller-*.test.ts show it with exactly
 * the chart's RBAC.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile, rename } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { parse as parseYaml, parseAllDocuments, stringify } from 'yaml';
import { startOperator, type RunningOperator } from '@edfs/operator';
import { post } from '../src/fixtures/clients.js';
import { kubeApi } from '../src/fixtures/kube.js';
import { metric } from '../src/fixtures/metrics.js';
import { waitFor } from '../src/fixtures/wait.js';
import { startControlPlane, type ControlPlane } from '../src/infra/kube.js';
import { freePort, startNatsServer, type NatsServer } from '../src/infra/nats.js';

const BUILD_TIMEOUT_MS = 40 * 60_000;
const ROOT = new URL('../../', import.meta.url);
const chat = (path: string) => fileURLToPath(new URL(`examples/chat/${path}`, ROOT));
const ROUTER_BIN = fileURLToPath(new URL('router/bin/edfs-router.js', ROOT));

type Obj = { apiVersion: string; kind: string; metadata: Record<string, any>; [k: string]: any };

let cp: ControlPlane;
let nats: NatsServer;
let operator: RunningOperator;
let dir: string;
const processes: ChildProcess[] = [];

const api = (method: string, path: string, body?: unknown, contentType?: string) =>
  kubeApi(cp, method, path, body, { contentType });

const PATHS: Record<string, (ns: string) => string> = {
  CustomResourceDefinition: () => '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
  Namespace: () => '/api/v1/namespaces',
  ConfigMap: (ns) => `/api/v1/namespaces/${ns}/configmaps`,
  EventProvider: (ns) => `/apis/edfs.io/v1alpha1/namespaces/${ns}/eventproviders`,
  Subgraph: (ns) => `/apis/edfs.io/v1alpha1/namespaces/${ns}/subgraphs`,
  Supergraph: (ns) => `/apis/edfs.io/v1alpha1/namespaces/${ns}/supergraphs`,
};

async function apply(obj: Obj): Promise<void> {
  const path = `${PATHS[obj.kind]!(obj.metadata.namespace)}/${obj.metadata.name}?fieldManager=e2e-user&force=true`;
  const res = await api('PATCH', path, obj, 'application/apply-patch+yaml');
  if (res.status >= 300) throw new Error(`apply ${obj.kind} ${obj.metadata.name}: ${res.body?.message}`);
}

async function get(kind: string, ns: string, name: string): Promise<Obj | undefined> {
  const res = await api('GET', `${PATHS[kind]!(ns)}/${name}`);
  return res.status === 200 ? res.body : undefined;
}

/** The edfs.io objects of examples/chat/manifests (its workloads run only in the cluster suites). */
const manifests = (): Obj[] =>
  readdirSync(chat('manifests'))
    .sort()
    .flatMap((f) =>
      parseAllDocuments(readFileSync(chat(`manifests/${f}`), 'utf8')).map((d) => d.toJS() as Obj),
    )
    .filter((o) => String(o.apiVersion).startsWith('edfs.io/'));

/** Starts a process and resolves once its output matches `ready`. */
function startProcess(
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  processes.push(child);
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')} did not start:\n${output}`)), 20_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = ready.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve({ child, match });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.join(' ')} exited with ${code}:\n${output}`));
    });
  });
}

interface Stream {
  next(): Promise<any>;
  stop(): void;
}

function subscribe(client: Client, query: string): Stream {
  const results: any[] = [];
  const waiting: { resolve: (value: any) => void; reject: (err: Error) => void }[] = [];
  let failure: Error | undefined;
  const stop = client.subscribe(
    { query },
    {
      next: (value) => (waiting.length > 0 ? waiting.shift()!.resolve(value) : results.push(value)),
      error: (err) => {
        failure = err instanceof Error ? err : new Error(JSON.stringify(err));
        for (const w of waiting.splice(0)) w.reject(failure);
      },
      complete: () => undefined,
    },
  );
  return {
    next: () => {
      if (results.length > 0) return Promise.resolve(results.shift());
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
    },
    stop,
  };
}

beforeAll(async () => {
  [cp, nats] = await Promise.all([startControlPlane(), startNatsServer()]);
  dir = await mkdtemp(join(tmpdir(), 'edfs-operator-router-'));
  for (const file of readdirSync(new URL('crds/', ROOT)).filter((f) => f.endsWith('.yaml'))) {
    await apply(parseYaml(readFileSync(new URL(`crds/${file}`, ROOT), 'utf8')));
  }
  await waitFor(async () => (await api('GET', '/apis/edfs.io/v1alpha1')).status === 200, 'edfs.io discovery');
  operator = await startOperator({
    kubeConfig: cp.kubeConfig(),
    metricsBindAddress: '127.0.0.1:0',
    healthBindAddress: '127.0.0.1:0',
    env: { ...process.env, EDFS_LOG_LEVEL: 'error' },
  });
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  for (const child of processes) if (child.exitCode === null) child.kill('SIGTERM');
  await operator?.stop();
  await nats?.stop();
  await cp?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 30_000);

describe('operator -> ConfigMap -> router process -> NATS subscription', () => {
  let routerUrl: string;
  let metricsUrl: string;
  let messagesUrl: string;
  let usersUrl: string;
  let client: Client;
  let publisher: NatsConnection;

  /** config.json from the ConfigMap with the in-cluster subgraph URLs pointed at the local processes. */
  const localConfig = (configJson: string) =>
    configJson
      .replaceAll('http://chat-messages.demo.svc:4001/graphql', messagesUrl)
      .replaceAll('http://chat-users.demo.svc:4002/graphql', usersUrl);

  it('the router runs from the router.yaml and config.json the operator wrote', async () => {
    await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } });
    for (const obj of manifests()) await apply(obj);
    const configMap = await waitFor(
      async () => get('ConfigMap', 'demo', 'chat-router-config'),
      'the ConfigMap',
    );

    const [messages, users] = await Promise.all([
      startProcess(
        [chat('subgraphs/messages/server.js')],
        { PORT: '0', HOST: '127.0.0.1', NATS_URL: nats.url },
        /listening on (http:\/\/\S+?)(,|\s|$)/,
      ),
      startProcess(
        [chat('subgraphs/users/server.js')],
        { PORT: '0', HOST: '127.0.0.1' },
        /listening on (http:\/\/\S+?)(,|\s|$)/,
      ),
    ]);
    messagesUrl = messages.match[1]!;
    usersUrl = users.match[1]!;

    // What the pod would mount at /etc/edfs, with cluster addresses swapped for local ones.
    const routerYaml = parseYaml(configMap.data['router.yaml']);
    expect(routerYaml.execution_config.file).toEqual({ path: '/etc/edfs/config.json', watch: true });
    expect(routerYaml.events.providers.nats).toEqual([{ id: 'default', url: 'nats://nats.demo.svc:4222' }]);
    const [port, metricsPort] = await Promise.all([freePort(), freePort()]);
    routerYaml.listen_addr = `127.0.0.1:${port}`;
    routerYaml.execution_config.file.path = join(dir, 'config.json');
    routerYaml.events.providers.nats[0].url = nats.url;
    routerYaml.telemetry.metrics.prometheus.listen_addr = `127.0.0.1:${metricsPort}`;
    await writeFile(join(dir, 'router.yaml'), stringify(routerYaml));
    await writeFile(join(dir, 'config.json'), localConfig(configMap.data['config.json']));

    await startProcess(
      [ROUTER_BIN, '-c', join(dir, 'router.yaml')],
      { LOG_LEVEL: 'warn' },
      /router listening on/,
    );
    routerUrl = `http://127.0.0.1:${port}/graphql`;
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${port}/health/ready`)).status === 200,
      'router ready',
    );
    const query = await post(routerUrl, '{ messages(roomID: "123") { id text user { name } } }');
    expect(query.data.messages[0]).toEqual({ id: '1', text: 'Hello, World!', user: { name: 'Alice' } });
  }, 60_000);

  it('a subscription receives an event published to nats-server, fields joined from both subgraphs', async () => {
    client = createClient({
      url: routerUrl.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
    });
    publisher = await connect({ servers: nats.url });
    const stream = subscribe(
      client,
      'subscription { messageAdded(roomID: "123") { id text user { name } } }',
    );
    await waitFor(async () => (await metric(metricsUrl, 'router_engine_triggers')) === 1, 'the NATS trigger');
    await waitFor(
      async () => (await nats.subscriptionCount('room.123.messages')) === 1,
      'the router subscribed on NATS',
    );

    publisher.publish('room.123.messages', JSON.stringify({ __typename: 'Message', id: '2' }));
    expect(await stream.next()).toEqual({
      data: { messageAdded: { id: '2', text: 'Hi Alice, welcome to the room.', user: { name: 'Bob' } } },
      // Core NATS keeps no events: the first result says so.
      extensions: { delivery: 'at-most-once' },
    });

    // The other way in: a mutation through the router; the messages subgraph publishes to NATS.
    const sent = await post(
      routerUrl,
      'mutation { sendMessage(roomID: "123", text: "Through the operator", userID: "3") { id } }',
    );
    expect(await stream.next()).toEqual({
      data: {
        messageAdded: { id: sent.data.sendMessage.id, text: 'Through the operator', user: { name: 'Carol' } },
      },
    });
    stream.stop();
  }, 30_000);

  it('an SDL edit flows operator -> ConfigMap -> file -> hot reload while the subscription stays', async () => {
    const stream = subscribe(client, 'subscription { messageAdded(roomID: "123") { id text } }');
    await waitFor(async () => (await metric(metricsUrl, 'router_engine_subscriptions')) === 1, 'subscribed');
    const before = (await get('ConfigMap', 'demo', 'chat-router-config'))!;

    // The messages team drops createdAt from its schema.
    const messages = manifests().find((o) => o.kind === 'Subgraph' && o.metadata.name === 'messages')!;
    await apply({
      ...messages,
      spec: {
        ...messages.spec,
        schema: { sdl: messages.spec.schema.sdl.replace('  createdAt: String!\n', '') },
      },
    });
    const after = await waitFor(async () => {
      const cm = await get('ConfigMap', 'demo', 'chat-router-config');
      return cm && cm.data['config.json'] !== before.data['config.json'] ? cm : undefined;
    }, 'the new config in the ConfigMap');
    expect(after.data['router.yaml']).toBe(before.data['router.yaml']);

    // The kubelet's ConfigMap volume update, done by hand: an atomic swap of the file.
    await writeFile(join(dir, 'config.json.new'), localConfig(after.data['config.json']));
    await rename(join(dir, 'config.json.new'), join(dir, 'config.json'));
    await waitFor(
      async () => {
        const res = await post(routerUrl, '{ messages(roomID: "123") { createdAt } }');
        return res.errors?.[0]?.message?.includes('createdAt') ? res : undefined;
      },
      'the router serving the new schema',
      10_000,
    );

    // The live subscription survived the reload.
    publisher.publish('room.123.messages', JSON.stringify({ __typename: 'Message', id: '3' }));
    expect(await stream.next()).toEqual({
      data: { messageAdded: { id: '3', text: 'Good to see you both!' } },
      extensions: { delivery: 'at-most-once' },
    });
    stream.stop();
    await client.dispose();
    await publisher.close();
  }, 30_000);
});
