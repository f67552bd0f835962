/**
 * The server side of one `graphql-transport-ws` connection (graphql-ws's PROTOCOL.md), as a state
 * machine that knows nothing of sockets: the transport feeds it the client's text frames and its
 * own close, and it writes through `ProtocolSocket`. The `ws` adapter is server/websocket.ts.
 *
 * Invariants:
 * - `connection_init` is accepted once, and operations only after `connection_ack`.
 * - An id is taken from `subscribe` until its operation ends (server `complete` or `error`, or
 *   the client's `complete`); then it is free again. At most `maxSubscriptions` ids are taken.
 * - Once the connection is closed, by either side, every operation is stopped and nothing more
 *   is written.
 * - A `next` frame costs one string concatenation: the operation's prefix (computed once), the
 *   payload exactly as the engine serialized it (shared by all its clients), and "}".
 * - Memory per connection is bounded: a `next` that finds more than `sendBufferLimitBytes`
 *   unsent closes the connection (4503) instead of queueing behind them.
 *
 * Close codes: 4400 invalid message (the reason names the problem), 4401 subscribe before the
 * ack, 4403 refused by `onConnect`, 4408 no `connection_init` in time, 4409 an id already in use,
 * 4429 a second `connection_init`, 4500 `onConnect` failed, 4503 slow consumer, 4504 no pong to a
 * keepalive ping.
 */
import type { GraphQLFormattedError } from 'graphql';
import type { GraphQLRequest, RequestContext } from '../engine/types.js';
import type { OperationService, ResultSink, Started } from '../subscriptions/service.js';
import type { DeliveryHooks } from './delivery.js';
import {
  isObject,
  limitCloseReason,
  typeName,
  type ProtocolConnection,
  type ProtocolSocket,
} from './connection.js';

export { limitCloseReason, type ProtocolConnection, type ProtocolSocket } from './connection.js';

export const GRAPHQL_TRANSPORT_WS = 'graphql-transport-ws';

export const CloseCode = {
  BadRequest: 4400,
  Unauthorized: 4401,
  Forbidden: 4403,
  ConnectionInitialisationTimeout: 4408,
  SubscriberAlreadyExists: 4409,
  TooManyInitialisationRequests: 4429,
  SlowConsumer: 4503,
  InternalServerError: 4500,
  KeepaliveTimeout: 4504,
} as const;

export interface TransportWsLimits {
  /** `connection_init` must arrive within this time (4408). */
  connectionInitTimeoutMs: number;
  /** Ping the client this often once acknowledged; 0 = never. A ping unanswered by the next one closes (4504). */
  keepaliveIntervalMs: number;
  /** Active operations per connection; a `subscribe` beyond it gets an `error` message. */
  maxSubscriptions: number;
  /** Unsent bytes above which the client is a slow consumer (4503). */
  sendBufferLimitBytes: number;
}

export interface TransportWsHooks extends DeliveryHooks {
  /**
   * Decides on a `connection_init`: `false` refuses it (4403), an object becomes the ack's
   * payload, anything else acknowledges plainly. May be async: operations wait for the answer.
   */
  onConnect?(
    connectionParams: Record<string, unknown> | undefined,
  ): boolean | Record<string, unknown> | void | Promise<boolean | Record<string, unknown> | void>;
  /** This side closed the connection, with the code and reason the client sees. */
  onClose?(code: number, reason: string): void;
  /** The operation service threw or `onConnect` failed; the client got a generic error. */
  onInternalError?(err: unknown): void;
}

