import { describe, expect, it } from '@jest/globals';
import {
  compileFilter,
  FilterError,
  type SubscriptionFilterConditionJson,
} from '../../src/event-fields/filter.js';

/** IN condition as `edfs compose` writes it: fieldPath split, values as JSON text. */
function IN(fieldPath: string, values: unknown[]): SubscriptionFilterConditionJson {
  return { in: { fieldPath: fieldPath.split('.'), json: JSON.stringify(values) } };
}

function errorOf(condition: unknown): FilterError {
  try {
    compileFilter(condition, { field: 'Subscription.employeeUpdated' });
  } catch (error) {
    expect(error).toBeInstanceOf(FilterError);
    return error as FilterError;
  }
  throw new Error('expected a FilterError');
}

describe('IN conditions', () => {
  const filter = compileFilter(IN('id', [1, 3, 4, 7, 11]));

  it('an event whose field is one of the values passes', () => {
    expect(filter.matches({ __typename: 'Employee', id: 7 }, {})).toBe(true);
  });

  it('an event whose field is not one of the values is filtered out', () => {
    expect(filter.matches({ __typename: 'Employee', id: 2 }, {})).toBe(false);
  });

  it('an event without the field is filtered out', () => {
    expect(filter.matches({ __typename: 'Employee' }, {})).toBe(false);
    expect(filter.matches(null, {})).toBe(false);
    expect(filter.matches('not an object', {})).toBe(false);
  });

  it('an ID argument "1" matches the number 1 and the other way round', () => {
    const byArg = compileFilter(IN('id', ['{{ args.id }}']));
    expect(byArg.matches({ id: 1 }, { id: '1' })).toBe(true);
    expect(compileFilter(IN('id', [1])).matches({ id: '1' }, {})).toBe(true);
    expect(compileFilter(IN('price', ['1.50'])).matches({ price: 1.5 }, {})).toBe(true);
  });

  it('numeric comparison does not make other types equal', () => {
    expect(compileFilter(IN('flag', ['true'])).matches({ flag: true }, {})).toBe(false);
    expect(compileFilter(IN('name', ['null'])).matches({ name: null }, {})).toBe(false);
    expect(compileFilter(IN('name', [null])).matches({ name: null }, {})).toBe(true);
    expect(compileFilter(IN('code', ['01'])).matches({ code: 1 }, {})).toBe(false);
  });

  it('large integer IDs keep their digits', () => {
    const ids = compileFilter(IN('id', ['{{ args.id }}']));
    expect(ids.matches({ id: '12345678901234567891' }, { id: '12345678901234567890' })).toBe(false);
    expect(ids.matches({ id: '12345678901234567890' }, { id: '12345678901234567890' })).toBe(true);
  });

  it('a nested field path reaches into objects', () => {
    const nested = compileFilter(IN('dept.name', ['{{ args.name }}']));
    expect(nested.matches({ dept: { name: 'R&D' } }, { name: 'R&D' })).toBe(true);
    expect(nested.matches({ dept: null }, { name: 'R&D' })).toBe(false);
  });

  it('an object or a list at the field path matches nothing', () => {
    expect(compileFilter(IN('tags', ['a'])).matches({ tags: ['a'] }, {})).toBe(false);
    expect(compileFilter(IN('dept', [{ name: 'a' }])).matches({ dept: { name: 'a' } }, {})).toBe(false);
  });
});

describe('argument expansion', () => {
  const spec = compileFilter(IN('id', ['{{ args.firstIds }}', '{{ args.secondIds }}']));

  it('two list arguments merge into one set: firstIds [1, 12] and secondIds [2, 11] pass 1, 12, 2 and 11', () => {
    const args = { firstIds: ['1', '12'], secondIds: ['2', '11'] };
    for (const id of [1, 12, 2, 11]) expect(spec.matches({ id }, args)).toBe(true);
    for (const id of [3, 13]) expect(spec.matches({ id }, args)).toBe(false);
  });

  it('an absent argument adds nothing; the other values still count', () => {
    expect(spec.matches({ id: 2 }, { secondIds: ['2'] })).toBe(true);
    expect(spec.matches({ id: 1 }, {})).toBe(false);
  });

  it('nested input fields expand', () => {
    const nested = compileFilter(IN('tag', ['{{ args.input.tag }}']));
    expect(nested.matches({ tag: 'x' }, { input: { tag: 'x' } })).toBe(true);
    expect(nested.matches({ tag: 'x' }, { input: null })).toBe(false);
  });

  it('text around a template renders strings, one per list element', () => {
    const mixed = compileFilter(IN('key', ['user-{{ args.ids }}']));
    expect(mixed.matches({ key: 'user-2' }, { ids: [1, 2] })).toBe(true);
    expect(mixed.matches({ key: 'user-3' }, { ids: [1, 2] })).toBe(false);
  });

  it("bind applies one group's arguments once for many events", () => {
    const forGroup = spec.bind({ firstIds: ['5'] });
    expect([4, 5, 6].map((id) => forGroup({ id }))).toEqual([false, true, false]);
  });
});

