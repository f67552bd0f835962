/**
 * The server side of one legacy `graphql-ws` connection: the protocol of Apollo's
 * subscriptions-transport-ws (its PROTOCOL.md; the subprotocol is named `graphql-ws`, not to be
 * confused with the graphql-ws library, whose protocol is `graphql-transport-ws`). Like
 * graphql-transport-ws.ts, a state machine that knows nothing of sockets; the `ws` adapter is
 * server/websocket.ts.
 *
 * Messages: the client sends `connection_init`, `start` {id, payload: {query, variables,
 * operationName}}, `stop` {id} and `connection_terminate`; the server answers `connection_ack`,
 * `ka` (keep-alive), `data`, `error`, `complete` and `connection_error`.
 *
 * Where the library's server (`SubscriptionServer`) decides an edge case, this does the same:
 * - A frame that is not JSON is answered with `connection_error` {message}; a message of an
 *   unknown type (including the server's own types) with `error` {message} for its id. Neither
 *   closes the connection. A `start` that cannot be served (no query, variables not an object)
 *   gets an `error` for its id.
 * - A `start` reusing an active id stops the old operation silently (no `complete` for it) and
 *   starts the new one.
 * - A `stop` for an id that is not active is ignored. `connection_terminate` closes the socket.
 * - An init refused by `onConnect` gets `connection_error` {message: "Prohibited connection!"}
 *   and the socket is closed (1011); a failing `onConnect` the same, with a generic message; a
 *   refused token the same, with the reason as the message. A token that expires ends the
 *   running operations with `TOKEN_EXPIRED` and `complete`, then closes the socket (4403).
 * - Keep-alive: `ka` right after the ack, then every `keepaliveIntervalMs` (0 = never). The
 *   protocol has no answer to it: the client closes a connection whose `ka`s stop.
 * - A repeated `connection_init` is acknowledged again (the library runs `onConnect` again;
 *   here the first decision and connection params stand).
 * Where it departs from the library, for a router's sake:
 * - Operations wait for the ack. The library's client sends `start` right behind
 *   `connection_init` without waiting, so those are held (and counted against the limit) until
 *   the init is decided; the library would run a `start` that comes with no `connection_init`
 *   at all, bypassing `onConnect`. Here it waits too, and a connection that sends no
 *   `connection_init` within `connectionInitTimeoutMs` is closed (4408).
 * - GraphQL errors, whether the service refuses an operation or ends it with errors, are
 *   delivered as a `data` {errors} followed by `complete`, as the library does for validation
 *   errors: the library's `error` payload is one {message} object (Apollo's mobile clients read
 *   it so), which cannot carry a list of GraphQL errors whole. `error` is for problems with the
 *   `start` itself: a bad payload, too many operations, an internal failure.
 * - At most `maxSubscriptions` operations per connection (held ones included): one more gets an
 *   `error`. The pre-2017 message types (`init`, `subscription_start`, ...) are not spoken.
 *
 *
 * The invariants every subprotocol keeps (closing, bounded memory, one concatenation per `data`
 * frame) are connection.ts's.
 */
import type { GraphQLFormattedError } from 'graphql';
import type { GraphQLRequest } from '../engine/types.js';
import {
  CONNECTION_ACK,
  ConnectionCloseCode,
  isObject,
  isOptionalObject,
  readRequest,
  typeName,
  WsConnection,
  type ProtocolConnection,
  type ProtocolOptions,
  type ResultEnvelope,
  type WsOperation,
} from './connection.js';

export const GRAPHQL_WS = 'graphql-ws';

export const LegacyCloseCode = {
  /** `connection_terminate` from the client. */
  Terminated: 1000,
  /** `onConnect` refused or failed (the library's code for both). */
  InitFailed: 1011,
  ConnectionInitialisationTimeout: ConnectionCloseCode.ConnectionInitialisationTimeout,
  SlowConsumer: ConnectionCloseCode.SlowConsumer,
} as const;

/** The library's clients send string ids; any JSON string or number is taken, as the library does. */
export type OperationId = string | number;

export type LegacyClientMessage =
  | { type: 'connection_init'; payload?: Record<string, unknown> }
  | { type: 'connection_terminate' }
  | { type: 'start'; id: OperationId; payload: GraphQLRequest }
  | { type: 'stop'; id?: OperationId };

/**
 * A frame that is not a message the server can act on, and how to answer it: `connection_error`
 * for a frame that is not a message at all (and for a bad `connection_init`, which also closes
 * the connection: `fatal`), `error` (for the message's id, when it has one) otherwise.
 */
export interface LegacyFrameProblem {
  kind: 'connection_error' | 'error';
  id?: OperationId;
  message: string;
  fatal?: boolean;
}

export type ParsedLegacyMessage =
  { ok: true; message: LegacyClientMessage } | ({ ok: false } & LegacyFrameProblem);

const CLIENT_TYPES = 'connection_init, start, stop or connection_terminate';

