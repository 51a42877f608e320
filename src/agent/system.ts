// The agent's few system changes go through this interface: `ip` and /proc/sys. Tests
// substitute a recording fake.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';

export interface SystemOps {
  /** Runs `ip ARGS`; rejects with ip's error message. */
  ip(args: string[]): Promise<void>;
  /** A sysctl by its /proc/sys path ("net/ipv4/conf/eth0/arp_ignore"); undefined when absent. */
  readSysctl(key: string): Promise<string | undefined>;
  writeSysctl(key: string, value: string): Promise<void>;
}

function sysctlPath(key: string): string {
  if (key.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new Error(`bad sysctl key ${key}`);
  }
  return `/proc/sys/${key}`;
}

export const realSystem: SystemOps = {
  ip: (args) =>
    new Promise((resolve, reject) => {
      execFile('ip', args, { timeout: 10_000 }, (error, _stdout, stderr) => {
        if (error) reject(new Error(`ip ${args.join(' ')}: ${stderr.trim() || error.message}`));
        else resolve();
      });
    }),
  readSysctl: async (key) => {
    try {
      return (await readFile(sysctlPath(key), 'utf8')).trim();
    } catch {
      return undefined;
    }
  },
  writeSysctl: async (key, value) => {
    await writeFile(sysctlPath(key), `${value}\n`);
  },
};
