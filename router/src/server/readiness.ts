/**
 * Readiness: the router takes traffic only while every registered check passes. The execution
 * config registers one; event providers register theirs (connected to the broker). A check returns
 * `true` when ready or a reason a person can act on; a check that throws or hangs counts as not
 * ready. Shutting down makes the router unready first, so load balancers drain it.
 */

export type ReadinessCheck = () => true | string | Promise<true | string>;

export interface ReadinessReport {
  ready: boolean;
  /** `name: reason` for every failing check. */
  reasons: string[];
}

export class Readiness {
  private readonly checks = new Map<string, ReadinessCheck>();
  private shuttingDown = false;

  constructor(private readonly timeoutMs = 2000) {}

  /** Adds (or replaces) the check called `name`; returns a function removing it. */
  register(name: string, check: ReadinessCheck): () => void {
    this.checks.set(name, check);
    return () => {
      if (this.checks.get(name) === check) this.checks.delete(name);
    };
  }

  markShuttingDown(): void {
    this.shuttingDown = true;
  }

  async evaluate(): Promise<ReadinessReport> {
    if (this.shuttingDown) return { ready: false, reasons: ['router: shutting down'] };
    const results = await Promise.all(
      [...this.checks].map(async ([name, check]) => {
        const outcome = await this.run(check);
        return outcome === true ? undefined : `${name}: ${outcome}`;
      }),
    );
    const reasons = results.filter((r): r is string => r !== undefined);
    return { ready: reasons.length === 0, reasons };
  }

  private async run(check: ReadinessCheck): Promise<true | string> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`check did not answer within ${this.timeoutMs} ms`), this.timeoutMs);
      timer.unref();
    });
    try {
      return await Promise.race([Promise.resolve().then(check), timeout]);
    } catch (err) {
      return `check failed: ${(err as Error).message}`;
    } finally {
      clearTimeout(timer);
    }
  }
}
