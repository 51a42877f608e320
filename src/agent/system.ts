// The agent's few system changes go through this interface: `ip` and /proc/sys. Tests
// substitute a recording fake.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';

import { parseLinks, type LinkAddress } from '../net/links.js';

export interface SystemOps {
  /** Runs `ip ARGS`; rejects with ip's error message. */
  ip(args: string[]): Promise<void>;
  /** A sysctl by its /proc/sys path ("net/ipv4/conf/eth0/arp_ignore"); undefined when absent. */
  readSysctl(key: string): Promise<string | undefined>;
  writeSysctl(key: string, value: string): Promise<void>;
  /** The addresses configured on an interface (`ip -j addr show dev NAME`); rejects when it is absent. */
  interfaceAddresses(name: string): Promise<LinkAddress[]>;
}

function sysctlPath(key: string): string {
  if (key.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new Error(`bad sysctl key ${key}`);
  }
  return `/proc/sys/${key}`;
}

function runIp(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: 10_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`ip ${args.join(' ')}: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
  });
}

export const realSystem: SystemOps = {
  ip: async (args) => {
    await runIp(args);
  },
  interfaceAddresses: async (name) => parseLinks(await runIp(['-j', 'addr', 'show', 'dev', name])).flatMap((link) => link.addresses),
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
