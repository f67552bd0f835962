/**
 * The employees subgraph's state: a handful of employees in memory (restarting resets them).
 * `update` applies the specification's `UpdateEmployeeInput` ({ name, email }): a name is split
 * at its first space into forename and surname.
 */
const SEED = [
  { id: 1, details: { forename: 'Jens', surname: 'Neuse' }, email: 'jens@example.com' },
  { id: 2, details: { forename: 'Dustin', surname: 'Deus' }, email: 'dustin@example.com' },
  { id: 3, details: { forename: 'Stefan', surname: 'Avram' }, email: 'stefan@example.com' },
  { id: 4, details: { forename: 'Björn', surname: 'Schwenzer' }, email: 'bjoern@example.com' },
  { id: 7, details: { forename: 'Suvij', surname: 'Surya' }, email: 'suvij@example.com' },
  { id: 11, details: { forename: 'Alexandra', surname: 'Neuse' }, email: 'alexandra@example.com' },
  { id: 12, details: { forename: 'David', surname: 'Stutt' }, email: 'david@example.com' },
];

export function createEmployeeStore() {
  const byId = new Map(SEED.map((e) => [e.id, { ...e, details: { ...e.details } }]));
  return {
    /** `id` may be the number or its string form (an ID argument arrives as a string). */
    get: (id) => byId.get(Number(id)) ?? null,
    all: () => [...byId.values()],
    /** Returns the updated employee, or null when there is none with this id. */
    update(id, { name, email } = {}) {
      const employee = byId.get(Number(id));
      if (!employee) return null;
      if (typeof name === 'string' && name.trim() !== '') {
        const [forename, ...rest] = name.trim().split(/\s+/);
        employee.details = { forename, surname: rest.length > 0 ? rest.join(' ') : employee.details.surname };
      }
      if (typeof email === 'string' && email.trim() !== '') employee.email = email.trim();
      return employee;
    },
  };
}
