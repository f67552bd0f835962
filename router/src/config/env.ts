/**
 * `${NAME}` / `${NAME:-default}` expansion in values (never in keys). `$${` writes a literal `${`.
 *
 * Two steps, so that both of these hold:
 * - a reference may stand anywhere a value can, also unquoted inside a flow mapping
 *   (`authentication: { token: ${NATS_TOKEN} }`, where `{` would otherwise be YAML syntax): before
 *   parsing, every reference is replaced by a placeholder that is a plain YAML word;
 * - the variable's value is never read as YAML (a secret containing `#` or `: ` stays one value)
 *   and an unset variable is reported with the key that referenced it: placeholders are swapped
 *   for values in the parsed tree.
 */
import { randomBytes } from 'node:crypto';

export type Env = Record<string, string | undefined>;

interface Reference {
  /** The reference as written, e.g. `${NATS_TOKEN}`. */
  text: string;
  /** undefined for the `$${` escape. */
  name?: string;
  fallback?: string;
}

export interface ProtectedText {
  text: string;
  references: References;
}

export interface References {
  placeholder: RegExp;
  byIndex: Reference[];
}

const REFERENCE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}\n]*))?\}/g;

/** Replaces each reference in the YAML text by a placeholder word. */
export function protectReferences(text: string): ProtectedText {
  let prefix: string;
  do prefix = `edfsenv${randomBytes(4).toString('hex')}x`;
  while (text.includes(prefix));
  const byIndex: Reference[] = [];
  const replaced = text.replace(
    REFERENCE,
    (match, name: string | undefined, fallback: string | undefined) => {
      byIndex.push(name === undefined ? { text: match } : { text: match, name, fallback });
      return `${prefix}${byIndex.length - 1}x`;
    },
  );
  return { text: replaced, references: { placeholder: new RegExp(`${prefix}(\\d+)x`, 'g'), byIndex } };
}

export interface Expansion {
  value: unknown;
  /** Problems, each with the key path (as segments) where they occurred. */
  issues: { path: (string | number)[]; message: string }[];
  /** Keys whose whole value was a single reference; these may take the type the schema wants. */
  wholeValueRefs: Set<string>;
}

export function pathKey(path: readonly (string | number)[]): string {
  return JSON.stringify(path);
}

/**
 * Swaps placeholders for values. Strings that never went through `protectReferences` (objects
 * built in code) have their `${...}` references expanded directly.
 */
export function expandEnv(value: unknown, env: Env, references?: References): Expansion {
  const issues: Expansion['issues'] = [];
  const wholeValueRefs = new Set<string>();

  const resolve = (ref: Reference, path: (string | number)[]): string => {
    if (ref.name === undefined) return '${';
    const set = env[ref.name];
    if (ref.fallback !== undefined) return set === undefined || set === '' ? ref.fallback : set;
    if (set === undefined) {
      issues.push({
        path,
        message: `environment variable ${ref.name} is not set (set it, or write \${${ref.name}:-default} for a fallback)`,
      });
      return ref.text;
    }
    return set;
  };

  const expandString = (text: string, path: (string | number)[]): string => {
    const protectedText = references ? { text, references } : protectReferences(text);
    const { placeholder, byIndex } = protectedText.references;
    const input = protectedText.text;
    placeholder.lastIndex = 0;
    const whole = placeholder.exec(input);
    if (whole && whole[0] === input && byIndex[Number(whole[1])]?.name !== undefined)
      wholeValueRefs.add(pathKey(path));
    return input.replace(placeholder, (_m, index: string) => resolve(byIndex[Number(index)]!, path));
  };

  const restoreKey = (key: string): string =>
    references
      ? key.replace(references.placeholder, (_m, index: string) => references.byIndex[Number(index)]!.text)
      : key;

  const walk = (node: unknown, path: (string | number)[]): unknown => {
    if (typeof node === 'string') return expandString(node, path);
    if (Array.isArray(node)) return node.map((item, i) => walk(item, [...path, i]));
    if (node !== null && typeof node === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(node)) {
        const key = restoreKey(k);
        out[key] = walk(v, [...path, key]);
      }
      return out;
    }
    return node;
  };

  return { value: walk(value, []), issues, wholeValueRefs };
}
