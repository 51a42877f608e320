// BIRD as a child of the daemon. Started in the foreground (-f) under
// `setpriv --pdeathsig KILL`, so the kernel kills it the moment the daemon dies, however it
// dies: its BGP sockets close with it and the routers withdraw this mux's routes at once. No
// announcement outlives the daemon. A BIRD that exits on its own is restarted (with back-off)
// from the current configuration.
//
// Configuration changes are written to a new file, checked by BIRD (`configure check`), moved
// into place and applied with `configure`, one at a time; a burst of changes applies only the
// newest.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, lstat, mkdir, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import type { Logger } from 'pino';

import { birdCommand, BirdControlError, replyText, type BirdReply } from './bird-control.js';

export type BirdState = 'stopped' | 'starting' | 'running' | 'restarting';

export interface BirdProcessOptions {
  /** BIRD binary. */
  bird: string;
  /** Holds bird.conf and bird.ctl. */
  runDirectory: string;
  logger: Logger;
  /** First restart delay; doubles up to maxRestartDelayMs. */
  restartDelayMs?: number;
  maxRestartDelayMs?: number;
  /** How long BIRD may take to open its control socket. */
  startTimeoutMs?: number;
}

export interface BirdProcessStatus {
  state: BirdState;
  pid: number | null;
  configFile: string;
  socket: string;
  startedAt: string | null;
  restarts: number;
  lastExit: string | null;
  lastError: string | null;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class BirdProcess {
  readonly configFile: string;
  readonly socket: string;
  private child: ChildProcess | undefined;
  private state: BirdState = 'stopped';
  private wanted = false;
  private config = '';
  /** The configuration BIRD runs (applied or started with). */
  private applied = '';
  private applying: Promise<void> | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private restartDelay: number;
  private restarts = 0;
  private startedAt: Date | null = null;
  private lastExit: string | null = null;
  private lastError: string | null = null;
  private exited: Promise<void> = Promise.resolve();
  private readonly listeners: Array<(state: BirdState) => void> = [];

  constructor(private readonly options: BirdProcessOptions) {
    this.configFile = join(options.runDirectory, 'bird.conf');
    this.socket = join(options.runDirectory, 'bird.ctl');
    this.restartDelay = options.restartDelayMs ?? 1000;
  }

  private get log(): Logger {
    return this.options.logger;
  }

  onState(listener: (state: BirdState) => void): void {
    this.listeners.push(listener);
  }

  status(): BirdProcessStatus {
    return {
      state: this.state,
      pid: this.child?.pid ?? null,
      configFile: this.configFile,
      socket: this.socket,
      startedAt: this.startedAt?.toISOString() ?? null,
      restarts: this.restarts,
      lastExit: this.lastExit,
      lastError: this.lastError,
    };
  }

  /** Checks `text` with `bird -p` (parse only): null when BIRD accepts it, else its complaint. */
  async check(text: string): Promise<string | null> {
    await this.prepareDirectory();
    const file = `${this.configFile}.check`;
    await writeFile(file, text, { mode: 0o600 });
    try {
      const result = await run(this.options.bird, ['-p', '-c', file]);
      return result.code === 0 ? null : (result.output.trim() || `bird -p exited with ${result.code}`);
    } finally {
      await unlink(file).catch(() => undefined);
    }
  }

  /** Starts BIRD with `text`; resolves once its control socket answers. */
  async start(text: string): Promise<void> {
    this.wanted = true;
    this.config = text;
    await this.prepareDirectory();
    await this.refuseForeignBird();
    try {
      await this.launch();
    } catch (e) {
      // A BIRD that cannot start at all is the daemon's startup error, not a restart loop.
      this.wanted = false;
      if (this.restartTimer !== undefined) clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
      this.setState('stopped');
      throw e;
    }
  }

  /** Makes BIRD run `text` (no-op when it already does). Rejects with BIRD's reason if it refuses. */
  async configure(text: string): Promise<void> {
    this.config = text;
    // One configure at a time; the last one waiting takes the newest text.
    while (this.applying !== undefined) await this.applying;
    if (this.state !== 'running' || this.config === this.applied) return;
    const apply = this.applyNow(this.config);
    this.applying = apply.catch(() => undefined).finally(() => (this.applying = undefined));
    await apply;
  }

  /** Stops BIRD (it tells its neighbours with a Cease notification) and waits for it to exit. */
  async stop(timeoutMs = 3000): Promise<void> {
    this.wanted = false;
    if (this.restartTimer !== undefined) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) {
      this.setState('stopped');
      return;
    }
    child.kill('SIGTERM');
    const killed = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(killed);
    this.setState('stopped');
  }

