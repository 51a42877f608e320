// The wire codec the channel uses: the addon's (no JavaScript per entry) when it is built
// with one, else the TypeScript reference (wire.ts); both have the same contract and are
// tested against each other.
import { native } from '../dataplane/index.js';
import { jsWireCodec, type WireCodec } from './wire.js';

let chosen: WireCodec | undefined;

export function wireCodec(): WireCodec {
  if (chosen !== undefined) return chosen;
  try {
    const m = native() as unknown as Partial<WireCodec>;
    if (typeof m.encodeWireEntries === 'function' && typeof m.decodeWireEntries === 'function') {
      chosen = { encodeWireEntries: m.encodeWireEntries, decodeWireEntries: m.decodeWireEntries };
    }
  } catch {
    // No addon: the TypeScript codec.
  }
  chosen ??= jsWireCodec;
  return chosen;
}
