// Owner and backup of a flow among the live members: the same weighted rendezvous hashing as
// the fast path (native/core/cluster/ownership.cc), for the control plane's transfers when
// membership changes. Slow (BigInt) but only used for entries whose owners may have changed;
// test/cluster/ownership.test.ts checks it against the addon.
const M64 = (1n << 64n) - 1n;
const P0 = 0xa0761d6478bd642fn;
const P1 = 0xe7037ed1a0b428dbn;
const P2 = 0x8ebc6af09c88c6e3n;
const P3 = 0x589965cc75374cc3n;
const FLOW_PURPOSE = 0x4852572d666c6f77n; // "HRW-flow"
const MEMBER_PURPOSE = 0x4852572d6d656d62n; // "HRW-memb"
const KEY_PURPOSE = 0x4852572d706b6579n; // "HRW-pkey": persistence client keys
export const NO_MEMBER = 255;

function mum(a: bigint, b: bigint): bigint {
  const r = (a & M64) * (b & M64);
  return (r ^ (r >> 64n)) & M64;
}

function le64(b: Uint8Array, at: number, n = 8): bigint {
  let v = 0n;
  for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[at + i] ?? 0);
  return v;
}

export function hashBytes(data: Uint8Array, seed: bigint): bigint {
  let h = seed ^ P0;
  let i = 0;
  for (; i + 16 <= data.length; i += 16) h = mum(le64(data, i) ^ P1, le64(data, i + 8) ^ h);
  const rest = data.length - i;
  let a = 0n;
  let b = 0n;
  if (rest > 8) {
    a = le64(data, i);
    b = le64(data, i + 8, rest - 8);
  } else a = le64(data, i, rest);
  h = mum(a ^ P2, b ^ h);
  return mum(h ^ ((BigInt(data.length) * P3) & M64), P1 ^ seed);
}

export function deriveSeed(seed: bigint, purpose: bigint): bigint {
  return mum(seed ^ P2, purpose ^ P3) ^ mum(purpose ^ P0, seed ^ P1);
}

function hashWords(a0: bigint, a1: bigint, b0: bigint, b1: bigint, tail: bigint, seed: bigint): bigint {
  let h = mum(a0 ^ P1, a1 ^ seed ^ P0);
  h = mum(b0 ^ P2, b1 ^ h);
  return mum(tail ^ P3, h ^ seed);
}

/** The fast path's 5-tuple hash of the flow of a 64-byte record at `rec[at]`. */
function flowHash(rec: Buffer, at: number, seed: bigint): bigint {
  const family = rec[at + 2] ?? 0;
  const words = (off: number): [bigint, bigint] => (family === 4 ? [le64(rec, at + off + 12, 4), 0n] : [le64(rec, at + off), le64(rec, at + off + 8)]);
  const [s0, s1] = words(8);
  const [d0, d1] = words(24);
  const tail = (BigInt(family) << 40n) | (BigInt(rec[at + 3] ?? 0) << 32n) | (BigInt(rec.readUInt16BE(at + 58)) << 16n) | BigInt(rec.readUInt16BE(at + 56));
  return hashWords(s0, s1, d0, d1, tail, seed);
}

/**
 * -log2(u) in units of 2^-32 for u = (2 * (d >> 11) + 1) / 2^54: the fast path's integer
 * logarithm (neg_log2_fixed in native/core/cluster/ownership.cc), bit for bit.
 */
export function negLog2Fixed(d: bigint): bigint {
  const x = ((d >> 11n) << 1n) | 1n;
  const ip = BigInt(x.toString(2).length - 1);
  let m = ip >= 31n ? x >> (ip - 31n) : x << (31n - ip);
  let frac = 0n;
  for (let bit = 31n; bit >= 0n; bit--) {
    m = (m * m) >> 31n;
    if (m >= 1n << 32n) {
      m >>= 1n;
      frac |= 1n << bit;
    }
  }
  return (54n << 32n) - ((ip << 32n) | frac);
}

interface Score {
  negLog: bigint;
  weight: bigint;
  draw: bigint;
}

/** a's score weight / -log2(u) beats b's (exact products; the draw breaks ties). */
function beats(a: Score, b: Score): boolean {
  const lhs = a.weight * b.negLog;
  const rhs = b.weight * a.negLog;
  return lhs !== rhs ? lhs > rhs : a.draw > b.draw;
}

export interface OwnershipMember {
  id: string;
  weight: number;
  live: boolean;
}

export interface Owners {
  owner: number;
  backup: number;
}

/** A fixed member list (sorted by id, as DataplaneCluster gives it) and seed. */
export class Ownership {
  private readonly flowSeed: bigint;
  private readonly keySeed: bigint;
  private readonly idHashes: bigint[];
  private readonly equalWeights: boolean;

  constructor(
    seed: bigint,
    readonly members: readonly OwnershipMember[],
  ) {
    this.flowSeed = deriveSeed(seed, FLOW_PURPOSE);
    this.keySeed = deriveSeed(seed, KEY_PURPOSE);
    const memberSeed = deriveSeed(seed, MEMBER_PURPOSE);
    this.idHashes = members.map((m) => hashBytes(Buffer.from(m.id, 'utf8'), memberSeed));
    const weights = new Set(members.filter((m) => m.live).map((m) => m.weight));
    this.equalWeights = weights.size <= 1;
  }

  owners(rec: Buffer, at = 0): Owners {
    return this.ownersOfHash(flowHash(rec, at, this.flowSeed));
  }

  /**
   * Owner and backup of a persistence client key ("<vip>/<client>"): the same weighted
   * rendezvous hashing over the same live members, of the key's bytes (not of a flow), so that
   * every mux sends a client's read-miss-create to the same owner.
   */
  keyOwners(key: string): Owners {
    return this.ownersOfHash(hashBytes(Buffer.from(key, 'utf8'), this.keySeed));
  }

  private ownersOfHash(h: bigint): Owners {
    let owner = NO_MEMBER;
    let backup = NO_MEMBER;
    let best: Score = { negLog: 0n, weight: 0n, draw: 0n };
    let second: Score = best;
    let bestD = 0n;
    let secondD = 0n;
    this.members.forEach((m, i) => {
      if (!m.live) return;
      const id = this.idHashes[i] as bigint;
      const d = mum(h ^ id ^ P1, (id ^ P2) + h) ^ h;
      if (this.equalWeights) {
        if (owner === NO_MEMBER || d > bestD) {
          backup = owner;
          secondD = bestD;
          owner = i;
          bestD = d;
        } else if (backup === NO_MEMBER || d > secondD) {
          backup = i;
          secondD = d;
        }
        return;
      }
      const s: Score = { negLog: negLog2Fixed(d), weight: BigInt(m.weight), draw: d };
      if (owner === NO_MEMBER || beats(s, best)) {
        backup = owner;
        second = best;
        owner = i;
        best = s;
      } else if (backup === NO_MEMBER || beats(s, second)) {
        backup = i;
        second = s;
      }
    });
    return { owner, backup };
  }
}
