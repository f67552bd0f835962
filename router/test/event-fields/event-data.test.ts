/**
 * An event stands in for the field's data and its key goes to subgraphs as a representation, so
 * every field the plan reads from it must be a value of its schema type: `{"$ne": 1}` is not an
 * `ID`. A wrong type makes the event invalid (INVALID_EVENT to its subscribers), like a missing key.
 */
import { describe, expect, it } from '@jest/globals';
import { buildSchema } from 'graphql';
import { checkEventData } from '../../src/event-fields/event-data.js';
import type { EventSource, SelField, SubSel } from '../../src/engine/plan.js';

const schema = buildSchema(`
  type Query { x: Int }
  type Subscription { messageAdded: Message  matchAdded: Match  thing: Thing }
  type Message { id: ID!  text: String }
  enum Color { RED GREEN }
  type MatchKey { league: String!  number: Int! }
  type Match { key: MatchKey!  score: Float  live: Boolean  color: Color  tags: [String!]  ids: [ID!]! }
  interface Thing { id: ID! }
  type Gadget implements Thing { id: ID!  weight: Int! }
`);

/** A selection of field names; a nested object for a field with a sub-selection. */
interface Shape {
  [field: string]: true | Shape;
}

function sel(shape: Shape, fragments: Record<string, Shape> = {}): SubSel {
  const fields = new Map<string, SelField>(
    Object.entries(shape).map(([name, sub]) => [
      name,
      { name, storeKey: name, args: [], ...(sub === true ? {} : { sel: sel(sub) }) },
    ]),
  );
  return { fields, fragments: new Map(Object.entries(fragments).map(([t, s]) => [t, sel(s)])) };
}

function source(fieldName: string, returnType: string): EventSource {
  return {
    type: 'subscribe',
    providerKind: 'nats',
    providerId: 'default',
    subjects: ['x'],
    parentType: 'Subscription',
    fieldName,
    responseKey: fieldName,
    args: [],
    returnType,
  };
}

const message = (data: unknown) =>
  checkEventData(schema, source('messageAdded', 'Message'), sel({ id: true }), data);

describe('event key fields are checked against their schema types', () => {
  it('an object where an ID! key is expected is an invalid event', () => {
    expect(message({ __typename: 'Message', id: { $ne: 1 } })).toBe(
      'the event for Message: field "id" must be a string or an integer (ID), not an object',
    );
  });

  it('an ID may be a string or an integer, as GraphQL serializes IDs', () => {
    expect(message({ __typename: 'Message', id: 'm1' })).toBeUndefined();
    expect(message({ __typename: 'Message', id: 7 })).toBeUndefined();
    expect(message({ __typename: 'Message', id: 1.5 })).toMatch(
      /"id" must be a string or an integer \(ID\), not a fraction/,
    );
    expect(message({ __typename: 'Message', id: ['m1'] })).toMatch(/not a list/);
    expect(message({ __typename: 'Message', id: true })).toMatch(/not true/);
  });

  it('null in a non-null key is invalid', () => {
    expect(message({ __typename: 'Message', id: null })).toBe(
      'the event for Message: field "id" is null, but its type ID! is non-null',
    );
  });

  it('fields the plan does not read are not checked (they are not used)', () => {
    expect(message({ __typename: 'Message', id: 'm1', text: { any: 'thing' } })).toBeUndefined();
  });

  const match = (data: Record<string, unknown>) =>
    checkEventData(
      schema,
      source('matchAdded', 'Match'),
      sel({
        key: { league: true, number: true },
        score: true,
        live: true,
        color: true,
        tags: true,
        ids: true,
      }),
      {
        __typename: 'Match',
        key: { league: 'L1', number: 3 },
        score: 1.5,
        live: true,
        color: 'RED',
        tags: [],
        ids: [],
        ...data,
      },
    );

  it('a nested key object, Int, Float, Boolean, enums and lists are checked too', () => {
    expect(match({})).toBeUndefined();
    expect(match({ key: 'L1-3' })).toMatch(/field "key" must be an object \(MatchKey\), not a string/);
    expect(match({ key: { league: 'L1', number: { $gt: 0 } } })).toMatch(
      /field "key\.number" must be a 32-bit integer \(Int\), not an object/,
    );
    expect(match({ key: { league: 'L1', number: 2 ** 31 } })).toMatch(
      /"key\.number" must be a 32-bit integer/,
    );
    expect(match({ score: '1.5' })).toMatch(/"score" must be a number \(Float\), not a string/);
    expect(match({ live: 'yes' })).toMatch(/"live" must be true or false \(Boolean\)/);
    expect(match({ color: 'BLUE' })).toMatch(/"color" must be one of the values of enum Color, not "BLUE"/);
    expect(match({ color: null })).toBeUndefined();
    expect(match({ tags: 'a' })).toMatch(/"tags" must be a list \(\[String!\]\), not a string/);
    expect(match({ tags: ['a', { b: 1 }] })).toMatch(
      /"tags\[1\]" must be a string \(String\), not an object/,
    );
    expect(match({ ids: [{ $ne: 1 }] })).toMatch(/"ids\[0\]" must be a string or an integer \(ID\)/);
  });

  it('an abstract field is checked against the concrete type the event names', () => {
    const thing = (data: unknown) =>
      checkEventData(schema, source('thing', 'Thing'), sel({ id: true }, { Gadget: { weight: true } }), data);
    expect(thing({ __typename: 'Gadget', id: 'g', weight: 3 })).toBeUndefined();
    expect(thing({ __typename: 'Gadget', id: { $ne: 1 }, weight: 3 })).toMatch(
      /"id" must be a string or an integer/,
    );
    expect(thing({ __typename: 'Gadget', id: 'g', weight: 'heavy' })).toMatch(
      /"weight" must be a 32-bit integer/,
    );
  });
});
