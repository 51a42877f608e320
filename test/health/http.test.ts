import type http from 'node:http';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { parseStatusRanges } from '../../src/config/health/index.js';
import { createHttpProbe, type HttpProbeOptions } from '../../src/health/index.js';
import { closedPort, hasOpenssl, httpServer, httpsServer, selfSignedCert, type Cert, type Closable } from './support.js';

function options(overrides: Partial<HttpProbeOptions> = {}): HttpProbeOptions {
  const expectStatus = overrides.expectStatus ?? '200-299';
  const ranges = parseStatusRanges(expectStatus);
  if (!ranges.ok) throw new Error(ranges.reason);
  return {
    method: 'GET',
    path: '/',
    headers: {},
    expectStatus,
    expectStatusRanges: ranges.ranges,
    weightHeader: 'X-Load-Weight',
    tls: { verify: false },
    tlsEnabled: false,
    weightFrom: 'none',
    ...overrides,
  };
}

interface Seen {
  method: string | undefined;
  url: string | undefined;
  host: string | undefined;
  headers: http.IncomingHttpHeaders;
}

describe('HTTP probe', () => {
  let server: Closable;
  let last: Seen | undefined;
  beforeAll(async () => {
    server = await httpServer((req, res) => {
      last = { method: req.method, url: req.url, host: req.headers.host, headers: req.headers };
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/slow') return; // never answers
      if (url.pathname === '/status') {
        res.writeHead(Number(url.searchParams.get('code') ?? 200));
        res.end('status page');
        return;
      }
      if (url.pathname === '/weight') {
        res.writeHead(200, { 'X-Load-Weight': url.searchParams.get('w') ?? '' });
        res.end('weighted');
        return;
      }
      if (url.pathname === '/agent') {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('status: ready\nweight=42\n');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('all systems go, build 1234\n');
    });
  });
  afterAll(async () => {
    await server.close();
  });
  const target = (): { address: string; port: number } => ({ address: '127.0.0.1', port: server.port });

  it('is up on an accepted status, and sends method, path, Host and extra headers', async () => {
    const probe = createHttpProbe(options({ method: 'POST', path: '/health?x=1', host: 'app.example', headers: { 'X-Check': 'l4mux' } }));
    const result = await probe(target(), { timeoutMs: 1000 });
    expect(result).toMatchObject({ ok: true, detail: 'HTTP 200' });
    expect(last).toMatchObject({ method: 'POST', url: '/health?x=1', host: 'app.example' });
    expect(last?.headers['x-check']).toBe('l4mux');
    expect(last?.headers['connection']).toBe('close');
  });

  it('sends the address and port as Host by default', async () => {
    await createHttpProbe(options())(target(), { timeoutMs: 1000 });
    expect(last?.host).toBe(`127.0.0.1:${server.port}`);
  });

  it('is down on a status outside the list, up on one inside a range', async () => {
    const probe = createHttpProbe(options({ path: '/status?code=503' }));
    expect(await probe(target(), { timeoutMs: 1000 })).toMatchObject({ ok: false, detail: 'HTTP 503 (expected 200-299)' });
    const redirects = createHttpProbe(options({ path: '/status?code=302', expectStatus: '200,301-302' }));
    expect(await redirects(target(), { timeoutMs: 1000 })).toMatchObject({ ok: true, detail: 'HTTP 302' });
  });

  it('checks the body for a text or a regular expression', async () => {
    const contains = createHttpProbe(options({ expectBody: 'systems go' }));
    expect((await contains(target(), { timeoutMs: 1000 })).ok).toBe(true);
    const missing = createHttpProbe(options({ expectBody: 'maintenance' }));
    expect(await missing(target(), { timeoutMs: 1000 })).toMatchObject({ ok: false, detail: 'HTTP 200, but the body does not contain "maintenance"' });
    const regex = createHttpProbe(options({ expectBodyRegex: 'build \\d{4}\\s*$' }));
    expect((await regex(target(), { timeoutMs: 1000 })).ok).toBe(true);
    const noMatch = createHttpProbe(options({ expectBodyRegex: '^down' }));
    expect(await noMatch(target(), { timeoutMs: 1000 })).toMatchObject({ ok: false, detail: 'HTTP 200, but the body does not match /^down/' });
  });

  it('reads a dynamic weight from a response header: absolute or a percentage of the configured weight', async () => {
    const probe = createHttpProbe(options({ path: '/weight?w=37', weightFrom: 'header' }));
    expect(await probe(target(), { timeoutMs: 1000, baseWeight: 10 })).toMatchObject({ ok: true, weight: 37, detail: 'HTTP 200, weight 37' });
    // "50%" of a configured weight of 10.
    const half = createHttpProbe(options({ path: `/weight?w=${encodeURIComponent('50%')}`, weightFrom: 'header' }));
    expect(await half(target(), { timeoutMs: 1000, baseWeight: 10 })).toMatchObject({ ok: true, weight: 5, detail: 'HTTP 200, weight 5' });
  });

  it('stays up without a weight when the header is missing or not a number', async () => {
    const missing = createHttpProbe(options({ path: '/', weightFrom: 'header' }));
    const result = await missing(target(), { timeoutMs: 1000 });
    expect(result).toMatchObject({ ok: true, detail: 'HTTP 200; no X-Load-Weight header' });
    expect(result.weight).toBeUndefined();
    const garbage = createHttpProbe(options({ path: '/weight?w=lots', weightFrom: 'header' }));
    const bad = await garbage(target(), { timeoutMs: 1000 });
    expect(bad.ok).toBe(true);
    expect(bad.weight).toBeUndefined();
    expect(bad.detail).toContain('ignored weight');
  });

  it('reads a weight from the body (agent style)', async () => {
    const probe = createHttpProbe(options({ path: '/agent', weightFrom: 'body' }));
    expect(await probe(target(), { timeoutMs: 1000 })).toMatchObject({ ok: true, weight: 42 });
  });

  it('times out when the response does not come', async () => {
    const probe = createHttpProbe(options({ path: '/slow' }));
    const result = await probe(target(), { timeoutMs: 150 });
    expect(result).toMatchObject({ ok: false, detail: `no HTTP response from 127.0.0.1:${server.port} within 150 ms` });
  });

  it('is down when nothing listens', async () => {
    const port = await closedPort();
    const result = await createHttpProbe(options())({ address: '127.0.0.1', port }, { timeoutMs: 1000 });
    expect(result).toMatchObject({ ok: false, detail: `HTTP 127.0.0.1:${port}: ECONNREFUSED` });
  });

  it('accepts HEAD', async () => {
    const result = await createHttpProbe(options({ method: 'HEAD' }))(target(), { timeoutMs: 1000 });
    expect(result).toMatchObject({ ok: true, detail: 'HTTP 200' });
    expect(last?.method).toBe('HEAD');
  });
});

describe.skipIf(!hasOpenssl())('HTTPS probe (self-signed certificate from openssl)', () => {
  let cert: Cert;
  let server: Closable;
  let sni: string | undefined;
  beforeAll(async () => {
    cert = selfSignedCert();
    server = await httpsServer((req, res) => {
      sni = (req.socket as import('node:tls').TLSSocket).servername || undefined;
      res.writeHead(200);
      res.end('secure ok');
    }, cert);
  });
  afterAll(async () => {
    await server.close();
    cert.cleanup();
  });
  const target = (): { address: string; port: number } => ({ address: '127.0.0.1', port: server.port });
  const tls = (t: HttpProbeOptions['tls']): HttpProbeOptions => options({ tlsEnabled: true, tls: t });

  it('is up without verification (the default)', async () => {
    const result = await createHttpProbe(tls({ verify: false }))(target(), { timeoutMs: 2000 });
    expect(result).toMatchObject({ ok: true, detail: 'HTTPS 200' });
  });

  it('is down when verification is on and the certificate is not trusted', async () => {
    const result = await createHttpProbe(tls({ verify: true, servername: 'localhost' }))(target(), { timeoutMs: 2000 });
    expect(result.ok).toBe(false);
    expect(result.detail).toMatch(/^HTTPS 127\.0\.0\.1:\d+: (DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)/);
  });

  it('is up when the CA is given and the server name matches; SNI carries the name', async () => {
    const result = await createHttpProbe(tls({ verify: true, servername: 'localhost', ca: cert.certPath }))(target(), { timeoutMs: 2000 });
    expect(result).toMatchObject({ ok: true, detail: 'HTTPS 200' });
    expect(sni).toBe('localhost');
  });

  it('is down when the name does not match the certificate', async () => {
    const result = await createHttpProbe(tls({ verify: true, servername: 'other.example', ca: cert.certPath }))(target(), { timeoutMs: 2000 });
    expect(result.ok).toBe(false);
    expect(result.detail).toContain('ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it('verifies against the address when no name is given (the certificate has IP:127.0.0.1)', async () => {
    const result = await createHttpProbe(tls({ verify: true, ca: cert.certPath }))(target(), { timeoutMs: 2000 });
    expect(result).toMatchObject({ ok: true });
  });

  it('reports an unreadable CA file', async () => {
    const result = await createHttpProbe(tls({ verify: true, ca: '/nonexistent/ca.pem' }))(target(), { timeoutMs: 2000 });
    expect(result).toMatchObject({ ok: false, detail: 'cannot read the CA file /nonexistent/ca.pem: ENOENT' });
  });
});
