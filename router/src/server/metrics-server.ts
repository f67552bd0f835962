/**
 * Serves the metrics on their own port (default 8088), apart from client traffic, so scraping
 * never competes with GraphQL requests for the router's listener and the port can stay internal.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { HostPort } from '../config/types.js';
import { connectableHost } from './address.js';
import type { RouterMetrics } from '../observability/metrics.js';

export interface MetricsServer {
  /** Full URL of the metrics endpoint, with the port actually bound. */
  readonly url: string;
  close(): Promise<void>;
}

export async function startMetricsServer(options: {
  metrics: RouterMetrics;
  listenAddr: HostPort;
  path: string;
  logger?: Logger;
}): Promise<MetricsServer> {
  const { metrics, path, logger } = options;
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://metrics');
    if (url.pathname !== path) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: metrics are served at ${path}\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    metrics.scrape().then(
      (text) => {
        res.writeHead(200, { 'content-type': metrics.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        logger?.error({ err }, 'collecting metrics failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('collecting metrics failed\n');
      },
    );
  });
  server.keepAliveTimeout = 65_000; // longer than a typical scrape interval
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listenAddr.port, options.listenAddr.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${connectableHost(address)}:${address.port}${path}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
