/**
 * The gateway: one execution config made servable. Parses and validates client documents against
 * the client schema (cached by document text), coerces variables, plans once per (document,
 * operation, @include/@skip values) and executes. Everything a client can get wrong comes back as
 * spec-shaped GraphQL errors; nothing here throws at a request.
 */
import {
  GraphQLError,
  Kind,
  execute as executeIntrospection,
  getOperationAST,
  parse,
  validate,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLFormattedError,
  type GraphQLSchema,
  type OperationDefinitionNode,
  visit,
} from 'graphql';
import { getVariableValues } from 'graphql/execution/values.js';
import type { Logger } from 'pino';
import { checkExecutionConfig } from '../execution-config/load.js';
import type { ExecutionConfigJson } from '../execution-config/types.js';
import { executePlan } from './executor.js';
import type { Plan } from './plan.js';
import { PlanError, planOperation } from './planner.js';
import { SubgraphClient } from './subgraph-client.js';
import { buildSupergraph, type Supergraph } from './supergraph.js';
import type {
  ExecutionResult,
  GraphQLRequest,
  PreparedRequest,
  PreparedSubscription,
  RequestContext,
} from './types.js';
import { checkEventData, eventArguments, eventSelection, type EventBus } from './event-fields.js';
import type { SubgraphResponse } from './subgraph-client.js';
import { hasHeaderRules, subgraphHeaders, type HeaderRules } from './headers.js';

export { loadExecutionConfig } from '../execution-config/load.js';

export interface GatewayOptions {
  /** Overrides each subgraph's timeout from the execution config. */
  subgraphTimeoutMs?: number;
  onSubgraphRequest?: (subgraph: string) => void;
  logger?: Logger;
  /** Parsed documents kept (by text). */
  documentCacheSize?: number;
  /** Brokers for event-driven publish and request fields. */
  events?: EventBus;
  /** Which client headers reach which subgraph (`headers` in router.yaml); none without. */
  headerRules?: HeaderRules;
}

export interface Gateway {
  prepare(req: GraphQLRequest): PreparedRequest;
  execute(req: GraphQLRequest, ctx?: RequestContext): Promise<ExecutionResult>;
  readonly clientSchema: GraphQLSchema;
  readonly supergraph: Supergraph;
  readonly config: ExecutionConfigJson;
  close(): Promise<void>;
}

interface CachedDocument {
  /** The document text this entry is the cache entry of. */
  query: string;
  document?: DocumentNode;
  errors?: GraphQLFormattedError[];
  fragments: Record<string, FragmentDefinitionNode>;
  plans: Map<string, Plan | GraphQLFormattedError[]>;
  /** Variables used by @include/@skip, per operation: they select the plan. */
  conditionVariables: Map<string, string[]>;
}

export function createGateway(executionConfig: unknown, options: GatewayOptions = {}): Gateway {
  const config = checkExecutionConfig(executionConfig);
  const supergraph = buildSupergraph(config);
  const client = new SubgraphClient({ timeoutMs: options.subgraphTimeoutMs });
  const cacheSize = options.documentCacheSize ?? 1000;
  const headerRules = hasHeaderRules(options.headerRules) ? options.headerRules : undefined;
  const documents = new Map<string, CachedDocument>();

  function documentFor(query: string): CachedDocument {
    let entry = documents.get(query);
    if (entry) {
      // Refresh recency (Map iteration order is insertion order: oldest first).
      documents.delete(query);
      documents.set(query, entry);
      return entry;
    }
    entry = { query, fragments: {}, plans: new Map(), conditionVariables: new Map() };
    try {
      const document = parse(query);
      const errors = validate(supergraph.clientSchema, document);
      if (errors.length > 0) entry.errors = errors.map((e) => e.toJSON());
      else {
        entry.document = document;
        for (const def of document.definitions)
          if (def.kind === Kind.FRAGMENT_DEFINITION) entry.fragments[def.name.value] = def;
      }
    } catch (err) {
      entry.errors = [err instanceof GraphQLError ? err.toJSON() : { message: (err as Error).message }];
    }
    documents.set(query, entry);
    if (documents.size > cacheSize) documents.delete(documents.keys().next().value!);
    return entry;
  }

  function prepare(req: GraphQLRequest): PreparedRequest {
    if (typeof req.query !== 'string' || req.query.trim() === '')
      return { kind: 'errors', errors: [{ message: 'Must provide query string.' }] };
    if (req.variables != null && (typeof req.variables !== 'object' || Array.isArray(req.variables)))
      return { kind: 'errors', errors: [{ message: 'Variables must be provided as a JSON object.' }] };
    const entry = documentFor(req.query);
    if (entry.errors) return { kind: 'errors', errors: entry.errors };
    const document = entry.document!;
    const operation = getOperationAST(document, req.operationName ?? undefined);
    if (!operation) {
      const message = req.operationName
        ? `Unknown operation named "${req.operationName}".`
        : 'Must provide operation name if query contains multiple operations.';
      return { kind: 'errors', errors: [{ message }] };
    }
    const coerced = getVariableValues(
      supergraph.clientSchema,
      operation.variableDefinitions ?? [],
      req.variables ?? {},
      {
        maxErrors: 50,
      },
    );
    if (coerced.errors) return { kind: 'errors', errors: coerced.errors.map((e) => e.toJSON()) };
    const variables = coerced.coerced;
    const opKey = operation.name?.value ?? '';
    let condVars = entry.conditionVariables.get(opKey);
    if (!condVars)
      entry.conditionVariables.set(opKey, (condVars = conditionVariables(operation, entry.fragments)));
    const planKey = `${opKey}|${condVars.map((v) => (variables[v] === true ? '1' : '0')).join('')}`;
    let plan = entry.plans.get(planKey);
    if (!plan) {
      try {
        plan = planOperation(supergraph, operation, entry.fragments, variables);
      } catch (err) {
        if (!(err instanceof PlanError)) throw err;
        plan = [{ message: err.message }];
      }
      entry.plans.set(planKey, plan);
    }
    if (Array.isArray(plan)) return { kind: 'errors', errors: plan };
    const ready = plan;
    const executeOptions = {
      client,
      supergraph,
      onSubgraphRequest: options.onSubgraphRequest,
      events: options.events,
    };
    const headersFor = (ctx: RequestContext | undefined) =>
      headerRules &&
      subgraphHeaders(
        headerRules,
        ready.fetches.filter((f) => !f.event).map((f) => f.subgraph.name),
        ctx?.headers,
      );
    let subscription: PreparedSubscription | undefined;
    if (ready.subscription) {
      const source = ready.subscription;
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
        headers: headersFor,
        resolve: (event, dedupe, onStore, headers) =>
          executePlan(ready, variables, {
            ...executeOptions,
            event,
            dedupe: dedupe as Map<string, Promise<SubgraphResponse>> | undefined,
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
        return executePlan(ready, variables, { ...executeOptions, headers: headersFor(ctx) }, introspection);
      },
    };
  }

  return {
    prepare,
    async execute(req, ctx) {
      const prepared = prepare(req);
      if (prepared.kind === 'errors') return { errors: prepared.errors };
      return prepared.execute(ctx);
    },
    clientSchema: supergraph.clientSchema,
    supergraph,
    config,
    close: () => client.close(),
  };
}

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
