/**
 * examples/notifications (an event-driven BFF on Kafka) as its README runs it: a real Kafka
 * broker; the orders service and the shipping subgraph as their own processes, the orders service
 * with KAFKA_BROKERS; a router configured by the example's router.yaml. A customer's client
 * (graphql-ws) subscribes to `orderUpdated(id)`; the orders service changes the status and emits
 * `{"__typename":"Order","id":...}` to Kafka; the client receives the order joined with fields of
 * both subgraphs.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { Client } from 'graphql-ws';
import { composeSupergraph, loadComposeInputs } from '@edfs/operator';
import { parseRouterConfig, startRouter, type RunningRouter } from '@edfs/router';
import type { KafkaProvider } from '../../router/src/events/kafka/index.js';
import { startKafka, type KafkaBroker } from '../src/infra/kafka.js';
import { wsClient as graphqlWsClient, post as postQuery, subscribe } from '../src/fixtures/clients.js';
import { kafkaPeer, type KafkaPeer } from '../src/fixtures/kafka/index.js';
import { startProcess, stopProcess } from '../src/fixtures/processes.js';
import { eventually } from '../src/fixtures/wait.js';

const example = (path: string) =>
  fileURLToPath(new URL(`../../examples/notifications/${path}`, import.meta.url));

let kafka: KafkaBroker;
let peer: KafkaPeer;
let orders: { url: string; child: ChildProcess };
let shipping: { url: string; child: ChildProcess };
let router: RunningRouter;
const clients: Client[] = [];

beforeAll(async () => {
  kafka = await startKafka();
  peer = await kafkaPeer(kafka.brokers);
  const brokers = kafka.brokers.join(',');
  [orders, shipping] = await Promise.all([
    startProcess(example('subgraphs/orders/server.js'), {
      PORT: '0',
      HOST: '127.0.0.1',
      KAFKA_BROKERS: brokers,
    }),
    startProcess(example('subgraphs/shipping/server.js'), { PORT: '0', HOST: '127.0.0.1' }),
  ]);
  const urls: Record<string, string> = { orders: orders.url, shipping: shipping.url };
  const composed = composeSupergraph(
    loadComposeInputs([example('graph.yaml')]).map((s) =>
      urls[s.name] ? { ...s, routingUrl: urls[s.name] } : s,
    ),
  );
  if (!composed.ok) throw new Error(JSON.stringify(composed.errors));
  const config = parseRouterConfig(readFileSync(example('router.yaml'), 'utf8'), {
    env: { KAFKA_BROKERS: kafka.brokers[0]! },
    baseDir: example(''),
  });
  // router.yaml as the README runs it, on a free port instead of 3002.
  router = await startRouter(
    { ...config, listenAddr: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' },
    { executionConfig: composed.config },
  );
}, 300_000); // a first run resolves the broker from Maven Central

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
  const provider = router.providers.get('kafka') as KafkaProvider;
  await eventually(
    () => Object.values(provider.topics()).every((phase) => phase === 'idle'),
    'the last test’s subscriptions are gone',
  );
});

afterAll(async () => {
  await router?.close();
  await Promise.all([stopProcess(orders?.child), stopProcess(shipping?.child)]);
  await peer?.close();
  await kafka?.stop();
});

const wsClient = () => graphqlWsClient(router.url, { track: clients });
const post = (query: string) => postQuery<unknown>(router.url, query);

/** A client cannot see when the router's position on the topic is fixed; the provider can. */
const positioned = () =>
  eventually(() => {
    const phase = (router.providers.get('kafka') as KafkaProvider).topics()['order-updates'];
    return phase !== undefined && phase !== 'positioning' && phase !== 'idle';
  }, 'the router reads order-updates');

const ORDER_FIELDS =
  'id status total items { name quantity } shippingAddress { recipient city } shipment { carrier trackingNumber state }';

