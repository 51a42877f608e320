// The pid file: written at start, refused when another live l4mux owns it, removed at exit.
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether `pid` runs l4mux (its command line names the l4mux CLI), as far as /proc tells. A
 * pid left in a stale pid file may since belong to any program; only an l4mux blocks a start.
 * Without /proc to ask, a live process is taken for l4mux (refusing is the safe side).
 */
async function isL4mux(pid: number): Promise<boolean> {
  let cmdline: string;
  try {
    cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return isAlive(pid);
  }
  return cmdline
    .split('\0')
    .some((arg) => basename(arg) === 'l4mux' || /(^|\/)(dist|src)\/cli\/main\.[jt]s$/.test(arg));
}

async function readPid(path: string): Promise<number | undefined> {
  try {
    const n = Number.parseInt((await readFile(path, 'utf8')).trim(), 10);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Writes our pid to `path`; throws when a running process other than us holds it. */
export async function writePidfile(path: string, pid = process.pid): Promise<void> {
  try {
    await writeFile(path, `${pid}\n`, { flag: 'wx', mode: 0o644 });
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new Error(`pid file ${path}: cannot write it (${(e as Error).message})`);
    }
  }
  const other = await readPid(path);
  if (other !== undefined && other !== pid && isAlive(other) && (await isL4mux(other))) {
    throw new Error(`pid file ${path}: l4mux is already running as pid ${other}`);
  }
  // Left behind by a process that is gone (or whose pid another program now has).
  await writeFile(path, `${pid}\n`, { mode: 0o644 });
}

/** Removes `path` if it still holds our pid. */
export async function removePidfile(path: string, pid = process.pid): Promise<void> {
  if ((await readPid(path)) !== pid) return;
  try {
    await unlink(path);
  } catch {
    // already gone
  }
}
