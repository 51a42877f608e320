// The daemon's BGP speaker: decides which VIP addresses are announced and keeps BIRD (a
// supervised child, see bird-process.ts) configured to announce exactly those.
//
// An address is announced while all of these hold:
//   - nothing holds the announcements back (drain and stop withdraw everything first);
//   - every readiness gate is open (the cluster's "ready": a joining mux is announced only
//     once its flow transfer is done; `setGate` is the hook);
//   - at least one VIP on the address can be served (eligibility.ts).
// It is withdrawn as soon as one of them stops holding: the inputs arrive as events and every
// change becomes a BIRD reconfiguration at once.
import type { Logger } from 'pino';

import type { AddressFamily } from '../config/types.js';
import { birdConfig } from './bird-config.js';
import { parseBfdSessions, parseProtocols, type BirdProtocol, type BirdReply } from './bird-control.js';
import { BirdProcess, type BirdProcessOptions, type BirdProcessStatus } from './bird-process.js';
import type { VipEligibility } from './eligibility.js';
import type { BgpConfig } from './types.js';

/** What the speaker needs of BIRD (BirdProcess; tests may substitute one). */
export interface BirdLike {
  readonly configFile: string;
  start(text: string): Promise<void>;
  check(text: string): Promise<string | null>;
  configure(text: string): Promise<void>;
  stop(): Promise<void>;
  command(command: string, timeoutMs?: number): Promise<BirdReply>;
  status(): BirdProcessStatus;
}

export type BirdFactory = (options: BirdProcessOptions) => BirdLike;
export const defaultBird: BirdFactory = (options) => new BirdProcess(options);

export interface BgpSpeakerOptions {
  logger: Logger;
  createBird?: BirdFactory;
  /** How often neighbour states are read from BIRD. */
  pollIntervalMs?: number;
}

export interface NeighbourStatus {
  name: string;
  address: string;
  as: number;
  /** BGP session state (Established, Active, Connect, OpenSent, ...), or why it is unknown. */
  state: string;
  established: boolean;
  since: string;
  lastError: string | null;
  /** Routes BIRD exports to this neighbour now. */
  exportedRoutes: number | null;
  holdTime: number;
  bfd: boolean;
  /** With BFD: the BFD session's state (Up, Down, Init, AdminDown), null while unknown. */
  bfdState: string | null;
  password: boolean;
}

export interface AnnouncementStatus {
  prefix: string;
  address: string;
  family: AddressFamily;
  announced: boolean;
  reason: string;
  vips: VipEligibility[];
}

export interface GateStatus {
  name: string;
  ready: boolean;
  reason: string;
}

export interface BgpStatus {
  localAs: number;
  routerId: string;
  bird: BirdProcessStatus;
  /** Set while everything is withdrawn on purpose (drain, stop). */
  withdrawnBecause: string | null;
  gates: GateStatus[];
  neighbours: NeighbourStatus[];
  announcements: AnnouncementStatus[];
  lastApplyError: string | null;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Wait before configuring BIRD again after it failed. */
const RETRY_MS = 1000;

const prefixOf = (address: string): string => (address.includes(':') ? `${address}/128` : `${address}/32`);

interface ObservedNeighbour {
  state: string;
  since: Date;
  lastError: string | null;
  exported: number | null;
}

export class BgpSpeaker {
  private config: BgpConfig;
  private readonly bird: BirdLike;
  private vips: VipEligibility[] = [];
  private held: string | null = null;
  private readonly gates = new Map<string, GateStatus>();
  private announced: string[] = [];
  private lastApplyError: string | null = null;
  private readonly observed = new Map<string, ObservedNeighbour>();
  private poller: NodeJS.Timeout | undefined;
  private polling = false;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;
  private bfdStates = new Map<string, string>();

  private constructor(
    config: BgpConfig,
    private readonly options: BgpSpeakerOptions,
  ) {
    this.config = config;
    this.bird = (options.createBird ?? defaultBird)({ bird: config.bird, runDirectory: config.runDirectory, logger: options.logger.child({ component: 'bird' }) });
  }

  private get log(): Logger {
    return this.options.logger;
  }

  /** Starts BIRD with the sessions and nothing announced; `update` decides what is. */
  static async start(config: BgpConfig, options: BgpSpeakerOptions): Promise<BgpSpeaker> {
    const speaker = new BgpSpeaker(config, options);
    const text = speaker.render([]);
    const problem = await speaker.bird.check(text);
    if (problem !== null) throw new Error(`bgp: BIRD refuses the generated configuration: ${problem}`);
    await speaker.bird.start(text);
    speaker.log.info(
      { neighbours: config.neighbours.map((n) => `${n.name} ${n.address} AS${n.as}`), localAs: config.localAs, routerId: config.routerId },
      `bgp: BIRD started for AS${config.localAs}, ${config.neighbours.length} ${config.neighbours.length === 1 ? 'neighbour' : 'neighbours'}`,
    );
    speaker.poller = setInterval(() => void speaker.poll(), options.pollIntervalMs ?? 1000);
    speaker.poller.unref();
    void speaker.poll();
    return speaker;
  }

