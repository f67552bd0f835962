/**
 * `@edfs/router/config`: the router's configuration without the router. The loader, its errors,
 * the JSON Schema, the shapes and the defaults, for programs that check or write a `router.yaml`
 * (the operator refuses what a router would refuse, with the same loader) but never run one.
 *
 * Invariant: nothing reachable from here imports engine/, server/, events/ or a broker, HTTP or
 * WebSocket library; config/ depends only on itself, ajv and yaml
 * (operator/test/runtime-imports.test.ts holds this).
 */
export { loadRouterConfig, parseRouterConfig, resolveRouterConfig, RouterConfigError } from './load.js';
export type { ParseOptions } from './load.js';
export type { ConfigIssue } from './issues.js';
export { routerConfigSchema } from './schema.js';
export { DEFAULT_OPERATION_LIMITS } from './defaults.js';
export type * from './types.js';
