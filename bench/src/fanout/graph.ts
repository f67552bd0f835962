/**
 * The graph every system under test serves, and the bytes a client must receive.
 *
 * One subscription field on one NATS subject, one HTTP subgraph (`messages`) that owns every
 * other field, so each event costs exactly one entity join: `_entities` for the event's key.
 * Event ids have a fixed width (`m` + 9 digits), so every delivery frame without `extensions`
 * has the same size, and the load generator reads an event's sequence number straight from the
 * frame bytes (it sits before any `extensions`).
 *
 * The resumable variant (`STREAM_EVENTS_SDL`) reads the same subject from a JetStream stream:
 * the same result, plus an opaque cursor in `extensions.cursor` of every result (FrameShape).
 */

export const ROOM_ID = '123';
export const SUBJECT = `room.${ROOM_ID}.messages`;

/** The client's operation (identical for every subscriber, so ours forms one group). */
export const SUBSCRIPTION = `subscription { messageAdded(roomID: "${ROOM_ID}") { id text createdAt user { name } } }`;

/** The id every client uses for its one graphql-transport-ws operation. */
export const OPERATION_ID = '1';

/** A graphql-transport-ws `subscribe` of SUBSCRIPTION; with `cursor`, a resume from there. */
export function subscribeFrame(cursor?: string): string {
  return JSON.stringify({
    id: OPERATION_ID,
    type: 'subscribe',
    payload: { query: SUBSCRIPTION, ...(cursor ? { extensions: { cursor } } : {}) },
  });
}

/**
 * Event-only subgraph for the EDFS router: the trigger and the entity's key, nothing else.
 * `stream` reads the subject from that JetStream stream instead of core NATS.
 */
function eventsSdl(stream?: string): string {
  const streamArgument = stream
    ? `, streamConfiguration: { consumerName: "fanout", streamName: "${stream}" }`
    : '';
  // Composition wants the input type declared by the subgraph that uses it (as Cosmo does).
  const streamInput = stream
    ? `
  input edfs__NatsStreamConfiguration {
    consumerInactiveThreshold: Int! = 30
    consumerName: String!
    streamName: String!
  }`
    : '';
  return /* GraphQL */ `
  type Subscription {
    messageAdded(roomID: ID!): Message!
      @edfs__natsSubscribe(subjects: ["room.{{ args.roomID }}.messages"], providerId: "default"${streamArgument})
  }
  type Message @key(fields: "id", resolvable: false) {
    id: ID! @external
  }${streamInput}
`;
}

export const EVENTS_SDL = eventsSdl();

/** The JetStream stream the resumable variant reads; the bench creates it on its nats-server. */
export const STREAM_NAME = 'FANOUT';

/**
 * The same field on the same subject, read from the stream through a durable consumer: the
 * router then puts a cursor in every result.
 */
export const STREAM_EVENTS_SDL = eventsSdl(STREAM_NAME);

/** The one HTTP subgraph: resolves any message id. */
export const MESSAGES_SDL = /* GraphQL */ `
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])
  type Query {
    message(id: ID!): Message
  }
  type Message @key(fields: "id") {
    id: ID!
    text: String!
    createdAt: String!
    user: User!
  }
  type User {
    id: ID!
    name: String!
  }
`;

/** What the naive baseline asks the subgraph for, per client and event (the router's fetch). */
export const ENTITY_QUERY =
  'query($representations:[_Any!]!){_entities(representations:$representations){...on Message{text createdAt user{name}}}}';

/** The naive baseline's own schema: the same fields, resolved by calling the subgraph. */
export const NAIVE_SDL = /* GraphQL */ `
  type Query {
    health: Boolean
  }
  type Subscription {
    messageAdded(roomID: ID!): Message!
  }
  type Message {
    id: ID!
    text: String!
    createdAt: String!
    user: User!
  }
  type User {
    name: String!
  }
`;

const TEXT = 'The quick brown fox jumps over the lazy dog; every subscriber sees this line.';
const CREATED_AT = '2025-01-01T12:00:00.000Z';

