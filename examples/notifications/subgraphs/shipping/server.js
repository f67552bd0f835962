/**
 * The shipping subgraph: adds `Order.shippingAddress` and `Order.shipment` (the parcel, from the
 * order's status, which the router fetches from the orders subgraph first: `@requires`). Run
 * standalone with `node examples/notifications/subgraphs/shipping/server.js` (PORT, default 4022)
 * or call `start({ port })`.
 */
import { readFileSync } from 'node:fs';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';
import { isMain, serveSubgraph } from '../../../shared/serve.js';
import { createShippingStore } from './data.js';

export const DEFAULT_PORT = 4022;
export const sdl = readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8');

export function createSchema(store = createShippingStore()) {
  return buildSubgraphSchema({
    typeDefs: parse(sdl),
    resolvers: {
      Order: {
        // The representation carries the required `status` next to the key.
        __resolveReference: (ref) => ({ id: ref.id, status: ref.status }),
        shippingAddress: (order) => store.address(order.id),
        shipment: (order) => store.shipment(order.id, order.status),
      },
    },
  });
}

/** @param {{ port?: number, host?: string, store?: ReturnType<typeof createShippingStore> }} [options] */
export async function start({ port = DEFAULT_PORT, host, store = createShippingStore() } = {}) {
  return serveSubgraph(createSchema(store), { port, host, name: 'shipping' });
}

if (isMain(import.meta.url)) {
  const { url } = await start({ port: Number(process.env.PORT ?? DEFAULT_PORT), host: process.env.HOST });
  console.log(`shipping subgraph listening on ${url}`);
}
