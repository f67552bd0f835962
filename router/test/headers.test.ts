import { describe, expect, it } from '@jest/globals';
import { headerPattern } from '../src/config/headers.js';
import type { HeaderRules } from '../src/config/types.js';
import { headersRead, subgraphHeaders } from '../src/engine/headers.js';

const rules = (all: HeaderRules['all'], subgraphs: HeaderRules['subgraphs'] = {}): HeaderRules => ({
  all,
  subgraphs,
});

describe('subgraphHeaders: the headers rules applied to one client request', () => {
  it('forwards nothing without rules, and says so with undefined', () => {
    expect(subgraphHeaders(undefined, ['a'], { authorization: 'x' })).toBeUndefined();
    expect(subgraphHeaders(rules([]), ['a'], { authorization: 'x' })).toBeUndefined();
    expect(subgraphHeaders(rules([{ op: 'propagate', named: 'authorization' }]), ['a'], {})).toBeUndefined();
  });

  it('propagates by name (any case), renames, falls back to a default, joins repeated values', () => {
    const r = rules([
      { op: 'propagate', named: 'Authorization' },
      { op: 'propagate', named: 'X-User', rename: 'X-Forwarded-User' },
      { op: 'propagate', named: 'X-Source', default: 'router' },
      { op: 'propagate', named: 'X-Multi' },
    ]);
    expect(
      subgraphHeaders(r, ['a'], { authorization: 'Bearer t', 'x-user': 'u1', 'x-multi': ['1', '2'] }),
    ).toEqual({
      a: { authorization: 'Bearer t', 'x-forwarded-user': 'u1', 'x-source': 'router', 'x-multi': '1, 2' },
    });
  });

  it("propagates by pattern, case-insensitively, accepting Go's (?i); never hop-by-hop or transport headers", () => {
    const r = rules([{ op: 'propagate', matching: headerPattern('(?i)^X-Tenant-.*|^connection$|^host$') }]);
    expect(
      subgraphHeaders(r, ['a'], { 'x-tenant-id': '7', 'x-other': 'no', connection: 'close', host: 'h' }),
    ).toEqual({ a: { 'x-tenant-id': '7' } });
    const named = rules([
      { op: 'propagate', named: 'content-length' },
      { op: 'propagate', named: 'sec-websocket-key' },
    ]);
    expect(
      subgraphHeaders(named, ['a'], { 'content-length': '5', 'sec-websocket-key': 'k' }),
    ).toBeUndefined();
  });

  it("applies the rules of all subgraphs, then the subgraph's own, in order; set overwrites", () => {
    const r = rules([{ op: 'propagate', named: 'authorization' }], {
      b: [
        { op: 'set', name: 'Authorization', value: 'service-token' },
        { op: 'set', name: 'X-Router', value: 'edfs' },
      ],
    });
    expect(subgraphHeaders(r, ['b', 'a', 'b'], { authorization: 'user-token' })).toEqual({
      a: { authorization: 'user-token' },
      b: { authorization: 'service-token', 'x-router': 'edfs' },
    });
  });

  it('is deterministic: the same request gives the same JSON (the engine groups subscriptions by it)', () => {
    const r = rules([{ op: 'propagate', matching: headerPattern('^x-') }]);
    const one = subgraphHeaders(r, ['b', 'a'], { 'x-b': '2', 'x-a': '1' });
    const two = subgraphHeaders(r, ['a', 'b'], { 'x-a': '1', 'x-b': '2' });
    expect(JSON.stringify(one)).toBe(JSON.stringify(two));
  });
});

describe('headersRead: what a long-lived connection keeps of its request headers', () => {
  it('exactly the names some propagate rule reads, never hop-by-hop ones; nothing without rules', () => {
    expect(headersRead(undefined)('authorization')).toBe(false);
    const read = headersRead(
      rules(
        [
          { op: 'propagate', named: 'Authorization' },
          { op: 'set', name: 'x-set', value: 'v' },
        ],
        {
          users: [{ op: 'propagate', matching: headerPattern('^x-tenant-') }],
        },
      ),
    );
    expect(['authorization', 'x-tenant-id', 'x-set', 'cookie', 'host'].filter(read)).toEqual([
      'authorization',
      'x-tenant-id',
    ]);
    expect(headersRead(rules([{ op: 'propagate', matching: headerPattern('.*') }]))('connection')).toBe(
      false,
    );
  });
});
