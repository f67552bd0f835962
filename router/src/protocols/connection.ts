/**
 * The seam between a WebSocket subprotocol's state machine (graphql-transport-ws, the legacy
 * graphql-ws) and its transport (server/websocket.ts): what a protocol needs from a socket, and
 * what it offers back for one connection. Both subprotocols are a `WsConnection`, so they share
 * one connection life (init timeout, `onConnect`, keepalive timer, close path) and one operation
 * bookkeeping; each adds its messages and frames.
 *
 * Invariants (for both subprotocols):
 * - A connection that sends no `connection_init` within `connectionInitTimeoutMs` is closed (4408).
 * - At most `maxSubscriptions` operations per connection; one more gets an error frame.
 * - Once the connection is closed, by either side, every operation is stopped and nothing more
 *   is written.
 * - A result frame is the subprotocol's envelope around the operation's id and the payload exactly
 *   as the engine serialized it (shared by all its clients): nothing per operation is stored for
 *   it, and the socket encodes the payload once per event (server/socket-writer.ts).
 * - Memory per connection is bounded: a result that finds more than `sendBufferLimitBytes`
 *   unsent closes the connection (4503) instead of queueing behind them.
 * - With `authenticate`, the `connection_init` is acknowledged only once the client's token is
 *   verified (or it may be anonymous); every operation of the connection runs as that identity.
 *   When the token expires, every running operation gets `TOKEN_EXPIRED` as its last result, then
 *   `complete`, and the connection is closed (4403 "Token expired"): the client reconnects with
 *   a fresh token. One timer per connection, gone with it.
 */
import type { GraphQLFormattedError } from 'graphql';
import type { GraphQLRequest, RequestContext } from '../engine/types.js';
import type { OperationService, Started } from '../subscriptions/service.js';
import type { AuthOutcome } from '../auth/authenticator.js';
import {
  ExpiryTimer,
  OperationRun,
  TOKEN_EXPIRED_RESULT,
  type DeliveryHooks,
  type Outlet,
} from './delivery.js';
import { INTERNAL_ERROR } from '../engine/limits.js';

/** The little a protocol needs from a WebSocket. */
export interface ProtocolSocket {
  /** Queues one text frame; never blocks. */
  send(text: string): void;
  /**
   * Queues the result frame `envelope.open + idJson + envelope.close + json + "}"`, where `json` is
   * the engine's result text, the same string for every client of an event: the socket may encode
   * it once for all of them.
   */
  sendResult(envelope: ResultEnvelope, idJson: string, json: string): void;
  close(code: number, reason: string): void;
  /** Bytes queued but not yet handed to the network. */
  bufferedAmount(): number;
}

/**
 * A subprotocol's result frame around the id and the payload (ASCII constants):
 * `open` + the id as JSON + `close` + the payload + "}".
 */
export interface ResultEnvelope {
  readonly open: string;
  readonly close: string;
}

/** One client connection as its transport sees it. */
export interface ProtocolConnection {
  /** What the protocol writes to (the transport's own socket object). */
  readonly socket: ProtocolSocket;
  /** One text frame from the client. */
  receive(text: string): void;
  /** Closes from the server side (e.g. shutdown, 1001); stops every operation first. */
  close(code: number, reason: string): void;
  /** The transport is closed (by either side). Idempotent. */
  closed(): void;
}

/** The close codes every subprotocol sends (graphql-ws's numbers). */
export const ConnectionCloseCode = {
  /** The token was refused, or expired while the connection was open. */
  Forbidden: 4403,
  ConnectionInitialisationTimeout: 4408,
  SlowConsumer: 4503,
} as const;

export interface ProtocolLimits {
  /** `connection_init` must arrive within this time (4408). */
  connectionInitTimeoutMs: number;
  /** The subprotocol's keepalive this often once acknowledged; 0 = never. */
  keepaliveIntervalMs: number;
  /** Operations per connection; one more gets an error message. */
  maxSubscriptions: number;
  /** Unsent bytes above which the client is a slow consumer (4503). */
  sendBufferLimitBytes: number;
  /**
   * Also server policy, shared by all connections: with `exportHeader`, the string under `key` in
   * the `connection_init` payload becomes that request header (lower case) of the connection's
   * operations (Cosmo's `from_initial_payload.export_token`).
   */
  initialPayloadToken?: { key: string; exportHeader?: string };
}

