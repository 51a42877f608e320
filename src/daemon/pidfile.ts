// The pid file: written at start, refused when another live l4mux owns it, removed at exit.
import { readFile, unlink, writeFile } from 'node:fs/promises';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
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
  if (other !== undefined && other !== pid && isAlive(other)) {
    throw new Error(`pid file ${path}: l4mux is already running as pid ${other}`);
  }
  // Left behind by a process that is gone.
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
