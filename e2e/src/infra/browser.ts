/**
 * A real browser for tests: Debian's chromium at /usr/bin/chromium, installed once per machine by
 * `e2e/infra/chromium.sh`, driven by playwright-core.
 *
 * Invariants: no tool ever downloads a browser (playwright-core has no browser of its own and is
 * always given `executablePath`); the browser runs headless, sandbox-less (tests run as root) and
 * without background traffic, so a test sees only the requests its page makes. A browser a test
 * forgets to close is killed by playwright when the process exits.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const SCRIPT = fileURLToPath(new URL('../../infra/chromium.sh', import.meta.url));

let installed: Promise<string> | undefined;

/** Runs `e2e/infra/chromium.sh` once per process; resolves to the browser's path. */
export function ensureChromium(): Promise<string> {
  installed ??= new Promise<string>((resolve, reject) => {
    const child = execFile('bash', [SCRIPT], { maxBuffer: 16 * 1024 * 1024 }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`${SCRIPT} failed (${error.message}):\n${stderr}`));
      else resolve(CHROMIUM_PATH);
    });
    // A first install takes a minute or two; show its progress while the test waits.
    child.stdout?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  });
  installed.catch(() => {
    installed = undefined;
  });
  return installed;
}

/** Launches chromium (installing it first if needed). Close it with `browser.close()`. */
export async function launchBrowser(): Promise<Browser> {
  const executablePath = await ensureChromium();
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
}
