/**
 * The example graphs under examples/ do what their READMEs say: they compose (graph.yaml and
 * manifests alike, the manifests' inline schemas being copies of the schema files), and the
 * employees graph of the EDFS specification answers request, publish and subscribe fields with
 * its service on the router's in-process broker.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { parse } from 'yaml';
import { resolveRouterConfig, startRouter, type RunningRouter } from '@edfs/router';
// The broker behind `memory://NAME`; the router package does not export it (yet), and this is the
// module instance the router under test uses.
import { memoryBroker } from '../../router/src/events/memory/index.js';
import { composeSupergraph } from '../src/compose/compose.js';
import { loadComposeInputs } from '../src/compose/sources.js';

const examples = (path: string) => fileURLToPath(new URL(`../../examples/${path}`, import.meta.url));

interface DataSource {
  kind?: string;
  customEvents?: { nats?: unknown[]; kafka?: unknown[] };
}

/** The part of the execution config (`RouterConfig` as protobuf JSON) these cases read. */
interface EngineConfig {
  graphqlSchema: string;
  datasourceConfigurations: DataSource[];
  fieldConfigurations: { fieldName: string; subscriptionFilterCondition?: unknown }[];
}

function composedEngineConfig(path: string): EngineConfig {
  const result = composeSupergraph(loadComposeInputs([examples(path)]));
  if (!result.ok) throw new Error(`${path} does not compose:\n${JSON.stringify(result.errors, null, 2)}`);
  return (result.config as { engineConfig: EngineConfig }).engineConfig;
}

describe('the example graphs compose', () => {
  it('chat: graph.yaml and the manifests give the same graph, with messageAdded fed by NATS', () => {
    const fromGraphYaml = composedEngineConfig('chat/graph.yaml');
    const fromManifests = composedEngineConfig('chat/manifests');

    expect(fromManifests.graphqlSchema).toBe(fromGraphYaml.graphqlSchema);
    expect(fromGraphYaml.graphqlSchema).toContain('messageAdded(roomID: ID!): Message!');
    const sources = fromGraphYaml.datasourceConfigurations;
    expect(sources.find((s) => s.kind === 'PUBSUB')?.customEvents?.nats).toEqual([
      {
        engineEventConfiguration: {
          providerId: 'default',
          type: 'SUBSCRIBE',
          typeName: 'Subscription',
          fieldName: 'messageAdded',
        },
        subjects: ['room.{{ args.roomID }}.messages'],
      },
    ]);
  });

  it('chat: the schemas inlined in the manifests are the schema files', () => {
    const documents = readFileSync(examples('chat/manifests/subgraphs.yaml'), 'utf8')
      .split(/^---$/m)
      .map((text) => parse(text) as { metadata: { name: string }; spec: { schema: { sdl: string } } });

    expect(documents.map((d) => d.metadata.name).sort()).toEqual(['edfs', 'messages', 'users']);
    for (const { metadata, spec } of documents) {
      const file = readFileSync(examples(`chat/subgraphs/${metadata.name}/schema.graphql`), 'utf8');
      expect(withoutComments(spec.schema.sdl)).toBe(withoutComments(file));
    }
  });

  it('employees: request, publish and subscribe on NATS, the filtered subscription on Kafka', () => {
    const config = composedEngineConfig('employees/graph.yaml');
    const events = config.datasourceConfigurations.find((s) => s.kind === 'PUBSUB')?.customEvents;

    expect(events?.nats).toHaveLength(3);
    expect(events?.kafka).toEqual([
      expect.objectContaining({ topics: ['employeeUpdated', 'employeeUpdatedTwo'] }),
    ]);
    expect(
      config.fieldConfigurations.find((f) => f.fieldName === 'filteredEmployeeUpdated')
        ?.subscriptionFilterCondition,
    ).toEqual({ in: { fieldPath: ['id'], json: '["{{ args.firstIds }}","{{ args.secondIds }}"]' } });
  });
});

