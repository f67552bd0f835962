/**
 * A refused operation on every transport of a real router: GraphQL over HTTP (POST, GET), SSE,
 * multipart, graphql-transport-ws and the legacy graphql-ws. Each answers with the limit's code in
 * its own framing, counts it in `router_operations_rejected_total{reason}`, and a WebSocket keeps
 * serving its other operations.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startHelloRouter, type HelloRouter } from './helpers/hello-graph.js';
import { RawClient } from './protocols/harness.js';

let hello: HelloRouter;
let url: string;
let wsUrl: string;

beforeAll(async () => {
  hello = await startHelloRouter(
    ['security: { parser_limits: { max_tokens: 40 } }', 'introspection: { enabled: false }'].join('\n'),
  );
  url = hello.router.url;
  wsUrl = url.replace(/^http/, 'ws');
});

afterAll(async () => {
  await hello?.close();
});

/** 20 aliases: 63 tokens, over the 40 allowed. */
const TOO_MANY_TOKENS = `{ ${Array.from({ length: 20 }, (_, i) => `a${i}: hello`).join(' ')} }`;
const TOKENS_ERROR = {
  message: 'The operation document has more than 40 tokens (security.parser_limits.max_tokens).',
  extensions: { code: 'MAX_TOKENS_EXCEEDED' },
};

async function rejected(reason: string): Promise<number> {
  const text = await (await fetch(hello.router.metricsUrl!)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`router_operations_rejected_total{reason="${reason}"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

function post(query: string, accept = 'application/json') {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept },
    body: JSON.stringify({ query }),
  });
}

describe('a refused operation, transport by transport', () => {
  it('POST: 400 with the code for application/graphql-response+json, 200 for application/json', async () => {
    const before = await rejected('tokens');
    const modern = await post(TOO_MANY_TOKENS, 'application/graphql-response+json');
    expect(modern.status).toBe(400);
    expect(await modern.json()).toEqual({ errors: [TOKENS_ERROR] });
    const legacy = await post(TOO_MANY_TOKENS);
    expect(legacy.status).toBe(200);
    expect(await legacy.json()).toEqual({ errors: [TOKENS_ERROR] });
    expect(await rejected('tokens')).toBe(before + 2);
  });

  it('GET', async () => {
    const res = await fetch(`${url}?${new URLSearchParams({ query: TOO_MANY_TOKENS })}`, {
      headers: { accept: 'application/graphql-response+json' },
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ errors: [TOKENS_ERROR] });
  });

  it('SSE: 400 JSON for a client that takes JSON too; the errors as the stream for one that does not', async () => {
    const both = await post(TOO_MANY_TOKENS, 'text/event-stream, application/json;q=0.9');
    expect(both.status).toBe(400);
    expect(await both.json()).toEqual({ errors: [TOKENS_ERROR] });
    const only = await post(TOO_MANY_TOKENS, 'text/event-stream');
    expect(only.status).toBe(200);
    const body = await only.text();
    expect(body).toContain(`data: ${JSON.stringify({ errors: [TOKENS_ERROR] })}`);
    expect(body).toContain('event: complete');
  });

  it('multipart: 400 JSON for a client that takes JSON too', async () => {
    const res = await post(TOO_MANY_TOKENS, 'multipart/mixed;subscriptionSpec="1.0", application/json;q=0.9');
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ errors: [TOKENS_ERROR] });
  });

  it('multipart: a 5,000-deep document is refused by the limits (the transport reads its type without parsing)', async () => {
    const deep = `{${'a{'.repeat(5000)}b${'}'.repeat(5000)}}`;
    const res = await post(deep, 'multipart/mixed;subscriptionSpec="1.0", application/json;q=0.9');
    expect(res.status).toBe(400);
    const { errors } = (await res.json()) as { errors: { extensions: { code: string } }[] };
    expect(errors[0]!.extensions.code).toMatch(/^MAX_(DEPTH|TOKENS)_EXCEEDED$/);
  });

  it('graphql-transport-ws: an error message for that operation; the connection and the next operation work', async () => {
    const client = await RawClient.acknowledged(wsUrl);
    try {
      client.subscribe('bad', TOO_MANY_TOKENS);
      expect(await client.next((m) => m.id === 'bad')).toEqual({
        id: 'bad',
        type: 'error',
        payload: [TOKENS_ERROR],
      });
      client.subscribe('intro', '{ __schema { queryType { name } } }');
      const intro = await client.next((m) => m.id === 'intro');
      expect(intro).toMatchObject({
        type: 'error',
        payload: [{ extensions: { code: 'INTROSPECTION_DISABLED' } }],
      });
      client.subscribe('good', '{ hello }');
      expect(await client.next((m) => m.id === 'good' && m.type === 'next')).toEqual({
        id: 'good',
        type: 'next',
        payload: { data: { hello: 'world' } },
      });
      expect(client.ws.readyState).toBe(client.ws.OPEN);
    } finally {
      client.ws.close();
    }
  });

  it('legacy graphql-ws: the errors as data, then complete; the connection stays', async () => {
    const client = await RawClient.acknowledged(wsUrl, undefined, 'graphql-ws');
    try {
      client.send({ id: 'bad', type: 'start', payload: { query: TOO_MANY_TOKENS } });
      expect(await client.next((m) => m.id === 'bad' && m.type === 'data')).toEqual({
        id: 'bad',
        type: 'data',
        payload: { errors: [TOKENS_ERROR] },
      });
      await client.next((m) => m.id === 'bad' && m.type === 'complete');
      client.send({ id: 'good', type: 'start', payload: { query: '{ hello }' } });
      expect(await client.next((m) => m.id === 'good' && m.type === 'data')).toEqual({
        id: 'good',
        type: 'data',
        payload: { data: { hello: 'world' } },
      });
    } finally {
      client.ws.close();
    }
  });

  it('introspection over HTTP is refused with its code and counted', async () => {
    const before = await rejected('introspection');
    const res = await post('{ __type(name: "Query") { name } }', 'application/graphql-response+json');
    expect(res.status).toBe(400);
    const { errors } = (await res.json()) as { errors: { extensions: { code: string } }[] };
    expect(errors[0]!.extensions.code).toBe('INTROSPECTION_DISABLED');
    expect(await rejected('introspection')).toBe(before + 1);
  });

  it('suggestions are not in validation errors', async () => {
    const res = await post('{ helo }');
    expect(await res.json()).toEqual({
      errors: [
        { message: 'Cannot query field "helo" on type "Query".', locations: [{ line: 1, column: 3 }] },
      ],
    });
  });
});
