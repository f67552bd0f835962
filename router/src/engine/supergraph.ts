/**
 * The supergraph as the planner sees it: for every subgraph, which fields it resolves, which it only
 * references (@external), its entity keys, @requires and @provides field sets, and its own schema
 * (for the types it can actually return). Built once per execution config; immutable afterwards.
 */
import { buildSchema, Kind, parse, type GraphQLSchema, type SelectionSetNode } from 'graphql';
import type { DataSourceConfigurationJson, ExecutionConfigJson } from '../execution-config/types.js';

export interface EntityKey {
  selectionSet: string;
  fields: SelectionSetNode;
  resolvable: boolean;
}

export interface Subgraph {
  readonly id: string;
  readonly name: string;
  readonly url: string;
  readonly kind: 'graphql' | 'pubsub';
  readonly timeoutMs: number;
  /** The subgraph's own schema (from the config's string storage), when present. */
  readonly schema: GraphQLSchema | undefined;
  /** typeName -> fields this subgraph resolves itself. */
  readonly fields: Map<string, Set<string>>;
  /** typeName -> fields this subgraph declares @external (resolvable only where provided). */
  readonly external: Map<string, Set<string>>;
  readonly keys: Map<string, EntityKey[]>;
  /** "Type.field" -> field set the subgraph needs in the representation. */
  readonly requires: Map<string, SelectionSetNode>;
  /** "Type.field" -> field set the subgraph resolves below that field even though @external. */
  readonly provides: Map<string, SelectionSetNode>;
  /** concrete type -> interface name, for types this subgraph only knows as an @interfaceObject. */
  readonly interfaceObjectOf: Map<string, string>;
  readonly raw: DataSourceConfigurationJson;
}

/** An EDFS root field: which broker operation serves it (from `customEvents`). */
export interface EventField {
  subgraph: Subgraph;
  type: 'subscribe' | 'publish' | 'request';
  providerKind: 'nats' | 'kafka';
  providerId: string;
  subjects: string[];
  stream?: { streamName: string; consumerName: string; consumerInactiveThresholdSeconds?: number };
}

/** Who may load a field (`@authenticated`, `@requiresScopes`); see authorization.ts. */
export interface FieldAuthorization {
  requiresAuthentication: boolean;
  /** Any one of these sets, each in full (OR of ANDs); empty when no scopes are required. */
  orScopes: readonly (readonly string[])[];
}

export interface Supergraph {
  /** "Type.field" -> the event source serving that root field. */
  readonly eventFields: Map<string, EventField>;
  /** "Type.field" -> `@openfed__subscriptionFilter` condition (execution config JSON). */
  readonly subscriptionFilters: Map<string, unknown>;
  /** "Type.field" -> who may load it; only protected fields are present. */
  readonly authorization: Map<string, FieldAuthorization>;
  /** Full router schema (includes @inaccessible parts the planner may need). */
  readonly schema: GraphQLSchema;
  /** What clients see: validation and introspection run against this one. */
  readonly clientSchema: GraphQLSchema;
  readonly subgraphs: Subgraph[];
  readonly byName: Map<string, Subgraph>;
}

export function parseFieldSet(selectionSet: string): SelectionSetNode {
  const doc = parse(`{${selectionSet}}`, { noLocation: true });
  const op = doc.definitions[0];
  if (!op || op.kind !== Kind.OPERATION_DEFINITION) throw new Error(`invalid field set "${selectionSet}"`);
  return op.selectionSet;
}

function addAll(map: Map<string, Set<string>>, typeName: string, names: readonly string[] | undefined): void {
  if (!names || names.length === 0) return;
  let set = map.get(typeName);
  if (!set) map.set(typeName, (set = new Set()));
  for (const n of names) set.add(n);
}

function buildUpstreamSchema(sdl: string | undefined, name: string): GraphQLSchema | undefined {
  if (!sdl) return undefined;
  try {
    return buildSchema(sdl, { assumeValid: true, assumeValidSDL: true });
  } catch (err) {
    throw new Error(
      `subgraph "${name}": cannot read its schema from the execution config: ${(err as Error).message}`,
    );
  }
}

