/**
 * A one-subgraph graph for tests of the router's edges: `Query.hello` and `Mutation.setHello`,
 * served by a tiny HTTP subgraph on a free port, and a router.yaml + execution config in a
 * temporary directory. The execution config is written inline (in the shape `edfs compose`
 * produces) so these tests need no composition step.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/observability/logger.js';
import { startRouter, type RunningRouter, type StartRouterOptions } from '../../src/main.js';

export interface HelloSubgraph {
  url: string;
  /** Queries received, in order. */
  received: string[];
  close(): Promise<void>;
}

export async function startHelloSubgraph(): Promise<HelloSubgraph> {
  const received: string[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const { query } = JSON.parse(body) as { query: string };
      received.push(query);
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify(
          query.includes('setHello') ? { data: { setHello: 'set' } } : { data: { hello: 'world' } },
        ),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/graphql`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export function helloExecutionConfig(subgraphUrl: string): unknown {
  return {
    engineConfig: {
      graphqlSchema:
        'schema { query: Query mutation: Mutation } type Query { hello: String } type Mutation { setHello(to: String!): String }',
      datasourceConfigurations: [
        {
          id: '0',
          rootNodes: [
            { typeName: 'Query', fieldNames: ['hello'] },
            { typeName: 'Mutation', fieldNames: ['setHello'] },
          ],
          customGraphql: { fetch: { url: { staticVariableContent: subgraphUrl }, method: 'POST' } },
        },
      ],
    },
    subgraphs: [{ id: '0', name: 'hello', routingUrl: subgraphUrl }],
  };
}

export interface HelloRouter {
  router: RunningRouter;
  subgraph: HelloSubgraph;
  dir: string;
  close(): Promise<void>;
}

/**
 * Starts the subgraph and a router on free ports. `yaml` is appended to the generated router.yaml
 * (which sets listen_addr, execution_config and the metrics address).
 */
export async function startHelloRouter(yaml = '', options: StartRouterOptions = {}): Promise<HelloRouter> {
  const subgraph = await startHelloSubgraph();
  const dir = await mkdtemp(join(tmpdir(), 'edfs-router-test-'));
  await writeFile(join(dir, 'config.json'), JSON.stringify(helloExecutionConfig(subgraph.url)));
  await writeFile(
    join(dir, 'router.yaml'),
    [
      'listen_addr: "127.0.0.1:0"',
      'execution_config: { file: { path: ./config.json, watch: false } }',
      'telemetry: { metrics: { prometheus: { listen_addr: "127.0.0.1:0" } } }',
      yaml,
    ].join('\n'),
  );
  let router: RunningRouter;
  try {
    router = await startRouter(join(dir, 'router.yaml'), {
      logger: createLogger({ level: 'silent' }),
      ...options,
    });
  } catch (err) {
    await subgraph.close();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    router,
    subgraph,
    dir,
    async close() {
      await router.close();
      await subgraph.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
