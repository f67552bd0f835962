export { startRouter, runRouter } from './main.js';
export type { RunningRouter, StartRouterOptions } from './main.js';
export {
  loadRouterConfig,
  parseRouterConfig,
  resolveRouterConfig,
  RouterConfigError,
} from './config/load.js';
export type { ConfigIssue, ParseOptions } from './config/load.js';
export { routerConfigSchema } from './config/schema.js';
export type * from './config/types.js';
export { createRouterMetrics, ROUTER_METRIC_NAMES } from './observability/metrics.js';
export type { RouterMetrics, RouterMetricsOptions, HttpOperationType } from './observability/metrics.js';
export { createLogger } from './observability/logger.js';
export type { Logger, LoggerOptions } from './observability/logger.js';
export { Readiness } from './server/readiness.js';
export type { ReadinessCheck, ReadinessReport } from './server/readiness.js';
export { GatewayHolder } from './server/gateway-holder.js';
export { createGateway, loadExecutionConfig } from './engine/gateway.js';
export type { Gateway, GatewayOptions } from './engine/gateway.js';
export { DEFAULT_OPERATION_LIMITS } from './engine/limits.js';
export type { OperationLimits, RejectReason } from './engine/limits.js';
export { planOperation, PlanError } from './engine/planner/index.js';
export type { PlanOptions } from './engine/planner/index.js';
export type * from './engine/types.js';
export { main as routerMain } from './cli.js';
