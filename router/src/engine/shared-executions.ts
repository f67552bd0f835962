/**
 * Query executions shared by identical requests. When every subgraph request of a query would be
 * shared anyway (single-flight.ts, per subgraph as `deduplicate_requests` says), identical queries
 * in flight would each walk the same plan, join the same requests, parse the same answers and
 * shape the same result. Instead the first runs the plan and the others wait for its result (one
 * object; the edges serialize it once, result-json.ts): one execution per wave of identical
 * queries instead of one per client, which is where the CPU of a popular query goes.
 *
 * What makes two queries identical is what makes their subgraph requests identical: the same plan
 * (document, operation, @include/@skip values and, under authorization, the same denied fields),
 * the same coerced variables and the same forwarded headers per subgraph. Nothing a client sends
 * beyond that (other headers, its token's claims) reaches a subgraph or changes the result.
 *
 * A query joins a running execution only until that execution's first subgraph answer arrives:
 * after that, the execution holds data fetched before the newcomer asked, which sharing subgraph
 * requests in flight would not have given it. So a client gets exactly what it would have got
 * with its own execution joining the same subgraph requests; only the CPU differs.
 *
 * Not shared: mutations and subscriptions, plans that read brokers (event request fields), that
 * answer introspection, or that call a subgraph whose requests are not deduplicated.
 *
 * `router_subgraph_requests_deduplicated_total` keeps its meaning: a query that joins counts one
 * for each subgraph request of the execution, as if it had joined each.
 */
import type { ExecutionResult } from './types.js';
import type { Plan } from './plan.js';
import { SingleFlight, type Cancellation } from './single-flight.js';

/** What a shared execution did so far, for the metrics of those that join it. */
interface Progress {
  /** Subgraph of every request the execution sent or joined. */
  requests: string[];
  /** Queries that joined the execution. */
  joiners: number;
}

/** The hooks and signal the execution that runs for everyone is given. */
export interface SharedRun {
  signal: Cancellation;
  onSubgraphRequest: (subgraph: string) => void;
  onSubgraphRequestDeduplicated: (subgraph: string) => void;
  onAnswer: () => void;
}

export interface SharedExecutionsOptions {
  /** Whether a subgraph's requests are deduplicated. */
  deduplicates: (subgraph: string) => boolean;
  onSubgraphRequest?: (subgraph: string) => void;
  onSubgraphRequestDeduplicated?: (subgraph: string) => void;
}

export class SharedExecutions {
  /** Per plan (dropped with it), executions in flight by variables and headers. */
  private readonly tables = new WeakMap<Plan, SingleFlight<ExecutionResult, Progress>>();
  private readonly shareablePlans = new WeakMap<Plan, boolean>();

  constructor(private readonly options: SharedExecutionsOptions) {}

  /** Whether identical executions of `plan` may share one (see the module header). */
  shareable(plan: Plan): boolean {
    let found = this.shareablePlans.get(plan);
    if (found === undefined) {
      found =
        plan.operationType === 'query' &&
        !plan.introspection &&
        plan.fetches.every((f) => !f.event && this.options.deduplicates(f.subgraph.name));
      this.shareablePlans.set(plan, found);
    }
    return found;
  }

  /**
   * The result of the execution of `plan` for `key` (its variables and forwarded headers): one in
   * flight, or a new one `execute` starts with the hooks it must use. Rejects with `signal`'s
   * reason when that caller gives up first; the execution goes on while others wait for it.
   */
  run(
    plan: Plan,
    key: string,
    execute: (run: SharedRun) => Promise<ExecutionResult>,
    signal?: Cancellation,
  ): Promise<ExecutionResult> {
    let table = this.tables.get(plan);
    if (!table) this.tables.set(plan, (table = new SingleFlight(() => ({ requests: [], joiners: 0 }))));
    const { onSubgraphRequest, onSubgraphRequestDeduplicated } = this.options;
    const joined = table.run(
      key,
      (runSignal, run) => {
        const progress = run.state;
        /** A request of the execution: one for it, and one shared for each query that joined. */
        const did = (subgraph: string) => {
          progress.requests.push(subgraph);
          for (let i = 0; i < progress.joiners; i++) onSubgraphRequestDeduplicated?.(subgraph);
        };
        return execute({
          signal: runSignal,
          onSubgraphRequest: (subgraph) => {
            onSubgraphRequest?.(subgraph);
            did(subgraph);
          },
          onSubgraphRequestDeduplicated: (subgraph) => {
            onSubgraphRequestDeduplicated?.(subgraph);
            did(subgraph);
          },
          onAnswer: () => run.close(),
        });
      },
      signal,
    );
    if (joined.shared) {
      const progress = joined.run.state;
      progress.joiners++;
      for (const subgraph of progress.requests) onSubgraphRequestDeduplicated?.(subgraph);
    }
    return joined.promise;
  }
}
