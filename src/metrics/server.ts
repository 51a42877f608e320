// The metrics endpoint: plain HTTP, GET /metrics in the Prometheus text format. Scrapes are
// served one at a time (a scrape reads every worker's counters; a second one at the same
// moment waits for the first rather than doubling that work).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import type { Logger } from 'pino';

import { METRICS_PATH, type MetricsConfig } from './config.js';
import type { MetricsExporter } from './exporter.js';

export class MetricsServer {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly server: Server) {}

  /** Listens on config.host:config.port; rejects with a readable error when it cannot. */
  static async listen(config: Pick<MetricsConfig, 'host' | 'port' | 'listen'>, exporter: MetricsExporter, logger?: Logger): Promise<MetricsServer> {
    const server = createServer();
    const metrics = new MetricsServer(server);
    server.on('request', (request, response) => {
      const url = (request.url ?? '/').split('?')[0];
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        response.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (url === '/') {
        response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(`l4mux metrics: ${METRICS_PATH}\n`);
        return;
      }
      if (url !== METRICS_PATH) {
        response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`not found (metrics are at ${METRICS_PATH})\n`);
        return;
      }
      const scrape = metrics.queue.then(async () => {
        try {
          const text = await exporter.render();
          response.writeHead(200, { 'content-type': exporter.contentType }).end(request.method === 'HEAD' ? undefined : text);
          if (exporter.unnamed.length > 0) logger?.debug({ unnamed: exporter.unnamed }, 'metrics: counters without a documented name');
        } catch (e) {
          logger?.error({ err: e }, 'metrics scrape failed');
          response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`scrape failed: ${e instanceof Error ? e.message : String(e)}\n`);
        }
      });
      metrics.queue = scrape;
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new Error(`metrics.listen ${config.listen}: ${e.code === 'EADDRINUSE' ? 'address already in use' : e.code === 'EADDRNOTAVAIL' ? 'no such local address' : e.message}`)),
      );
      server.listen({ host: config.host, port: config.port }, () => resolve());
    });
    server.on('error', (e) => logger?.error({ err: e }, 'metrics endpoint error'));
    return metrics;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
