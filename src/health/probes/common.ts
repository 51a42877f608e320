// What every probe shares: one verdict per run, a deadline, cancellation, and cleanup of
// whatever the probe opened (sockets, processes) however the run ends.
import { performance } from 'node:perf_hooks';

import { LOOP_STALL_FRACTION, LOOP_STALL_MIN_MS } from '../defaults.js';
import type { ProbeContext, ProbeResult } from '../types.js';

/** Ends a run: the first call wins, later ones are ignored. */
export type Finish = (ok: boolean, detail: string, weight?: number) => void;
/** Releases what the run opened. Called exactly once, after the verdict. */
export type Cleanup = () => void;

/**
 * Runs `body` with a deadline of `ctx.timeoutMs`: the result is the first of `finish(...)`,
 * the deadline (`ok: false`, `timeoutDetail`), or `ctx.signal` aborting ("cancelled").
 * `body` returns its cleanup, which runs once the verdict is in. Never rejects.
 */
export function runProbe(ctx: ProbeContext, timeoutDetail: string, body: (finish: Finish) => Cleanup | void): Promise<ProbeResult> {
  return new Promise<ProbeResult>((resolve) => {
    const started = performance.now();
    let done = false;
    let cleanup: Cleanup | void = undefined;
    let cleaned = false;
    const runCleanup = (): void => {
      if (cleaned || cleanup === undefined) return;
      cleaned = true;
      try {
        cleanup();
      } catch {
        // closing something already closed
      }
    };
    const onAbort = (): void => finish(false, 'cancelled');
    let timedOut = false;
    // The deadline counts time the event loop ran: at the deadline, time lost to stalls of the
    // loop (a starved host) is given back, up to one more timeout in all, so an answer that
    // arrived while the loop did not run is still read.
    let granted = 0;
    const onDeadline = (): void => {
      const lost = ctx.loopLag === undefined ? 0 : Math.min(ctx.loopLag.stalledWithin(started), ctx.timeoutMs);
      const more = Math.ceil(lost - granted);
      // Scheduling noise is no stall: only a loss of a good part of the timeout is given back.
      if (more >= 1 && lost >= Math.max(LOOP_STALL_MIN_MS, ctx.timeoutMs * LOOP_STALL_FRACTION)) {
        granted += more;
        timer = setTimeout(onDeadline, more);
        return;
      }
      timedOut = true;
      finish(false, timeoutDetail);
    };
    let timer = setTimeout(onDeadline, ctx.timeoutMs);
    const finish: Finish = (ok, detail, weight) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      ctx.signal?.removeEventListener('abort', onAbort);
      runCleanup();
      const result: ProbeResult = { ok, latencyMs: roundMs(performance.now() - started), detail };
      if (weight !== undefined) result.weight = weight;
      const local = ok ? undefined : localErrno(detail);
      if (local !== undefined) result.localFault = local;
      if (timedOut && !ok) result.timedOut = true;
      resolve(result);
    };
    if (ctx.signal?.aborted) {
      finish(false, 'cancelled');
      return;
    }
    ctx.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      cleanup = body(finish);
    } catch (e) {
      finish(false, describeError(e));
    }
    // The body may have finished synchronously, before its cleanup was known.
    if (done) runCleanup();
  });
}

export function roundMs(ms: number): number {
  return Math.round(ms * 100) / 100;
}

/**
 * "ECONNREFUSED" for system errors; "CODE: message" for other coded errors (TLS:
 * "DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate"); else the message.
 */
/**
 * Errors that say something about this host, not the backend: our own routes (ENETUNREACH,
 * ENETDOWN: the mux's link flapped), file descriptors (EMFILE, ENFILE), source addresses and
 * ports (EADDRNOTAVAIL), kernel memory (ENOBUFS, ENOMEM), process limits for exec (EAGAIN).
 * EHOSTUNREACH (the neighbour did not answer) and ECONNREFUSED are about the backend.
 */
export const LOCAL_ERRNOS = ['ENETUNREACH', 'ENETDOWN', 'EMFILE', 'ENFILE', 'EADDRNOTAVAIL', 'ENOBUFS', 'ENOMEM', 'EAGAIN'] as const;

/** The local errno a probe's detail names (describeError puts the code in it), if any. */
export function localErrno(detail: string): string | undefined {
  return LOCAL_ERRNOS.find((code) => new RegExp(`\\b${code}\\b`).test(detail));
}

export function describeError(e: unknown): string {
  if (typeof e === 'object' && e !== null) {
    const code = 'code' in e && typeof e.code === 'string' ? e.code : undefined;
    if (code !== undefined && /^E[A-Z0-9]+$/.test(code)) return code;
    if (e instanceof Error) return code !== undefined ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
}

/** "10.0.0.1:80", "[fd00::1]:80". */
export function hostPort(address: string, port: number | undefined): string {
  const host = address.includes(':') ? `[${address}]` : address;
  return port === undefined ? host : `${host}:${port}`;
}

/** The first line of `text`, at most `max` characters, for a detail. */
export function firstLine(text: string, max = 160): string {
  const line = text.trim().split(/\r?\n/, 1)[0] ?? '';
  return line.length > max ? `${line.slice(0, max - 3)}...` : line;
}
