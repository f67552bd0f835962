/**
 * Entity fetch batching. The walk plans one entity fetch per (parent fetch, path, subgraph);
 * here every entity fetch of one subgraph at one planning step (its depth in the dependency
 * graph) becomes one Fetch: one request, whatever the number of aliases, list items or sibling
 * paths that need the subgraph at that step. A merged fetch waits for every fetch its parts
 * waited for; all of those are at earlier steps, so nothing new can wait for it in a cycle (the
 * price: a path below a fast root fetch may wait for a slow one of another subgraph).
 *
 * In that request, parts share one `_entities` field, and so their representations are sent
 * once, when their selections are identical (the same fields at two aliases or two sibling
 * paths) or concern disjoint types (`... on User` and `... on Product`). A type selected
 * differently at two paths gets another `_entities` field (aliased) in the same request instead
 * of a merged selection: a merged selection would apply one path's fields to the other path's
 * representations, and a field that `@requires` what that representation does not carry, or a
 * non-null field that fails, would null an entity the other path needed intact.
 *
 * Invariants: runs once, after the walk and before printing; sets `calls` on every entity fetch
 * it keeps; the fetch list keeps its order minus the merged fetches, and no dependency points at
 * a merged fetch afterwards. Fetch ids are not renumbered.
 */
import { isAbstractType } from 'graphql';
import type { EntityCall, EntityPart, Fetch } from '../plan.js';
import { newSubSel, type PlanContext } from './context.js';
import { printSubSel } from './print.js';

export function batchEntityFetches(ctx: PlanContext): void {
  const level = new Map<Fetch, number>();
  const levelOf = (f: Fetch): number => {
    let l = level.get(f);
    if (l === undefined) {
      l = 0;
      for (const d of f.deps) l = Math.max(l, levelOf(d) + 1);
      level.set(f, l);
    }
    return l;
  };
  const batches = new Map<string, Fetch[]>();
  for (const f of ctx.fetches) {
    if (f.kind !== 'entity' || f.event) continue;
    const key = ctx.options.batchEntities === false ? `#${f.id}` : `${f.subgraph.name}\n${levelOf(f)}`;
    const batch = batches.get(key);
    if (batch) batch.push(f);
    else batches.set(key, [f]);
  }
  const mergedInto = new Map<Fetch, Fetch>();
  const defs = ctx.operation.variableDefinitions ?? [];
  const taken = new Set(defs.map((d) => d.variable.name.value));
  for (const batch of batches.values()) {
    const head = batch[0]!;
    const drafts: { call: EntityCall; kinds: { sig: string; types: Set<string> }[] }[] = [];
    for (const f of batch) {
      const sig = printSubSel(f.sel, true);
      const types = touchedTypes(ctx, f);
      let draft = drafts.find((d) => d.kinds.every((k) => k.sig === sig || disjoint(k.types, types)));
      if (!draft) {
        const n = drafts.length;
        let variable = n === 0 ? 'representations' : `_edfs_representations_${n}`;
        while (taken.has(variable)) variable = `_edfs_${variable}`;
        draft = {
          call: {
            responseKey: n === 0 ? '_entities' : `_edfs_entities_${n}`,
            variable,
            sel: newSubSel(),
            parts: [],
          },
          kinds: [],
        };
        drafts.push(draft);
      }
      if (!draft.kinds.some((k) => k.sig === sig)) {
        draft.kinds.push({ sig, types });
        // Other kinds concern disjoint types: their fragments never collide (top-level fields
        // make a part disjoint from none, so they are never merged with others).
        for (const [t, frag] of f.sel.fragments) draft.call.sel.fragments.set(t, frag);
        for (const [k, field] of f.sel.fields) draft.call.sel.fields.set(k, field);
      }
      const part: EntityPart = { path: f.path, targets: f.targets };
      if (f.resolvesTypename) part.resolvesTypename = true;
      draft.call.parts.push(part);
      if (f !== head) {
        mergedInto.set(f, head);
        for (const d of f.deps) head.deps.add(d);
        for (const v of f.variables) head.variables.add(v);
      }
    }
    head.calls = drafts.map((d) => d.call);
  }
  if (mergedInto.size === 0) return;
  const kept = ctx.fetches.filter((f) => !mergedInto.has(f));
  for (const f of kept) {
    const deps = new Set<Fetch>();
    for (const d of f.deps) {
      const to = mergedInto.get(d) ?? d;
      if (to !== f) deps.add(to);
    }
    f.deps = deps;
  }
  ctx.fetches.splice(0, ctx.fetches.length, ...kept);
}

/**
 * Every type whose objects an entity fetch's response may hold (its representations' types, the
 * concrete types of abstract ones) or whose fragment it selects; `*` for fields outside fragments.
 */
function touchedTypes(ctx: PlanContext, fetch: Fetch): Set<string> {
  const out = new Set<string>();
  const add = (name: string) => {
    out.add(name);
    const t = ctx.schema.getType(name);
    if (t && isAbstractType(t)) for (const p of ctx.schema.getPossibleTypes(t)) out.add(p.name);
  };
  for (const [name, target] of fetch.targets) {
    add(name);
    add(target.reprTypename);
  }
  for (const name of fetch.sel.fragments.keys()) add(name);
  if (fetch.sel.fields.size > 0) out.add('*');
  return out;
}

function disjoint(a: Set<string>, b: Set<string>): boolean {
  if (a.has('*') || b.has('*')) return false;
  for (const x of a) if (b.has(x)) return false;
  return true;
}
