/**
 * Runs a Plan: every fetch starts as soon as the fetches it depends on are done, so independent
 * subgraphs are called in parallel and each entity level costs one round trip per subgraph. All
 * representations of one fetch go in one `_entities` request, identical ones once. Subgraph data
 * is merged into one store, then shaped into the client's response. A failed fetch costs only the
 * fields it was to provide: its error carries the path, everything else is returned.
 */
import type { GraphQLFormattedError } from 'graphql';
import type { ExecutionResult } from './types.js';
import type { Fetch, Plan, Rename, ReprField, EntityTarget } from './plan.js';
import { FAILED, errorPrefixes, shapeRoot } from './shape.js';
import { SubgraphFetchError, type SubgraphClient, type SubgraphResponse } from './subgraph-client.js';
import { projectEvent, runPublish, runRequest, type EventBus } from './event-fields.js';
import type { Supergraph } from './supergraph.js';
import type { SubgraphHeaders } from './headers.js';

type Obj = Record<string, unknown>;
type RespPath = (string | number)[];

export interface ExecuteOptions {
  client: SubgraphClient;
  supergraph: Supergraph;
  onSubgraphRequest?: (subgraph: string) => void;
  /** Headers per subgraph for this request (the `headers` rules applied to the client's). */
  headers?: SubgraphHeaders;
  /** Brokers, for publish and request fields. */
  events?: EventBus;
  /**
   * Subscriptions: the event, already checked (`checkEventData`), as the subscription field's data.
   */
  event?: unknown;
  /**
   * Requests shared by several executions of one event (one per subscription group): identical
   * subgraph requests (same subgraph, same body) are sent once and their response reused.
   */
  dedupe?: Map<string, Promise<SubgraphResponse>>;
  /** Sees the merged subgraph data before it is shaped (subscription filters read it). */
  onStore?: (store: Record<string, unknown>) => void;
}

export async function executePlan(
  plan: Plan,
  variables: Record<string, unknown>,
  options: ExecuteOptions,
  introspection?: Record<string, unknown>,
): Promise<ExecutionResult> {
  const store: Obj = {};
  const errors: GraphQLFormattedError[] = [];
  const running = new Map<Fetch, Promise<void>>();
  const run = (fetch: Fetch): Promise<void> => {
    let p = running.get(fetch);
    if (!p) {
      p = Promise.all([...fetch.deps].map(run)).then(() =>
        runFetch(fetch, store, variables, errors, options),
      );
      running.set(fetch, p);
    }
    return p;
  };
  await Promise.all(plan.fetches.map(run));
  if (introspection) Object.assign(store, introspection);
  options.onStore?.(store);
  const schema = options.supergraph.clientSchema;
  const rootType =
    plan.operationType === 'mutation'
      ? schema.getMutationType()
      : plan.operationType === 'subscription'
        ? schema.getSubscriptionType()
        : schema.getQueryType();
  const ctx = { schema: options.supergraph.clientSchema, errors, errorPrefixes: errorPrefixes(errors) };
  const data = shapeRoot(ctx, plan.shape, store, rootType!.name);
  return errors.length > 0 ? { errors, data } : { data };
}

