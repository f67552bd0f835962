/**
 * The gateway: one execution config made servable. Parses and validates client documents against
 * the client schema (cached by document text), coerces variables, plans once per (document,
 * operation, @include/@skip values) and executes. Everything a client can get wrong comes back as
 * spec-shaped GraphQL errors; nothing here throws at a request.
 *
 * A document meets the operation limits (limits.ts) before it is parsed, validated or planned,
 * and the cache of documents and plans is bounded by an estimate of the heap it holds
 * (document-cache.ts), so no sequence of requests can grow the heap without bound. An internal
 * failure reaches the client as `INTERNAL_SERVER_ERROR` only; its detail goes to the log.
 *
 * Identical subgraph requests in flight are sent once (executor.ts, single-flight.ts): one table
 * per gateway, shared by every query and subscription event it executes, per subgraph as
 * `deduplicateRequests` says; never for mutations. A query whose subgraph requests would all be
 * shared joins an identical execution in flight instead (shared-executions.ts).
 *
 * Field authorization (authorization.ts) picks the plan per client: the operation's own plan when
 * the client may load every field it selects, else a plan without the denied fields, cached by
 * what was denied. Queries and mutations are authorized for the client `execute` is given;
 * a subscription for the client `prepare` is given, since its plan is chosen there.
 */
import {
  GraphQLError,
  Kind,
  execute as executeIntrospection,
  getNamedType,
  getOperationAST,
  isIntrospectionType,
  specifiedRules,
  validate,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLFormattedError,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type ValidationRule,
  visit,
} from 'graphql';
import { getVariableValues } from 'graphql/execution/values.js';
import type { Logger } from 'pino';
import { DEFAULT_DOCUMENT_CACHE, DEFAULT_OPERATION_LIMITS } from '../config/defaults.js';
import type { AuthorizationConfig, HeaderRules, OperationLimits } from '../config/types.js';
import { checkExecutionConfig } from '../execution-config/load.js';
import type { ExecutionConfigJson } from '../execution-config/types.js';
import { authorizedPlan, denyFields, protectedFields, type ProtectedField } from './authorization.js';
import { executePlan, type SubgraphFlights } from './executor.js';
import { SingleFlight } from './single-flight.js';
import { SharedExecutions } from './shared-executions.js';
import type { Plan } from './plan.js';
import { PlanError, planOperation } from './planner/index.js';
import { SubgraphClient } from './subgraph-client.js';
import { buildSupergraph, type Supergraph } from './supergraph.js';
import type {
  ExecutionResult,
  GraphQLRequest,
  PreparedRequest,
  PreparedSubscription,
  RequestContext,
} from './types.js';
import type { EventBus } from '../event-fields/bus.js';
import { checkEventData, eventSelection } from '../event-fields/event-data.js';
import { eventArguments } from '../event-fields/fetches.js';
import type { SubgraphErrorKind, SubgraphReply } from './subgraph-client.js';
import { hasHeaderRules, subgraphHeaders } from './headers.js';
import { DocumentCache } from './document-cache.js';
import {
  ErrorCodes,
  INTERNAL_ERROR,
  checkComplexity,
  costRefusal,
  measureDocument,
  operationCost,
  parseDocument,
  refusal,
  scanDocument,
  withoutSuggestions,
  type OperationMeasure,
  type RejectReason,
  type Refusal,
} from './limits.js';

export { loadExecutionConfig } from '../execution-config/load.js';

