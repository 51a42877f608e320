// Receive-side bookkeeping of a stream: the replay window over datagram sequence numbers
// (IPsec-style: the highest seen and a bitmap of the 1024 below it), and the reliable-message
// tracker that finds what was lost (to ask for it again) and what can be acknowledged.

export type WindowVerdict = 'new' | 'replayed' | 'stale';

export class ReplayWindow {
  private highest = 0n;
  private readonly bits: Uint32Array;

  constructor(readonly size = 1024) {
    if (size % 32 !== 0 || size <= 0) throw new RangeError('window size: a positive multiple of 32');
    this.bits = new Uint32Array(size / 32);
  }

  /** Whether `seq` may be accepted; changes nothing (call accept once it authenticated). */
  check(seq: bigint): WindowVerdict {
    if (seq === 0n) return 'stale';
    if (seq > this.highest) return 'new';
    const age = this.highest - seq;
    if (age >= BigInt(this.size)) return 'stale';
    return this.has(seq) ? 'replayed' : 'new';
  }

  accept(seq: bigint): void {
    if (seq > this.highest) {
      const shift = seq - this.highest;
      if (shift >= BigInt(this.size)) this.bits.fill(0);
      else for (let s = this.highest + 1n; s <= seq; s++) this.clear(s);
      this.highest = seq;
    }
    const i = Number(seq % BigInt(this.size));
    this.bits[i >>> 5] = (this.bits[i >>> 5] ?? 0) | (1 << (i & 31));
  }

  private has(seq: bigint): boolean {
    const i = Number(seq % BigInt(this.size));
    return ((this.bits[i >>> 5] ?? 0) & (1 << (i & 31))) !== 0;
  }

  private clear(seq: bigint): void {
    const i = Number(seq % BigInt(this.size));
    this.bits[i >>> 5] = (this.bits[i >>> 5] ?? 0) & ~(1 << (i & 31));
  }
}

/**
 * Reliable messages (numbered 1, 2, ... by the sender) received so far: everything up to
 * `contiguous`, and a bounded set above it. The sender's heartbeats say how far it has sent,
 * so a lost last message is found too.
 */
export class ReliableReceiver {
  contiguous = 0n;
  /** The highest number the sender said it sent (heartbeats) or that arrived. */
  announced = 0n;
  private readonly above = new Set<bigint>();

  constructor(private readonly maxAbove = 8192) {}

  /** false: already had it (a retransmission), or too far ahead to track (asked again later). */
  receive(rseq: bigint): boolean {
    if (rseq > this.announced) this.announced = rseq;
    if (rseq <= this.contiguous || this.above.has(rseq)) return false;
    if (rseq !== this.contiguous + 1n && this.above.size >= this.maxAbove) return false;
    this.above.add(rseq);
    while (this.above.delete(this.contiguous + 1n)) this.contiguous++;
    return true;
  }

  announce(lastSent: bigint): void {
    if (lastSent > this.announced) this.announced = lastSent;
  }

  /** Missing numbers as inclusive ranges, lowest first, at most `limit` ranges. */
  missing(limit = 64): Array<[bigint, bigint]> {
    const out: Array<[bigint, bigint]> = [];
    let cursor = this.contiguous + 1n;
    for (const s of [...this.above].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0))) {
      if (out.length >= limit) return out;
      if (s > cursor) out.push([cursor, s - 1n]);
      cursor = s + 1n;
    }
    if (cursor <= this.announced && out.length < limit) out.push([cursor, this.announced]);
    return out;
  }

  /** The sender cannot repair below `rseq`: start over there. */
  restartAt(rseq: bigint): void {
    if (rseq - 1n > this.contiguous) this.contiguous = rseq - 1n;
    for (const s of this.above) if (s <= this.contiguous) this.above.delete(s);
    while (this.above.delete(this.contiguous + 1n)) this.contiguous++;
    if (this.announced < this.contiguous) this.announced = this.contiguous;
  }
}
