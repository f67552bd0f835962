/**
 * The messages subgraph: owns `Message` (text, room, author id, time), lists a room's messages
 * and stores new ones. Run standalone with `node examples/chat/subgraphs/messages/server.js`
 * (PORT, default 4001) or call `start({ port })`.
 */
import { readFileSync } from 'node:fs';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { GraphQLError, parse } from 'graphql';
import { isMain, serveSubgraph } from '../serve.js';
import { createMessageStore } from './data.js';

export const DEFAULT_PORT = 4001;
export const sdl = readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8');

export function createSchema(store = createMessageStore()) {
  return buildSubgraphSchema({
    typeDefs: parse(sdl),
    resolvers: {
      Query: {
        messages: (_, { roomID }) => store.inRoom(roomID),
      },
      Mutation: {
        sendMessage: (_, { roomID, text, userID }) => {
          if (text.trim() === '')
            throw new GraphQLError('text must not be empty', { extensions: { code: 'BAD_USER_INPUT' } });
          return store.add({ roomID, text, userID });
        },
      },
      Message: {
        __resolveReference: (ref) => store.get(ref.id),
      },
    },
  });
}

/**
 * Starts the subgraph. `store` lets a caller (the demo) observe `messageAdded`.
 * @param {{ port?: number, host?: string, store?: ReturnType<typeof createMessageStore> }} [options]
 */
export async function start({ port = DEFAULT_PORT, host, store = createMessageStore() } = {}) {
  const server = await serveSubgraph(createSchema(store), { port, host, name: 'messages' });
  return { ...server, store };
}

export { createMessageStore };

if (isMain(import.meta.url)) {
  const { url } = await start({ port: Number(process.env.PORT ?? DEFAULT_PORT), host: process.env.HOST });
  console.log(`messages subgraph listening on ${url}`);
}
