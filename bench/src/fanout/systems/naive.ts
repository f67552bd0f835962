/**
 * Baseline (a), the subscription server most teams write first: graphql-ws `useServer` on `ws`,
 * graphql-js `subscribe`, and a resolver that joins the entity from the same HTTP subgraph.
 * Nothing is shared between clients: each client subscription opens its own NATS subscription,
 * and each event is executed, fetched (one `_entities` request) and serialized once per client.
 * The subgraph client is a bounded keep-alive pool (64 connections), kinder than a bare `fetch`
 * and needed to stay inside the file-descriptor budget with 10,000 clients.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { buildSchema, type GraphQLFieldConfig } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { Pool } from 'undici';
import { WebSocketServer } from 'ws';
import { ENTITY_QUERY, NAIVE_SDL } from '../graph.js';
import type { RunningSystem, SystemOptions } from './types.js';

interface MessageEvent {
  __typename: string;
  id: string;
}

export async function startNaive(options: SystemOptions): Promise<RunningSystem> {
  const nc: NatsConnection = await connect({ servers: options.natsUrl });
  const subgraph = new URL(options.subgraphUrl);
  const pool = new Pool(subgraph.origin, { connections: 64 });
  let active = 0;

  /** One NATS subscription per client subscription, as an async iterator of parsed events. */
  function events(subject: string): AsyncIterableIterator<MessageEvent> {
    const sub: Subscription = nc.subscribe(subject);
    const source = sub[Symbol.asyncIterator]();
    active++;
    let open = true;
    const finish = () => {
      if (!open) return;
      open = false;
      active--;
      sub.unsubscribe();
    };
    return {
      [Symbol.asyncIterator]() {
        return this;
      },
      async next() {
        const r = await source.next();
        if (r.done) {
          finish();
          return { done: true, value: undefined };
        }
        return { done: false, value: r.value.json<MessageEvent>() };
      },
      async return() {
        finish();
        return { done: true, value: undefined };
      },
    };
  }

  /** The entity join: one `_entities` request per client and event. */
  async function message(event: MessageEvent): Promise<Record<string, unknown>> {
    const res = await pool.request({
      method: 'POST',
      path: subgraph.pathname,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        query: ENTITY_QUERY,
        variables: { representations: [{ __typename: 'Message', id: event.id }] },
      }),
    });
    const body = (await res.body.json()) as {
      data?: { _entities: Record<string, unknown>[] };
      errors?: unknown;
    };
    const entity = body.data?._entities[0];
    if (!entity) throw new Error(`subgraph: ${JSON.stringify(body.errors)}`);
    return { id: event.id, ...entity };
  }

  const schema = buildSchema(NAIVE_SDL);
  const field = schema.getSubscriptionType()!.getFields().messageAdded! as unknown as GraphQLFieldConfig<
    unknown,
    unknown
  >;
  field.subscribe = (_root, args: Record<string, unknown>) => events(`room.${String(args.roomID)}.messages`);
  field.resolve = (event) => message(event as MessageEvent);

  const server = createServer();
  const wss = new WebSocketServer({ server, path: '/graphql', perMessageDeflate: false });
  const disposable = useServer({ schema }, wss);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`,
    subscriptions: () => active,
    async close() {
      await disposable.dispose();
      server.close();
      await pool.close();
      await nc.close();
    },
  };
}
