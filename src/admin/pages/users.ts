/**
 * System Administration > Users: the accounts of the page and their roles, over the UserStore
 * the CLI (`postern adminuser`) and the API use. Administrators add and delete users (never the
 * last administrator: the service refuses, the page says why) and set another user's password;
 * everyone sees the list and is pointed to /password for their own password. A forged POST
 * from another role gets 403 and changes nothing.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ConfigError } from '../../config/store.js';
import { ValidationError } from '../../controls/validate.js';
import { MIN_PASSWORD_LENGTH, passwordProblem } from '../../manage/passwords.js';
import { parseRole, ROLES, type Role } from '../../manage/users.js';
import type { AdminContext } from '../context.js';
import { forbiddenText, may, notify, page } from '../render.js';
import type { AdminServerOptions } from '../server.js';

export const USERS = '/system/users';

const ROLE_TEXT: Record<Role, { label: string; what: string }> = {
  administrator: { label: 'Administrator', what: 'everything, including users and the configuration' },
  operator: { label: 'Operator', what: 'the message queue (deliver now, bounce, delete), not the configuration' },
  'read-only': { label: 'Read-only', what: 'sees everything, changes nothing' },
};

const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** A stored ISO time as the page shows it: ISO-like, UTC, to the second. */
function shown(isoText: string): string {
  const t = Date.parse(isoText);
  return Number.isNaN(t) ? isoText : new Date(t).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, ' UTC');
}

/** The form field a service ValidationError is about. */
function fieldOf(e: ValidationError): 'name' | 'role' | 'password' {
  return e.field === 'role' ? 'role' : e.field === 'password' ? 'password' : 'name';
}

interface AddValues {
  name: string;
  role: string;
}

