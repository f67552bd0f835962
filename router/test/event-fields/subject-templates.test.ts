import { describe, expect, it } from '@jest/globals';
import {
  renderSubject,
  renderSubjects,
  templateArguments,
} from '../../src/event-fields/subject-templates.js';
import { SubjectError } from '../../src/events/subjects.js';

function errorOf(run: () => unknown): SubjectError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(SubjectError);
    return error as SubjectError;
  }
  throw new Error('expected a SubjectError');
}

describe('rendering subject templates', () => {
  it('an argument fills its template: employeeID 1 subscribes to employeeUpdated.1', () => {
    expect(renderSubject('employeeUpdated.{{ args.employeeID }}', { employeeID: '1' })).toBe(
      'employeeUpdated.1',
    );
  });

  it('whitespace inside the braces does not matter', () => {
    expect(renderSubject('a.{{args.id}}.{{   args.id   }}', { id: 'x' })).toBe('a.x.x');
  });

  it('nested input fields are reachable', () => {
    expect(renderSubject('room.{{ args.input.room }}.messages', { input: { room: 'lobby' } })).toBe(
      'room.lobby.messages',
    );
  });

  it('numbers and booleans render as their text', () => {
    expect(renderSubject('n.{{ args.n }}.{{ args.b }}', { n: 42, b: false })).toBe('n.42.false');
    expect(renderSubject('n.{{ args.n }}', { n: -3 })).toBe('n.-3');
  });

  it('a template without arguments is returned as written, wildcards included', () => {
    expect(renderSubject('employees.*', {})).toBe('employees.*');
    expect(renderSubject('employees.>', {})).toBe('employees.>');
  });

  it('renders every subject of a directive in order', () => {
    expect(renderSubjects(['a.{{ args.id }}', 'b.{{ args.id }}'], { id: '7' })).toEqual(['a.7', 'b.7']);
  });

  it('lists the arguments a template uses', () => {
    expect(templateArguments('a.{{ args.id }}.{{ args.input.room }}')).toEqual([['id'], ['input', 'room']]);
  });
});

describe('argument values that would widen or break a NATS subject are refused', () => {
  const template = 'employeeUpdated.{{ args.id }}';

  it.each([
    ['*', 'widen'],
    ['>', 'widen'],
    ['a*', 'widen'],
    ['1.2', "change the subject's tokens"],
    ['a b', 'whitespace'],
    ['tab\there', 'whitespace'],
    ['line\nbreak', 'whitespace'],
  ])('the value %j is refused, naming the argument and the template', (value, why) => {
    const error = errorOf(() => renderSubject(template, { id: value }));
    expect(error.message).toContain('argument "id"');
    expect(error.message).toContain(`"${template}"`);
    expect(error.message).toContain(why);
    expect(error.argument).toBe('id');
    expect(error.subject).toBe(template);
  });

  it('an empty string is refused', () => {
    expect(errorOf(() => renderSubject(template, { id: '' })).message).toContain('is empty');
  });

  it('a missing argument is refused', () => {
    expect(errorOf(() => renderSubject(template, {})).message).toContain('has no value');
  });

  it('null is refused', () => {
    expect(errorOf(() => renderSubject(template, { id: null })).message).toContain('is null');
  });

  it('lists and objects are refused: only scalars can be part of a subject', () => {
    expect(errorOf(() => renderSubject(template, { id: ['1', '2'] })).message).toContain('is a list');
    expect(errorOf(() => renderSubject(template, { id: { a: 1 } })).message).toContain('is an object');
  });

  it('a fractional number is refused for NATS (its "." would add a token)', () => {
    expect(errorOf(() => renderSubject(template, { id: 1.5 })).message).toContain('"."');
  });

  it('non-finite numbers are refused', () => {
    expect(errorOf(() => renderSubject(template, { id: Number.NaN })).message).toContain('finite');
  });

  it('a nested path that does not exist names the full path', () => {
    const error = errorOf(() => renderSubject('r.{{ args.input.room }}', { input: {} }));
    expect(error.argument).toBe('input.room');
  });
});

describe('template syntax', () => {
  it('expressions other than args.x are refused instead of passed through', () => {
    expect(errorOf(() => renderSubject('a.{{ vars.id }}', {})).message).toContain(
      '"{{ vars.id }}" is not supported',
    );
  });

  it('an unclosed template is refused', () => {
    expect(errorOf(() => renderSubject('a.{{ args.id', { id: '1' })).message).toContain('unclosed');
  });

  it('a template that renders to an invalid subject is refused with the rendered subject', () => {
    const error = errorOf(() => renderSubject('a..{{ args.id }}', { id: '1' }));
    expect(error.message).toContain('"a..1"');
    expect(error.message).toContain('token 2 is empty');
  });

  it('publish templates can forbid wildcards', () => {
    expect(errorOf(() => renderSubject('a.*', {}, 'nats', { allowWildcards: false })).message).toContain(
      'wildcard "*" is not allowed',
    );
  });
});

describe('Kafka topics', () => {
  it('allow letters, digits, ".", "_" and "-" in values', () => {
    expect(renderSubject('employee-{{ args.id }}', { id: 'a.b_c-1' }, 'kafka')).toBe('employee-a.b_c-1');
    expect(renderSubject('prices.{{ args.p }}', { p: 1.5 }, 'kafka')).toBe('prices.1.5');
  });

  it('refuse other characters, naming the argument and the topic template', () => {
    const error = errorOf(() => renderSubject('employee-{{ args.id }}', { id: 'a/b' }, 'kafka'));
    expect(error.message).toContain('argument "id" of topic template "employee-{{ args.id }}"');
  });
});
