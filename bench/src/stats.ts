/** Small statistics helpers for benchmarks: medians and percentiles over repeated samples. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

export const median = (samples: number[]): number => percentile(samples, 50);

/** Runs `fn` `n` times (after `warmup` runs) and returns per-run durations in microseconds. */
export async function sample(
  n: number,
  warmup: number,
  fn: () => unknown | Promise<unknown>,
): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await fn();
    out.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  return out;
}

export function table(rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? formatNumber(c) : c)));
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells
    .map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '))
    .join('\n');
}

function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

/** A figure for a table: thousands separated from 100 on, 3 significant digits below; '-' if not finite. */
export const fmt = (v: number): string =>
  !Number.isFinite(v)
    ? '-'
    : Math.abs(v) >= 100
      ? Math.round(v).toLocaleString('en-US')
      : Math.abs(v) >= 10
        ? v.toFixed(1)
        : v.toFixed(2);
