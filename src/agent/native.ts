// The addon's `Agent`: the native decapsulation thread (native/agent/agent.h). Loaded through
// the dataplane's addon loader, so L4MUX_ADDON works the same for both.
import { native, type NativeModule } from '../dataplane/index.js';

import type { AgentCounters, NativeAgentOptions } from './types.js';

/** One native agent: start() opens the TUN device, the sink sockets and the packet socket. */
export interface NativeAgent {
  start(): void;
  /** Idempotent. Closes everything: the TUN device disappears with the addresses on it. */
  stop(): void;
  running(): boolean;
  /** Why the packet loop ended by itself (the interface disappeared, ...), or null. */
  error(): string | null;
  tunName(): string;
  counters(): AgentCounters;
}

interface AgentModule {
  Agent?: new (options: NativeAgentOptions) => NativeAgent;
  decapStatuses?: () => string[];
}

function agentModule(): Required<AgentModule> {
  const mod: NativeModule & AgentModule = native();
  if (typeof mod.Agent !== 'function' || typeof mod.decapStatuses !== 'function') {
    throw new Error('the l4mux native addon was built without the agent; rebuild it (npm run build:native)');
  }
  return { Agent: mod.Agent, decapStatuses: mod.decapStatuses };
}

export function createNativeAgent(options: NativeAgentOptions): NativeAgent {
  return new (agentModule().Agent)(options);
}

/** Names of every decapsulation outcome, in the addon's order. */
export function decapStatuses(): string[] {
  return agentModule().decapStatuses();
}