export interface GatewayOptions {
  /** Overrides each subgraph's timeout from the execution config. */
  subgraphTimeoutMs?: number;
  onSubgraphRequest?: (subgraph: string) => void;
  /** Called once per subgraph request answered by an identical one in flight instead of being sent. */
  onSubgraphRequestDeduplicated?: (subgraph: string) => void;
  /**
   * Whether identical subgraph requests in flight are shared (`traffic_shaping.all` and
   * `traffic_shaping.subgraphs.NAME` `deduplicate_requests`); default: shared for every subgraph.
   */
  deduplicateRequests?: { all: boolean; subgraphs?: Record<string, boolean> };
  /** Called once per failed subgraph request (`router_subgraph_errors_total{subgraph, kind}`). */
  onSubgraphError?: (subgraph: string, kind: SubgraphErrorKind) => void;
  logger?: Logger;
  /** Documents (parsed, validated, with their plans) kept, by text; default 1024. */
  documentCacheSize?: number;
  /** Estimated heap the document cache may hold, in bytes; default 64 MiB. */
  documentCacheBytes?: number;
  /** Operation limits (`security` in router.yaml); default `DEFAULT_OPERATION_LIMITS`. */
  limits?: OperationLimits;
  /** Whether introspection (`__schema`, `__type`) is served; default true. */
  introspection?: boolean;
  /** Called once per request refused by a limit (`router_operations_rejected_total{reason}`). */
  onRejected?: (reason: RejectReason) => void;
  /** Brokers for event-driven publish and request fields. */
  events?: EventBus;
  /** Which client headers reach which subgraph (`headers` in router.yaml); none without. */
  headerRules?: HeaderRules;
  /**
   * One `_entities` request per subgraph per planning step (default true). `false` sends one per
   * path that needs an entity, as routers without batching do: for comparisons and benchmarks.
   */
  entityBatching?: boolean;
  /** `authorization` in router.yaml; by default a denied field is null with its error. */
  authorization?: AuthorizationConfig;
}

export interface Gateway {
  /**
   * `ctx` is the client a subscription is prepared for (its authorization chooses the plan);
   * queries and mutations are authorized for the client `execute` gets.
   */
  prepare(req: GraphQLRequest, ctx?: RequestContext): PreparedRequest;
  execute(req: GraphQLRequest, ctx?: RequestContext): Promise<ExecutionResult>;
  readonly clientSchema: GraphQLSchema;
  readonly supergraph: Supergraph;
  readonly config: ExecutionConfigJson;
  /** The document cache: entries and their estimated heap, with the bounds. */
  cacheStats(): { entries: number; bytes: number; maxEntries: number; maxBytes: number };
  close(): Promise<void>;
}

/**
 * Heap estimates of cache entries, measured on Node.js 20 (test/document-cache.test.ts checks
 * them against the heap): a syntax tree without locations takes about 110 bytes per token; a plan
 * about 1 KB per field it selects, plus its subgraph queries' text.
 */
const ENTRY_BYTES = 4096;
/** The protected fields of every operation of a graph without authorization rules. */
const NOTHING_PROTECTED: readonly ProtectedField[] = [];
const BYTES_PER_TOKEN = 100;
const PLAN_BYTES = 4096;
const PLAN_BYTES_PER_FIELD = 640;

interface CachedDocument {
  /** The document text this entry is the cache entry of. */
  query: string;
  /** Estimated heap this entry holds (see DocumentCache). */
  bytes: number;
  document?: DocumentNode;
  errors?: GraphQLFormattedError[];
  /** Set when `errors` is a limit's refusal: counted on every request that gets it. */
  refused?: RejectReason;
  /** Per operation (by name, '' for the anonymous one): its shape, fragments expanded. */
  measures: Map<string, OperationMeasure>;
  /** Per operation: the complexity or cost refusal, or null when it is within the limits. */
  checked: Map<string, Refusal | null>;
  fragments: Record<string, FragmentDefinitionNode>;
  plans: Map<string, Plan | GraphQLFormattedError[]>;
  /** Variables used by @include/@skip, per operation: they select the plan. */
  conditionVariables: Map<string, string[]>;
  /** Per plan key (as `plans`): the protected fields the operation selects, usually none. */
  protectedFields: Map<string, ProtectedField[]>;
}

