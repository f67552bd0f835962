/**
 * Which client request headers reach which subgraph: the `headers` rules of `router.yaml`, in
 * Cosmo's format. Nothing is forwarded unless a rule says so.
 *
 * - `propagate` copies a client header, by exact name (`named`, with optional `rename` and
 *   `default`) or by a regular expression over header names (`matching`, case-insensitive; a
 *   leading Go-style `(?i)` is accepted);
 * - `set` sends a fixed value.
 * Rules under `all` apply to every subgraph, then the subgraph's own rules, in order; a later
 * rule overwrites an earlier one's header.
 *
 * Hop-by-hop and transport headers (Connection, Content-Length, Host, Sec-WebSocket-*, ...) are
 * never propagated: they describe the client's connection, not the request.
 *
 * The result is part of what a subscription's results depend on: the engine groups subscriptions
 * by it (clients with different credentials never share a resolution), and identical subgraph
 * requests of one event are only shared between groups sending the same headers.
 */
import type { HeaderRule, HeaderRules } from '../config/types.js';
import type { RequestContext } from './types.js';

/** Per subgraph name, the headers (lower-case names) its requests carry; absent = none. */
export type SubgraphHeaders = Record<string, Record<string, string>>;

const NEVER_PROPAGATED = new Set([
  'accept',
  'accept-encoding',
  'accept-charset',
  'alt-svc',
  'connection',
  'content-encoding',
  'content-length',
  'content-type',
  'host',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

function propagatable(name: string): boolean {
  return !NEVER_PROPAGATED.has(name) && !name.startsWith('sec-websocket-');
}

/**
 * Whether some rule could read a client header of this (lower-case) name: what a long-lived
 * connection must keep of its request's headers, and all it needs to.
 */
export function headersRead(rules: HeaderRules | undefined): (name: string) => boolean {
  if (!hasHeaderRules(rules)) return () => false;
  const propagating = [...rules.all, ...Object.values(rules.subgraphs).flat()].filter(
    (rule) => rule.op === 'propagate',
  );
  return (name) =>
    propagatable(name) &&
    propagating.some((rule) =>
      'named' in rule ? rule.named.toLowerCase() === name : rule.matching.test(name),
    );
}

/** True when some rule could add a header to some subgraph request. */
export function hasHeaderRules(rules: HeaderRules | undefined): rules is HeaderRules {
  return !!rules && (rules.all.length > 0 || Object.values(rules.subgraphs).some((r) => r.length > 0));
}

/**
 * The headers each of `subgraphs` gets for a client request with `client` headers; undefined
 * when none gets any. Deterministic: the same inputs give equal objects with the same key order.
 */
export function subgraphHeaders(
  rules: HeaderRules | undefined,
  subgraphs: Iterable<string>,
  client: RequestContext['headers'],
): SubgraphHeaders | undefined {
  if (!hasHeaderRules(rules)) return undefined;
  const incoming = client ?? {};
  let result: SubgraphHeaders | undefined;
  for (const subgraph of [...new Set(subgraphs)].sort()) {
    const out: Record<string, string> = {};
    for (const rule of [...rules.all, ...(rules.subgraphs[subgraph] ?? [])]) apply(rule, incoming, out);
    if (Object.keys(out).length > 0) (result ??= {})[subgraph] = out;
  }
  return result;
}

function apply(
  rule: HeaderRule,
  incoming: NonNullable<RequestContext['headers']>,
  out: Record<string, string>,
) {
  if (rule.op === 'set') {
    out[rule.name.toLowerCase()] = rule.value;
    return;
  }
  if ('named' in rule) {
    const name = rule.named.toLowerCase();
    if (!propagatable(name)) return;
    const value = valueOf(incoming[name]) ?? rule.default;
    if (value !== undefined) out[(rule.rename ?? name).toLowerCase()] = value;
    return;
  }
  for (const name of Object.keys(incoming).sort()) {
    if (!propagatable(name) || !rule.matching.test(name)) continue;
    const value = valueOf(incoming[name]);
    if (value !== undefined) out[name] = value;
  }
}

function valueOf(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}
