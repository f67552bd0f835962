/**
 * The one composition module: subgraph SDLs in, the router's execution config out.
 *
 * Federation is done by `@wundergraph/composition` and the config is built by
 * `@wundergraph/cosmo-shared`, the same way `wgc router compose` does it, so the output runs on
 * our router and on Cosmo's. Used by `edfs compose`, the Supergraph reconciler and the demo.
 *
 * Invariant: the function is pure and deterministic. Subgraphs are ordered by name and the
 * config `version` is a hash of the normalized inputs, so identical inputs (in any order) give a
 * byte-identical `configJson`, which the operator relies on for its config hash.
 */
import { createHash } from 'node:crypto';
import { printSchemaWithDirectives } from '@graphql-tools/utils';
import {
  COMPOSITION_VERSION,
  federateSubgraphs,
  ROUTER_COMPATIBILITY_VERSION_ONE,
  type FederationSuccess,
  type Subgraph,
} from '@wundergraph/composition';
import {
  buildRouterConfig,
  normalizeURL,
  SubgraphKind,
  type ComposedSubgraph,
} from '@wundergraph/cosmo-shared';
import { GraphQLError, parse, printSchema } from 'graphql';

/** How the router reaches a subgraph's own (non-EDFS) subscriptions. */
export type SubscriptionProtocol = 'ws' | 'sse' | 'sse_post';
export type WebsocketSubprotocol = 'auto' | 'graphql-ws' | 'graphql-transport-ws';

export interface SubgraphInput {
  name: string;
  /** Omit (or leave empty) for an event-only subgraph that the router never calls over HTTP. */
  routingUrl?: string;
  sdl: string;
  /** Defaults to `routingUrl`. */
  subscriptionUrl?: string;
  /** Defaults to `ws`. */
  subscriptionProtocol?: SubscriptionProtocol;
  /** Defaults to `auto`; only meaningful with protocol `ws`. */
  websocketSubprotocol?: WebsocketSubprotocol;
}

export interface ComposeOptions {
  /** Skip the check that every field is reachable; for graphs the check wrongly calls unresolvable. */
  disableResolvabilityValidation?: boolean;
}

export interface CompositionError {
  /** The subgraph to fix, when one can be named. */
  subgraph?: string;
  message: string;
}

export type ComposeResult =
  | {
      ok: true;
      /** The execution config (`RouterConfig` in its protobuf JSON form). */
      config: Record<string, unknown>;
      /** `config` serialized; the bytes to write or hash. */
      configJson: string;
      /** Hash of the inputs, also stored as `config.version`. */
      version: string;
      warnings: string[];
    }
  | { ok: false; errors: CompositionError[] };

const SUBSCRIPTION_PROTOCOLS: readonly string[] = ['ws', 'sse', 'sse_post'];
const WEBSOCKET_SUBPROTOCOLS: readonly string[] = ['auto', 'graphql-ws', 'graphql-transport-ws'];

interface NormalizedSubgraph {
  name: string;
  routingUrl: string;
  sdl: string;
  subscriptionUrl: string;
  subscriptionProtocol: SubscriptionProtocol;
  websocketSubprotocol: WebsocketSubprotocol;
}

export function composeSupergraph(subgraphs: SubgraphInput[], options: ComposeOptions = {}): ComposeResult {
  const errors: CompositionError[] = [];
  if (subgraphs.length === 0) {
    return { ok: false, errors: [{ message: 'no subgraphs to compose' }] };
  }

  const seen = new Set<string>();
  const normalized: NormalizedSubgraph[] = [];
  for (const input of subgraphs) {
    const result = normalizeSubgraph(input);
    if ('error' in result) {
      errors.push(result.error);
    } else if (seen.has(result.name)) {
      errors.push({ subgraph: result.name, message: 'the subgraph name is used more than once' });
    } else {
      seen.add(result.name);
      normalized.push(result);
    }
  }
  normalized.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const federationInputs: Subgraph[] = [];
  for (const subgraph of normalized) {
    try {
      federationInputs.push({
        name: subgraph.name,
        url: subgraph.routingUrl,
        definitions: parse(subgraph.sdl),
      });
    } catch (err) {
      errors.push({ subgraph: subgraph.name, message: describeSyntaxError(err) });
    }
  }
  if (errors.length > 0) return { ok: false, errors };

  const compositionOptions = {
    disableResolvabilityValidation: options.disableResolvabilityValidation === true,
  };
  let result;
  try {
    result = federateSubgraphs({
      subgraphs: federationInputs,
      version: ROUTER_COMPATIBILITY_VERSION_ONE,
      options: compositionOptions,
    });
  } catch (err) {
    return { ok: false, errors: [{ message: `composition failed: ${errorMessage(err)}` }] };
  }
  if (!result.success) {
    // The library can report the same problem once per field instance; one line is enough.
    const messages = [...new Set(result.errors.map((e) => e.message))];
    return { ok: false, errors: messages.map(toCompositionError) };
  }

  const version = inputHash(normalized, compositionOptions);
  try {
    const routerConfig = buildExecutionConfig(result, normalized, version);
    return {
      ok: true,
      config: routerConfig.toJson() as Record<string, unknown>,
      configJson: routerConfig.toJsonString(),
      version,
      warnings: result.warnings.map((w) => withSubgraph(w.subgraph?.name, w.message)),
    };
  } catch (err) {
    return { ok: false, errors: [{ message: `building the execution config failed: ${errorMessage(err)}` }] };
  }
}