export function registerUserPages(app: FastifyInstance, ctx: AdminContext, _o: AdminServerOptions): void {
  const by = (req: FastifyRequest) => ({ actor: req.principal!.name, client: req.ip });
  const refuse = (req: FastifyRequest, reply: FastifyReply) =>
    page(req, reply, 'error', { title: 'Forbidden', message: `${forbiddenText(req.principal, 'configure')}; nothing was changed` }, 403);
  const noUser = (req: FastifyRequest, reply: FastifyReply, name: string) => page(req, reply, 'error', { title: 'Not found', message: `no user named ${name}` }, 404);
  const roleChoices = ROLES.map((r) => ({ value: r, label: ROLE_TEXT[r].label, what: ROLE_TEXT[r].what }));

  const listPage = (req: FastifyRequest, reply: FastifyReply, error?: string, status = 200) => {
    const me = req.principal!;
    const users = ctx.users.list().map((u) => ({
      name: u.name,
      role: ROLE_TEXT[u.role].label,
      passwordChanged: shown(u.passwordChanged),
      passwordChangedIso: u.passwordChanged,
      roleValue: u.role,
      mustChange: u.mustChange,
      isMe: u.name === me.name,
    }));
    return page(req, reply, 'users-list', { title: 'Users', active: USERS, base: USERS, users, roles: roleChoices, error }, status);
  };

  app.get(USERS, async (req, reply) => listPage(req, reply));

  // ---- Add User ------------------------------------------------------------------------------------
  const addForm = (req: FastifyRequest, reply: FastifyReply, values: AddValues, errors: Record<string, string>, status = 200) =>
    page(
      req,
      reply,
      'users-add',
      {
        title: 'Add User',
        active: USERS,
        base: USERS,
        values,
        errors,
        errorList: Object.entries(errors).map(([field, message]) => ({ field, message })),
        roles: roleChoices,
        minLength: MIN_PASSWORD_LENGTH,
      },
      status,
    );

  app.get(`${USERS}/add`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return refuse(req, reply);
    return addForm(req, reply, { name: '', role: 'read-only' }, {});
  });

  app.post(`${USERS}/add`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return refuse(req, reply);
    const b = (req.body ?? {}) as Record<string, unknown>;
    const values: AddValues = { name: str(b.name).trim(), role: str(b.role) };
    const password = str(b.password);
    const errors: Record<string, string> = {};
    let role: Role | undefined;
    try {
      role = parseRole(values.role);
    } catch (e) {
      if (!(e instanceof ValidationError)) throw e;
      errors.role = e.message;
    }
    // The service checks the name first and stops there; the password's problem is said at once too.
    const problem = passwordProblem(password, values.name);
    if (problem) errors.password = new ValidationError('password', '(hidden)', problem).message;
    else if (password !== str(b.repeat)) errors.repeat = 'The two passwords differ.';
    if (Object.keys(errors).length > 0 || !role) return addForm(req, reply, values, errors, 400);
    try {
      await ctx.users.add(values.name, role, password, by(req));
    } catch (e) {
      if (e instanceof ValidationError) return addForm(req, reply, values, { [fieldOf(e)]: e.message }, 400);
      if (e instanceof ConfigError) return addForm(req, reply, values, { name: e.message }, 409);
      throw e;
    }
    notify(req, `Added ${values.name} (${role}).`);
    return reply.redirect(USERS);
  });

  // ---- Delete --------------------------------------------------------------------------------------
  app.get(`${USERS}/delete`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return refuse(req, reply);
    const name = str((req.query as Record<string, unknown>).name);
    const u = ctx.users.get(name);
    if (!u) return noUser(req, reply, name);
    const self = u.name === req.principal!.name;
    return page(req, reply, 'confirm', {
      title: 'Delete User',
      active: USERS,
      question: self
        ? `Delete your own account ${u.name} (${u.role})? You are logged out at once and cannot log in again.`
        : `Delete the user ${u.name} (${u.role})? They can no longer log in, and their open sessions end.`,
      action: `${USERS}/delete`,
      fields: { name: u.name },
      cancel: USERS,
      button: 'Delete',
    });
  });

  app.post(`${USERS}/delete`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return refuse(req, reply);
    const name = str((req.body as Record<string, unknown> | undefined)?.name);
    try {
      ctx.users.delete(name, by(req));
    } catch (e) {
      // The last administrator, or a user deleted meanwhile: the service's words, nothing changed.
      if (e instanceof ConfigError) return listPage(req, reply, `${e.message}; nothing was changed.`, 409);
      throw e;
    }
    notify(req, `Deleted ${name}.`);
    return reply.redirect(USERS);
  });

  // ---- Change a role -----------------------------------------------------------------------------------
  app.post(`${USERS}/role`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return refuse(req, reply);
    const b = (req.body ?? {}) as Record<string, unknown>;
    const name = str(b.name);
    try {
      const u = ctx.users.setRole(name, parseRole(str(b.role)), by(req));
      notify(req, `${u.name} is now ${ROLE_TEXT[u.role].label}.`);
    } catch (e) {
      if (e instanceof ConfigError || e instanceof ValidationError) return listPage(req, reply, `${e.message}; nothing was changed.`, e instanceof ConfigError ? 409 : 400);
      throw e;
    }
    return reply.redirect(USERS);
  });

  // ---- Set another user's password -----------------------------------------------------------------
  const passwordForm = (req: FastifyRequest, reply: FastifyReply, name: string, errors: Record<string, string>, status = 200) =>
    page(
      req,
      reply,
      'users-password',
      {
        title: 'Set Password',
        active: USERS,
        base: USERS,
        name,
        errors,
        errorList: Object.entries(errors).map(([field, message]) => ({ field, message })),
        minLength: MIN_PASSWORD_LENGTH,
      },
      status,
    );

  app.get(`${USERS}/password`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return refuse(req, reply);
    const name = str((req.query as Record<string, unknown>).name);
    // One's own password is changed with the current one, on /password.
    if (name === req.principal!.name) return reply.redirect('/password');
    if (!ctx.users.get(name)) return noUser(req, reply, name);
    return passwordForm(req, reply, name, {});
  });

  app.post(`${USERS}/password`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return refuse(req, reply);
    const b = (req.body ?? {}) as Record<string, unknown>;
    const name = str(b.name);
    if (name === req.principal!.name) return reply.redirect('/password');
    if (!ctx.users.get(name)) return noUser(req, reply, name);
    const password = str(b.password);
    const problem = passwordProblem(password, name);
    if (problem) return passwordForm(req, reply, name, { password: new ValidationError('password', '(hidden)', problem).message }, 400);
    if (password !== str(b.repeat)) return passwordForm(req, reply, name, { repeat: 'The two passwords differ.' }, 400);
    try {
      await ctx.users.setPassword(name, password, by(req), { mustChange: true });
    } catch (e) {
      if (e instanceof ValidationError) return passwordForm(req, reply, name, { password: e.message }, 400);
      if (e instanceof ConfigError) return noUser(req, reply, name);
      throw e;
    }
    notify(req, `Changed the password of ${name}.`);
    return reply.redirect(USERS);
  });
}
