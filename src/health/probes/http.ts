// HTTP and HTTPS checks (keepalived HTTP_GET / SSL_GET, HAProxy "option httpchk"): one request
// on a fresh connection; up when the status is accepted and, if asked, the body contains a
// text or matches a regular expression. A weight can be read from a response header
// (e.g. X-Load-Weight: 50 or 50%) or from the body.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

import { DEFAULT_PORTS } from '../../config/health/defaults.js';
import { MAX_BODY_BYTES, USER_AGENT } from '../defaults.js';
import { statusAccepted } from '../status.js';
import type { HttpCheckOptions, ProbeContext, ProbeResult, ProbeTarget, WeightSource } from '../types.js';
import { parseWeightText, parseWeightValue, type WeightReading } from '../weight.js';
import { describeError, hostPort, runProbe, type Finish } from './common.js';

export interface HttpProbeOptions extends HttpCheckOptions {
  tlsEnabled: boolean;
  weightFrom: WeightSource;
}

/** A probe function for these options (the CA file is read once, here). */
export function createHttpProbe(options: HttpProbeOptions): (target: ProbeTarget, ctx: ProbeContext) => Promise<ProbeResult> {
  let ca: Buffer | undefined;
  let caError: string | undefined;
  if (options.tlsEnabled && options.tls.ca !== undefined) {
    try {
      ca = readFileSync(options.tls.ca);
    } catch (e) {
      caError = `cannot read the CA file ${options.tls.ca}: ${describeError(e)}`;
    }
  }
  const bodyRegex = options.expectBodyRegex !== undefined ? new RegExp(options.expectBodyRegex) : undefined;
  const needBody = options.method !== 'HEAD' && (options.expectBody !== undefined || bodyRegex !== undefined || options.weightFrom === 'body');
  const scheme = options.tlsEnabled ? 'HTTPS' : 'HTTP';

  return (target, ctx) => {
    const port = target.port ?? DEFAULT_PORTS[options.tlsEnabled ? 'https' : 'http'] ?? 80;
    const where = hostPort(target.address, port);
    return runProbe(ctx, `no ${scheme} response from ${where} within ${ctx.timeoutMs} ms`, (finish) => {
      if (caError !== undefined) {
        finish(false, caError);
        return;
      }
      const defaultPort = options.tlsEnabled ? 443 : 80;
      const hostHeader = options.host ?? (port === defaultPort ? hostPort(target.address, undefined) : where);
      const common: http.RequestOptions = {
        host: target.address,
        port,
        method: options.method,
        path: options.path,
        agent: false,
        headers: { 'User-Agent': USER_AGENT, Accept: '*/*', ...options.headers, Host: hostHeader, Connection: 'close' },
        ...(target.localAddress !== undefined && { localAddress: target.localAddress }),
      };
      let request: http.ClientRequest;
      if (options.tlsEnabled) {
        const servername = options.tls.servername ?? (options.host !== undefined && net.isIP(stripPort(options.host)) === 0 ? stripPort(options.host) : undefined);
        request = https.request({
          ...common,
          rejectUnauthorized: options.tls.verify,
          ...(servername !== undefined && { servername }),
          ...(ca !== undefined && { ca }),
        });
      } else {
        request = http.request(common);
      }
      request.on('error', (e) => finish(false, `${scheme} ${where}: ${describeError(e)}`));
      request.on('response', (response) => {
        const status = response.statusCode ?? 0;
        response.on('error', (e) => finish(false, `${scheme} ${status}: ${describeError(e)}`));
        if (!needBody) {
          response.resume();
          verdict(finish, options, scheme, status, response.headers, undefined, bodyRegex, ctx.baseWeight);
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        const complete = (): void => verdict(finish, options, scheme, status, response.headers, Buffer.concat(chunks).toString('utf8'), bodyRegex, ctx.baseWeight);
        response.on('data', (chunk: Buffer) => {
          if (size >= MAX_BODY_BYTES) return;
          const room = MAX_BODY_BYTES - size;
          chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
          size += Math.min(room, chunk.length);
          if (size >= MAX_BODY_BYTES) complete();
        });
        response.on('end', complete);
      });
      request.end();
      return () => {
        request.removeAllListeners('response');
        request.on('error', () => {});
        request.destroy();
      };
    });
  };
}

function verdict(
  finish: Finish,
  options: HttpProbeOptions,
  scheme: string,
  status: number,
  headers: http.IncomingHttpHeaders,
  body: string | undefined,
  bodyRegex: RegExp | undefined,
  baseWeight: number | undefined,
): void {
  if (!statusAccepted(status, options.expectStatusRanges)) {
    finish(false, `${scheme} ${status} (expected ${options.expectStatus})`);
    return;
  }
  if (body !== undefined && options.expectBody !== undefined && !body.includes(options.expectBody)) {
    finish(false, `${scheme} ${status}, but the body does not contain ${JSON.stringify(options.expectBody)}`);
    return;
  }
  if (body !== undefined && bodyRegex !== undefined && !bodyRegex.test(body)) {
    finish(false, `${scheme} ${status}, but the body does not match /${bodyRegex.source}/`);
    return;
  }
  let reading: WeightReading;
  let note = '';
  if (options.weightFrom === 'header') {
    const raw = headers[options.weightHeader.toLowerCase()];
    const value = Array.isArray(raw) ? raw[0] : raw;
    if (value === undefined) note = `; no ${options.weightHeader} header`;
    else reading = parseWeightValue(value, baseWeight ?? 1);
  } else if (options.weightFrom === 'body' && body !== undefined) {
    reading = parseWeightText(body, baseWeight ?? 1);
    if (reading === undefined) note = '; the body reports no weight';
  }
  if (reading !== undefined && !reading.ok) note = `; ignored weight: ${reading.reason}`;
  if (reading?.ok === true) finish(true, `${scheme} ${status}, weight ${reading.weight}`, reading.weight);
  else finish(true, `${scheme} ${status}${note}`);
}

function stripPort(host: string): string {
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']'));
  const colon = host.lastIndexOf(':');
  return colon > 0 && host.indexOf(':') === colon ? host.slice(0, colon) : host;
}
