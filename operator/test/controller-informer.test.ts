/**
 * The informer wrapper around @kubernetes/client-node's makeInformer, against a fake list/watch
 * endpoint (a small HTTP server speaking the API server's list and watch wire format; a stand-in
 * for what cannot be provoked on demand from a real API server: a 500 in the middle of a watch, a
 * 410 Gone, a refused list). Shows: the cache and handlers follow the watch; after any error the
 * informer comes back by itself with backoff and relists; objects deleted meanwhile are reported
 * as deletes; unchanged objects are not reported twice.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import { HttpKubeClient } from '../src/kube/client.js';
import { Informer } from '../src/kube/informer.js';
import { silentLogger } from '../src/kube/logger.js';
import { RESOURCES, type AnyObject } from '../src/kube/resources.js';

interface FakeApi {
  url: string;
  objects: Map<string, AnyObject>;
  lists: number;
  watches: number;
  /** What the next list/watch requests get. */
  listStatus: number;
  watchStatus: number;
  /** Sends a watch event to every open watch. */
  emit(type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'ERROR', obj: unknown): void;
  /** Ends every open watch (as the API server does at its timeout or on restart). */
  closeWatches(): void;
  put(name: string, data?: Record<string, string>): AnyObject;
  close(): Promise<void>;
}

async function startFakeApi(): Promise<FakeApi> {
  let rv = 100;
  const watchers = new Set<ServerResponse>();
  const api: Omit<FakeApi, 'url' | 'close'> = {
    objects: new Map(),
    lists: 0,
    watches: 0,
    listStatus: 200,
    watchStatus: 200,
    emit(type, obj) {
      for (const res of watchers) res.write(`${JSON.stringify({ type, object: obj })}\n`);
    },
    closeWatches() {
      for (const res of watchers) res.end();
      watchers.clear();
    },
    put(name, data = {}) {
      const obj = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name, namespace: 'ns', resourceVersion: String(++rv) },
        data,
      } as AnyObject;
      api.objects.set(name, obj);
      return obj;
    },
  };
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.searchParams.get('watch') === 'true') {
      api.watches++;
      if (api.watchStatus !== 200) {
        res
          .writeHead(api.watchStatus, { 'content-type': 'application/json' })
          .end('{"kind":"Status","message":"nope"}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      watchers.add(res);
      res.on('close', () => watchers.delete(res));
      return;
    }
    api.lists++;
    if (api.listStatus !== 200) {
      res
        .writeHead(api.listStatus, { 'content-type': 'application/json' })
        .end('{"kind":"Status","message":"forbidden"}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        kind: 'ConfigMapList',
        items: [...api.objects.values()],
        metadata: { resourceVersion: String(rv) },
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(api, {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        api.closeWatches();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

async function eventually(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

let api: FakeApi;
let informer: Informer<AnyObject>;
let log: string[];

beforeEach(async () => {
  api = await startFakeApi();
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: api.url, skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'u' }],
    currentContext: 'fake',
  });
  informer = new Informer(kc, new HttpKubeClient(kc, { fieldManager: 'edfs-informer-test' }), {
    type: RESOURCES.ConfigMap,
    namespace: 'ns',
    logger: silentLogger,
    initialBackoffMs: 50,
    maxBackoffMs: 400,
  });
  log = [];
  informer.on({
    add: (o) => log.push(`add ${o.metadata.name}`),
    update: (o, old) =>
      log.push(`update ${o.metadata.name} ${old.metadata.resourceVersion}->${o.metadata.resourceVersion}`),
    delete: (o) => log.push(`delete ${o.metadata.name}`),
  });
});

afterEach(async () => {
  await informer.stop();
  await api.close();
});

describe('Informer', () => {
  it('lists, syncs, then follows watch events into its cache and handlers', async () => {
    api.put('a');
    informer.start();
    await informer.waitForSync();
    expect(informer.hasSynced()).toBe(true);
    expect(log).toEqual(['add a']);
    await eventually(() => api.watches === 1, 'watch open');

    const b = api.put('b');
    api.emit('ADDED', b);
    const a2 = api.put('a', { k: 'v' });
    api.emit('MODIFIED', a2);
    api.emit('DELETED', b);
    await eventually(() => log.length === 4, 'events');
    expect(log).toEqual(['add a', 'add b', `update a 101->${a2.metadata.resourceVersion}`, 'delete b']);
    expect(informer.list('ns').map((o) => o.metadata.name)).toEqual(['a']);
    expect((informer.get('ns', 'a') as AnyObject & { data: unknown }).data).toEqual({ k: 'v' });
  });

  it('after a watch error it restarts with backoff, relists, and reports what changed meanwhile', async () => {
    api.put('a');
    api.put('b');
    informer.start();
    await informer.waitForSync();
    await eventually(() => api.watches === 1, 'watch open');

    // The API server goes away: the watch ends and the next one fails with 500.
    api.watchStatus = 500;
    api.closeWatches();
    await eventually(() => informer.restarts >= 2, 'restarted twice');
    expect(informer.hasSynced()).toBe(true); // readers keep the last known state

    // Meanwhile b was deleted and c created, with nobody watching.
    api.objects.delete('b');
    api.put('c');
    api.watchStatus = 200;
    await eventually(() => log.includes('add c') && log.includes('delete b'), 'relisted');
    expect(log).toEqual(['add a', 'add b', 'delete b', 'add c']); // a unchanged: not reported again
    expect(
      informer
        .list()
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(['a', 'c']);
  });

  it('backs off exponentially between failed restarts', async () => {
    informer.start();
    await informer.waitForSync();
    await eventually(() => api.watches === 1, 'watch open');
    api.watchStatus = 503;
    api.closeWatches();
    const started = Date.now();
    await eventually(() => informer.restarts >= 4, 'four restarts', 5_000);
    // 50 + 100 + 200 ms at least before the fourth attempt.
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(api.watches).toBeLessThanOrEqual(6);
  });

  it('relists after 410 Gone in the watch stream', async () => {
    api.put('a');
    informer.start();
    await informer.waitForSync();
    await eventually(() => api.watches === 1, 'watch open');
    const listsBefore = api.lists;
    api.objects.delete('a');
    api.put('z');
    api.emit('ERROR', {
      kind: 'Status',
      code: 410,
      reason: 'Expired',
      message: 'too old resource version',
      metadata: {},
    });
    api.closeWatches();
    await eventually(() => api.lists > listsBefore && log.includes('add z'), 'relist');
    expect(log).toEqual(['add a', 'delete a', 'add z']);
  });

  it('is not synced while the list is refused, and syncs once it is allowed', async () => {
    api.listStatus = 403;
    api.put('a');
    informer.start();
    await eventually(() => informer.restarts >= 1, 'a failed list');
    expect(informer.hasSynced()).toBe(false);
    api.listStatus = 200;
    await informer.waitForSync();
    expect(log).toEqual(['add a']);
  });
});
