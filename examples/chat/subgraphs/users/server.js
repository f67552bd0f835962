/**
 * The users subgraph: owns `User` and adds `Message.user`, resolved from the author id the
 * messages subgraph holds (`@requires(fields: "userID")`). Run standalone with
 * `node examples/chat/subgraphs/users/server.js` (PORT, default 4002) or call `start({ port })`.
 */
import { readFileSync } from 'node:fs';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { GraphQLError, parse } from 'graphql';
import { isMain, serveSubgraph } from '../../../shared/serve.js';
import { createUserStore } from './data.js';

export const DEFAULT_PORT = 4002;
export const sdl = readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8');

export function createSchema(store = createUserStore()) {
  return buildSubgraphSchema({
    typeDefs: parse(sdl),
    resolvers: {
      Query: {
        user: (_, { id }) => store.get(id),
        users: () => store.all(),
      },
      User: {
        __resolveReference: (ref) => store.get(ref.id),
      },
      Message: {
        // The representation carries the required `userID` next to the key.
        __resolveReference: (ref) => ({ id: ref.id, userID: ref.userID }),
        user: (message) => {
          const user = store.get(message.userID);
          if (!user)
            throw new GraphQLError(`user "${message.userID}" does not exist`, {
              extensions: { code: 'NOT_FOUND' },
            });
          return user;
        },
      },
    },
  });
}

/** @param {{ port?: number, host?: string, store?: ReturnType<typeof createUserStore> }} [options] */
export async function start({ port = DEFAULT_PORT, host, store = createUserStore() } = {}) {
  const server = await serveSubgraph(createSchema(store), { port, host, name: 'users' });
  return { ...server, store };
}

export { createUserStore };

if (isMain(import.meta.url)) {
  const { url } = await start({ port: Number(process.env.PORT ?? DEFAULT_PORT), host: process.env.HOST });
  console.log(`users subgraph listening on ${url}`);
}
