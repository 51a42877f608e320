// Fall-over chains: each backend may name backends of its own pool that take its
// share of new flows while it cannot. The references must resolve within the pool, and the
// graph "backend -> its fall-overs" must have no cycle (the dataplane follows chains).
import { parseAddress } from './addresses.js';
import { issue, type Issue } from './issues.js';
import type { PathSegment } from './path.js';

/** A pool's backends as the semantic checks see them: canonical address (if valid) and raw fall-overs. */
export interface FalloverInput {
  address: string | undefined;
  fallover: unknown;
  /** Path of the backend, e.g. ['pools', 'web', 'backends', 2]. */
  path: PathSegment[];
}

/** Errors of the pool's fall-over lists; the schema already checked they are arrays of strings. */
export function checkFallovers(pool: string, backends: readonly FalloverInput[]): Issue[] {
  const errors: Issue[] = [];
  const index = new Map<string, number>();
  backends.forEach((b, i) => {
    if (b.address !== undefined && !index.has(b.address)) index.set(b.address, i);
  });
  const edges: number[][] = backends.map(() => []);
  backends.forEach((b, i) => {
    if (!Array.isArray(b.fallover)) return;
    const seen = new Set<number>();
    b.fallover.forEach((raw: unknown, f) => {
      if (typeof raw !== 'string') return;
      const at = [...b.path, 'fallover', f];
      const parsed = parseAddress(raw);
      if (!parsed.ok) {
        errors.push(issue(at, parsed.reason));
        return;
      }
      const target = index.get(parsed.address.canonical);
      if (target === undefined) {
        errors.push(issue(at, `${JSON.stringify(raw)} is not a backend of pool ${JSON.stringify(pool)}`));
      } else if (target === i) {
        errors.push(issue(at, `${JSON.stringify(raw)} is this backend itself`));
      } else if (seen.has(target)) {
        errors.push(issue(at, `${JSON.stringify(raw)} is listed twice`));
      } else {
        seen.add(target);
        edges[i]?.push(target);
      }
    });
  });
  for (const cycle of findCycles(edges)) {
    const first = cycle[0] as number;
    const names = [...cycle, first].map((i) => backends[i]?.address ?? `#${i}`);
    errors.push(issue([...(backends[first]?.path ?? []), 'fallover'], `fall-over loop ${names.join(' -> ')}`));
  }
  return errors;
}

/** Each elementary cycle found by a depth-first search, once, starting at its lowest index. */
function findCycles(edges: readonly number[][]): number[][] {
  const cycles: number[][] = [];
  const seen = new Set<string>();
  const state = edges.map(() => 0);  // 0 unvisited, 1 on the stack, 2 done
  const stack: number[] = [];
  const visit = (v: number): void => {
    state[v] = 1;
    stack.push(v);
    for (const w of edges[v] ?? []) {
      if (state[w] === 1) {
        const cycle = stack.slice(stack.indexOf(w));
        const start = cycle.indexOf(Math.min(...cycle));
        const rotated = [...cycle.slice(start), ...cycle.slice(0, start)];
        const key = rotated.join(',');
        if (!seen.has(key)) {
          seen.add(key);
          cycles.push(rotated);
        }
      } else if (state[w] === 0) {
        visit(w);
      }
    }
    stack.pop();
    state[v] = 2;
  };
  edges.forEach((_, v) => {
    if (state[v] === 0) visit(v);
  });
  return cycles;
}
