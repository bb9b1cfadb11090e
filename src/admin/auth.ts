/**
 * Who is asking: the login session for the page, a bearer token for the API.
 *
 * - Every page but /login and /static needs a logged-in user, read again from config.db on each
 *   request (a deleted user or a changed role takes effect at once).
 * - A user whose password was set for them (the first administrator) must change it first.
 * - Every POST from a page carries the session's CSRF token, else 403 and nothing changes.
 * - Failed logins are counted per user name and per client address; past the limit, logins
 *   are refused (429) for a while even with the right password.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ValidationError } from '../controls/validate.js';
import type { NetworkList } from '../smtp/networks.js';
import type { AdminContext } from './context.js';
import { page, type Principal } from './render.js';

export const LOGIN_LIMITS = {
  perUser: { max: 5, windowMs: 15 * 60_000 },
  perAddress: { max: 20, windowMs: 15 * 60_000 },
};

const PUBLIC = new Set(['/login']);

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/** A local path to go back to after login: only this site's own pages. */
function safeNext(v: unknown): string {
  return typeof v === 'string' && /^\/(?![/\\])[\x21-\x7e]*$/.test(v) && !v.startsWith('/login') ? v : '/';
}

function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  const m = typeof h === 'string' ? /^Bearer\s+(\S+)$/i.exec(h) : null;
  return m?.[1];
}

export async function registerAuth(app: FastifyInstance, ctx: AdminContext, metricsAllow?: NetworkList): Promise<void> {
  const byAddress = app.createRateLimit({ max: LOGIN_LIMITS.perAddress.max, timeWindow: LOGIN_LIMITS.perAddress.windowMs, keyGenerator: (req) => `addr:${req.ip}` });
  const byUser = app.createRateLimit({
    max: LOGIN_LIMITS.perUser.max,
    timeWindow: LOGIN_LIMITS.perUser.windowMs,
    keyGenerator: (req) => `user:${String((req.body as Record<string, unknown> | undefined)?.user ?? '').trim().toLowerCase()}`,
  });

  app.addHook('onRequest', async (req, reply) => {
    const path = pathOf(req.url);
    if (path.startsWith('/static/') || path === '/favicon.ico') return;
    // /metrics: an API token, or a client network allowed to scrape without one.
    if (path === '/metrics' && metricsAllow?.allows(req.ip)) return;
    if (path.startsWith('/api/') || path === '/metrics') {
      if (path === '/api/v1/openapi.json') return;
      const token = bearer(req);
      const t = token === undefined ? null : ctx.tokens.check(token);
      // The page reads the API (its report graph) with its session: reading only, so no CSRF.
      const sessionUser = !t && token === undefined && (req.method === 'GET' || req.method === 'HEAD') && req.session.user !== undefined ? ctx.users.get(req.session.user) : undefined;
      if (sessionUser && sessionUser.passwordChanged === req.session.since && !sessionUser.mustChange) {
        req.principal = { kind: 'user', name: sessionUser.name, role: sessionUser.role, mustChange: false };
        return;
      }
      if (!t) {
        return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'unauthorized', message: 'an API token is required: Authorization: Bearer TOKEN (postern apitoken create)' });
      }
      req.principal = { kind: 'token', name: t.name, role: t.role, mustChange: false };
      return;
    }
    const name = req.session.user;
    const found = name === undefined ? undefined : ctx.users.get(name);
    // A password changed since this session logged in (by anyone, anywhere) ends the session.
    const user = found && found.passwordChanged === req.session.since ? found : undefined;
    if (user) req.principal = { kind: 'user', name: user.name, role: user.role, mustChange: user.mustChange };
    if (PUBLIC.has(path)) return;
    if (!user) {
      if (name !== undefined) await req.session.destroy();
      if (req.method === 'GET') return reply.redirect(`/login?next=${encodeURIComponent(req.url)}`);
      return reply.code(403).send('You are not logged in (or your session ended); nothing was changed.');
    }
    if (user.mustChange && path !== '/password' && path !== '/logout') {
      if (req.method === 'GET') return reply.redirect('/password');
      return reply.code(403).send('Change your password first; nothing was changed.');
    }
  });

  // Every page form that changes something carries the CSRF token (the API uses tokens, not cookies).
  app.addHook('preHandler', (req, reply, done) => {
    if (req.method === 'GET' || req.method === 'HEAD' || pathOf(req.url).startsWith('/api/') || pathOf(req.url) === '/metrics') return done();
    app.csrfProtection(req, reply, done);
  });

  app.get('/login', async (req, reply) => {
    if (req.principal) return reply.redirect('/');
    const q = req.query as Record<string, unknown>;
    return page(req, reply, 'login', { title: 'Log in', next: safeNext(q.next), user: '', error: undefined });
  });

  app.post('/login', async (req, reply) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    const user = typeof b.user === 'string' ? b.user.trim() : '';
    const password = typeof b.password === 'string' ? b.password : '';
    const next = safeNext(b.next);
    const refuse = (status: number, error: string) => page(req, reply, 'login', { title: 'Log in', next, user, error }, status);
    const [a, u] = await Promise.all([byAddress(req, { increment: false }), byUser(req, { increment: false })]);
    // Blocked once the failures counted reach the limit: `max` tries, then a wait.
    const blocked = [a, u].find((r) => !r.isAllowed && r.remaining === 0);
    if (blocked && !blocked.isAllowed) {
      return refuse(429, `Too many failed logins for this user or from this address; try again in ${Math.ceil(blocked.ttlInSeconds / 60)} minutes.`);
    }
    const ok = user !== '' && password !== '' ? await ctx.users.verify(user, password) : null;
    if (!ok) {
      await Promise.all([byAddress(req), byUser(req)]);
      return refuse(401, 'The user name or the password is wrong.');
    }
    // A new session at login: an identifier planted before it is worth nothing after.
    await req.session.regenerate();
    req.session.user = ok.name;
    req.session.since = ok.passwordChanged;
    return reply.redirect(ok.mustChange ? '/password' : next);
  });

  app.post('/logout', async (req, reply) => {
    await req.session.destroy();
    return reply.redirect('/login');
  });

  app.get('/password', async (req, reply) => passwordPage(req, reply, {}));

  app.post('/password', async (req, reply) => {
    const me = req.principal!;
    const b = (req.body ?? {}) as Record<string, unknown>;
    const str = (k: string) => (typeof b[k] === 'string' ? (b[k] as string) : '');
    if (!(await ctx.users.verify(me.name, str('current')))) return passwordPage(req, reply, { current: 'The current password is wrong.' }, 400);
    if (str('password') !== str('repeat')) return passwordPage(req, reply, { repeat: 'The two new passwords differ.' }, 400);
    try {
      await ctx.users.setPassword(me.name, str('password'), { actor: me.name, client: req.ip });
    } catch (e) {
      if (e instanceof ValidationError) return passwordPage(req, reply, { password: e.message }, 400);
      throw e;
    }
    await req.session.regenerate();
    req.session.user = me.name;
    req.session.since = ctx.users.get(me.name)?.passwordChanged;
    req.session.notice = 'Your password was changed.';
    return reply.redirect('/');
  });
}

function passwordPage(req: FastifyRequest, reply: FastifyReply, errors: Record<string, string>, status = 200): Promise<FastifyReply> {
  const me = req.principal as Principal;
  return page(req, reply, 'password', { title: 'Change Password', mustChange: me.mustChange, errors }, status);
}
