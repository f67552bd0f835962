/**
 * The Subgraph reconciler: is this schema usable on its own? Reads the SDL (inline or from its
 * ConfigMap), checks the syntax, then normalizes it as a federation subgraph with the same library
 * the composition uses (directives, keys, EDFS event rules), and reports:
 * `Valid` (True / False with every error, each on its own line), `schemaHash` (sha256 of the SDL
 * read), `observedGeneration`, and kstatus' `Stalled` / `Reconciling` while not Valid
 * (summary-status.ts).
 *
 * Invariants: only status is written, and only when it changed; an Event is recorded when the
 * schema turns invalid or valid again. Whether the Subgraph composes with the others is the
 * Supergraph's `Composed` condition, not this one.
 */
import { normalizeSubgraphFromString, ROUTER_COMPATIBILITY_VERSION_ONE } from '@wundergraph/composition';
import { GraphQLError, parse } from 'graphql';
import { API_VERSION, type Subgraph, type SubgraphStatus } from '../api/v1alpha1.js';
import type { Reconciler } from '../controller/controller.js';
import { RESOURCES, splitKey, isDeleting } from '../kube/resources.js';
import {
  findCondition,
  metaTime,
  sameStatus,
  setConditions,
  statusPatch,
  type ConditionInput,
} from './conditions.js';
import type { ReconcileContext } from './context.js';
import type { DependencyIndex } from './dependency-index.js';
import { readSubgraph, sha256 } from './inputs.js';
import { subgraphSummary } from './summary-status.js';
import { WrittenStatus } from './written-status.js';

export interface SubgraphReconcilerOptions extends ReconcileContext {
  index: DependencyIndex;
}

/** Problems with a subgraph schema on its own; empty when valid. */
export function validateSubgraphSchema(sdl: string): string[] {
  try {
    parse(sdl);
  } catch (err) {
    if (err instanceof GraphQLError) {
      const at = err.locations?.[0];
      return [
        `syntax error${at ? ` at line ${at.line}, column ${at.column}` : ''}: ${err.message.replace(/^Syntax Error: /, '')}`,
      ];
    }
    return [`schema could not be parsed: ${String(err)}`];
  }
  const result = normalizeSubgraphFromString({
    sdlString: sdl,
    noLocation: true,
    version: ROUTER_COMPATIBILITY_VERSION_ONE,
  });
  if (result.success) return [];
  return [...new Set(result.errors.map((e) => e.message.replace(/\s*\n\s*/g, ' ').trim()))];
}

export function subgraphStatus(
  sg: Subgraph,
  read: { sdl: string } | { error: string },
  now: string,
): SubgraphStatus {
  let valid: ConditionInput;
  let schemaHash: string | undefined;
  if ('error' in read) {
    valid = { type: 'Valid', status: 'False', reason: 'SchemaUnavailable', message: read.error };
  } else {
    schemaHash = sha256(read.sdl);
    const problems = validateSubgraphSchema(read.sdl);
    valid =
      problems.length === 0
        ? { type: 'Valid', status: 'True', reason: 'Valid', message: 'the schema is a valid subgraph' }
        : { type: 'Valid', status: 'False', reason: 'InvalidSchema', message: problems.join('\n') };
  }
  const generation = sg.metadata.generation;
  return {
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    ...(schemaHash ? { schemaHash } : {}),
    conditions: setConditions(sg.status?.conditions, [valid, ...subgraphSummary(valid)], generation, now),
  };
}

export class SubgraphReconciler implements Reconciler {
  private readonly written = new WrittenStatus<SubgraphStatus>();

  constructor(private readonly opts: SubgraphReconcilerOptions) {}

  async reconcile(key: string): Promise<void> {
    const { cache, client, index } = this.opts;
    const { namespace, name } = splitKey(key);
    const found = cache.get<Subgraph>(RESOURCES.Subgraph, namespace, name);
    if (!found || isDeleting(found)) {
      index.remove(key);
      this.written.forget(key);
      return;
    }
    const previous = this.written.current(key, found);
    const sg: Subgraph = { ...found, apiVersion: API_VERSION, kind: 'Subgraph', status: previous };
    const deps = new Set<string>();
    const input = readSubgraph(sg, cache, deps);
    index.set(key, deps);
    const status = subgraphStatus(
      sg,
      'error' in input ? { error: input.error.message } : { sdl: input.sdl },
      metaTime(this.opts.now()),
    );
    if (sameStatus(previous, status)) return;
    await client.patchStatus(
      RESOURCES.Subgraph,
      namespace,
      name,
      statusPatch({ ...found.status, ...previous }, status),
    );
    this.written.remember(key, found.metadata.resourceVersion, status);
    const before = findCondition(sg.status?.conditions, 'Valid');
    const after = findCondition(status.conditions, 'Valid')!;
    if (after.status === 'False' && (before?.status !== 'False' || before.message !== after.message)) {
      await this.opts.events.record(sg, 'Warning', after.reason, after.message);
    } else if (after.status === 'True' && before?.status === 'False') {
      await this.opts.events.record(sg, 'Normal', 'Valid', after.message);
    }
  }
}
