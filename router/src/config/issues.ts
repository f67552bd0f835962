/**
 * What a configuration problem is, and the value checks every section of the loader shares.
 *
 * A check never throws: it records a `ConfigIssue` naming the key as written in the file and
 * returns a fallback, so one pass over the file reports every problem at once. The loader throws
 * one `RouterConfigError` with all of them at the end.
 */
import { parseByteSize, parseDuration, type Parsed } from './units.js';

export interface ConfigIssue {
  /** Key path as written in the file, e.g. `events.providers.nats[0].url`; empty for the whole file. */
  path: string;
  message: string;
}

/** The issues found so far, and checks that add to them. */
export class Issues {
  readonly list: ConfigIssue[] = [];

  push(issue: ConfigIssue): void {
    this.list.push(issue);
  }

  /** The parsed value, or `fallback` with the parser's message recorded at `path`. */
  check<T>(path: string, parsed: Parsed<T>, fallback: T): T {
    if (parsed.ok) return parsed.value;
    this.push({ path, message: parsed.message });
    return fallback;
  }

  /** A duration in ms; `positive` refuses zero (a timeout of zero would fire at once). */
  duration(path: string, text: string, positive = false): number {
    const parsed = parseDuration(text);
    const value = this.check(path, parsed, 0);
    if (parsed.ok && positive && value === 0) this.push({ path, message: 'must be greater than zero' });
    return value;
  }

  /** A byte size above zero. */
  size(path: string, text: string): number {
    const parsed = parseByteSize(text);
    const value = this.check(path, parsed, 0);
    if (parsed.ok && value === 0) this.push({ path, message: 'must be greater than zero' });
    return value;
  }

  atLeastOne(path: string, value: number): number {
    if (value < 1) this.push({ path, message: `must be at least 1 (got ${value})` });
    return value;
  }

  /** An HTTP path the router serves: absolute. */
  urlPath(path: string, value: string): string {
    if (!value.startsWith('/'))
      this.push({ path, message: `must start with "/" (got ${JSON.stringify(value)})` });
    return value;
  }
}

/** `['events', 'providers', 'nats', 0, 'url']` -> `events.providers.nats[0].url`. */
export function formatPath(segments: readonly (string | number)[]): string {
  let out = '';
  for (const s of segments) out += typeof s === 'number' ? `[${s}]` : out === '' ? s : `.${s}`;
  return out;
}
