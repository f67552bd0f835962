/**
 * Read-your-writes for status: the informer cache can lag behind a status patch by a moment, so a
 * reconcile that runs in between would compare against the old status, write again and record
 * duplicate Events. Each reconciler remembers the status it last wrote and the resourceVersion it
 * wrote over; while the cache still shows that version, the remembered status is the truth.
 *
 * Invariant: this only bridges the lag; as soon as the cache shows any other version, the cache
 * wins and the memory is dropped.
 */
export class WrittenStatus<S> {
  private readonly written = new Map<string, { over?: string; status: S }>();

  current(key: string, obj: { metadata: { resourceVersion?: string }; status?: S }): S | undefined {
    const written = this.written.get(key);
    if (written && written.over === obj.metadata.resourceVersion) return written.status;
    this.written.delete(key);
    return obj.status;
  }

  remember(key: string, over: string | undefined, status: S): void {
    this.written.set(key, { over, status });
  }

  forget(key: string): void {
    this.written.delete(key);
  }
}
