/**
 * `@edfs/operator`: the operator and the `edfs` CLI as a library (tests and tools drive them
 * in-process). The demo is not part of it: only the `edfs demo` command loads it.
 *
 * Layers, each importing only the ones above it in this list:
 * - `api/`        the edfs.io/v1alpha1 types and constants; imports nothing.
 * - `kube/`       Kubernetes access (client, informers, Lease, Events, discovery), generic: who
 *                 writes is a parameter; imports api for the resource table only.
 * - `compose/`    subgraphs to execution config, pure; imports api types.
 * - `desired/`    the objects a Supergraph needs, pure; imports api and `@edfs/router/config`.
 * - `controller/` the reconcile loop: work queue, rate limiters, metrics (controller.ts,
 *                 queue.ts, metrics.ts).
 * - `reconcile/`  one Reconciler per kind: reads through kube, renders with compose and desired.
 * - `controller/` the process: manager.ts wires informers, reconcilers and leader election;
 *                 run.ts, http.ts are the `edfs operator` entry point.
 * - `cli/`        the `edfs` commands; the operator, the router and the demo are loaded on demand.
 */
export {
  composeSupergraph,
  type ComposeOptions,
  type ComposeResult,
  type CompositionError,
  type SubgraphInput,
  type SubscriptionProtocol,
  type WebsocketSubprotocol,
} from './compose/compose.js';
export {
  ComposeInputError,
  loadComposeInputs,
  readComposeSources,
  selectSubgraphs,
  subgraphInputFromManifest,
  type ComposeSources,
  type ConfigMapManifest,
  type EventProviderManifest,
  type LoadOptions,
  type SubgraphManifest,
  type SupergraphManifest,
} from './compose/sources.js';
export { InvalidLabelSelectorError, matchesLabelSelector } from './compose/label-selector.js';
export { API_VERSION, type LabelSelector, type LabelSelectorRequirement } from './api/v1alpha1.js';
export {
  runOperator,
  startOperator,
  type OperatorOptions,
  type RunningOperator,
  type StartOptions,
} from './controller/run.js';
export { Manager, type ManagerOptions, type LeaderElectionOptions } from './controller/manager.js';
export { Controller, type Reconciler, type ReconcileRecord, type Result } from './controller/controller.js';
export {
  BucketRateLimiter,
  ExponentialFailureRateLimiter,
  MaxOfRateLimiter,
  WorkQueue,
  defaultRateLimiter,
  type RateLimiter,
} from './controller/queue.js';
export { createControllerMetrics, type ControllerMetrics } from './controller/metrics.js';
export { HttpKubeClient, KubeApiError, NotLeaderError, fenceWrites, type KubeClient } from './kube/client.js';
export { createLogger, silentLogger, type Logger } from './kube/logger.js';
export { Informer, type InformerHandlers, type InformerOptions } from './kube/informer.js';
export {
  LeaderElector,
  kubeLeaseStore,
  type LeaseStore,
  type LeaderElectorOptions,
} from './kube/leader-election.js';
export { RESOURCES, resourcePath, type ResourceType } from './kube/resources.js';
export { SupergraphReconciler } from './reconcile/supergraph.js';
export { SubgraphReconciler, validateSubgraphSchema } from './reconcile/subgraph.js';
export { EventProviderReconciler } from './reconcile/eventprovider.js';
export { DependencyIndex } from './reconcile/dependency-index.js';
export { supergraphStatus } from './reconcile/supergraph-status.js';
export { renderDesired } from './desired/index.js';