describe('the employees example on the in-process broker', () => {
  const BROKER = 'employees-example-test';
  let employees: { url: string; close(): Promise<void> };
  let stopEvents: () => void;
  let router: RunningRouter;

  beforeAll(async () => {
    const server = (await import(examples('employees/subgraphs/employees/server.js'))) as EmployeesModule;
    employees = await server.start({ port: 0, host: '127.0.0.1' });
    stopEvents = server.serveEvents(memoryEvents(BROKER), (employees as unknown as { store: never }).store, {
      error: () => undefined,
    });
    const inputs = loadComposeInputs([examples('employees/graph.yaml')]).map((s) =>
      s.name === 'employees' ? { ...s, routingUrl: employees.url } : s,
    );
    const composed = composeSupergraph(inputs);
    if (!composed.ok) throw new Error(JSON.stringify(composed.errors));
    router = await startRouter(
      resolveRouterConfig(
        {
          listen_addr: '127.0.0.1:0',
          log_level: 'silent',
          execution_config: { file: { path: 'unused.json', watch: false } },
          // No Kafka here: the filtered subscription is not exercised.
          events: { providers: { nats: [{ id: 'default', url: `memory://${BROKER}` }] } },
          telemetry: { metrics: { prometheus: { enabled: false } } },
        },
        { env: {} },
      ),
      { executionConfig: composed.config },
    );
  });

  afterAll(async () => {
    await router?.close();
    stopEvents?.();
    await employees?.close();
  });

  const post = async (query: string) => {
    const res = await fetch(router.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query }),
    });
    return (await res.json()) as { data?: Record<string, unknown>; errors?: unknown[] };
  };

  it('employeeFromEvent: the service answers the NATS request, the router joins the details', async () => {
    expect(await post('{ employeeFromEvent(id: "1") { id details { forename surname } } }')).toEqual({
      data: { employeeFromEvent: { id: 1, details: { forename: 'Jens', surname: 'Neuse' } } },
    });
  });

  it('updateEmployee publishes the command; the service applies it and employeeUpdated shows the result', async () => {
    const client = createClient({
      url: router.url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
    });
    try {
      const updated = new Promise<unknown>((resolve, reject) => {
        const stop = client.subscribe(
          {
            query:
              'subscription { employeeUpdated(employeeID: "12") { id details { forename surname } email } }',
          },
          { next: (value) => (stop(), resolve(value)), error: reject, complete: () => undefined },
        );
      });
      let settled = false;
      void updated.finally(() => (settled = true));
      // Until the router's broker subscription is in place, events are (by design) not delivered.
      for (let attempt = 0; !settled && attempt < 50; attempt++) {
        const published = await post(
          'mutation { updateEmployee(id: "12", update: { name: "Jannik Neuse", email: "jannik@neuse.de" }) { success } }',
        );
        expect(published).toEqual({ data: { updateEmployee: { success: true } } });
        await Promise.race([updated, new Promise((resolve) => setTimeout(resolve, 200))]);
      }

      expect(await updated).toEqual({
        data: {
          employeeUpdated: {
            id: 12,
            details: { forename: 'Jannik', surname: 'Neuse' },
            email: 'jannik@neuse.de',
          },
        },
        extensions: { delivery: 'at-most-once' },
      });
    } finally {
      await client.dispose();
    }
  });
});

interface EmployeesModule {
  start(options: { port: number; host: string }): Promise<{ url: string; close(): Promise<void> }>;
  serveEvents(broker: unknown, store: never, log: { error(message: string): void }): () => void;
}

/** The employees service's EventBroker port over the in-process broker `name`. */
function memoryEvents(name: string) {
  const broker = memoryBroker(name);
  return {
    subscribe(
      subject: string,
      handler: (message: { subject: string; data: string; respond?: (p: string) => void }) => void,
    ) {
      const subscription = broker.subscribe(subject, (message) =>
        handler({
          subject: message.subject,
          data: message.string(),
          respond: message.reply ? (payload) => broker.publish(message.reply!, payload) : undefined,
        }),
      );
      return () => subscription.unsubscribe();
    },
    publish: (subject: string, payload: string) => broker.publish(subject, payload),
  };
}

/** SDL without comment lines and surrounding blank space, to compare a copy with its file. */
function withoutComments(sdl: string): string {
  return sdl
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n')
    .trim();
}
