/**
 * The `edfs` command line: compose, router, operator, demo.
 *
 * `main(argv, io)` never exits the process: it returns the exit code, so tests run it in-process
 * and `bin/edfs.js` sets `process.exitCode`. Long-running commands (router, operator, demo) are
 * imported lazily, so `edfs compose` does not load an HTTP server or a Kubernetes client.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Command, CommanderError } from 'commander';
import { composeSupergraph, type CompositionError } from '../compose/compose.js';
import { ComposeInputError, loadComposeInputs } from '../compose/sources.js';

export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
}

const processIO: CliIO = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

interface ComposeCommandOptions {
  file: string[];
  supergraph?: string;
  out?: string;
  disableResolvabilityValidation?: boolean;
}

export async function main(argv: string[] = process.argv.slice(2), io: CliIO = processIO): Promise<number> {
  let exitCode = 0;
  const program = createProgram(io, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode; // help, --version, usage errors (already printed)
    io.stderr(`error: ${oneLine(err instanceof Error ? err.message : String(err))}\n`);
    return 1;
  }
  return exitCode;
}

export function createProgram(io: CliIO, setExitCode: (code: number) => void): Command {
  const program = new Command('edfs')
    .description('Event-driven GraphQL federation: compose subgraphs, run the router, run the operator.')
    .version(packageVersion(), '-V, --version')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError('(run with --help for usage)');

  program
    .command('compose')
    .summary('compose subgraphs into the router execution config')
    .description(
      'Compose subgraphs from Kubernetes manifests (Subgraph, Supergraph, EventProvider, ConfigMap) or a ' +
        'Cosmo graph.yaml into the router execution config. Errors are printed one per line and exit with code 1.',
    )
    .requiredOption(
      '-f, --file <paths...>',
      'manifest files, directories (searched recursively for *.yaml and *.yml) or graph.yaml files; "-" reads stdin',
    )
    .option(
      '--supergraph <name>',
      'the Supergraph (name or namespace/name) whose subgraphSelector applies, when the inputs define several',
    )
    .option('-o, --out <file>', 'write the execution config to this file instead of stdout')
    .option(
      '--disable-resolvability-validation',
      'skip the check that every field can be resolved; only for graphs the check wrongly rejects',
    )
    .addHelpText(
      'after',
      [
        '',
        'Without a Supergraph in the inputs every Subgraph is composed; with one, only the Subgraphs of its',
        'namespace that match its spec.subgraphSelector.',
        '',
        'Examples:',
        '  edfs compose -f examples/chat -o config.json',
        '  edfs compose -f graph.yaml',
        '  kustomize build overlays/prod | edfs compose -f - --supergraph chat > /dev/null',
      ].join('\n'),
    )
    .action((opts: ComposeCommandOptions) => setExitCode(runCompose(opts, io)));

  program
    .command('router')
    .summary('run a router')
    .description('Run a router: the federation gateway and event-driven subscription engine.')
    .option('-c, --config <file>', 'router config file (router.yaml)', 'router.yaml')
    .action(async (opts: { config: string }) => {
      const { runRouter } = await loadRouter();
      await runRouter(opts.config);
    });

  program
    .command('operator')
    .summary('run the operator')
    .description('Run the operator: reconcile EventProvider, Subgraph and Supergraph resources into routers.')
    .option('--kubeconfig <file>', 'kubeconfig file (default: the in-cluster service account)')
    .option('--namespace <namespace>', 'watch only this namespace (default: all namespaces)')
    .option('--leader-elect', 'take a Lease before reconciling, so only one replica acts', false)
    .action(async (opts: { kubeconfig?: string; namespace?: string; leaderElect: boolean }) => {
      const { runOperator } = await import('../controller/run.js');
      await runOperator(opts);
    });

  program
    .command('demo')
    .summary('run the embedded demo (subgraphs, router, in-process broker, GraphiQL)')
    .description(
      'Run the embedded demo: example subgraphs, a router with the in-process broker and GraphiQL; ' +
        'prints what to open and what to publish.',
    )
    .action(async () => {
      const { runDemo } = await import('../demo/demo.js');
      await runDemo();
    });

  return program;
}

function runCompose(opts: ComposeCommandOptions, io: CliIO): number {
  let inputs;
  try {
    inputs = loadComposeInputs(opts.file, { supergraph: opts.supergraph });
  } catch (err) {
    if (!(err instanceof ComposeInputError)) throw err;
    return printErrors(err.errors, io);
  }
  const result = composeSupergraph(inputs, {
    disableResolvabilityValidation: opts.disableResolvabilityValidation === true,
  });
  if (!result.ok) return printErrors(result.errors, io);

  for (const warning of result.warnings) io.stderr(`warning: ${oneLine(warning)}\n`);
  if (opts.out) {
    mkdirSync(dirname(opts.out), { recursive: true });
    writeFileSync(opts.out, result.configJson);
    io.stderr(`composed ${inputs.length} subgraph(s) into ${opts.out}\n`);
  } else {
    io.stdout(`${result.configJson}\n`);
  }
  return 0;
}

function printErrors(errors: CompositionError[], io: CliIO): number {
  for (const { subgraph, message } of errors) {
    io.stderr(`error: ${subgraph ? `subgraph "${subgraph}": ` : ''}${oneLine(message)}\n`);
  }
  return 1;
}

/** Composition messages span lines; a CI log wants one line per error. */
function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ').trim();
}

/**
 * `edfs router` runs the router package's own entry point, imported by this command alone so the
 * others never load the router runtime. The specifier is a literal: the import is type-checked
 * against the router's build like every other import of it. A checkout whose router is not built
 * gets a message saying so.
 */
async function loadRouter(): Promise<typeof import('@edfs/router')> {
  try {
    return await import('@edfs/router');
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    throw new Error(`router: @edfs/router is not built (run npm run build): ${(err as Error).message}`);
  }
}

function packageVersion(): string {
  // src/cli and dist/cli are both two levels below the package root.
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}
