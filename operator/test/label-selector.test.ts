import { describe, expect, it } from '@jest/globals';
import { InvalidLabelSelectorError, matchesLabelSelector } from '../src/compose/label-selector.js';

const labels = { graph: 'chat', team: 'messaging' };

describe('matchesLabelSelector', () => {
  it('matches everything when the selector is absent or empty', () => {
    expect(matchesLabelSelector(undefined, labels)).toBe(true);
    expect(matchesLabelSelector({}, labels)).toBe(true);
    expect(matchesLabelSelector({}, undefined)).toBe(true);
  });

  it('requires every matchLabels entry', () => {
    expect(matchesLabelSelector({ matchLabels: { graph: 'chat' } }, labels)).toBe(true);
    expect(matchesLabelSelector({ matchLabels: { graph: 'chat', team: 'messaging' } }, labels)).toBe(true);
    expect(matchesLabelSelector({ matchLabels: { graph: 'chat', team: 'users' } }, labels)).toBe(false);
    expect(matchesLabelSelector({ matchLabels: { graph: 'chat' } }, undefined)).toBe(false);
  });

  it('evaluates In, NotIn, Exists and DoesNotExist like Kubernetes', () => {
    const match = (operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist', key: string, values?: string[]) =>
      matchesLabelSelector({ matchExpressions: [{ key, operator, ...(values ? { values } : {}) }] }, labels);

    expect(match('In', 'team', ['users', 'messaging'])).toBe(true);
    expect(match('In', 'team', ['users'])).toBe(false);
    expect(match('In', 'stage', ['beta'])).toBe(false);
    expect(match('NotIn', 'team', ['users'])).toBe(true);
    expect(match('NotIn', 'team', ['messaging'])).toBe(false);
    expect(match('NotIn', 'stage', ['beta'])).toBe(true); // an absent label is "not in"
    expect(match('Exists', 'graph')).toBe(true);
    expect(match('Exists', 'stage')).toBe(false);
    expect(match('DoesNotExist', 'stage')).toBe(true);
    expect(match('DoesNotExist', 'graph')).toBe(false);
  });

  it('ANDs matchLabels and matchExpressions', () => {
    const selector = {
      matchLabels: { graph: 'chat' },
      matchExpressions: [{ key: 'team', operator: 'In' as const, values: ['users'] }],
    };
    expect(matchesLabelSelector(selector, labels)).toBe(false);
    expect(matchesLabelSelector(selector, { graph: 'chat', team: 'users' })).toBe(true);
  });

  it('rejects selectors Kubernetes would reject, whatever the labels', () => {
    const invalid = (requirement: Record<string, unknown>) => () =>
      matchesLabelSelector(
        { matchLabels: { absent: 'x' }, matchExpressions: [requirement as never] },
        labels,
      );

    expect(invalid({ key: 'team', operator: 'In', values: [] })).toThrow(
      new InvalidLabelSelectorError('matchExpressions[0] (key "team"): operator In needs at least one value'),
    );
    expect(invalid({ key: 'team', operator: 'Exists', values: ['x'] })).toThrow(
      'operator Exists takes no values',
    );
    expect(invalid({ key: 'team', operator: 'Equals', values: ['x'] })).toThrow('unknown operator "Equals"');
    expect(invalid({ operator: 'Exists' })).toThrow('matchExpressions[0]: key is required');
  });
});
