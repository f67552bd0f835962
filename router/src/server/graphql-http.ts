/**
 * GraphQL over HTTP (queries and mutations): `POST path` with a JSON body and `GET path?query=`.
 * Follows the GraphQL-over-HTTP spec: `application/graphql-response+json` answers request errors
 * with 4xx, `application/json` with 200; GET never runs a mutation (405). Every error, including a
 * body fastify itself cannot parse, is answered as `{"errors":[{"message": ...}]}`.
 *
 * Streaming requests are parsed and checked here too, then handed on by their Accept header:
 * `multipart/mixed` to the multipart adapter (server/multipart.ts), `text/event-stream` to the
 * SSE adapter (server/sse.ts); when both are named, the higher quality wins, then the first
 * listed. JSON stays the answer for no Accept header, wildcards (`*\/*`) and JSON types.
 *
 * With an `Authenticator`, every GraphQL request's token is verified first, whatever its Accept
 * header: a token that does not verify (or none, under `authorization.require_authentication`)
 * gets `401` with one error whose `extensions.code` is `UNAUTHENTICATED`, and nothing runs; a
 * verified identity goes with the request to the engine and to streams (`RequestContext.auth`).
 *
 * With `deduplicateRequests` (`traffic_shaping.router.deduplicate_requests`), identical queries in
 * flight share one execution and its serialized response: same document, operation name,
 * variables and extensions, and the same request headers but for those that describe the
 * connection rather than the request (`INBOUND_KEY_IGNORES`). Mutations never share. A client
 * that goes away stops waiting; the execution goes on while another client still waits for it.
 *
 * The plugin reaches the engine only through `Gateway.prepare`, read from the holder once per
 * request, so the execution config can be replaced while the server runs.
 */
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { GraphQLFormattedError } from 'graphql';
import { UNAUTHENTICATED, type Authenticator } from '../auth/authenticator.js';
import type { AuthContext, GraphQLRequest, RequestContext } from '../engine/types.js';
import { INTERNAL_ERROR } from '../engine/limits.js';
import { resultBody } from '../engine/result-json.js';
import { SingleFlight } from '../engine/single-flight.js';
import type { HttpOperationType, RouterMetrics } from '../observability/metrics.js';
import type { GatewayHolder } from '../engine/gateway-holder.js';
import type { MultipartHandler } from './multipart.js';
import type { EventStreamHandler } from './sse.js';
import {
  APPLICATION_JSON,
  GRAPHQL_RESPONSE_JSON,
  negotiateResponseType,
  prefersHtml,
  type ResponseMediaType,
} from './media-type.js';

export interface GraphqlHttpOptions {
  /** Where GraphQL is served, e.g. `/graphql`. */
  path: string;
  gateway: GatewayHolder;
  metrics: RouterMetrics;
  /** The GraphiQL page for `GET path` from a browser; absent when the playground is disabled. */
  playgroundHtml?: () => string | Promise<string>;
  /** Serves requests that ask for `text/event-stream` (GraphQL over SSE); absent = no SSE. */
  eventStream?: EventStreamHandler;
  /** Serves requests that ask for `multipart/mixed`; absent = no multipart. */
  multipart?: MultipartHandler;
  /** Verifies tokens; absent = every client is anonymous. */
  authenticator?: Authenticator;
  /** Identical queries in flight share one execution (see the module header); default false. */
  deduplicateRequests?: boolean;
}

/**
 * Request headers that say how this client connected, not what it asked: requests that differ
 * only in these still share one execution. Every other header (a token, a cookie, a trace id, the
 * user agent) keeps requests apart, whether or not a header rule forwards it.
 */
const INBOUND_KEY_IGNORES = new Set([
  'accept',
  'accept-encoding',
  'connection',
  'content-length',
  'host',
  'keep-alive',
  'te',
  'transfer-encoding',
  'upgrade',
]);

/** A problem with the HTTP request itself: it never reached the engine. */
class RequestError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const operationTypes = new WeakMap<FastifyRequest, HttpOperationType>();
/** GraphiQL page views: same path, but not GraphQL requests. */
const pageViews = new WeakSet<FastifyRequest>();
/** SSE and multipart streams: counted as connections, not as requests (their duration is the subscription's). */
const streams = new WeakSet<FastifyRequest>();

