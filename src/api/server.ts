// The control socket server: JSON lines over a unix domain socket, readable and writable by
// its owner only (root, or the daemon's user).
import { chmod, lstat, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

import type { Logger } from 'pino';

import type { BackendAdminState } from '../dataplane/types.js';
import { ADMIN_STATES } from '../pools/runtime.js';
import { parseCaptureRequest, parseFlowRequest, parsePersistenceRequest } from './requests.js';
import {
  MAX_CONNECTIONS,
  MAX_PIPELINED_REQUESTS,
  MAX_REQUEST_BYTES,
  type BackendRequest,
  type BackendResponse,
  type CapturePackets,
  type CaptureRequest,
  type CaptureResponse,
  type ControlResponse,
  type DrainRequest,
  type DrainResponse,
  type FlowRequest,
  type FlowResponse,
  type PersistenceEntryRequest,
  type PersistenceEntryResponse,
  type ReloadResponse,
  type StatusResponse,
} from './protocol.js';

export interface ControlHandlers {
  reload(): Promise<ReloadResponse>;
  status(): Promise<StatusResponse> | StatusResponse;
  backend(request: BackendRequest): Promise<BackendResponse>;
  /** Answers once the VIPs are withdrawn and the wait is over; the daemon then stops. */
  drain(request: DrainRequest): Promise<DrainResponse>;
  /** Absent: the command is refused as unknown. */
  flow?(request: FlowRequest): Promise<FlowResponse>;
  /** Absent: the command is refused as unknown. */
  persistence?(request: PersistenceEntryRequest): Promise<PersistenceEntryResponse> | PersistenceEntryResponse;
  /** Streams packets through `send` until done; `closed` fires when the client goes away. */
  capture?(request: CaptureRequest, send: (packets: CapturePackets) => void, closed: AbortSignal): Promise<CaptureResponse>;
}

/** Whether something accepts connections on the socket at `path`. */
function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export class ControlServer {
  private readonly sockets = new Set<Socket>();

  private constructor(
    readonly path: string,
    private readonly server: Server,
  ) {}

  /**
   * Listens on `path`. A socket file left by a daemon that is gone is replaced; one another
   * daemon still answers on is an error, as is any other kind of file there.
   */
  static async listen(path: string, handlers: ControlHandlers, logger: Logger): Promise<ControlServer> {
    const existing = await lstat(path).catch(() => undefined);
    if (existing !== undefined) {
      if (!existing.isSocket()) throw new Error(`control socket ${path}: a file that is not a socket is in the way`);
      if (await isListening(path)) throw new Error(`control socket ${path}: another l4mux is listening on it`);
      await unlink(path);
    }
    const server = createServer();
    const control = new ControlServer(path, server);
    server.on('connection', (socket) => control.serve(socket, handlers, logger));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new Error(`control socket ${path}: ${e.message}`)));
      // The socket file is created by bind() inside listen(), with the process umask: made
      // 0600 from the start, not chmod-ed after a window in which anyone could connect.
      const umask = process.umask(0o177);
      try {
        server.listen(path, () => resolve());
      } finally {
        process.umask(umask);
      }
    });
    await chmod(path, 0o600);  // the mode the file must have, whatever created it
    server.on('error', (e) => logger.error({ err: e }, 'control socket error'));
    return control;
  }

  private serve(socket: Socket, handlers: ControlHandlers, logger: Logger): void {
    const reply = (response: ControlResponse | CapturePackets): void => {
      if (!socket.destroyed) socket.write(`${JSON.stringify(response)}\n`);
    };
    if (this.sockets.size >= MAX_CONNECTIONS) {
      logger.warn({ connections: this.sockets.size }, 'control socket: connection refused, too many open');
      reply({ ok: false, errors: [`too many control connections (at most ${MAX_CONNECTIONS})`] });
      socket.end();
      socket.on('error', () => socket.destroy());
      return;
    }
    this.sockets.add(socket);
    socket.setEncoding('utf8');
    let buffer = '';
    let queue = Promise.resolve();
    const closed = new AbortController();
    let pending = 0;
    let refused = false;
    socket.on('data', (chunk: string) => {
      if (refused) return;
      buffer += chunk;
      if (buffer.length > MAX_REQUEST_BYTES && !buffer.includes('\n')) {
        reply({ ok: false, errors: [`request longer than ${MAX_REQUEST_BYTES} bytes`] });
        socket.end();
        refused = true;
        return;
      }
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (line === '') continue;
        if (pending >= MAX_PIPELINED_REQUESTS) {
          // Answered after those before it, so the client sees why the rest went unanswered.
          queue = queue.then(() => {
            reply({ ok: false, errors: [`more than ${MAX_PIPELINED_REQUESTS} requests waiting on one connection`] });
            socket.end();
          });
          refused = true;
          buffer = '';
          return;
        }
        pending++;
        // Requests of one connection are answered in order.
        queue = queue.then(async () => {
          reply(await handle(line, handlers, logger, reply, closed.signal));
          pending--;
        });
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      closed.abort();
      this.sockets.delete(socket);
    });
  }

  /** Stops listening, drops open connections and removes the socket file. */
  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await unlink(this.path).catch(() => undefined);
  }
}