/** `false` refuses the init, an object becomes the ack's payload, anything else acknowledges plainly. */
export type ConnectDecision = boolean | Record<string, unknown> | void;

export interface ProtocolHooks extends DeliveryHooks {
  /** Decides on a `connection_init`. May be async: operations wait for the answer. */
  onConnect?(
    connectionParams: Record<string, unknown> | undefined,
  ): ConnectDecision | Promise<ConnectDecision>;
  /** This side closed the connection, with the code and reason the client sees. */
  onClose?(code: number, reason: string): void;
  /** The operation service threw or `onConnect` failed; the client got a generic error. */
  onInternalError?(err: unknown): void;
}

export interface ProtocolOptions {
  socket: ProtocolSocket;
  operations: OperationService;
  /** What the transport knows about the client (the upgrade request's headers). */
  context?: RequestContext;
  limits: ProtocolLimits;
  hooks: ProtocolHooks;
  /**
   * Decides who the client is from its `connection_init` payload (and what the transport kept of
   * the upgrade request); a refusal closes the connection before the ack. Absent = anonymous.
   */
  authenticate?(payload: Record<string, unknown> | undefined): Promise<AuthOutcome>;
}

/** The ack without a payload, in either subprotocol. */
export const CONNECTION_ACK = '{"type":"connection_ack"}';

/** One operation of a connection, under its id as JSON: the map key and the text in every frame. */
export class WsOperation extends OperationRun {
  constructor(
    private readonly connection: WsConnection,
    readonly idJson: string,
    /** Until the operation is started: the service keeps what it needs of it. */
    public request: GraphQLRequest | undefined,
  ) {
    super('pending');
  }

  protected get outlet(): Outlet {
    return this.connection;
  }

  protected onEnd(): void {
    this.connection.forget(this.idJson);
  }

  protected writeNext(json: string): void {
    const connection = this.connection;
    connection.socket.sendResult(connection.envelope, this.idJson, json);
  }

  protected writeError(errors: readonly GraphQLFormattedError[]): void {
    this.connection.sendErrors(this, errors);
  }

  protected writeComplete(): void {
    this.connection.sendComplete(this);
  }
}

/**
 * A connection's operations by id. Nearly every connection runs one operation, so the first lives
 * in a field and a Map (~180 bytes) exists only while there are more: this is per connection.
 */
export class OperationTable {
  private first: WsOperation | undefined;
  private rest: Map<string, WsOperation> | undefined;

  get size(): number {
    return (this.first ? 1 : 0) + (this.rest?.size ?? 0);
  }

  get(idJson: string): WsOperation | undefined {
    return this.first?.idJson === idJson ? this.first : this.rest?.get(idJson);
  }

  has(idJson: string): boolean {
    return this.get(idJson) !== undefined;
  }

  /** Adds an operation whose id is not taken; `values` keeps the order of adding. */
  add(operation: WsOperation): void {
    if (!this.first && !this.rest) this.first = operation;
    else (this.rest ??= new Map()).set(operation.idJson, operation);
  }

  delete(idJson: string): void {
    if (this.first?.idJson === idJson) this.first = undefined;
    else if (this.rest?.delete(idJson) && this.rest.size === 0) this.rest = undefined;
  }

  /** A snapshot in the order of adding: safe to end operations while iterating. */
  values(): WsOperation[] {
    const all = this.rest ? [...this.rest.values()] : [];
    if (this.first) all.unshift(this.first);
    return all;
  }
}

/** One connection of a subprotocol: the life every subprotocol shares. */
export abstract class WsConnection implements ProtocolConnection, Outlet {
  readonly socket: ProtocolSocket;
  protected readonly limits: ProtocolLimits;
  readonly hooks: ProtocolHooks;
  protected readonly operations = new OperationTable();
  protected init: 'none' | 'deciding' | 'acknowledged' = 'none';
  protected isClosed = false;
  private readonly service: OperationService;
  private context: RequestContext;
  private initTimer: ReturnType<typeof setTimeout> | undefined;
  private keepaliveTimer: ReturnType<typeof setInterval> | undefined;
  private readonly authenticate: ProtocolOptions['authenticate'];
  private expiry: ExpiryTimer | undefined;

