// UDP check: send one datagram from a connected socket and wait for a reply that matches
// (text, regular expression or hex bytes; any reply when nothing is expected). An ICMP port
// unreachable comes back as ECONNREFUSED and fails the check at once; silence fails it at the
// timeout. A weight can be read from the reply ("weight=N", "N", "N%").
import dgram from 'node:dgram';
import net from 'node:net';

import { compileMatch, describeMatch } from '../match.js';
import type { ProbeContext, ProbeResult, ProbeTarget, UdpCheckOptions, WeightSource } from '../types.js';
import { parseWeightText } from '../weight.js';
import { describeError, hostPort, runProbe } from './common.js';

export interface UdpProbeOptions extends UdpCheckOptions {
  weightFrom: WeightSource;
}

export function createUdpProbe(options: UdpProbeOptions): (target: ProbeTarget, ctx: ProbeContext) => Promise<ProbeResult> {
  const payload = Buffer.from(options.payloadHex, 'hex');
  const matches = compileMatch(options.expect);
  const expectation = describeMatch(options.expect);
  return (target, ctx) => {
    const where = hostPort(target.address, target.port);
    return runProbe(ctx, `no reply from ${where} within ${ctx.timeoutMs} ms`, (finish) => {
      const port = target.port;
      if (port === undefined) {
        finish(false, 'no port to send to');
        return;
      }
      const socket = dgram.createSocket({ type: net.isIPv6(target.address) ? 'udp6' : 'udp4' });
      socket.on('error', (e) => {
        const code = describeError(e);
        finish(false, code === 'ECONNREFUSED' ? `${where}: port unreachable (ECONNREFUSED)` : `${where}: ${code}`);
      });
      socket.on('message', (reply: Buffer) => {
        if (!matches(reply)) {
          finish(false, `reply of ${reply.length} bytes from ${where} does not ${expectation}`);
          return;
        }
        if (options.weightFrom === 'body') {
          const reading = parseWeightText(reply.toString('utf8'), ctx.baseWeight ?? 1);
          if (reading?.ok === true) {
            finish(true, `reply of ${reply.length} bytes, weight ${reading.weight}`, reading.weight);
            return;
          }
          finish(true, `reply of ${reply.length} bytes; ${reading === undefined ? 'it reports no weight' : `ignored weight: ${reading.reason}`}`);
          return;
        }
        finish(true, `reply of ${reply.length} bytes from ${where}`);
      });
      const send = (): void => {
        socket.connect(port, target.address, () => {
          socket.send(payload, (e) => {
            if (e) finish(false, `send to ${where}: ${describeError(e)}`);
          });
        });
      };
      if (target.localAddress !== undefined) socket.bind({ address: target.localAddress, port: 0 }, send);
      else send();
      return () => {
        socket.removeAllListeners();
        socket.on('error', () => {});
        socket.close();
      };
    });
  };
}
