/**
 * HTTP to subgraphs: one keep-alive undici Pool per subgraph origin, a timeout per request, and
 * failures turned into one error type that names the subgraph. Never throws anything else.
 *
 * Every request that fails is reported once to `onError` with its SubgraphErrorKind, decided by
 * the first thing that went wrong: no answer in time, no HTTP answer at all, an HTTP answer that
 * is not a successful GraphQL response, or a GraphQL response that carries `errors`.
 */
import { Pool } from 'undici';
import type { GraphQLFormattedError } from 'graphql';

export interface SubgraphResponse {
  data?: Record<string, unknown> | null;
  errors?: GraphQLFormattedError[];
}

export class SubgraphFetchError extends Error {
  override name = 'SubgraphFetchError';
  constructor(
    readonly subgraph: string,
    reason: string,
  ) {
    super(`Failed to fetch from subgraph "${subgraph}": ${reason}`);
  }
}

/**
 * `timeout`: no complete answer within the request's timeout. `unreachable`: no HTTP answer
 * (connection refused or reset, unknown host, invalid routing URL). `http`: a status outside 2xx,
 * or a body that is not a GraphQL response. `graphql`: a 2xx GraphQL response with `errors`.
 */
export type SubgraphErrorKind = 'timeout' | 'unreachable' | 'http' | 'graphql';

export interface SubgraphClientOptions {
  /** Overrides every subgraph's own timeout from the execution config. */
  timeoutMs?: number;
  connections?: number;
  /** Called once per failed request (the `router_subgraph_errors_total` hook). */
  onError?: (subgraph: string, kind: SubgraphErrorKind) => void;
}

/** undici's and AbortSignal.timeout's ways of saying the answer did not come in time. */
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

function isTimeout(err: unknown): boolean {
  const e = err as { name?: string; code?: string } | undefined;
  return e?.name === 'TimeoutError' || TIMEOUT_CODES.has(e?.code ?? '');
}

export class SubgraphClient {
  private readonly pools = new Map<string, Pool>();
  constructor(private readonly options: SubgraphClientOptions = {}) {}

  private pool(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, {
        connections: this.options.connections ?? 64,
        pipelining: 1,
        keepAliveTimeout: 30_000,
      });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  async post(
    subgraph: string,
    url: string,
    body: string,
    timeoutMs: number,
    headers: Record<string, string> = {},
  ): Promise<SubgraphResponse> {
    const failed = (kind: SubgraphErrorKind, reason: string): SubgraphFetchError => {
      this.options.onError?.(subgraph, kind);
      return new SubgraphFetchError(subgraph, reason);
    };
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      throw failed('unreachable', `invalid routing URL ${JSON.stringify(url)}`);
    }
    const timeout = this.options.timeoutMs ?? timeoutMs;
    let res;
    try {
      res = await this.pool(target.origin).request({
        method: 'POST',
        path: target.pathname + target.search,
        headers: {
          'content-type': 'application/json',
          accept: 'application/graphql-response+json, application/json',
          ...headers,
        },
        body,
        headersTimeout: timeout,
        bodyTimeout: timeout,
        signal: AbortSignal.timeout(timeout),
      });
    } catch (err) {
      const e = err as Error & { code?: string };
      if (isTimeout(e)) throw failed('timeout', `timed out after ${timeout} ms`);
      throw failed('unreachable', e.code ?? e.message);
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      throw failed(
        isTimeout(err) ? 'timeout' : 'unreachable',
        `reading the response failed: ${(err as Error).message}`,
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw failed('http', `HTTP ${res.statusCode}, response is not JSON`);
    }
    if (
      typeof json !== 'object' ||
      json === null ||
      Array.isArray(json) ||
      (!('data' in json) && !('errors' in json))
    )
      throw failed('http', `HTTP ${res.statusCode}, response is not a GraphQL response`);
    const response = json as SubgraphResponse;
    if (res.statusCode < 200 || res.statusCode > 299) this.options.onError?.(subgraph, 'http');
    else if (response.errors?.length) this.options.onError?.(subgraph, 'graphql');
    return response;
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close().catch(() => undefined)));
    this.pools.clear();
  }
}
