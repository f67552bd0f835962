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
  API_VERSION,
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
export {
  InvalidLabelSelectorError,
  matchesLabelSelector,
  type LabelSelector,
  type LabelSelectorRequirement,
} from './compose/label-selector.js';
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
