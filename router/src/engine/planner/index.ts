/**
 * The query planner. Hand-written because it is the product's core: it turns a client operation
 * into subgraph Fetches over the execution config's datasources.
 *
 * Method: walk the client selection per concrete runtime type, starting in the subgraph that owns
 * each root field (`root-fields.ts`). A field the current subgraph resolves joins the current
 * fetch (`walk.ts`); any other field opens (or joins) an entity fetch to a subgraph that
 * resolves it, keyed by (parent fetch, path, subgraph), so every object at one path for one
 * subgraph goes in one `_entities` request (entity jumps, `walk.ts`). The parent fetch is extended with
 * the key fields and any @requires fields (planned the same way, so requirements that live in a
 * third subgraph become fetches of their own and dependencies). A value no single subgraph
 * completes (a value type several subgraphs extend, reached through an entity) is split: each
 * group of its fields is fetched through the parent entity from a subgraph that has them
 * (`split.ts`). Subgraphs are chosen by cost (`cost.ts`, over `capabilities.ts`); interfaces known
 * only as @interfaceObject get their concrete type resolved first (also `walk.ts`).
 *
 * Batching: when the walk is done, the entity fetches of one subgraph at one planning step (depth
 * in the dependency graph) are merged into one fetch, so an operation costs at most one request
 * per subgraph per step however many aliases, list items or sibling paths need that subgraph.
 * Inside that request, paths whose selections are identical or concern disjoint types share one
 * `_entities` field (each representation sent once); a type selected differently at two paths
 * gets a second, aliased `_entities` field rather than a merged selection, so no path's fields
 * (and their `@requires`) are applied to another path's representations (`batching.ts`). Each
 * fetch's operation text is printed last (`print.ts`).
 *
 * Refusals: an operation with a field no subgraph can resolve from where the selection reaches it
 * (no resolvable key leads there, a key or `@requires` field cannot be fetched, an
 * @interfaceObject's concrete type has no owner to resolve it) is refused while it is planned,
 * before any fetch: `planOperation` throws a `PlanError` naming the field, its path and why
 * (`errors.ts`), and the gateway answers it as a request error with code QUERY_PLANNING_FAILED.
 * The walk visits every field the operation selects at every position a subgraph can return, so
 * nothing is left out silently: an interface position where the subgraph returns none of the
 * implementations is walked as the interface itself.
 *
 * Invariants: a client field is stored under its response key; a field the planner adds for keys
 * or requirements is stored under its name unless the client uses that response key for another
 * field, then under `__edfs_<name>` (`__edfs_<name>_<digest of the arguments>` for a field set
 * field with arguments that the client does not select alike). Both rules are pure functions of
 * the client selection, so every fetch agrees on where a value lives (`store-keys.ts`). The one
 * place a subgraph's response uses other keys: sibling type fragments that select one key with
 * different types in that subgraph are printed with aliases, and the executor renames them back
 * before merging (`Fetch.renames`).
 */
import type { OperationDefinitionNode } from 'graphql';
import type { Fragments } from '../collect.js';
import type { Plan } from '../plan.js';
import { buildShape } from '../shape.js';
import type { Supergraph } from '../supergraph.js';
import { batchEntityFetches } from './batching.js';
import { createPlanContext, type PlanOptions } from './context.js';
import { printFetches } from './print.js';
import { planRootFields } from './root-fields.js';

export { newSubSel, type PlanOptions } from './context.js';
export { PlanError } from './errors.js';
export { printSubSel } from './print.js';
export { internalStoreKey } from './store-keys.js';

export function planOperation(
  supergraph: Supergraph,
  operation: OperationDefinitionNode,
  fragments: Fragments,
  variables: Record<string, unknown>,
  options: PlanOptions = {},
): Plan {
  const ctx = createPlanContext({ supergraph, operation, fragments, variables, options });
  const { rootType, subscription, introspection } = planRootFields(ctx);
  batchEntityFetches(ctx);
  printFetches(ctx);
  return {
    operationType: operation.operation,
    subscription,
    fetches: ctx.fetches,
    shape: buildShape(supergraph.clientSchema, rootType.name, [operation.selectionSet], fragments, variables),
    introspection,
  };
}