  /** Kills BIRD at once (what the daemon's own death does; for tests of that path). */
  kill(): void {
    this.child?.kill('SIGKILL');
  }

  /** Sends one command to the running BIRD. */
  command(command: string, timeoutMs?: number): Promise<BirdReply> {
    return birdCommand(this.socket, command, timeoutMs);
  }

  private async applyNow(text: string): Promise<void> {
    const next = `${this.configFile}.next`;
    await writeFile(next, text, { mode: 0o600 });
    const check = await this.command(`configure check "${next}"`);
    if (!check.ok) {
      await unlink(next).catch(() => undefined);
      throw new BirdControlError(`BIRD refused the configuration: ${replyText(check)}`);
    }
    await rename(next, this.configFile);
    const reply = await this.command('configure', 10_000);
    if (!reply.ok) throw new BirdControlError(`BIRD could not apply the configuration: ${replyText(reply)}`);
    this.applied = text;
  }

  private async prepareDirectory(): Promise<void> {
    await mkdir(this.options.runDirectory, { recursive: true, mode: 0o700 });
    await chmod(this.options.runDirectory, 0o700);
  }

  /** Another BIRD answering on our socket is another l4mux's (or someone's): never take it over. */
  private async refuseForeignBird(): Promise<void> {
    const existing = await lstat(this.socket).catch(() => undefined);
    if (existing === undefined) return;
    const answering = await birdCommand(this.socket, 'show status', 1000).then(
      () => true,
      () => false,
    );
    if (answering) throw new Error(`${this.socket}: another BIRD is running on this control socket (bgp.runDirectory must be this daemon's own)`);
    await unlink(this.socket).catch(() => undefined);
  }

  private async launch(): Promise<void> {
    this.setState(this.restarts === 0 ? 'starting' : 'restarting');
    await writeFile(this.configFile, this.config, { mode: 0o600 });
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', this.options.bird, '-f', '-c', this.configFile, '-s', this.socket], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    let exitedResolve!: () => void;
    this.exited = new Promise((resolve) => (exitedResolve = resolve));
    const output: string[] = [];
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        output.push(line);
        if (output.length > 20) output.shift();
        this.log.info({ bird: line }, `bird: ${line}`);
      });
    }
    child.once('error', (e) => {
      this.lastError = `cannot run ${this.options.bird}: ${e.message}`;
      this.log.error({ err: e.message }, this.lastError);
    });
    child.once('exit', (code, signal) => {
      exitedResolve();
      this.lastExit = signal !== null ? `killed by ${signal}` : `exited with ${code}`;
      if (this.child === child) this.child = undefined;
      this.startedAt = null;
      if (!this.wanted) return;
      const tail = output.slice(-3).join(' | ');
      this.lastError = `BIRD ${this.lastExit}${tail !== '' ? `: ${tail}` : ''}`;
      this.log.error({ code, signal }, `${this.lastError}; restarting in ${this.restartDelay} ms`);
      this.scheduleRestart();
    });

    const deadline = Date.now() + (this.options.startTimeoutMs ?? 5000);
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null || this.child !== child) {
        throw new Error(`BIRD did not start: ${this.lastError ?? this.lastExit ?? 'it exited'}`);
      }
      try {
        await birdCommand(this.socket, 'show status', 1000);
        break;
      } catch (e) {
        if (Date.now() > deadline) {
          child.kill('SIGKILL');
          throw new Error(`BIRD did not open its control socket ${this.socket} within ${this.options.startTimeoutMs ?? 5000} ms: ${message(e)}`);
        }
        await sleep(50);
      }
    }
    this.applied = this.config;
    this.startedAt = new Date();
    this.restartDelay = this.options.restartDelayMs ?? 1000;
    this.setState('running');
    this.log.info({ pid: child.pid, socket: this.socket }, `BIRD running (pid ${child.pid})`);
  }

  private scheduleRestart(): void {
    this.setState('restarting');
    const delay = this.restartDelay;
    this.restartDelay = Math.min(this.restartDelay * 2, this.options.maxRestartDelayMs ?? 30_000);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (!this.wanted) return;
      this.restarts++;
      this.launch().catch((e: unknown) => {
        this.lastError = message(e);
        this.log.error({ err: message(e) }, `BIRD restart failed: ${message(e)}`);
        if (this.wanted && this.child === undefined && this.restartTimer === undefined) this.scheduleRestart();
      });
    }, delay);
    this.restartTimer.unref();
  }

  private setState(state: BirdState): void {
    if (this.state === state) return;
    this.state = state;
    for (const listener of this.listeners) listener(state);
  }
}

function run(file: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', (e) => resolve({ code: -1, output: e.message }));
    child.once('exit', (code) => resolve({ code: code ?? -1, output }));
  });
}
