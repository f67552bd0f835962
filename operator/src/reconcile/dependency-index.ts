/**
 * Which objects use which: a reconcile records everything it read for an object (Subgraphs,
 * ConfigMaps, EventProviders, provider ids, Secrets), and a change to any of them re-queues
 * every object that used it.
 *
 * Dependencies are strings made by `dep(kind, namespace, name)`. A reconcile replaces the full
 * set of its object's dependencies at once (`set`), so a dependency that is no longer read stops
 * triggering; references to objects that do not exist yet are recorded too, so creating them
 * triggers the reconcile that was waiting for them.
 *
 * Invariant: `dependents(d)` is exactly the set of owners whose last `set` included `d`.
 */

export type DependencyKind = 'Subgraph' | 'ConfigMap' | 'EventProvider' | 'ProviderId' | 'Secret';

export function dep(kind: DependencyKind, namespace: string | undefined, name: string): string {
  return `${kind}:${namespace ?? ''}/${name}`;
}

export class DependencyIndex {
  private readonly byOwner = new Map<string, Set<string>>();
  private readonly byDependency = new Map<string, Set<string>>();

  /** Replaces everything `owner` depends on. */
  set(owner: string, dependencies: Iterable<string>): void {
    const next = new Set(dependencies);
    const previous = this.byOwner.get(owner);
    for (const d of previous ?? []) {
      if (!next.has(d)) this.unlink(owner, d);
    }
    for (const d of next) {
      let owners = this.byDependency.get(d);
      if (!owners) this.byDependency.set(d, (owners = new Set()));
      owners.add(owner);
    }
    if (next.size > 0) this.byOwner.set(owner, next);
    else this.byOwner.delete(owner);
  }

  /** Forgets an owner (deleted). */
  remove(owner: string): void {
    this.set(owner, []);
  }

  /** The owners that depend on any of `dependencies`, sorted and without duplicates. */
  dependents(...dependencies: string[]): string[] {
    const out = new Set<string>();
    for (const d of dependencies) for (const owner of this.byDependency.get(d) ?? []) out.add(owner);
    return [...out].sort();
  }

  dependenciesOf(owner: string): string[] {
    return [...(this.byOwner.get(owner) ?? [])].sort();
  }

  /** Number of distinct dependencies tracked (for tests and debugging). */
  size(): number {
    return this.byDependency.size;
  }

  private unlink(owner: string, d: string): void {
    const owners = this.byDependency.get(d);
    if (!owners) return;
    owners.delete(owner);
    if (owners.size === 0) this.byDependency.delete(d);
  }
}
