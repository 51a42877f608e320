// Network namespaces for tests (root only): a mux namespace and a router namespace joined by a
// veth pair, and a NetHost that runs everything inside the mux namespace. Nothing is changed in
// the root namespace; destroy() deletes both namespaces (and with them the veth pair).
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

import type { ExecResult, NetHost } from '../../src/net/host.js';

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Whether namespaces can be made here (root, iproute2 with netns support). */
export function canUseNetns(): boolean {
  if (!isRoot) return false;
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

export interface Lab {
  mux: string;
  router: string;
  /** Mux side of the veth pair, in `mux`. */
  muxIf: string;
  muxMac: string;
  routerMac: string;
  muxV4: string;
  routerV4: string;
  muxV6: string;
  routerV6: string;
  /** Backends are routed via the router: 10.201.0.0/16 and fd21::/32. */
  backendV4: (n: number) => string;
  backendV6: (n: number) => string;
  mtu: number;
  host: NetHost;
  /** `ip ...` inside a namespace. */
  ip(ns: string, ...args: string[]): string;
  /** Any command inside a namespace. */
  exec(ns: string, file: string, ...args: string[]): string;
  destroy(): void;
}

function sh(file: string, args: string[], input?: string): string {
  return execFileSync(file, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], ...(input !== undefined && { input }) });
}

/** Builds the lab; on any failure it removes what it made and rethrows. */
export function createLab(tag: string): Lab {
  const id = `${tag}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const mux = `l4mux-${id}-m`;
  const router = `l4mux-${id}-r`;
  const lab: Lab = {
    mux,
    router,
    muxIf: 'm0',
    muxMac: '02:00:00:00:20:02',
    routerMac: '02:00:00:00:20:01',
    muxV4: '10.200.0.2',
    routerV4: '10.200.0.1',
    muxV6: 'fd20::2',
    routerV6: 'fd20::1',
    backendV4: (n) => `10.201.0.${n}`,
    backendV6: (n) => `fd21::${n.toString(16)}`,
    mtu: 1400,
    host: namespaceHost(mux),
    ip: (ns, ...args) => sh('ip', ['-n', ns, ...args]),
    exec: (ns, file, ...args) => sh('ip', ['netns', 'exec', ns, file, ...args]),
    destroy: () => {
      for (const ns of [mux, router]) {
        try {
          execFileSync('ip', ['netns', 'del', ns], { stdio: 'pipe' });
        } catch {
          // not created
        }
      }
    },
  };
  try {
    sh('ip', ['netns', 'add', mux]);
    sh('ip', ['netns', 'add', router]);
    sh('ip', ['link', 'add', 'm0', 'netns', mux, 'address', lab.muxMac, 'mtu', String(lab.mtu), 'type', 'veth', 'peer', 'name', 'r0', 'netns', router, 'address', lab.routerMac, 'mtu', String(lab.mtu)]);
    for (const [ns, dev, v4, v6] of [
      [mux, 'm0', lab.muxV4, lab.muxV6],
      [router, 'r0', lab.routerV4, lab.routerV6],
    ] as const) {
      lab.ip(ns, 'link', 'set', 'lo', 'up');
      lab.ip(ns, 'addr', 'add', `${v4}/24`, 'dev', dev);
      lab.ip(ns, 'addr', 'add', `${v6}/64`, 'dev', dev, 'nodad');
      lab.ip(ns, 'link', 'set', dev, 'up');
    }
    lab.ip(mux, 'route', 'add', '10.201.0.0/16', 'via', lab.routerV4);
    lab.ip(mux, '-6', 'route', 'add', 'fd21::/32', 'via', lab.routerV6);
  } catch (e) {
    lab.destroy();
    throw e;
  }
  return lab;
}

const PROBE_SCRIPT = `
const dgram = require('node:dgram');
const [target, source] = process.argv.slice(1);
const s = dgram.createSocket(target.includes(':') ? 'udp6' : 'udp4');
s.on('error', () => process.exit(0));
s.bind(source ? { address: source, port: 0 } : { port: 0 }, () => s.send(Buffer.alloc(0), 9, target, () => s.close()));
`;

/** A NetHost whose commands and probes run inside network namespace `ns`. */
export function namespaceHost(ns: string): NetHost {
  const inNs = (file: string, args: readonly string[], input?: string): Promise<ExecResult> =>
    new Promise((resolve) => {
      const child = execFile('ip', ['netns', 'exec', ns, file, ...args], { encoding: 'utf8' }, (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof (error as NodeJS.ErrnoException).code === 'number' ? Number((error as NodeJS.ErrnoException).code) : 1;
        resolve({ code, stdout, stderr });
      });
      if (input !== undefined) child.stdin?.end(input);
    });
  return {
    run: (file, args, input) => inNs(file, args, input),
    sysctl: async (name) => {
      const result = await inNs('cat', [`/proc/sys/${name.replace(/\./g, '/')}`]);
      return result.code === 0 ? result.stdout.trim() : undefined;
    },
    probe: async (target, source) => {
      await inNs(process.execPath, ['-e', PROBE_SCRIPT, target, ...(source !== undefined ? [source] : [])]);
    },
  };
}