async function runFetch(
  fetch: Fetch,
  store: Obj,
  variables: Record<string, unknown>,
  errors: GraphQLFormattedError[],
  options: ExecuteOptions,
): Promise<void> {
  const vars: Record<string, unknown> = {};
  for (const name of fetch.variables) if (name in variables) vars[name] = variables[name];
  const subgraph = fetch.subgraph;
  if (fetch.event) {
    await runEventFetch(fetch, store, variables, errors, options);
    return;
  }
  if (fetch.kind === 'root') {
    const rootPath = [...fetch.sel.fields.keys()].slice(0, 1);
    const response = await send(fetch, vars, options, errors, rootPath);
    if (!response) {
      (store as Record<symbol, unknown>)[FAILED] = true;
      return;
    }
    if (response.data) {
      if (fetch.renames) applyRenames(response.data, fetch.renames);
      deepMerge(store, response.data);
    }
    for (const e of response.errors ?? []) errors.push(forwardError(e, e.path ? [...e.path] : undefined));
    return;
  }

  // Entity fetch: collect the objects at the path, build and deduplicate representations.
  const groups = new Map<string, { index: number; targets: { obj: Obj; path: RespPath }[] }>();
  const representations: unknown[] = [];
  walk(store, fetch.path, 0, [], (obj, path) => {
    const typename = obj.__typename;
    if (typeof typename !== 'string') return;
    const target = fetch.targets.get(typename);
    if (!target) return;
    const repr = buildRepresentation(obj, target);
    if (repr === undefined) return;
    const key = JSON.stringify(repr);
    let group = groups.get(key);
    if (!group) {
      group = { index: representations.length, targets: [] };
      groups.set(key, group);
      representations.push(repr);
    }
    group.targets.push({ obj, path });
  });
  if (representations.length === 0) return;
  const reprVar = fetch.query.includes('$_edfs_representations')
    ? '_edfs_representations'
    : 'representations';
  vars[reprVar] = representations;
  const byIndex = [...groups.values()];
  const firstPath = byIndex[0]!.targets[0]!.path;
  const response = await send(fetch, vars, options, errors, firstPath);
  if (!response) {
    for (const g of byIndex) for (const t of g.targets) (t.obj as Record<symbol, unknown>)[FAILED] = true;
    return;
  }
  const entities = response.data?._entities;
  if (Array.isArray(entities)) {
    if (fetch.renames) applyRenames(entities, fetch.renames);
    for (const g of byIndex) {
      const entity = entities[g.index];
      if (!entity || typeof entity !== 'object') {
        // A null entity with errors: its missing fields are explained by those errors already.
        if (response.errors?.length)
          for (const t of g.targets) (t.obj as Record<symbol, unknown>)[FAILED] = true;
        continue;
      }
      for (const t of g.targets) {
        if (fetch.resolvesTypename && typeof (entity as Obj).__typename === 'string')
          t.obj.__typename = (entity as Obj).__typename;
        deepMerge(t.obj, entity as Obj);
      }
    }
  } else if (!response.errors?.length) {
    errors.push(fetchError(subgraph.name, 'the response has no _entities list', firstPath));
  }
  for (const e of response.errors ?? []) {
    const p = e.path;
    if (p && p[0] === '_entities' && typeof p[1] === 'number') {
      const group = byIndex[p[1]];
      const targets = group?.targets ?? [];
      for (const t of targets) errors.push(forwardError(e, [...t.path, ...p.slice(2)]));
      if (targets.length === 0) errors.push(forwardError(e, firstPath));
    } else {
      errors.push(forwardError(e, firstPath));
    }
  }
}

async function runEventFetch(
  fetch: Fetch,
  store: Obj,
  variables: Record<string, unknown>,
  errors: GraphQLFormattedError[],
  options: ExecuteOptions,
): Promise<void> {
  const event = fetch.event!;
  const root = fetch.sel.fields.get(event.responseKey);
  const storeKey = root?.storeKey ?? event.responseKey;
  const schema = options.supergraph.schema;
  const path = [event.responseKey];
  try {
    if (event.type === 'subscribe') {
      store[storeKey] = projectEvent(options.event, root?.sel);
    } else if (!options.events) {
      errors.push({
        message: `${event.parentType}.${event.fieldName}: no event providers are configured`,
        path,
      });
    } else if (event.type === 'publish') {
      const { success } = await runPublish(schema, fetch, variables, options.events);
      store[storeKey] = projectEvent({ __typename: 'edfs__PublishResult', success }, root?.sel);
    } else {
      store[storeKey] = projectEvent(await runRequest(schema, fetch, variables, options.events), root?.sel);
    }
  } catch (err) {
    errors.push({ message: (err as Error).message, path, extensions: { code: 'EVENT_SOURCE_FAILED' } });
  }
}

async function send(
  fetch: Fetch,
  variables: Record<string, unknown>,
  options: ExecuteOptions,
  errors: GraphQLFormattedError[],
  pathForErrors: RespPath,
): Promise<SubgraphResponse | undefined> {
  const subgraph = fetch.subgraph;
  try {
    const body = JSON.stringify({ query: fetch.query, variables });
    const headers = options.headers?.[subgraph.name];
    // Requests with other headers (other credentials) never share a response.
    const dedupeKey = options.dedupe
      ? `${subgraph.name}\n${headers ? JSON.stringify(headers) : ''}\n${body}`
      : undefined;
    const shared = dedupeKey ? options.dedupe!.get(dedupeKey) : undefined;
    // Each execution merges into (and so mutates) what it gets: later users get their own copy.
    if (shared) return structuredClone(await shared);
    options.onSubgraphRequest?.(subgraph.name);
    const request = options.client.post(subgraph.name, subgraph.url, body, subgraph.timeoutMs, headers);
    if (dedupeKey) options.dedupe!.set(dedupeKey, request);
    return await request;
  } catch (err) {
    const reason =
      err instanceof SubgraphFetchError
        ? err.message
        : `Failed to fetch from subgraph "${subgraph.name}": ${(err as Error).message}`;
    errors.push({
      message: reason,
      path: pathForErrors,
      extensions: { code: 'SUBGRAPH_FETCH_FAILED', serviceName: subgraph.name },
    });
    return undefined;
  }
}

