/**
 * Value formats shared with Cosmo's router.yaml: Go durations ("1m30s", "500ms"), human byte sizes
 * ("5MB", "1MiB") and listen addresses ("host:port", ":port", "[::1]:port"). Each parser returns
 * the value or a message saying what was expected; the loader adds the key.
 */

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

const DURATION_UNITS_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** A Go `time.ParseDuration` string, in milliseconds. Negative durations are refused. */
export function parseDuration(text: string): Parsed<number> {
  const fail: Parsed<number> = {
    ok: false,
    message: `must be a duration such as "500ms", "10s" or "1m30s" (got ${JSON.stringify(text)})`,
  };
  const s = text.trim();
  if (s === '0') return { ok: true, value: 0 };
  if (!/^(\d+(\.\d*)?|\.\d+)[a-zµμ]+/.test(s)) return fail;
  let total = 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)([a-zµμ]+)/gy;
  let match: RegExpExecArray | null;
  let consumed = 0;
  while ((match = re.exec(s)) !== null) {
    const unit = DURATION_UNITS_MS[match[2]!];
    if (unit === undefined) return fail;
    total += Number(match[1]) * unit;
    consumed = re.lastIndex;
  }
  if (consumed !== s.length) return fail;
  return { ok: true, value: total };
}

const BYTE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  ki: 1024,
  kib: 1024,
  mi: 1024 ** 2,
  mib: 1024 ** 2,
  gi: 1024 ** 3,
  gib: 1024 ** 3,
};

/** "5MB" (SI) or "5MiB" (binary), in bytes. */
export function parseByteSize(text: string): Parsed<number> {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? BYTE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined)
    return { ok: false, message: `must be a size such as "5MB" or "512KiB" (got ${JSON.stringify(text)})` };
  return { ok: true, value: Math.floor(Number(m[1]) * unit) };
}

/** "host:port"; an empty host (":3002") means every interface, as in Go. Port 0 picks a free port. */
export function parseHostPort(text: string): Parsed<{ host: string; port: number }> {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535)
    return {
      ok: false,
      message: `must be "host:port" such as "0.0.0.0:3002", ":3002" or "[::1]:3002" (got ${JSON.stringify(text)})`,
    };
  const host = m[1] ?? (m[2] || '0.0.0.0');
  return { ok: true, value: { host, port } };
}
