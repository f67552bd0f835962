/**
 * Printing: the subgraph operation text of each fetch, with the variable definitions its
 * arguments use. Root fetches print their selection under the operation type; entity fetches
 * print one `_entities(representations: ...)` field per call (see `batching.ts`).
 *
 * Invariants: the text is a pure function of the plan, so equal plans print equal text (the plan
 * cache and subgraph-side caches rely on it). Fields are stored under their store keys and
 * printed under them (an alias where the store key is not the field name); the one exception is
 * sibling type fragments that select one key with different types in the subgraph: those are
 * printed under a derived alias and recorded as `Rename`s for the executor to undo.
 */
import { print, type ArgumentNode, type VariableDefinitionNode } from 'graphql';
import type { Fetch, Rename, SelField, SubSel } from '../plan.js';
import type { PlanContext } from './context.js';

/** Sets `query` on every fetch (and drops empty `renames`), once planning and batching are done. */
export function printFetches(ctx: PlanContext): void {
  for (const f of ctx.fetches) {
    f.query = printFetch(ctx, f);
    if (f.renames?.length === 0) delete f.renames;
  }
}

function printFetch(ctx: PlanContext, fetch: Fetch): string {
  const defs = ctx.operation.variableDefinitions ?? [];
  const used = defs.filter((d) => fetch.variables.has(d.variable.name.value));
  // The default stays with the definition: a nullable variable with a default may fill a
  // non-null argument, which the subgraph only accepts when it sees the default too.
  const varDefs = used.map(
    (d: VariableDefinitionNode) =>
      `$${d.variable.name.value}: ${print(d.type)}${d.defaultValue ? ` = ${print(d.defaultValue)}` : ''}`,
  );
  const opName = ctx.operation.name
    ? ` ${ctx.operation.name.value}__${safeName(fetch.subgraph.name)}__${fetch.id}`
    : '';
  if (fetch.kind === 'root') {
    const head = varDefs.length ? `(${varDefs.join(', ')})` : '';
    return `${fetch.operationType}${opName}${head} ${printSubSel(fetch.sel, false, aliasing(ctx, fetch, (fetch.renames ??= [])))}`;
  }
  const calls = fetch.calls!;
  const head = [...calls.map((c) => `$${c.variable}: [_Any!]!`), ...varDefs].join(', ');
  const fields = calls.map((c) => {
    const renames: Rename[] = [];
    const sel = printSubSel(c.sel, true, aliasing(ctx, fetch, renames));
    if (renames.length > 0) c.renames = renames;
    const alias = c.responseKey === '_entities' ? '' : `${c.responseKey}: `;
    return `${alias}_entities(representations: $${c.variable}) ${sel}`;
  });
  return `query${opName}(${head}) { ${fields.join(' ')} }`;
}

function safeName(name: string): string {
  return name.replace(/[^_0-9A-Za-z]/g, '_');
}

interface Aliasing {
  /** Response keys from the fetch's data root to the selection being printed. */
  path: string[];
  renames: Rename[];
  /** The field's type in the subgraph, printed (`ID!`, `[Account!]!`). */
  typeOf(typeName: string, field: string): string | undefined;
}

/** Lets printSubSel alias same-key fields of sibling fragments whose types differ in the subgraph. */
function aliasing(ctx: PlanContext, fetch: Fetch, renames: Rename[]): Aliasing {
  const own = fetch.subgraph.schema;
  return {
    path: [],
    renames,
    typeOf: (typeName, field) => {
      const t = own?.getType(typeName) ?? ctx.schema.getType(typeName);
      if (!t || !('getFields' in t)) return undefined;
      return (t.getFields() as Record<string, { type: unknown } | undefined>)[field]?.type?.toString();
    },
  };
}

/**
 * Sibling fragments on different object types may select one response key with different types
 * (`... on User { id } ... on Admin { id }` with `ID!` and `ID`): valid in the supergraph, where
 * the client's key names one value per object, but a subgraph rejects it ("fields conflict").
 * Those fields get an alias named after their type; the executor renames them back.
 */
function conflictingKeys(sub: SubSel, aliasing: Aliasing): Map<string, Map<string, string>> | undefined {
  if (sub.fragments.size < 2) return undefined;
  const types = new Map<string, Map<string, string>>(); // storeKey -> fragment type -> field type
  for (const [typeName, frag] of sub.fragments)
    for (const f of frag.fields.values()) {
      const t = aliasing.typeOf(typeName, f.name);
      if (t === undefined) continue;
      let byType = types.get(f.storeKey);
      if (!byType) types.set(f.storeKey, (byType = new Map()));
      byType.set(typeName, t);
    }
  let out: Map<string, Map<string, string>> | undefined;
  for (const [key, byType] of types)
    if (new Set(byType.values()).size > 1) (out ??= new Map()).set(key, byType);
  return out;
}

export function printArgs(args: readonly ArgumentNode[]): string {
  return args.length ? `(${args.map((a) => print(a)).join(', ')})` : '';
}

/**
 * A subgraph selection as GraphQL text, `__typename` first when `typename` is set (entity and
 * nested selections). Without `aliasing`, conflicting sibling fragments are printed unaliased:
 * that form serves only as a signature of the selection (see `batching.ts`).
 */
export function printSubSel(sub: SubSel, typename: boolean, aliasing?: Aliasing): string {
  const parts: string[] = typename ? ['__typename'] : [];
  const printFields = (
    fields: Map<string, SelField>,
    fragmentType?: string,
    conflicts?: Map<string, Map<string, string>>,
  ) => {
    for (const f of fields.values()) {
      let key = f.storeKey;
      const fieldType = fragmentType ? conflicts?.get(f.storeKey)?.get(fragmentType) : undefined;
      if (fieldType !== undefined) {
        key = `${f.storeKey}__edfs_${fieldType.replace(/!/g, 'N').replace(/\[/g, 'L').replace(/\W/g, '')}`;
        aliasing!.renames.push({
          path: aliasing!.path,
          typename: fragmentType!,
          alias: key,
          key: f.storeKey,
        });
      }
      const alias = key !== f.name ? `${key}: ` : '';
      const child = f.sel
        ? ' ' + printSubSel(f.sel, true, aliasing && { ...aliasing, path: [...aliasing.path, key] })
        : '';
      parts.push(`${alias}${f.name}${printArgs(f.args)}${child}`);
    }
  };
  printFields(sub.fields);
  const conflicts = aliasing && conflictingKeys(sub, aliasing);
  for (const [type, frag] of sub.fragments) {
    if (frag.fields.size === 0 && frag.fragments.size === 0) continue;
    const inner: string[] = [];
    const saved = parts.splice(0);
    printFields(frag.fields, type, conflicts);
    inner.push(...parts.splice(0));
    for (const [t2, f2] of frag.fragments) {
      if (f2.fields.size === 0 && f2.fragments.size === 0) continue;
      inner.push(`... on ${t2} ${printSubSel(f2, false, aliasing)}`);
    }
    parts.push(...saved, `... on ${type} { ${inner.join(' ')} }`);
  }
  return `{ ${parts.join(' ')} }`;
}
