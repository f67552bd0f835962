/**
 * Graceful drain. On SIGTERM a router in a Deployment must leave without a thundering herd: its
 * clients reconnect to the other replicas, so closing all of them at once would hit those with
 * every reconnect in the same second. So: readiness fails at once, new connections are refused,
 * then open connections are closed (WebSocket 1001 "going away") in batches at jittered times
 * spread over most of the drain window, and the caller exits once all are gone, before the window
 * ends.
 *
 * `drainSchedule` is pure (the delays), `Drain` runs it over whatever transports registered.
 */

/** A transport's view for draining (WebSocket, SSE, multipart). */
export interface DrainTarget {
  /** Refuse new connections from now on. */
  stopAccepting(): void;
  /** One function per open connection, closing it as "going away". */
  closers(): (() => void)[];
  /** Resolves once no connection of this transport is open. */
  idle(): Promise<void>;
}

/** Share of the window used for closing; the rest is slack for the last closing handshakes. */
const SPREAD = 0.75;
/** Batches are at least this far apart. */
const MIN_BATCH_GAP_MS = 50;

/**
 * When to close each of `count` connections (ms from the start): `count` spread over batches at
 * least MIN_BATCH_GAP_MS apart across SPREAD of the window, each batch at a jittered time within
 * its slot. Returned sorted; with a zero window everything closes at once.
 */
export function drainSchedule(count: number, windowMs: number, random: () => number = Math.random): number[] {
  if (count === 0) return [];
  const spread = windowMs * SPREAD;
  const batches = Math.max(1, Math.min(count, Math.floor(spread / MIN_BATCH_GAP_MS)));
  const slot = spread / batches;
  const times = Array.from({ length: batches }, (_, b) => Math.round(b * slot + random() * slot * 0.5));
  return Array.from({ length: count }, (_, i) => times[Math.floor((i * batches) / count)]!);
}

export class Drain {
  private readonly targets: DrainTarget[] = [];
  private running: Promise<void> | undefined;

  register(target: DrainTarget): void {
    this.targets.push(target);
  }

  /** Closes every registered connection over `windowMs`; resolves when all are closed or the window ends. */
  run(windowMs: number, random: () => number = Math.random): Promise<void> {
    this.running ??= (async () => {
      for (const t of this.targets) t.stopAccepting();
      const closers = shuffle(
        this.targets.flatMap((t) => t.closers()),
        random,
      );
      const schedule = drainSchedule(closers.length, windowMs, random);
      const timers: NodeJS.Timeout[] = [];
      let i = 0;
      while (i < closers.length) {
        const at = schedule[i]!;
        const batch: (() => void)[] = [];
        while (i < closers.length && schedule[i] === at) batch.push(closers[i++]!);
        timers.push(setTimeout(() => batch.forEach((close) => close()), at));
      }
      let windowTimer: NodeJS.Timeout | undefined;
      const windowEnd = new Promise<void>((resolve) => (windowTimer = setTimeout(resolve, windowMs)));
      await Promise.race([Promise.all(this.targets.map((t) => t.idle())), windowEnd]);
      clearTimeout(windowTimer);
      timers.forEach(clearTimeout);
    })();
    return this.running;
  }
}

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