describe('AND, OR and NOT', () => {
  // The shape `edfs compose` writes for
  //   { AND: [ { IN: { fieldPath: "id", values: ["{{ args.ids }}"] } },
  //            { NOT: { IN: { fieldPath: "dept.name", values: ["{{ args.name }}"] } } },
  //            { OR: [ { IN: { fieldPath: "tag", values: ["a"] } }, { IN: { fieldPath: "tag", values: ["b"] } } ] } ] }
  const condition = {
    and: [
      { in: { fieldPath: ['id'], json: '["{{ args.ids }}"]' } },
      { not: { in: { fieldPath: ['dept', 'name'], json: '["{{ args.name }}"]' } } },
      {
        or: [{ in: { fieldPath: ['tag'], json: '["a"]' } }, { in: { fieldPath: ['tag'], json: '["b"]' } }],
      },
    ],
  };
  const filter = compileFilter(condition);
  const args = { ids: ['1', '2'], name: 'Sales' };

  it('all parts must hold for AND', () => {
    expect(filter.matches({ id: 1, dept: { name: 'R&D' }, tag: 'a' }, args)).toBe(true);
    expect(filter.matches({ id: 3, dept: { name: 'R&D' }, tag: 'a' }, args)).toBe(false);
  });

  it('NOT inverts its condition', () => {
    expect(filter.matches({ id: 1, dept: { name: 'Sales' }, tag: 'a' }, args)).toBe(false);
    expect(filter.matches({ id: 1, tag: 'a' }, args)).toBe(true);
  });

  it('one part is enough for OR', () => {
    expect(filter.matches({ id: 2, dept: { name: 'R&D' }, tag: 'b' }, args)).toBe(true);
    expect(filter.matches({ id: 2, dept: { name: 'R&D' }, tag: 'c' }, args)).toBe(false);
  });

  it('reports every field path and argument it reads, once each', () => {
    expect(filter.fieldPaths()).toEqual([['id'], ['dept', 'name'], ['tag']]);
    expect(filter.argumentPaths()).toEqual([['ids'], ['name']]);
  });

  it('nests arbitrarily deep', () => {
    const deep = compileFilter({
      not: { not: { or: [{ and: [IN('a', [1]), IN('b', [2])] }, IN('c', [3])] } },
    });
    expect(deep.matches({ a: 1, b: 2 }, {})).toBe(true);
    expect(deep.matches({ c: 3 }, {})).toBe(true);
    expect(deep.matches({ a: 1 }, {})).toBe(false);
  });
});

describe('malformed conditions fail at compile time with the path to fix', () => {
  it('an unknown key', () => {
    const error = errorOf({ IN: { fieldPath: ['id'], json: '[1]' } });
    expect(error.message).toBe(
      'subscription filter of Subscription.employeeUpdated: condition: unknown key "IN"; a condition has exactly one of "in", "and", "or", "not"',
    );
  });

  it('two kinds in one condition', () => {
    expect(errorOf({ ...IN('id', [1]), not: IN('id', [2]) }).message).toContain('found "in" and "not"');
  });

  it('an empty condition', () => {
    expect(errorOf({}).message).toContain('empty condition');
  });

  it('an empty AND list, with its path', () => {
    const error = errorOf({ or: [IN('id', [1]), { and: [] }] });
    expect(error.path).toBe('condition.or[1].and');
    expect(error.message).toContain('non-empty list');
  });

  it('json that is not JSON', () => {
    const error = errorOf({ not: { in: { fieldPath: ['id'], json: '[1,' } } });
    expect(error.path).toBe('condition.not.in.json');
    expect(error.message).toContain('is not valid JSON');
  });

  it('json that is not a list', () => {
    expect(errorOf({ in: { fieldPath: ['id'], json: '1' } }).message).toContain('expected a JSON list');
  });

  it('a missing or empty fieldPath', () => {
    expect(errorOf({ in: { json: '[1]' } }).path).toBe('condition.in.fieldPath');
    expect(errorOf({ in: { fieldPath: [], json: '[1]' } }).path).toBe('condition.in.fieldPath');
    expect(errorOf({ in: { fieldPath: 'id', json: '[1]' } }).path).toBe('condition.in.fieldPath');
  });

  it('a template other than args.x', () => {
    const error = errorOf(IN('id', ['{{ vars.id }}']));
    expect(error.path).toBe('condition.in.json[0]');
    expect(error.message).toContain('"{{ vars.id }}" is not supported');
  });

  it('something that is not a condition at all', () => {
    expect(errorOf('in').message).toContain('expected an object');
    expect(errorOf({ and: [null] }).path).toBe('condition.and[0]');
  });
});
