// Loading a config file for a command: errors and warnings go to stderr, one per line.
import { loadConfigFile, type ConfigOk, type L4muxConfig } from '../config/index.js';
import type { CommandIo } from './io.js';

/** Loads and validates `file`; prints its errors (or its warnings); undefined when invalid. */
export async function loadAndReport(file: string, io: CommandIo): Promise<ConfigOk | undefined> {
  const result = await loadConfigFile(file);
  if (!result.ok) {
    for (const line of result.errors) io.err(line);
    const n = result.errors.length;
    io.err(`${file}: invalid (${n} ${n === 1 ? 'error' : 'errors'})`);
    return undefined;
  }
  for (const line of result.warnings) io.err(`warning: ${line}`);
  return result;
}

/** "2 VIPs, 7 backends": VIPs, and backend entries over all pools. */
export function describeCounts(config: L4muxConfig): string {
  const vips = config.vips.length;
  const backends = Object.values(config.pools).reduce((n, pool) => n + pool.backends.length, 0);
  return `${vips} ${vips === 1 ? 'VIP' : 'VIPs'}, ${backends} ${backends === 1 ? 'backend' : 'backends'}`;
}
