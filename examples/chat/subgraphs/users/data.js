/** The users subgraph's state: three seeded users. */
const SEED = [
  { id: '1', name: 'Alice', email: 'alice@wonderland.com' },
  { id: '2', name: 'Bob', email: 'bob@example.com' },
  { id: '3', name: 'Carol', email: 'carol@example.com' },
];

export function createUserStore() {
  const byId = new Map(SEED.map((u) => [u.id, { ...u }]));
  return {
    get: (id) => byId.get(String(id)) ?? null,
    all: () => [...byId.values()],
  };
}
