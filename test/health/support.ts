// Real servers on loopback for the health-check tests, and small helpers.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { HealthCheckSpec } from '../../src/health/index.js';

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export interface Closable {
  port: number;
  close(): Promise<void>;
}

/** A TCP listener that accepts and holds connections; close() also drops them. */
export async function tcpServer(host = '127.0.0.1'): Promise<Closable & { accepted: () => number }> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  const port = await listen(server, host);
  return {
    port,
    accepted: () => accepted,
    close: () => closeServer(server, sockets),
  };
}

export async function httpServer(handler: http.RequestListener, host = '127.0.0.1'): Promise<Closable> {
  const server = http.createServer(handler);
  const sockets = track(server);
  const port = await listen(server, host);
  return { port, close: () => closeServer(server, sockets) };
}

export async function httpsServer(handler: http.RequestListener, cert: Cert, host = '127.0.0.1'): Promise<Closable> {
  const server = https.createServer({ key: cert.key, cert: cert.cert }, handler);
  const sockets = track(server);
  const port = await listen(server, host);
  return { port, close: () => closeServer(server, sockets) };
}

/** A UDP server; `reply` returns the answer to a datagram (undefined: stay silent). */
export async function udpServer(reply: (message: Buffer) => Buffer | string | undefined, host = '127.0.0.1'): Promise<Closable & { received: () => number }> {
  const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  let received = 0;
  socket.on('message', (message, remote) => {
    received++;
    const answer = reply(message);
    if (answer !== undefined) socket.send(answer, remote.port, remote.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, host, resolve));
  return {
    port: socket.address().port,
    received: () => received,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/** A port on 127.0.0.1 where nothing listens (it was free a moment ago). */
export async function closedPort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer();
  const port = await listen(server, host);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A listener that never accepts: a child process listens with a backlog of 1 and blocks its
 * event loop; the test fills the accept queue, after which SYNs are dropped and connects hang.
 */
export async function hungListener(): Promise<Closable> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '-e',
      `const net = require('net');
       const s = net.createServer();
       s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
         require('fs').writeSync(1, s.address().port + '\\n');
         Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000);
         process.exit(0);
       });`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let text = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('\n')) resolve(Number(text.trim()));
    });
    child.on('exit', () => reject(new Error('hung listener exited')));
  });
  // Fill the accept queue (backlog + 1 completed connections); later SYNs are dropped.
  const fillers: net.Socket[] = [];
  for (let i = 0; i < 4; i++) {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    fillers.push(socket);
  }
  await sleep(300);
  return {
    port,
    close: async () => {
      for (const s of fillers) s.destroy();
      child.kill('SIGKILL');
    },
  };
}

export interface Cert {
  dir: string;
  key: string;
  cert: string;
  certPath: string;
  cleanup(): void;
}

export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/** A self-signed certificate for "localhost" and 127.0.0.1 (needs openssl). */
export function selfSignedCert(): Cert {
  const dir = mkdtempSync(join(tmpdir(), 'l4mux-health-tls-'));
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyPath, '-out', certPath,
      '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
    { stdio: 'pipe' },
  );
  return {
    dir,
    key: execFileSync('cat', [keyPath], { encoding: 'utf8' }),
    cert: execFileSync('cat', [certPath], { encoding: 'utf8' }),
    certPath,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** An executable shell script in a fresh temporary directory. */
export function script(body: string): { path: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'l4mux-health-exec-'));
  const path = join(dir, 'check.sh');
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function waitFor(predicate: () => boolean, timeoutMs: number, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** A resolved check as validateHealthConfig would produce it, with test-friendly defaults. */
export function spec(key: string, overrides: Partial<HealthCheckSpec> & Pick<HealthCheckSpec, 'target'>): HealthCheckSpec {
  const [pool = 'p', backend = key] = key.split('/');
  return {
    key,
    pool,
    backend,
    weight: 1,
    kind: 'tcp',
    interval: 100,
    timeout: 100,
    rise: 2,
    fall: 3,
    jitter: 0,
    weightFrom: 'none',
    ...overrides,
  };
}

function track(server: net.Server): Set<net.Socket> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  return sockets;
}

function listen(server: net.Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : 0);
    });
  });
}

function closeServer(server: net.Server, sockets: Set<net.Socket>): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    for (const socket of sockets) socket.destroy();
  });
}