export function createGateway(executionConfig: unknown, options: GatewayOptions = {}): Gateway {
  const config = checkExecutionConfig(executionConfig);
  const supergraph = buildSupergraph(config);
  const client = new SubgraphClient({
    timeoutMs: options.subgraphTimeoutMs,
    onError: options.onSubgraphError,
  });
  const dedup = options.deduplicateRequests ?? { all: true };
  const deduplicates = (subgraph: string) => dedup.subgraphs?.[subgraph] ?? dedup.all;
  const tables = new Map<string, SingleFlight<SubgraphReply>>();
  const flights: SubgraphFlights = {
    of(subgraph, url) {
      if (!deduplicates(subgraph)) return undefined;
      const id = `${subgraph}\n${url}`;
      let table = tables.get(id);
      if (!table) tables.set(id, (table = new SingleFlight<SubgraphReply>()));
      return table;
    },
  };
  const shared = new SharedExecutions({
    deduplicates,
    onSubgraphRequest: options.onSubgraphRequest,
    onSubgraphRequestDeduplicated: options.onSubgraphRequestDeduplicated,
  });
  const headerRules = hasHeaderRules(options.headerRules) ? options.headerRules : undefined;
  const rejectUnauthorized = options.authorization?.rejectOperationIfUnauthorized ?? false;
  const planOptions = { batchEntities: options.entityBatching };
  const limits = options.limits ?? DEFAULT_OPERATION_LIMITS;
  const cache = new DocumentCache<CachedDocument>(
    options.documentCacheSize ?? DEFAULT_DOCUMENT_CACHE.entries,
    options.documentCacheBytes ?? DEFAULT_DOCUMENT_CACHE.bytes,
  );
  const rules: readonly ValidationRule[] =
    options.introspection === false ? [...specifiedRules, noIntrospection] : specifiedRules;
  const clean = (errors: readonly GraphQLFormattedError[]): GraphQLFormattedError[] =>
    limits.fieldSuggestions ? [...errors] : errors.map(withoutSuggestions);

  function reject(found: Refusal): PreparedRequest {
    options.onRejected?.(found.reason);
    return { kind: 'errors', errors: [found.error] };
  }

  /**
   * The cache entry of a document: parsed, measured and validated once, within the parser limits
   * (see limits.ts), before anything else sees it. A refusal is an entry too (its text is
   * bounded by the scan), except one over the size limit, which the scan refuses at no cost.
   */
  function documentFor(query: string): CachedDocument {
    const cached = cache.get(query);
    if (cached) return cached;
    const entry: CachedDocument = {
      query,
      bytes: ENTRY_BYTES + query.length,
      measures: new Map(),
      checked: new Map(),
      fragments: {},
      plans: new Map(),
      conditionVariables: new Map(),
      protectedFields: new Map(),
    };
    const { parserLimits } = limits;
    const scanned = scanDocument(query, {
      maxDocumentSizeBytes: parserLimits.maxDocumentSizeBytes,
      maxTokens: parserLimits.maxTokens,
      maxDepth: parserLimits.approximateDepthLimit,
    });
    if ('reason' in scanned) {
      entry.errors = [scanned.error];
      entry.refused = scanned.reason;
      if (scanned.reason === 'document_size') return entry;
    } else {
      const parsed = parseDocument(query, limits);
      const measured =
        parsed instanceof GraphQLError || 'reason' in parsed ? parsed : measureDocument(parsed, limits);
      if (measured instanceof GraphQLError) entry.errors = [measured.toJSON()];
      else if ('reason' in measured) {
        entry.errors = [measured.error];
        entry.refused = measured.reason;
      } else {
        const document = parsed as DocumentNode;
        if (validate(supergraph.clientSchema, document, rules).length > 0) {
          // Validated again on a tree with locations, for errors that point into the text.
          const located = parseDocument(query, limits, true) as DocumentNode;
          const errors = validate(supergraph.clientSchema, located, rules);
          entry.errors = clean(errors.map((e) => e.toJSON()));
          if (errors.some((e) => e.extensions.code === ErrorCodes.INTROSPECTION_DISABLED))
            entry.refused = 'introspection';
        } else {
          entry.document = document;
          entry.measures = measured;
          entry.bytes += scanned.tokens * BYTES_PER_TOKEN;
          for (const def of document.definitions)
            if (def.kind === Kind.FRAGMENT_DEFINITION) entry.fragments[def.name.value] = def;
        }
      }
    }
    if (entry.errors) entry.bytes += 2 * JSON.stringify(entry.errors).length;
    cache.set(query, entry);
    return entry;
  }

  /** Per operation, once: blocked types, the complexity limits and the static cost. */
  function checkOperation(entry: CachedDocument, operation: OperationDefinitionNode): Refusal | null {
    if (operation.operation === 'mutation' && limits.blockMutations)
      return refusal(
        'mutation_blocked',
        ErrorCodes.OPERATION_BLOCKED,
        'Mutations are not allowed on this router (security.block_mutations).',
      );
    if (operation.operation === 'subscription' && limits.blockSubscriptions)
      return refusal(
        'subscription_blocked',
        ErrorCodes.OPERATION_BLOCKED,
        'Subscriptions are not allowed on this router (security.block_subscriptions).',
      );
    const measure = entry.measures.get(operation.name?.value ?? '');
    const over = measure && checkComplexity(measure, limits);
    if (over) return over;
    const { costAnalysis } = limits;
    const rootType = supergraph.clientSchema.getRootType(operation.operation);
    if (costAnalysis.enabled && costAnalysis.staticLimit > 0 && rootType) {
      const cost = operationCost(
        supergraph.clientSchema,
        rootType,
        operation.selectionSet,
        entry.fragments,
        costAnalysis.listSize,
      );
      if (cost > costAnalysis.staticLimit) return costRefusal(cost, costAnalysis.staticLimit);
    }
    return null;
  }

  /** Estimated heap of a plan (or of its errors) kept in a cache entry. */
  function planBytes(plan: Plan | GraphQLFormattedError[], measure: OperationMeasure | undefined): number {
    if (Array.isArray(plan)) return 2 * JSON.stringify(plan).length;
    let bytes = PLAN_BYTES + (measure?.fields ?? 0) * PLAN_BYTES_PER_FIELD;
    for (const fetch of plan.fetches) bytes += fetch.query.length;
    return bytes;
  }

  /**
   * Variable errors with their locations: the cached tree has none, so the operation is parsed
   * again with them (only for a request that has errors to report).
   */
  function variableErrors(req: GraphQLRequest): GraphQLFormattedError[] {
    const located = parseDocument(req.query, limits, true) as DocumentNode;
    const operation = getOperationAST(located, req.operationName ?? undefined)!;
    const coerced = getVariableValues(
      supergraph.clientSchema,
      operation.variableDefinitions ?? [],
      req.variables ?? {},
      { maxErrors: 50 },
    );
    return clean((coerced.errors ?? []).map((e) => e.toJSON()));
  }

  /**
   * A plan from the cache entry (or planned and kept while the cache can hold it), or the errors
   * planning found.
   */
  function cachedPlan(
    entry: CachedDocument,
    opKey: string,
    key: string,
    plan: () => Plan,
  ): Plan | GraphQLFormattedError[] {
    let found = entry.plans.get(key);
    if (found) return found;
    try {
      found = plan();
    } catch (err) {
      if (!(err instanceof PlanError)) throw err;
      found = [{ message: err.message, extensions: { code: err.code } }];
    }
    // Kept while the cache can hold it (its estimate is added to the entry's).
    if (cache.grow(entry.query, entry, planBytes(found, entry.measures.get(opKey))))
      entry.plans.set(key, found);
    return found;
  }

  /** Never throws: an internal failure is logged and answered with a stable code only. */
  function prepare(req: GraphQLRequest, ctx?: RequestContext): PreparedRequest {
    try {
      return prepareRequest(req, ctx);
    } catch (err) {
      options.logger?.error({ err }, 'preparing an operation failed');
      return { kind: 'errors', errors: [INTERNAL_ERROR] };
    }
  }

  function prepareRequest(req: GraphQLRequest, prepareCtx: RequestContext | undefined): PreparedRequest {
    if (typeof req.query !== 'string' || req.query.trim() === '')
      return { kind: 'errors', errors: [{ message: 'Must provide query string.' }] };
    if (req.variables != null && (typeof req.variables !== 'object' || Array.isArray(req.variables)))
      return { kind: 'errors', errors: [{ message: 'Variables must be provided as a JSON object.' }] };
    const nameLimit = limits.operationNameLengthLimit;
    if (nameLimit > 0 && typeof req.operationName === 'string' && req.operationName.length > nameLimit)
      return reject(
        refusal(
          'operation_name_length',
          ErrorCodes.OPERATION_NAME_TOO_LONG,
          `The operation name is longer than the ${nameLimit} characters allowed (security.operation_name_length_limit).`,
        ),
      );
    const entry = documentFor(req.query);
    if (entry.errors) {
      if (entry.refused) options.onRejected?.(entry.refused);
      return { kind: 'errors', errors: entry.errors };
    }
    const document = entry.document!;
    const operation = getOperationAST(document, req.operationName ?? undefined);
    if (!operation) {
      const message = req.operationName
        ? `Unknown operation named "${req.operationName}".`
        : 'Must provide operation name if query contains multiple operations.';
      return { kind: 'errors', errors: [{ message }] };
    }
    const opKey = operation.name?.value ?? '';
    let checked = entry.checked.get(opKey);
    if (checked === undefined) entry.checked.set(opKey, (checked = checkOperation(entry, operation)));
    if (checked) return reject(checked);
    const coerced = getVariableValues(
      supergraph.clientSchema,
      operation.variableDefinitions ?? [],
      req.variables ?? {},
      {
        maxErrors: 50,
      },
    );
    if (coerced.errors) return { kind: 'errors', errors: variableErrors(req) };
    const variables = coerced.coerced;
    let condVars = entry.conditionVariables.get(opKey);
    if (!condVars)
      entry.conditionVariables.set(opKey, (condVars = conditionVariables(operation, entry.fragments)));
    const planKey = `${opKey}|${condVars.map((v) => (variables[v] === true ? '1' : '0')).join('')}`;
    const plan =
      entry.plans.get(planKey) ??
      cachedPlan(entry, opKey, planKey, () =>
        planOperation(supergraph, operation, entry.fragments, variables, planOptions),
      );
    if (Array.isArray(plan)) return { kind: 'errors', errors: plan };
    let protectedSelection = NOTHING_PROTECTED;
    if (supergraph.authorization.size > 0) {
      const found = entry.protectedFields.get(planKey);
      if (found) protectedSelection = found;
      else
        entry.protectedFields.set(
          planKey,
          (protectedSelection = protectedFields(supergraph, operation, entry.fragments, variables)),
        );
    }
    /** The plan for a client: the operation's own when it may load every field selected. */
    const planFor = (ctx: RequestContext | undefined): Plan | GraphQLFormattedError[] => {
      if (protectedSelection.length === 0) return plan;
      const denial = denyFields(supergraph, protectedSelection, ctx?.auth);
      if (!denial) return plan;
      if (rejectUnauthorized || (denial.root && operation.operation === 'subscription')) return denial.errors;
      return cachedPlan(entry, opKey, `${planKey}|${denial.key}`, () =>
        authorizedPlan(supergraph, operation, entry.fragments, variables, denial, planOptions),
      );
    };
    const executeOptions = {
      client,
      supergraph,
      flights,
      onSubgraphRequest: options.onSubgraphRequest,
      onSubgraphRequestDeduplicated: options.onSubgraphRequestDeduplicated,
      events: options.events,
      logger: options.logger,
    };
    const headersFor = (ready: Plan, ctx: RequestContext | undefined) =>
      headerRules &&
      subgraphHeaders(
        headerRules,
        ready.fetches.filter((f) => !f.event).map((f) => f.subgraph.name),
        ctx?.headers,
      );
    let subscription: PreparedSubscription | undefined;
    if (plan.subscription) {
      const authorized = planFor(prepareCtx);
      if (Array.isArray(authorized)) return { kind: 'errors', errors: authorized };
      const ready = authorized;
      const source = ready.subscription!;
      const eventFetch = ready.fetches.find((f) => f.event === source)!;
      const sel = eventSelection(eventFetch);
      let args: Record<string, unknown>;
      try {
        args = eventArguments(supergraph.schema, source, variables);
      } catch (err) {
        return { kind: 'errors', errors: [{ message: (err as Error).message }] };
      }
      subscription = {
        plan: ready,
        variables,
        source,
        args,
        check: (event) => checkEventData(supergraph.schema, source, sel, event),
        headers: (ctx) => headersFor(ready, ctx),
        resolve: (event, dedupe, onStore, headers) =>
          executePlan(ready, variables, {
            ...executeOptions,
            event,
            dedupe: dedupe as Map<string, Promise<SubgraphReply>> | undefined,
            onStore,
            headers,
          }),
      };
    }
    return {
      kind: 'operation',
      operationKind: operation.operation,
      query: entry.query,
      subscription,
      execute: async (ctx?: RequestContext) => {
        const ready = planFor(ctx);
        if (Array.isArray(ready)) return { errors: ready };
        let introspection: Record<string, unknown> | undefined;
        if (ready.introspection) {
          const result = await executeIntrospection({
            schema: supergraph.clientSchema,
            document: ready.introspection.document,
            operationName: req.operationName ?? undefined,
            variableValues: req.variables ?? {},
          });
          introspection = (result.data ?? {}) as Record<string, unknown>;
        }
        const headers = headersFor(ready, ctx);
        const signal = ctx?.signal;
        if (!shared.shareable(ready))
          return executePlan(ready, variables, { ...executeOptions, headers, signal }, introspection);
        const key = headers
          ? `${JSON.stringify(variables)}\n${JSON.stringify(headers)}`
          : JSON.stringify(variables);
        try {
          return await shared.run(
            ready,
            key,
            (run) => executePlan(ready, variables, { ...executeOptions, ...run, headers }),
            signal,
          );
        } catch (err) {
          if (!signal?.aborted) throw err;
          // This client gave up while others still wait: its own answer says what a client of a
          // cancelled execution gets (every fetch cancelled).
          return executePlan(ready, variables, { ...executeOptions, headers, signal });
        }
      },
    };
  }

  return {
    prepare,
    async execute(req, ctx) {
      const prepared = prepare(req, ctx);
      if (prepared.kind === 'errors') return { errors: prepared.errors };
      return prepared.execute(ctx);
    },
    clientSchema: supergraph.clientSchema,
    supergraph,
    config,
    cacheStats: () => ({
      entries: cache.size,
      bytes: cache.bytes,
      maxEntries: cache.maxEntries,
      maxBytes: cache.maxBytes,
    }),
    close: () => client.close(),
  };
}

/**
 * Introspection off (`introspection.enabled: false`): any field of an introspection type
 * (`__schema`, `__type` and everything below them) is an error; `__typename` stays allowed.
 */
const noIntrospection: ValidationRule = (context) => ({
  Field(node) {
    const type = getNamedType(context.getType());
    if ((node.name.value === '__schema' || node.name.value === '__type') && type && isIntrospectionType(type))
      context.reportError(
        new GraphQLError(
          `GraphQL introspection is disabled on this router (introspection.enabled), but the query contained the field "${node.name.value}".`,
          { nodes: node, extensions: { code: ErrorCodes.INTROSPECTION_DISABLED } },
        ),
      );
  },
});

function conditionVariables(
  operation: OperationDefinitionNode,
  fragments: Record<string, FragmentDefinitionNode>,
): string[] {
  const names = new Set<string>();
  const visitor = {
    Directive(node: import('graphql').DirectiveNode) {
      if (node.name.value !== 'include' && node.name.value !== 'skip') return;
      for (const arg of node.arguments ?? [])
        if (arg.value.kind === Kind.VARIABLE) names.add(arg.value.name.value);
    },
  };
  visit(operation, visitor);
  for (const f of Object.values(fragments)) visit(f, visitor);
  return [...names].sort();
}
