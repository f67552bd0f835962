/**
 * One subgraph of the classic graph as its own process (forked by the bench, one per subgraph,
 * so subgraph work never runs on the gateway's event loop): `@apollo/subgraph` over graphql-js,
 * served by common/subgraph-server.ts, with a request counter the bench reads between windows,
 * which is how it counts subgraph requests per client request for every gateway alike.
 */
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse, type GraphQLSchema } from 'graphql';
import { serveRequests } from '../common/ipc.js';
import { subgraphServer } from '../common/subgraph-server.js';
import { RESOLVERS, SDL, type SubgraphName } from './graph.js';

let schema: GraphQLSchema;
const server = subgraphServer(() => schema);

serveRequests({
  async start(payload: { name: SubgraphName }) {
    schema = buildSubgraphSchema({
      typeDefs: parse(SDL[payload.name]),
      resolvers: RESOLVERS[payload.name] as never,
    });
    return { url: await server.listen() };
  },
  stats: () => ({ requests: server.requests }),
});
