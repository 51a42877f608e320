// An estimate of the memory a configuration needs on this mux, checked against a budget at
// validation: a map that validates must also fit (4096 VIPs with 1M-entry Maglev tables
// validated, then needed about 16 GB).
import { availableParallelism } from 'node:os';

import { AF_XDP_FRAME_COUNT, AF_XDP_FRAME_SIZE } from './defaults.js';
import { issue, type Issue } from './issues.js';
import type { L4muxConfig } from './types.js';

export const DEFAULT_MEMORY_BUDGET_MIB = 8192;

const MIB = 1024 * 1024;
// Per Maglev table entry: the table (4 bytes), twice while a new snapshot replaces the old one.
const TABLE_ENTRY_BYTES = 4 * 2;
// Per connection-table entry: a 64-byte line, plus its share of the bucket's tag line (1/8).
const FLOW_ENTRY_BYTES = 72;
// AF_XDP UMEM per worker.
const UMEM_BYTES = AF_XDP_FRAME_COUNT * AF_XDP_FRAME_SIZE;
// Per persistence table entry (shared by an engine's workers): one 64-byte line.
export const PERSIST_ENTRY_BYTES = 64;
// Per punt slot (a held first packet): the frame and its descriptor.
export const PUNT_SLOT_BYTES = 2048 + 64;
// Per VIP beyond its table: members, order lists, the wrr sequence (at most 2^16 entries).
const VIP_OVERHEAD_BYTES = 64 * 1024;

export interface MemoryEstimate {
  maglevBytes: number;
  conntrackBytes: number;
  umemBytes: number;
  persistenceBytes: number;
  totalBytes: number;
  workers: number;
}

export function estimateMemory(config: L4muxConfig): MemoryEstimate {
  const { node } = config;
  // As the daemon resolves them; validate may run elsewhere, so this is the local view.
  const workers = node.workers ?? node.cpus?.length ?? Math.min(64, availableParallelism());
  const interfaces = Math.max(1, node.interfaces.length);
  const engines = workers * interfaces;
  const maglevBytes = config.vips.reduce((sum, v) => sum + v.tableSize * TABLE_ENTRY_BYTES + VIP_OVERHEAD_BYTES, 0);
  const conntrackBytes = engines * node.conntrack.maxFlows * FLOW_ENTRY_BYTES;
  const umemBytes = node.io === 'af_packet' ? 0 : engines * UMEM_BYTES;
  // One persistence table per interface's engine, punt slots per worker; none without a persistent VIP.
  const p = config.persistence;
  const persistent = config.vips.some((v) => v.persistence !== undefined);
  const persistenceBytes = p === undefined || !persistent ? 0 : interfaces * p.tableEntries * PERSIST_ENTRY_BYTES + engines * p.puntSlots * PUNT_SLOT_BYTES;
  return { maglevBytes, conntrackBytes, umemBytes, persistenceBytes, totalBytes: maglevBytes + conntrackBytes + umemBytes + persistenceBytes, workers };
}

const mib = (bytes: number): string => `${Math.ceil(bytes / MIB)} MiB`;

/** An issue when the estimate exceeds node.memoryBudgetMiB (or the default). */
export function checkMemoryBudget(config: L4muxConfig): Issue | undefined {
  const budget = (config.node.memoryBudgetMiB ?? DEFAULT_MEMORY_BUDGET_MIB) * MIB;
  const e = estimateMemory(config);
  if (e.totalBytes <= budget) return undefined;
  const largest = config.vips.reduce((max, v) => Math.max(max, v.tableSize), 0);
  return issue(
    config.node.memoryBudgetMiB !== undefined ? ['node', 'memoryBudgetMiB'] : ['vips'],
    `this configuration needs about ${mib(e.totalBytes)} (Maglev tables ${mib(e.maglevBytes)} for ${config.vips.length} VIPs, largest tableSize ${largest}; ` +
      `connection tables ${mib(e.conntrackBytes)} for ${e.workers} workers x ${config.node.interfaces.length} interfaces; AF_XDP buffers ${mib(e.umemBytes)}` +
      `${e.persistenceBytes > 0 ? `; persistence tables and punt slots ${mib(e.persistenceBytes)} (persistence.tableEntries, persistence.puntSlots)` : ''}), ` +
      `more than the budget of ${mib(budget)}: use smaller tableSize values or fewer VIPs, or raise node.memoryBudgetMiB`,
  );
}