function fetchError(subgraph: string, reason: string, path: RespPath): GraphQLFormattedError {
  return {
    message: `Failed to fetch from subgraph "${subgraph}": ${reason}`,
    path,
    extensions: { code: 'SUBGRAPH_FETCH_FAILED', serviceName: subgraph },
  };
}

function forwardError(e: GraphQLFormattedError, path: RespPath | undefined): GraphQLFormattedError {
  const out: { message: string; path?: RespPath; extensions?: Record<string, unknown> } = {
    message: typeof e.message === 'string' ? e.message : 'Unknown subgraph error',
  };
  if (path) out.path = path;
  if (e.extensions && typeof e.extensions === 'object')
    out.extensions = e.extensions as Record<string, unknown>;
  return out;
}

/** Visits every object at `path` below `value` (lists walked, nulls skipped), with its response path. */
/** Undoes the planner's conflict aliases (see `Fetch.renames`), deepest first. */
function applyRenames(data: unknown, renames: readonly Rename[]): void {
  const ordered = [...renames].sort((a, b) => b.path.length - a.path.length);
  for (const r of ordered)
    walk(data, r.path, 0, [], (obj) => {
      if (obj.__typename === r.typename && r.alias in obj) {
        obj[r.key] = obj[r.alias];
        delete obj[r.alias];
      }
    });
}

function walk(
  value: unknown,
  path: string[],
  i: number,
  at: RespPath,
  visit: (obj: Obj, path: RespPath) => void,
): void {
  if (value === null || value === undefined) return;
  if (Array.isArray(value)) {
    for (let k = 0; k < value.length; k++) walk(value[k], path, i, [...at, k], visit);
    return;
  }
  if (typeof value !== 'object') return;
  if (i === path.length) {
    visit(value as Obj, at);
    return;
  }
  const key = path[i]!;
  walk((value as Obj)[key], path, i + 1, [...at, key], visit);
}

function buildRepresentation(obj: Obj, target: EntityTarget): Obj | undefined {
  const repr: Obj = { __typename: target.reprTypename };
  return fillRepr(obj, target.fields, repr) ? repr : undefined;
}

function fillRepr(obj: Obj, fields: ReprField[], out: Obj): boolean {
  for (const f of fields) {
    if (f.typeCondition && obj.__typename !== f.typeCondition) continue;
    const v = obj[f.storeKey];
    if (v === undefined) return false;
    if (!f.children || v === null) {
      out[f.name] = v;
      continue;
    }
    const nested = reprValue(v, f.children);
    if (nested === undefined) return false;
    out[f.name] = nested;
  }
  return true;
}

function reprValue(v: unknown, children: ReprField[]): unknown {
  if (v === null) return null;
  if (Array.isArray(v)) {
    const items = v.map((x) => reprValue(x, children));
    return items.includes(undefined) ? undefined : items;
  }
  if (typeof v !== 'object') return v;
  const obj = v as Obj;
  const out: Obj = {};
  if (children.some((c) => c.typeCondition) && typeof obj.__typename === 'string')
    out.__typename = obj.__typename;
  return fillRepr(obj, children, out) ? out : undefined;
}

function deepMerge(target: Obj, source: Obj): void {
  for (const key of Object.keys(source)) {
    const sv = source[key];
    if (key === '__typename' && target.__typename !== undefined) continue;
    const tv = target[key];
    if (isPlainObject(sv) && isPlainObject(tv)) deepMerge(tv, sv);
    else if (Array.isArray(sv) && Array.isArray(tv) && sv.length === tv.length) mergeLists(tv, sv);
    else target[key] = sv;
  }
}

function mergeLists(target: unknown[], source: unknown[]): void {
  for (let i = 0; i < source.length; i++) {
    const s = source[i];
    const t = target[i];
    if (isPlainObject(s) && isPlainObject(t)) deepMerge(t, s);
    else if (Array.isArray(s) && Array.isArray(t) && s.length === t.length) mergeLists(t, s);
    else target[i] = s;
  }
}

function isPlainObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
