/** (being written) */
import type { FastifyInstance } from 'fastify';
import type { AdminContext } from '../context.js';
import type { AdminServerOptions } from '../server.js';

export function registerUserPages(app: FastifyInstance, ctx: AdminContext, o: AdminServerOptions): void {
  void app;
  void ctx;
  void o;
}
