// The embedded store: the entries in the daemon's memory, every change appended to a state file
// (one JSON line each) before the slow path answers, so that a restarted daemon finds them
// again. The file is fdatasync'ed at most once per `syncIntervalMs` (a crash of the host may
// lose that much; a crash or restart of the daemon loses nothing written) and rewritten
// (compacted) when it holds far more lines than live entries.
import { closeSync, fdatasyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

import type { ClientKey, PersistenceStore, RmcAnswer, RmcRequest, StoreEntry, StoreEvents, TouchRequest } from './store.js';

export interface EmbeddedEntry {
  backend: string;
  /** Wall-clock milliseconds. */
  expiresAt: number;
  /** The cluster store's version of the entry (its owner's hybrid clock); 0 on a single mux. */
  version: number;
}
type Entry = EmbeddedEntry;

/** One line of the state file: an entry (b, t, v when not 0) or its removal (d). */
interface LogLine {
  k: string;
  b?: string;
  t?: number;
  v?: number;
  d?: 1;
}

export interface EmbeddedStoreOptions {
  path: string;
  syncIntervalMs?: number;
  now?: () => number;
}

/** The state file cannot be used: `path` and why. */
export class StateFileError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
  }
}

function describe(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err.code !== undefined ? `${err.code}: ${err.message.replace(/^[A-Z]+: /, '').replace(/, \w+ '.*'$/, '')}` : String(e);
}

/**
 * mkdir -p of the state file's directory, one level at a time from the deepest existing one
 * (at most one mkdir per path component). Not mkdirSync(..., { recursive: true }): Node 20's
 * loops forever on a parent that exists but refuses children with ENOENT (/proc/nonexistent),
 * which hung the daemon's start.
 */
function makeDirectories(path: string): void {
  const missing: string[] = [];
  let dir = dirname(path);
  for (;;) {
    let isDir: boolean;
    try {
      isDir = statSync(dir).isDirectory();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw new StateFileError(path, `cannot use the directory ${dir} (${describe(e)})`);
      missing.push(dir);
      const parent = dirname(dir);
      if (parent === dir) break;
      dir = parent;
      continue;
    }
    if (!isDir) throw new StateFileError(path, `${dir} is not a directory`);
    break;
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && statSync(d, { throwIfNoEntry: false })?.isDirectory() === true) continue;
      throw new StateFileError(path, `cannot create the directory ${d} (${describe(e)})`);
    }
  }
}

export class EmbeddedStore implements PersistenceStore {
  readonly kind = 'embedded';
  private readonly entries = new Map<ClientKey, Entry>();
  private fd: number | undefined;
  private lines = 0;
  private lastSync = 0;
  private writes = 0;
  private compactions = 0;
  private readonly now: () => number;

  constructor(private readonly options: EmbeddedStoreOptions) {
    this.now = options.now ?? Date.now;
  }

