/**
 * The JSON text of an execution result, made once per result object: a query execution shared by
 * many clients (shared-executions.ts) hands each the same object, and every edge that sends it
 * (HTTP, WebSocket) asks here, so the text is built once for all of them. Results are never
 * changed after they are made, so the text stays true; it goes when the result does.
 */
import type { ExecutionResult } from './types.js';

const texts = new WeakMap<ExecutionResult, string>();

export function resultJson(result: ExecutionResult): string {
  let text = texts.get(result);
  if (text === undefined) texts.set(result, (text = JSON.stringify(result)));
  return text;
}
