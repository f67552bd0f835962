/**
 * HTTP to subgraphs: one keep-alive undici Pool per subgraph origin, a timeout per request, and
 * failures turned into one error type that names the subgraph. Never throws anything else.
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

export interface SubgraphClientOptions {
  /** Overrides every subgraph's own timeout from the execution config. */
  timeoutMs?: number;
  connections?: number;
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
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      throw new SubgraphFetchError(subgraph, `invalid routing URL ${JSON.stringify(url)}`);
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
      const reason =
        e.name === 'TimeoutError' || e.code === 'UND_ERR_HEADERS_TIMEOUT'
          ? `timed out after ${timeout} ms`
          : (e.code ?? e.message);
      throw new SubgraphFetchError(subgraph, reason);
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      throw new SubgraphFetchError(subgraph, `reading the response failed: ${(err as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new SubgraphFetchError(subgraph, `HTTP ${res.statusCode}, response is not JSON`);
    }
    if (
      typeof json !== 'object' ||
      json === null ||
      Array.isArray(json) ||
      (!('data' in json) && !('errors' in json))
    )
      throw new SubgraphFetchError(subgraph, `HTTP ${res.statusCode}, response is not a GraphQL response`);
    return json as SubgraphResponse;
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close().catch(() => undefined)));
    this.pools.clear();
  }
}
