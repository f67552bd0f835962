/**
 * Entry point of `edfs operator`: configuration from flags and environment, the manager, the
 * health and metrics listeners, and signal handling.
 *
 * `startOperator` returns a handle (tests run several operators in one process); `runOperator`
 * runs one until SIGTERM or SIGINT, then stops reconciling, releases the Lease and resolves, so
 * the process exits 0. A second signal exits at once with code 1.
 *
 * Environment (all optional; the Helm chart sets the first three lines):
 *   POD_NAME, POD_NAMESPACE   leader election identity and Lease namespace
 *   EDFS_ROUTER_IMAGE         router image for Supergraphs that name none
 *   EDFS_PROMETHEUS_ADDRESS   Prometheus for KEDA triggers when a Supergraph names none
 *   EDFS_METRICS_BIND_ADDRESS default ":8080";  EDFS_HEALTH_BIND_ADDRESS default ":8081"
 *   EDFS_LEADER_ELECTION_ID   Lease name (default "edfs-operator")
 *   EDFS_LEASE_DURATION, EDFS_RENEW_DEADLINE, EDFS_RETRY_PERIOD
 *                             leader election timings in seconds (default 15, 10, 2)
 *   EDFS_RESYNC_PERIOD        seconds between full resyncs (default 600)
 *   EDFS_LOG_LEVEL            debug, info (default), warn, error
 */
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import type { DesiredInput } from '../api/v1alpha1.js';
import { createLogger, type Logger, type LogLevel } from '../kube/logger.js';
import { parseBindAddress, startHealthServer, startMetricsServer, type Listener } from './http.js';
import { Manager, type ManagerOptions } from './manager.js';
import type { ReconcileRecord } from './controller.js';

export interface OperatorOptions {
  /** Kubeconfig file; without it the in-cluster service account config is used. */
  kubeconfig?: string;
  /** Watch only this namespace; all namespaces when omitted. */
  namespace?: string;
  /** Take a Lease before reconciling so only one replica acts. */
  leaderElect?: boolean;
}

/** Everything `startOperator` accepts beyond the CLI flags (defaults come from the environment). */
export interface StartOptions extends OperatorOptions {
  /** A ready KubeConfig instead of `kubeconfig` (tests). */
  kubeConfig?: KubeConfig;
  /** host:port; "0" disables. */
  metricsBindAddress?: string;
  healthBindAddress?: string;
  leaderElection?: {
    namespace?: string;
    name?: string;
    identity?: string;
    leaseDurationMs?: number;
    renewDeadlineMs?: number;
    retryPeriodMs?: number;
  };
  defaults?: Partial<DesiredInput['defaults']>;
  resyncPeriodMs?: number;
  logger?: Logger;
  env?: NodeJS.ProcessEnv;
  onReconcile?(record: ReconcileRecord): void;
}

export interface RunningOperator {
  manager: Manager;
  /** `http://host:port` of /metrics, when enabled. */
  metricsUrl?: string;
  /** `http://host:port` of /healthz and /readyz, when enabled. */
  healthUrl?: string;
  identity: string;
  /** Stops reconciling, releases the Lease, closes listeners. Idempotent. */
  stop(): Promise<void>;
}

const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
export const DEFAULT_ROUTER_IMAGE = 'ghcr.io/edfs/edfs-router:0.1.0';

