/**
 * The document cache is bounded by an estimate of the heap it holds, not only by entries: many
 * distinct large documents keep both the estimate and the real heap under the bound (a thousand
 * entries of tens of MB each is what crashed the router before).
 */
import { describe, expect, it } from '@jest/globals';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { DEFAULT_OPERATION_LIMITS } from '../../src/config/defaults.js';
import type { OperationLimits } from '../../src/config/types.js';
import { DocumentCache } from '../../src/engine/document-cache.js';
import { createGateway } from '../../src/engine/gateway.js';
import { helloExecutionConfig } from '../helpers/hello-graph.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const entry = (bytes: number) => ({ bytes });

describe('DocumentCache', () => {
  it('evicts the least recently used entries to stay within its bytes', () => {
    const cache = new DocumentCache<{ bytes: number }>(100, 1000);
    cache.set('a', entry(400));
    cache.set('b', entry(400));
    cache.get('a'); // a is now newer than b
    cache.set('c', entry(400));
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBeDefined();
    expect(cache.get('c')).toBeDefined();
    expect(cache.bytes).toBe(800);
  });

  it('evicts to stay within its entries', () => {
    const cache = new DocumentCache<{ bytes: number }>(2, 1e9);
    for (const key of ['a', 'b', 'c']) cache.set(key, entry(1));
    expect(cache.size).toBe(2);
    expect(cache.get('a')).toBeUndefined();
  });

  it('does not store an entry larger than the whole budget', () => {
    const cache = new DocumentCache<{ bytes: number }>(100, 1000);
    cache.set('a', entry(10));
    expect(cache.set('big', entry(1001))).toBe(false);
    expect(cache.get('big')).toBeUndefined();
    expect(cache.get('a')).toBeDefined();
  });

  it('grow adds to a stored entry and evicts others; refuses what cannot fit', () => {
    const cache = new DocumentCache<{ bytes: number }>(100, 1000);
    const a = entry(300);
    cache.set('a', a);
    cache.set('b', entry(300));
    expect(cache.grow('b', cache.get('b')!, 300)).toBe(true);
    expect(cache.grow('a', a, 500)).toBe(true); // b (600) goes
    expect(cache.get('b')).toBeUndefined();
    expect(cache.bytes).toBe(800);
    expect(cache.grow('a', a, 300)).toBe(false); // 1100 > 1000: nothing changes
    expect(a.bytes).toBe(800);
    expect(cache.grow('gone', entry(1), 1)).toBe(false);
  });
});

/** No limit but the cache's: only the cache bounds what these documents keep. */
const UNLIMITED: OperationLimits = {
  ...DEFAULT_OPERATION_LIMITS,
  parserLimits: { maxDocumentSizeBytes: 0, maxTokens: 0, approximateDepthLimit: 200, totalFieldsLimit: 0 },
};

/** A distinct valid document of about `size` characters: aliases of `hello`. */
function bigDocument(i: number, size: number): string {
  let query = `query Q${i} {`;
  for (let k = 0; query.length < size; k++) query += ` a${k}: hello`;
  return `${query} }`;
}

describe('the gateway keeps its documents within the cache bytes', () => {
  it('30 distinct 60 KB documents: the estimate and the heap stay under the bound', () => {
    const bound = 16 * 1024 * 1024;
    const gateway = createGateway(helloExecutionConfig('http://127.0.0.1:9/graphql'), {
      limits: UNLIMITED,
      documentCacheBytes: bound,
    });
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 30; i++) {
      expect(gateway.prepare({ query: bigDocument(i, 60_000) }).kind).toBe('operation');
      expect(gateway.cacheStats().bytes).toBeLessThanOrEqual(bound);
    }
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    const stats = gateway.cacheStats();
    // Each document is ~5 MB in the estimate: a few are kept, most evicted.
    expect(stats.entries).toBeGreaterThan(1);
    expect(stats.entries).toBeLessThan(10);
    // Kept by entries alone (before this bound), the 30 trees and plans held ~120 MB.
    expect(grown).toBeLessThan(2 * bound);
  });

  it('the estimate is not below the heap an entry really holds', () => {
    const gateway = createGateway(helloExecutionConfig('http://127.0.0.1:9/graphql'), {
      limits: UNLIMITED,
      documentCacheBytes: 1e9,
    });
    const documents = Array.from({ length: 20 }, (_, i) => bigDocument(i, 50_000));
    gc();
    const before = process.memoryUsage().heapUsed;
    for (const query of documents) gateway.prepare({ query });
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    expect(gateway.cacheStats().entries).toBe(20);
    expect(gateway.cacheStats().bytes).toBeGreaterThan(grown);
  });

  it('plans added for other @include values are counted and bounded too', () => {
    const gateway = createGateway(helloExecutionConfig('http://127.0.0.1:9/graphql'), {
      documentCacheBytes: 200_000,
    });
    const vars = Array.from({ length: 12 }, (_, i) => `$v${i}: Boolean!`).join(', ');
    const fields = Array.from({ length: 12 }, (_, i) => `f${i}: hello @include(if: $v${i})`).join(' ');
    const query = `query (${vars}) { ${fields} }`;
    for (let n = 0; n < 200; n++) {
      const variables = Object.fromEntries(
        Array.from({ length: 12 }, (_, i) => [`v${i}`, ((n >> i) & 1) === 1]),
      );
      expect(gateway.prepare({ query, variables }).kind).toBe('operation');
      expect(gateway.cacheStats().bytes).toBeLessThanOrEqual(200_000);
    }
  });
});
