// MAC address syntax (six hex pairs separated by ':' or '-') and canonical form.
export type MacParse = { ok: true; canonical: string; bytes: number[] } | { ok: false; reason: string };

const MAC = /^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$/;

export function parseMac(text: string): MacParse {
  if (!MAC.test(text)) {
    return {
      ok: false,
      reason: `${JSON.stringify(text)} is not a MAC address (expected six hex pairs like 02:00:00:00:00:fe)`,
    };
  }
  const bytes = text.split(/[:-]/).map((pair) => parseInt(pair, 16));
  return { ok: true, canonical: bytes.map((b) => b.toString(16).padStart(2, '0')).join(':'), bytes };
}

/** The group (multicast) bit: set for multicast and broadcast MACs. */
export function isGroupMac(bytes: readonly number[]): boolean {
  return ((bytes[0] ?? 0) & 1) === 1;
}

export function isZeroMac(bytes: readonly number[]): boolean {
  return bytes.every((b) => b === 0);
}
