/**
 * What a reconciler is given: a reader over the informer caches, a client for writes, an event
 * recorder, a clock. Reconcilers hold no other state between runs (the dependency index and a
 * composition memo aside, which only save work and never change an outcome).
 */
import type { KubeClient } from '../kube/client.js';
import type { EventRecorder } from '../kube/events.js';
import type { Logger } from '../kube/logger.js';
import type { AnyObject, ResourceType } from '../kube/resources.js';

/** Reads from the informer caches: no requests. */
export interface ObjectReader {
  get<T extends AnyObject>(type: ResourceType, namespace: string, name: string): T | undefined;
  list<T extends AnyObject>(type: ResourceType, namespace: string): T[];
  /** Whether objects of this type are cached (watched); others must be read with the client. */
  caches(type: ResourceType): boolean;
}

export type { EventRecorder, EventType } from '../kube/events.js';
export type { Capabilities } from '../kube/discovery.js';

export interface ReconcileContext {
  cache: ObjectReader;
  client: KubeClient;
  events: EventRecorder;
  logger: Logger;
  /** Current time in ms (status timestamps). */
  now(): number;
}
