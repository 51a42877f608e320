// Exec check (keepalived MISC_CHECK): run a command, up when it exits 0 within the timeout.
// It gets the daemon's environment, the check's `env`, and
//   BACKEND_ADDRESS, BACKEND_PORT (when the check has a port), BACKEND_WEIGHT (configured),
//   POOL and CHECK_TIMEOUT_MS.
// With weightFrom "stdout" the weight is read from its output: a line "weight=N", or the whole
// output being "N" or "N%" (keepalived's misc_dynamic, HAProxy's agent-check). A command that
// overstays is killed with its whole process group. At most `limit` commands run at once per
// checker; the timeout starts when a command starts, not while it waits for a slot.
// It runs as exec.user (default "nobody"): that uid, its primary group, no supplementary
// groups (libuv drops them), working directory /. Switching needs CAP_SETUID and CAP_SETGID,
// and killing it on a timeout CAP_KILL (scripts/systemd/l4mux.service grants them).
import { spawn } from 'node:child_process';

import { MAX_BODY_BYTES } from '../defaults.js';
import type { ExecCheckOptions, ExecUser, ProbeContext, ProbeResult, ProbeTarget, WeightSource } from '../types.js';
import { parseWeightText } from '../weight.js';
import { describeError, firstLine, runProbe } from './common.js';

export interface ExecProbeOptions extends ExecCheckOptions {
  weightFrom: WeightSource;
  /** Pool and backend address, for the environment. */
  pool: string;
  backend: string;
}

/** Counts running commands; `acquire` resolves when one more may start. */
export class Limiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit: number) {}

  acquire(signal?: AbortSignal): Promise<(() => void) | undefined> {
    return new Promise((resolve) => {
      const grant = (): void => {
        signal?.removeEventListener('abort', onAbort);
        this.running++;
        let released = false;
        resolve(() => {
          if (released) return;
          released = true;
          this.running--;
          this.waiting.shift()?.();
        });
      };
      const onAbort = (): void => {
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
        resolve(undefined);
      };
      if (signal?.aborted) {
        resolve(undefined);
        return;
      }
      if (this.running < this.limit) {
        grant();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(grant);
    });
  }
}

export function createExecProbe(options: ExecProbeOptions, limiter?: Limiter): (target: ProbeTarget, ctx: ProbeContext) => Promise<ProbeResult> {
  return async (target, ctx) => {
    const release = limiter !== undefined ? await limiter.acquire(ctx.signal) : () => {};
    if (release === undefined) return { ok: false, latencyMs: 0, detail: 'cancelled' };
    try {
      return await runCommand(options, target, ctx);
    } finally {
      release();
    }
  };
}

/** spawn() options that run the command as `user` (nothing when the daemon already is that user). */
function runAs(user: ExecUser | undefined): { uid?: number; gid?: number; cwd?: string } {
  if (user === undefined || process.getuid?.() === user.uid) return {};
  return { uid: user.uid, gid: user.gid, cwd: '/' };
}

function runCommand(options: ExecProbeOptions, target: ProbeTarget, ctx: ProbeContext): Promise<ProbeResult> {
  const name = options.command;
  return runProbe(ctx, `${name} did not finish within ${ctx.timeoutMs} ms (killed)`, (finish) => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...options.env,
      BACKEND_ADDRESS: options.backend,
      BACKEND_WEIGHT: String(ctx.baseWeight ?? ''),
      POOL: options.pool,
      CHECK_TIMEOUT_MS: String(ctx.timeoutMs),
    };
    if (target.port !== undefined) env['BACKEND_PORT'] = String(target.port);
    const child = spawn(options.command, options.args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...runAs(options.user) });
    let exited = false;
    let stdout = '';
    let stderr = '';
    const keep = (current: string, chunk: Buffer): string => (current.length >= MAX_BODY_BYTES ? current : current + chunk.toString('utf8').slice(0, MAX_BODY_BYTES - current.length));
    child.stdout.on('data', (chunk: Buffer) => (stdout = keep(stdout, chunk)));
    child.stderr.on('data', (chunk: Buffer) => (stderr = keep(stderr, chunk)));
    child.on('error', (e) => {
      exited = true;
      finish(false, `cannot run ${name}: ${describeError(e)}`);
    });
    child.on('close', (code, signal) => {
      exited = true;
      const said = firstLine(stderr) || firstLine(stdout);
      const tail = said === '' ? '' : `: ${said}`;
      if (code !== 0) {
        finish(false, signal !== null ? `${name} was killed by ${signal}${tail}` : `${name} exited with ${code}${tail}`);
        return;
      }
      if (options.weightFrom === 'stdout') {
        const reading = parseWeightText(stdout, ctx.baseWeight ?? 1);
        if (reading?.ok === true) {
          finish(true, `${name} exited with 0, weight ${reading.weight}`, reading.weight);
          return;
        }
        finish(true, `${name} exited with 0; ${reading === undefined ? 'its output reports no weight' : `ignored weight: ${reading.reason}`}`);
        return;
      }
      finish(true, `${name} exited with 0`);
    });
    return () => {
      child.stdout.destroy();
      child.stderr.destroy();
      if (!exited && child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }
    };
  });
}