export const graphqlHttpPlugin: FastifyPluginAsync<GraphqlHttpOptions> = async (app, options) => {
  const { path, gateway, metrics } = options;
  const inbound = options.deduplicateRequests ? new SingleFlight<Buffer>() : undefined;

  // Our own JSON parser, so a malformed body is answered as a GraphQL error naming the problem.
  // text/plain (fastify's other default) is refused: it would let a cross-site form post GraphQL.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = String(body);
    if (text.trim() === '') {
      done(
        new RequestError(
          400,
          'Request body is empty: expected a JSON object such as {"query": "{ __typename }"}.',
        ),
      );
      return;
    }
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(new RequestError(400, `Request body is not valid JSON: ${(err as Error).message}.`));
    }
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const mediaType = negotiateResponseType(request.headers.accept) ?? APPLICATION_JSON;
    if (error instanceof RequestError)
      return sendErrors(reply, error.statusCode, mediaType, error.message, error.headers);
    switch (error.code) {
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return sendErrors(
          reply,
          415,
          mediaType,
          `Unsupported content type ${JSON.stringify(request.headers['content-type'] ?? '')}: send GraphQL requests as application/json.`,
        );
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return sendErrors(
          reply,
          413,
          mediaType,
          `Request body is too large (limit: traffic_shaping.router.max_request_body_size).`,
        );
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return sendErrors(
          reply,
          400,
          mediaType,
          'Request body length does not match its Content-Length header.',
        );
    }
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500)
      return sendErrors(reply, error.statusCode, mediaType, error.message);
    request.log.error({ err: error }, 'GraphQL request failed');
    // The detail stays in the log: a client gets the stable code only.
    return sendResult(reply, 500, mediaType, { errors: [INTERNAL_ERROR] });
  });

  app.addHook('onResponse', async (request, reply) => {
    if (pageViews.has(request) || streams.has(request)) return;
    const operationType = operationTypes.get(request) ?? 'unknown';
    metrics.httpRequests.inc({ operation_type: operationType, status: String(reply.statusCode) });
    metrics.httpRequestDuration.observe({ operation_type: operationType }, reply.elapsedTime / 1000);
  });

  app.post(path, async (request, reply) => {
    const body = request.body;
    if (body === undefined)
      throw new RequestError(
        400,
        'Request body is missing: expected a JSON object such as {"query": "{ __typename }"}.',
      );
    if (body === null || typeof body !== 'object' || Array.isArray(body))
      throw new RequestError(400, 'Request body must be a JSON object such as {"query": "{ __typename }"}.');
    return handle(request, reply, readParams(body as Record<string, unknown>, false));
  });

  app.get(path, async (request, reply) => {
    const params = request.query as Record<string, unknown>;
    if (options.playgroundHtml && prefersHtml(request.headers.accept)) {
      pageViews.add(request);
      return reply.type('text/html; charset=utf-8').send(await options.playgroundHtml());
    }
    return handle(request, reply, readParams(params, true));
  });

  app.route({
    method: ['PUT', 'PATCH', 'DELETE'],
    url: path,
    handler: async () => {
      throw new RequestError(405, 'GraphQL requests use POST (or GET for queries).', { allow: 'GET, POST' });
    },
  });

  async function handle(
    request: FastifyRequest,
    reply: FastifyReply,
    params: GraphQLRequest,
  ): Promise<FastifyReply> {
    let auth: AuthContext | undefined;
    if (options.authenticator?.enabled) {
      const outcome = await options.authenticator.request(request.headers);
      if (!outcome.ok) {
        const mediaType = negotiateResponseType(request.headers.accept) ?? APPLICATION_JSON;
        return sendResult(reply.header('www-authenticate', 'Bearer'), 401, mediaType, {
          errors: [{ message: outcome.message, extensions: { code: UNAUTHENTICATED } }],
        });
      }
      auth = outcome.auth;
    }
    const accept = request.headers.accept;
    if (options.multipart?.accepts(accept)) {
      streams.add(request);
      return options.multipart.handle(request, reply, params, auth);
    }
    if (options.eventStream?.accepts(accept)) {
      streams.add(request);
      return options.eventStream.handle(request, reply, params, auth);
    }
    const mediaType = negotiateResponseType(request.headers.accept);
    if (!mediaType)
      throw new RequestError(
        406,
        `Not acceptable: this endpoint answers ${GRAPHQL_RESPONSE_JSON} or ${APPLICATION_JSON} (Accept was ${JSON.stringify(request.headers.accept)}).`,
      );
    const current = gateway.current;
    if (!current) return sendErrors(reply, 503, mediaType, 'The router has no execution config loaded yet.');

    const prepared = current.prepare(params);
    if (prepared.kind === 'errors')
      return sendResult(reply, mediaType === GRAPHQL_RESPONSE_JSON ? 400 : 200, mediaType, {
        errors: prepared.errors,
      });

    operationTypes.set(request, prepared.operationKind);
    if (request.method === 'GET' && prepared.operationKind === 'mutation')
      throw new RequestError(
        405,
        'Can only perform a mutation operation from a POST request (this was a GET).',
        {
          allow: 'POST',
        },
      );
    if (prepared.operationKind === 'subscription')
      throw new RequestError(
        400,
        `Subscriptions need a streaming transport: a WebSocket on ${path} (graphql-transport-ws or graphql-ws), or this request with Accept: text/event-stream or multipart/mixed.`,
      );

    const ctx = requestContext(request, reply, auth);
    if (!inbound || prepared.operationKind !== 'query')
      return sendBody(reply, 200, mediaType, resultBody(await prepared.execute(ctx)));
    let body: Buffer;
    try {
      const joined = inbound.run(
        inboundKey(params, request.headers),
        async (signal) => resultBody(await prepared.execute({ ...ctx, signal })),
        ctx.signal,
      );
      if (joined.shared) metrics.httpRequestsDeduplicated.inc();
      body = await joined.promise;
    } catch (err) {
      // Nobody is left to read an answer.
      if (ctx.signal?.aborted) return sendErrors(reply, 200, mediaType, 'The request was cancelled.');
      throw err;
    }
    return sendBody(reply, 200, mediaType, body);
  }
};

