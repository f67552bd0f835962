/**
 * The EventProvider reconciler: do the Secret keys it references exist? Routers get broker
 * credentials as env vars and files from those keys; a missing one would leave router pods
 * failing to start, so it is reported here first, naming the Secret, the key and the spec field.
 *
 * `Ready`: True when every referenced key exists, False (`SecretNotFound` / `SecretKeyNotFound`)
 * otherwise, with kstatus' `Reconciling` / `Stalled` beside it (summary-status.ts). Secret values
 * are never read into status (the informer keeps keys and digests only).
 *
 * Invariant: only status is written, and only when it changed.
 */
import { API_VERSION, type EventProvider, type EventProviderStatus } from '../api/v1alpha1.js';
import type { Reconciler } from '../controller/controller.js';
import { secretBindings, type SecretBinding } from '../desired/index.js';
import { RESOURCES, splitKey, type AnyObject, isDeleting } from '../kube/resources.js';
import {
  findCondition,
  metaTime,
  sameStatus,
  setConditions,
  statusPatch,
  type ConditionInput,
} from './conditions.js';
import type { ObjectReader, ReconcileContext } from './context.js';
import { dep, type DependencyIndex } from './dependency-index.js';
import { eventProviderSummary } from './summary-status.js';
import { WrittenStatus } from './written-status.js';

export interface EventProviderReconcilerOptions extends ReconcileContext {
  index: DependencyIndex;
}

interface SecretObject extends AnyObject {
  data?: Record<string, string>;
}

/** The `Ready` condition of an EventProvider, given the Secrets in the cache. */
export function secretsCondition(ep: EventProvider, cache: ObjectReader): ConditionInput {
  const namespace = ep.metadata.namespace;
  const missing: string[] = [];
  let reason = 'SecretKeyNotFound';
  let bindings: SecretBinding[] = [];
  if (!ep.spec?.nats === !ep.spec?.kafka) {
    return {
      type: 'Ready',
      status: 'False',
      reason: 'InvalidSpec',
      message: 'set exactly one of spec.nats or spec.kafka',
    };
  }
  bindings = secretBindings(ep);
  const reported = new Set<string>();
  for (const binding of bindings) {
    const { name, key } = binding.secret;
    const secret = cache.get<SecretObject>(RESOURCES.Secret, namespace, name);
    const field = specField(ep, binding);
    if (!secret) {
      if (reported.has(name)) continue;
      reported.add(name);
      reason = 'SecretNotFound';
      missing.push(`Secret "${name}" (${field}) not found in namespace "${namespace}"`);
    } else if (!Object.prototype.hasOwnProperty.call(secret.data ?? {}, key)) {
      missing.push(`Secret "${name}" has no key "${key}" (${field})`);
    }
  }
  if (missing.length > 0) return { type: 'Ready', status: 'False', reason, message: missing.join('; ') };
  return {
    type: 'Ready',
    status: 'True',
    reason: 'SecretsFound',
    message:
      bindings.length === 0
        ? 'no credentials referenced'
        : `all ${bindings.length} referenced Secret key(s) exist`,
  };
}

function specField(ep: EventProvider, binding: SecretBinding): string {
  switch (binding.field) {
    case 'token':
      return 'spec.nats.auth.tokenSecretRef';
    case 'creds':
      return 'spec.nats.auth.credsSecretRef';
    case 'ca':
      return 'spec.nats.tls.caSecretRef';
    case 'username':
    case 'password': {
      const base = ep.spec.kafka ? 'spec.kafka.sasl.secretRef' : 'spec.nats.auth.userPasswordSecretRef';
      return `${base}.${binding.field}Key`;
    }
  }
}

export class EventProviderReconciler implements Reconciler {
  private readonly written = new WrittenStatus<EventProviderStatus>();

  constructor(private readonly opts: EventProviderReconcilerOptions) {}

  async reconcile(key: string): Promise<void> {
    const { cache, client, index } = this.opts;
    const { namespace, name } = splitKey(key);
    const found = cache.get<EventProvider>(RESOURCES.EventProvider, namespace, name);
    if (!found || isDeleting(found)) {
      index.remove(key);
      this.written.forget(key);
      return;
    }
    const previous = this.written.current(key, found);
    const ep: EventProvider = { ...found, apiVersion: API_VERSION, kind: 'EventProvider', status: previous };
    index.set(
      key,
      (ep.spec?.nats || ep.spec?.kafka ? secretBindings(ep) : []).map((b) =>
        dep('Secret', namespace, b.secret.name),
      ),
    );
    const generation = ep.metadata.generation;
    const ready = secretsCondition(ep, cache);
    const status: EventProviderStatus = {
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      conditions: setConditions(
        previous?.conditions,
        [ready, ...eventProviderSummary(ready)],
        generation,
        metaTime(this.opts.now()),
      ),
    };
    if (sameStatus(previous, status)) return;
    await client.patchStatus(
      RESOURCES.EventProvider,
      namespace,
      name,
      statusPatch({ ...found.status, ...previous }, status),
    );
    this.written.remember(key, found.metadata.resourceVersion, status);
    const before = findCondition(previous?.conditions, 'Ready');
    const after = findCondition(status.conditions, 'Ready')!;
    if (after.status === 'False' && (before?.status !== 'False' || before.message !== after.message)) {
      await this.opts.events.record(ep, 'Warning', after.reason, after.message);
    } else if (after.status === 'True' && before?.status === 'False') {
      await this.opts.events.record(ep, 'Normal', 'SecretsFound', after.message);
    }
  }
}
