// The control socket under a careless umask and a greedy client: the socket file is 0600 from
// its creation, connections and pipelined requests are bounded.
import { lstatSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

// The socket's final mode must not depend on the chmod after listen (anyone may connect in
// between): with chmod doing nothing, the file must still be 0600.
vi.mock('node:fs/promises', async (original) => ({ ...(await original<typeof import('node:fs/promises')>()), chmod: async () => undefined }));

const { ControlServer } = await import('../../src/api/server.js');
const { MAX_CONNECTIONS, MAX_PIPELINED_REQUESTS } = await import('../../src/api/protocol.js');
type Handlers = ConstructorParameters<typeof Object>[0] & import('../../src/api/server.js').ControlHandlers;

const logger = pino({ level: 'silent' });
let dir = '';
let server: InstanceType<typeof ControlServer> | undefined;

function handlers(statusDelayMs = 0): Handlers {
  return {
    reload: async () => ({ ok: true, changes: [], notes: [] }) as never,
    status: async () => {
      await new Promise((r) => setTimeout(r, statusDelayMs));
      return { ok: true, status: {} } as never;
    },
    backend: async () => ({ ok: true }) as never,
    drain: async () => ({ ok: true }) as never,
  };
}

function connect(path: string): Promise<{ socket: Socket; lines: string[]; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    const lines: string[] = [];
    let partial = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      partial += chunk;
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      lines.push(...parts);
    });
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    socket.once('connect', () => resolve({ socket, lines, closed }));
    socket.once('error', reject);
  });
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'l4mux-ctl-'));
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

describe('control socket hardening', () => {
  it('is created 0600 even under a permissive umask', async () => {
    const before = process.umask(0);
    try {
      server = await ControlServer.listen(join(dir, 'ctl.sock'), handlers(), logger);
    } finally {
      process.umask(before);
    }
    expect(lstatSync(join(dir, 'ctl.sock')).mode & 0o777).toBe(0o600);
    expect(process.umask()).toBe(before);
  });

  it(`serves at most ${MAX_CONNECTIONS} connections at once`, async () => {
    const path = join(dir, 'ctl.sock');
    server = await ControlServer.listen(path, handlers(), logger);
    const open = await Promise.all(Array.from({ length: MAX_CONNECTIONS }, () => connect(path)));
    const extra = await connect(path);
    await extra.closed;
    expect(extra.lines.map((l) => JSON.parse(l) as { ok: boolean; errors: string[] })).toEqual([
      { ok: false, errors: [`too many control connections (at most ${MAX_CONNECTIONS})`] },
    ]);
    // The ones already open still work, and a slot frees when one closes.
    open[0]!.socket.write('{"cmd":"status"}\n');
    await vi.waitFor(() => expect(open[0]!.lines).toHaveLength(1));
    open[1]!.socket.destroy();
    await open[1]!.closed;
    await vi.waitFor(async () => {
      const again = await connect(path);
      again.socket.write('{"cmd":"status"}\n');
      await vi.waitFor(() => expect(again.lines).toHaveLength(1));
      again.socket.destroy();
      expect(JSON.parse(again.lines[0]!)).toMatchObject({ ok: true });
    });
    for (const c of open) c.socket.destroy();
  });

  it(`answers at most ${MAX_PIPELINED_REQUESTS} pipelined requests, then says why and closes`, async () => {
    const path = join(dir, 'ctl.sock');
    server = await ControlServer.listen(path, handlers(5), logger);
    const c = await connect(path);
    c.socket.write('{"cmd":"status"}\n'.repeat(1000));
    await c.closed;
    expect(c.lines).toHaveLength(MAX_PIPELINED_REQUESTS + 1);
    expect(JSON.parse(c.lines.at(-1)!)).toEqual({ ok: false, errors: [`more than ${MAX_PIPELINED_REQUESTS} requests waiting on one connection`] });
  });
});
