// BIRD's control socket, as birdc uses it: a unix stream socket, a greeting, then one reply per
// command line. Reply lines carry a four-digit code: "NNNN-text" continues a reply, "NNNN text"
// ends it, " text" continues the previous line's code. Codes 0xxx are success, 8xxx runtime
// errors, 9xxx errors in the command itself.
import { createConnection } from 'node:net';

export interface BirdLine {
  code: number;
  text: string;
}

export interface BirdReply {
  /** Code of the final line. */
  code: number;
  ok: boolean;
  lines: BirdLine[];
}

export class BirdControlError extends Error {}

/**
 * Splits socket text into reply lines. Returns the complete lines, whether the last of them
 * ended a reply, and the unconsumed rest.
 */
export function parseReplyLines(text: string, previousCode = 0): { lines: BirdLine[]; final: boolean; rest: string } {
  const lines: BirdLine[] = [];
  let final = false;
  let code = previousCode;
  let start = 0;
  for (;;) {
    const newline = text.indexOf('\n', start);
    if (newline < 0) break;
    const line = text.slice(start, newline);
    start = newline + 1;
    const m = /^(\d{4})([- ])(.*)$/.exec(line);
    if (m !== null) {
      code = Number(m[1]);
      lines.push({ code, text: m[3] ?? '' });
      if (m[2] === ' ') {
        final = true;
        break;
      }
    } else {
      // A continuation line (" text"), or something unexpected: keep it under the last code.
      lines.push({ code, text: line.startsWith(' ') ? line.slice(1) : line });
    }
  }
  return { lines, final, rest: text.slice(start) };
}

/** Sends one command; resolves with its reply (also an error reply), rejects if BIRD does not answer. */
export function birdCommand(socketPath: string, command: string, timeoutMs = 5000): Promise<BirdReply> {
  if (command.includes('\n')) return Promise.reject(new BirdControlError('a BIRD command is one line'));
  return new Promise((resolve, reject) => {
    const socket = createConnection(socketPath);
    socket.setEncoding('utf8');
    let buffer = '';
    let greeted = false;
    let lastCode = 0;
    const lines: BirdLine[] = [];
    const finish = (error: Error | undefined, reply?: BirdReply): void => {
      clearTimeout(timer);
      socket.destroy();
      if (error !== undefined) reject(error);
      else resolve(reply as BirdReply);
    };
    const timer = setTimeout(() => finish(new BirdControlError(`BIRD did not answer "${command}" within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      for (;;) {
        const parsed = parseReplyLines(buffer, lastCode);
        buffer = parsed.rest;
        if (parsed.lines.length > 0) lastCode = (parsed.lines[parsed.lines.length - 1] as BirdLine).code;
        if (!greeted) {
          // The greeting's lines are dropped; the command goes out once it is complete.
          if (!parsed.final) return;
          greeted = true;
          lastCode = 0;
          socket.write(`${command}\n`);
          continue;
        }
        lines.push(...parsed.lines);
        if (parsed.final) {
          const code = lastCode;
          finish(undefined, { code, ok: code < 8000, lines });
        }
        return;
      }
    });
    socket.once('error', (e: NodeJS.ErrnoException) => finish(new BirdControlError(`BIRD control socket ${socketPath}: ${e.code ?? e.message}`)));
    socket.once('close', () => finish(new BirdControlError(`BIRD closed its control socket before answering "${command}"`)));
  });
}

/** A reply's text, one line per reply line (for messages). */
export function replyText(reply: BirdReply): string {
  return reply.lines.map((l) => l.text).join('\n');
}

// ---- show protocols all ----

export interface BirdProtocol {
  name: string;
  proto: string;
  /** BIRD's protocol state: up, down, start, stop, ... */
  state: string;
  /** The summary line's info column (for BGP: the session state, then the last error). */
  info: string;
  /** BGP only. */
  bgpState?: string;
  neighborAddress?: string;
  neighborAs?: number;
  lastError?: string;
  holdTimer?: string;
  /** Summed over the protocol's channels. */
  routes?: { imported: number; exported: number };
}

/** Parses the reply of `show protocols all` (codes 2002 header, 1002 summary, 1006 details). */
export function parseProtocols(reply: BirdReply): BirdProtocol[] {
  const protocols: BirdProtocol[] = [];
  let current: BirdProtocol | undefined;
  for (const line of reply.lines) {
    if (line.code === 1002) {
      const m = /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+(?: \S+:\S+)?)\s*(.*)$/.exec(line.text);
      if (m === null) continue;
      current = { name: m[1] as string, proto: m[2] as string, state: m[4] as string, info: (m[6] ?? '').trim() };
      protocols.push(current);
      continue;
    }
    if (line.code !== 1006 || current === undefined) continue;
    const detail = /^\s*([A-Za-z][A-Za-z ]*?):\s*(.*)$/.exec(line.text);
    if (detail === null) continue;
    const key = detail[1] as string;
    const value = (detail[2] ?? '').trim();
    switch (key) {
      case 'BGP state':
        current.bgpState = value;
        break;
      case 'Neighbor address':
        current.neighborAddress = value;
        break;
      case 'Neighbor AS':
        current.neighborAs = Number(value);
        break;
      case 'Last error':
        current.lastError = value;
        break;
      case 'Hold timer':
        current.holdTimer = value;
        break;
      case 'Routes': {
        const r = /(\d+) imported, (?:(\d+) filtered, )?(\d+) exported/.exec(value);
        if (r !== null) {
          const routes = current.routes ?? { imported: 0, exported: 0 };
          routes.imported += Number(r[1]);
          routes.exported += Number(r[3]);
          current.routes = routes;
        }
        break;
      }
      default:
        break;
    }
  }
  return protocols;
}

// ---- show bfd sessions ----

/** BFD session states by neighbour address, from `show bfd sessions` (one table per BFD protocol). */
export function parseBfdSessions(reply: BirdReply): Map<string, string> {
  const states = new Map<string, string>();
  for (const line of reply.lines) {
    const m = /^\s*([0-9A-Fa-f.:]+)\s+\S+\s+(Up|Down|Init|AdminDown)\b/.exec(line.text);
    if (m !== null) states.set((m[1] as string).toLowerCase(), m[2] as string);
  }
  return states;
}
