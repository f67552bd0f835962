/**
 * The router's labelled series as Prometheus scrapes them from `/metrics`: present at 0 from the
 * start for every label value the router knows of, execution config reloads counted by result,
 * subgraph failures counted by kind, and the event provider connection gauge.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createProviders } from '../../src/events/providers.js';
import { startRouter, type RunningRouter } from '../../src/main.js';
import { createLogger } from '../../src/observability/logger.js';
import { createRouterMetrics } from '../../src/observability/metrics.js';
import { waitFor } from '../protocols/harness.js';
import { helloExecutionConfig, startHelloRouter, type HelloRouter } from '../helpers/hello-graph.js';

const opened: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((o) => o.close()));
});

async function helloRouter(yaml = ''): Promise<HelloRouter> {
  const started = await startHelloRouter(yaml);
  opened.push(started);
  return started;
}

/** The value of the series written exactly as `series` (`name{label="value",...}`) on a scrape. */
async function sample(router: RunningRouter, series: string): Promise<number | undefined> {
  const text = await (await fetch(router.metricsUrl!)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('series at 0 before the first event', () => {
  it('a fresh /metrics has every provider, subgraph, drop reason, rejection reason and reload result at 0', async () => {
    const { router } = await helloRouter(
      'events: { providers: { nats: [{ id: chat, url: "memory://router-metrics-fresh" }] } }',
    );
    const zero = [
      'router_events_received_total{provider_id="chat"}',
      'router_events_provider_reconnects_total{provider_id="chat"}',
      'router_subgraph_requests_total{subgraph="hello"}',
      ...['timeout', 'unreachable', 'http', 'graphql'].map(
        (kind) => `router_subgraph_errors_total{subgraph="hello",kind="${kind}"}`,
      ),
      ...['invalid_json', 'invalid_event', 'backlog', 'slow_consumer', 'send_buffer_budget'].map(
        (reason) => `router_dropped_messages_total{reason="${reason}"}`,
      ),
      ...[
        'document_size',
        'tokens',
        'depth',
        'total_fields',
        'root_fields',
        'root_field_aliases',
        'cost',
        'operation_name_length',
        'introspection',
        'mutation_blocked',
        'subscription_blocked',
      ].map((reason) => `router_operations_rejected_total{reason="${reason}"}`),
      'router_execution_config_reloads_total{result="success"}',
      'router_execution_config_reloads_total{result="failure"}',
    ];
    const found: Record<string, number | undefined> = {};
    for (const series of zero) found[series] = await sample(router, series);
    expect(found).toEqual(Object.fromEntries(zero.map((series) => [series, 0])));
    expect(await sample(router, 'router_events_provider_connected{provider_id="chat"}')).toBe(1);
  });
});

describe('router_events_provider_connected', () => {
  it('follows the provider status: 0 while a NATS provider cannot reach its server, 1 for the in-process broker', async () => {
    const metrics = createRouterMetrics({ processMetrics: false });
    const providers = await createProviders(
      {
        nats: [
          { id: 'down', url: 'nats://127.0.0.1:1' },
          { id: 'memory', url: 'memory://router-metrics-gauge' },
        ],
      },
      { metrics, nats: { reconnectTimeWaitMs: 50, connectTimeoutMs: 500 } },
    );
    opened.push({
      close: async () => void (await Promise.all([...providers.values()].map((p) => p.close()))),
    });
    await Promise.all([...providers.values()].map((p) => p.connect().catch(() => undefined)));
    const text = await metrics.scrape();
    expect(text).toContain('router_events_provider_connected{provider_id="down"} 0');
    expect(text).toContain('router_events_provider_connected{provider_id="memory"} 1');
  });
});

describe('router_execution_config_reloads_total', () => {
  it('counts a served reload as success, and a refused one as failure while the old config keeps serving', async () => {
    const hello = await helloRouter();
    const { router, dir, subgraph } = hello;
    const path = join(dir, 'config.json');
    const reloads = async () => ({
      success: await sample(router, 'router_execution_config_reloads_total{result="success"}'),
      failure: await sample(router, 'router_execution_config_reloads_total{result="failure"}'),
    });

    // A config with a second subgraph: served, and the new subgraph's series start at 0.
    const next = helloExecutionConfig(subgraph.url) as {
      engineConfig: { datasourceConfigurations: unknown[] };
      subgraphs: unknown[];
    };
    next.subgraphs.push({ id: '1', name: 'greetings', routingUrl: subgraph.url });
    next.engineConfig.datasourceConfigurations.push({
      id: '1',
      rootNodes: [],
      customGraphql: { fetch: { url: { staticVariableContent: subgraph.url }, method: 'POST' } },
    });
    await writeFile(path, JSON.stringify(next));
    expect(await router.reload()).toMatchObject({ ok: true });
    expect(await reloads()).toEqual({ success: 1, failure: 0 });
    expect(await sample(router, 'router_subgraph_requests_total{subgraph="greetings"}')).toBe(0);

    // Not an execution config, then not a file at all: both refused, the last good one serves on.
    const served = router.gateway.current;
    await writeFile(path, '{"engineConfig": {"graphqlSchema": "type Query {"}}');
    expect(await router.reload()).toMatchObject({ ok: false });
    await writeFile(path, 'not json');
    expect(await router.reload()).toMatchObject({ ok: false });
    expect(await reloads()).toEqual({ success: 1, failure: 2 });
    expect(router.gateway.current).toBe(served);
    const res = await fetch(router.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ hello }' }),
    });
    expect(await res.json()).toEqual({ data: { hello: 'world' } });
  });

  it('counts reloads the file watch makes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edfs-reload-metrics-'));
    opened.push({ close: () => rm(dir, { recursive: true, force: true }) });
    const path = join(dir, 'config.json');
    const url = 'http://127.0.0.1:1/graphql';
    await writeFile(path, JSON.stringify(helloExecutionConfig(url)));
    await writeFile(
      join(dir, 'router.yaml'),
      [
        'listen_addr: "127.0.0.1:0"',
        'execution_config: { file: { path: ./config.json, watch: true } }',
        'telemetry: { metrics: { prometheus: { listen_addr: "127.0.0.1:0" } } }',
      ].join('\n'),
    );
    const router = await startRouter(join(dir, 'router.yaml'), { logger: createLogger({ level: 'silent' }) });
    opened.push(router);
    const count = (result: string) =>
      sample(router, `router_execution_config_reloads_total{result="${result}"}`);
    const changed = helloExecutionConfig(url) as { version?: string };
    changed.version = 'two';
    await writeFile(path, JSON.stringify(changed));
    await waitFor(async () => (await count('success')) === 1, 'the new config to be served');
    await writeFile(path, '{}');
    await waitFor(async () => (await count('failure')) === 1, 'the invalid config to be refused');
    expect(await count('success')).toBe(1);
  });
});

