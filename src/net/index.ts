// Host networking facts for the daemon: interfaces, routes and neighbours (next hop toward the
// backends), receive offloads, and the process's capabilities.
export { CommandError, DISCARD_PORT, localHost, type ExecResult, type NetHost } from './host.js';
export { checkLink, parseLinks, preferredAddress, readLinks, type LinkAddress, type LinkCheck, type LinkInfo } from './links.js';
export { canonicalAddress, parseNeighbours, parseRouteGet, readNeighbours, routeGet, usableMac, type Neighbour, type RouteLookup } from './routes.js';
export {
  NextHopTracker,
  fingerprint,
  resolveNextHop,
  type NextHopRequest,
  type NextHopResolution,
  type NextHopResult,
  type ResolveOptions,
  type ResolvedHop,
  type TrackedInterface,
  type TrackerOptions,
} from './nexthop.js';
export { MANAGED_FEATURES, OffloadManager, parseFeaturesJson, parseFeaturesText, readFeatures, type FeatureState, type OffloadReport } from './offloads.js';
export {
  CAPABILITIES,
  checkCapabilities,
  hasCapability,
  parseProcStatus,
  readProcessPrivileges,
  type CapabilityCheck,
  type CapabilityName,
  type ProcessPrivileges,
} from './capabilities.js';
