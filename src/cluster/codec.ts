// The wire codec the channel uses: the addon's (no JavaScript per entry) when it is built
// with one, else the TypeScript reference (wire.ts); both have the same contract and are
// tested against each other.
import { clusterNative } from './native.js';
import { jsWireCodec, MIN_WIRE_ENTRY_BYTES, type WireCodec } from './wire.js';

let chosen: WireCodec | undefined;

export function wireCodec(): WireCodec {
  if (chosen !== undefined) return chosen;
  const n = clusterNative();
  chosen =
    n === null
      ? jsWireCodec
      : {
          encodeWireEntries: n.encodeWireEntries,
          // The records' buffer comes from JavaScript's pool (cheaper than one made by the addon).
          decodeWireEntries: (payload, start, count) => {
            if (count * MIN_WIRE_ENTRY_BYTES > payload.length - start) return undefined;
            const out = Buffer.allocUnsafe(count * 64);
            return n.decodeWireEntries(payload, start, count, out) ? out : undefined;
          },
        };
  return chosen;
}
