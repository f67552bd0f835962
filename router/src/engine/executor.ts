/**
 * Runs a Plan: every fetch starts as soon as the fetches it depends on are done, so independent
 * subgraphs are called in parallel and each entity level costs one round trip per subgraph. An
 * entity fetch is one request for every path the planner batched into it (`Fetch.calls`): the
 * representations of all its objects, identical ones once per `_entities` field. Subgraph data
 * is merged into one store, then shaped into the client's response. A failed fetch (subgraph
 * unreachable, HTTP error, an answer that is not GraphQL) costs only the fields it was to provide:
 * each object it was to complete records the failure (`addFailure`), and the shape reports the
 * fetch's error at each of those fields the client selected, list indices included. A fetch that
 * cannot be sent for an object because a failed one left out what its representation needs
 * (`@requires`, a key from another subgraph) fails there with that error. Errors a subgraph
 * returns keep their own paths, moved to the client's. A failure's message says what failed, never
 * internal exception text; the detail goes to the log.
 *
 * Identical subgraph requests (same subgraph, body and forwarded headers) are sent once: those in
 * flight through the gateway's `flights` (single-flight.ts), for queries and subscription events,
 * and those of one event across subscription groups through `dedupe`. Each execution reads its
 * own copy of a shared answer (`SubgraphReply`), since merging changes it. Mutations share nothing.
 */
import type { GraphQLFormattedError } from 'graphql';
import type { Logger } from 'pino';
import type { ExecutionResult } from './types.js';
import type { EntityCall, EntityPart, EntityTarget, Fetch, Plan, Rename, ReprField, SubSel } from './plan.js';
import { addFailure, errorPrefixes, failureFor, failuresOf, shapeRoot, type FetchFailure } from './shape.js';
import {
  SubgraphFetchError,
  type SubgraphClient,
  type SubgraphReply,
  type SubgraphResponse,
} from './subgraph-client.js';
import type { Cancellation, SingleFlight } from './single-flight.js';
import type { EventBus } from '../event-fields/bus.js';
import { projectEvent } from '../event-fields/event-data.js';
import { runPublish, runRequest } from '../event-fields/fetches.js';
import type { Supergraph } from './supergraph.js';
import type { SubgraphHeaders } from './headers.js';

type Obj = Record<string, unknown>;
type RespPath = (string | number)[];

export interface ExecuteOptions {
  client: SubgraphClient;
  supergraph: Supergraph;
  /** Called once per HTTP request sent to a subgraph. */
  onSubgraphRequest?: (subgraph: string) => void;
  /** Called once per subgraph request answered by an identical one instead of being sent. */
  onSubgraphRequestDeduplicated?: (subgraph: string) => void;
  /**
   * Subgraph requests in flight, shared by every execution of this gateway: an identical request
   * (same subgraph, body and headers) joins the one in flight instead of being sent. Queries and
   * subscription events only; a mutation's fetches never join or start a shared request.
   */
  flights?: SubgraphFlights;
  /**
   * The client gave up: its execution stops waiting, fetches not yet sent fail, and a request it
   * alone was waiting for is cancelled. Ignored for mutations, which run to the end once started.
   */
  signal?: Cancellation;
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
   * subgraph requests (same subgraph, body and headers) are sent once and their answer reused,
   * also by a group that asks after the request is done.
   */
  dedupe?: Map<string, Promise<SubgraphReply>>;
  /** Called whenever a subgraph request of this execution has its answer (or its failure). */
  onAnswer?: () => void;
  /** Sees the merged subgraph data before it is shaped (subscription filters read it). */
  onStore?: (store: Record<string, unknown>) => void;
  /** Gets the detail of failed fetches, which clients do not see. */
  logger?: Logger;
}

export async function executePlan(
  plan: Plan,
  variables: Record<string, unknown>,
  options: ExecuteOptions,
  introspection?: Record<string, unknown>,
): Promise<ExecutionResult> {
  if (plan.operationType === 'mutation' && (options.flights || options.signal))
    options = { ...options, flights: undefined, signal: undefined };
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
  if (fetch.event) {
    await runEventFetch(fetch, store, variables, errors, options);
    return;
  }
  if (fetch.kind === 'root') {
    const sent = await send(fetch, vars, options);
    options.onAnswer?.();
    if ('error' in sent) {
      addFailure(store, { keys: selectedKeys(fetch.sel), error: sent.error });
      return;
    }
    const { response } = sent;
    if (response.data) {
      if (fetch.renames) applyRenames(response.data, fetch.renames);
      deepMerge(store, response.data);
    }
    for (const e of response.errors ?? []) errors.push(forwardError(e, e.path ? [...e.path] : undefined));
    return;
  }

  await runEntityFetch(fetch, store, vars, errors, options);
}

