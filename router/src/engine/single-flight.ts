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
 * A run's work is told of cancellation through a `Cancellation`: the part of AbortSignal the
 * router's subgraph client reads (so an AbortSignal is one too), made without an EventTarget. Node
 * builds every AbortController's signal as an EventTarget, a few microseconds and a dozen objects
 * each; a query runs one single-flight per subgraph request, and those that share nothing (most,
 * under varied traffic) would pay that for a cancellation that almost never comes.
 *
 * Why our own: the libraries that share promises by key (p-memoize, dataloader, the fetch
 * deduplication inside other gateways) either cache results past the flight, batch by tick, or
 * tie the shared request to the first caller's cancellation; none lets one waiter leave without
 * cancelling the rest, which a client closing its connection must not do to the others.
 */

/** Cancellation as the work of a run and callers see it; an AbortSignal is one. */
export interface Cancellation {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** A run's cancellation: aborted once, when every caller has given up. */
class RunCancellation implements Cancellation {
  aborted = false;
  reason: unknown = undefined;
  private listeners: (() => void)[] | undefined;

  addEventListener(_type: 'abort', listener: () => void): void {
    if (!this.aborted) (this.listeners ??= []).push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const i = this.listeners?.indexOf(listener) ?? -1;
    if (i >= 0) this.listeners!.splice(i, 1);
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    for (const listener of this.listeners?.splice(0) ?? []) listener();
  }
}

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
  cancellation: RunCancellation;
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
    work: (signal: Cancellation, run: Run<S>) => Promise<T>,
    signal?: Cancellation,
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
        joined.cancellation.abort(signal.reason);
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

  private start(key: string, work: (signal: Cancellation, run: Run<S>) => Promise<T>): Flight<T, S> {
    const cancellation = new RunCancellation();
    const flights = this.flights;
    const flight: Flight<T, S> = {
      promise: undefined as unknown as Promise<T>,
      waiters: 0,
      cancellation,
      state: this.state?.() as S,
      close() {
        if (flights.get(key) === flight) flights.delete(key);
      },
    };
    this.flights.set(key, flight);
    flight.promise = (async () => work(cancellation, flight))();
    const settled = () => flight.close();
    flight.promise.then(settled, settled);
    return flight;
  }
}
