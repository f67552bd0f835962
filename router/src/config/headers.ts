/**
 * The `headers` section: Cosmo's header rules as written, checked and turned into the
 * `HeaderRules` the engine applies (engine/headers.ts).
 *
 * A field that does not go with a rule's `op` is an error, not ignored: it would mean the rule
 * does something else than its author thinks.
 */
import type { Issues } from './issues.js';
import type { HeaderRule, HeaderRules, HeaderRulesFile, RouterConfigFile } from './types.js';

/** A `matching` pattern as written in the config: Go's leading `(?i)` is accepted, matching is case-insensitive. */
export function headerPattern(source: string): RegExp {
  return new RegExp(source.replace(/^\(\?i\)/, ''), 'i');
}

export function headersConfig(file: RouterConfigFile['headers'], issues: Issues): HeaderRules {
  return {
    all: headerRules(file?.all, 'headers.all', issues),
    subgraphs: Object.fromEntries(
      Object.entries(file?.subgraphs ?? {}).map(([name, rules]) => [
        name,
        headerRules(rules, `headers.subgraphs.${name}`, issues),
      ]),
    ),
  };
}

/**
 * One list of header rules: `propagate` takes `named` (with optional `rename`, `default`) or
 * `matching`; `set` takes `name` and `value`.
 */
function headerRules(file: HeaderRulesFile | undefined, path: string, issues: Issues): HeaderRule[] {
  const rules: HeaderRule[] = [];
  (file?.request ?? []).forEach((rule, i) => {
    const at = `${path}.request[${i}]`;
    const given = Object.keys(rule).filter((k) => k !== 'op');
    const refuse = (allowed: string[], hint: string) => {
      const extra = given.filter((k) => !allowed.includes(k));
      for (const key of extra)
        issues.push({ path: `${at}.${key}`, message: `does not go with op "${rule.op}" (${hint})` });
      return extra.length > 0;
    };
    if (rule.op === 'set') {
      if (refuse(['name', 'value'], 'set takes name and value')) return;
      if (rule.name === undefined || rule.value === undefined) {
        issues.push({ path: at, message: 'op "set" needs both name and value' });
        return;
      }
      rules.push({ op: 'set', name: rule.name, value: rule.value });
      return;
    }
    if (rule.named !== undefined && rule.matching !== undefined) {
      issues.push({ path: at, message: 'op "propagate" takes either named or matching, not both' });
      return;
    }
    if (rule.matching !== undefined) {
      if (refuse(['matching'], 'propagate by matching takes only the pattern')) return;
      try {
        rules.push({ op: 'propagate', matching: headerPattern(rule.matching) });
      } catch (err) {
        issues.push({
          path: `${at}.matching`,
          message: `is not a valid regular expression: ${(err as Error).message}`,
        });
      }
      return;
    }
    if (rule.named === undefined) {
      issues.push({
        path: at,
        message: 'op "propagate" needs named (a header name) or matching (a pattern)',
      });
      return;
    }
    if (refuse(['named', 'rename', 'default'], 'propagate by name takes named, rename and default')) return;
    rules.push({
      op: 'propagate',
      named: rule.named,
      ...(rule.rename !== undefined ? { rename: rule.rename } : {}),
      ...(rule.default !== undefined ? { default: rule.default } : {}),
    });
  });
  return rules;
}
