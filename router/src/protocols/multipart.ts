/**
 * GraphQL over multipart HTTP (`multipart/mixed`): one HTTP response carries one operation, each
 * result in its own part. This module knows nothing of HTTP: the adapter (server/multipart.ts)
 * hands it a `StreamSocket` whose first write commits the `200` head, and tells it the framing.
 *
 * Two framings, both with the boundary `graphql`:
 * - `subscription`: Apollo's multipart subscription protocol (`subscriptionSpec="1.0"`). Each
 *   result is wrapped as `{"payload":<result>}`; a `{}` part is a heartbeat (clients ignore it),
 *   sent when the stream opens and every `heartbeatIntervalMs`; an operation that ends with errors
 *   sends them as `{"payload":null,"errors":[...]}` (the protocol's fatal error), then the closing
 *   delimiter.
 * - `single` (queries and mutations): the incremental-delivery format (graphql-over-http's
 *   IncrementalDelivery RFC, Apollo's `deferSpec=20220824`) with no `@defer`: one part holding the
 *   result itself, unwrapped, with `"hasNext":false`, then the closing delimiter.
 *
 * On the wire, as Apollo's router writes it: the body opens with the delimiter `\r\n--graphql`,
 * and every part is `\r\ncontent-type: application/json\r\n\r\n<json>` followed at once by the
 * next delimiter `\r\n--graphql`, so a client can hand a part on as soon as it arrives instead of
 * waiting for the next one to learn where it ended. The body ends with `--\r\n`, completing the
 * closing delimiter `\r\n--graphql--\r\n`.
 *
 * The operation's life (started before the head, the slow-consumer rule, the end by either
 * side) is stream.ts's, which this module frames.
 */
import type { GraphQLFormattedError } from 'graphql';
import { startStream, type StreamOptions, type StreamStart } from './stream.js';

export const MULTIPART_MIXED = 'multipart/mixed';
/** The response type of a subscription stream. */
export const SUBSCRIPTION_CONTENT_TYPE = 'multipart/mixed;boundary="graphql";subscriptionSpec="1.0"';
/** The response type of a query or mutation answered as multipart (one incremental part). */
export const INCREMENTAL_CONTENT_TYPE = 'multipart/mixed;boundary="graphql";deferSpec=20220824';

export type MultipartFraming = 'subscription' | 'single';

const DELIMITER = '\r\n--graphql';
const PART_HEAD = '\r\ncontent-type: application/json\r\n\r\n';
/** Turns the delimiter after the last part into the closing delimiter. */
const CLOSE = '--\r\n';
export const HEARTBEAT_PART = PART_HEAD + '{}' + DELIMITER;

export function contentTypeFor(framing: MultipartFraming): string {
  return framing === 'subscription' ? SUBSCRIPTION_CONTENT_TYPE : INCREMENTAL_CONTENT_TYPE;
}

/** One result as a part, wrapped or not as the framing wants; the JSON is the engine's own text. */
export function resultPart(framing: MultipartFraming, json: string): string {
  if (framing === 'subscription') return PART_HEAD + '{"payload":' + json + '}' + DELIMITER;
  // The engine's result is a JSON object (`{"data":...}`): close it with hasNext instead of "}".
  const body = json === '{}' ? '{"hasNext":false}' : json.slice(0, -1) + ',"hasNext":false}';
  return PART_HEAD + body + DELIMITER;
}

/** The last part of an operation that ended with errors. */
function errorsPart(framing: MultipartFraming, errors: readonly GraphQLFormattedError[]): string {
  return framing === 'subscription'
    ? PART_HEAD + `{"payload":null,"errors":${JSON.stringify(errors)}}` + DELIMITER
    : resultPart(framing, JSON.stringify({ errors }));
}

/** The whole body for an operation that never ran: its errors as the one result, then the end. */
export function rejectedBody(framing: MultipartFraming, errors: readonly GraphQLFormattedError[]): string {
  return DELIMITER + resultPart(framing, JSON.stringify({ errors })) + CLOSE;
}

/** Starts the operation; on success the stream is open and its head written. */
export function startMultipartStream(options: StreamOptions & { framing: MultipartFraming }): StreamStart {
  const { framing } = options;
  // Heartbeats are for subscription streams; a query's head is committed as it starts.
  const heartbeat =
    framing === 'subscription' && options.heartbeatIntervalMs > 0 ? HEARTBEAT_PART : undefined;
  return startStream(options, {
    preamble: DELIMITER,
    result: (json) => resultPart(framing, json),
    failed: (errors) => errorsPart(framing, errors) + CLOSE,
    completed: CLOSE,
    opening: heartbeat ?? '',
    heartbeat,
  });
}
