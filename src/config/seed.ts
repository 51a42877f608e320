// The cluster-wide 64-bit hash seed: a decimal or 0x-hex string.
export type SeedParse = { ok: true; value: bigint; canonical: string } | { ok: false; reason: string };

const MAX_U64 = (1n << 64n) - 1n;

export function parseSeed(text: string): SeedParse {
  if (!/^(0[xX][0-9a-fA-F]+|[0-9]+)$/.test(text)) {
    return {
      ok: false,
      reason: `${JSON.stringify(text)} is not a 64-bit number (expected decimal digits, or 0x and hex digits like "0x5eed0000cafef00d")`,
    };
  }
  const value = BigInt(text);
  if (value > MAX_U64) {
    return { ok: false, reason: `${JSON.stringify(text)} does not fit in 64 bits (the largest seed is 0xffffffffffffffff)` };
  }
  return { ok: true, value, canonical: formatSeed(value) };
}

/** 0x followed by 16 lowercase hex digits. */
export function formatSeed(value: bigint): string {
  return `0x${value.toString(16).padStart(16, '0')}`;
}