function buildExecutionConfig(result: FederationSuccess, subgraphs: NormalizedSubgraph[], version: string) {
  const routerConfig = buildRouterConfig({
    federatedClientSDL: result.shouldIncludeClientSchema
      ? printSchema(result.federatedGraphClientSchema)
      : '',
    federatedSDL: printSchemaWithDirectives(result.federatedGraphSchema),
    fieldConfigurations: result.fieldConfigurations,
    routerCompatibilityVersion: ROUTER_COMPATIBILITY_VERSION_ONE,
    schemaVersionId: version,
    subgraphs: subgraphs.map((s, index): ComposedSubgraph => {
      const subgraphConfig = result.subgraphConfigBySubgraphName.get(s.name);
      return {
        kind: SubgraphKind.Standard,
        id: `${index}`,
        name: s.name,
        url: s.routingUrl,
        sdl: s.sdl,
        subscriptionUrl: s.subscriptionUrl,
        subscriptionProtocol: s.subscriptionProtocol,
        websocketSubprotocol: s.websocketSubprotocol,
        schema: subgraphConfig?.schema,
        configurationDataByTypeName: subgraphConfig?.configurationDataByTypeName,
      };
    }),
  });
  routerConfig.version = version;
  return routerConfig;
}

function normalizeSubgraph(input: SubgraphInput): NormalizedSubgraph | { error: CompositionError } {
  const name = typeof input?.name === 'string' ? input.name.trim() : '';
  if (name === '') return { error: { message: 'a subgraph has no name' } };
  const fail = (message: string) => ({ error: { subgraph: name, message } });

  if (typeof input.sdl !== 'string' || input.sdl.trim() === '') return fail('the schema (SDL) is empty');

  let routingUrl = input.routingUrl?.trim() ?? '';
  if (routingUrl !== '') {
    if (!URL.canParse(routingUrl)) return fail(`routing URL "${routingUrl}" is not a valid URL`);
    routingUrl = normalizeURL(routingUrl);
  }
  const subscriptionUrl = input.subscriptionUrl?.trim() || routingUrl;
  if (subscriptionUrl !== '' && !URL.canParse(subscriptionUrl)) {
    return fail(`subscription URL "${subscriptionUrl}" is not a valid URL`);
  }
  const subscriptionProtocol = input.subscriptionProtocol ?? 'ws';
  if (!SUBSCRIPTION_PROTOCOLS.includes(subscriptionProtocol)) {
    return fail(
      `subscription protocol "${subscriptionProtocol}" is not one of ${SUBSCRIPTION_PROTOCOLS.join(', ')}`,
    );
  }
  const websocketSubprotocol = input.websocketSubprotocol ?? 'auto';
  if (!WEBSOCKET_SUBPROTOCOLS.includes(websocketSubprotocol)) {
    return fail(
      `websocket subprotocol "${websocketSubprotocol}" is not one of ${WEBSOCKET_SUBPROTOCOLS.join(', ')}`,
    );
  }
  return { name, routingUrl, sdl: input.sdl, subscriptionUrl, subscriptionProtocol, websocketSubprotocol };
}

function describeSyntaxError(err: unknown): string {
  if (err instanceof GraphQLError) {
    const at = err.locations?.[0];
    const where = at ? ` at line ${at.line}, column ${at.column}` : '';
    return `schema syntax error${where}: ${err.message.replace(/^Syntax Error: /, '')}`;
  }
  return `schema could not be parsed: ${errorMessage(err)}`;
}

/** The composition library names the subgraph inside its messages (`subgraph "x"`); surface it. */
function toCompositionError(message: string): CompositionError {
  const subgraph = /\bsubgraph "([^"]+)"/i.exec(message)?.[1];
  return subgraph === undefined ? { message } : { subgraph, message };
}

function withSubgraph(subgraph: string | undefined, message: string): string {
  if (!subgraph || message.toLowerCase().includes(`subgraph "${subgraph.toLowerCase()}"`)) return message;
  return `subgraph "${subgraph}": ${message}`;
}

function inputHash(subgraphs: NormalizedSubgraph[], options: Required<ComposeOptions>): string {
  const canonical = JSON.stringify({
    composition: COMPOSITION_VERSION,
    compatibility: ROUTER_COMPATIBILITY_VERSION_ONE,
    disableResolvabilityValidation: options.disableResolvabilityValidation,
    subgraphs: subgraphs.map((s) => [
      s.name,
      s.routingUrl,
      s.subscriptionUrl,
      s.subscriptionProtocol,
      s.websocketSubprotocol,
      s.sdl,
    ]),
  });
  return createHash('sha256').update(canonical).digest('hex');
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
