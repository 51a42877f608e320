// Does this process have the privileges live forwarding needs? Read from the effective
// capability set in /proc/self/status (being uid 0 is not enough in a container that dropped
// capabilities, and not needed when systemd grants them as ambient capabilities).
import { readFile } from 'node:fs/promises';

import type { IoChoice } from '../config/types.js';

/** Capability numbers from linux/capability.h. */
export const CAPABILITIES = {
  CAP_KILL: 5,
  CAP_SETGID: 6,
  CAP_SETUID: 7,
  CAP_NET_BIND_SERVICE: 10,
  CAP_NET_ADMIN: 12,
  CAP_NET_RAW: 13,
  CAP_SYS_ADMIN: 21,
  CAP_BPF: 39,
} as const;

export type CapabilityName = keyof typeof CAPABILITIES;

export interface ProcessPrivileges {
  uid: number;
  /** The effective capability set, bit n = capability n. */
  effective: bigint;
}

/** Parses the Uid: and CapEff: lines of /proc/<pid>/status. */
export function parseProcStatus(text: string): ProcessPrivileges {
  const uid = /^Uid:\s+(\d+)\s+(\d+)/m.exec(text);
  const capEff = /^CapEff:\s+([0-9a-fA-F]+)\s*$/m.exec(text);
  if (capEff === null) throw new Error('no CapEff line in /proc/self/status');
  return { uid: uid === null ? -1 : Number(uid[2]), effective: BigInt(`0x${capEff[1] ?? '0'}`) };
}

export function hasCapability(privileges: ProcessPrivileges, name: CapabilityName): boolean {
  return ((privileges.effective >> BigInt(CAPABILITIES[name])) & 1n) === 1n;
}

export interface CapabilityCheck {
  ok: boolean;
  /** Missing capabilities, or alternatives such as "CAP_BPF (or CAP_SYS_ADMIN)". */
  missing: string[];
  /** Why the check failed, naming what is missing; empty when ok. */
  message: string;
  /** Things that work but not as well (AF_XDP out of reach for "auto"). */
  warnings: string[];
}

/** What `l4mux run` with this I/O choice needs, checked against the process's privileges. */
export function checkCapabilities(privileges: ProcessPrivileges, io: IoChoice): CapabilityCheck {
  const missing: string[] = [];
  for (const name of ['CAP_NET_RAW', 'CAP_NET_ADMIN'] as const) {
    if (!hasCapability(privileges, name)) missing.push(name);
  }
  const canXdp = hasCapability(privileges, 'CAP_BPF') || hasCapability(privileges, 'CAP_SYS_ADMIN');
  const warnings: string[] = [];
  if (!canXdp) {
    if (io === 'af_xdp') missing.push('CAP_BPF (or CAP_SYS_ADMIN on kernels before 5.8)');
    else if (io === 'auto') warnings.push('AF_XDP is out of reach without CAP_BPF (or CAP_SYS_ADMIN): "io": "auto" will use AF_PACKET');
  }
  if (missing.length === 0) return { ok: true, missing, message: '', warnings };
  const asRoot = privileges.uid === 0 ? 'runs as root but ' : '';
  const why = io === 'af_xdp' ? 'packet sockets, interface settings and an XDP program' : 'packet sockets and interface settings';
  const message =
    `l4mux ${asRoot}lacks ${missing.join(', ')}: live forwarding needs them for ${why}. ` +
    'Run it as root, or grant them (systemd: AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN CAP_BPF; see scripts/systemd/l4mux.service)';
  return { ok: false, missing, message, warnings };
}

export async function readProcessPrivileges(): Promise<ProcessPrivileges> {
  return parseProcStatus(await readFile('/proc/self/status', 'utf8'));
}
