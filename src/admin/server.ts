/**
 * The web administration page and the JSON API (`postern start --admin HOST:PORT`), one HTTPS
 * server on fastify. Both are thin shells over manage/: the page's forms and the API's bodies go
 * through the same service functions (and messages, and audit) as the CLI.
 *
 * Plugins, each for one concern (why each is in docs/web.md): @fastify/cookie and
 * @fastify/session (the login session: Secure, HttpOnly, SameSite=Strict, ends after the idle
 * time), @fastify/csrf-protection (a token on every form that changes something),
 * @fastify/formbody and @fastify/multipart (form bodies and the import upload, size-limited),
 * @fastify/helmet (security headers, a CSP without inline script), @fastify/rate-limit (login
 * throttling per user and per address), @fastify/static (stylesheet and script), @fastify/view
 * with eta (templates that escape by default), @fastify/swagger (the OpenAPI document from the
 * API's route schemas).
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import fastifyCookie from '@fastify/cookie';
import fastifyCsrf from '@fastify/csrf-protection';
import fastifyFormbody from '@fastify/formbody';
import fastifyHelmet from '@fastify/helmet';
import fastifyMultipart from '@fastify/multipart';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifySession from '@fastify/session';
import fastifyStatic from '@fastify/static';
import fastifySwagger from '@fastify/swagger';
import fastifyView from '@fastify/view';
import { Eta } from 'eta';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { NetworkList } from '../smtp/networks.js';
import type { AdminContext } from './context.js';
import { registerAuth } from './auth.js';
import { registerClusterWrites } from './cluster-writes.js';
import { readMembership } from '../cluster/membership.js';
import { clusterMetricsOf } from '../cluster/reports.js';
import { registerApi } from './api.js';
import { registerPages } from './pages/index.js';
import { renderError } from './render.js';

export interface AdminServerOptions {
  /** Idle sessions end after this long (ms). */
  sessionIdleMs: number;
  tls: { keyPem: string; certPem: string };
  /** Whether only the demo certificate exists (the page warns as the dialogue does). */
  demoCertificate: () => boolean;
  /** The gateway's metrics, served at /metrics. */
  metrics?: Registry;
  /** Clients that may read /metrics without a token. */
  metricsAllow?: NetworkList;
}

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** Form bodies and API bodies; the import file has its own limit. */
const BODY_LIMIT = 256 * 1024;
export const UPLOAD_LIMIT = 1024 * 1024;

export async function buildAdminServer(ctx: AdminContext, o: AdminServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    https: { key: o.tls.keyPem, cert: o.tls.certPem },
    bodyLimit: BODY_LIMIT,
    logger: false,
    trustProxy: false,
    // Bodies are checked as sent: no type coercion, and an unknown field is an error, not dropped.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  });
  await app.register(fastifyHelmet, {
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        objectSrc: ["'none'"],
        baseUri: ["'none'"],
      },
    },
  });
  await app.register(fastifyCookie);
  await app.register(fastifySession, {
    secret: randomBytes(32).toString('base64url'),
    cookieName: 'postern_session',
    saveUninitialized: false,
    rolling: true,
    cookie: { secure: true, httpOnly: true, sameSite: 'strict', path: '/', maxAge: o.sessionIdleMs },
  });
  await app.register(fastifyCsrf, {
    sessionPlugin: '@fastify/session',
    getToken: (req) => {
      const body = req.body as Record<string, unknown> | undefined;
      const t = body?._csrf;
      return typeof t === 'string' ? t : (req.headers['x-csrf-token'] as string | undefined);
    },
  });
  await app.register(fastifyFormbody, { bodyLimit: BODY_LIMIT });
  await app.register(fastifyMultipart, { attachFieldsToBody: 'keyValues', limits: { fileSize: UPLOAD_LIMIT, files: 1, fields: 20, fieldSize: 4096 } });
  await app.register(fastifyRateLimit, { global: false });
  await app.register(fastifyStatic, { root: `${ROOT}public`, prefix: '/static/', index: false });
  // The graph's library, from node_modules (no CDN).
  await app.register(fastifyStatic, { root: `${ROOT}node_modules/uplot/dist`, prefix: '/static/vendor/uplot/', index: false, decorateReply: false, allowedPath: (p) => /^\/uPlot\.(iife\.min\.js|min\.css)$/.test(p) });
  await app.register(fastifyView, { engine: { eta: new Eta({ autoEscape: true, cache: true }) }, root: `${ROOT}views`, layout: 'layout.eta', viewExt: 'eta' });
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'Postern administration API', version: '1' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    hideUntagged: false,
  });

  app.setErrorHandler((error, req, reply) => renderError(error, req, reply));
  await registerAuth(app, ctx, o.metricsAllow);
  const membership = readMembership(ctx.dataDir);
  if (membership) registerClusterWrites(app, ctx.dataDir, membership);
  await app.register((api, _opts, done) => {
    registerApi(api, ctx);
    done();
  }, { prefix: '/api/v1' });
  registerPages(app, ctx, o);
  const metrics = o.metrics;
  if (metrics) {
    app.get('/metrics', { schema: { hide: true } }, async (req, reply) => {
      // ?cluster=1 (a node of a cluster): every live node's metrics summed.
      const q = (req.query ?? {}) as Record<string, unknown>;
      if (q.cluster === '1' || q.cluster === 'true') {
        const m = await clusterMetricsOf(ctx.dataDir, () => metrics.getMetricsAsJSON());
        return reply.header('content-type', m.contentType).send(m.text);
      }
      return reply.header('content-type', metrics.contentType).send(await metrics.metrics());
    });
  }
  return app;
}
