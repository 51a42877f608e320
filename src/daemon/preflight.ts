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
  await detachLeftoverXdp(links, deps);
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

/** The XDP program's name in the kernel (native/core/io/xdp_program.cc, kProgramName). */
export const L4MUX_XDP_PROGRAM = 'l4mux_xdp';

/**
 * An l4mux XDP program still attached before this daemon attached anything was left by a mux
 * that crashed: it steers VIP packets to AF_XDP sockets nobody reads (or to the kernel, which
 * may forward them), whatever I/O mode this run then picks. It goes, whatever the I/O mode.
 */
async function detachLeftoverXdp(links: readonly LinkInfo[], deps: PreflightDeps): Promise<void> {
  for (const link of links) {
    const xdp = link.xdp;
    if (xdp === undefined || xdp.programName !== L4MUX_XDP_PROGRAM || xdp.mode === 'multi') continue;
    const keyword = xdp.mode === 'native' ? 'xdpdrv' : xdp.mode === 'generic' ? 'xdpgeneric' : 'xdpoffload';
    const r = await deps.host.run('ip', ['link', 'set', 'dev', link.name, keyword, 'off']);
    const fields = { interface: link.name, programId: xdp.programId, xdpMode: xdp.mode };
    if (r.code === 0) {
      deps.logger.warn(fields, `${link.name}: detached a leftover l4mux XDP program (id ${xdp.programId ?? '?'}, ${xdp.mode}) that a mux which did not stop cleanly left attached`);
    } else {
      deps.logger.error({ ...fields, error: r.stderr.trim() }, `${link.name}: could not detach the leftover l4mux XDP program: ${r.stderr.trim()}`);
    }
  }
}

/**
 * A kernel that forwards also routes the VIP packets a packet socket reads (they are not for
 * one of its addresses): copies go back toward its own next hop. AF_XDP takes them away from
 * the kernel only while l4mux runs: a crashed or stopped mux (or an XDP program left attached
 * by one) hands them to the kernel again, which then forwards them (a loop through the
 * router). So the warning holds whatever the I/O mode.
 */
async function warnAboutForwarding(config: L4muxConfig, deps: PreflightDeps): Promise<void> {
  for (const name of ['net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding']) {
    if ((await deps.host.sysctl(name)) !== '1') continue;
    deps.logger.warn(
      { sysctl: name, io: config.node.io },
      `${name} is 1: the kernel forwards the VIP packets l4mux does not take (all of them with AF_PACKET, which only copies; with AF_XDP whenever the mux is down) back toward the router, duplicates or a loop; set ${name}=0 on a dedicated mux`,
    );
  }
}