export interface TransportWsOptions {
  socket: ProtocolSocket;
  operations: OperationService;
  /** What the transport knows about the client (the upgrade request's headers). */
  context?: RequestContext;
  limits: TransportWsLimits;
  hooks: TransportWsHooks;
}

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
      if (payload !== undefined && payload !== null && !isObject(payload))
        return invalid(`"${type}" payload must be an object, got ${typeName(payload)}`);
      return { ok: true, message: payload ? { type, payload } : { type } };
    }
    case 'subscribe': {
      const id = value.id;
      if (typeof id !== 'string' || id === '') return invalid(`"subscribe" needs a non-empty string "id"`);
      const payload = value.payload;
      if (!isObject(payload))
        return invalid(`"subscribe" payload must be an object, got ${typeName(payload)}`);
      const { query, operationName, variables, extensions } = payload;
      if (typeof query !== 'string')
        return invalid(`"subscribe" payload.query must be a string, got ${typeName(query)}`);
      if (operationName !== undefined && operationName !== null && typeof operationName !== 'string')
        return invalid(`"subscribe" payload.operationName must be a string, got ${typeName(operationName)}`);
      for (const [name, field] of [
        ['variables', variables],
        ['extensions', extensions],
      ] as const)
        if (field !== undefined && field !== null && !isObject(field))
          return invalid(`"subscribe" payload.${name} must be an object, got ${typeName(field)}`);
      const request: GraphQLRequest = { query, operationName: (operationName as string | null) ?? null };
      if (isObject(variables)) request.variables = variables;
      if (isObject(extensions)) request.extensions = extensions;
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

/** Opens the protocol on a socket that has just been accepted. */
export function openGraphqlTransportWs(options: TransportWsOptions): ProtocolConnection {
  return new TransportWsConnection(options);
}

/**
 * One operation of the connection. `starting` covers the synchronous `start` call (the sink may
 * already be used); `finished` means the service ended it, `cancelled` that this side stopped it.
 */
interface Operation {
  readonly id: string;
  /** `{"id":"<id>","type":"next","payload":` */
  readonly prefix: string;
  state: 'starting' | 'active' | 'finished' | 'cancelled';
  stop?: () => void;
}

class TransportWsConnection implements ProtocolConnection {
  private readonly socket: ProtocolSocket;
  private readonly limits: TransportWsLimits;
  private readonly hooks: TransportWsHooks;
  private readonly service: OperationService;
  private readonly abort = new AbortController();
  private context: RequestContext;
  private readonly operations = new Map<string, Operation>();
  private initReceived = false;
  private acknowledged = false;
  private isClosed = false;
  private initTimer: ReturnType<typeof setTimeout> | undefined;
  private keepaliveTimer: ReturnType<typeof setInterval> | undefined;
  private awaitingPong = false;

  constructor(options: TransportWsOptions) {
    this.socket = options.socket;
    this.limits = options.limits;
    this.hooks = options.hooks;
    this.service = options.operations;
    this.context = { ...options.context, signal: this.abort.signal };
    this.initTimer = setTimeout(() => {
      if (!this.initReceived)
        this.close(CloseCode.ConnectionInitialisationTimeout, 'Connection initialisation timeout');
    }, this.limits.connectionInitTimeoutMs);
    this.initTimer.unref?.();
  }

  receive(text: string): void {
    if (this.isClosed) return;
    const parsed = parseClientMessage(text);
    if (!parsed.ok) return this.close(CloseCode.BadRequest, parsed.reason);
    const message = parsed.message;
    switch (message.type) {
      case 'connection_init':
        return this.init(message.payload);
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
      case 'complete': {
        // An id that already ended is no error: the client's complete crossed our own.
        const operation = this.operations.get(message.id);
        if (operation) this.cancel(operation);
        return;
      }
    }
  }

  close(code: number, reason: string): void {
    if (this.isClosed) return;
    this.shutDown();
    const text = limitCloseReason(reason);
    this.hooks.onClose?.(code, text);
    this.socket.close(code, text);
  }

  closed(): void {
    if (!this.isClosed) this.shutDown();
  }

  private shutDown(): void {
    this.isClosed = true;
    clearTimeout(this.initTimer);
    clearInterval(this.keepaliveTimer);
    for (const operation of [...this.operations.values()]) this.cancel(operation);
    this.abort.abort(new Error('the WebSocket connection closed'));
  }

  private init(payload: Record<string, unknown> | undefined): void {
    if (this.initReceived)
      return this.close(CloseCode.TooManyInitialisationRequests, 'Too many initialisation requests');
    this.initReceived = true;
    clearTimeout(this.initTimer);
    if (payload) this.context = { ...this.context, connectionParams: payload };
    let decision: ReturnType<NonNullable<TransportWsHooks['onConnect']>>;
    try {
      decision = this.hooks.onConnect?.(payload);
    } catch (err) {
      return this.refuseInternal(err);
    }
    if (decision instanceof Promise)
      decision.then(
        (d) => this.acknowledge(d),
        (err: unknown) => this.refuseInternal(err),
      );
    else this.acknowledge(decision);
  }

  private refuseInternal(err: unknown): void {
    this.hooks.onInternalError?.(err);
    this.close(CloseCode.InternalServerError, 'Internal server error');
  }

  private acknowledge(decision: boolean | Record<string, unknown> | void): void {
    if (this.isClosed) return;
    if (decision === false) return this.close(CloseCode.Forbidden, 'Forbidden');
    this.acknowledged = true;
    this.socket.send(
      isObject(decision)
        ? JSON.stringify({ type: 'connection_ack', payload: decision })
        : '{"type":"connection_ack"}',
    );
    const every = this.limits.keepaliveIntervalMs;
    if (every > 0) {
      this.keepaliveTimer = setInterval(() => {
        if (this.awaitingPong)
          return this.close(CloseCode.KeepaliveTimeout, `Keepalive timeout: no pong within ${every}ms`);
        this.awaitingPong = true;
        this.socket.send('{"type":"ping"}');
      }, every);
      this.keepaliveTimer.unref?.();
    }
  }

  private subscribe(id: string, request: GraphQLRequest): void {
    if (!this.acknowledged) return this.close(CloseCode.Unauthorized, 'Unauthorized');
    if (this.operations.has(id))
      return this.close(CloseCode.SubscriberAlreadyExists, `Subscriber for ${id} already exists`);
    const idJson = JSON.stringify(id);
    if (this.operations.size >= this.limits.maxSubscriptions) {
      this.sendError(idJson, [
        {
          message: `Too many operations on this connection: at most ${this.limits.maxSubscriptions} may be active at once (websocket.max_subscriptions_per_connection).`,
        },
      ]);
      return;
    }

    const operation: Operation = {
      id,
      prefix: `{"id":${idJson},"type":"next","payload":`,
      state: 'starting',
    };
    this.operations.set(id, operation);
    let started: Started;
    try {
      started = this.service.start(request, this.context, this.sinkFor(operation, idJson));
    } catch (err) {
      this.hooks.onInternalError?.(err);
      if (this.end(operation)) this.sendError(idJson, [{ message: 'Internal server error' }]);
      return;
    }
    if (!started.ok) {
      if (this.end(operation)) this.sendError(idJson, started.errors);
      return;
    }
    if (operation.state === 'starting') {
      operation.state = 'active';
      operation.stop = started.stop;
    } else if (operation.state === 'cancelled') {
      // The connection closed while the service was starting (a slow consumer on the first result).
      started.stop();
    }
  }

  private sinkFor(operation: Operation, idJson: string): ResultSink {
    return {
      next: (json) => {
        if (operation.state === 'finished' || operation.state === 'cancelled') return false;
        if (this.socket.bufferedAmount() > this.limits.sendBufferLimitBytes) {
          this.hooks.slowConsumer();
          this.close(
            CloseCode.SlowConsumer,
            `slow consumer: send buffer over ${this.limits.sendBufferLimitBytes} bytes`,
          );
          return false;
        }
        this.socket.send(operation.prefix + json + '}');
        this.hooks.messageSent();
        return true;
      },
      error: (errors) => {
        if (this.end(operation)) this.sendError(idJson, errors);
      },
      complete: () => {
        if (this.end(operation)) this.socket.send(`{"id":${idJson},"type":"complete"}`);
      },
    };
  }

  /** The service ended the operation; true when it was still running (the client must be told). */
  private end(operation: Operation): boolean {
    if (operation.state === 'finished' || operation.state === 'cancelled') return false;
    operation.state = 'finished';
    this.operations.delete(operation.id);
    return true;
  }

  /** This side stops the operation; the service hears no more from it and the client gets nothing. */
  private cancel(operation: Operation): void {
    if (operation.state === 'finished' || operation.state === 'cancelled') return;
    const wasActive = operation.state === 'active';
    operation.state = 'cancelled';
    this.operations.delete(operation.id);
    if (wasActive) operation.stop?.();
  }

  private sendError(idJson: string, errors: readonly GraphQLFormattedError[]): void {
    this.socket.send(`{"id":${idJson},"type":"error","payload":${JSON.stringify(errors)}}`);
  }
}
