/**
 * The operator's two HTTP listeners, as controller-runtime has them: health probes
 * (`/healthz`, `/readyz`; default :8081) and Prometheus metrics (`/metrics`; default :8080).
 *
 * `/readyz` answers 200 only when every check passes and lists failing checks otherwise, so a
 * `kubectl describe pod` shows why a replica is not ready. Both servers bind where told (port 0
 * picks a free one, for tests) and report the address they got.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export type Check = () => true | string;

export interface Listener {
  url: string;
  close(): Promise<void>;
}

/** `:8080`, `0.0.0.0:8080`, `127.0.0.1:0`, `[::]:8080` -> host and port; `0`/`false` disables. */
export function parseBindAddress(address: string, what: string): { host: string; port: number } | undefined {
  if (address === '0' || address === 'false' || address === '') return undefined;
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address);
  if (!match) throw new Error(`${what} "${address}" is not host:port (for example :8080 or 127.0.0.1:0)`);
  const port = Number(match[3]);
  if (port > 65535) throw new Error(`${what} "${address}": port out of range`);
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}

export function startHealthServer(
  bind: { host: string; port: number },
  checks: { healthz: Record<string, Check>; readyz: Record<string, Check> },
): Promise<Listener> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const set =
      path === '/healthz' || path === '/livez'
        ? checks.healthz
        : path === '/readyz'
          ? checks.readyz
          : undefined;
    if (!set || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    const lines: string[] = [];
    let ok = true;
    for (const [name, check] of Object.entries(set)) {
      let verdict: true | string;
      try {
        verdict = check();
      } catch (err) {
        verdict = String(err);
      }
      if (verdict === true) lines.push(`[+]${name} ok`);
      else {
        ok = false;
        lines.push(`[-]${name} failed: ${verdict}`);
      }
    }
    lines.push(ok ? `${path.slice(1)} check passed` : `${path.slice(1)} check failed`);
    res
      .writeHead(ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' })
      .end(`${lines.join('\n')}\n`);
  });
  return listen(server, bind);
}

export function startMetricsServer(
  bind: { host: string; port: number },
  registry: Registry,
): Promise<Listener> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`),
    );
  });
  return listen(server, bind);
}

function listen(server: Server, bind: { host: string; port: number }): Promise<Listener> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `cannot listen on ${bind.host}:${bind.port}: ${err.code === 'EADDRINUSE' ? 'the port is already in use' : err.message}`,
        ),
      ),
    );
    server.listen(bind.port, bind.host, () => {
      const address = server.address() as AddressInfo;
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      resolve({
        url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${address.port}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
