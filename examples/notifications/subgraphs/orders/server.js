/**
 * The orders subgraph: owns `Order` (status, items, total). Run standalone with
 * `node examples/notifications/subgraphs/orders/server.js` (PORT, default 4021) or call
 * `start({ port, emit })`.
 *
 * It is the backend service of the notifications graph: `updateOrderStatus` stores the new status
 * first and then emits `{"__typename":"Order","id":"<id>"}` to the Kafka topic `order-updates`,
 * keyed by the order id (so one order's events stay in order within a partition). By the time a
 * router receives the event and asks this subgraph for the order, the new status is there. The
 * event carries only the key; the router joins every other field. Standalone, events go to the
 * Kafka brokers in KAFKA_BROKERS (comma separated host:port), when set.
 */
import { readFileSync } from 'node:fs';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { GraphQLError, parse } from 'graphql';
import { isMain, serveSubgraph } from '../../../shared/serve.js';
import { createOrderStore } from './data.js';

export const DEFAULT_PORT = 4021;
/** The topic the event-driven subgraph (`../edfs/schema.graphql`) consumes. */
export const ORDER_UPDATES_TOPIC = 'order-updates';
export const sdl = readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8');

/** The event for an order: its typename and key, nothing else. */
export const orderEvent = (order) => JSON.stringify({ __typename: 'Order', id: order.id });

/**
 * @typedef {(topic: string, key: string, payload: string) => unknown} Emit
 *   Sends one event; may return a promise, which `updateOrderStatus` waits for.
 */

/**
 * @param {ReturnType<typeof createOrderStore>} [store]
 * @param {{ emit?: Emit }} [options]
 */
export function createSchema(store = createOrderStore(), { emit } = {}) {
  return buildSubgraphSchema({
    typeDefs: parse(sdl),
    resolvers: {
      Query: {
        order: (_, { id }) => store.get(id),
        orders: () => store.all(),
      },
      Mutation: {
        updateOrderStatus: async (_, { id, status }) => {
          const order = store.setStatus(id, status);
          if (!order)
            throw new GraphQLError(`order "${id}" does not exist`, { extensions: { code: 'NOT_FOUND' } });
          if (emit) {
            try {
              await emit(ORDER_UPDATES_TOPIC, order.id, orderEvent(order));
            } catch (err) {
              // The status is stored either way; subscribers just miss this notification.
              console.error(`orders: emitting the update of order ${order.id} failed:`, err);
            }
          }
          return order;
        },
      },
      Order: {
        __resolveReference: (ref) => store.get(ref.id),
      },
    },
  });
}

/**
 * Starts the subgraph. `emit` receives the event of every status change (without it, nothing is
 * emitted).
 * @param {{ port?: number, host?: string, store?: ReturnType<typeof createOrderStore>, emit?: Emit }} [options]
 */
export async function start({ port = DEFAULT_PORT, host, store = createOrderStore(), emit } = {}) {
  const server = await serveSubgraph(createSchema(store, { emit }), { port, host, name: 'orders' });
  return { ...server, store };
}

export { createOrderStore };

/** Standalone: emit to the Kafka brokers in KAFKA_BROKERS, if set, until SIGINT/SIGTERM. */
async function main() {
  const brokers = (process.env.KAFKA_BROKERS ?? '')
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
  let producer;
  if (brokers.length > 0) {
    const { Kafka, Partitioners, logLevel } = await import('kafkajs');
    const kafka = new Kafka({ clientId: 'orders-service', brokers, logLevel: logLevel.WARN });
    producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    try {
      await producer.connect();
    } catch (err) {
      console.error(
        `orders: cannot connect to Kafka at ${brokers.join(', ')} (KAFKA_BROKERS): ${err.message}`,
      );
      process.exit(1);
    }
  }
  const server = await start({
    port: Number(process.env.PORT ?? DEFAULT_PORT),
    host: process.env.HOST,
    emit: producer
      ? (topic, key, payload) => producer.send({ topic, messages: [{ key, value: payload }] })
      : undefined,
  });
  console.log(
    `orders subgraph listening on ${server.url}` +
      (producer
        ? `, emitting status changes to Kafka topic ${ORDER_UPDATES_TOPIC} at ${brokers.join(', ')}`
        : ' (KAFKA_BROKERS not set: status changes are not emitted)'),
  );
  const stop = async () => {
    await server.close();
    await producer?.disconnect();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (isMain(import.meta.url)) await main();
