// What the cluster channel takes from the addon when it has it: the wire-entry codec and the
// AEAD (native/addon/cluster_js.h, aead_binding.h). Without the addon, or with one built
// before them, the channel uses the TypeScript codec and node:crypto: same bytes.
import { native } from '../dataplane/index.js';
import type { WireEncodeResult } from './wire.js';

export interface NativeAead {
  /** Encrypts datagram[24, end) in place under header datagram[0, 24) and writes the tag at end. */
  seal(datagram: Buffer, end: number): void;
  /** true with the payload in out (datagram.length - 40 bytes); false when it does not authenticate. */
  open(datagram: Buffer, out: Buffer): boolean;
}

export interface ClusterNative {
  encodeWireEntries(records: Buffer, from: number, member: number, refresh: boolean, out: Buffer, outStart: number, outEnd: number): WireEncodeResult;
  /** true with count*64 bytes of records in out; false when the entries are malformed. */
  decodeWireEntries(payload: Buffer, start: number, count: number, out: Buffer): boolean;
  Aead?: new (key: Buffer) => NativeAead;
}

let loaded: ClusterNative | null | undefined;

/** The addon's cluster helpers, or null when there is no addon with them. */
export function clusterNative(): ClusterNative | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  try {
    const m = native() as unknown as Partial<ClusterNative>;
    if (typeof m.encodeWireEntries === 'function' && typeof m.decodeWireEntries === 'function') loaded = m as ClusterNative;
  } catch {
    // No addon.
  }
  return loaded;
}