/** A representation sent once, and every object (with its response path) it completes. */
interface ReprGroup {
  index: number;
  targets: { obj: Obj; part: EntityPart }[];
}

/**
 * Entity fetch: per call, the objects at every part's path, their representations deduplicated
 * (across list items, aliases and paths), then one request for all calls. Each entity is merged
 * into every object that needs it; objects of different parts get their own copy, since later
 * fetches below them may differ. An object whose representation lacks a field because a fetch
 * failed is left out, and fails for this call's fields too.
 */
async function runEntityFetch(
  fetch: Fetch,
  store: Obj,
  vars: Record<string, unknown>,
  errors: GraphQLFormattedError[],
  options: ExecuteOptions,
): Promise<void> {
  const calls = fetch.calls ?? [];
  const byCall: ReprGroup[][] = [];
  /** Each part's first object: its errors go there when they name no entity. */
  const firstObjects = new Map<EntityPart, Obj>();
  const keys = new Map<EntityCall, ReadonlySet<string>>();
  const keysOf = (call: EntityCall) => {
    let set = keys.get(call);
    if (!set) keys.set(call, (set = selectedKeys(call.sel)));
    return set;
  };
  const lacking: Lacking = {};
  let total = 0;
  for (const call of calls) {
    const groups = new Map<string, ReprGroup>();
    const representations: unknown[] = [];
    for (const part of call.parts)
      walk(store, part.path, 0, (obj) => {
        const typename = obj.__typename;
        if (typeof typename !== 'string') return;
        const target = part.targets.get(typename);
        if (!target) return;
        const repr = buildRepresentation(obj, target, lacking);
        if (repr === undefined) {
          const failures = lacking.obj && failuresOf(lacking.obj);
          if (failures)
            addFailure(obj, { keys: keysOf(call), error: failureFor(failures, lacking.key!).error });
          return;
        }
        const key = JSON.stringify(repr);
        let group = groups.get(key);
        if (!group) {
          group = { index: representations.length, targets: [] };
          groups.set(key, group);
          representations.push(repr);
        }
        group.targets.push({ obj, part });
        if (!firstObjects.has(part)) firstObjects.set(part, obj);
      });
    vars[call.variable] = representations;
    byCall.push([...groups.values()]);
    total += representations.length;
  }
  if (total === 0) return;
  /** Every object of call `c` fails for the call's fields. */
  const fail = (c: number, error: GraphQLFormattedError | undefined) => {
    const failure: FetchFailure = { keys: keysOf(calls[c]!), error };
    for (const g of byCall[c]!) for (const t of g.targets) addFailure(t.obj, failure);
  };
  const sent = await send(fetch, vars, options);
  options.onAnswer?.();
  if ('error' in sent) {
    for (let c = 0; c < calls.length; c++) fail(c, sent.error);
    return;
  }
  const { response } = sent;
  const callOf = new Map<string, number>();
  calls.forEach((call, i) => callOf.set(call.responseKey, i));
  for (let c = 0; c < calls.length; c++) {
    const call = calls[c]!;
    const groups = byCall[c]!;
    if (groups.length === 0) continue;
    const entities = response.data?.[call.responseKey];
    if (!Array.isArray(entities)) {
      // With errors, those are reported (below); without, the answer is malformed.
      if (!response.errors?.length)
        fail(c, fetchError(fetch.subgraph.name, 'the response has no _entities list'));
      continue;
    }
    if (call.renames) applyRenames(entities, call.renames);
    for (const g of groups) {
      const entity = entities[g.index];
      if (!entity || typeof entity !== 'object') {
        // A null entity with errors: its missing fields are explained by those errors already.
        if (response.errors?.length) {
          const failure: FetchFailure = { keys: keysOf(call) };
          for (const t of g.targets) addFailure(t.obj, failure);
        }
        continue;
      }
      let copies: Map<EntityPart, Obj> | undefined;
      for (const t of g.targets) {
        let value = entity as Obj;
        if (t.part !== g.targets[0]!.part && hasObjects(value)) {
          copies ??= new Map();
          let copy = copies.get(t.part);
          if (!copy) copies.set(t.part, (copy = structuredClone(value)));
          value = copy;
        }
        if (t.part.resolvesTypename && typeof value.__typename === 'string')
          t.obj.__typename = value.__typename;
        deepMerge(t.obj, value);
      }
    }
  }
  if (!response.errors?.length) return;
  // Response paths are only needed for errors: found now rather than kept for every object.
  const paths = pathsOf(store, calls);
  const partPaths = [...firstObjects.values()].map((obj) => paths.get(obj)!);
  for (const e of response.errors) {
    const p = e.path;
    const c = p && typeof p[0] === 'string' ? callOf.get(p[0]) : undefined;
    if (c !== undefined && typeof p![1] === 'number') {
      const targets = byCall[c]![p![1]]?.targets ?? [];
      for (const t of targets) errors.push(forwardError(e, [...paths.get(t.obj)!, ...p!.slice(2)]));
      if (targets.length === 0) for (const path of partPaths) errors.push(forwardError(e, path));
    } else {
      for (const path of partPaths) errors.push(forwardError(e, path));
    }
  }
}

