/**
 * What every page shares: the menus, the data each template gets (who is logged in, the CSRF
 * token, a one-time notice), and the error answers — JSON with the field and message under
 * /api/, a page otherwise.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ConfigError } from '../config/store.js';
import { ValidationError } from '../controls/validate.js';
import { QueueActionError } from '../queue/control.js';
import { escapeText } from '../observe/text.js';
import type { Role } from '../manage/users.js';

export interface MenuItem {
  label: string;
  /** Absent: the page comes in a later release; its place is kept. */
  href?: string;
}

export const MENUS: { title: string; items: MenuItem[] }[] = [
  { title: 'Monitor', items: [{ label: 'Message Queue', href: '/monitor/queue' }, { label: 'TLS Connections', href: '/monitor/tls' }] },
  { title: 'Mail Policies', items: [{ label: 'Destination Controls', href: '/mail-policies/destination-controls' }, { label: 'Bounce Verification', href: '/mail-policies/bounce-verification' }] },
  {
    title: 'Network',
    items: [
      { label: 'Bounce Profiles', href: '/network/bounce-profiles' },
      { label: 'SMTP Routes', href: '/network/smtp-routes' },
      { label: 'Certificates', href: '/network/certificates' },
      { label: 'Virtual Gateways', href: '/network/virtual-gateways' },
    ],
  },
  { title: 'System Administration', items: [{ label: 'Users', href: '/system/users' }, { label: 'Alerts', href: '/system/alerts' }] },
];

/** Who is acting: a logged-in user (page) or a token (API). */
export interface Principal {
  kind: 'user' | 'token';
  name: string;
  role: Role;
  mustChange: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface Session {
    user?: string;
    /** The user's password-change time at login: a later change ends this session. */
    since?: string;
    notice?: string;
    _csrf?: string;
  }
}

/** What a role may do: read-only reads; operators act on the queue; administrators change configuration. */
export function may(p: Principal | undefined, what: 'queue' | 'configure'): boolean {
  if (!p) return false;
  return p.role === 'administrator' || (what === 'queue' && p.role === 'operator');
}

export function forbiddenText(p: Principal | undefined, what: 'queue' | 'configure'): string {
  return `your role (${p?.role ?? 'none'}) cannot ${what === 'queue' ? 'act on the queue' : 'change the configuration'}`;
}

/** A notice shown once on the next page (after a redirect). */
export function notify(req: FastifyRequest, text: string): void {
  req.session.notice = text;
}

export async function page(req: FastifyRequest, reply: FastifyReply, view: string, data: Record<string, unknown>, status = 200): Promise<FastifyReply> {
  const notice = req.session?.notice;
  if (notice !== undefined) req.session.notice = undefined;
  const me = req.principal;
  return reply
    .code(status)
    .header('cache-control', 'no-store')
    .view(view, {
      menus: me && !me.mustChange ? MENUS : [],
      active: '',
      me,
      canConfigure: may(me, 'configure'),
      canQueue: may(me, 'queue'),
      csrf: req.session ? reply.generateCsrf() : '',
      notice,
      ...data,
    });
}

interface ErrorAnswer {
  status: number;
  field?: string;
  message: string;
}

/** The status, field and message for an error thrown by a route, a schema or a plugin. */
export function answerFor(error: unknown): ErrorAnswer {
  if (error instanceof ValidationError) return { status: 400, field: error.field, message: error.message };
  if (error instanceof ConfigError || error instanceof QueueActionError) return { status: 409, message: error.message };
  const e = error as FastifyError & { validation?: { instancePath?: string; params?: Record<string, unknown>; message?: string }[] };
  if (e.validation && e.validation.length > 0) {
    const v = e.validation[0]!;
    const missing = typeof v.params?.missingProperty === 'string' ? v.params.missingProperty : undefined;
    const extra = typeof v.params?.additionalProperty === 'string' ? v.params.additionalProperty : undefined;
    const path = (v.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.');
    const field = missing ?? extra ?? (path === '' ? 'body' : path);
    const why = extra ? 'is not a known field' : (v.message ?? 'is not valid');
    return { status: 400, field, message: `invalid ${field}: ${why}` };
  }
  const status = typeof e.statusCode === 'number' && e.statusCode >= 400 ? e.statusCode : 500;
  if (e.code?.startsWith('FST_CSRF')) return { status: 403, message: 'the form was not sent by this page (missing or wrong CSRF token); nothing was changed' };
  if (e.code === 'FST_REQ_FILE_TOO_LARGE' || e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return { status: 413, message: 'the upload is too large; nothing was changed' };
  return { status, message: status === 500 ? 'internal error; nothing was changed (see the gateway output)' : escapeText(e.message) };
}

export async function renderError(error: unknown, req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const a = answerFor(error);
  if (a.status === 500) process.stderr.write(`postern admin: ${escapeText(String((error as Error)?.stack ?? error))}\n`);
  if (req.url.startsWith('/api/')) return reply.code(a.status).send({ error: a.status >= 500 ? 'internal' : a.status === 400 ? 'invalid' : 'refused', field: a.field, message: a.message });
  return page(req, reply, 'error', { title: a.status === 403 ? 'Forbidden' : 'Error', message: a.message }, a.status);
}
