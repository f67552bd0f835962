/**
 * `npm run bench`: runs every benchmark in one process run and prints each as a table with its
 * baseline beside it; results also go to bench/results/*.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { runFederationBench } from './federation.js';

const resultsDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');

async function main(): Promise<void> {
  await mkdir(resultsDir, { recursive: true });
  const federation = await runFederationBench();
  await writeFile(join(resultsDir, 'federation.json'), JSON.stringify(federation, null, 2));
  console.log(`\nresults written to ${resultsDir}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
