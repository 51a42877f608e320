// The cluster key: a shared secret read from `cluster.keyFile`, and the channel keys derived
// from it. Every direction of every sender's run gets its own ChaCha20-Poly1305 key
// (HKDF-SHA256 over the secret, salted with the sender's boot id, naming sender and receiver),
// so a sequence number never repeats under one key even across restarts, and a datagram made
// for one peer does not authenticate at another.
import { createHash, hkdfSync } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';

export const MIN_KEY_BYTES = 32;
export const MAX_KEY_BYTES = 4096;
const LABEL = 'l4mux cluster channel v1';

export interface KeyFileResult {
  ok: boolean;
  secret?: Buffer;
  /** Why the file cannot be used. */
  error?: string;
  /** A usable file that should be protected better. */
  warning?: string;
}

/** Reads and checks the key file: at least 32 bytes (trailing newline not counted). */
export async function readKeyFile(path: string): Promise<KeyFileResult> {
  let data: Buffer;
  let mode: number;
  try {
    [data, mode] = await Promise.all([readFile(path), stat(path).then((s) => s.mode)]);
  } catch (e) {
    const code = typeof e === 'object' && e !== null && 'code' in e ? String(e.code) : '';
    return { ok: false, error: `cluster.keyFile: cannot read ${path} (${code === 'ENOENT' ? 'no such file' : code || String(e)})` };
  }
  let end = data.length;
  while (end > 0 && (data[end - 1] === 0x0a || data[end - 1] === 0x0d)) end--;
  const secret = data.subarray(0, end);
  if (secret.length < MIN_KEY_BYTES) {
    return { ok: false, error: `cluster.keyFile: ${path} holds ${secret.length} bytes; the cluster key needs at least ${MIN_KEY_BYTES} (e.g. head -c 32 /dev/urandom > ${path})` };
  }
  if (secret.length > MAX_KEY_BYTES) return { ok: false, error: `cluster.keyFile: ${path} holds ${secret.length} bytes, more than ${MAX_KEY_BYTES}` };
  const warning = (mode & 0o077) !== 0 ? `cluster.keyFile: ${path} is readable by others than its owner (mode ${(mode & 0o777).toString(8)}); chmod 600 it` : undefined;
  return { ok: true, secret: Buffer.from(secret), ...(warning !== undefined && { warning }) };
}

/** The key of the stream sender -> receiver during the sender's run `bootId`. */
export function channelKey(secret: Buffer, bootId: bigint, sender: string, receiver: string): Buffer {
  const salt = Buffer.alloc(8);
  salt.writeBigUInt64BE(bootId);
  return Buffer.from(hkdfSync('sha256', secret, salt, `${LABEL}\0${sender}\0${receiver}`, 32));
}

/** Identifies the key without revealing it (status, logs): first 8 hex digits of its SHA-256. */
export function keyFingerprint(secret: Buffer): string {
  return createHash('sha256').update(LABEL).update(secret).digest('hex').slice(0, 8);
}

/** The 32-bit tag a member's datagrams carry: the first 4 bytes of SHA-256 of its id. */
export function memberTag(id: string): number {
  return createHash('sha256').update(`l4mux member\0${id}`).digest().readUInt32BE(0);
}
