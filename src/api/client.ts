// The client side of the control socket, for `l4mux reload` and `l4mux status`.
import { createConnection } from 'node:net';

import type { CapturePackets, ControlRequest, ControlResponse } from './protocol.js';

export const DEFAULT_CONTROL_SOCKET = '/run/l4mux.sock';

export class ControlClientError extends Error {}

/** Sends one request and waits for its answer line (a reload can take seconds: next-hop resolution). */
export function sendControl(path: string, request: ControlRequest, timeoutMs = 60_000): Promise<ControlResponse> {
  return sendControlStream(path, request, () => undefined, timeoutMs);
}

/**
 * Sends one request; every {"event": ...} line before the answer goes to `onEvent` (a capture's
 * packets). The timeout counts from the last line received.
 */
export function sendControlStream(path: string, request: ControlRequest, onEvent: (event: CapturePackets) => void, timeoutMs = 60_000): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    socket.setEncoding('utf8');
    let buffer = '';
    const fail = (message: string): void => {
      socket.destroy();
      reject(new ControlClientError(message));
    };
    let answered = false;
    let timer = setTimeout(() => fail(`no answer from ${path} within ${timeoutMs / 1000} s`), timeoutMs);
    socket.once('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      clearTimeout(timer);
      timer = setTimeout(() => fail(`no answer from ${path} within ${timeoutMs / 1000} s`), timeoutMs);
      let newline: number;
      while (!answered && (newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        let message: unknown;
        try {
          message = JSON.parse(line);
        } catch {
          clearTimeout(timer);
          answered = true;
          socket.destroy();
          reject(new ControlClientError(`${path}: the answer is not JSON`));
          return;
        }
        if (typeof message === 'object' && message !== null && 'event' in message) {
          onEvent(message as CapturePackets);
          continue;
        }
        clearTimeout(timer);
        answered = true;
        socket.end();
        resolve(message as ControlResponse);
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
      if (!answered) reject(new ControlClientError(`${path}: connection closed without an answer`));
    });
  });
}
