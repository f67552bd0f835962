import { describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRouterConfig } from '../src/config/load.js';
import { startRouter } from '../src/main.js';
import { createLogger } from '../src/observability/logger.js';
import { createRouterMetrics, ROUTER_METRIC_NAMES } from '../src/observability/metrics.js';
import { helloExecutionConfig, startHelloRouter } from './helpers/hello-graph.js';

const silent = createLogger({ level: 'silent' });

describe('health endpoints', () => {
  it('/health/live answers ok while the process serves HTTP', async () => {
    const { router, close } = await startHelloRouter();
    try {
      const res = await fetch(`${router.baseUrl}/health/live`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: 'ok' });
    } finally {
      await close();
    }
  });

  it('/health/ready is ok once the execution config is loaded and 503 with the reason while a check fails', async () => {
    const { router, close } = await startHelloRouter();
    try {
      const ready = await fetch(`${router.baseUrl}/health/ready`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ status: 'ok' });

      const unregister = router.readiness.register(
        'nats:default',
        () => 'not connected to nats://localhost:4222',
      );
      const notReady = await fetch(`${router.baseUrl}/health/ready`);
      expect(notReady.status).toBe(503);
      expect(await notReady.json()).toEqual({
        status: 'unavailable',
        reasons: ['nats:default: not connected to nats://localhost:4222'],
      });

      unregister();
      expect((await fetch(`${router.baseUrl}/health/ready`)).status).toBe(200);
    } finally {
      await close();
    }
  });

  it('a readiness check that throws counts as not ready', async () => {
    const { router, close } = await startHelloRouter();
    try {
      router.readiness.register('kafka:main', async () => {
        throw new Error('broker unreachable');
      });
      const res = await fetch(`${router.baseUrl}/health/ready`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({
        status: 'unavailable',
        reasons: ['kafka:main: check failed: broker unreachable'],
      });
    } finally {
      await close();
    }
  });
});

describe('metrics endpoint', () => {
  it('serves every metric of the design on its own port, with process and event-loop metrics', async () => {
    const { router, close } = await startHelloRouter();
    try {
      expect(router.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      expect(new URL(router.metricsUrl!).port).not.toBe(new URL(router.url).port);
      const res = await fetch(router.metricsUrl!);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      const text = await res.text();
      for (const name of [
        'router_engine_connections',
        'router_engine_subscriptions',
        'router_engine_triggers',
        'router_engine_messages_sent_total',
        'router_events_received_total',
        'router_event_fanout_seconds',
        'router_subgraph_requests_total',
        'router_dropped_messages_total',
        'router_http_requests_total',
        'router_http_request_duration_seconds',
      ])
        expect(text).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
      expect(ROUTER_METRIC_NAMES.length).toBe(10);
      expect(text).toMatch(/^# TYPE router_event_fanout_seconds histogram$/m);
      expect(text).toMatch(/^# TYPE router_engine_connections gauge$/m);
      expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
      expect(text).toMatch(/^process_resident_memory_bytes /m);

      // Not on the client-facing port.
      expect((await fetch(`${router.baseUrl}/metrics`)).status).toBe(404);
    } finally {
      await close();
    }
  });

  it('each router counts for itself', () => {
    const a = createRouterMetrics({ processMetrics: false });
    const b = createRouterMetrics({ processMetrics: false });
    a.eventsReceived.inc({ provider_id: 'default' });
    return Promise.all([a.scrape(), b.scrape()]).then(([textA, textB]) => {
      expect(textA).toContain('router_events_received_total{provider_id="default"} 1');
      expect(textB).not.toContain('provider_id="default"');
    });
  });

  it('metrics can be turned off', async () => {
    const config = parseRouterConfig(
      'listen_addr: "127.0.0.1:0"\nexecution_config: { file: { path: ./config.json } }\ntelemetry: { metrics: { prometheus: { enabled: false } } }\n',
    );
    const off = await startRouter(config, {
      logger: silent,
      executionConfig: helloExecutionConfig('http://127.0.0.1:1/graphql'),
    });
    try {
      expect(off.metricsUrl).toBeUndefined();
    } finally {
      await off.close();
    }
  });
});

describe('starting a router', () => {
  it('a missing execution config file stops the start with an error naming the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edfs-start-'));
    try {
      await writeFile(
        join(dir, 'router.yaml'),
        'listen_addr: "127.0.0.1:0"\nexecution_config: { file: { path: ./nope.json } }\n',
      );
      await expect(startRouter(join(dir, 'router.yaml'), { logger: silent })).rejects.toThrow(
        join(dir, 'nope.json'),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('an execution config that is not one stops the start with an error naming the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edfs-start-'));
    try {
      await writeFile(join(dir, 'config.json'), '{"hello": 1}');
      await writeFile(
        join(dir, 'router.yaml'),
        'listen_addr: "127.0.0.1:0"\nexecution_config: { file: { path: ./config.json } }\n',
      );
      await expect(startRouter(join(dir, 'router.yaml'), { logger: silent })).rejects.toThrow(
        `${join(dir, 'config.json')}: `,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a port in use is reported with the setting that chose it', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as AddressInfo;
    try {
      const config = parseRouterConfig(
        `listen_addr: "127.0.0.1:${port}"\nexecution_config: { file: { path: ./config.json } }\ntelemetry: { metrics: { prometheus: { listen_addr: "127.0.0.1:0" } } }\n`,
      );
      await expect(
        startRouter(config, {
          logger: silent,
          executionConfig: helloExecutionConfig('http://127.0.0.1:1/graphql'),
        }),
      ).rejects.toThrow(`listen_addr 127.0.0.1:${port}: cannot listen: the port is already in use`);

      const metricsClash = parseRouterConfig(
        `listen_addr: "127.0.0.1:0"\nexecution_config: { file: { path: ./config.json } }\ntelemetry: { metrics: { prometheus: { listen_addr: "127.0.0.1:${port}" } } }\n`,
      );
      await expect(
        startRouter(metricsClash, {
          logger: silent,
          executionConfig: helloExecutionConfig('http://127.0.0.1:1/graphql'),
        }),
      ).rejects.toThrow(`telemetry.metrics.prometheus.listen_addr 127.0.0.1:${port}: cannot listen`);
    } finally {
      blocker.close();
    }
  });

  it('close() stops both ports and can be called twice', async () => {
    const { router, close } = await startHelloRouter();
    await close();
    await router.close();
    await expect(fetch(`${router.baseUrl}/health/live`)).rejects.toThrow();
    await expect(fetch(router.metricsUrl!)).rejects.toThrow();
  });
});
