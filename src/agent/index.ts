// The backend agent: decapsulates the mux's tunnels into a TUN device (native), configures
// the VIPs around it, and undoes that on stop.
export { createNativeAgent, decapStatuses, type NativeAgent } from './native.js';
export { configureBackend, unconfigure, type UndoStep } from './netconfig.js';
export { defaultMuxSources, parsePrefix, type DefaultSources, type PrefixParse } from './mux-sources.js';
export { DEFAULT_GUE_PORT, DEFAULT_TUN, parseAgentOptions, type AgentOptionInput, type ParseResult } from './options.js';
export { nativeOptions, processStopSignal, realAgentDeps, runAgent, summarizeCounters, type AgentDeps, type AgentIo, type StopSignal } from './run.js';
export { realSystem, type SystemOps } from './system.js';
export type { AgentAddresses, AgentCounters, AgentSettings, NativeAgentOptions } from './types.js';
