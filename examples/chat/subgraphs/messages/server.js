/**
 * The messages subgraph: owns `Message` (text, room, author id, time), lists a room's messages
 * and stores new ones. Run standalone with `node examples/chat/subgraphs/messages/server.js`
 * (PORT, default 4001; SCHEMA_FILE serves another version of the schema, e.g. one with a new
 * nullable field, the way a team rolls out a subgraph before publishing its schema) or call
 * `start({ port, publish })`.
 *
 * It is also the event source of the chat graph: `sendMessage` stores the message first and then
 * publishes `{"__typename":"Message","id":"<id>"}` on `room.<roomID>.messages`, so by the time
 * the router receives the event (and asks this subgraph for the message) the message exists.
 * The event carries only the key: the router joins every other field. Where events go is the
 * caller's choice (`publish`); standalone, that is NATS when NATS_URL is set.
 */
import { readFileSync } from 'node:fs';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { GraphQLError, parse } from 'graphql';
import { isMain, serveSubgraph } from '../../../shared/serve.js';
import { createMessageStore } from './data.js';

export const DEFAULT_PORT = 4001;
export const sdl = readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8');

/** The NATS subject the event-driven subgraph (`../edfs/schema.graphql`) subscribes to. */
export const roomSubject = (roomID) => `room.${roomID}.messages`;

/** A room id must be one NATS subject token: no dots, wildcards or whitespace. */
const ROOM_ID = /^[^\s.*>]+$/;

/**
 * @typedef {(subject: string, payload: string) => unknown} Publish
 *   Sends one event; may return a promise, which `sendMessage` waits for.
 */

/**
 * @param {ReturnType<typeof createMessageStore>} [store]
 * @param {{ publish?: Publish, typeDefs?: string }} [options] `typeDefs`: the SDL to serve
 *   (default: schema.graphql); fields it adds resolve from the stored message's properties.
 */
export function createSchema(store = createMessageStore(), { publish, typeDefs = sdl } = {}) {
  return buildSubgraphSchema({
    typeDefs: parse(typeDefs),
    resolvers: {
      Query: {
        messages: (_, { roomID }) => store.inRoom(roomID),
      },
      Mutation: {
        sendMessage: async (_, { roomID, text, userID }) => {
          if (text.trim() === '')
            throw new GraphQLError('text must not be empty', { extensions: { code: 'BAD_USER_INPUT' } });
          if (!ROOM_ID.test(roomID))
            throw new GraphQLError(
              `roomID "${roomID}" cannot be part of a NATS subject (no dots, "*", ">" or whitespace)`,
              { extensions: { code: 'BAD_USER_INPUT' } },
            );
          const message = store.add({ roomID, text, userID });
          if (publish) {
            const subject = roomSubject(message.roomID);
            try {
              await publish(subject, JSON.stringify({ __typename: 'Message', id: message.id }));
            } catch (err) {
              // The message is stored either way; subscribers just miss this one event.
              console.error(`messages: publishing message ${message.id} on ${subject} failed:`, err);
            }
          }
          return message;
        },
      },
      Message: {
        __resolveReference: (ref) => store.get(ref.id),
      },
    },
  });
}

/**
 * Starts the subgraph. `store` lets a caller observe `messageAdded`; `publish` receives the event
 * of every message sent through `sendMessage` (without it, nothing is published).
 * @param {{ port?: number, host?: string, store?: ReturnType<typeof createMessageStore>, publish?: Publish, typeDefs?: string }} [options]
 */
export async function start({
  port = DEFAULT_PORT,
  host,
  store = createMessageStore(),
  publish,
  typeDefs,
} = {}) {
  const schema = createSchema(store, { publish, typeDefs });
  const server = await serveSubgraph(schema, { port, host, name: 'messages' });
  return { ...server, store };
}

export { createMessageStore };

/** Standalone: publish to the NATS server at NATS_URL, if set, until SIGINT/SIGTERM. */
async function main() {
  const natsUrl = process.env.NATS_URL;
  let nats;
  if (natsUrl) {
    if (natsUrl.startsWith('memory://')) {
      console.error(
        `messages: NATS_URL=${natsUrl} is the router's in-process broker, which another process cannot reach; ` +
          'use `npm run demo` for that, or point NATS_URL at a nats-server (nats://localhost:4222)',
      );
      process.exit(1);
    }
    const { connect } = await import('@nats-io/transport-node');
    try {
      nats = await connect({ servers: natsUrl });
    } catch (err) {
      console.error(`messages: cannot connect to NATS at ${natsUrl} (NATS_URL): ${err.message}`);
      process.exit(1);
    }
  }
  const schemaFile = process.env.SCHEMA_FILE;
  let typeDefs;
  if (schemaFile) {
    try {
      typeDefs = readFileSync(schemaFile, 'utf8');
    } catch (err) {
      console.error(`messages: cannot read SCHEMA_FILE ${schemaFile}: ${err.message}`);
      process.exit(1);
    }
  }
  const server = await start({
    port: Number(process.env.PORT ?? DEFAULT_PORT),
    host: process.env.HOST,
    typeDefs,
    publish: nats ? (subject, payload) => nats.publish(subject, payload) : undefined,
  });
  console.log(
    `messages subgraph listening on ${server.url}` +
      (nats
        ? `, publishing new messages to ${natsUrl}`
        : ' (NATS_URL not set: new messages are not published)'),
  );
  const stop = async () => {
    await server.close();
    await nats?.drain();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (isMain(import.meta.url)) await main();