describe('router_subgraph_errors_total', () => {
  type Mode = 'ok' | 'errors' | 'status500' | 'html' | 'silent';

  /** A subgraph whose answer the test chooses. */
  async function subgraphServer(): Promise<{ url: string; mode: Mode; server: Server }> {
    const state = { url: '', mode: 'ok' as Mode, server: undefined as unknown as Server };
    state.server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (state.mode === 'silent') return;
        if (state.mode === 'html') {
          res.writeHead(502, { 'content-type': 'text/html' }).end('<html>bad gateway</html>');
          return;
        }
        res.writeHead(state.mode === 'status500' ? 500 : 200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify(
            state.mode === 'ok'
              ? { data: { hello: 'world' } }
              : { data: null, errors: [{ message: 'hello is broken' }] },
          ),
        );
      });
    });
    await new Promise<void>((resolve) => state.server.listen(0, '127.0.0.1', resolve));
    state.url = `http://127.0.0.1:${(state.server.address() as AddressInfo).port}/graphql`;
    return state;
  }

  it('counts each failed request once by kind: graphql, http, timeout, unreachable', async () => {
    const sub = await subgraphServer();
    const { router, dir } = await helloRouter('traffic_shaping: { all: { request_timeout: 300ms } }');
    await writeFile(join(dir, 'config.json'), JSON.stringify(helloExecutionConfig(sub.url)));
    expect(await router.reload()).toMatchObject({ ok: true });
    const query = () =>
      fetch(router.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ hello }' }),
      }).then((r) => r.json());
    const errors = async () => {
      const counts: Record<string, number | undefined> = {};
      for (const kind of ['timeout', 'unreachable', 'http', 'graphql'])
        counts[kind] = await sample(router, `router_subgraph_errors_total{subgraph="hello",kind="${kind}"}`);
      return counts;
    };

    await query();
    sub.mode = 'errors';
    await query();
    sub.mode = 'status500';
    await query();
    sub.mode = 'html';
    await query();
    sub.mode = 'silent';
    await query();
    sub.server.closeAllConnections();
    await new Promise<void>((resolve) => sub.server.close(() => resolve()));
    const down = (await query()) as { errors: { message: string }[] };
    expect(down.errors[0]!.message).toMatch(
      /Failed to fetch from subgraph "hello": connection (refused|closed)/,
    );

    expect(await errors()).toEqual({ graphql: 1, http: 2, timeout: 1, unreachable: 1 });
    expect(await sample(router, 'router_subgraph_requests_total{subgraph="hello"}')).toBe(6);
  });
});
