/**
 * `edfs-router -c router.yaml`: the router image's entry point. Parses arguments with node:util
 * (no CLI dependency in the image), runs the router until a signal, and turns start-up errors into
 * one message per problem and exit code 1.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { RouterConfigError } from './config/load.js';
import { runRouter } from './main.js';

const USAGE = `Usage: edfs-router [-c router.yaml]

Runs the EDFS router: GraphQL federation with event-driven subscriptions.

Options:
  -c, --config <file>  router configuration (default: $CONFIG_PATH, else ./router.yaml)
  -h, --help           show this help
  -v, --version        show the version
`;

export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
}

const processIO: CliIO = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/** Returns the exit code once the router has stopped (or could not start). */
export async function main(
  argv: string[],
  io: CliIO = processIO,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  let values: { config?: string; help?: boolean; version?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    io.stderr(`edfs-router: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    io.stdout(USAGE);
    return 0;
  }
  if (values.version) {
    io.stdout(`${packageVersion()}\n`);
    return 0;
  }
  const configPath = values.config ?? env.CONFIG_PATH ?? 'router.yaml';
  try {
    await runRouter(configPath);
    return 0;
  } catch (err) {
    // Configuration problems are the user's to fix: their message is the whole story.
    const message = err instanceof RouterConfigError ? err.message : String((err as Error).message ?? err);
    io.stderr(`edfs-router: cannot start:\n${message.replace(/^/gm, '  ')}\n`);
    return 1;
  }
}

function packageVersion(): string {
  // src/cli.ts and dist/cli.js are both one level below the package root.
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}