/** The response path of every object at the calls' parts' paths. */
function pathsOf(store: Obj, calls: readonly EntityCall[]): Map<Obj, RespPath> {
  const paths = new Map<Obj, RespPath>();
  const visit = (value: unknown, path: string[], i: number, at: RespPath): void => {
    if (value === null || typeof value !== 'object') return;
    if (Array.isArray(value)) {
      for (let k = 0; k < value.length; k++) visit(value[k], path, i, [...at, k]);
      return;
    }
    if (i === path.length) {
      paths.set(value as Obj, at);
      return;
    }
    visit((value as Obj)[path[i]!], path, i + 1, [...at, path[i]!]);
  };
  for (const call of calls) for (const part of call.parts) visit(store, part.path, 0, []);
  return paths;
}

/** Store keys of the fields `sel` selects on its objects, in every type fragment. */
function selectedKeys(sel: SubSel, into = new Set<string>()): Set<string> {
  for (const key of sel.fields.keys()) into.add(key);
  for (const fragment of sel.fragments.values()) selectedKeys(fragment, into);
  return into;
}

/** Whether merging `value` into two objects would make them share a nested object. */
function hasObjects(value: Obj): boolean {
  for (const k in value) {
    const v = value[k];
    if (typeof v === 'object' && v !== null) return true;
  }
  return false;
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

/**
 * Subgraph requests in flight (`flights`): one table per subgraph and routing URL, keyed by
 * forwarded headers and body; none for a subgraph whose requests are not shared
 * (`traffic_shaping.*.deduplicate_requests`).
 */
export interface SubgraphFlights {
  of(subgraph: string, url: string): SingleFlight<SubgraphReply> | undefined;
}

/**
 * Sends the fetch's request, or joins an identical one (in flight, or of the same event). A
 * failure is an error for the client: a SubgraphFetchError says what failed in terms safe to
 * show; anything else is a fault here, logged, and named only as such.
 */
async function send(
  fetch: Fetch,
  variables: Record<string, unknown>,
  options: ExecuteOptions,
): Promise<{ response: SubgraphResponse } | { error: GraphQLFormattedError }> {
  const subgraph = fetch.subgraph;
  const { signal } = options;
  if (signal?.aborted) return { error: fetchError(subgraph.name, 'the request was cancelled') };
  try {
    const body = JSON.stringify({ query: fetch.query, variables });
    const headers = options.headers?.[subgraph.name];
    const flights = options.flights?.of(subgraph.name, subgraph.url);
    const sendRequest = (cancel: Cancellation | undefined) => {
      options.onSubgraphRequest?.(subgraph.name);
      return options.client.request(subgraph.name, subgraph.url, body, subgraph.timeoutMs, headers, cancel);
    };
    if (!flights && !options.dedupe) return { response: (await sendRequest(signal)).take() };
    // Requests with other headers (other credentials) never share an answer.
    const key = headers ? `${JSON.stringify(headers)}\n${body}` : body;
    const eventKey = options.dedupe && `${subgraph.name}\n${subgraph.url}\n${key}`;
    let reply = eventKey ? options.dedupe!.get(eventKey) : undefined;
    let shared = reply !== undefined;
    if (!reply) {
      if (flights) {
        const joined = flights.run(key, sendRequest, signal);
        reply = joined.promise;
        shared = joined.shared;
      } else {
        reply = sendRequest(signal);
      }
      if (eventKey) options.dedupe!.set(eventKey, reply);
    }
    if (shared) options.onSubgraphRequestDeduplicated?.(subgraph.name);
    return { response: (await reply).take() };
  } catch (err) {
    if (signal?.aborted) return { error: fetchError(subgraph.name, 'the request was cancelled') };
    if (err instanceof SubgraphFetchError) {
      options.logger?.debug({ err, subgraph: subgraph.name }, 'subgraph fetch failed');
      return { error: fetchError(subgraph.name, err.reason) };
    }
    options.logger?.error({ err, subgraph: subgraph.name }, 'subgraph fetch failed in the router');
    return { error: fetchError(subgraph.name, 'internal error (see the router log)') };
  }
}

/** The error of a failed fetch; the shape puts it at each field the fetch was to fill. */
function fetchError(subgraph: string, reason: string): GraphQLFormattedError {
  return {
    message: `Failed to fetch from subgraph "${subgraph}": ${reason}`,
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

/** Undoes the planner's conflict aliases (see `Fetch.renames`), deepest first. */
function applyRenames(data: unknown, renames: readonly Rename[]): void {
  const ordered = [...renames].sort((a, b) => b.path.length - a.path.length);
  for (const r of ordered)
    walk(data, r.path, 0, (obj) => {
      if (obj.__typename === r.typename && r.alias in obj) {
        obj[r.key] = obj[r.alias];
        delete obj[r.alias];
      }
    });
}

/**
 * Visits every object at `path` below `value` (lists walked, nulls skipped). Paths are not built
 * here: most fetches never need them, and `pathsOf` finds them when errors do.
 */
function walk(value: unknown, path: string[], i: number, visit: (obj: Obj) => void): void {
  if (value === null || value === undefined) return;
  if (Array.isArray(value)) {
    for (let k = 0; k < value.length; k++) walk(value[k], path, i, visit);
    return;
  }
  if (typeof value !== 'object') return;
  if (i === path.length) {
    visit(value as Obj);
    return;
  }
  walk((value as Obj)[path[i]!], path, i + 1, visit);
}

/** Where a representation could not be built: the object (`obj` or one below it) and the key it lacks. */
interface Lacking {
  obj?: Obj;
  key?: string;
}

function buildRepresentation(obj: Obj, target: EntityTarget, lacking: Lacking): Obj | undefined {
  const repr: Obj = { __typename: target.reprTypename };
  return fillRepr(obj, target.fields, repr, lacking) ? repr : undefined;
}

function fillRepr(obj: Obj, fields: ReprField[], out: Obj, lacking: Lacking): boolean {
  for (const f of fields) {
    if (f.typeCondition && obj.__typename !== f.typeCondition) continue;
    const v = obj[f.storeKey];
    if (v === undefined) {
      lacking.obj = obj;
      lacking.key = f.storeKey;
      return false;
    }
    if (!f.children || v === null) {
      out[f.name] = v;
      continue;
    }
    const nested = reprValue(v, f.children, lacking);
    if (nested === undefined) return false;
    out[f.name] = nested;
  }
  return true;
}

function reprValue(v: unknown, children: ReprField[], lacking: Lacking): unknown {
  if (v === null) return null;
  if (Array.isArray(v)) {
    const items: unknown[] = [];
    for (const x of v) {
      const item = reprValue(x, children, lacking);
      if (item === undefined) return undefined;
      items.push(item);
    }
    return items;
  }
  if (typeof v !== 'object') return v;
  const obj = v as Obj;
  const out: Obj = {};
  if (children.some((c) => c.typeCondition) && typeof obj.__typename === 'string')
    out.__typename = obj.__typename;
  return fillRepr(obj, children, out, lacking) ? out : undefined;
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
