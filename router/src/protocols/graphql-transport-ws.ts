/**
 * The server side of one `graphql-transport-ws` connection (graphql-ws's PROTOCOL.md), as a state
 * machine that knows nothing of sockets: the transport feeds it the client's text frames and its
 * own close, and it writes through `ProtocolSocket`. The `ws` adapter is server/websocket.ts.
 *
 * Invariants (besides those every subprotocol keeps, in connection.ts):
 * - `connection_init` is accepted once, and operations only after `connection_ack`.
 * - An id is taken from `subscribe` until its operation ends (server `complete` or `error`, or
 *   the client's `complete`); then it is free again. At most `maxSubscriptions` ids are taken.
 *
 * Close codes: 4400 invalid message (the reason names the problem), 4401 subscribe before the
 * ack, 4403 refused by `onConnect`, a token refused (the reason says why) or expired ("Token
 * expired", after `TOKEN_EXPIRED` and `complete` for each running operation), 4408 no `connection_init` in time, 4409 an id already in use,
 * 4429 a second `connection_init`, 4500 `onConnect` failed, 4503 slow consumer, 4504 no pong to a
 * keepalive ping.
 */
import type { GraphQLFormattedError } from 'graphql';
import type { GraphQLRequest } from '../engine/types.js';
import {
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

export const GRAPHQL_TRANSPORT_WS = 'graphql-transport-ws';

export const CloseCode = {
  BadRequest: 4400,
  Unauthorized: 4401,
  Forbidden: ConnectionCloseCode.Forbidden,
  ConnectionInitialisationTimeout: ConnectionCloseCode.ConnectionInitialisationTimeout,
  SubscriberAlreadyExists: 4409,
  TooManyInitialisationRequests: 4429,
  SlowConsumer: ConnectionCloseCode.SlowConsumer,
  InternalServerError: 4500,
  KeepaliveTimeout: 4504,
} as const;

export type ClientMessage =
  | { type: 'connection_init'; payload?: Record<string, unknown> }
  | { type: 'ping'; payload?: Record<string, unknown> }
  | { type: 'pong'; payload?: Record<string, unknown> }
  | { type: 'subscribe'; id: string; payload: GraphQLRequest }
  | { type: 'complete'; id: string };

export type ParsedMessage = { ok: true; message: ClientMessage } | { ok: false; reason: string };

const SERVER_ONLY = new Set(['connection_ack', 'next', 'error']);

/** Validates one frame as strictly as graphql-ws does; a failure says what is wrong. */
export function parseClientMessage(text: string): ParsedMessage {
  const invalid = (what: string): ParsedMessage => ({ ok: false, reason: `Invalid message: ${what}` });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return invalid('not valid JSON');
  }
  if (!isObject(value)) return invalid(`expected a JSON object, got ${typeName(value)}`);
  const type = value.type;
  if (type === undefined) return invalid('missing "type"');
  if (typeof type !== 'string') return invalid(`"type" must be a string, got ${typeName(type)}`);

  switch (type) {
    case 'connection_init':
    case 'ping':
    case 'pong': {
      const payload = value.payload;
      if (!isOptionalObject(payload))
        return invalid(`"${type}" payload must be an object, got ${typeName(payload)}`);
      return { ok: true, message: payload ? { type, payload } : { type } };
    }
    case 'subscribe': {
      const id = value.id;
      if (typeof id !== 'string' || id === '') return invalid(`"subscribe" needs a non-empty string "id"`);
      const payload = value.payload;
      if (!isObject(payload))
        return invalid(`"subscribe" payload must be an object, got ${typeName(payload)}`);
      const request = readRequest(type, payload);
      if (typeof request === 'string') return invalid(request);
      return { ok: true, message: { type, id, payload: request } };
    }
    case 'complete': {
      const id = value.id;
      if (typeof id !== 'string' || id === '') return invalid(`"complete" needs a non-empty string "id"`);
      return { ok: true, message: { type, id } };
    }
    default:
      return invalid(
        SERVER_ONLY.has(type)
          ? `"${type}" is sent by servers, not clients`
          : `unknown type ${JSON.stringify(type.slice(0, 40))}`,
      );
  }
}

/** Opens the protocol on a socket that has just been accepted; `keepaliveIntervalMs` paces pings. */
export function openGraphqlTransportWs(options: ProtocolOptions): ProtocolConnection {
  return new TransportWsConnection(options);
}

const NEXT: ResultEnvelope = { open: '{"id":', close: ',"type":"next","payload":' };

class TransportWsConnection extends WsConnection {
  private awaitingPong = false;

  receive(text: string): void {
    if (this.isClosed) return;
    const parsed = parseClientMessage(text);
    if (!parsed.ok) return this.close(CloseCode.BadRequest, parsed.reason);
    const message = parsed.message;
    switch (message.type) {
      case 'connection_init':
        if (this.init !== 'none')
          return this.close(CloseCode.TooManyInitialisationRequests, 'Too many initialisation requests');
        return this.initialise(message.payload);
      case 'ping':
        this.socket.send(
          message.payload ? JSON.stringify({ type: 'pong', payload: message.payload }) : '{"type":"pong"}',
        );
        return;
      case 'pong':
        this.awaitingPong = false;
        return;
      case 'subscribe':
        return this.subscribe(message.id, message.payload);
      case 'complete':
        // An id that already ended is no error: the client's complete crossed our own.
        return this.operations.get(JSON.stringify(message.id))?.cancel();
    }
  }

  protected forbidden(): void {
    this.close(CloseCode.Forbidden, 'Forbidden');
  }

  protected connectFailed(err: unknown): void {
    this.hooks.onInternalError?.(err);
    this.close(CloseCode.InternalServerError, 'Internal server error');
  }

  protected unauthenticated(message: string): void {
    this.close(CloseCode.Forbidden, message);
  }

  /** A ping every `keepaliveIntervalMs`; one still unanswered at the next closes (4504). */
  protected acknowledged(): void {
    this.keepalive(() => {
      if (this.awaitingPong)
        return this.close(
          CloseCode.KeepaliveTimeout,
          `Keepalive timeout: no pong within ${this.limits.keepaliveIntervalMs}ms`,
        );
      this.awaitingPong = true;
      this.socket.send('{"type":"ping"}');
    });
  }

  private subscribe(id: string, request: GraphQLRequest): void {
    if (this.init !== 'acknowledged') return this.close(CloseCode.Unauthorized, 'Unauthorized');
    const idJson = JSON.stringify(id);
    if (this.operations.has(idJson))
      return this.close(CloseCode.SubscriberAlreadyExists, `Subscriber for ${id} already exists`);
    const operation = this.admit(idJson, request);
    if (operation) this.run(operation);
  }

  get envelope(): ResultEnvelope {
    return NEXT;
  }

  sendErrors(operation: WsOperation, errors: readonly GraphQLFormattedError[]): void {
    this.socket.send(`{"id":${operation.idJson},"type":"error","payload":${JSON.stringify(errors)}}`);
  }

  sendComplete(operation: WsOperation): void {
    this.socket.send(`{"id":${operation.idJson},"type":"complete"}`);
  }

  protected sendStartError(idJson: string, message: string): void {
    this.socket.send(`{"id":${idJson},"type":"error","payload":${JSON.stringify([{ message }])}}`);
  }
}
