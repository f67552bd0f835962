/**
 * Kubernetes label selectors (metav1.LabelSelector) as a pure predicate, shared by `edfs compose`
 * and the Supergraph reconciler so both pick the same Subgraphs.
 *
 * Semantics follow Kubernetes: every `matchLabels` entry and every `matchExpressions` requirement
 * must hold (AND); an empty selector `{}` matches every object. An absent selector (`undefined`)
 * also matches everything: a Supergraph without `subgraphSelector` takes all Subgraphs of its
 * namespace.
 */
import type { LabelSelector, LabelSelectorRequirement } from '../api/v1alpha1.js';

export type Labels = Record<string, string> | undefined;

/** Thrown for a selector Kubernetes itself would reject; the message names the offending part. */
export class InvalidLabelSelectorError extends Error {
  override name = 'InvalidLabelSelectorError';
}

/**
 * True when `labels` satisfy `selector`. Throws InvalidLabelSelectorError for an unknown operator,
 * `In`/`NotIn` without values, or `Exists`/`DoesNotExist` with values, whatever the labels.
 */
export function matchesLabelSelector(selector: LabelSelector | undefined, labels: Labels): boolean {
  if (!selector) return true;
  const requirements = (selector.matchExpressions ?? []).map(checkRequirement);
  const actual = labels ?? {};
  const has = (key: string) => Object.prototype.hasOwnProperty.call(actual, key);
  return (
    Object.entries(selector.matchLabels ?? {}).every(
      ([key, value]) => has(key) && actual[key] === String(value),
    ) &&
    requirements.every(({ key, operator, values }) => {
      switch (operator) {
        case 'In':
          return has(key) && values.includes(actual[key] as string);
        case 'NotIn':
          return !has(key) || !values.includes(actual[key] as string);
        case 'Exists':
          return has(key);
        case 'DoesNotExist':
          return !has(key);
      }
    })
  );
}

function checkRequirement(
  requirement: LabelSelectorRequirement,
  index: number,
): Required<LabelSelectorRequirement> {
  const { key, operator } = requirement ?? {};
  const values = (requirement?.values ?? []).map(String);
  const where = `matchExpressions[${index}]`;
  if (typeof key !== 'string' || key === '') {
    throw new InvalidLabelSelectorError(`${where}: key is required`);
  }
  switch (operator) {
    case 'In':
    case 'NotIn':
      if (values.length === 0) {
        throw new InvalidLabelSelectorError(
          `${where} (key "${key}"): operator ${operator} needs at least one value`,
        );
      }
      break;
    case 'Exists':
    case 'DoesNotExist':
      if (values.length > 0) {
        throw new InvalidLabelSelectorError(`${where} (key "${key}"): operator ${operator} takes no values`);
      }
      break;
    default:
      throw new InvalidLabelSelectorError(
        `${where} (key "${key}"): unknown operator "${String(operator)}" (expected In, NotIn, Exists or DoesNotExist)`,
      );
  }
  return { key, operator, values };
}
