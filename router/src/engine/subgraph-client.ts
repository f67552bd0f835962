/**
 * HTTP to subgraphs: one keep-alive undici Pool per subgraph origin, a timeout per request, and
 * failures turned into one error type that names the subgraph. Never throws anything else. A
 * request can be cancelled by its caller (a client that went away); that is not the subgraph's
 * failure and is not reported to `onError`.
 * A failure's `reason` is what clients see: the kind of failure (refused, timed out, HTTP status,
 * not GraphQL), never an address, a URL or an exception's text; those stay in its `cause`.
 *
 * Every request that fails is reported once to `onError` with its SubgraphErrorKind, decided by
 * the first thing that went wrong: no answer in time, no HTTP answer at all, an HTTP answer that
 * is not a successful GraphQL response, or a GraphQL response that carries `errors`.
 */
import { Pool } from 'undici';
import type { GraphQLFormattedError } from 'graphql';
import type { Cancellation } from './single-flight.js';

export interface SubgraphResponse {
  data?: Record<string, unknown> | null;
  errors?: GraphQLFormattedError[];
}

/**
 * One subgraph answer that several executions may read. Executions merge into (and so change)
 * the objects they get: the first reader gets the response parsed when it arrived, every later
 * one its own parse of the same text, which is cheaper than a deep copy and never sees changes.
 */
export class SubgraphReply {
  private taken = false;
  constructor(
    private readonly response: SubgraphResponse,
    private readonly text: string,
  ) {}

  take(): SubgraphResponse {
    if (this.taken) return JSON.parse(this.text) as SubgraphResponse;
    this.taken = true;
    return this.response;
  }
}

export class SubgraphFetchError extends Error {
  override name = 'SubgraphFetchError';
  constructor(
    readonly subgraph: string,
    readonly reason: string,
    cause?: unknown,
  ) {
    super(`Failed to fetch from subgraph "${subgraph}": ${reason}`, { cause });
  }
}

/** What failed, in words safe to show a client: a system error code's meaning, not its message. */
function describeFailure(err: unknown, timeoutMs: number): string {
  const e = err as Error & { code?: unknown };
  if (isTimeout(err)) return `timed out after ${timeoutMs} ms`;
  switch (e.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
      return 'connection closed';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host not found';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return 'connecting timed out';
  }
  // Other codes are constants (EPROTO, UND_ERR_...): safe, and what an operator searches for.
  return typeof e.code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(e.code) ? e.code : 'request failed';
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

const BASE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'application/json',
  accept: 'application/graphql-response+json, application/json',
};

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}

export class SubgraphClient {
  private readonly pools = new Map<string, Pool>();
  /** Routing URLs parsed once (there are as many as subgraphs). */
  private readonly targets = new Map<string, { origin: string; path: string } | { invalid: unknown }>();
  constructor(private readonly options: SubgraphClientOptions = {}) {}

  private target(url: string): { origin: string; path: string } | { invalid: unknown } {
    let target = this.targets.get(url);
    if (!target) {
      try {
        const parsed = new URL(url);
        target = { origin: parsed.origin, path: parsed.pathname + parsed.search };
      } catch (err) {
        target = { invalid: err };
      }
      this.targets.set(url, target);
    }
    return target;
  }

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

  /** Sends one request and reads its answer (see `request`). */
  async post(
    subgraph: string,
    url: string,
    body: string,
    timeoutMs: number,
    headers: Record<string, string> = {},
    signal?: Cancellation,
  ): Promise<SubgraphResponse> {
    return (await this.request(subgraph, url, body, timeoutMs, headers, signal)).take();
  }

  /**
   * Sends one request; the answer comes as a `SubgraphReply`, which several executions can read.
   * `signal` cancels it (a caller that gave up): the failure then says so and is not counted as
   * the subgraph's.
   */
  async request(
    subgraph: string,
    url: string,
    body: string,
    timeoutMs: number,
    headers: Record<string, string> = {},
    signal?: Cancellation,
  ): Promise<SubgraphReply> {
    const failed = (kind: SubgraphErrorKind, reason: string, cause?: unknown): SubgraphFetchError => {
      if (signal?.aborted) return new SubgraphFetchError(subgraph, 'the request was cancelled', cause);
      this.options.onError?.(subgraph, kind);
      return new SubgraphFetchError(subgraph, reason, cause);
    };
    const target = this.target(url);
    if ('invalid' in target) throw failed('unreachable', 'invalid routing URL', target.invalid);
    const timeout = this.options.timeoutMs ?? timeoutMs;
    // One signal for the deadline and the caller's cancellation (undici takes one).
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new DOMException('timed out', 'TimeoutError')), timeout);
    const cancel = () => controller.abort(signal!.reason);
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      let res;
      try {
        res = await this.pool(target.origin).request({
          method: 'POST',
          path: target.path,
          headers: hasKeys(headers) ? { ...BASE_HEADERS, ...headers } : BASE_HEADERS,
          body,
          headersTimeout: timeout,
          bodyTimeout: timeout,
          signal: controller.signal,
        });
      } catch (err) {
        throw failed(isTimeout(err) ? 'timeout' : 'unreachable', describeFailure(err, timeout), err);
      }
      let text: string;
      try {
        text = await res.body.text();
      } catch (err) {
        throw failed(
          isTimeout(err) ? 'timeout' : 'unreachable',
          `HTTP ${res.statusCode}, reading the response failed: ${describeFailure(err, timeout)}`,
          err,
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
      return new SubgraphReply(response, text);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', cancel);
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close().catch(() => undefined)));
    this.pools.clear();
  }
}