/** Reads one client frame; a problem says what is wrong in words a client developer can act on. */
export function parseLegacyClientMessage(text: string): ParsedLegacyMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return {
      ok: false,
      kind: 'connection_error',
      message: `Invalid message: not valid JSON (${(err as Error).message})`,
    };
  }
  if (!isObject(value))
    return {
      ok: false,
      kind: 'connection_error',
      message: `Invalid message: expected a JSON object, got ${typeName(value)}`,
    };
  const rawId = value.id;
  const id =
    typeof rawId === 'string' || (typeof rawId === 'number' && Number.isFinite(rawId)) ? rawId : undefined;
  const problem = (message: string): ParsedLegacyMessage =>
    id === undefined ? { ok: false, kind: 'error', message } : { ok: false, kind: 'error', id, message };
  const type = value.type;

  switch (type) {
    case 'connection_init': {
      const payload = value.payload;
      if (!isOptionalObject(payload))
        return {
          ok: false,
          kind: 'connection_error',
          fatal: true,
          message: `"connection_init" payload must be an object (the connection params), got ${typeName(payload)}`,
        };
      return { ok: true, message: payload ? { type, payload } : { type } };
    }
    case 'connection_terminate':
      return { ok: true, message: { type } };
    case 'start': {
      if (id === undefined || id === '') return problem('"start" needs an "id" (a non-empty string)');
      const payload = value.payload;
      if (!isObject(payload))
        return problem(`"start" payload must be an object with the query, got ${typeName(payload)}`);
      const request = readRequest(type, payload);
      if (typeof request === 'string') return problem(request);
      return { ok: true, message: { type, id, payload: request } };
    }
    case 'stop':
      return { ok: true, message: id === undefined ? { type } : { type, id } };
    default:
      return problem(
        type === undefined
          ? `Invalid message type! The message has no "type"; a client sends ${CLIENT_TYPES}.`
          : `Invalid message type! Got ${JSON.stringify(typeof type === 'string' ? type.slice(0, 40) : type)}; a client sends ${CLIENT_TYPES}.`,
      );
  }
}

/** Opens the protocol on a socket that has just been accepted; `keepaliveIntervalMs` paces `ka`s. */
export function openSubscriptionsTransportWs(options: ProtocolOptions): ProtocolConnection {
  return new LegacyWsConnection(options);
}

const KEEP_ALIVE = '{"type":"ka"}';

const DATA: ResultEnvelope = { open: '{"type":"data","id":', close: ',"payload":' };

class LegacyWsConnection extends WsConnection {
  receive(text: string): void {
    if (this.isClosed) return;
    const parsed = parseLegacyClientMessage(text);
    if (!parsed.ok) {
      this.sendProblem(parsed);
      if (parsed.fatal) this.close(LegacyCloseCode.InitFailed, parsed.message);
      return;
    }
    const message = parsed.message;
    switch (message.type) {
      case 'connection_init':
        if (this.init === 'acknowledged') return this.socket.send(CONNECTION_ACK);
        // The answer to the first connection_init is on its way.
        if (this.init === 'deciding') return;
        return this.initialise(message.payload);
      case 'connection_terminate':
        return this.close(LegacyCloseCode.Terminated, 'Connection terminated by the client');
      case 'start':
        return this.start(message.id, message.payload);
      case 'stop':
        // An id that already ended is no error: the client's stop crossed our complete.
        if (message.id !== undefined) this.operations.get(JSON.stringify(message.id))?.cancel();
        return;
    }
  }

  protected forbidden(): void {
    this.refuse('Prohibited connection!');
  }

  protected connectFailed(err: unknown): void {
    if (this.isClosed) return;
    this.hooks.onInternalError?.(err);
    this.refuse('Internal server error');
  }

  protected unauthenticated(message: string): void {
    this.refuse(message);
  }

  private refuse(message: string): void {
    this.socket.send(`{"type":"connection_error","payload":${JSON.stringify({ message })}}`);
    this.close(LegacyCloseCode.InitFailed, message);
  }

  /** `ka` right after the ack and every `keepaliveIntervalMs`; then the starts held for the ack run. */
  protected acknowledged(): void {
    this.keepalive(() => this.socket.send(KEEP_ALIVE), true);
    for (const operation of this.operations.values())
      if (operation.state === 'pending' && !this.isClosed) this.run(operation);
  }

  private start(id: OperationId, request: GraphQLRequest): void {
    const idJson = JSON.stringify(id);
    this.operations.get(idJson)?.cancel();
    const operation = this.admit(idJson, request);
    if (operation && this.init === 'acknowledged') this.run(operation);
  }

  get envelope(): ResultEnvelope {
    return DATA;
  }

  /** As a last `data` {errors}, then `complete` (see above). */
  sendErrors(operation: WsOperation, errors: readonly GraphQLFormattedError[]): void {
    this.socket.send(`${DATA.open}${operation.idJson}${DATA.close}{"errors":${JSON.stringify(errors)}}}`);
    this.sendComplete(operation);
  }

  sendComplete(operation: WsOperation): void {
    this.socket.send(`{"type":"complete","id":${operation.idJson}}`);
  }

  protected sendStartError(idJson: string, message: string): void {
    this.socket.send(`{"type":"error","id":${idJson},"payload":${JSON.stringify({ message })}}`);
  }

  private sendProblem(problem: LegacyFrameProblem): void {
    const id = problem.id === undefined ? '' : `"id":${JSON.stringify(problem.id)},`;
    this.socket.send(
      `{"type":"${problem.kind}",${id}"payload":${JSON.stringify({ message: problem.message })}}`,
    );
  }
}
