/**
 * Single-flight: callers asking for the same key while its work runs share that one run and its
 * outcome. The router uses it for subgraph requests (executor.ts: same subgraph, operation text,
 * variables and forwarded headers) and, when enabled, for whole client queries
 * (server/graphql-http.ts).
 *
 * Invariants:
 * - A key has at most one run in flight; it leaves the table when its work settles, so a later
 *   caller starts a fresh run (nothing is cached beyond the flight).
 * - Every caller waiting when the work settles gets its outcome: a failure reaches all of them.
 * - A caller that gives up (its own `signal` aborts) stops waiting, rejected with its signal's
 *   reason, and takes nobody else with it. The work itself is aborted (the signal it is given)
 *   only when every caller has given up; its key then leaves the table at once, so nobody joins
 *   a run that is being cancelled.
 *
 * Why our own: the libraries that share promises by key (p-memoize, dataloader, the fetch
 * deduplication inside other gateways) either cache results past the flight, batch by tick, or
 * tie the shared request to the first caller's cancellation; none lets one waiter leave without
 * cancelling the rest, which a client closing its connection must not do to the others.
 */

interface Flight<T> {
  promise: Promise<T>;
  /** Callers still waiting; each with a signal may leave, the rest never do. */
  waiters: number;
  controller: AbortController;
}

export interface Joined<T> {
  promise: Promise<T>;
  /** True when the caller joined a run another caller had started. */
  shared: boolean;
}

export class SingleFlight<T> {
  private readonly flights = new Map<string, Flight<T>>();

  /**
   * The outcome of `work` for `key`: a run already in flight, or a new one. `work` gets a signal
   * that aborts only once every caller of this run has given up.
   */
  run(key: string, work: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Joined<T> {
    if (signal?.aborted) return { promise: Promise.reject(signal.reason as Error), shared: false };
    let flight = this.flights.get(key);
    const shared = flight !== undefined;
    if (!flight) flight = this.start(key, work);
    flight.waiters++;
    if (!signal) return { promise: flight.promise, shared };
    const joined = flight;
    const promise = new Promise<T>((resolve, reject) => {
      const leave = () => {
        reject(signal.reason as Error);
        if (--joined.waiters > 0) return;
        if (this.flights.get(key) === joined) this.flights.delete(key);
        joined.controller.abort(signal.reason);
      };
      signal.addEventListener('abort', leave, { once: true });
      joined.promise.then(
        (value) => {
          signal.removeEventListener('abort', leave);
          resolve(value);
        },
        (err: unknown) => {
          signal.removeEventListener('abort', leave);
          reject(err as Error);
        },
      );
    });
    return { promise, shared };
  }

  /** Runs in flight. */
  get size(): number {
    return this.flights.size;
  }

  private start(key: string, work: (signal: AbortSignal) => Promise<T>): Flight<T> {
    const controller = new AbortController();
    const flight: Flight<T> = { promise: undefined as unknown as Promise<T>, waiters: 0, controller };
    const settled = () => {
      if (this.flights.get(key) === flight) this.flights.delete(key);
    };
    flight.promise = (async () => work(controller.signal))();
    flight.promise.then(settled, settled);
    this.flights.set(key, flight);
    return flight;
  }
}
