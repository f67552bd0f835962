import { describe, expect, it } from '@jest/globals';
import { OperationTable, WsOperation, type WsConnection } from '../../src/protocols/connection.js';

const op = (id: string) => new WsOperation({} as WsConnection, JSON.stringify(id), undefined);

describe("OperationTable: a connection's operations by id", () => {
  it('finds, counts and removes operations, in the first slot and beyond it', () => {
    const table = new OperationTable();
    const [a, b, c] = [op('a'), op('b'), op('c')];
    table.add(a);
    table.add(b);
    expect(table.size).toBe(2);
    expect(table.get('"a"')).toBe(a);
    expect(table.get('"b"')).toBe(b);
    expect(table.has('"c"')).toBe(false);
    table.delete('"a"');
    expect(table.has('"a"')).toBe(false);
    table.add(c);
    expect(table.size).toBe(2);
    table.delete('"nope"');
    expect(table.size).toBe(2);
  });

  it('lists operations in the order they were added, as a snapshot safe to change while iterating', () => {
    const table = new OperationTable();
    const [a, b, c] = [op('a'), op('b'), op('c')];
    table.add(a);
    table.add(b);
    table.delete('"a"');
    table.add(c);
    table.add(a);
    const seen: string[] = [];
    for (const o of table.values()) {
      seen.push(o.idJson);
      table.delete(o.idJson);
    }
    expect(seen).toEqual(['"b"', '"c"', '"a"']);
    expect(table.size).toBe(0);
  });
});
