/**
 * The administration page as part of `postern start`: the first administrator when there is
 * none (a random password, printed once and left in <data-dir>/admin-initial-password, mode
 * 0600, until it is changed), the certificate chosen with `certconfig use-admin` (the demo one
 * until then), and the HTTPS server.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { NetworkList } from '../smtp/networks.js';
import { DEMO_NAME } from '../config/certificates.js';
import type { EventSink } from '../observe/maillog.js';
import { INITIAL_PASSWORD_FILE } from '../manage/users.js';
import { AdminContext } from './context.js';
import { buildAdminServer } from './server.js';

export const FIRST_ADMIN = 'admin';

export interface RunningAdmin {
  url: string;
  /** Lines for the start-up output: the URL, a new administrator's password, warnings. */
  messages: string[];
  warnings: string[];
  close(): Promise<void>;
}

export interface AdminStartOptions {
  dataDir: string;
  listen: { host: string; port: number };
  sessionIdleMs: number;
  hostname: string;
  log: EventSink;
  dnsServers: string[];
  dnssecResolvers?: string[];
  smtpPort: number;
  metrics?: Registry;
  metricsAllow?: string[];
}

async function ensureFirstAdministrator(ctx: AdminContext): Promise<string | null> {
  if (ctx.users.count() > 0) return null;
  const password = randomBytes(15).toString('base64url');
  await ctx.users.add(FIRST_ADMIN, 'administrator', password, { actor: 'postern start', client: 'local' }, { mustChange: true });
  writeFileSync(join(ctx.dataDir, INITIAL_PASSWORD_FILE), `${password}\n`, { mode: 0o600 });
  return password;
}

export async function startAdmin(o: AdminStartOptions): Promise<RunningAdmin> {
  const ctx = new AdminContext(o.dataDir, o.log, o.hostname, { dnsServers: o.dnsServers, dnssecResolvers: o.dnssecResolvers, smtpPort: o.smtpPort });
  let app: FastifyInstance | undefined;
  try {
    const password = await ensureFirstAdministrator(ctx);
    const tls = ctx.certificates.adminCredentials();
    app = await buildAdminServer(ctx, {
      sessionIdleMs: o.sessionIdleMs,
      tls,
      demoCertificate: () => ctx.certificates.onlyDemo(),
      metrics: o.metrics,
      metricsAllow: new NetworkList(o.metricsAllow ?? []),
    });
    await app.listen({ host: o.listen.host, port: o.listen.port });
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : o.listen.port;
    const host = o.listen.host.includes(':') ? `[${o.listen.host}]` : o.listen.host;
    const url = `https://${host}:${port}/`;
    const messages = [`Administration page on ${url} (API under ${url}api/v1/)`];
    const file = join(o.dataDir, INITIAL_PASSWORD_FILE);
    if (password) {
      messages.push(
        `Created the administrator "${FIRST_ADMIN}" with the password ${password}`,
        `  (also in ${file}, mode 0600, until it is changed; the page asks for a new password at the first login)`,
      );
    }
    const warnings = tls.name === DEMO_NAME ? ['Warning: the administration page uses the demo certificate, which is not secure; choose another with certconfig use-admin NAME.'] : [];
    const server = app;
    return {
      url,
      messages,
      warnings,
      close: async () => {
        await server.close();
        ctx.close();
      },
    };
  } catch (e) {
    await app?.close();
    ctx.close();
    throw e;
  }
}
