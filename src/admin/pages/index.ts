/** Every page of the web administration, by menu. */
import type { FastifyInstance } from 'fastify';
import type { AdminContext } from '../context.js';
import type { AdminServerOptions } from '../server.js';
import { registerDestinationPages } from './destinations.js';
import { registerNetworkPages } from './network.js';
import { registerQueuePages } from './queue.js';
import { registerReportPages } from './reports.js';
import { registerUserPages } from './users.js';
import { registerAlertPages } from './alerts.js';
import { registerBounceVerificationPages } from './bounce-verification.js';

export function registerPages(app: FastifyInstance, ctx: AdminContext, o: AdminServerOptions): void {
  registerDestinationPages(app, ctx, o);
  registerQueuePages(app, ctx, o);
  registerReportPages(app, ctx, o);
  registerNetworkPages(app, ctx, o);
  registerUserPages(app, ctx, o);
  registerAlertPages(app, ctx, o);
  registerBounceVerificationPages(app, ctx);
}
