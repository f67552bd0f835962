/**
 * Which optional APIs the cluster serves (ServiceMonitor from the Prometheus Operator, KEDA's
 * ScaledObject), from API discovery, cached for a minute so installing one of them is noticed
 * without a restart.
 *
 * Invariant: an unreachable or failing discovery keeps the last known answer (false at first), so
 * a blip never makes the reconciler delete a ServiceMonitor it created.
 */
import type { KubeClient } from './client.js';
import { RESOURCES, type ResourceType } from './resources.js';

export interface Capabilities {
  serviceMonitor: boolean;
  keda: boolean;
}

export class CapabilityProbe {
  private cached: Capabilities = { serviceMonitor: false, keda: false };
  private checkedAt = -Infinity;
  private pending: Promise<Capabilities> | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly ttlMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  get(): Promise<Capabilities> {
    if (this.now() - this.checkedAt < this.ttlMs) return Promise.resolve(this.cached);
    this.pending ??= this.refresh().finally(() => (this.pending = undefined));
    return this.pending;
  }

  private async refresh(): Promise<Capabilities> {
    const [serviceMonitor, keda] = await Promise.all([
      this.serves(RESOURCES.ServiceMonitor, this.cached.serviceMonitor),
      this.serves(RESOURCES.ScaledObject, this.cached.keda),
    ]);
    this.cached = { serviceMonitor, keda };
    this.checkedAt = this.now();
    return this.cached;
  }

  private async serves(type: ResourceType, fallback: boolean): Promise<boolean> {
    try {
      const res = await this.client.request({ method: 'GET', path: `/apis/${type.group}/${type.version}` });
      if (res.status === 404) return false;
      if (res.status !== 200) return fallback;
      const list = JSON.parse(res.body) as { resources?: { name?: string }[] };
      return (list.resources ?? []).some((r) => r.name === type.plural);
    } catch {
      return fallback;
    }
  }
}