  constructor(options: ProtocolOptions) {
    this.socket = options.socket;
    this.authenticate = options.authenticate;
    this.limits = options.limits;
    this.hooks = options.hooks;
    this.service = options.operations;
    this.context = options.context ?? {};
    this.initTimer = setTimeout(() => {
      if (this.init === 'none')
        this.close(ConnectionCloseCode.ConnectionInitialisationTimeout, 'Connection initialisation timeout');
    }, this.limits.connectionInitTimeoutMs);
    this.initTimer.unref?.();
  }

  abstract receive(text: string): void;

  // Outlet: where this connection's operations deliver.
  bufferedAmount(): number {
    return this.socket.bufferedAmount();
  }

  get sendBufferLimitBytes(): number {
    return this.limits.sendBufferLimitBytes;
  }

  drop(): void {
    this.close(
      ConnectionCloseCode.SlowConsumer,
      `slow consumer: send buffer over ${this.limits.sendBufferLimitBytes} bytes`,
    );
  }

  /** Frees the id of an operation that ended. */
  forget(idJson: string): void {
    this.operations.delete(idJson);
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
    this.expiry?.cancel();
    for (const operation of this.operations.values()) operation.cancel();
  }

  /** The token expired: running operations end with `TOKEN_EXPIRED`, then the connection closes. */
  private expire(): void {
    let ended = 0;
    for (const operation of this.operations.values()) if (operation.expire(TOKEN_EXPIRED_RESULT)) ended++;
    this.hooks.tokenExpired?.(ended);
    this.close(ConnectionCloseCode.Forbidden, 'Token expired');
  }

  /** `authenticate` refused the client's token (or its lack of one). */
  protected abstract unauthenticated(message: string): void;

  /** `onConnect` refused the init. */
  protected abstract forbidden(): void;
  /** `onConnect` threw or its promise rejected. */
  protected abstract connectFailed(err: unknown): void;
  /** The ack has been sent: the subprotocol's keepalive, held operations. */
  protected abstract acknowledged(): void;
  /** The subprotocol's result frame around the id and the payload. */
  abstract get envelope(): ResultEnvelope;
  /** The operation ended with GraphQL errors, or the service refused to start it. */
  abstract sendErrors(operation: WsOperation, errors: readonly GraphQLFormattedError[]): void;
  abstract sendComplete(operation: WsOperation): void;
  /** An operation could not be started (too many, an internal failure). */
  protected abstract sendStartError(idJson: string, message: string): void;

  /** The `connection_init` to decide on: `onConnect` answers, maybe later; the ack or a refusal follows. */
  protected initialise(payload: Record<string, unknown> | undefined): void {
    this.init = 'deciding';
    clearTimeout(this.initTimer);
    this.initTimer = undefined;
    if (payload) {
      const token = this.limits.initialPayloadToken;
      const value = token?.exportHeader ? payload[token.key] : undefined;
      const headers =
        typeof value === 'string'
          ? { ...this.context.headers, [token!.exportHeader!]: value }
          : this.context.headers;
      this.context = { ...this.context, headers, connectionParams: payload };
    }
    const authenticate = this.authenticate;
    if (!authenticate) return this.connect(payload);
    authenticate(payload).then(
      (outcome) => {
        if (this.isClosed) return;
        if (!outcome.ok) return this.unauthenticated(outcome.message);
        const auth = outcome.auth;
        if (auth) {
          this.context = { ...this.context, auth };
          if (auth.expiresAt !== undefined)
            this.expiry = new ExpiryTimer(auth.expiresAt, () => this.expire());
        }
        this.connect(payload);
      },
      (err: unknown) => this.connectFailed(err),
    );
  }

