/**
 * The `messages` subgraph as its own process (forked by the bench), served by
 * common/subgraph-server.ts: answers any message id, and counts requests so the bench can report
 * subgraph requests per event.
 */
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';
import { serveRequests } from '../common/ipc.js';
import { subgraphServer } from '../common/subgraph-server.js';
import { MESSAGES_SDL, messageEntity } from './graph.js';

const schema = buildSubgraphSchema({
  typeDefs: parse(MESSAGES_SDL),
  resolvers: {
    Query: { message: (_: unknown, { id }: { id: string }) => messageEntity(id) },
    Message: { __resolveReference: (ref: { id: string }) => messageEntity(ref.id) },
  },
});
const server = subgraphServer(() => schema);

serveRequests({
  async start() {
    return { url: await server.listen() };
  },
  stats: () => ({ requests: server.requests, entityRequests: server.entityRequests }),
});
