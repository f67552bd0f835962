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
 *   and the socket is closed (1011); a failing `onConnect` the same, with a generic message.
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
 * Invariants (as for graphql-transport-ws):
 * - Once the connection is closed, by either side, every operation is stopped and nothing more
 *   is written.
 * - A `data` frame costs one string concatenation: the operation's prefix (computed once), the
 *   payload exactly as the engine serialized it (shared by all its clients), and "}".
 * - Memory per connection is bounded: a `data` that finds more than `sendBufferLimitBytes`
 *   unsent closes the connection (4503) instead of queueing behind them.
 */
import type { GraphQLFormattedError } from 'graphql';
import type { GraphQLRequest, RequestContext } from '../engine/types.js';
import type { OperationService, ResultSink, Started } from '../subscriptions/service.js';
import {
  isObject,
  limitCloseReason,
  typeName,
  type ProtocolConnection,
  type ProtocolSocket,
} from './connection.js';
import type { DeliveryHooks } from './delivery.js';
import { CloseCode, type TransportWsHooks } from './graphql-transport-ws.js';

export const GRAPHQL_WS = 'graphql-ws';

export const LegacyCloseCode = {
  /** `connection_terminate` from the client. */
  Terminated: 1000,
  /** `onConnect` refused or failed (the library's code for both). */
  InitFailed: 1011,
  ConnectionInitialisationTimeout: CloseCode.ConnectionInitialisationTimeout,
  SlowConsumer: CloseCode.SlowConsumer,
} as const;

export interface LegacyWsLimits {
  /** `connection_init` must arrive within this time (4408). */
  connectionInitTimeoutMs: number;
  /** A `ka` message this often once acknowledged (and one right after the ack); 0 = never. */
  keepaliveIntervalMs: number;
  /** Operations per connection, held ones included; a `start` beyond it gets an `error`. */
  maxSubscriptions: number;
  /** Unsent bytes above which the client is a slow consumer (4503). */
  sendBufferLimitBytes: number;
}

/** The same hooks as graphql-transport-ws: `onConnect` decides on the init, the others observe. */
export type LegacyWsHooks = DeliveryHooks &
  Pick<TransportWsHooks, 'onConnect' | 'onClose' | 'onInternalError'>;

export interface LegacyWsOptions {
  socket: ProtocolSocket;
  operations: OperationService;
  /** What the transport knows about the client (the upgrade request's headers). */
  context?: RequestContext;
  limits: LegacyWsLimits;
  hooks: LegacyWsHooks;
}

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
      if (payload !== undefined && payload !== null && !isObject(payload))
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
      const { query, operationName, variables, extensions } = payload;
      if (typeof query !== 'string')
        return problem(`"start" payload.query must be a string, got ${typeName(query)}`);
      if (operationName !== undefined && operationName !== null && typeof operationName !== 'string')
        return problem(`"start" payload.operationName must be a string, got ${typeName(operationName)}`);
      for (const [name, field] of [
        ['variables', variables],
        ['extensions', extensions],
      ] as const)
        if (field !== undefined && field !== null && !isObject(field))
          return problem(`"start" payload.${name} must be an object, got ${typeName(field)}`);
      const request: GraphQLRequest = { query, operationName: (operationName as string | null) ?? null };
      if (isObject(variables)) request.variables = variables;
      if (isObject(extensions)) request.extensions = extensions;
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

/** Opens the protocol on a socket that has just been accepted. */
export function openSubscriptionsTransportWs(options: LegacyWsOptions): ProtocolConnection {
  return new LegacyWsConnection(options);
}

const ACK = '{"type":"connection_ack"}';
const KEEP_ALIVE = '{"type":"ka"}';

/**
 * One operation of the connection. `pending` waits for the ack; `starting` covers the synchronous
 * `start` call (the sink may already be used); `finished` means the service ended it, `cancelled`
 * that this side stopped it.
 */
interface Operation {
  /** The id as JSON: the key in the map and the text in every frame. */
  readonly idJson: string;
  /** `{"type":"data","id":<id>,"payload":` */
  readonly prefix: string;
  readonly request: GraphQLRequest;
  state: 'pending' | 'starting' | 'active' | 'finished' | 'cancelled';
  stop?: () => void;
}

class LegacyWsConnection implements ProtocolConnection {
  private readonly socket: ProtocolSocket;
  private readonly limits: LegacyWsLimits;
  private readonly hooks: LegacyWsHooks;
  private readonly service: OperationService;
  private readonly abort = new AbortController();
  private context: RequestContext;
  private readonly operations = new Map<string, Operation>();
  private init: 'none' | 'deciding' | 'acknowledged' = 'none';
  private isClosed = false;
  private initTimer: ReturnType<typeof setTimeout> | undefined;
  private keepaliveTimer: ReturnType<typeof setInterval> | undefined;

