// What the agent configures around the native decapsulator, and how it is undone.
//
// VIP placement: on the TUN device itself (/32 and /128), not on loopback.
//  - The TUN device exists only while the agent holds it open, so the VIPs vanish with the
//    agent, even when it is killed: nothing is left to clean up by hand (VIPs left on lo
//    would keep capturing the host's own connections to the service).
//  - Reverse-path filtering: decapsulated packets enter through the TUN device from client
//    addresses that the routing table reaches through the real interface. Strict mode (1)
//    drops them; loose mode (2) accepts them, but only on a device that has an address
//    (without one, loose mode drops them as well). The VIPs give the TUN device its
//    address, and the agent sets net.ipv4.conf.<tun>.rp_filter=2: the kernel uses
//    max(all, <tun>), so this works
//    whatever conf.all says, without touching any namespace-wide setting. The sysctl lives
//    and dies with the device.
//  - ARP: with arp_ignore=0 the kernel would answer ARP for a VIP on any interface, which
//    would pull VIP traffic away from the muxes on a shared segment. The agent raises
//    arp_ignore to 1 (answer only for addresses on the receiving interface) and
//    arp_announce to 2 on the backend's interface when they are lower, and restores them
//    on stop. IPv6 neighbour discovery answers only for the receiving interface's own
//    addresses already.
// All sysctls are per network namespace: only the backend's own namespace is touched.
import { isIPv6 } from 'node:net';

import type { SystemOps } from './system.js';
import type { AgentSettings } from './types.js';

export interface UndoStep {
  description: string;
  run(): Promise<void>;
}

async function raiseSysctl(ops: SystemOps, key: string, min: number, undo: UndoStep[]): Promise<string | undefined> {
  const current = await ops.readSysctl(key);
  if (current === undefined) throw new Error(`sysctl ${key} not found (is the interface in this namespace?)`);
  const value = Number(current);
  if (Number.isInteger(value) && value >= min) return undefined;
  await ops.writeSysctl(key, String(min));
  undo.push({ description: `restore ${key}=${current}`, run: () => ops.writeSysctl(key, current) });
  return `${key.replaceAll('/', '.')}=${min} (was ${current})`;
}

/**
 * Configures the backend around a started native agent whose TUN device is `tun`. Every
 * change that outlives the TUN device is recorded in `undo` as it is made, so that a
 * failure half-way can still be undone by the caller. Returns what was changed.
 */
export async function configureBackend(settings: AgentSettings, tun: string, ops: SystemOps, undo: UndoStep[]): Promise<string[]> {
  const changes: string[] = [];
  const v4 = settings.vips.filter((v) => !isIPv6(v));
  const v6 = settings.vips.filter((v) => isIPv6(v));
  if (v6.length > 0) {
    // Hosts that disable IPv6 by default would refuse the IPv6 VIPs.
    const key = `net/ipv6/conf/${tun}/disable_ipv6`;
    if ((await ops.readSysctl(key)) === '1') await ops.writeSysctl(key, '0');
  }
  if (v4.length > 0) {
    // Before any VIP exists: the interface must never answer ARP for one.
    for (const [name, min] of [['arp_ignore', 1], ['arp_announce', 2]] as const) {
      const change = await raiseSysctl(ops, `net/ipv4/conf/${settings.interface}/${name}`, min, undo);
      if (change !== undefined) changes.push(change);
    }
    await ops.writeSysctl(`net/ipv4/conf/${tun}/rp_filter`, '2');
    changes.push(`net.ipv4.conf.${tun}.rp_filter=2`);
  }
  for (const vip of settings.vips) {
    const v6vip = isIPv6(vip);
    const prefix = `${vip}/${v6vip ? 128 : 32}`;
    // `replace` is idempotent: a leftover from an earlier run is taken over, not an error.
    await ops.ip(v6vip ? ['-6', 'addr', 'replace', prefix, 'dev', tun, 'nodad'] : ['addr', 'replace', prefix, 'dev', tun]);
    undo.push({
      description: `remove ${prefix} from ${tun}`,
      // The device may already be gone (and the address with it).
      run: () => ops.ip([...(v6vip ? ['-6'] : []), 'addr', 'del', prefix, 'dev', tun]).catch(() => undefined),
    });
    changes.push(`${prefix} on ${tun}`);
  }
  return changes;
}

/** Runs the undo steps, newest first. Returns the failures (it never throws). */
export async function unconfigure(undo: UndoStep[]): Promise<string[]> {
  const failures: string[] = [];
  while (undo.length > 0) {
    const step = undo.pop();
    if (step === undefined) break;
    try {
      await step.run();
    } catch (e) {
      failures.push(`${step.description}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return failures;
}