function readParams(source: Record<string, unknown>, fromQueryString: boolean): GraphQLRequest {
  const where = fromQueryString ? 'query parameter' : 'field';
  const single = (name: string): unknown => {
    const value = source[name];
    if (Array.isArray(value) && fromQueryString)
      throw new RequestError(400, `The "${name}" query parameter must be given once.`);
    return value;
  };
  const query = single('query');
  if (query === undefined || query === null)
    throw new RequestError(
      400,
      fromQueryString
        ? 'Missing "query" query parameter: send GET ?query={ __typename } (or POST a JSON body).'
        : 'Missing "query" field: expected a JSON object such as {"query": "{ __typename }"}.',
    );
  if (typeof query !== 'string') throw new RequestError(400, `The "query" ${where} must be a string.`);
  if (query.trim() === '') throw new RequestError(400, `The "query" ${where} is empty.`);

  const operationName = single('operationName');
  if (operationName !== undefined && operationName !== null && typeof operationName !== 'string')
    throw new RequestError(400, `The "operationName" ${where} must be a string.`);

  const request: GraphQLRequest = {
    query,
    operationName: (operationName as string | null | undefined) ?? null,
  };
  for (const name of ['variables', 'extensions'] as const) {
    let value = single(name);
    if (fromQueryString && typeof value === 'string' && value !== '') {
      try {
        value = JSON.parse(value);
      } catch (err) {
        throw new RequestError(
          400,
          `The "${name}" query parameter is not valid JSON: ${(err as Error).message}.`,
        );
      }
    }
    if (value === undefined || value === null || value === '') continue;
    if (typeof value !== 'object' || Array.isArray(value))
      throw new RequestError(400, `The "${name}" ${where} must be a JSON object.`);
    request[name] = value as Record<string, unknown>;
  }
  return request;
}

/** What makes two query requests the same request (see `INBOUND_KEY_IGNORES`). */
function inboundKey(params: GraphQLRequest, headers: FastifyRequest['headers']): string {
  const kept: [string, unknown][] = [];
  for (const name of Object.keys(headers).sort())
    if (!INBOUND_KEY_IGNORES.has(name)) kept.push([name, headers[name]]);
  return JSON.stringify([
    params.query,
    params.operationName ?? null,
    params.variables ?? null,
    params.extensions ?? null,
    kept,
  ]);
}

function requestContext(
  request: FastifyRequest,
  reply: FastifyReply,
  auth: AuthContext | undefined,
): RequestContext {
  // Abort the work for a client that went away before its answer.
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new Error('client closed the connection'));
  });
  return { headers: request.headers, signal: controller.signal, ...(auth ? { auth } : {}) };
}

function sendResult(
  reply: FastifyReply,
  status: number,
  mediaType: ResponseMediaType,
  result: { data?: unknown; errors?: readonly GraphQLFormattedError[] },
): FastifyReply {
  return sendBody(reply, status, mediaType, JSON.stringify(result));
}

function sendBody(
  reply: FastifyReply,
  status: number,
  mediaType: ResponseMediaType,
  json: string | Buffer,
): FastifyReply {
  return reply.code(status).type(`${mediaType}; charset=utf-8`).send(json);
}

function sendErrors(
  reply: FastifyReply,
  status: number,
  mediaType: ResponseMediaType,
  message: string,
  headers: Record<string, string> = {},
): FastifyReply {
  for (const [k, v] of Object.entries(headers)) reply.header(k, v);
  return sendResult(reply, status, mediaType, { errors: [{ message }] });
}