  /** Whether a VIP on each address can be served now; applies the result at once. */
  update(vips: VipEligibility[]): Promise<void> {
    this.vips = vips;
    return this.apply();
  }

  /**
   * A readiness input: announcements wait until every gate is ready. The cluster registers
   * one ("cluster") that opens once this mux's flow transfer is done.
   */
  setGate(name: string, ready: boolean, reason: string): Promise<void> {
    const before = this.gates.get(name);
    this.gates.set(name, { name, ready, reason });
    if (before?.ready !== ready) this.log.info({ gate: name, ready, reason }, `bgp: gate ${name} ${ready ? 'ready' : 'not ready'}: ${reason}`);
    return this.apply();
  }

  /** Withdraws every address until the speaker stops (drain, stop); resolves once BIRD has the change. */
  withdrawAll(reason: string): Promise<void> {
    this.held = reason;
    this.log.warn({ reason }, `bgp: withdrawing every VIP: ${reason}`);
    return this.apply();
  }

  /** Checks a reloaded bgp section with BIRD itself; null when BIRD accepts it, else the reason. */
  async check(next: BgpConfig): Promise<string | null> {
    return this.bird.check(birdConfig({ bgp: next, announce: this.announced }));
  }

  /** What changes from the running section to `next` (lines for `l4mux reload`), and what needs a restart. */
  static describeChange(before: BgpConfig, next: BgpConfig): { changes: string[]; restartRequired: string[] } {
    const changes: string[] = [];
    const restartRequired: string[] = [];
    if (before.bird !== next.bird) restartRequired.push(`bgp.bird: ${before.bird} -> ${next.bird} (restart required)`);
    if (before.runDirectory !== next.runDirectory) restartRequired.push(`bgp.runDirectory: ${before.runDirectory} -> ${next.runDirectory} (restart required)`);
    const scalar = (name: string, a: unknown, b: unknown): void => {
      if (JSON.stringify(a) !== JSON.stringify(b)) changes.push(`bgp.${name}: ${JSON.stringify(a)} -> ${JSON.stringify(b)}`);
    };
    scalar('localAs', before.localAs, next.localAs);
    scalar('routerId', before.routerId, next.routerId);
    scalar('drainSeconds', before.drainSeconds, next.drainSeconds);
    const old = new Map(before.neighbours.map((n) => [n.name, n]));
    const now = new Map(next.neighbours.map((n) => [n.name, n]));
    for (const [name, n] of now) {
      const o = old.get(name);
      if (o === undefined) changes.push(`bgp: neighbour ${name} (${n.address} AS${n.as}) added`);
      else if (JSON.stringify(o) !== JSON.stringify(n)) changes.push(`bgp: neighbour ${name} changed (its session restarts)`);
    }
    for (const [name, o] of old) if (!now.has(name)) changes.push(`bgp: neighbour ${name} (${o.address}) removed`);
    if (JSON.stringify(before.routes) !== JSON.stringify(next.routes) || JSON.stringify(before.communities) !== JSON.stringify(next.communities)) {
      changes.push('bgp: VIP attributes (MED, prepend, communities) changed');
    }
    if (before.holdTime !== next.holdTime && changes.every((c) => !c.includes('changed (its session restarts)'))) scalar('holdTime', before.holdTime, next.holdTime);
    return { changes, restartRequired };
  }

  /** A reloaded bgp section (already checked); settings that need a restart are kept as they are. */
  setConfig(next: BgpConfig): Promise<void> {
    this.config = { ...next, bird: this.config.bird, runDirectory: this.config.runDirectory };
    return this.apply(true);
  }

  /** Stops polling and BIRD; BIRD's Cease notification withdraws whatever was still announced. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.poller !== undefined) clearInterval(this.poller);
    if (this.retry !== undefined) clearTimeout(this.retry);
    await this.bird.stop();
    this.log.info('bgp: BIRD stopped');
  }

  /** The bgp section the speaker runs. */
  get runningConfig(): BgpConfig {
    return this.config;
  }

  /** The announced addresses now. */
  announcedAddresses(): string[] {
    return [...this.announced];
  }

  status(): BgpStatus {
    const bird = this.bird.status();
    const birdUp = bird.state === 'running';
    return {
      localAs: this.config.localAs,
      routerId: this.config.routerId,
      bird,
      withdrawnBecause: this.held,
      gates: [...this.gates.values()],
      neighbours: this.config.neighbours.map((n): NeighbourStatus => {
        const seen = this.observed.get(n.name);
        const state = !birdUp ? `unknown (BIRD ${bird.state})` : (seen?.state ?? 'unknown (not read yet)');
        return {
          name: n.name,
          address: n.address,
          as: n.as,
          state,
          established: birdUp && seen?.state === 'Established',
          since: (seen?.since ?? new Date()).toISOString(),
          lastError: seen?.lastError ?? null,
          exportedRoutes: birdUp ? (seen?.exported ?? null) : null,
          holdTime: n.holdTime,
          bfd: n.bfd !== undefined,
          bfdState: birdUp && n.bfd !== undefined ? (this.bfdStates.get(n.address) ?? null) : null,
          password: n.password !== undefined,
        };
      }),
      announcements: this.decide().map((d) => ({ prefix: prefixOf(d.address), address: d.address, family: d.address.includes(':') ? 'ipv6' : 'ipv4', announced: this.announced.includes(d.address), reason: d.reason, vips: d.vips })),
      lastApplyError: this.lastApplyError,
    };
  }

