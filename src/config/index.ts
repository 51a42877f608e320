// Configuration of l4mux: the JSON VIP map (version 1), its validation and normalization,
// and its conversion to what the dataplane is given.
export { loadConfigFile, loadConfigFileWithDigest, parseConfig, validateConfig } from './load.js';
export { conntrackSettings, toDataplaneConfig, PROTOCOL_NUMBERS, type LinkFacts } from './dataplane.js';
export { SCHEMA_PATH } from './schema.js';
export {
  CONFIG_VERSION,
  DEFAULT_ENCAPSULATION,
  DEFAULT_GATEWAY_MAC,
  DEFAULT_GUE_PORT,
  DEFAULT_IO,
  DEFAULT_MANAGE_OFFLOADS,
  DEFAULT_XDP_MODE,
  MAX_WORKERS,
  DEFAULT_HASH_FIELDS,
  DEFAULT_ICMP_ECHO,
  DEFAULT_SOURCE_MAC,
  DEFAULT_TABLE_SIZE,
  DEFAULT_WEIGHT,
  MAX_TABLE_SIZE,
  MIN_TABLE_SIZE,
  defaultConntrackConfig,
} from './defaults.js';
export type {
  AddressFamily,
  BackendConfig,
  ConfigError,
  ConfigOk,
  ConfigResult,
  ConntrackConfig,
  ConntrackTimeouts,
  Encapsulation,
  HashFields,
  IoChoice,
  L4muxConfig,
  L4muxConfigInput,
  NodeConfig,
  OuterSource,
  PoolConfig,
  Protocol,
  VipConfig,
  XdpModeChoice,
} from './types.js';
export { interfaceNameProblem } from './semantic.js';
export type { ConntrackSettings, DataplaneConfig } from '../dataplane/types.js';
