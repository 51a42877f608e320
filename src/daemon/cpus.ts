// Which CPUs are online, for checking node.cpus and choosing the default number of workers.
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';

/** Parses a kernel CPU list such as "0-3,8,10-11". */
export function parseCpuList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.trim().split(',')) {
    if (part === '') continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (m === null) throw new Error(`not a CPU list: ${JSON.stringify(text.trim())}`);
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    for (let cpu = first; cpu <= last; cpu++) out.push(cpu);
  }
  return out;
}

/** Writes CPU ids compactly: [0,1,2,5] -> "0-2,5". */
export function formatCpuList(cpus: readonly number[]): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === (sorted[j] ?? 0) + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** The online CPUs (sysfs), or 0..n-1 from the CPUs this process may use when sysfs says nothing. */
export async function onlineCpus(): Promise<number[]> {
  try {
    const cpus = parseCpuList(await readFile('/sys/devices/system/cpu/online', 'utf8'));
    if (cpus.length > 0) return cpus;
  } catch {
    // fall through
  }
  return Array.from({ length: availableParallelism() }, (_, i) => i);
}
