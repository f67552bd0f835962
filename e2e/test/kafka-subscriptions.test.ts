/**
 * Event-driven subscriptions over Kafka, end to end: a real Apache Kafka broker, the router with a
 * Kafka provider `my-kafka`, two HTTP subgraphs, and the graphql-ws client as the independent
 * peer. Events are produced by a plain kafkajs producer, as a backend service would; the publish
 * mutation is checked by a plain kafkajs consumer.
 *
 * A client cannot see when the router's position on a topic is fixed, so tests wait for it on the
 * provider (`topics()`): from then on every event produced is delivered, consumer join or not.
 */
import { readFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { Client } from 'graphql-ws';
import { composeSupergraph, loadComposeInputs } from '@edfs/operator';
import { parseRouterConfig, resolveRouterConfig, startRouter, type RunningRouter } from '@edfs/router';
import type { KafkaProvider } from '../../router/src/events/kafka/index.js';
import { startKafka, type KafkaBroker } from '../src/infra/kafka.js';
import { startNatsServer, type NatsServer } from '../src/infra/nats.js';
import { wsClient as graphqlWsClient, post as postQuery, subscribe } from '../src/fixtures/clients.js';
import { kafkaPeer, startKafkaGraph, type KafkaGraph, type KafkaPeer } from '../src/fixtures/kafka/index.js';
import { eventually } from '../src/fixtures/wait.js';

let kafka: KafkaBroker;
let peer: KafkaPeer;
let graph: KafkaGraph;
const routers: RunningRouter[] = [];
const clients: Client[] = [];

beforeAll(async () => {
  [kafka, graph] = await Promise.all([startKafka(), startKafkaGraph()]);
  peer = await kafkaPeer(kafka.brokers);
}, 300_000); // a first run resolves the broker from Maven Central

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
  // Until the router has let go of every topic, `positioned` could see the last test's position.
  await eventually(
    () =>
      routers.every(
        (r) =>
          r.engine.triggerCount === 0 &&
          Object.values(provider(r).topics()).every((phase) => phase === 'idle'),
      ),
    'every trigger of the last test is gone',
  );
  graph.clearRequests();
});

afterAll(async () => {
  await Promise.all(routers.map((r) => r.close()));
  await peer?.close();
  await graph?.close();
  await kafka?.stop();
});

async function router(): Promise<RunningRouter> {
  const r = await startRouter(
    resolveRouterConfig({
      listen_addr: '127.0.0.1:0',
      execution_config: { file: { path: 'config.json' } },
      events: { providers: { kafka: [{ id: 'my-kafka', brokers: kafka.brokers }] } },
      telemetry: { metrics: { prometheus: { enabled: true, listen_addr: '127.0.0.1:0' } } },
      log_level: 'silent',
    }),
    { executionConfig: graph.config },
  );
  routers.push(r);
  return r;
}

const wsClient = (r: RunningRouter) => graphqlWsClient(r.url, { track: clients });
const post = (r: RunningRouter, query: string) => postQuery<unknown>(r.url, query);

const provider = (r: RunningRouter) => r.providers.get('my-kafka') as KafkaProvider;

/** Waits until the router's start position on each topic is fixed (see the header). */
const positioned = (r: RunningRouter, ...topics: string[]) =>
  eventually(
    () => topics.every((t) => ![undefined, 'positioning', 'idle'].includes(provider(r).topics()[t])),
    `positions on ${topics.join(', ')}`,
  );

