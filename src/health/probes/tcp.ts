// TCP connect check (keepalived TCP_CHECK, HAProxy's plain "check"): up when the three-way
// handshake completes. The connection is then reset rather than closed, as HAProxy does, so
// that frequent checks leave no TIME_WAIT sockets behind on either side.
import net from 'node:net';

import type { ProbeContext, ProbeResult, ProbeTarget } from '../types.js';
import { describeError, hostPort, runProbe } from './common.js';

export function probeTcp(target: ProbeTarget, ctx: ProbeContext): Promise<ProbeResult> {
  const where = hostPort(target.address, target.port);
  return runProbe(ctx, `no connection to ${where} within ${ctx.timeoutMs} ms`, (finish) => {
    if (target.port === undefined) {
      finish(false, 'no port to connect to');
      return;
    }
    const socket = net.connect({
      host: target.address,
      port: target.port,
      ...(target.localAddress !== undefined && { localAddress: target.localAddress }),
    });
    let connected = false;
    socket.once('connect', () => {
      connected = true;
      finish(true, `connected to ${where}`);
    });
    socket.once('error', (e) => finish(false, `connect to ${where}: ${describeError(e)}`));
    return () => {
      socket.removeAllListeners();
      socket.on('error', () => {});
      if (connected && !socket.destroyed) socket.resetAndDestroy();
      else socket.destroy();
    };
  });
}