export async function startOperator(opts: StartOptions = {}): Promise<RunningOperator> {
  const env = opts.env ?? process.env;
  const logger = opts.logger ?? createLogger((env.EDFS_LOG_LEVEL as LogLevel | undefined) ?? 'info');
  const kubeConfig = opts.kubeConfig ?? loadKubeConfig(opts.kubeconfig, env);
  const identity =
    opts.leaderElection?.identity ?? `${env.POD_NAME || hostname()}_${randomBytes(4).toString('hex')}`;
  const leaseNamespace =
    opts.leaderElection?.namespace ??
    (env.POD_NAMESPACE || inClusterNamespace() || opts.namespace || 'default');

  const managerOptions: ManagerOptions = {
    kubeConfig,
    namespace: opts.namespace || undefined,
    leaderElection: opts.leaderElect
      ? {
          namespace: leaseNamespace,
          name: opts.leaderElection?.name ?? (env.EDFS_LEADER_ELECTION_ID || 'edfs-operator'),
          identity,
          leaseDurationMs: opts.leaderElection?.leaseDurationMs ?? seconds(env.EDFS_LEASE_DURATION),
          renewDeadlineMs: opts.leaderElection?.renewDeadlineMs ?? seconds(env.EDFS_RENEW_DEADLINE),
          retryPeriodMs: opts.leaderElection?.retryPeriodMs ?? seconds(env.EDFS_RETRY_PERIOD),
        }
      : undefined,
    defaults: {
      routerImage: opts.defaults?.routerImage ?? (env.EDFS_ROUTER_IMAGE || DEFAULT_ROUTER_IMAGE),
      ...((opts.defaults?.prometheusAddress ?? env.EDFS_PROMETHEUS_ADDRESS)
        ? { prometheusAddress: opts.defaults?.prometheusAddress ?? env.EDFS_PROMETHEUS_ADDRESS }
        : {}),
    },
    logger,
    resyncPeriodMs: opts.resyncPeriodMs ?? seconds(env.EDFS_RESYNC_PERIOD),
    onReconcile: opts.onReconcile,
    instance: identity,
  };
  const manager = new Manager(managerOptions);

  const metricsBind = parseBindAddress(
    opts.metricsBindAddress ?? (env.EDFS_METRICS_BIND_ADDRESS || ':8080'),
    'metrics bind address',
  );
  const healthBind = parseBindAddress(
    opts.healthBindAddress ?? (env.EDFS_HEALTH_BIND_ADDRESS || ':8081'),
    'health bind address',
  );
  const listeners: Listener[] = [];
  try {
    const metrics = metricsBind ? await startMetricsServer(metricsBind, manager.metrics.registry) : undefined;
    if (metrics) listeners.push(metrics);
    const health = healthBind
      ? await startHealthServer(healthBind, {
          healthz: { ping: () => true },
          readyz: { manager: () => manager.ready() },
        })
      : undefined;
    if (health) listeners.push(health);

    void manager
      .start()
      .catch((err: unknown) => logger.error({ err: String(err) }, 'manager failed to start'));
    logger.info(
      {
        namespace: managerOptions.namespace ?? '(all)',
        leaderElection: managerOptions.leaderElection
          ? `${managerOptions.leaderElection.namespace}/${managerOptions.leaderElection.name}`
          : false,
        identity,
        metrics: metrics?.url,
        health: health?.url,
      },
      'operator started',
    );

    let stopped: Promise<void> | undefined;
    return {
      manager,
      metricsUrl: metrics?.url,
      healthUrl: health?.url,
      identity,
      stop() {
        stopped ??= (async () => {
          await manager.stop();
          await Promise.all(listeners.map((l) => l.close()));
          logger.info({ identity }, 'operator stopped');
        })();
        return stopped;
      },
    };
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close()));
    throw err;
  }
}

/** Runs the operator until SIGTERM/SIGINT; resolves after a clean shutdown (Lease released). */
export async function runOperator(opts: OperatorOptions): Promise<void> {
  const operator = await startOperator(opts);
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) process.exit(1);
      stopping = true;
      process.stderr.write(`${signal}: stopping the operator\n`);
      operator.stop().then(
        () => {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          resolve();
        },
        () => process.exit(1),
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

function loadKubeConfig(file: string | undefined, env: NodeJS.ProcessEnv): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else if (env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster())
    throw new Error('no Kubernetes cluster configured (pass --kubeconfig or run in a cluster)');
  return kc;
}

/** A positive number of seconds from the environment, in ms; undefined when unset or invalid. */
function seconds(value: string | undefined): number | undefined {
  const n = Number(value);
  return value && Number.isFinite(n) && n > 0 ? n * 1000 : undefined;
}

function inClusterNamespace(): string | undefined {
  try {
    return existsSync(SERVICE_ACCOUNT_NAMESPACE)
      ? readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim()
      : undefined;
  } catch {
    return undefined;
  }
}
