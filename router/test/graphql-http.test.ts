import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startHelloRouter, type HelloRouter } from './helpers/hello-graph.js';

let hello: HelloRouter;
let url: string;

beforeAll(async () => {
  hello = await startHelloRouter();
  url = hello.router.url;
});

afterAll(async () => {
  await hello?.close();
});

function post(body: string, headers: Record<string, string> = {}) {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
}

function get(params: Record<string, string>, headers: Record<string, string> = {}) {
  return fetch(`${url}?${new URLSearchParams(params)}`, { headers });
}

async function errorMessages(res: Response): Promise<string[]> {
  const body = (await res.json()) as { errors?: { message: string }[] };
  return (body.errors ?? []).map((e) => e.message);
}

describe('GraphQL over HTTP: queries and mutations', () => {
  it('a POSTed query is answered with the data from the subgraph', async () => {
    const res = await post(JSON.stringify({ query: '{ hello }' }));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await res.json()).toEqual({ data: { hello: 'world' } });
  });

  it('a query by GET is answered too', async () => {
    const res = await get({ query: 'query Hello { hello }', operationName: 'Hello', variables: '{}' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ data: { hello: 'world' } });
  });

  it('a POSTed mutation runs', async () => {
    const res = await post(
      JSON.stringify({ query: 'mutation($to: String!) { setHello(to: $to) }', variables: { to: 'x' } }),
    );
    expect(await res.json()).toEqual({ data: { setHello: 'set' } });
  });

  it('application/graphql-response+json is answered in that media type', async () => {
    const res = await post(JSON.stringify({ query: '{ hello }' }), {
      accept: 'application/graphql-response+json',
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/graphql-response+json; charset=utf-8');
  });

  it('a document that does not validate is 200 for application/json and 400 for graphql-response+json', async () => {
    const legacy = await post(JSON.stringify({ query: '{ nope }' }));
    expect(legacy.status).toBe(200);
    expect(await errorMessages(legacy)).toEqual(['Cannot query field "nope" on type "Query".']);

    const modern = await post(JSON.stringify({ query: '{ nope }' }), {
      accept: 'application/graphql-response+json',
    });
    expect(modern.status).toBe(400);
    expect(modern.headers.get('content-type')).toBe('application/graphql-response+json; charset=utf-8');
    expect(await errorMessages(modern)).toEqual(['Cannot query field "nope" on type "Query".']);
  });
});

describe('GraphQL over HTTP: requests that never reach the engine', () => {
  it('an unparsable JSON body is a 400 GraphQL error naming the problem', async () => {
    const res = await post('{"query": "{ hello }"');
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const [message] = await errorMessages(res);
    expect(message).toMatch(/^Request body is not valid JSON: /);
  });

  it('an empty body, or one that is not a JSON object, is a 400', async () => {
    expect(await errorMessages(await post(''))).toEqual([
      'Request body is empty: expected a JSON object such as {"query": "{ __typename }"}.',
    ]);
    const res = await post('[{"query": "{ hello }"}]');
    expect(res.status).toBe(400);
    expect(await errorMessages(res)).toEqual([
      'Request body must be a JSON object such as {"query": "{ __typename }"}.',
    ]);
  });

  it('a body without "query" is a 400', async () => {
    const res = await post('{"variables": {}}');
    expect(res.status).toBe(400);
    expect(await errorMessages(res)).toEqual([
      'Missing "query" field: expected a JSON object such as {"query": "{ __typename }"}.',
    ]);
  });

  it('variables that are not an object are a 400, in a body and in a query string', async () => {
    const res = await post(JSON.stringify({ query: '{ hello }', variables: [1] }));
    expect(res.status).toBe(400);
    expect(await errorMessages(res)).toEqual(['The "variables" field must be a JSON object.']);

    const viaGet = await get({ query: '{ hello }', variables: '"x"' });
    expect(viaGet.status).toBe(400);
    expect(await errorMessages(viaGet)).toEqual(['The "variables" query parameter must be a JSON object.']);

    const broken = await get({ query: '{ hello }', variables: '{x' });
    expect(broken.status).toBe(400);
    expect((await errorMessages(broken))[0]).toMatch(/^The "variables" query parameter is not valid JSON: /);
  });

  it('GET without a query is a 400 GraphQL error', async () => {
    const res = await fetch(url);
    expect(res.status).toBe(400);
    expect(await errorMessages(res)).toEqual([
      'Missing "query" query parameter: send GET ?query={ __typename } (or POST a JSON body).',
    ]);
  });

  it('GET refuses to run a mutation: 405, naming the operation type, and nothing reaches the subgraph', async () => {
    const before = hello.subgraph.received.length;
    const res = await get({ query: 'mutation { setHello(to: "x") }' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
    expect(await errorMessages(res)).toEqual([
      'Can only perform a mutation operation from a POST request (this was a GET).',
    ]);
    expect(hello.subgraph.received.length).toBe(before);
  });

  it('a body that is not application/json is refused with 415', async () => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: '{ hello }',
    });
    expect(res.status).toBe(415);
    expect(await errorMessages(res)).toEqual([
      'Unsupported content type "text/plain": send GraphQL requests as application/json.',
    ]);
  });

  it('an Accept header that allows neither JSON type is refused with 406', async () => {
    const res = await post(JSON.stringify({ query: '{ hello }' }), { accept: 'application/xml' });
    expect(res.status).toBe(406);
  });

  it('other methods are refused with 405 and the allowed ones', async () => {
    const res = await fetch(url, { method: 'DELETE' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, POST');
  });
});

describe('GraphQL over HTTP: limits', () => {
  it('a body over traffic_shaping.router.max_request_body_size is refused with 413', async () => {
    const small = await startHelloRouter('traffic_shaping: { router: { max_request_body_size: 64B } }');
    try {
      const res = await fetch(small.router.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: `{ hello ${' '.repeat(100)} }` }),
      });
      expect(res.status).toBe(413);
      expect(await errorMessages(res)).toEqual([
        'Request body is too large (limit: traffic_shaping.router.max_request_body_size).',
      ]);
    } finally {
      await small.close();
    }
  });
});

describe('GraphQL over HTTP: metrics', () => {
  it('requests are counted by operation type and status; subgraph requests by subgraph', async () => {
    const fresh = await startHelloRouter();
    try {
      const send = (body: string) =>
        fetch(fresh.router.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      await send(JSON.stringify({ query: '{ hello }' }));
      await send(JSON.stringify({ query: '{ hello }' }));
      await send(JSON.stringify({ query: 'mutation { setHello(to: "x") }' }));
      await send('{');
      await fetch(`${fresh.router.url}?query=${encodeURIComponent('mutation { setHello(to: "x") }')}`);
      const text = await (await fetch(fresh.router.metricsUrl!)).text();
      expect(text).toContain('router_http_requests_total{operation_type="query",status="200"} 2');
      expect(text).toContain('router_http_requests_total{operation_type="mutation",status="200"} 1');
      expect(text).toContain('router_http_requests_total{operation_type="mutation",status="405"} 1');
      expect(text).toContain('router_http_requests_total{operation_type="unknown",status="400"} 1');
      expect(text).toContain('router_http_request_duration_seconds_count{operation_type="query"} 2');
      expect(text).toContain('router_subgraph_requests_total{subgraph="hello"} 3');
    } finally {
      await fresh.close();
    }
  });
});
