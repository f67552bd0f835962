import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Absolute path of a file or directory under test/fixtures. */
export function fixture(path: string): string {
  return fileURLToPath(new URL(`./fixtures/${path}`, import.meta.url));
}

export function readFixture(path: string): string {
  return readFileSync(fixture(path), 'utf8');
}
