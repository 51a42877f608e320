// A stand-in for an engine's persistence API with the fast path's behaviour in miniature: a
// table of entries with deadlines, punts the test injects, answers and touches it records.
import type { PersistenceApi, PersistEntry, Punt } from '../../src/dataplane/engine.js';

export class FakeTable implements PersistenceApi {
  readonly table = new Map<string, { backend: string; expiresAt: number }>();
  readonly answers: Array<{ worker: number; slot: number; ticket: number; backend?: string }> = [];
  readonly accepting = new Set<string>();
  private punts: Punt[] = [];
  private touches: Array<{ vip: string; client: string }> = [];
  private handler: (() => void) | undefined;
  private ticket = 1;

  constructor(backends: string[]) {
    for (const b of backends) this.accepting.add(b);
  }

  /** A worker punts a client's first packet (the scheduler proposed `proposed`). */
  punt(vip: string, client: string, proposed: string): number {
    const hit = this.table.get(`${vip}/${client}`);
    const recorded = hit !== undefined && hit.expiresAt > Date.now() ? hit.backend : undefined;
    const ticket = this.ticket++;
    this.punts.push({ worker: 0, slot: ticket % 1024, ticket, vip, client, proposed, ...(recorded !== undefined && { recorded }), ageUs: 0 });
    this.handler?.();
    return ticket;
  }

  touch(vip: string, client: string): void {
    this.touches.push({ vip, client });
  }

  answerFor(ticket: number): string | undefined {
    return this.answers.find((a) => a.ticket === ticket)?.backend;
  }

  onPunt(handler: () => void): void {
    this.handler = handler;
  }
  drain(max?: number): { punts: Punt[]; touches: Array<{ vip: string; client: string }> } {
    const punts = max === 0 ? [] : this.punts;
    if (max !== 0) this.punts = [];
    const touches = this.touches;
    this.touches = [];
    return { punts, touches };
  }
  answer(answers: ReadonlyArray<{ worker: number; slot: number; ticket: number; backend?: string }>): number {
    this.answers.push(...answers);
    return answers.length;
  }
  install(entries: ReadonlyArray<{ vip: string; client: string; backend: string; ttlMs: number }>): { installed: number; evicted: Array<{ vip: string; client: string }> } {
    for (const e of entries) this.table.set(`${e.vip}/${e.client}`, { backend: e.backend, expiresAt: Date.now() + e.ttlMs });
    return { installed: entries.length, evicted: [] };
  }
  refresh(entries: ReadonlyArray<{ vip: string; client: string; ttlMs: number }>): number {
    let n = 0;
    for (const e of entries) {
      const t = this.table.get(`${e.vip}/${e.client}`);
      if (t !== undefined) {
        t.expiresAt = Date.now() + e.ttlMs;
        n++;
      }
    }
    return n;
  }
  remove(entries: ReadonlyArray<{ vip: string; client: string; backend?: string }>): number {
    let n = 0;
    for (const e of entries) {
      const key = `${e.vip}/${e.client}`;
      const t = this.table.get(key);
      if (t !== undefined && (e.backend === undefined || t.backend === e.backend)) n += this.table.delete(key) ? 1 : 0;
    }
    return n;
  }
  expire(): Array<{ vip: string; client: string }> {
    const out: Array<{ vip: string; client: string }> = [];
    for (const [k, t] of this.table) {
      if (t.expiresAt <= Date.now()) {
        this.table.delete(k);
        const i = k.indexOf('/');
        out.push({ vip: k.slice(0, i), client: k.slice(i + 1) });
      }
    }
    return out;
  }
  lookup(vip: string, client: string): PersistEntry | null {
    const t = this.table.get(`${vip}/${client}`);
    return t !== undefined ? { vip, client, backend: t.backend, expiresInMs: t.expiresAt - Date.now() } : null;
  }
  entries(): PersistEntry[] {
    return [...this.table].map(([k, t]) => ({ vip: k.slice(0, k.indexOf('/')), client: k.slice(k.indexOf('/') + 1), backend: t.backend, expiresInMs: t.expiresAt - Date.now() }));
  }
  accepts(_vip: string, backend: string): boolean {
    return this.accepting.has(backend);
  }
  stats(): ReturnType<PersistenceApi['stats']> {
    const zero = { capacity: 0, bytes: 0, entries: this.table.size, installs: 0, evictions: 0, expired: 0, held: 0, hits: 0, misses: 0, repicks: 0, punted: 0, puntOverflow: 0, puntTooLarge: 0, puntExpired: 0, released: 0, releaseRefused: 0, releaseUnsent: 0, touches: 0, touchesDropped: 0 };
    return { ...zero, workers: [] };
  }
  arm(): number {
    return this.punts.length;
  }
}