describe('subscribe, filter, templated topic, publish', () => {
  let r: RunningRouter;
  beforeAll(async () => {
    r = await router();
  }, 30_000);

  it('the router is ready once the Kafka provider reached the broker', async () => {
    const res = await fetch(`${r.baseUrl}/health/ready`);
    expect(res.status).toBe(200);
  });

  it('an event produced to the topic reaches the subscriber joined with fields from both subgraphs', async () => {
    const stream = subscribe(wsClient(r), 'subscription { allMessages { id text user { name } } }');
    await positioned(r, 'messages');
    await peer.send('messages', { __typename: 'Message', id: 'm2' });
    expect(await stream.next(1)).toEqual([
      { data: { allMessages: { id: 'm2', text: 'Hi Alice', user: { name: 'Bob' } } } },
    ]);
  });

  it('a templated topic renders from the arguments: only that room’s events arrive', async () => {
    const stream = subscribe(
      wsClient(r),
      'subscription ($room: ID!) { messageAdded(roomID: $room) { id text } }',
      { room: '123' },
    );
    await positioned(r, 'room.123.messages');
    await peer.send('room.456.messages', { __typename: 'Message', id: 'm4' });
    await peer.send('room.123.messages', { __typename: 'Message', id: 'm1' });
    expect(await stream.next(1)).toEqual([{ data: { messageAdded: { id: 'm1', text: 'Hello, World!' } } }]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(stream.results).toHaveLength(1);
    expect(provider(r).topics()['room.456.messages']).toBeUndefined();
  });

  it('a filter passes only events whose id is in the list, from both topics, resolving nothing for the others', async () => {
    const stream = subscribe(wsClient(r), 'subscription { messagesById(ids: ["m1", "m3"]) { id text } }');
    await positioned(r, 'messages', 'messages.archive');
    graph.clearRequests();
    await peer.send('messages', { __typename: 'Message', id: 'm1' }, { __typename: 'Message', id: 'm2' });
    await peer.send(
      'messages.archive',
      { __typename: 'Message', id: 'm4' },
      { __typename: 'Message', id: 'm3' },
    );
    const results = await stream.next(2);
    expect(results.map((x) => x.data)).toEqual(
      expect.arrayContaining([
        { messagesById: { id: 'm1', text: 'Hello, World!' } },
        { messagesById: { id: 'm3', text: 'Good to see you' } },
      ]),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(stream.results).toHaveLength(2);
    const resolved = graph
      .entityRequests()
      .flatMap((q) => q.variables.representations as { id: string }[])
      .map((rep) => rep.id);
    expect(resolved.sort()).toEqual(['m1', 'm3']);
  });

  it('subscribers on one topic share one trigger and one Kafka consumer', async () => {
    const a = subscribe(wsClient(r), 'subscription { allMessages { id } }');
    const b = subscribe(wsClient(r), 'subscription { allMessages { text } }');
    const c = subscribe(wsClient(r), 'subscription { messageAdded(roomID: "123") { id } }');
    await positioned(r, 'messages', 'room.123.messages');
    expect(r.engine.triggerCount).toBe(2);
    await peer.send('messages', { __typename: 'Message', id: 'm3' });
    await peer.send('room.123.messages', { __typename: 'Message', id: 'm2' });
    expect(await a.next(1)).toEqual([{ data: { allMessages: { id: 'm3' } } }]);
    expect(await b.next(1)).toEqual([{ data: { allMessages: { text: 'Good to see you' } } }]);
    expect(await c.next(1)).toEqual([{ data: { messageAdded: { id: 'm2' } } }]);
    const admin = peer.kafka.admin();
    await admin.connect();
    const { groups } = await admin.describeGroups([provider(r).groupId]);
    await admin.disconnect();
    expect(groups[0]!.members).toHaveLength(1);
  });

  it('an event that is not JSON reaches the subscribers as an error, and the subscription goes on', async () => {
    const stream = subscribe(wsClient(r), 'subscription { allMessages { id } }');
    await positioned(r, 'messages');
    await peer.send('messages', 'not json');
    await peer.send('messages', { __typename: 'Message', id: 'm1' });
    const [bad, good] = await stream.next(2);
    expect(bad).toEqual({
      data: null,
      errors: [expect.objectContaining({ message: expect.stringMatching(/"messages".*not valid JSON/) })],
    });
    expect(good).toEqual({ data: { allMessages: { id: 'm1' } } });
  });

  it('a publish mutation sends the JSON of all arguments to the rendered topic, where a plain consumer reads it', async () => {
    expect(await post(r, 'mutation { announce(roomID: "789", id: "m3") { success } }')).toEqual({
      data: { announce: { success: true } },
    });
    const reader = await peer.read('room.789.messages');
    await eventually(() => reader.values.length === 1, 'the published event');
    expect(JSON.parse(reader.values[0]!)).toEqual({ roomID: '789', id: 'm3' });
    await reader.stop();
  });
});

describe('two router instances', () => {
  it('both deliver every event of the same topic (no shared consumer group)', async () => {
    const [a, b] = await Promise.all([router(), router()]);
    expect(provider(a).groupId).not.toBe(provider(b).groupId);
    const sa = subscribe(wsClient(a), 'subscription { messageAdded(roomID: "both") { id } }');
    const sb = subscribe(wsClient(b), 'subscription { messageAdded(roomID: "both") { id } }');
    await Promise.all([positioned(a, 'room.both.messages'), positioned(b, 'room.both.messages')]);
    const ids = Array.from({ length: 10 }, (_, i) => `m${100 + i}`);
    await peer.send('room.both.messages', ...ids.map((id) => ({ __typename: 'Message', id })));
    const expected = ids.map((id) => ({ data: { messageAdded: { id } } }));
    expect(await sa.next(10)).toEqual(expected);
    expect(await sb.next(10)).toEqual(expected);
    await Promise.all([a.close(), b.close()]);
  }, 60_000);
});

describe('a broker restart mid-stream', () => {
  it('readiness fails during the outage; afterwards delivery continues in order, nothing lost', async () => {
    const r = await router();
    const stream = subscribe(wsClient(r), 'subscription { messageAdded(roomID: "restart") { id } }');
    await positioned(r, 'room.restart.messages');
    const before = ['m201', 'm202', 'm203'];
    await peer.send('room.restart.messages', ...before.map((id) => ({ __typename: 'Message', id })));
    await stream.next(3);

    const restarting = kafka.restart({ downMs: 2000 });
    await eventually(
      async () => (await fetch(`${r.baseUrl}/health/ready`)).status === 503,
      '/health/ready fails',
      10_000,
    );
    await restarting;
    await eventually(
      async () => (await fetch(`${r.baseUrl}/health/ready`)).status === 200,
      '/health/ready passes again',
      20_000,
    );
    expect(provider(r).reconnects).toBe(1);

    const after = ['m204', 'm205', 'm206'];
    await peer.send('room.restart.messages', ...after.map((id) => ({ __typename: 'Message', id })));
    const results = await stream.next(6, 40_000);
    expect(results).toEqual([...before, ...after].map((id) => ({ data: { messageAdded: { id } } })));
    expect(stream.errors).toEqual([]);
    expect(stream.completed).toBe(false);
  }, 90_000);
});

describe('examples/employees: the Kafka-filtered subscription', () => {
  const employees = (path: string) =>
    fileURLToPath(new URL(`../../examples/employees/${path}`, import.meta.url));
  let nats: NatsServer;
  let service: ChildProcess;
  let r: RunningRouter;

  beforeAll(async () => {
    nats = await startNatsServer();
    let output = '';
    service = spawn(process.execPath, [employees('subgraphs/employees/server.js')], {
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const url = await new Promise<string>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        const match = /listening on (http:\/\/\S+?)(,|\s|$)/.exec(output);
        if (match) resolve(match[1]!);
      };
      service.stdout!.on('data', onData);
      service.stderr!.on('data', onData);
      service.once('exit', (code) => reject(new Error(`employees exited with ${code}:\n${output}`)));
    });
    const composed = composeSupergraph(
      loadComposeInputs([employees('graph.yaml')]).map((s) =>
        s.name === 'employees' ? { ...s, routingUrl: url } : s,
      ),
    );
    if (!composed.ok) throw new Error(JSON.stringify(composed.errors));
    // router.yaml as the README runs it, with KAFKA_BROKERS and NATS_URL pointing at the test servers.
    const config = parseRouterConfig(readFileSync(employees('router.yaml'), 'utf8'), {
      env: { NATS_URL: nats.url, KAFKA_BROKERS: kafka.brokers[0]! },
      baseDir: employees(''),
    });
    r = await startRouter(
      { ...config, listenAddr: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' },
      { executionConfig: composed.config },
    );
  }, 60_000);

  afterAll(async () => {
    await r?.close();
    if (service && service.exitCode === null) {
      const exited = new Promise((resolve) => service.once('exit', resolve));
      service.kill('SIGTERM');
      await exited;
    }
    await nats?.stop();
  });

  it('router.yaml points my-kafka at KAFKA_BROKERS', () => {
    expect(r.config.events.providers.kafka).toEqual([
      { id: 'my-kafka', brokers: kafka.brokers, tls: { enabled: false } },
    ]);
  });

  it('filteredEmployeeUpdated passes ids in either list from either topic, with details joined', async () => {
    const stream = subscribe(
      wsClient(r),
      'subscription { filteredEmployeeUpdated(firstIds: [1, 12], secondIds: [2, 11]) { id details { forename surname } } }',
    );
    await positioned(r, 'employeeUpdated', 'employeeUpdatedTwo');
    await peer.send('employeeUpdated', { __typename: 'Employee', id: 2 }, { __typename: 'Employee', id: 3 });
    await peer.send('employeeUpdatedTwo', { __typename: 'Employee', id: 11 });
    const results = await stream.next(2);
    expect(results).toEqual(
      expect.arrayContaining([
        { data: { filteredEmployeeUpdated: { id: 2, details: { forename: 'Dustin', surname: 'Deus' } } } },
        {
          data: { filteredEmployeeUpdated: { id: 11, details: { forename: 'Alexandra', surname: 'Neuse' } } },
        },
      ]),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(stream.results).toHaveLength(2);
  });
});
