// BGP: the speaker (src/bgp) as a daemon service. Last in the list, so it announces only once
// everything that serves the VIPs runs, and is stopped first: the VIPs are withdrawn before
// anything else stops. The daemon tells it after every push (pools, reloads) and on drain.
import { BgpSpeaker, vipEligibility, type BgpConfig, type BgpSpeakerOptions, type BgpStatus } from '../../bgp/index.js';
import { errorMessage, StartupError, type Service, type ServiceContext } from '../service.js';

export type BgpReloadPlan = { ok: true; commit: () => Promise<{ changes: string[]; restartRequired: string[] }> } | { ok: false; errors: string[] };

export class BgpService implements Service {
  readonly name = 'bgp';
  private speaker: BgpSpeaker | undefined;
  private ctx: ServiceContext | undefined;
  /** Gates set before the speaker started: applied before its first announcement. */
  private readonly earlyGates = new Map<string, { ready: boolean; reason: string }>();

  constructor(private readonly createBird?: BgpSpeakerOptions['createBird']) {}

  async start(ctx: ServiceContext): Promise<void> {
    this.ctx = ctx;
    const bgp = ctx.config().bgp;
    if (bgp === undefined) return;
    try {
      this.speaker = await BgpSpeaker.start(bgp, { logger: ctx.logger, ...(this.createBird !== undefined && { createBird: this.createBird }) });
    } catch (e) {
      throw new StartupError([`bgp: ${errorMessage(e)}`]);
    }
    for (const [name, gate] of this.earlyGates) await this.speaker.setGate(name, gate.ready, gate.reason);
    await this.refresh();
  }

  /** Re-decides the announcements from what runs and the pools as they are now. */
  async refresh(): Promise<void> {
    const ctx = this.ctx;
    if (this.speaker === undefined || ctx === undefined) return;
    const running = ctx.interfaces.all().filter((s) => s.started).map((s) => s.name);
    const forwarding = running.length > 0 ? { running: true, reason: `forwarding on ${running.join(', ')}` } : { running: false, reason: 'the forwarding engine is not running' };
    await this.speaker.update(vipEligibility(ctx.config(), ctx.pools.status(), forwarding));
  }

  /**
   * A readiness input: nothing is announced while one is not ready. The cluster sets "cluster"
   * (ready once this mux's flow transfer is done).
   */
  setGate(name: string, ready: boolean, reason: string): Promise<void> {
    if (this.speaker === undefined) {
      this.earlyGates.set(name, { ready, reason });
      return Promise.resolve();
    }
    return this.speaker.setGate(name, ready, reason);
  }

  /** Withdraws every VIP for good (drain); returns what was announced. */
  async withdrawAll(reason: string): Promise<string[]> {
    const announced = this.speaker?.announcedAddresses() ?? [];
    await this.speaker?.withdrawAll(reason);
    return announced;
  }

  /** Checks a reloaded config's bgp section with BIRD; commit() applies it after the rest. */
  async planReload(next: BgpConfig | undefined): Promise<BgpReloadPlan> {
    const speaker = this.speaker;
    if (speaker === undefined && next === undefined) return { ok: true, commit: async () => ({ changes: [], restartRequired: [] }) };
    if (speaker === undefined || next === undefined) {
      return { ok: false, errors: [`bgp: ${next !== undefined ? 'adding' : 'removing'} the bgp section needs a restart (l4mux drain, then start l4mux again)`] };
    }
    const problem = await speaker.check(next);
    if (problem !== null) return { ok: false, errors: [`bgp: BIRD refuses the new configuration: ${problem}`] };
    return {
      ok: true,
      commit: async () => {
        const change = BgpSpeaker.describeChange(speaker.runningConfig, next);
        await speaker.setConfig(next);
        return change;
      },
    };
  }

  async stop(): Promise<void> {
    const speaker = this.speaker;
    this.speaker = undefined;
    if (speaker === undefined) return;
    // Withdraw first, while everything still forwards; then BIRD's Cease ends the sessions.
    await speaker.withdrawAll('stopping').catch((e: unknown) => this.ctx?.logger.error({ err: errorMessage(e) }, `bgp: withdrawing failed: ${errorMessage(e)}`));
    await speaker.stop();
  }

  status(): BgpStatus | null {
    return this.speaker?.status() ?? null;
  }
}
