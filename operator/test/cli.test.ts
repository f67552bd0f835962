import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from '@jest/globals';
import { main } from '../src/cli/main.js';
import { fixture } from './fixtures/files.js';

/** Runs the CLI in-process, capturing what it writes. */
async function edfs(...argv: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

describe('edfs compose', () => {
  it('writes the execution config JSON to stdout', async () => {
    const { code, stdout, stderr } = await edfs('compose', '-f', fixture('manifests'));

    expect(stderr).toBe('');
    expect(code).toBe(0);
    const config = JSON.parse(stdout);
    expect(config.subgraphs.map((s: { name: string }) => s.name)).toEqual(['events', 'messages', 'users']);
    expect(config.engineConfig.datasourceConfigurations).toHaveLength(3);
  });

  it('writes the same bytes to the file given with -o, creating its directory', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'edfs-cli-')), 'nested', 'config.json');
    const toStdout = await edfs('compose', '-f', fixture('graph-yaml/graph.yaml'));
    const toFile = await edfs('compose', '-f', fixture('graph-yaml/graph.yaml'), '-o', out);

    expect(toFile.code).toBe(0);
    expect(toFile.stdout).toBe('');
    expect(toFile.stderr).toBe(`composed 3 subgraph(s) into ${out}\n`);
    expect(readFileSync(out, 'utf8')).toBe(toStdout.stdout.trimEnd());
  });

  it('accepts several files after one -f, and -f repeated', async () => {
    const files = ['users.yaml', 'messages.yaml', 'events.yaml'].map((f) => fixture(`manifests/${f}`));
    const once = await edfs('compose', '-f', ...files);
    const repeated = await edfs('compose', '-f', files[0]!, '-f', files[1]!, '-f', files[2]!);

    expect(once.code).toBe(0);
    expect(repeated.stdout).toBe(once.stdout);
  });

  it('prints one line per composition error, naming the subgraph, and exits 1', async () => {
    const { code, stdout, stderr } = await edfs('compose', '-f', fixture('bad/conflict.yaml'));

    expect(code).toBe(1);
    expect(stdout).toBe('');
    const lines = stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(
      /^error: subgraph "accounts": The subgraph "accounts" could not be federated .*"Account"/,
    );
    expect(lines[1]).toMatch(/^error: subgraph "events": .*resolvable: false/);
  });

  it('prints an error without a subgraph when the problem spans several', async () => {
    const { code, stderr } = await edfs('compose', '-f', fixture('bad/type-conflict.yaml'));

    expect(code).toBe(1);
    expect(stderr).toMatch(
      /^error: Each instance of a shared field must resolve identically .*"User\.name"[^\n]*\n$/,
    );
  });

  it('reports input errors the same way', async () => {
    const { code, stderr } = await edfs('compose', '-f', fixture('bad/syntax-error.yaml'));

    expect(code).toBe(1);
    expect(stderr).toBe(
      'error: subgraph "users": schema syntax error at line 6, column 8: Expected ":", found Name "String".\n',
    );
  });

  it('prints warnings to stderr and still writes the config', async () => {
    const { code, stdout, stderr } = await edfs('compose', '-f', fixture('warning.yaml'));

    expect(code).toBe(0);
    expect(JSON.parse(stdout).engineConfig).toBeDefined();
    expect(stderr).toBe(
      'warning: Subgraph "nodes": The Interface "Node" is used as an output type without at least one Object type implementation defined in the schema.\n',
    );
  });

  it('requires -f', async () => {
    const { code, stderr } = await edfs('compose');

    expect(code).toBe(1);
    expect(stderr).toContain("required option '-f, --file <paths...>' not specified");
  });
});

describe('edfs --help', () => {
  it('lists the commands', async () => {
    const { code, stdout } = await edfs('--help');

    expect(code).toBe(0);
    for (const command of ['compose', 'router', 'operator', 'demo'])
      expect(stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
  });

  it.each([
    [
      'compose',
      ['--file <paths...>', '--supergraph <name>', '--out <file>', '--disable-resolvability-validation'],
    ],
    ['router', ['--config <file>']],
    ['operator', ['--kubeconfig <file>', '--namespace <namespace>', '--leader-elect']],
    ['demo', []],
  ])('documents the options of %s', async (command, options) => {
    const { code, stdout } = await edfs(command, '--help');

    expect(code).toBe(0);
    expect(stdout).toContain(`Usage: edfs ${command}`);
    for (const option of options) expect(stdout).toContain(option);
  });
});

describe('bin/edfs.js', () => {
  const bin = fileURLToPath(new URL('../bin/edfs.js', import.meta.url));
  const run = promisify(execFile);

  it('runs the built CLI: compose to stdout, exit code 1 on errors', async () => {
    const ok = await run(process.execPath, [bin, 'compose', '-f', fixture('manifests')]);
    expect(JSON.parse(ok.stdout).subgraphs).toHaveLength(3);

    const failed = await run(process.execPath, [bin, 'compose', '-f', fixture('bad/conflict.yaml')]).catch(
      (err: { code: number; stderr: string }) => err,
    );
    expect(failed).toMatchObject({ code: 1 });
    expect((failed as { stderr: string }).stderr.trimEnd().split('\n')).toHaveLength(2);
  });

  it('composes a graph.yaml whose schema files are given by absolute path, from the directory of the graph.yaml', async () => {
    const schemas = mkdtempSync(join(tmpdir(), 'edfs-schemas-'));
    const dir = mkdtempSync(join(tmpdir(), 'edfs-graph-'));
    writeFileSync(join(schemas, 'users.graphql'), 'type Query { me: String }');
    writeFileSync(join(dir, 'posts.graphql'), 'type Query { posts: [String] }');
    writeFileSync(
      join(dir, 'graph.yaml'),
      'version: 1\nsubgraphs:\n' +
        `  - name: users\n    routing_url: http://users/graphql\n    schema:\n      file: ${join(schemas, 'users.graphql')}\n` +
        '  - name: posts\n    routing_url: http://posts/graphql\n    schema:\n      file: posts.graphql\n',
    );

    const { stdout, stderr } = await run(process.execPath, [bin, 'compose', '-f', 'graph.yaml'], {
      cwd: dir,
    });

    expect(stderr).toBe('');
    expect(JSON.parse(stdout).subgraphs.map((s: { name: string }) => s.name)).toEqual(['posts', 'users']);
  });

  it('reads manifests from stdin with -f -, as piped from kustomize build', () => {
    const stream = ['users.yaml', 'messages.yaml', 'events.yaml']
      .map((f) => readFileSync(fixture(`manifests/${f}`), 'utf8'))
      .join('---\n');
    const stdout = execFileSync(process.execPath, [bin, 'compose', '-f', '-'], {
      input: stream,
      encoding: 'utf8',
    });

    expect(JSON.parse(stdout).subgraphs.map((s: { name: string }) => s.name)).toEqual([
      'events',
      'messages',
      'users',
    ]);
  });
});
