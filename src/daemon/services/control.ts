// The control socket (`l4mux reload|status|backend`).
import type { Logger } from 'pino';

import { ControlServer, type ControlHandlers } from '../../api/server.js';
import { errorMessage, type Service, type ServiceContext } from '../service.js';

export class ControlSocketService implements Service {
  readonly name = 'control socket';
  private server: ControlServer | undefined;
  private logger: Logger | undefined;

  constructor(
    private readonly path: string,
    private readonly handlers: ControlHandlers,
  ) {}

  async start(ctx: ServiceContext): Promise<void> {
    this.logger = ctx.logger;
    this.server = await ControlServer.listen(this.path, this.handlers, ctx.logger);
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    await server?.close().catch((e: unknown) => this.logger?.warn({ err: errorMessage(e) }, 'closing the control socket failed'));
  }
}
