// Long-lived TCP connections to the lab's VIP, all held by one client process
// (scripts/lab/conns.mjs): each sends a request every 200 ms and checks the answering backend.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { Lab, root, sleep, VIP4 } from './lab.js';

export interface ConnectionsReport {
  /** What broke since the last mark(): how many, by reason, and the client ports. */
  step: { broken: number; reasons: Record<string, number>; ports: number[] };
  open: number;
  /** Open connections without an answer lately. */
  silent: number;
  answered: number;
  backends: Record<string, number>;
  total: { broken: number; connections: number };
}

export class Connections {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly replies: Array<(line: string) => void> = [];

  /** `port`: the VIP's port (80: http4; 8080: the persistent sticky4). */
  constructor(lab: Lab, count: number, port = 80) {
    this.child = spawn('ip', ['netns', 'exec', `${lab.prefix}-client`, 'node', join(root, 'scripts/lab/conns.mjs'), VIP4, String(count), '200', '20000', String(port)]);
    createInterface({ input: this.child.stdout }).on('line', (line) => this.replies.shift()?.(line));
  }

  private ask(command: string): Promise<unknown> {
    return new Promise((resolve) => {
      this.replies.push((line) => resolve(JSON.parse(line) as unknown));
      this.child.stdin.write(`${command}\n`);
    });
  }

  report(): Promise<ConnectionsReport> {
    return this.ask('report') as Promise<ConnectionsReport>;
  }

  /** Starts a new step: report().step counts what breaks from now on. */
  async mark(): Promise<void> {
    await this.ask('mark');
  }

  /** Waits (up to 12 s) until every connection has been answered. */
  async allAnswered(count: number): Promise<ConnectionsReport> {
    let r = await this.report();
    for (let i = 0; i < 60 && r.answered < count; i++) {
      await sleep(200);
      r = await this.report();
    }
    return r;
  }

  /**
   * What broke in this step, once connections still waiting for an answer have had TCP's
   * retransmissions' time to recover (about 6 s); those still silent then count as stuck.
   */
  async settled(): Promise<{ broken: number; reasons: Record<string, number> }> {
    let r = await this.report();
    for (let i = 0; i < 30 && r.silent > 0; i++) {
      await sleep(200);
      r = await this.report();
    }
    return { broken: r.step.broken + r.silent, reasons: { ...r.step.reasons, ...(r.silent > 0 && { stuck: r.silent }) } };
  }

  close(): void {
    this.child.stdin.end();
    this.child.kill();
  }
}
