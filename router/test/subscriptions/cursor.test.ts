/**
 * Cursors are what clients hold and send back: they must survive the round trip exactly, and
 * anything else a client sends in their place must be refused as CURSOR_INVALID with a reason.
 */
import { describe, expect, it } from '@jest/globals';
import { CursorError } from '../../src/events/provider.js';
import {
  decodeCursor,
  encodeCursor,
  replaceCursor,
  withCursor,
  withExtension,
  AT_MOST_ONCE,
} from '../../src/subscriptions/cursor.js';
import { nextEvent } from '../../src/protocols/sse.js';

describe('cursor text', () => {
  it('round-trips provider, stream and offsets per lane, as URL-safe text', () => {
    const offsets = new Map([
      ['orders.eu', 17],
      ['orders.us', 9_007_199_254_740_991],
    ]);
    const text = encodeCursor({ providerId: 'default', stream: 'ORDERS' }, offsets);
    expect(text).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(text)).toEqual({ providerId: 'default', stream: 'ORDERS', offsets });
    const kafka = encodeCursor({ providerId: 'k' }, new Map([['orders:0', 3]]));
    expect(decodeCursor(kafka)).toEqual({ providerId: 'k', offsets: new Map([['orders:0', 3]]) });
  });

  const refused = (value: unknown): string => {
    try {
      decodeCursor(value);
    } catch (error) {
      expect(error).toBeInstanceOf(CursorError);
      expect((error as CursorError).problem).toBe('invalid');
      return (error as Error).message;
    }
    throw new Error('accepted');
  };
  const encoded = (body: unknown) => Buffer.from(JSON.stringify(body)).toString('base64url');

  it.each([
    ['a number', 42, /non-empty string/],
    ['an empty string', '', /non-empty string/],
    ['text with other characters', 'abc def!', /not one this router sent/],
    ['base64 of something else', Buffer.from('hello').toString('base64url'), /not one this router sent/],
    ['another version', encoded({ v: 2, p: 'default', o: {} }), /version is not supported/],
    ['no provider', encoded({ v: 1, o: { a: 1 } }), /not one this router sent/],
    ['a negative offset', encoded({ v: 1, p: 'default', o: { a: -1 } }), /not one this router sent/],
    ['a fractional offset', encoded({ v: 1, p: 'default', o: { a: 1.5 } }), /not one this router sent/],
    ['offsets as a list', encoded({ v: 1, p: 'default', o: [1] }), /not one this router sent/],
    ['far too long', 'A'.repeat(70_000), /not one this router sent/],
  ])('refuses %s as CURSOR_INVALID', (_name, value, message) => {
    expect(refused(value)).toMatch(message);
  });
});

describe('frames', () => {
  it('puts the cursor in the result’s extensions, and can swap it for another', () => {
    const frame = withCursor('{"data":{"a":1}}', 'abc');
    expect(JSON.parse(frame)).toEqual({ data: { a: 1 }, extensions: { cursor: 'abc' } });
    expect(JSON.parse(replaceCursor(frame, 'abc', 'longer-cursor'))).toEqual({
      data: { a: 1 },
      extensions: { cursor: 'longer-cursor' },
    });
  });

  it('says at-most-once in extensions', () => {
    expect(JSON.parse(withExtension('{"data":null,"errors":[]}', AT_MOST_ONCE))).toEqual({
      data: null,
      errors: [],
      extensions: { delivery: 'at-most-once' },
    });
  });

  it('SSE: the cursor is the event id', () => {
    expect(nextEvent('{"data":1}', 'abc')).toBe('event: next\nid: abc\ndata: {"data":1}\n\n');
    expect(nextEvent('{"data":1}')).toBe('event: next\ndata: {"data":1}\n\n');
  });
});
