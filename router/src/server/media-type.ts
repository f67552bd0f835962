/**
 * Accept-header negotiation on the GraphQL path, the one place the header is parsed. JSON:
 * `application/graphql-response+json` (the spec's own type, where request errors are 4xx) or
 * `application/json` (the legacy type, where a GraphQL error answer is 200); no Accept, or only
 * wildcards, means `application/json`. Streams: `text/event-stream` (SSE) or `multipart/mixed`,
 * only when the header names them (wildcards never ask for a stream). A browser's page: text/html.
 */
import { MULTIPART_MIXED } from '../protocols/multipart.js';
import { EVENT_STREAM } from '../protocols/sse.js';

export const GRAPHQL_RESPONSE_JSON = 'application/graphql-response+json';
export const APPLICATION_JSON = 'application/json';
export type ResponseMediaType = typeof GRAPHQL_RESPONSE_JSON | typeof APPLICATION_JSON;

interface MediaRange {
  type: string;
  subtype: string;
  q: number;
  index: number;
}

function parseAccept(accept: string): MediaRange[] {
  return accept
    .split(',')
    .map((part, index) => {
      const [range = '', ...params] = part.split(';').map((s) => s.trim());
      const [type = '', subtype = ''] = range.toLowerCase().split('/');
      let q = 1;
      for (const p of params) {
        const [k, v] = p.split('=').map((s) => s.trim());
        if (k?.toLowerCase() === 'q' && v !== undefined) q = Number.isFinite(Number(v)) ? Number(v) : 0;
      }
      return { type, subtype, q, index };
    })
    .filter((r) => r.type !== '' && r.subtype !== '');
}

/** How well `accept` takes `mediaType`: its q, the specificity of the matching range, its position. */
function match(ranges: MediaRange[], mediaType: string): { q: number; specificity: number; index: number } {
  const [type, subtype] = mediaType.split('/');
  let best = { q: 0, specificity: -1, index: Number.MAX_SAFE_INTEGER };
  for (const r of ranges) {
    const specificity =
      r.type === type && r.subtype === subtype
        ? 2
        : r.type === type && r.subtype === '*'
          ? 1
          : r.type === '*'
            ? 0
            : -1;
    if (specificity > best.specificity) best = { q: r.q, specificity, index: r.index };
  }
  return best;
}

/** The response media type, or undefined when the client accepts neither (406). */
export function negotiateResponseType(accept: string | undefined): ResponseMediaType | undefined {
  if (accept === undefined || accept.trim() === '') return APPLICATION_JSON;
  const ranges = parseAccept(accept);
  const candidates = [GRAPHQL_RESPONSE_JSON, APPLICATION_JSON].map((type) => ({
    type,
    ...match(ranges, type),
  }));
  const acceptable = candidates.filter((c) => c.q > 0);
  if (acceptable.length === 0) return undefined;
  acceptable.sort(
    (a, b) =>
      b.q - a.q ||
      // a type the client named beats one it only reached through a wildcard; wildcards alone mean JSON
      Number(b.specificity === 2) - Number(a.specificity === 2) ||
      (a.specificity === 2 ? a.index - b.index : 0) ||
      Number(b.type === APPLICATION_JSON) - Number(a.type === APPLICATION_JSON),
  );
  return acceptable[0]!.type as ResponseMediaType;
}

/** A browser asking for a page: text/html named explicitly and preferred to JSON. */
export function prefersHtml(accept: string | undefined): boolean {
  if (!accept) return false;
  const ranges = parseAccept(accept);
  const html = match(ranges, 'text/html');
  if (html.specificity !== 2 || html.q <= 0) return false;
  return html.q >= Math.max(match(ranges, APPLICATION_JSON).q, match(ranges, GRAPHQL_RESPONSE_JSON).q);
}

/** The best quality a header gives the types it names exactly, and where it first names them with it. */
interface NamedQuality {
  q: number;
  at: number;
}

/** Wildcards do not count; a type's parameters (such as `subscriptionSpec`) do not matter. */
function named(ranges: MediaRange[], mediaTypes: readonly string[]): NamedQuality {
  let best = { q: 0, at: -1 };
  for (const r of ranges)
    if (mediaTypes.includes(`${r.type}/${r.subtype}`) && r.q > best.q) best = { q: r.q, at: r.index };
  return best;
}

/** What the header asks for among the answers the GraphQL path can give. */
function answerQualities(accept: string): Record<'multipart' | 'stream' | 'json', NamedQuality> {
  const ranges = parseAccept(accept);
  return {
    multipart: named(ranges, [MULTIPART_MIXED]),
    stream: named(ranges, [EVENT_STREAM]),
    json: named(ranges, [APPLICATION_JSON, GRAPHQL_RESPONSE_JSON]),
  };
}

/** `text/event-stream` named in the Accept header, and no JSON type named with a higher quality. */
export function prefersEventStream(accept: string | undefined): boolean {
  if (!accept) return false;
  const { stream, json } = answerQualities(accept);
  return stream.q > 0 && stream.q >= json.q;
}

/**
 * `multipart/mixed` named in the Accept header, with no JSON type named with a higher quality,
 * and preferred to `text/event-stream` (a higher quality, or the same and listed first).
 */
export function prefersMultipart(accept: string | undefined): boolean {
  if (!accept) return false;
  const { multipart, stream, json } = answerQualities(accept);
  return (
    multipart.q > 0 &&
    multipart.q >= json.q &&
    (multipart.q > stream.q || (multipart.q === stream.q && multipart.at < stream.at))
  );
}