describe('examples/notifications: order status changes reach the customer', () => {
  it('router.yaml points the provider `kafka` at KAFKA_BROKERS', () => {
    expect(router.config.events.providers.kafka).toEqual([
      { id: 'kafka', brokers: kafka.brokers, tls: { enabled: false } },
    ]);
  });

  it('the Kubernetes manifests compose to the same schema as graph.yaml', () => {
    const fromGraphYaml = composeSupergraph(loadComposeInputs([example('graph.yaml')]));
    const fromManifests = composeSupergraph(loadComposeInputs([example('manifests')]));
    if (!fromGraphYaml.ok || !fromManifests.ok) throw new Error('composition failed');
    const schema = (config: Record<string, unknown>) =>
      (config.engineConfig as { graphqlSchema: string }).graphqlSchema;
    expect(schema(fromManifests.config)).toBe(schema(fromGraphYaml.config));
  });

  it('a client subscribed to orderUpdated(id) receives its order, joined from orders and shipping, after each status change', async () => {
    const stream = subscribe(
      wsClient(),
      `subscription ($id: ID!) { orderUpdated(id: $id) { ${ORDER_FIELDS} } }`,
      { id: '1001' },
    );
    await positioned();

    // Another customer's order changes first: filtered out, never resolved for this client.
    expect(await post('mutation { updateOrderStatus(id: "1002", status: PACKED) { status } }')).toEqual({
      data: { updateOrderStatus: { status: 'PACKED' } },
    });
    expect(await post('mutation { updateOrderStatus(id: "1001", status: SHIPPED) { status } }')).toEqual({
      data: { updateOrderStatus: { status: 'SHIPPED' } },
    });
    const items = [
      { name: 'Espresso beans, 1 kg', quantity: 2 },
      { name: 'Milk frother', quantity: 1 },
    ];
    const address = { recipient: 'Ada Lovelace', city: 'London' };
    expect(await stream.next(1)).toEqual([
      {
        data: {
          orderUpdated: {
            id: '1001',
            status: 'SHIPPED',
            total: 76.9,
            items,
            shippingAddress: address,
            shipment: { carrier: 'DHL', trackingNumber: 'TRK00001001', state: 'IN_TRANSIT' },
          },
        },
      },
    ]);

    await post('mutation { updateOrderStatus(id: "1001", status: DELIVERED) { status } }');
    const [, delivered] = await stream.next(2);
    expect(delivered).toEqual({
      data: {
        orderUpdated: {
          id: '1001',
          status: 'DELIVERED',
          total: 76.9,
          items,
          shippingAddress: address,
          shipment: { carrier: 'DHL', trackingNumber: 'TRK00001001', state: 'DELIVERED' },
        },
      },
    });
    expect(stream.results).toHaveLength(2);
  });

  it('a dashboard subscribed to ordersUpdated sees every order’s changes', async () => {
    const stream = subscribe(wsClient(), 'subscription { ordersUpdated { id status shipment { carrier } } }');
    await positioned();
    await post('mutation { updateOrderStatus(id: "1002", status: SHIPPED) { status } }');
    await post('mutation { updateOrderStatus(id: "1003", status: DELIVERED) { status } }');
    expect(await stream.next(2)).toEqual([
      { data: { ordersUpdated: { id: '1002', status: 'SHIPPED', shipment: { carrier: 'UPS' } } } },
      { data: { ordersUpdated: { id: '1003', status: 'DELIVERED', shipment: { carrier: 'Royal Mail' } } } },
    ]);
  });

  it('the orders service emits only the entity key, keyed by the order id', async () => {
    await post('mutation { updateOrderStatus(id: "1002", status: DELIVERED) { status } }');
    const consumer = peer.kafka.consumer({
      groupId: `notifications-reader-${Date.now()}`,
      maxWaitTimeInMs: 200,
    });
    const seen: { key: string; value: string }[] = [];
    await consumer.connect();
    await consumer.subscribe({ topics: ['order-updates'], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) =>
        void seen.push({ key: message.key?.toString() ?? '', value: message.value?.toString() ?? '' }),
    });
    await eventually(
      () => seen.some((m) => m.key === '1002' && m.value.length > 0),
      'the event of order 1002',
    );
    await consumer.disconnect();
    expect(seen.find((m) => m.key === '1002')).toEqual({
      key: '1002',
      value: '{"__typename":"Order","id":"1002"}',
    });
  });
});
