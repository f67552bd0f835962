#!/usr/bin/env node
// The `edfs-router` command (the router image's entry point). The CLI is TypeScript compiled to
// dist/ by `npm run build`; this shim only finds it and reports its exit code.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write(`edfs-router: ${fileURLToPath(entry)} is missing; run npm run build first\n`);
  process.exit(1);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
