/**
 * Client cursors of resumable subscriptions: an opaque string that names the event source and,
 * per lane (events/provider.ts `Position`), the broker offset of the last event the client has.
 * It is the broker's position, never router memory, so any replica can continue from it.
 *
 * Text: base64url of `{"v":1,"p":providerId,"s":stream?,"o":{lane:offset}}`. Clients must treat
 * it as opaque; the encoding may change with `v`.
 *
 * Also the frame helpers: a cursor travels in the result's `extensions` (one string splice per
 * event, shared by every client of a Group), and the first result of an at-most-once subscription
 * says so in its `extensions`.
 */
import { CursorError, type Offsets } from '../events/provider.js';

/** What a cursor's offsets belong to: the provider, and the JetStream stream if any. */
export interface CursorSource {
  readonly providerId: string;
  readonly stream?: string;
}

export interface Cursor extends CursorSource {
  readonly offsets: Offsets;
}

/** Where an event leaves its Trigger: its cursor text, its position, and every lane's offset then. */
export interface Mark {
  readonly cursor: string;
  readonly lane: string;
  readonly offset: number;
  readonly offsets: Offsets;
}

const VERSION = 1;
/** Longer text is not a cursor of ours (a Kafka cursor of 1,000 partitions is about 40 KB). */
const MAX_CURSOR_LENGTH = 64 * 1024;

export function encodeCursor(source: CursorSource, offsets: Offsets): string {
  const o: Record<string, number> = {};
  for (const [lane, offset] of offsets) o[lane] = offset;
  const body = source.stream
    ? { v: VERSION, p: source.providerId, s: source.stream, o }
    : { v: VERSION, p: source.providerId, o };
  return Buffer.from(JSON.stringify(body)).toString('base64url');
}

/** Reads a cursor a client sent back; a CursorError (`invalid`) says what is wrong with it. */
export function decodeCursor(text: unknown): Cursor {
  if (typeof text !== 'string' || text.length === 0)
    throw new CursorError('invalid', 'the cursor must be a non-empty string, as the router sent it');
  if (text.length > MAX_CURSOR_LENGTH || !/^[A-Za-z0-9_-]+$/.test(text))
    throw new CursorError('invalid', 'the cursor is not one this router sent (send it back unchanged)');
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw new CursorError('invalid', 'the cursor is not one this router sent (send it back unchanged)');
  }
  const { v, p, s, o } = (body ?? {}) as Record<string, unknown>;
  if (v !== VERSION)
    throw new CursorError('invalid', `the cursor's version is not supported (expected ${VERSION})`);
  if (typeof p !== 'string' || (s !== undefined && typeof s !== 'string') || !isOffsets(o))
    throw new CursorError('invalid', 'the cursor is not one this router sent (send it back unchanged)');
  return { providerId: p, ...(s !== undefined ? { stream: s } : {}), offsets: new Map(Object.entries(o)) };
}

function isOffsets(o: unknown): o is Record<string, number> {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return false;
  return Object.values(o).every((n) => Number.isSafeInteger(n) && (n as number) >= 0);
}

/** `json` (an execution result without extensions) with the cursor in its `extensions`. */
export function withCursor(json: string, cursor: string): string {
  return withExtension(json, `"cursor":"${cursor}"`);
}

/** A frame made by `withCursor` with another cursor in place of `cursor`. */
export function replaceCursor(frame: string, cursor: string, replacement: string): string {
  return `${frame.slice(0, frame.length - cursor.length - 3)}${replacement}"}}`;
}

/** The `extensions` entry of the first result of a subscription whose events cannot be replayed. */
export const AT_MOST_ONCE = '"delivery":"at-most-once"';

/** `json` (an execution result without extensions) with `entry` as its `extensions`. */
export function withExtension(json: string, entry: string): string {
  return `${json.slice(0, -1)},"extensions":{${entry}}}`;
}
