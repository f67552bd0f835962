/**
 * The seam between a WebSocket subprotocol's state machine (graphql-transport-ws, the legacy
 * graphql-ws) and its transport (server/websocket.ts): what a protocol needs from a socket, and
 * what it offers back for one connection. Both subprotocols share it, so the transport treats them
 * alike: same frame flow, same close path, same send-buffer accounting.
 */

/** The little a protocol needs from a WebSocket. */
export interface ProtocolSocket {
  /** Queues one text frame; never blocks. */
  send(text: string): void;
  close(code: number, reason: string): void;
  /** Bytes queued but not yet handed to the network. */
  bufferedAmount(): number;
}

/** One client connection as its transport sees it. */
export interface ProtocolConnection {
  /** One text frame from the client. */
  receive(text: string): void;
  /** Closes from the server side (e.g. shutdown, 1001); stops every operation first. */
  close(code: number, reason: string): void;
  /** The transport is closed (by either side). Idempotent. */
  closed(): void;
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

/** The JSON type of a value, for messages: "null", "array", "string", ... */
export function typeName(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
}
