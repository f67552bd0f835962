/**
 * The graphql-transport-ws state machine on its own, with a recording socket: the cases a real
 * client cannot easily produce (hooks, a service that ends operations synchronously, reasons
 * longer than a close frame holds). The protocol end to end is in websocket.test.ts.
 */
import { describe, expect, it } from '@jest/globals';
import { limitCloseReason, type ProtocolHooks } from '../../src/protocols/connection.js';
import { openGraphqlTransportWs, parseClientMessage } from '../../src/protocols/graphql-transport-ws.js';
import type { OperationService } from '../../src/subscriptions/service.js';
import { capturingService, openStateMachine } from './harness.js';

const open = (service: OperationService, hooks: Partial<ProtocolHooks> = {}, sendBufferLimitBytes?: number) =>
  openStateMachine(openGraphqlTransportWs, service, hooks, sendBufferLimitBytes);

const subscribe = (id: string) =>
  JSON.stringify({ id, type: 'subscribe', payload: { query: 'subscription { x }' } });

describe('graphql-transport-ws state machine', () => {
  it('onConnect returning false refuses the connection with 4403', () => {
    const { socket, connection } = open(capturingService().service, { onConnect: () => false });
    connection.receive('{"type":"connection_init","payload":{"token":"bad"}}');
    expect(socket.closedWith).toEqual({ code: 4403, reason: 'Forbidden' });
    expect(socket.sent).toEqual([]);
  });

  it('an async onConnect: a subscribe before its answer is 4401; its object becomes the ack payload', async () => {
    let allow: (value: Record<string, unknown>) => void = () => {};
    const early = open(capturingService().service, {
      onConnect: () => new Promise<Record<string, unknown>>((resolve) => (allow = resolve)),
    });
    early.connection.receive('{"type":"connection_init"}');
    early.connection.receive(subscribe('1'));
    expect(early.socket.closedWith).toEqual({ code: 4401, reason: 'Unauthorized' });

    const patient = open(capturingService().service, {
      onConnect: () => new Promise<Record<string, unknown>>((resolve) => (allow = resolve)),
    });
    patient.connection.receive('{"type":"connection_init"}');
    allow({ region: 'eu' });
    await Promise.resolve();
    expect(patient.socket.sent).toEqual([{ type: 'connection_ack', payload: { region: 'eu' } }]);
    patient.connection.closed();
  });

  it('after the client completes an operation, its results are refused and nothing is written', () => {
    const { service, sinks, state } = capturingService();
    const { socket, connection, counts } = open(service);
    connection.receive('{"type":"connection_init"}');
    connection.receive(subscribe('1'));
    expect(sinks[0]!.next('{"data":{"x":1}}')).toBe(true);
    connection.receive('{"id":"1","type":"complete"}');
    expect(state.stops).toBe(1);
    expect(sinks[0]!.next('{"data":{"x":2}}')).toBe(false);
    sinks[0]!.complete();
    expect(socket.sent).toEqual([
      { type: 'connection_ack' },
      { id: '1', type: 'next', payload: { data: { x: 1 } } },
    ]);
    expect(counts.sent).toBe(1);
    connection.closed();
  });

  it('a service that completes during start frees the id and is not stopped', () => {
    let stops = 0;
    const service: OperationService = {
      start(_request, _context, sink) {
        sink.next('{"data":{"x":1}}');
        sink.complete();
        return { ok: true, stop: () => void stops++ };
      },
    };
    const { socket, connection } = open(service);
    connection.receive('{"type":"connection_init"}');
    connection.receive(subscribe('1'));
    connection.receive(subscribe('1'));
    expect(socket.closedWith).toBeUndefined();
    expect(stops).toBe(0);
    expect(socket.sent.filter((m) => (m as { type: string }).type === 'complete')).toHaveLength(2);
    connection.closed();
  });

  it('a full send buffer closes with 4503 and stops every operation of the connection', () => {
    const { service, sinks, state } = capturingService();
    const { socket, connection, counts } = open(service, {}, 100);
    connection.receive('{"type":"connection_init"}');
    connection.receive(subscribe('1'));
    connection.receive(subscribe('2'));
    socket.buffered = 101;
    expect(sinks[0]!.next('{"data":{}}')).toBe(false);
    expect(socket.closedWith).toEqual({ code: 4503, reason: 'slow consumer: send buffer over 100 bytes' });
    expect(state.stops).toBe(2);
    expect(counts).toEqual({ sent: 0, slow: 1 });
    expect(sinks[1]!.next('{"data":{}}')).toBe(false);
    expect(counts.slow).toBe(1);
  });

  it('a service that throws gives that operation an internal error; the connection stays', () => {
    const errors: unknown[] = [];
    const service: OperationService = {
      start() {
        throw new Error('bug');
      },
    };
    const { socket, connection } = open(service, { onInternalError: (err) => errors.push(err) });
    connection.receive('{"type":"connection_init"}');
    connection.receive(subscribe('1'));
    expect(socket.sent.at(-1)).toEqual({
      id: '1',
      type: 'error',
      payload: [{ message: 'Internal server error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } }],
    });
    expect(errors).toHaveLength(1);
    expect(socket.closedWith).toBeUndefined();
    connection.closed();
  });

  it('a 4409 for a very long id is cut to what a close frame can hold', () => {
    const { socket, connection } = open(capturingService().service);
    connection.receive('{"type":"connection_init"}');
    const id = 'é'.repeat(200);
    connection.receive(subscribe(id));
    connection.receive(subscribe(id));
    expect(socket.closedWith?.code).toBe(4409);
    expect(Buffer.byteLength(socket.closedWith!.reason)).toBeLessThanOrEqual(123);
    expect(socket.closedWith!.reason).toMatch(/^Subscriber for éé+\.\.\.$/);
  });
});

describe('graphql-transport-ws message validation', () => {
  it.each([
    ['[]', 'expected a JSON object, got array'],
    ['{}', 'missing "type"'],
    ['{"type":1}', '"type" must be a string, got number'],
    ['{"type":"ping","payload":"x"}', '"ping" payload must be an object, got string'],
    ['{"type":"subscribe","payload":{"query":"{x}"}}', '"subscribe" needs a non-empty string "id"'],
    ['{"type":"subscribe","id":"1","payload":[]}', '"subscribe" payload must be an object, got array'],
    [
      '{"type":"subscribe","id":"1","payload":{"query":"{x}","variables":[]}}',
      '"subscribe" payload.variables must be an object, got array',
    ],
    [
      '{"type":"subscribe","id":"1","payload":{"query":"{x}","operationName":5}}',
      '"subscribe" payload.operationName must be a string, got number',
    ],
    [
      '{"type":"subscribe","id":"1","payload":{"query":"{x}","extensions":"e"}}',
      '"subscribe" payload.extensions must be an object, got string',
    ],
    ['{"type":"complete","id":""}', '"complete" needs a non-empty string "id"'],
    ['{"type":"connection_ack"}', '"connection_ack" is sent by servers, not clients'],
  ])('%s is refused: %s', (text, reason) => {
    expect(parseClientMessage(text)).toEqual({ ok: false, reason: `Invalid message: ${reason}` });
  });

  it('a subscribe becomes a GraphQL request with only the fields that were given', () => {
    expect(
      parseClientMessage(
        '{"type":"subscribe","id":"1","payload":{"query":"{x}","variables":{"a":1},"operationName":null}}',
      ),
    ).toEqual({
      ok: true,
      message: {
        type: 'subscribe',
        id: '1',
        payload: { query: '{x}', operationName: null, variables: { a: 1 } },
      },
    });
  });

  it('close reasons within 123 bytes are kept as they are', () => {
    expect(limitCloseReason('Unauthorized')).toBe('Unauthorized');
    expect(Buffer.byteLength(limitCloseReason('x'.repeat(500)))).toBe(123);
  });
});
