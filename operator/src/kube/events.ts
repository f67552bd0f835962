/**
 * Kubernetes Events (core/v1) about the operator's objects, as `kubectl describe` shows them.
 *
 * Invariants: recording never fails a reconcile (errors are logged); messages are cut to the
 * 1024 characters events.k8s.io allows; events are only recorded while writes are allowed (the
 * client passed in is the leader-fenced one).
 */
import { randomBytes } from 'node:crypto';
import type { KubeClient } from './client.js';
import type { Logger } from './logger.js';
import { RESOURCES, type AnyObject } from './resources.js';

const MAX_MESSAGE = 1024;

export type EventType = 'Normal' | 'Warning';

export interface EventRecorder {
  /** Records a core/v1 Event about `obj`; failures are logged, never thrown. */
  record(obj: AnyObject, type: EventType, reason: string, message: string): Promise<void>;
}

export function kubeEventRecorder(
  client: KubeClient,
  opts: { component: string; instance: string; logger: Logger; now?: () => number },
): EventRecorder {
  const now = opts.now ?? Date.now;
  return {
    async record(obj: AnyObject, type: EventType, reason: string, message: string) {
      const namespace = obj.metadata.namespace ?? 'default';
      const time = new Date(now());
      const text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 3)}...` : message;
      try {
        await client.create(RESOURCES.Event, {
          metadata: {
            name: `${obj.metadata.name}.${time.getTime().toString(16)}${randomBytes(3).toString('hex')}`,
            namespace,
          },
          involvedObject: {
            apiVersion: obj.apiVersion,
            kind: obj.kind,
            name: obj.metadata.name,
            namespace,
            uid: obj.metadata.uid,
            resourceVersion: obj.metadata.resourceVersion,
          },
          type,
          reason,
          message: text,
          count: 1,
          firstTimestamp: time.toISOString().replace(/\.\d{3}Z$/, 'Z'),
          lastTimestamp: time.toISOString().replace(/\.\d{3}Z$/, 'Z'),
          source: { component: opts.component },
          reportingComponent: opts.component,
          reportingInstance: opts.instance,
        });
      } catch (err) {
        opts.logger.warn(
          {
            err: err instanceof Error ? err.message : String(err),
            reason,
            object: `${namespace}/${obj.metadata.name}`,
          },
          'could not record event',
        );
      }
    },
  };
}
