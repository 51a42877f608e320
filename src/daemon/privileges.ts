// Least privilege: once the daemon has opened its packet sockets, attached its XDP program and
// created its control socket, it keeps only the capabilities that later work needs and drops
// the rest from every thread (and, with CAP_SETPCAP, from the bounding set, so that the
// commands it runs cannot regain them). What stays, and why:
//   CAP_NET_ADMIN  stop: receive offloads back on (ethtool -K), the XDP program detached;
//                  neighbour and route look-ups (ip) while running
//   CAP_NET_RAW    icmp checks open raw sockets (again after an error), tunnelled checks one per
//                  probe; a reload may add either
//   CAP_SETUID, CAP_SETGID  exec checks run as healthCheck.exec.user (a reload may add them)
//   CAP_KILL       an exec check that overstays is killed, and it runs as another uid
//   CAP_NET_BIND_SERVICE  with a bgp section: BIRD, restarted after a crash, binds 179 (and 3784)
//   CAP_BPF        with AF_XDP: reloads and pool changes update the XDP program's maps, and
//                  kernels before 6.5 refuse every bpf() call without it; CAP_SYS_ADMIN in its
//                  place on kernels without CAP_BPF (before 5.8)
// Everything else goes: CAP_SYS_ADMIN, CAP_DAC_OVERRIDE, CAP_SYS_PTRACE, CAP_SYS_MODULE, and
// CAP_PERFMON / CAP_IPC_LOCK, which only loading the program and registering UMEM needed.
import { readFileSync } from 'node:fs';

import type { L4muxConfig } from '../config/types.js';
import type { CapabilityDropReport } from '../dataplane/index.js';
import type { IoMode } from '../dataplane/engine.js';
import { CAPABILITIES, type CapabilityName } from '../net/capabilities.js';

export type { CapabilityDropReport } from '../dataplane/index.js';

/** Lowers the process's capabilities to `keep` (capability numbers). */
export type CapabilityDropper = (keep: number[]) => CapabilityDropReport;

/** The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap). */
export function lastCapability(): number {
  try {
    return Number.parseInt(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim(), 10);
  } catch {
    return 40;
  }
}

/** The capabilities a running daemon with `config` and these engines' I/O still needs. */
export function capabilitiesToKeep(config: L4muxConfig, ioModes: ReadonlyArray<IoMode | 'unknown'>, lastCap = lastCapability()): CapabilityName[] {
  const keep: CapabilityName[] = ['CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_SETUID', 'CAP_SETGID', 'CAP_KILL'];
  if (config.bgp !== undefined) keep.push('CAP_NET_BIND_SERVICE');
  if (ioModes.some((m) => m !== 'af_packet')) keep.push(lastCap >= CAPABILITIES.CAP_BPF ? 'CAP_BPF' : 'CAP_SYS_ADMIN');
  return keep;
}

/** Bit mask (as in /proc/PID/status) of capability names. */
export function capabilityMask(names: readonly CapabilityName[]): bigint {
  return names.reduce((m, n) => m | (1n << BigInt(CAPABILITIES[n])), 0n);
}
