// How src/net reaches the host: by running iproute2 and ethtool (their JSON output is a stable
// interface, and they work wherever the daemon runs, containers and namespaces included) and by
// sending a probe datagram. Everything goes through a NetHost so that callers can point it
// elsewhere (another network namespace, a recording, a fake).
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFile } from 'node:fs/promises';

export interface ExecResult {
  /** Exit status (0 = success). */
  code: number;
  stdout: string;
  stderr: string;
}

export interface NetHost {
  /**
   * Runs a program (ip, ethtool) with arguments and optional standard input. Resolves with its
   * exit status and output whatever the status; rejects only when it cannot be run at all.
   */
  run(file: string, args: readonly string[], input?: string): Promise<ExecResult>;
  /**
   * Sends one UDP datagram to the discard port (9) of `target`, from `source` (an address of
   * `ifname`) when given, so that the kernel resolves the link-layer address of `target`.
   * Never rejects: a probe that cannot be sent is the same as one nobody answered.
   */
  probe(target: string, source: string | undefined, ifname: string): Promise<void>;
  /** A sysctl of the network namespace ("net.ipv4.ip_forward"), trimmed; undefined when unreadable. */
  sysctl(name: string): Promise<string | undefined>;
}

export class CommandError extends Error {
  constructor(
    readonly command: string,
    message: string,
  ) {
    super(message);
  }
}

const COMMAND_TIMEOUT_MS = 10_000;
export const DISCARD_PORT = 9;

/** The host this process runs on (its network namespace). */
export const localHost: NetHost = {
  run(file, args, input) {
    return new Promise((resolve, reject) => {
      const child = execFile(
        file,
        [...args],
        { timeout: COMMAND_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } },
        (error, stdout, stderr) => {
          if (error === null) {
            resolve({ code: 0, stdout, stderr });
            return;
          }
          const code = (error as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') {
            reject(new CommandError(file, `${file}: not found (install ${file === 'ip' ? 'iproute2' : file})`));
          } else if (code === 'EACCES') {
            reject(new CommandError(file, `${file}: permission denied`));
          } else if (typeof code === 'number') {
            resolve({ code, stdout, stderr });
          } else if (error.killed) {
            reject(new CommandError(file, `${file} ${args.join(' ')}: no answer within ${COMMAND_TIMEOUT_MS / 1000} s`));
          } else {
            resolve({ code: 1, stdout, stderr: stderr || error.message });
          }
        },
      );
      if (input !== undefined) child.stdin?.end(input);
    });
  },

  async sysctl(name) {
    try {
      return (await readFile(`/proc/sys/${name.replace(/\./g, '/')}`, 'utf8')).trim();
    } catch {
      return undefined;
    }
  },

  probe(target, source, ifname) {
    return new Promise((resolve) => {
      const ipv6 = target.includes(':');
      const socket = createSocket(ipv6 ? 'udp6' : 'udp4');
      const done = (): void => {
        try {
          socket.close();
        } catch {
          // already closed
        }
        resolve();
      };
      socket.on('error', done);
      // A link-local IPv6 next hop is only meaningful with its interface.
      const destination = ipv6 && /^fe[89ab]/i.test(target) ? `${target}%${ifname}` : target;
      const bound = source !== undefined && !(ipv6 && /^fe[89ab]/i.test(source)) ? { address: source, port: 0 } : { port: 0 };
      socket.bind(bound, () => {
        socket.send(Buffer.alloc(0), DISCARD_PORT, destination, done);
      });
    });
  },
};

/** `stderr` of a failed command, on one line, for a message. */
export function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, '; ');
}
