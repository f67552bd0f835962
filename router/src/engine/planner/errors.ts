/**
 * Why an operation cannot be planned, in words a client can act on. The planner refuses an
 * operation that a subgraph cannot answer as a whole rather than send the fetches it can plan:
 * a field no subgraph can resolve from where the selection reaches it would otherwise come back
 * as `null` with some subgraph's error (or no error at all), after requests that cannot help.
 *
 * Invariants: every refusal of the planner is a `PlanError`, thrown before any fetch runs, and
 * the gateway answers it as a request error (no `data`) with `extensions.code`
 * `QUERY_PLANNING_FAILED` (docs/federation-errors.md). A field that cannot be reached is an
 * `UnresolvableField`: its message names the field (`Type.field`), its path in the operation
 * (response keys, lists implicit) and the reason; a field the planner needed for another one
 * (a key, a `@requires` field set, a filter's field) is reported as the reason why the field the
 * operation selected cannot be resolved (`because`).
 */
import type { GraphQLObjectType } from 'graphql';
import type { Subgraph } from '../supergraph.js';
import { canResolve, requiresOf, resolvableKeys, typeInSubgraph } from './capabilities.js';
import type { PlanContext } from './context.js';

export class PlanError extends Error {
  override name = 'PlanError';
  /** `extensions.code` of the client's error. */
  readonly code = 'QUERY_PLANNING_FAILED';
}

/** A part of the selection no subgraph can resolve where the operation reaches it. */
export class UnresolvableField extends PlanError {
  /**
   * @param subject what cannot be resolved: `Type.field`, or `the concrete type of Interface`
   * @param path response keys from the operation root to it, dot-separated
   * @param reason why, starting lower-case (it is also used inside another field's reason)
   */
  constructor(
    readonly subject: string,
    readonly path: string,
    readonly reason: string,
  ) {
    super(`Cannot resolve ${subject} at "${path}": ${reason}.`);
  }
}

/**
 * Runs `plan`, which plans fields that `subject` (at `path()`, computed only on failure) needs,
 * and reports a field it cannot resolve as the reason `subject` cannot be:
 * `${need(inner subject)}, and ${inner reason}`. The same subject at the same path (an entity key
 * that leads back to the field being jumped) passes unchanged.
 */
export function because<T>(
  subject: string,
  path: () => string,
  need: (inner: string) => string,
  plan: () => T,
): T {
  try {
    return plan();
  } catch (err) {
    if (!(err instanceof UnresolvableField)) throw err;
    const at = path();
    if (err.subject === subject && err.path === at) throw err;
    throw new UnresolvableField(subject, at, `${need(err.subject)}, and ${err.reason}`);
  }
}

/**
 * The refusal of field `name` of `type`, which `subgraph` does not resolve and no entity jump
 * reaches: every other subgraph that resolves it, and why it cannot be used from `subgraph`.
 * `keysUnreachable`: those subgraphs accept a key, but `subgraph` cannot supply any of them.
 */
export function unreachableField(
  ctx: PlanContext,
  subgraph: Subgraph,
  type: GraphQLObjectType,
  name: string,
  path: string,
  keysUnreachable = false,
): UnresolvableField {
  const coordinate = `${type.name}.${name}`;
  const why: string[] = [];
  for (const s of ctx.supergraph.subgraphs) {
    const own = s === subgraph;
    // The subgraph planning the field only counts when it resolves it through `_entities` (@requires).
    if (!canResolve(s, type.name, name, undefined) || (own && !requiresOf(s, type.name, name))) continue;
    const typeThere = typeInSubgraph(s, type.name);
    const keys = resolvableKeys(s, type.name);
    const needs = own ? ` (its @requires makes it resolvable only through _entities)` : '';
    if (s.kind !== 'graphql') why.push(`subgraph "${s.name}" serves events, not entity fetches`);
    else if (keys.length === 0)
      why.push(`subgraph "${s.name}" has no resolvable key for ${typeThere}${needs}`);
    else if (keysUnreachable)
      why.push(
        `subgraph "${s.name}" accepts ${typeThere} only by the key${keys.length > 1 ? 's' : ''} ${keys.map((k) => `"${k.selectionSet}"`).join(', ')}, which subgraph "${subgraph.name}" cannot supply`,
      );
  }
  return new UnresolvableField(
    coordinate,
    path,
    `no subgraph that can be reached from subgraph "${subgraph.name}" resolves ${coordinate} (${why.length > 0 ? why.join('; ') : 'no other subgraph resolves it'})`,
  );
}
