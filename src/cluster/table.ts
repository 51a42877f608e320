// The entries this mux knows for the cluster: its own flows (polled from its engines) and the
// ones peers sent it as owner or backup. What a membership change transfers, and what a
// peer that restarted or lost batches gets again, comes from here. Bounded: beyond
// `maxEntries` the oldest entry goes (counted); expired entries are swept.
import { FLOW_RECORD_SIZE } from './record.js';

export interface TableEntry {
  record: Buffer;
  expiresAt: number;
  /** Polled from this mux's engines (not received from a peer). */
  local: boolean;
}

const KIND_END = 2;

/** The flow's identity in a record: family, protocol, addresses and ports. */
export function flowKeyOf(rec: Buffer, at = 0): string {
  return rec.toString('latin1', at + 2, at + 4) + rec.toString('latin1', at + 8, at + 40) + rec.toString('latin1', at + 56, at + 60);
}

export class EntryTable {
  private readonly entries = new Map<string, TableEntry>();
  evicted = 0;
  expired = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Applies the record at `rec[at]`: an end removes, anything else sets or refreshes. */
  apply(rec: Buffer, at: number, local: boolean): void {
    const key = flowKeyOf(rec, at);
    if (rec[at + 1] === KIND_END) {
      this.entries.delete(key);
      return;
    }
    const expiresAt = this.now() + rec.readUInt32BE(at + 60) * 1000;
    const old = this.entries.get(key);
    if (old !== undefined) {
      // A refresh of an entry keeps its backend; a new/teach record may change it.
      if (rec[at + 1] !== 3) rec.copy(old.record, 0, at, at + FLOW_RECORD_SIZE);
      old.expiresAt = expiresAt;
      old.local ||= local;
      return;
    }
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
      this.evicted++;
    }
    const record = Buffer.allocUnsafe(FLOW_RECORD_SIZE);
    rec.copy(record, 0, at, at + FLOW_RECORD_SIZE);
    // Stored as an ordinary entry: what it is sent as later is decided then.
    record[1] = 1;
    record[7] = 255;
    this.entries.set(key, { record, expiresAt, local });
  }

  /** Every live entry, with its remaining lifetime written into its record. */
  *live(): Generator<TableEntry> {
    const now = this.now();
    for (const e of this.entries.values()) {
      if (e.expiresAt <= now) continue;
      e.record.writeUInt32BE(Math.max(1, Math.ceil((e.expiresAt - now) / 1000)), 60);
      yield e;
    }
  }

  /** Removes up to `limit` expired entries. */
  sweep(limit = 100_000): void {
    const now = this.now();
    let n = 0;
    for (const [key, e] of this.entries) {
      if (n >= limit) break;
      if (e.expiresAt <= now) {
        this.entries.delete(key);
        this.expired++;
        n++;
      }
    }
  }
}
