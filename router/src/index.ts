/**
 * `@edfs/router`: the whole router, to run one in-process (`startRouter`) or to build on its parts
 * (gateway, planner, metrics, logger). Loading it loads the HTTP server's libraries (a broker's
 * client only once a provider of its kind is built); a program that only reads or writes
 * `router.yaml` imports `@edfs/router/config`.
 */
export { startRouter, runRouter } from './main.js';
export type { RunningRouter, StartRouterOptions } from './main.js';
export * from './config/index.js';
export { createRouterMetrics, ROUTER_METRIC_NAMES } from './observability/metrics.js';
export type { RouterMetrics, RouterMetricsOptions, HttpOperationType } from './observability/metrics.js';
export { createLogger } from './observability/logger.js';
export type { Logger, LoggerOptions } from './observability/logger.js';
export { Readiness } from './server/readiness.js';
export type { ReadinessCheck, ReadinessReport } from './server/readiness.js';
export { GatewayHolder } from './engine/gateway-holder.js';
export { createGateway, loadExecutionConfig } from './engine/gateway.js';
export type { Gateway, GatewayOptions } from './engine/gateway.js';
export type { RejectReason } from './engine/limits.js';
export { planOperation, PlanError } from './engine/planner/index.js';
export type { PlanOptions } from './engine/planner/index.js';
export type * from './engine/types.js';
export { main as routerMain } from './cli.js';
