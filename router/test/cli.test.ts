import { describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../src/cli.js';

function capture() {
  const out = { stdout: '', stderr: '' };
  return { out, io: { stdout: (t: string) => (out.stdout += t), stderr: (t: string) => (out.stderr += t) } };
}

describe('edfs-router command', () => {
  it('--help explains -c/--config and exits 0', async () => {
    const { out, io } = capture();
    expect(await main(['--help'], io, {})).toBe(0);
    expect(out.stdout).toContain('Usage: edfs-router [-c router.yaml]');
    expect(out.stdout).toContain('-c, --config <file>');
  });

  it('an unknown option is a usage error (exit 2)', async () => {
    const { out, io } = capture();
    expect(await main(['--confg', 'x'], io, {})).toBe(2);
    expect(out.stderr).toContain("Unknown option '--confg'");
  });

  it('a configuration problem is printed with the key and exits 1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edfs-cli-'));
    try {
      const file = join(dir, 'router.yaml');
      await writeFile(file, 'execution_config: { file: { path: ./config.json } }\nlisten_adr: ":3002"\n');
      const { out, io } = capture();
      expect(await main(['-c', file], io, {})).toBe(1);
      expect(out.stderr).toContain(`edfs-router: cannot start:\n  ${file}: listen_adr: unknown key`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('without -c it reads $CONFIG_PATH', async () => {
    const { out, io } = capture();
    expect(await main([], io, { CONFIG_PATH: '/nonexistent/edfs/router.yaml' })).toBe(1);
    expect(out.stderr).toContain('/nonexistent/edfs/router.yaml: cannot read file');
  });
});

describe('the package entry point', () => {
  it('exports the router API', async () => {
    const router = await import('../src/index.js');
    for (const name of [
      'startRouter',
      'runRouter',
      'parseRouterConfig',
      'loadRouterConfig',
      'createRouterMetrics',
      'createLogger',
    ] as const)
      expect(typeof router[name]).toBe('function');
  });
});
