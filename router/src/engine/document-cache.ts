/**
 * The gateway's cache of parsed, validated and planned documents, keyed by document text and
 * bounded twice: by entries (`engine.execution_plan_cache_size`) and by an estimate of the heap
 * its entries hold (`engine.execution_plan_cache_memory_limit`). Least recently used first out.
 *
 * Counting entries alone does not bound memory: a distinct document keeps tens of times its size
 * in heap (syntax tree, plans), so a thousand large documents exhaust any heap. Each entry here
 * carries `bytes`, an estimate the gateway computes when it stores the entry and raises when it
 * adds a plan (`grow`); the cache evicts until the sum is within the budget. An entry larger than
 * the whole budget is not stored: its request is served, and the next one parses again.
 */

export interface Sized {
  /** Estimated heap held by the entry, its key included. */
  bytes: number;
}

export class DocumentCache<V extends Sized> {
  private readonly entries = new Map<string, V>();
  private total = 0;

  constructor(
    readonly maxEntries: number,
    readonly maxBytes: number,
  ) {}

  /** The entry for `key`, now the most recently used. */
  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (entry) {
      // Map iteration order is insertion order: re-inserting makes it the newest.
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
    return entry;
  }

  /** Stores `entry` unless it alone exceeds the budget; evicts the oldest to make room. */
  set(key: string, entry: V): boolean {
    this.delete(key);
    if (entry.bytes > this.maxBytes || this.maxEntries < 1) return false;
    this.entries.set(key, entry);
    this.total += entry.bytes;
    this.evict(entry);
    return true;
  }

  /**
   * Adds `bytes` to a stored entry (a plan added to it). False, and nothing changes, when the
   * entry is not stored or would alone exceed the budget: the caller then does not keep what
   * it wanted to add.
   */
  grow(key: string, entry: V, bytes: number): boolean {
    if (this.entries.get(key) !== entry || entry.bytes + bytes > this.maxBytes) return false;
    entry.bytes += bytes;
    this.total += bytes;
    this.evict(entry);
    return true;
  }

  delete(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.total -= entry.bytes;
  }

  clear(): void {
    this.entries.clear();
    this.total = 0;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The estimated heap held by all entries. */
  get bytes(): number {
    return this.total;
  }

  /** Oldest first, never `keep` (the entry just stored or grown), until within both bounds. */
  private evict(keep: V): void {
    for (const [key, entry] of this.entries) {
      if (this.total <= this.maxBytes && this.entries.size <= this.maxEntries) return;
      if (entry === keep) continue;
      this.entries.delete(key);
      this.total -= entry.bytes;
    }
  }
}
