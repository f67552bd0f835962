/**
 * The messages subgraph's state: an in-memory store seeded with a short conversation in room
 * "123". Every stored message is also emitted as `messageAdded` on `events`, the hook the
 * event-driven part (publishing `{ __typename: "Message", id }` to the broker) attaches to.
 */
import { EventEmitter } from 'node:events';

const SEED = [
  { id: '1', roomID: '123', userID: '1', text: 'Hello, World!', createdAt: '2024-03-19T12:00:00.000Z' },
  {
    id: '2',
    roomID: '123',
    userID: '2',
    text: 'Hi Alice, welcome to the room.',
    createdAt: '2024-03-19T12:01:00.000Z',
  },
  {
    id: '3',
    roomID: '123',
    userID: '3',
    text: 'Good to see you both!',
    createdAt: '2024-03-19T12:02:30.000Z',
  },
  { id: '4', roomID: '456', userID: '2', text: 'Anyone here?', createdAt: '2024-03-19T12:05:00.000Z' },
];

export function createMessageStore() {
  const byId = new Map(SEED.map((m) => [m.id, { ...m }]));
  let nextId = SEED.length + 1;
  const events = new EventEmitter();
  return {
    events,
    get: (id) => byId.get(String(id)) ?? null,
    inRoom: (roomID) => [...byId.values()].filter((m) => m.roomID === String(roomID)),
    add({ roomID, text, userID }) {
      const message = {
        id: String(nextId++),
        roomID: String(roomID),
        userID: String(userID),
        text,
        createdAt: new Date().toISOString(),
      };
      byId.set(message.id, message);
      events.emit('messageAdded', message);
      return message;
    },
  };
}