  /** `onConnect` decides on an authenticated (or anonymous) `connection_init`. */
  private connect(payload: Record<string, unknown> | undefined): void {
    let decision: ConnectDecision | Promise<ConnectDecision>;
    try {
      decision = this.hooks.onConnect?.(payload);
    } catch (err) {
      return this.connectFailed(err);
    }
    if (decision instanceof Promise)
      decision.then(
        (d) => this.acknowledge(d),
        (err: unknown) => this.connectFailed(err),
      );
    else this.acknowledge(decision);
  }

  private acknowledge(decision: ConnectDecision): void {
    if (this.isClosed) return;
    if (decision === false) return this.forbidden();
    this.init = 'acknowledged';
    this.socket.send(
      isObject(decision) ? JSON.stringify({ type: 'connection_ack', payload: decision }) : CONNECTION_ACK,
    );
    this.acknowledged();
  }

  /** Runs `beat` every `keepaliveIntervalMs` (and once at once, if asked) until the connection closes. */
  protected keepalive(beat: () => void, beatAtOnce = false): void {
    const every = this.limits.keepaliveIntervalMs;
    if (every <= 0) return;
    if (beatAtOnce) beat();
    this.keepaliveTimer = setInterval(beat, every);
    this.keepaliveTimer.unref?.();
  }

  /** A new, pending operation under `idJson`; none (and an error frame) beyond `maxSubscriptions`. */
  protected admit(idJson: string, request: GraphQLRequest): WsOperation | undefined {
    if (this.operations.size >= this.limits.maxSubscriptions) {
      this.sendStartError(
        idJson,
        `Too many operations on this connection: at most ${this.limits.maxSubscriptions} may be active at once (websocket.max_subscriptions_per_connection).`,
      );
      return undefined;
    }
    const operation = new WsOperation(this, idJson, request);
    this.operations.add(operation);
    return operation;
  }

  /** Starts a pending operation in the service. */
  protected run(operation: WsOperation): void {
    operation.state = 'starting';
    const request = operation.request!;
    operation.request = undefined;
    let started: Started;
    try {
      started = this.service.start(request, this.context, operation);
    } catch (err) {
      this.hooks.onInternalError?.(err);
      if (operation.finish()) this.sendErrors(operation, [INTERNAL_ERROR]);
      return;
    }
    if (!started.ok) {
      if (operation.finish()) this.sendErrors(operation, started.errors);
      return;
    }
    operation.started(started);
  }
}

/** WebSocket close reasons are at most 123 bytes of UTF-8. */
export function limitCloseReason(reason: string): string {
  if (Buffer.byteLength(reason) <= 123) return reason;
  let cut = reason.slice(0, 120);
  while (Buffer.byteLength(cut) > 120) cut = cut.slice(0, -1);
  // Never end on half of a surrogate pair.
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1);
  return `${cut}...`;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** An optional object field: absent, null or an object. */
export function isOptionalObject(value: unknown): value is Record<string, unknown> | null | undefined {
  return value === undefined || value === null || isObject(value);
}

/** The JSON type of a value, for messages: "null", "array", "string", ... */
export function typeName(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
}

/**
 * The GraphQL request in the payload of an operation message (`type`: "subscribe", "start"), or
 * what is wrong with it. Only the fields that were given are set, besides `operationName`.
 */
export function readRequest(type: string, payload: Record<string, unknown>): GraphQLRequest | string {
  const { query, operationName, variables, extensions } = payload;
  if (typeof query !== 'string') return `"${type}" payload.query must be a string, got ${typeName(query)}`;
  if (operationName !== undefined && operationName !== null && typeof operationName !== 'string')
    return `"${type}" payload.operationName must be a string, got ${typeName(operationName)}`;
  for (const [name, field] of [
    ['variables', variables],
    ['extensions', extensions],
  ] as const)
    if (!isOptionalObject(field))
      return `"${type}" payload.${name} must be an object, got ${typeName(field)}`;
  const request: GraphQLRequest = { query, operationName: (operationName as string | null) ?? null };
  if (isObject(variables)) request.variables = variables;
  if (isObject(extensions)) request.extensions = extensions;
  return request;
}
