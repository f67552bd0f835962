/**
 * The JSON of an execution result, made once per result object: a query execution shared by many
 * clients (shared-executions.ts) hands each the same object, and every edge that sends it asks
 * here, so the text (and for HTTP its UTF-8 bytes, which every response then writes as they are
 * instead of encoding the text again into a fresh native buffer) is made once for all of them.
 * Results are never changed after they are made, so both stay true; they go when the result does.
 */
import type { ExecutionResult } from './types.js';

const texts = new WeakMap<ExecutionResult, string>();
const bodies = new WeakMap<ExecutionResult, Buffer>();

export function resultJson(result: ExecutionResult): string {
  let text = texts.get(result);
  if (text === undefined) texts.set(result, (text = JSON.stringify(result)));
  return text;
}

/** `resultJson` as UTF-8 bytes, for an HTTP response body. */
export function resultBody(result: ExecutionResult): Buffer {
  let body = bodies.get(result);
  if (body === undefined) bodies.set(result, (body = Buffer.from(resultJson(result))));
  return body;
}
