/**
 * The graph every system under test serves, and the bytes a client must receive.
 *
 * One subscription field on one NATS subject, one HTTP subgraph (`messages`) that owns every
 * other field, so each event costs exactly one entity join: `_entities` for the event's key.
 * Event ids have a fixed width (`m` + 9 digits), so every delivery frame has the same size and
 * the load generator can read an event's sequence number straight from the frame bytes.
 */

export const ROOM_ID = '123';
export const SUBJECT = `room.${ROOM_ID}.messages`;

/** The client's operation (identical for every subscriber, so ours forms one group). */
export const SUBSCRIPTION = `subscription { messageAdded(roomID: "${ROOM_ID}") { id text createdAt user { name } } }`;

/** The id every client uses for its one graphql-transport-ws operation. */
export const OPERATION_ID = '1';

/** Event-only subgraph for the EDFS router: the trigger and the entity's key, nothing else. */
export const EVENTS_SDL = /* GraphQL */ `
  type Subscription {
    messageAdded(roomID: ID!): Message!
      @edfs__natsSubscribe(subjects: ["room.{{ args.roomID }}.messages"], providerId: "default")
  }
  type Message @key(fields: "id", resolvable: false) {
    id: ID! @external
  }
`;

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