  // ---- internals ----

  /** Per VIP address: announce or not, and why. */
  private decide(): Array<{ address: string; announce: boolean; reason: string; vips: VipEligibility[] }> {
    const byAddress = new Map<string, VipEligibility[]>();
    for (const v of this.vips) byAddress.set(v.address, [...(byAddress.get(v.address) ?? []), v]);
    const closed = [...this.gates.values()].filter((g) => !g.ready);
    return [...byAddress].map(([address, vips]) => {
      const servable = vips.filter((v) => v.servable);
      const family: AddressFamily = address.includes(':') ? 'ipv6' : 'ipv4';
      const sessions = this.config.neighbours.filter((n) => n.family === family).length;
      let announce = false;
      let reason: string;
      if (this.held !== null) reason = `withdrawn: ${this.held}`;
      else if (closed.length > 0) reason = `withdrawn: waiting for ${closed.map((g) => `${g.name} (${g.reason})`).join(', ')}`;
      else if (servable.length === 0) reason = `withdrawn: no VIP on this address can be served (${vips.map((v) => `${v.name}: ${v.reason}`).join('; ')})`;
      else {
        announce = true;
        reason = `announced: ${servable.map((v) => `${v.name}: ${v.reason}`).join('; ')}${sessions === 0 ? ` (but no ${family} neighbour carries it)` : ''}`;
      }
      return { address, announce, reason, vips };
    });
  }

  private render(announce: readonly string[]): string {
    return birdConfig({ bgp: this.config, announce });
  }

  private async apply(force = false): Promise<void> {
    if (this.stopped) return;
    const decisions = this.decide();
    const next = decisions.filter((d) => d.announce).map((d) => d.address).sort();
    const before = this.announced;
    if (!force && JSON.stringify(next) === JSON.stringify(before)) return;
    this.announced = next;
    for (const d of decisions) {
      const was = before.includes(d.address);
      if (was !== d.announce) {
        const level = d.announce ? 'info' : 'warn';
        this.log[level]({ prefix: prefixOf(d.address), announced: d.announce, reason: d.reason }, `bgp: ${prefixOf(d.address)} ${d.reason}`);
      }
    }
    for (const address of before) {
      if (!decisions.some((d) => d.address === address)) this.log.info({ prefix: prefixOf(address) }, `bgp: ${prefixOf(address)} withdrawn: no VIP has this address any more`);
    }
    try {
      await this.bird.configure(this.render(next));
      this.lastApplyError = null;
    } catch (e) {
      // BIRD keeps running its previous configuration: say so, and try again shortly.
      this.lastApplyError = message(e);
      this.log.error({ err: message(e) }, `bgp: ${message(e)}; retrying in ${RETRY_MS} ms`);
      if (this.announced === next) this.announced = before;
      if (this.retry === undefined && !this.stopped) {
        this.retry = setTimeout(() => {
          this.retry = undefined;
          void this.apply(true);
        }, RETRY_MS);
        this.retry.unref();
      }
    }
  }

  private async poll(): Promise<void> {
    if (this.polling || this.stopped || this.bird.status().state !== 'running') return;
    this.polling = true;
    try {
      const reply = await this.bird.command('show protocols all', 3000);
      if (!reply.ok) return;
      const protocols = new Map(parseProtocols(reply).map((p): [string, BirdProtocol] => [p.name, p]));
      if (this.config.neighbours.some((n) => n.bfd !== undefined)) {
        const bfd = await this.bird.command('show bfd sessions', 3000);
        this.bfdStates = bfd.ok ? parseBfdSessions(bfd) : new Map();
      }
      for (const n of this.config.neighbours) {
        const p = protocols.get(n.name);
        if (p === undefined) continue;
        const state = p.bgpState ?? (p.state === 'down' ? 'Down' : p.state);
        const lastError = p.lastError ?? null;
        const previous = this.observed.get(n.name);
        const exported = p.routes?.exported ?? (state === 'Established' ? 0 : null);
        if (previous === undefined || previous.state !== state) {
          this.observed.set(n.name, { state, since: new Date(), lastError, exported });
          if (previous !== undefined || state === 'Established') {
            const level = state === 'Established' ? 'info' : previous?.state === 'Established' ? 'warn' : 'info';
            this.log[level](
              { neighbour: n.name, address: n.address, from: previous?.state ?? null, to: state, lastError },
              `bgp: neighbour ${n.name} (${n.address}) ${previous?.state ?? 'new'} -> ${state}${lastError !== null && state !== 'Established' ? `: ${lastError}` : ''}`,
            );
          }
        } else {
          previous.lastError = lastError;
          previous.exported = exported;
        }
      }
    } catch (e) {
      this.log.debug({ err: message(e) }, `bgp: cannot read neighbour states: ${message(e)}`);
    } finally {
      this.polling = false;
    }
  }
}