export function buildSupergraph(config: ExecutionConfigJson): Supergraph {
  const engine = config.engineConfig;
  let schema: GraphQLSchema;
  try {
    schema = buildSchema(engine.graphqlSchema, { assumeValidSDL: true });
  } catch (err) {
    throw new Error(
      `execution config: engineConfig.graphqlSchema is not a valid schema: ${(err as Error).message}`,
    );
  }
  let clientSchema = schema;
  if (engine.graphqlClientSchema) {
    try {
      clientSchema = buildSchema(engine.graphqlClientSchema, { assumeValidSDL: true });
    } catch (err) {
      throw new Error(
        `execution config: engineConfig.graphqlClientSchema is not a valid schema: ${(err as Error).message}`,
      );
    }
  }
  const names = new Map((config.subgraphs ?? []).map((s) => [s.id, s]));
  const storage = engine.stringStorage ?? {};
  const subgraphs: Subgraph[] = engine.datasourceConfigurations.map((ds, index) => {
    const meta = names.get(ds.id);
    const name = meta?.name ?? `subgraph-${ds.id}`;
    const fields = new Map<string, Set<string>>();
    const external = new Map<string, Set<string>>();
    for (const node of [...(ds.rootNodes ?? []), ...(ds.childNodes ?? [])]) {
      addAll(fields, node.typeName, node.fieldNames);
      addAll(external, node.typeName, node.externalFieldNames);
    }
    const keys = new Map<string, EntityKey[]>();
    for (const k of ds.keys ?? []) {
      const list = keys.get(k.typeName) ?? [];
      list.push({
        selectionSet: k.selectionSet,
        fields: parseFieldSet(k.selectionSet),
        resolvable: !k.disableEntityResolver,
      });
      keys.set(k.typeName, list);
    }
    const coordinateMap = (list: DataSourceConfigurationJson['requires']) =>
      new Map((list ?? []).map((r) => [`${r.typeName}.${r.fieldName}`, parseFieldSet(r.selectionSet)]));
    const interfaceObjectOf = new Map<string, string>();
    for (const io of ds.interfaceObjects ?? [])
      for (const c of io.concreteTypeNames ?? []) interfaceObjectOf.set(c, io.interfaceTypeName);
    const url = ds.customGraphql?.fetch?.url?.staticVariableContent ?? meta?.routingUrl ?? '';
    const timeout = Number(ds.requestTimeoutSeconds ?? 10);
    const kind = ds.kind === 'PUBSUB' || ds.customEvents ? 'pubsub' : 'graphql';
    const upstreamKey = ds.customGraphql?.upstreamSchema?.key;
    return {
      id: ds.id ?? String(index),
      name,
      url,
      kind,
      timeoutMs: (Number.isFinite(timeout) && timeout > 0 ? timeout : 10) * 1000,
      schema: buildUpstreamSchema(upstreamKey ? storage[upstreamKey] : undefined, name),
      fields,
      external,
      keys,
      requires: coordinateMap(ds.requires),
      provides: coordinateMap(ds.provides),
      interfaceObjectOf,
      raw: ds,
    } satisfies Subgraph;
  });
  const eventFields = new Map<string, EventField>();
  for (const subgraph of subgraphs) {
    const events = subgraph.raw.customEvents;
    const entries = [
      ...(events?.nats ?? []).map((e) => ({
        kind: 'nats' as const,
        e,
        subjects: e.subjects ?? [],
        stream: e.streamConfiguration,
      })),
      ...(events?.kafka ?? []).map((e) => ({
        kind: 'kafka' as const,
        e,
        subjects: e.topics ?? [],
        stream: undefined,
      })),
    ];
    for (const { kind, e, subjects, stream } of entries) {
      const c = e.engineEventConfiguration ?? {};
      if (!c.typeName || !c.fieldName) continue;
      // protobuf JSON omits the enum's zero value (PUBLISH).
      const type = c.type === 'SUBSCRIBE' ? 'subscribe' : c.type === 'REQUEST' ? 'request' : 'publish';
      eventFields.set(`${c.typeName}.${c.fieldName}`, {
        subgraph,
        type,
        providerKind: kind,
        providerId: c.providerId ?? 'default',
        subjects,
        stream:
          stream?.streamName && stream.consumerName
            ? {
                streamName: stream.streamName,
                consumerName: stream.consumerName,
                consumerInactiveThresholdSeconds: stream.consumerInactiveThreshold,
              }
            : undefined,
      });
    }
  }
  const subscriptionFilters = new Map<string, unknown>();
  const authorization = new Map<string, FieldAuthorization>();
  for (const fc of engine.fieldConfigurations ?? []) {
    const coordinate = `${fc.typeName}.${fc.fieldName}`;
    if (fc.subscriptionFilterCondition) subscriptionFilters.set(coordinate, fc.subscriptionFilterCondition);
    const auth = fc.authorizationConfiguration;
    const orScopes = (auth?.requiredOrScopes ?? []).map((s) => s.requiredAndScopes ?? []);
    if (auth?.requiresAuthentication || orScopes.length > 0)
      authorization.set(coordinate, { requiresAuthentication: true, orScopes });
  }
  return {
    schema,
    clientSchema,
    subgraphs,
    byName: new Map(subgraphs.map((s) => [s.name, s])),
    eventFields,
    subscriptionFilters,
    authorization,
  };
}