async function handle(
  line: string,
  handlers: ControlHandlers,
  logger: Logger,
  send: (packets: CapturePackets) => void,
  closed: AbortSignal,
): Promise<ControlResponse> {
  let request: unknown;
  try {
    request = JSON.parse(line);
  } catch {
    return { ok: false, errors: ['request is not JSON (send one JSON object per line, e.g. {"cmd":"status"})'] };
  }
  const cmd = typeof request === 'object' && request !== null ? (request as Record<string, unknown>)['cmd'] : undefined;
  try {
    switch (cmd) {
      case 'reload':
        logger.info({ trigger: 'control' }, 'reload requested on the control socket');
        return await handlers.reload();
      case 'status':
        return await handlers.status();
      case 'backend': {
        const parsed = parseBackendRequest(request as Record<string, unknown>);
        return 'errors' in parsed ? { ok: false, errors: parsed.errors } : await handlers.backend(parsed);
      }
      case 'drain': {
        const wait = (request as Record<string, unknown>)['waitSeconds'];
        if (wait !== undefined && (typeof wait !== 'number' || !(wait >= 0 && wait <= 3600))) return { ok: false, errors: ['waitSeconds: expected a number of seconds from 0 to 3600'] };
        logger.info({ waitSeconds: wait }, 'drain requested on the control socket');
        return await handlers.drain(wait === undefined ? {} : { waitSeconds: wait });
      }
      case 'flow': {
        if (handlers.flow === undefined) break;
        const parsed = parseFlowRequest(request as Record<string, unknown>);
        return 'errors' in parsed ? { ok: false, errors: parsed.errors } : await handlers.flow(parsed);
      }
      case 'persistence': {
        if (handlers.persistence === undefined) break;
        const parsed = parsePersistenceRequest(request as Record<string, unknown>);
        return 'errors' in parsed ? { ok: false, errors: parsed.errors } : await handlers.persistence(parsed);
      }
      case 'capture': {
        if (handlers.capture === undefined) break;
        const parsed = parseCaptureRequest(request as Record<string, unknown>);
        return 'errors' in parsed ? { ok: false, errors: parsed.errors } : await handlers.capture(parsed, send, closed);
      }
      default:
        break;
    }
    const known = ['reload', 'status', 'backend', 'drain', ...(handlers.flow !== undefined ? ['flow'] : []), ...(handlers.capture !== undefined ? ['capture'] : []), ...(handlers.persistence !== undefined ? ['persistence'] : [])];
    return { ok: false, errors: [`unknown command ${JSON.stringify(cmd ?? null)} (commands: ${known.join(', ')})`] };
  } catch (e) {
    logger.error({ err: e, cmd }, 'control command failed');
    return { ok: false, errors: [e instanceof Error ? e.message : String(e)] };
  }
}

function parseBackendRequest(r: Record<string, unknown>): BackendRequest | { errors: string[] } {
  const errors: string[] = [];
  const { pool, address, state, weight } = r;
  if (typeof pool !== 'string') errors.push('pool: expected a string');
  if (typeof address !== 'string') errors.push('address: expected a string');
  if (state !== undefined && (typeof state !== 'string' || !ADMIN_STATES.includes(state as BackendAdminState))) {
    errors.push(`state: expected one of ${ADMIN_STATES.join(', ')}`);
  }
  if (weight !== undefined && typeof weight !== 'number') errors.push('weight: expected a number');
  if (state === undefined && weight === undefined) errors.push('nothing to change: give a state, a weight or both');
  if (errors.length > 0) return { errors };
  return {
    pool: pool as string,
    address: address as string,
    ...(state !== undefined && { state: state as BackendAdminState }),
    ...(weight !== undefined && { weight: weight as number }),
  };
}
