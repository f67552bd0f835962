/**
 * `npm run bench`: runs every benchmark in one process run and prints each as a table with its
 * baseline beside it; results also go to bench/results/*.json.
 *
 *   npm run bench                  every benchmark (federation, then fan-out)
 *   npm run bench -- fanout        only the named ones (federation, fanout)
 *   BENCH_QUICK=1 npm run bench    shorter windows: a smoke run of about a minute
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { runFederationBench } from './federation.js';
import { runFanoutBench } from './fanout.js';

const resultsDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');

const BENCHMARKS: Record<string, () => Promise<unknown>> = {
  federation: runFederationBench,
  fanout: runFanoutBench,
};

async function main(): Promise<void> {
  const asked = process.argv.slice(2);
  const unknown = asked.filter((name) => !(name in BENCHMARKS));
  if (unknown.length > 0)
    throw new Error(
      `unknown benchmark ${unknown.join(', ')}: choose from ${Object.keys(BENCHMARKS).join(', ')}`,
    );
  const names =
    asked.length > 0 ? Object.keys(BENCHMARKS).filter((n) => asked.includes(n)) : Object.keys(BENCHMARKS);
  await mkdir(resultsDir, { recursive: true });
  for (const name of names) {
    const result = await BENCHMARKS[name]!();
    await writeFile(join(resultsDir, `${name}.json`), JSON.stringify(result, null, 2));
  }
  console.log(`\nresults written to ${resultsDir}`);
}

main().then(
  // Child processes and sockets are closed by now; exit even if a library keeps a timer alive.
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
