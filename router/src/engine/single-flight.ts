/**
 * Single-flight: callers asking for the same key while its work runs share that one run and its
 * outcome. The router uses it for subgraph requests (executor.ts: same subgraph, operation text,
 * variables and forwarded headers), for query executions whose subgraph requests would all be
 * shared (gateway.ts), and, when enabled, for whole client queries (server/graphql-http.ts).
 *
 * Invariants:
 * - A key has at most one run in flight; it leaves the table when its work settles, so a later
 *   caller starts a fresh run (nothing is cached beyond the flight).
 * - Every caller waiting when the work settles gets its outcome: a failure reaches all of them.
 * - A caller that gives up (its own `signal` aborts) stops waiting, rejected with its signal's
 *   reason, and takes nobody else with it. The work itself is aborted (the signal it is given)
 *   only when every caller has given up; its key then leaves the table at once, so nobody joins
 *   a run that is being cancelled.
 * - The work may close its run to newcomers early (`Run.close`): the next caller of its key then
 *   starts a new run, while those already waiting still get this one's outcome.
 * - A run has a state of its own (`state`, made when it starts), which its work and every caller
 *   that joins it see: what it has done so far, for instance.
 *
 * Why our own: the libraries that share promises by key (p-memoize, dataloader, the fetch
 * deduplication inside other gateways) either cache results past the flight, batch by tick, or
 * tie the shared request to the first caller's cancellation; none lets one waiter leave without
 * cancelling the rest, which a client closing its connection must not do to the others.
 */

/** One run, as its work and its callers see it. */
export interface Run<S> {
  /** Made by the table's `state` factory when the run starts. */
  readonly state: S;
  /** No caller joins this run any more: the next caller of its key starts a new one. */
  close(): void;
}

interface Flight<T, S> extends Run<S> {
  promise: Promise<T>;
  /** Callers still waiting; each with a signal may leave, the rest never do. */
  waiters: number;
  controller: AbortController;
}

export interface Joined<T, S = undefined> {
  promise: Promise<T>;
  /** True when the caller joined a run another caller had started. */
  shared: boolean;
  /** The run the caller started or joined. */
  run: Run<S>;
}

export class SingleFlight<T, S = undefined> {
  private readonly flights = new Map<string, Flight<T, S>>();

  /** `state` makes each run's state (see `Run.state`); without it, runs have none. */
  constructor(private readonly state?: () => S) {}

  /**
   * The outcome of `work` for `key`: a run already in flight, or a new one. `work` gets a signal
   * that aborts only once every caller of this run has given up.
   */
  run(
    key: string,
    work: (signal: AbortSignal, run: Run<S>) => Promise<T>,
    signal?: AbortSignal,
  ): Joined<T, S> {
    if (signal?.aborted) {
      const idle: Run<S> = { state: this.state?.() as S, close() {} };
      return { promise: Promise.reject(signal.reason as Error), shared: false, run: idle };
    }
    let flight = this.flights.get(key);
    const shared = flight !== undefined;
    if (!flight) flight = this.start(key, work);
    flight.waiters++;
    if (!signal) return { promise: flight.promise, shared, run: flight };
    const joined = flight;
    const promise = new Promise<T>((resolve, reject) => {
      const leave = () => {
        reject(signal.reason as Error);
        if (--joined.waiters > 0) return;
        joined.close();
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
    return { promise, shared, run: joined };
  }

  /** Runs in flight. */
  get size(): number {
    return this.flights.size;
  }

  private start(key: string, work: (signal: AbortSignal, run: Run<S>) => Promise<T>): Flight<T, S> {
    const controller = new AbortController();
    const flights = this.flights;
    const flight: Flight<T, S> = {
      promise: undefined as unknown as Promise<T>,
      waiters: 0,
      controller,
      state: this.state?.() as S,
      close() {
        if (flights.get(key) === flight) flights.delete(key);
      },
    };
    this.flights.set(key, flight);
    flight.promise = (async () => work(controller.signal, flight))();
    const settled = () => flight.close();
    flight.promise.then(settled, settled);
    return flight;
  }
}
