// The client side of the control socket, for `l4mux reload` and `l4mux status`.
import { createConnection } from 'node:net';

import type { ControlRequest, ControlResponse } from './protocol.js';

export const DEFAULT_CONTROL_SOCKET = '/run/l4mux.sock';

export class ControlClientError extends Error {}

/** Sends one request and waits for its answer line (a reload can take seconds: next-hop resolution). */
export function sendControl(path: string, request: ControlRequest, timeoutMs = 60_000): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    socket.setEncoding('utf8');
    let buffer = '';
    const fail = (message: string): void => {
      socket.destroy();
      reject(new ControlClientError(message));
    };
    const timer = setTimeout(() => fail(`no answer from ${path} within ${timeoutMs / 1000} s`), timeoutMs);
    socket.once('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const newline = buffer.indexOf('\n');
      if (newline < 0) return;
      clearTimeout(timer);
      socket.end();
      try {
        resolve(JSON.parse(buffer.slice(0, newline)) as ControlResponse);
      } catch {
        reject(new ControlClientError(`${path}: the answer is not JSON`));
      }
    });
    socket.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why =
        e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
          ? 'is l4mux running? (l4mux run --control PATH)'
          : e.code === 'EACCES'
            ? 'permission denied (the control socket is for root, or the user l4mux runs as)'
            : e.message;
      fail(`cannot connect to the control socket ${path}: ${why}`);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      if (buffer.indexOf('\n') < 0) reject(new ControlClientError(`${path}: connection closed without an answer`));
    });
  });
}