export interface MessageEntity {
  id: string;
  text: string;
  createdAt: string;
  user: { id: string; name: string };
}

export function messageEntity(id: string): MessageEntity {
  return { id, text: TEXT, createdAt: CREATED_AT, user: { id: 'u1', name: 'Alice' } };
}

const ID_DIGITS = 9;

export function eventId(seq: number): string {
  return `m${String(seq).padStart(ID_DIGITS, '0')}`;
}

/** The broker message a backend service would publish: the entity's type and key. */
export function eventJson(seq: number): string {
  return JSON.stringify({ __typename: 'Message', id: eventId(seq) });
}

/** The exact graphql-transport-ws `next` frame a subscriber must receive for event `seq`. */
export function expectedFrame(seq: number): string {
  const { user, ...message } = messageEntity(eventId(seq));
  const payload = { data: { messageAdded: { ...message, user: { name: user.name } } } };
  return JSON.stringify({ id: OPERATION_ID, type: 'next', payload });
}

/**
 * What the result frames of a system look like besides the data, which is always exactly that of
 * `expectedFrame`:
 * - `plain`: nothing else (the baselines);
 * - `at-most-once`: a client's first result says `"extensions":{"delivery":"at-most-once"}`
 *   (the router on core NATS, which keeps no events to replay), the others are plain;
 * - `cursor`: every result carries `"extensions":{"cursor":"..."}` (the router on a stream).
 */
export type FrameShape = 'plain' | 'at-most-once' | 'cursor';

const CURSOR_OPEN = ',"extensions":{"cursor":"';
const CURSOR_CLOSE = '"}}}';
const CURSOR_TEXT = /^[A-Za-z0-9_-]+$/;

/**
 * Why `text` is not the frame of event `seq` in `shape` (a client's `first` result or a later
 * one), or undefined when it is: byte for byte, but for the cursor's own text, which is opaque.
 */
export function frameMismatch(
  shape: FrameShape,
  text: string,
  seq: number,
  first: boolean,
): string | undefined {
  const plain = expectedFrame(seq);
  if (shape === 'plain' || (shape === 'at-most-once' && !first))
    return text === plain ? undefined : 'not the expected frame';
  if (shape === 'at-most-once')
    return text === `${plain.slice(0, -2)},"extensions":{"delivery":"at-most-once"}}}`
      ? undefined
      : 'not the expected frame with the at-most-once notice';
  const cursor = cursorIn(text);
  if (cursor === undefined) return 'no extensions.cursor at the end of the result';
  return text === `${plain.slice(0, -2)}${CURSOR_OPEN}${cursor}${CURSOR_CLOSE}`
    ? undefined
    : 'extensions.cursor present, but the rest differs from the expected frame';
}

/** The cursor at the end of a result frame (`..."extensions":{"cursor":"X"}}}`), if any. */
export function cursorIn(text: string): string | undefined {
  if (!text.endsWith(CURSOR_CLOSE)) return undefined;
  const at = text.lastIndexOf(CURSOR_OPEN);
  if (at < 0) return undefined;
  const cursor = text.slice(at + CURSOR_OPEN.length, -CURSOR_CLOSE.length);
  return CURSOR_TEXT.test(cursor) ? cursor : undefined;
}

/** The bare-ws server's frame template: the same bytes, with the id left to fill in. */
export const ID_PLACEHOLDER = '{{ID}}';
export function frameTemplate(): string {
  return expectedFrame(0).replace(eventId(0), ID_PLACEHOLDER);
}

const MARKER = Buffer.from('"messageAdded":{"id":"m');

/** The event sequence number in a delivery frame, or -1 when the frame carries none. */
export function sequenceOf(frame: Buffer): number {
  const at = frame.indexOf(MARKER);
  if (at < 0) return -1;
  let seq = 0;
  const start = at + MARKER.length;
  for (let i = start; i < start + ID_DIGITS; i++) {
    const d = frame[i]! - 48;
    if (d < 0 || d > 9) return -1;
    seq = seq * 10 + d;
  }
  return seq;
}
