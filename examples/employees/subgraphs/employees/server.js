/**
 * The employees subgraph: owns `Employee` (details, email). Run standalone with
 * `node examples/employees/subgraphs/employees/server.js` (PORT, default 4011) or call
 * `start({ port })`.
 *
 * With NATS_URL set it is also the service behind the event-driven fields (CQRS style: the router
 * publishes commands and requests, this service answers and emits events):
 * - `getEmployee.<id>` requests get the reply {"__typename":"Employee","id":<id>} (or null);
 * - `updateEmployee.<id>` commands ({"id":..,"update":{"name","email"}}) are applied, then
 *   {"__typename":"Employee","id":<id>} is published on `employeeUpdated.<id>`.
 * Events carry only the key; the router asks this subgraph for everything else.
 */
import { readFileSync } from 'node:fs';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';
import { isMain, serveSubgraph } from '../../../shared/serve.js';
import { createEmployeeStore } from './data.js';

export const DEFAULT_PORT = 4011;
export const sdl = readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8');

export function createSchema(store = createEmployeeStore()) {
  return buildSubgraphSchema({
    typeDefs: parse(sdl),
    resolvers: {
      Query: {
        employee: (_, { id }) => store.get(id),
        employees: () => store.all(),
      },
      Employee: {
        __resolveReference: (ref) => store.get(ref.id),
      },
    },
  });
}

/** @param {{ port?: number, host?: string, store?: ReturnType<typeof createEmployeeStore> }} [options] */
export async function start({ port = DEFAULT_PORT, host, store = createEmployeeStore() } = {}) {
  const server = await serveSubgraph(createSchema(store), { port, host, name: 'employees' });
  return { ...server, store };
}

/** The event for an employee: its typename and key, nothing else. */
export const employeeEvent = (employee) => JSON.stringify({ __typename: 'Employee', id: employee.id });

/**
 * The little a broker must do for this service; `natsBroker` adapts a NATS connection, and any
 * broker with NATS subject semantics (the router's in-process one, in tests) fits as well.
 * @typedef {{ subject: string, data: string, respond?: (payload: string) => void }} EventMessage
 * @typedef {{
 *   subscribe(subject: string, handler: (message: EventMessage) => void): () => void,
 *   publish(subject: string, payload: string): unknown,
 * }} EventBroker
 */

/** An EventBroker over a @nats-io/transport-node connection. */
export function natsBroker(nc, log = console) {
  return {
    subscribe(subject, handler) {
      const subscription = nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err) return log.error(`employees: ${subject}: ${err.message}`);
          handler({
            subject: msg.subject,
            data: msg.string(),
            respond: msg.reply ? (payload) => msg.respond(payload) : undefined,
          });
        },
      });
      return () => subscription.unsubscribe();
    },
    publish: (subject, payload) => nc.publish(subject, payload),
  };
}

/**
 * Answers `getEmployee.*` requests and applies `updateEmployee.*` commands, publishing
 * `employeeUpdated.<id>` after each update. Returns a function that stops listening.
 * @param {EventBroker} broker
 * @param {ReturnType<typeof createEmployeeStore>} store
 */
export function serveEvents(broker, store, log = console) {
  const read = (message) => {
    try {
      return JSON.parse(message.data);
    } catch {
      log.error(`employees: ${message.subject}: payload is not JSON; ignored`);
      return undefined;
    }
  };
  // The router sends the JSON of all arguments; the subject's last token is the id as well.
  const idOf = (message, body) => body?.id ?? message.subject.split('.').pop();
  const stops = [
    broker.subscribe('getEmployee.*', (message) => {
      const employee = store.get(idOf(message, read(message)));
      message.respond?.(employee ? employeeEvent(employee) : 'null');
    }),
    broker.subscribe('updateEmployee.*', (message) => {
      const command = read(message);
      if (!command) return;
      const employee = store.update(idOf(message, command), command.update);
      if (!employee)
        return log.error(`employees: ${message.subject}: no employee with id ${idOf(message, command)}`);
      broker.publish(`employeeUpdated.${employee.id}`, employeeEvent(employee));
    }),
  ];
  return () => stops.forEach((stop) => stop());
}

async function main() {
  const store = createEmployeeStore();
  const server = await start({
    port: Number(process.env.PORT ?? DEFAULT_PORT),
    host: process.env.HOST,
    store,
  });
  const natsUrl = process.env.NATS_URL;
  let nc;
  if (natsUrl) {
    const { connect } = await import('@nats-io/transport-node');
    try {
      nc = await connect({ servers: natsUrl });
    } catch (err) {
      console.error(`employees: cannot connect to NATS at ${natsUrl} (NATS_URL): ${err.message}`);
      await server.close();
      process.exit(1);
    }
    serveEvents(natsBroker(nc), store);
  }
  console.log(
    `employees subgraph listening on ${server.url}` +
      (nc ? `, serving getEmployee.* and updateEmployee.* on ${natsUrl}` : ' (NATS_URL not set: no events)'),
  );
  const stop = async () => {
    await server.close();
    await nc?.drain();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (isMain(import.meta.url)) await main();