  constructor(options: LegacyWsOptions) {
    this.socket = options.socket;
    this.limits = options.limits;
    this.hooks = options.hooks;
    this.service = options.operations;
    this.context = { ...options.context, signal: this.abort.signal };
    this.initTimer = setTimeout(() => {
      if (this.init === 'none')
        this.close(LegacyCloseCode.ConnectionInitialisationTimeout, 'Connection initialisation timeout');
    }, this.limits.connectionInitTimeoutMs);
    this.initTimer.unref?.();
  }

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
        return this.initialise(message.payload);
      case 'connection_terminate':
        return this.close(LegacyCloseCode.Terminated, 'Connection terminated by the client');
      case 'start':
        return this.start(message.id, message.payload);
      case 'stop': {
        // An id that already ended is no error: the client's stop crossed our complete.
        const operation =
          message.id === undefined ? undefined : this.operations.get(JSON.stringify(message.id));
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

  private initialise(payload: Record<string, unknown> | undefined): void {
    if (this.init === 'acknowledged') return this.socket.send(ACK);
    // The answer to the first connection_init is on its way.
    if (this.init === 'deciding') return;
    this.init = 'deciding';
    clearTimeout(this.initTimer);
    if (payload) this.context = { ...this.context, connectionParams: payload };
    let decision: ReturnType<NonNullable<LegacyWsHooks['onConnect']>>;
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
    if (this.isClosed) return;
    this.hooks.onInternalError?.(err);
    this.refuse('Internal server error');
  }

  private refuse(message: string): void {
    this.socket.send(`{"type":"connection_error","payload":${JSON.stringify({ message })}}`);
    this.close(LegacyCloseCode.InitFailed, message);
  }

  private acknowledge(decision: boolean | Record<string, unknown> | void): void {
    if (this.isClosed) return;
    if (decision === false) return this.refuse('Prohibited connection!');
    this.init = 'acknowledged';
    this.socket.send(
      isObject(decision) ? JSON.stringify({ type: 'connection_ack', payload: decision }) : ACK,
    );
    const every = this.limits.keepaliveIntervalMs;
    if (every > 0) {
      this.socket.send(KEEP_ALIVE);
      this.keepaliveTimer = setInterval(() => this.socket.send(KEEP_ALIVE), every);
      this.keepaliveTimer.unref?.();
    }
    for (const operation of [...this.operations.values()])
      if (operation.state === 'pending' && !this.isClosed) this.run(operation);
  }

  private start(id: OperationId, request: GraphQLRequest): void {
    const idJson = JSON.stringify(id);
    const previous = this.operations.get(idJson);
    if (previous) this.cancel(previous);
    if (this.operations.size >= this.limits.maxSubscriptions) {
      this.sendError(
        idJson,
        `Too many operations on this connection: at most ${this.limits.maxSubscriptions} may be active at once (websocket.max_subscriptions_per_connection).`,
      );
      return;
    }
    const operation: Operation = {
      idJson,
      prefix: `{"type":"data","id":${idJson},"payload":`,
      request,
      state: 'pending',
    };
    this.operations.set(idJson, operation);
    if (this.init === 'acknowledged') this.run(operation);
  }

  private run(operation: Operation): void {
    operation.state = 'starting';
    let started: Started;
    try {
      started = this.service.start(operation.request, this.context, this.sinkFor(operation));
    } catch (err) {
      this.hooks.onInternalError?.(err);
      if (this.end(operation)) this.sendError(operation.idJson, 'Internal server error');
      return;
    }
    if (!started.ok) {
      if (this.end(operation)) this.sendErrorsAndComplete(operation, started.errors);
      return;
    }
    if (operation.state === 'starting') {
      operation.state = 'active';
      operation.stop = started.stop;
    } else if (operation.state === 'cancelled') {
      // Stopped while the service was starting (a slow consumer on the first result).
      started.stop();
    }
  }

  private sinkFor(operation: Operation): ResultSink {
    return {
      next: (json) => {
        if (operation.state === 'finished' || operation.state === 'cancelled') return false;
        if (this.socket.bufferedAmount() > this.limits.sendBufferLimitBytes) {
          this.hooks.slowConsumer();
          this.close(
            LegacyCloseCode.SlowConsumer,
            `slow consumer: send buffer over ${this.limits.sendBufferLimitBytes} bytes`,
          );
          return false;
        }
        this.socket.send(operation.prefix + json + '}');
        this.hooks.messageSent();
        return true;
      },
      error: (errors) => {
        if (this.end(operation)) this.sendErrorsAndComplete(operation, errors);
      },
      complete: () => {
        if (this.end(operation)) this.socket.send(`{"type":"complete","id":${operation.idJson}}`);
      },
    };
  }

  /** The service ended the operation; true when it was still running (the client must be told). */
  private end(operation: Operation): boolean {
    if (operation.state === 'finished' || operation.state === 'cancelled') return false;
    operation.state = 'finished';
    this.operations.delete(operation.idJson);
    return true;
  }

  /** This side stops the operation; the service hears no more from it and the client gets nothing. */
  private cancel(operation: Operation): void {
    if (operation.state === 'finished' || operation.state === 'cancelled') return;
    const wasActive = operation.state === 'active';
    operation.state = 'cancelled';
    this.operations.delete(operation.idJson);
    if (wasActive) operation.stop?.();
  }

  private sendErrorsAndComplete(operation: Operation, errors: readonly GraphQLFormattedError[]): void {
    this.socket.send(`${operation.prefix}{"errors":${JSON.stringify(errors)}}}`);
    this.socket.send(`{"type":"complete","id":${operation.idJson}}`);
  }

  private sendError(idJson: string, message: string): void {
    this.socket.send(`{"type":"error","id":${idJson},"payload":${JSON.stringify({ message })}}`);
  }

  private sendProblem(problem: LegacyFrameProblem): void {
    const id = problem.id === undefined ? '' : `"id":${JSON.stringify(problem.id)},`;
    this.socket.send(
      `{"type":"${problem.kind}",${id}"payload":${JSON.stringify({ message: problem.message })}}`,
    );
  }
}
