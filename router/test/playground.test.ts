import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startHelloRouter, type HelloRouter } from './helpers/hello-graph.js';

const browserAccept = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';

describe('GraphiQL', () => {
  let hello: HelloRouter;
  beforeAll(async () => {
    hello = await startHelloRouter();
  });
  afterAll(async () => {
    await hello?.close();
  });

  it('a browser opening the GraphQL path gets the GraphiQL page, pointed at that path', async () => {
    const res = await fetch(hello.router.url, { headers: { accept: browserAccept } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await res.text();
    expect(html).toContain('<script src="/graphiql/assets/graphiql.js"></script>');
    expect(html).toContain('"endpoint":"/graphql"');
    expect(html).toContain('"subscriptionsProtocol":"WS"');
    // Nothing is loaded from another host: the machines running the router may have no internet.
    expect(html).not.toMatch(/https?:\/\//);
    // A page view is not a GraphQL request.
    expect(await (await fetch(hello.router.metricsUrl!)).text()).not.toMatch(
      /^router_http_requests_total\{/m,
    );
  });

  it('the page assets are served by the router itself', async () => {
    const js = await fetch(`${hello.router.baseUrl}/graphiql/assets/graphiql.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toBe('application/javascript; charset=utf-8');
    expect((await js.text()).length).toBeGreaterThan(100_000);
    for (const file of [
      'graphiql.css',
      'editor.worker.js',
      'json.worker.js',
      'graphql.worker.js',
      'favicon.ico',
    ])
      expect((await fetch(`${hello.router.baseUrl}/graphiql/assets/${file}`)).status).toBe(200);
    expect((await fetch(`${hello.router.baseUrl}/graphiql/assets/nope.js`)).status).toBe(404);
  });

  it('a GraphQL client on the same path still gets GraphQL', async () => {
    const res = await fetch(`${hello.router.url}?query=${encodeURIComponent('{ hello }')}`, {
      headers: { accept: 'application/json' },
    });
    expect(await res.json()).toEqual({ data: { hello: 'world' } });
  });
});

describe('GraphiQL disabled', () => {
  it('with playground.enabled false a browser gets the GraphQL answer instead', async () => {
    const hello = await startHelloRouter('playground: { enabled: false }');
    try {
      const res = await fetch(hello.router.url, { headers: { accept: browserAccept } });
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect((await fetch(`${hello.router.baseUrl}/graphiql/assets/graphiql.js`)).status).toBe(404);
    } finally {
      await hello.close();
    }
  });
});
