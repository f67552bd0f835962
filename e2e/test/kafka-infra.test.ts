/**
 * The Kafka test broker's own script: what it hands `kafka-storage format` must be accepted. A
 * cluster id starting with "-" is read as an option and the broker never starts (1 run in 64
 * before the script skipped them, as Kafka's own Uuid.randomUuid does).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';

const SCRIPT = fileURLToPath(new URL('../infra/kafka.sh', import.meta.url));

describe('kafka.sh cluster ids', () => {
  it('are 22 base64url characters and never start with "-"', () => {
    const ids = execFileSync('bash', [SCRIPT, 'cluster-id', '2000'], { encoding: 'utf8' }).trim().split('\n');
    expect(ids).toHaveLength(2000);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
  });
});
