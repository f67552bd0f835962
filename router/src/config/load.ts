/**
 * The one loader of `router.yaml`: YAML -> environment expansion -> JSON Schema validation ->
 * value checks -> defaults. Every problem is reported at once, one line each, naming the file and
 * the key to fix (`router.yaml: events.providers.nats[0].url: must be a string`).
 *
 * This module is the pipeline and its entry points; the steps are their own modules: env.ts
 * (`${NAME}` expansion), validate.ts (schema), normalize.ts with events.ts, headers.ts and
 * security.ts (values, cross-field rules, defaults from defaults.ts).
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { expandEnv, protectReferences, type Env, type References } from './env.js';
import { formatPath, Issues, type ConfigIssue } from './issues.js';
import { normalize } from './normalize.js';
import type { RouterConfig, RouterConfigFile } from './types.js';
import { coerceWholeReferences, dropNulls, schemaIssues } from './validate.js';
import { routerConfigSchema } from './schema.js';

export class RouterConfigError extends Error {
  override name = 'RouterConfigError';
  constructor(
    readonly source: string,
    readonly issues: ConfigIssue[],
  ) {
    super(issues.map((i) => `${source}: ${i.path ? `${i.path}: ` : ''}${i.message}`).join('\n'));
  }
}

export interface ParseOptions {
  /** Variables for `${NAME}` expansion; default `process.env`. */
  env?: Env;
  /** Directory relative paths are resolved against; default the working directory. */
  baseDir?: string;
  /** Names the configuration in messages; default `router.yaml`. */
  source?: string;
}

/** Reads and resolves a `router.yaml`; relative paths in it are relative to its directory. */
export async function loadRouterConfig(
  path: string,
  options: Omit<ParseOptions, 'baseDir' | 'source'> = {},
): Promise<RouterConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new RouterConfigError(path, [{ path: '', message: `cannot read file: ${(err as Error).message}` }]);
  }
  return parseRouterConfig(text, { ...options, source: path, baseDir: dirname(resolve(path)) });
}

export function parseRouterConfig(text: string, options: ParseOptions = {}): RouterConfig {
  const source = options.source ?? 'router.yaml';
  const { text: yaml, references } = protectReferences(text);
  const doc = parseDocument(yaml, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const lines = yaml.split('\n');
    const restore = (t: string) =>
      t.replace(references.placeholder, (_m, i: string) => references.byIndex[Number(i)]!.text);
    throw new RouterConfigError(
      source,
      doc.errors.map((e) => {
        const message = restore(e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, ''));
        if (!e.linePos) return { path: '', message };
        const { line, col } = e.linePos[0];
        // Placeholders change the length of a line, so a column is only given where there are none.
        references.placeholder.lastIndex = 0;
        const exact = !references.placeholder.test(lines[line - 1] ?? '');
        return { path: '', message: `line ${line}${exact ? `, column ${col}` : ''}: ${message}` };
      }),
    );
  }
  return resolveConfig(doc.toJS() ?? {}, options, references);
}

/**
 * Validates and resolves an already parsed configuration object (the `router.yaml` shape). This is
 * `parseRouterConfig` without the YAML step, for configurations built in code.
 */
export function resolveRouterConfig(raw: unknown, options: ParseOptions = {}): RouterConfig {
  return resolveConfig(raw, options);
}

function resolveConfig(raw: unknown, options: ParseOptions, references?: References): RouterConfig {
  const source = options.source ?? 'router.yaml';
  const baseDir = resolve(options.baseDir ?? process.cwd());
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new RouterConfigError(source, [
      { path: '', message: 'expected a mapping of settings at the top level' },
    ]);

  const expansion = expandEnv(dropNulls(raw), options.env ?? process.env, references);
  if (expansion.issues.length > 0)
    throw new RouterConfigError(
      source,
      expansion.issues.map((i) => ({ path: formatPath(i.path), message: i.message })),
    );
  const data = coerceWholeReferences(expansion.value, routerConfigSchema, [], expansion.wholeValueRefs);

  const structural = schemaIssues(data);
  if (structural.length > 0) throw new RouterConfigError(source, structural);

  const issues = new Issues();
  const config = normalize(data as unknown as RouterConfigFile, source, baseDir, issues);
  if (issues.list.length > 0) throw new RouterConfigError(source, issues.list);
  return config;
}
