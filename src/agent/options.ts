// Validation of `l4mux agent` options into AgentSettings. Pure: no system access.
import { isIPv4, isIPv6 } from 'node:net';

import { parsePrefix } from './mux-sources.js';
import { DEFAULT_GUE_PORT } from '../config/defaults.js';
import type { AgentSettings } from './types.js';

export const DEFAULT_TUN = 'l4tun0';
export { DEFAULT_GUE_PORT };
export const MAX_GUE_PORTS = 8;

/** Raw option values as the command line gives them. */
export interface AgentOptionInput {
  interface?: string;
  tun?: string;
  vip?: string[];
  address?: string[];
  guePort?: string[];
  greKey?: string;
  statsInterval?: string;
  muxSource?: string[];
}

export type ParseResult = { ok: true; settings: AgentSettings } | { ok: false; errors: string[] };

// Linux interface names: 1-15 bytes, no '/', ':' or whitespace, not '.' or '..'.
function interfaceNameError(option: string, name: string | undefined): string | undefined {
  if (name === undefined || name === '') return `${option}: an interface name is required`;
  if (Buffer.byteLength(name) > 15) return `${option} ${name}: interface names have at most 15 bytes`;
  if (/[\s/:]/.test(name) || name === '.' || name === '..') return `${option} ${name}: not a valid interface name`;
  return undefined;
}

function integer(text: string, min: number, max: number): number | undefined {
  if (!/^(0|[1-9][0-9]*|0x[0-9a-fA-F]+)$/.test(text.trim())) return undefined;
  const n = Number(text.trim());
  return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined;
}

/** Canonical text of an IPv6 address (lower case, compressed), for comparisons. */
function canonical(addr: string): string {
  if (!isIPv6(addr)) return addr;
  return new URL(`http://[${addr}]/`).hostname.slice(1, -1);
}

export function parseAgentOptions(input: AgentOptionInput): ParseResult {
  const errors: string[] = [];
  const iface = input.interface;
  const tun = input.tun ?? DEFAULT_TUN;
  for (const e of [interfaceNameError('--interface', iface), interfaceNameError('--tun', tun)]) {
    if (e !== undefined) errors.push(e);
  }
  if (iface !== undefined && iface === tun) errors.push(`--tun ${tun}: must differ from --interface`);

  const vips: string[] = [];
  for (const v of input.vip ?? []) {
    if (!isIPv4(v) && !isIPv6(v)) errors.push(`--vip ${v}: not an IPv4 or IPv6 address`);
    else if (vips.includes(canonical(v))) errors.push(`--vip ${v}: given twice`);
    else vips.push(canonical(v));
  }
  if ((input.vip ?? []).length === 0) errors.push('--vip: at least one VIP is required');

  const addresses: AgentSettings['addresses'] = {};
  for (const a of input.address ?? []) {
    if (isIPv4(a)) {
      if (addresses.ipv4 !== undefined) errors.push(`--address ${a}: one IPv4 address only (already ${addresses.ipv4})`);
      else addresses.ipv4 = a;
    } else if (isIPv6(a)) {
      if (addresses.ipv6 !== undefined) errors.push(`--address ${a}: one IPv6 address only (already ${addresses.ipv6})`);
      else addresses.ipv6 = canonical(a);
    } else {
      errors.push(`--address ${a}: not an IPv4 or IPv6 address`);
    }
  }
  if ((input.address ?? []).length === 0) {
    errors.push("--address: the backend's own tunnel address is required (one IPv4 and/or one IPv6)");
  }
  for (const v of vips) {
    if (v === addresses.ipv4 || v === addresses.ipv6) {
      errors.push(`--vip ${v}: is also the backend's tunnel --address; a VIP is not the tunnel endpoint`);
    }
  }

  const guePorts: number[] = [];
  for (const p of input.guePort ?? [String(DEFAULT_GUE_PORT)]) {
    const n = integer(p, 1, 65535);
    if (n === undefined) errors.push(`--gue-port ${p}: a port 1-65535 is expected`);
    else if (guePorts.includes(n)) errors.push(`--gue-port ${p}: given twice`);
    else guePorts.push(n);
  }
  if (guePorts.length > MAX_GUE_PORTS) errors.push(`--gue-port: at most ${MAX_GUE_PORTS} ports`);

  let greKey: number | undefined;
  if (input.greKey !== undefined) {
    greKey = integer(input.greKey, 0, 0xffffffff);
    if (greKey === undefined) errors.push(`--gre-key ${input.greKey}: an integer 0-4294967295 is expected`);
  }

  let statsIntervalSeconds = 60;
  if (input.statsInterval !== undefined) {
    const n = integer(input.statsInterval, 0, 86400);
    if (n === undefined) errors.push(`--stats-interval ${input.statsInterval}: seconds 0-86400 expected`);
    else statsIntervalSeconds = n;
  }

  let muxSources: string[] | undefined;
  if (input.muxSource !== undefined && input.muxSource.length > 0) {
    muxSources = [];
    for (const text of input.muxSource) {
      const prefixes: string[] = [];
      if (text === 'any') {
        prefixes.push('0.0.0.0/0', '::/0');
      } else {
        const parsed = parsePrefix(text);
        if (parsed.ok) prefixes.push(parsed.prefix);
        else errors.push(`--mux-source ${parsed.reason}`);
      }
      for (const p of prefixes) if (!muxSources.includes(p)) muxSources.push(p);
    }
  }

  if (errors.length > 0 || iface === undefined) return { ok: false, errors };
  const settings: AgentSettings = { interface: iface, tun, vips, addresses, guePorts, statsIntervalSeconds };
  if (greKey !== undefined) settings.greKey = greKey;
  if (muxSources !== undefined) settings.muxSources = muxSources;
  return { ok: true, settings };
}
