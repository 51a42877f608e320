// The pid file as a service: written first, removed last.
import { removePidfile, writePidfile } from '../pidfile.js';
import type { Service } from '../service.js';

export class PidfileService implements Service {
  readonly name = 'pid file';
  private written = false;

  constructor(private readonly path: string) {}

  async start(): Promise<void> {
    await writePidfile(this.path);
    this.written = true;
  }

  async stop(): Promise<void> {
    if (!this.written) return;
    this.written = false;
    await removePidfile(this.path);
  }
}
