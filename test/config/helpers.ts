// Shared by the config tests: a small valid config to mutate, and fixture paths.
import { fileURLToPath } from 'node:url';

import { parseConfig, type ConfigResult } from '../../src/config/index.js';

export const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** A JSON-shaped value that tests may freely mutate. */
export type Json = { [key: string]: any };

/** One VIP on one IPv4 backend: valid, without warnings. */
export function baseConfig(): Json {
  return {
    version: 1,
    node: { seed: '0x1', gatewayMac: '02:00:00:00:00:fe', outerSource: { ipv4: '10.0.0.1' } },
    pools: { web: { backends: [{ address: '10.1.0.1' }] } },
    vips: [{ address: '192.0.2.10', protocol: 'tcp', port: 80, pool: 'web' }],
  };
}

/** Validates `base` after `mutate` has changed it. */
export function check(mutate: (config: Json) => void, base: Json = baseConfig()): ConfigResult {
  mutate(base);
  return parseConfig(JSON.stringify(base, null, 2), 'test.json');
}

export function errorsOf(result: ConfigResult): string[] {
  return result.ok ? [] : result.errors;
}
