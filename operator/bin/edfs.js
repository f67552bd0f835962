#!/usr/bin/env node
// The `edfs` command. The CLI is TypeScript compiled to dist/ by `npm run build` (run by `npm ci`
// through the root prepare script); this shim only finds it and reports its exit code.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write(
    `edfs: ${fileURLToPath(entry)} is missing; run npm run build at the repository root first\n`,
  );
  process.exit(1);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
