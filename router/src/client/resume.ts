/**
 * The client side of resumable subscriptions, for graphql-ws and graphql-sse clients (and any
 * client with their `subscribe(payload, sink)` shape): it keeps the newest cursor in the
 * subscription's own request, so when the client library retries after a lost connection (a
 * router drained or gone, a network blip), the request it sends again resumes from that cursor
 * and the router replays what was missed. Both libraries serialize the request again on every
 * attempt, which is what makes this work without touching their retry logic.
 *
 * No dependency: browser and Node clients import it as it is. EventSource needs none of this (it
 * sends `Last-Event-ID` by itself).
 */

export interface SubscribeRequest {
  query: string;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
  extensions?: Record<string, unknown> | null;
}

export interface ResultSink<T> {
  next(value: T): void;
  error(error: unknown): void;
  complete(): void;
}

/** What graphql-ws's and graphql-sse's clients have in common. */
export interface SubscribingClient<R extends SubscribeRequest, T> {
  subscribe(request: R, sink: ResultSink<T>): () => void;
}

/**
 * Subscribes through `client` so that its retries resume where the last result left off. Start
 * from `cursor` to resume a subscription from an earlier session. Returns the client's own
 * unsubscribe function.
 */
export function subscribeResumable<R extends SubscribeRequest, T>(
  client: SubscribingClient<R, T>,
  request: R,
  sink: ResultSink<T>,
  cursor?: string,
): () => void {
  const extensions: Record<string, unknown> = { ...request.extensions };
  if (cursor !== undefined) extensions.cursor = cursor;
  const kept = { ...request, extensions };
  return client.subscribe(kept, {
    next(value) {
      const next = (value as { extensions?: { cursor?: unknown } } | null)?.extensions?.cursor;
      if (typeof next === 'string') extensions.cursor = next;
      sink.next(value);
    },
    error: (error) => sink.error(error),
    complete: () => sink.complete(),
  });
}