  /**
   * Loads the state file (creating its directory and the file). Throws StateFileError, naming
   * the file and why, when it cannot be read or written there.
   */
  async open(_events: StoreEvents): Promise<StoreEntry[]> {
    const path = this.options.path;
    makeDirectories(path);
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new StateFileError(path, `cannot read it (${describe(e)})`);
    }
    const now = this.now();
    for (const raw of text.split('\n')) {
      if (raw === '') continue;
      let line: LogLine;
      try {
        line = JSON.parse(raw) as LogLine;
      } catch {
        continue;  // a line torn by a crash mid-write: everything before it stands
      }
      if (typeof line.k !== 'string') continue;
      if (line.d === 1) this.entries.delete(line.k);
      else if (typeof line.b === 'string' && typeof line.t === 'number') this.entries.set(line.k, { backend: line.b, expiresAt: line.t, version: typeof line.v === 'number' ? line.v : 0 });
    }
    for (const [k, e] of this.entries) if (e.expiresAt <= now) this.entries.delete(k);
    try {
      this.rewrite();
    } catch (e) {
      throw new StateFileError(path, `cannot write it (${describe(e)})`);
    }
    return [...this.entries].map(([key, e]) => ({ key, backend: e.backend, ttlMs: e.expiresAt - now }));
  }

  async rmc(requests: readonly RmcRequest[]): Promise<RmcAnswer[]> {
    const now = this.now();
    const out: RmcAnswer[] = [];
    const log: LogLine[] = [];
    for (const r of requests) {
      const e = this.entries.get(r.key);
      if (e !== undefined && e.expiresAt > now) {
        out.push({ key: r.key, backend: e.backend, created: false });
        continue;
      }
      const expiresAt = now + r.timeoutSeconds * 1000;
      this.entries.set(r.key, { backend: r.proposed, expiresAt, version: 0 });
      log.push({ k: r.key, b: r.proposed, t: expiresAt });
      out.push({ key: r.key, backend: r.proposed, created: true });
    }
    this.append(log);
    return out;
  }

  async replace(key: ClientKey, expected: string, next: string, timeoutSeconds: number): Promise<string> {
    const e = this.entries.get(key);
    const now = this.now();
    if (e !== undefined && e.expiresAt > now && e.backend !== expected) return e.backend;
    const expiresAt = now + timeoutSeconds * 1000;
    this.entries.set(key, { backend: next, expiresAt, version: 0 });
    this.append([{ k: key, b: next, t: expiresAt }]);
    return next;
  }

  async touch(keys: readonly TouchRequest[]): Promise<void> {
    const now = this.now();
    const log: LogLine[] = [];
    for (const { key, timeoutSeconds } of keys) {
      const e = this.entries.get(key);
      if (e === undefined) continue;
      const expiresAt = now + timeoutSeconds * 1000;
      // Written only when the deadline moved by a quarter of the timeout: the file is not a
      // per-second log of every active client.
      if (expiresAt - e.expiresAt < (timeoutSeconds * 1000) / 4) continue;
      e.expiresAt = expiresAt;
      log.push(lineOf(key, e));
    }
    this.append(log);
  }

  async remove(keys: readonly ClientKey[]): Promise<void> {
    const now = this.now();
    const log: LogLine[] = [];
    for (const key of keys) {
      const e = this.entries.get(key);
      // Touched meanwhile (another interface's table, or a fresh touch): keep it.
      if (e === undefined || e.expiresAt > now) continue;
      this.entries.delete(key);
      log.push({ k: key, d: 1 });
    }
    this.append(log);
  }

  async close(): Promise<void> {
    if (this.fd === undefined) return;
    fdatasyncSync(this.fd);
    closeSync(this.fd);
    this.fd = undefined;
  }

  status(): Record<string, unknown> {
    return { kind: this.kind, path: this.options.path, entries: this.entries.size, fileLines: this.lines, writes: this.writes, compactions: this.compactions };
  }

  /** Entries as the store holds them (tests, `l4mux persistence`). */
  get(key: ClientKey): EmbeddedEntry | undefined {
    const e = this.entries.get(key);
    return e !== undefined ? { ...e } : undefined;
  }

  /** The entry when it has not expired (the cluster store's reads). */
  peek(key: ClientKey): EmbeddedEntry | undefined {
    const e = this.entries.get(key);
    return e !== undefined && e.expiresAt > this.now() ? { ...e } : undefined;
  }

  /** Records an entry as it is (the cluster store's writes: its owner decided it). */
  write(key: ClientKey, entry: EmbeddedEntry): void {
    this.entries.set(key, { ...entry });
    this.append([lineOf(key, entry)]);
  }

  /** The entries that have not expired. */
  live(): Array<[ClientKey, EmbeddedEntry]> {
    const now = this.now();
    return [...this.entries].filter(([, e]) => e.expiresAt > now).map(([k, e]) => [k, { ...e }]);
  }

  private append(lines: LogLine[]): void {
    if (lines.length === 0 || this.fd === undefined) return;
    writeSync(this.fd, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    this.lines += lines.length;
    this.writes += 1;
    const now = this.now();
    if (now - this.lastSync >= (this.options.syncIntervalMs ?? 1000)) {
      fdatasyncSync(this.fd);
      this.lastSync = now;
    }
    if (this.lines > 4 * this.entries.size + 100_000) this.rewrite();
  }

  /** Writes the live entries to a new file and renames it over the old one. */
  private rewrite(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    const tmp = `${this.options.path}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    const body = [...this.entries].map(([k, e]) => JSON.stringify(lineOf(k, e))).join('\n');
    if (body !== '') writeSync(fd, body + '\n');
    fdatasyncSync(fd);
    closeSync(fd);
    renameSync(tmp, this.options.path);
    this.fd = openSync(this.options.path, 'a', 0o600);
    this.lines = this.entries.size;
    this.compactions += 1;
  }
}

function lineOf(k: ClientKey, e: EmbeddedEntry): LogLine {
  return e.version !== 0 ? { k, b: e.backend, t: e.expiresAt, v: e.version } : { k, b: e.backend, t: e.expiresAt };
}
