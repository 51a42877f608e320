// Receive offloads on the served interfaces. GRO and LRO merge the segments of a flow into
// super-frames far above the MTU; a packet-level forwarder must see (and send) the packets as
// they were on the wire. While l4mux runs it turns them off, and turns back on what it turned
// off when it stops.
import { oneLine, type NetHost } from './host.js';

/** The features turned off, by their `ethtool -k` names. */
export const MANAGED_FEATURES = ['generic-receive-offload', 'large-receive-offload', 'rx-gro-hw'] as const;

export interface FeatureState {
  active: boolean;
  /** Cannot be changed on this device. */
  fixed: boolean;
}

/** Parses `ethtool --json -k IF` (ethtool 6.x). */
export function parseFeaturesJson(text: string): Map<string, FeatureState> {
  const value: unknown = JSON.parse(text);
  const first: unknown = Array.isArray(value) ? value[0] : value;
  const out = new Map<string, FeatureState>();
  if (typeof first !== 'object' || first === null) return out;
  for (const [name, state] of Object.entries(first as Record<string, unknown>)) {
    if (typeof state !== 'object' || state === null) continue;
    const s = state as Record<string, unknown>;
    if (typeof s['active'] !== 'boolean') continue;
    out.set(name, { active: s['active'], fixed: s['fixed'] === true });
  }
  return out;
}

/** Parses the text of `ethtool -k IF`: "name: on|off [fixed]" lines. */
export function parseFeaturesText(text: string): Map<string, FeatureState> {
  const out = new Map<string, FeatureState>();
  for (const line of text.split('\n')) {
    const m = /^\s*([a-z0-9-]+):\s+(on|off)(.*)$/.exec(line);
    if (m === null) continue;
    out.set(m[1] ?? '', { active: m[2] === 'on', fixed: /\[fixed\]/.test(m[3] ?? '') });
  }
  return out;
}

export async function readFeatures(host: NetHost, ifname: string): Promise<Map<string, FeatureState>> {
  const json = await host.run('ethtool', ['--json', '-k', ifname]);
  if (json.code === 0) {
    try {
      return parseFeaturesJson(json.stdout);
    } catch {
      // An ethtool without JSON output for -k: read the text.
    }
  }
  const text = await host.run('ethtool', ['-k', ifname]);
  if (text.code !== 0) throw new Error(`ethtool -k ${ifname} failed: ${oneLine(text.stderr || json.stderr)}`);
  return parseFeaturesText(text.stdout);
}

export interface OffloadReport {
  interface: string;
  /** Features this call turned off (restored by restore()). */
  turnedOff: string[];
  /** Managed features that were already off (or fixed off). */
  alreadyOff: string[];
  /** Features that stay on: fixed on, or refused by the driver. */
  stillOn: string[];
}

/** Turns the managed offloads off and remembers what to turn back on. */
export class OffloadManager {
  private readonly changed = new Map<string, string[]>();

  constructor(private readonly host: NetHost) {}

  async disable(ifname: string): Promise<OffloadReport> {
    const before = await readFeatures(this.host, ifname);
    const present = MANAGED_FEATURES.filter((f) => before.has(f));
    const on = present.filter((f) => before.get(f)?.active === true);
    const toChange = on.filter((f) => before.get(f)?.fixed !== true);
    const report: OffloadReport = { interface: ifname, turnedOff: [], alreadyOff: present.filter((f) => !on.includes(f)), stillOn: [] };
    let failure = '';
    if (toChange.length > 0) {
      const run = await this.host.run('ethtool', ['-K', ifname, ...toChange.flatMap((f) => [f, 'off'])]);
      if (run.code !== 0) failure = oneLine(run.stderr);
    }
    const after = toChange.length > 0 ? await readFeatures(this.host, ifname) : before;
    for (const f of on) {
      if (after.get(f)?.active === false) report.turnedOff.push(f);
      else report.stillOn.push(failure !== '' && toChange.includes(f) ? `${f} (${failure})` : before.get(f)?.fixed === true ? `${f} (fixed)` : f);
    }
    if (report.turnedOff.length > 0) this.changed.set(ifname, [...(this.changed.get(ifname) ?? []), ...report.turnedOff]);
    return report;
  }

  /** What disable() turned off, by interface. */
  pending(): Map<string, string[]> {
    return new Map(this.changed);
  }

  /** Turns back on everything disable() turned off; returns the problems (never throws). */
  async restore(): Promise<string[]> {
    const problems: string[] = [];
    for (const [ifname, features] of this.changed) {
      try {
        const run = await this.host.run('ethtool', ['-K', ifname, ...features.flatMap((f) => [f, 'on'])]);
        if (run.code !== 0) problems.push(`${ifname}: could not turn ${features.join(', ')} back on: ${oneLine(run.stderr)}`);
      } catch (e) {
        problems.push(`${ifname}: could not turn ${features.join(', ')} back on: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    this.changed.clear();
    return problems;
  }
}
