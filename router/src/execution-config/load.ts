/**
 * Reads and shape-checks an execution config. Errors name the file and the missing field so a user
 * can tell a truncated or foreign JSON file from a config that does not compose.
 */
import { readFile } from 'node:fs/promises';
import type { ExecutionConfigJson } from './types.js';

export class ExecutionConfigError extends Error {
  override name = 'ExecutionConfigError';
}

export async function loadExecutionConfig(path: string): Promise<ExecutionConfigJson> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ExecutionConfigError(`execution config ${path}: cannot read file: ${(err as Error).message}`);
  }
  return parseExecutionConfig(text, path);
}

export function parseExecutionConfig(text: string, source = 'execution config'): ExecutionConfigJson {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ExecutionConfigError(`${source}: not valid JSON: ${(err as Error).message}`);
  }
  return checkExecutionConfig(json, source);
}

export function checkExecutionConfig(json: unknown, source = 'execution config'): ExecutionConfigJson {
  const fail = (what: string): never => {
    throw new ExecutionConfigError(
      `${source}: ${what} (is this a composed execution config? create one with "edfs compose")`,
    );
  };
  if (!isObject(json)) fail('expected a JSON object');
  const engine = (json as Record<string, unknown>).engineConfig;
  if (!isObject(engine)) fail('missing "engineConfig"');
  const e = engine as Record<string, unknown>;
  if (typeof e.graphqlSchema !== 'string' || e.graphqlSchema.length === 0)
    fail('missing "engineConfig.graphqlSchema"');
  if (!Array.isArray(e.datasourceConfigurations)) fail('missing "engineConfig.datasourceConfigurations"');
  (e.datasourceConfigurations as unknown[]).forEach((ds, i) => {
    if (!isObject(ds) || typeof (ds as Record<string, unknown>).id !== 'string')
      fail(`engineConfig.datasourceConfigurations[${i}]: missing "id"`);
  });
  return json as ExecutionConfigJson;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
