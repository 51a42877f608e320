// The checks before the daemon touches anything: privileges for the I/O mode, the CPUs of
// node.cpus, the served interfaces; and warnings about host settings that would make the mux
// misbehave. Failures are StartupErrors (one line per problem); nothing is changed on the host.
import type { Logger } from 'pino';

import { MAX_WORKERS } from '../config/defaults.js';
import type { L4muxConfig } from '../config/types.js';
import { checkCapabilities, type ProcessPrivileges } from '../net/capabilities.js';
import type { NetHost } from '../net/host.js';
import { checkLink, readLinks, type LinkInfo } from '../net/links.js';
import { formatCpuList } from './cpus.js';
import { StartupError } from './service.js';

export interface PreflightDeps {
  logger: Logger;
  host: NetHost;
  readPrivileges: () => Promise<ProcessPrivileges>;
  onlineCpus: () => Promise<number[]>;
}

export interface Preflight {
  /** Worker threads per engine. */
  workers: number;
  /** The interfaces of node.interfaces that can be served, in its order. */
  links: LinkInfo[];
}

export async function preflight(config: L4muxConfig, deps: PreflightDeps): Promise<Preflight> {
  const { logger } = deps;

  // Privileges.
  const caps = checkCapabilities(await deps.readPrivileges(), config.node.io);
  if (!caps.ok) throw new StartupError([caps.message]);
  for (const warning of caps.warnings) logger.warn(warning);

  const workers = await checkCpus(config, await deps.onlineCpus());
  const links = await usableLinks(config, deps);
  warnAboutAddresses(config, links, logger);
  await warnAboutForwarding(config, deps);
  return { workers, links };
}

/** node.cpus must be online; the number of workers: node.workers, else one per CPU (capped). */
function checkCpus(config: L4muxConfig, online: number[]): number {
  if (config.node.cpus !== undefined) {
    const offline = config.node.cpus.filter((c) => !online.includes(c));
    if (offline.length > 0) {
      throw new StartupError([`node.cpus: ${offline.length === 1 ? 'CPU' : 'CPUs'} ${formatCpuList(offline)} ${offline.length === 1 ? 'is' : 'are'} not online (online: ${formatCpuList(online)})`]);
    }
  }
  return config.node.workers ?? config.node.cpus?.length ?? Math.max(1, Math.min(MAX_WORKERS, online.length));
}

/** The interfaces that can receive VIP traffic; an unusable one is logged and left out, none is an error. */
async function usableLinks(config: L4muxConfig, deps: PreflightDeps): Promise<LinkInfo[]> {
  const links = await readLinks(deps.host);
  const usable: LinkInfo[] = [];
  const unusable: string[] = [];
  for (const name of config.node.interfaces) {
    const check = checkLink(name, links);
    if (check.ok) usable.push(check.link);
    else {
      unusable.push(`interface ${name} ${check.reason}`);
      deps.logger.error({ interface: name, reason: check.reason }, `interface ${name} ${check.reason}: not served`);
    }
  }
  if (usable.length === 0) {
    throw new StartupError([...unusable, `no usable interface: none of node.interfaces (${config.node.interfaces.join(', ')}) can receive VIP traffic`]);
  }
  return usable;
}

/** VIP addresses configured on a served interface make the kernel answer VIP clients itself. */
function warnAboutAddresses(config: L4muxConfig, links: readonly LinkInfo[], logger: Logger): void {
  const vipAddresses = new Set(config.vips.map((v) => v.address));
  for (const link of links) {
    for (const a of link.addresses) {
      if (!vipAddresses.has(a.address)) continue;
      logger.warn(
        { interface: link.name, address: a.address },
        `VIP address ${a.address} is configured on ${link.name}: the kernel will answer its clients itself (TCP resets); remove it from the interface (backends hold VIPs, the mux does not)`,
      );
    }
  }
}

/**
 * A kernel that forwards also routes the VIP packets a packet socket reads (they are not for
 * one of its addresses): copies go back toward its own next hop. AF_XDP takes them away from
 * the kernel, AF_PACKET does not.
 */
async function warnAboutForwarding(config: L4muxConfig, deps: PreflightDeps): Promise<void> {
  if (config.node.io === 'af_xdp') return;
  for (const name of ['net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding']) {
    if ((await deps.host.sysctl(name)) !== '1') continue;
    deps.logger.warn(
      { sysctl: name },
      `${name} is 1: with AF_PACKET the kernel also forwards the VIP packets l4mux reads (duplicates, or loops back through the router); set ${name}=0 on a dedicated mux`,
    );
  }
}
