/**
 * The HTTP adapter of GraphQL over multipart HTTP (protocols/multipart.ts): the streamed response
 * of stream-route.ts in multipart framing, for requests whose Accept header prefers
 * `multipart/mixed` (media-type.ts).
 *
 * A subscription is served in Apollo's multipart subscription framing; a query or mutation as
 * one incremental-delivery part. Which one is read from the document (a document that does not
 * parse is the service's to refuse, so its framing does not matter).
 *
 * Besides stream-route.ts's invariants: `router_engine_connections` counts queries' streams as it
 * counts subscriptions'; a refused operation is `400 {errors}` for a client that also accepts
 * JSON (as Apollo Client does), and the body's one result for one that accepts only multipart;
 * shutdown ends every open stream without the closing delimiter.
 */
import type { GraphQLRequest } from '../engine/types.js';
import {
  contentTypeFor,
  rejectedBody,
  startMultipartStream,
  type MultipartFraming,
} from '../protocols/multipart.js';
import { prefersMultipart } from './media-type.js';
import {
  createStreamHandler,
  operationKind,
  STREAM_HEADERS,
  type StreamedResponse,
  type StreamHandler,
  type StreamHandlerOptions,
} from './stream-route.js';

export type MultipartHandler = StreamHandler;

/** `heartbeatIntervalMs` is `subscriptions.multipart_heartbeat_interval`; 0 = no heartbeats. */
export function createMultipartHandler(options: StreamHandlerOptions): MultipartHandler {
  return createStreamHandler(options, prefersMultipart, multipartResponse);
}

function multipartResponse(params: GraphQLRequest): StreamedResponse {
  const kind = operationKind(params);
  const framing: MultipartFraming = kind === 'subscription' ? 'subscription' : 'single';
  return {
    headers: { 'content-type': contentTypeFor(framing), ...STREAM_HEADERS },
    kind: () => kind,
    start: (options) => startMultipartStream({ ...options, framing }),
    rejected: (errors) => rejectedBody(framing, errors),
  };
}
