/**
 * Network > Bounce Profiles, SMTP Routes, Certificates and Virtual Gateways, over the audited
 * manage/ services (the ones bounceconfig, smtproutes, certconfig and vgconfig use, with the same
 * validation and messages): a list, Add/Edit forms that are shown again with every value as
 * entered and the service's message beside the field it names (nothing saved), and a
 * confirmation page before each POST that removes something. Read-only users and operators see
 * everything but get no forms; a forged POST from them gets 403. Private keys never reach these
 * pages: a certificate's public chain is the only download.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DEFAULT_PROFILE, DEFAULT_PROFILE_NAME, DSN_FORMATS, PROFILE_FIELD_LABELS, PROFILE_RANGES, type BounceProfile, type ProfileInput } from '../../bounce/profile.js';
import { DEMO_NAME, type CertificateUse } from '../../config/certificates.js';
import type { VirtualGateway } from '../../config/gateways.js';
import { ConfigError, type RouteHost } from '../../config/store.js';
import { displayName } from '../../controls/names.js';
import { DEFAULT_ROUTE, parseRouteKey } from '../../controls/routes.js';
import { ValidationError } from '../../controls/validate.js';
import { parseRouteHosts, routeHostsText } from '../../manage/routes.js';
import { escapeText } from '../../observe/text.js';
import type { AdminContext } from '../context.js';
import { forbiddenText, may, notify, page } from '../render.js';
import type { AdminServerOptions } from '../server.js';

export const PROFILES = '/network/bounce-profiles';
export const ROUTES = '/network/smtp-routes';
export const CERTIFICATES = '/network/certificates';
export const GATEWAYS = '/network/virtual-gateways';

const APPLIES_NOW = 'The change applies to delivery within a second.';

interface FieldError {
  field: string;
  message: string;
}

const count = (n: number): string => n.toLocaleString('en-US');

/** A posted field as the browser sent it; anything missing or not a string is empty. */
function field(body: unknown, key: string): string {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const v = b[key];
  return typeof v === 'string' ? v : '';
}

function param(req: FastifyRequest, key: string): string {
  return field(req.query, key);
}

/** The status and the field-bound message of a rejected change: 400 for a value, 409 for a conflict. */
function rejection(e: unknown, fieldOf: (e: ValidationError) => string, conflictField: string): { status: number; error: FieldError } {
  if (e instanceof ValidationError) return { status: 400, error: { field: fieldOf(e), message: escapeText(e.message) } };
  if (e instanceof ConfigError) return { status: 409, error: { field: conflictField, message: escapeText(e.message) } };
  throw e;
}

/** The first message for each field, for the template. */
function byField(errors: FieldError[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of errors) out[e.field] ??= e.message;
  return out;
}

/** `259,200 s (72 h)`: seconds, with whole hours or minutes beside them when exact. */
function seconds(n: number): string {
  // No-break spaces: a narrow column wraps only before the parenthesis.
  const base = `${count(n)}\u00a0s`;
  if (n >= 3600 && n % 3600 === 0) return `${base} (${count(n / 3600)}\u00a0h)`;
  if (n >= 60 && n % 60 === 0) return `${base} (${count(n / 60)}\u00a0min)`;
  return base;
}

const plural = (n: number, one: string, many: string): string => `${count(n)} ${n === 1 ? one : many}`;

// ---- bounce profiles -------------------------------------------------------------------------

type ProfileKey = Exclude<keyof BounceProfile, 'name'>;
const PROFILE_KEYS = Object.keys(PROFILE_FIELD_LABELS) as ProfileKey[];
type ProfileForm = { name: string } & Record<ProfileKey, string>;

interface ProfileFieldSpec {
  key: ProfileKey;
  label: string;
  kind: 'number' | 'flag' | 'select' | 'text';
  unit?: string;
  hint: string;
}

const between = (key: keyof typeof PROFILE_RANGES): string => `between ${count(PROFILE_RANGES[key].min)} and ${count(PROFILE_RANGES[key].max)}`;

/** The form's sections and fields, in SPEC §7's order; the hints give PROFILE_RANGES. */
const PROFILE_SECTIONS: { title: string; fields: ProfileFieldSpec[] }[] = [
  {
    title: 'Retries',
    fields: [
      { key: 'maxRetries', label: 'Maximum Retries', kind: 'number', hint: `${between('maxRetries')}; delivery attempts (the first included) before a soft failure bounces` },
      { key: 'maxQueueSeconds', label: 'Maximum Time in Queue', kind: 'number', unit: 'seconds', hint: `${between('maxQueueSeconds')}; a soft failure bounces when either limit runs out` },
      { key: 'initialRetrySeconds', label: 'Initial Retry Wait', kind: 'number', unit: 'seconds', hint: `${between('initialRetrySeconds')}; the wait doubles after each attempt` },
      { key: 'maxRetrySeconds', label: 'Maximum Retry Wait', kind: 'number', unit: 'seconds', hint: `${between('maxRetrySeconds')}, and at least the initial retry wait` },
    ],
  },
  {
    title: 'Hard Bounces',
    fields: [
      { key: 'sendHardBounces', label: 'Send Hard Bounce Messages', kind: 'flag', hint: 'a delivery status notification to the sender (or the alternate address) for each bounced recipient' },
      { key: 'dsnFormat', label: 'DSN Format', kind: 'select', hint: 'the only format: RFC 3464 delivery-status in an RFC 6522 multipart/report' },
      { key: 'maxBounceCopy', label: 'Maximum Bounce Copy', kind: 'number', unit: 'bytes', hint: `${between('maxBounceCopy')}; a larger original message is returned as its headers only` },
    ],
  },
  {
    title: 'Delay Warnings',
    fields: [
      { key: 'delayWarnings', label: 'Send Delay Warnings', kind: 'flag', hint: 'from the second attempt, only for temporary (4xx) failures' },
      { key: 'delayWarningInterval', label: 'Delay Warning Interval', kind: 'number', unit: 'seconds', hint: `${between('delayWarningInterval')}; the least time between two warnings for one recipient` },
      { key: 'delayWarningMax', label: 'Maximum Delay Warnings', kind: 'number', hint: `${between('delayWarningMax')} warnings per recipient` },
    ],
  },
  {
    title: 'Alternate Address',
    fields: [{ key: 'alternateAddress', label: 'Alternate Address', kind: 'text', hint: 'receives bounces and delay warnings instead of the sender; leave empty for the sender' }],
  },
];

const DSN_LABELS: Record<string, string> = { rfc3464: 'RFC 3464 (multipart/report)' };

function profileForm(p: BounceProfile, name: string): ProfileForm {
  const f = { name } as ProfileForm;
  for (const k of PROFILE_KEYS) {
    const v = p[k];
    f[k] = typeof v === 'boolean' ? (v ? 'on' : 'off') : v === null ? '' : String(v);
  }
  return f;
}

function readProfileForm(body: unknown): ProfileForm {
  const f = { name: field(body, 'name') } as ProfileForm;
  for (const k of PROFILE_KEYS) f[k] = field(body, k);
  return f;
}

/** Every field as typed: ProfileService parses and checks each (empty alternate address = the sender). */
function profileInput(f: ProfileForm): ProfileInput {
  const input: ProfileInput = {};
  for (const k of PROFILE_KEYS) input[k] = f[k];
  return input;
}

function profileFieldOf(e: ValidationError): string {
  if (e.field === 'profile name') return 'name';
  return PROFILE_KEYS.find((k) => PROFILE_FIELD_LABELS[k] === e.field) ?? 'name';
}

function registerProfilePages(app: FastifyInstance, ctx: AdminContext, h: Helpers): void {
  const list = (req: FastifyRequest, reply: FastifyReply, error?: string, status = 200) => {
    const store = ctx.profileStore();
    const usage = store.usage();
    const rows = store.list().map((p) => {
      const users = usage.get(p.name.toLowerCase()) ?? [];
      return {
        name: p.name,
        isDefault: p.name.toLowerCase() === DEFAULT_PROFILE_NAME.toLowerCase(),
        maxRetries: count(p.maxRetries),
        maxQueue: seconds(p.maxQueueSeconds),
        initialRetry: seconds(p.initialRetrySeconds),
        maxRetry: seconds(p.maxRetrySeconds),
        hardBounces: p.sendHardBounces ? 'Yes' : 'No',
        dsnFormat: p.dsnFormat === 'rfc3464' ? 'RFC 3464' : p.dsnFormat,
        maxBounceCopy: `${count(p.maxBounceCopy)}\u00a0bytes`,
        delayWarnings: p.delayWarnings ? 'Yes' : 'No',
        warningInterval: seconds(p.delayWarningInterval),
        warningMax: count(p.delayWarningMax),
        alternate: p.alternateAddress ?? 'None (the sender)',
        usedBy: users.length === 0 ? 'No destination' : users.length <= 10 ? users.join(', ') : `${users.slice(0, 10).join(', ')} and ${count(users.length - 10)} more`,
      };
    });
    const countText = rows.length === 1 ? 'There is currently 1 bounce profile configured.' : `There are currently ${count(rows.length)} bounce profiles configured.`;
    return page(req, reply, 'network-profiles', { title: 'Bounce Profiles', active: PROFILES, base: PROFILES, rows, countText, error }, status);
  };

  const showForm = (req: FastifyRequest, reply: FastifyReply, mode: 'add' | 'edit', form: ProfileForm, errors: FieldError[], status = 200) => {
    const dsnFormats = DSN_FORMATS.map((v) => ({ value: v as string, label: DSN_LABELS[v] ?? v }));
    // A value typed in a forged or stale form is kept on the page, as every other value is.
    if (form.dsnFormat !== '' && !dsnFormats.some((d) => d.value === form.dsnFormat)) dsnFormats.push({ value: form.dsnFormat, label: form.dsnFormat });
    return page(
      req,
      reply,
      'network-profile-form',
      {
        title: mode === 'add' ? 'Add Bounce Profile' : (may(req.principal, 'configure') ? 'Edit Bounce Profile' : 'Bounce Profile'),
        active: PROFILES,
        base: PROFILES,
        mode,
        form,
        sections: PROFILE_SECTIONS,
        dsnFormats,
        errors: byField(errors),
        errorList: errors,
        isDefault: mode === 'edit' && form.name.toLowerCase() === DEFAULT_PROFILE_NAME.toLowerCase(),
      },
      status,
    );
  };

  app.get(PROFILES, async (req, reply) => list(req, reply));

  app.get(`${PROFILES}/add`, async (req, reply) => showForm(req, reply, 'add', profileForm(DEFAULT_PROFILE, ''), []));

  app.get(`${PROFILES}/edit`, async (req, reply) => {
    const p = ctx.profileStore().get(param(req, 'name'));
    if (!p) return h.notFound(req, reply, `no bounce profile named ${param(req, 'name')}`);
    return showForm(req, reply, 'edit', profileForm(p, p.name), []);
  });

  const submit = (mode: 'add' | 'edit') => async (req: FastifyRequest, reply: FastifyReply) => {
    if (!may(req.principal, 'configure')) return h.refuse(req, reply);
    const form = readProfileForm(req.body);
    const svc = h.services(req).profiles;
    let p: BounceProfile;
    try {
      p = mode === 'add' ? svc.create(form.name, profileInput(form)) : svc.edit(form.name, profileInput(form));
    } catch (e) {
      const r = rejection(e, profileFieldOf, 'name');
      return showForm(req, reply, mode, form, [r.error], r.status);
    }
    notify(req, `${mode === 'add' ? 'Added' : 'Saved'} the bounce profile ${p.name}. ${APPLIES_NOW}`);
    return reply.redirect(PROFILES);
  };
  app.post(`${PROFILES}/add`, submit('add'));
  app.post(`${PROFILES}/edit`, submit('edit'));

  app.get(`${PROFILES}/delete`, async (req, reply) => {
    const p = ctx.profileStore().get(param(req, 'name'));
    if (!p) return h.notFound(req, reply, `no bounce profile named ${param(req, 'name')}`);
    return page(req, reply, 'confirm', { title: 'Delete Bounce Profile', active: PROFILES, question: `Delete the bounce profile ${p.name}?`, action: `${PROFILES}/delete`, fields: { name: p.name }, cancel: PROFILES, button: 'Delete' });
  });

  app.post(`${PROFILES}/delete`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return h.refuse(req, reply);
    let n: string;
    try {
      n = h.services(req).profiles.delete(field(req.body, 'name'));
    } catch (e) {
      const r = rejection(e, () => 'name', 'name');
      return list(req, reply, `The bounce profile was not deleted: ${r.error.message}`, r.status);
    }
    notify(req, `Deleted the bounce profile ${n}.`);
    return reply.redirect(PROFILES);
  });
}

// ---- SMTP routes -------------------------------------------------------------------------------

interface RouteForm {
  domain: string;
  hosts: string;
}

const routeDisplay = (key: string): string => (key === DEFAULT_ROUTE ? 'ALL (every other domain)' : displayName(key));

function routeFieldOf(e: ValidationError): string {
  return e.field.startsWith('route host') ? 'hosts' : 'domain';
}

function registerRoutePages(app: FastifyInstance, ctx: AdminContext, h: Helpers): void {
  const list = (req: FastifyRequest, reply: FastifyReply) => {
    const all = [...ctx.config.routes()].map(([key, hosts]) => ({ key, display: routeDisplay(key), hosts: routeHostsText(hosts), isDefault: key === DEFAULT_ROUTE }));
    // The default route last, as (Default) is in the destination table: it is what is left over.
    const rows = [...all.filter((r) => !r.isDefault), ...all.filter((r) => r.isDefault)];
    const countText = rows.length === 1 ? 'There is currently 1 SMTP route configured.' : `There are currently ${count(rows.length)} SMTP routes configured.`;
    return page(req, reply, 'network-routes', { title: 'SMTP Routes', active: ROUTES, base: ROUTES, rows, countText });
  };

  const showForm = (req: FastifyRequest, reply: FastifyReply, mode: 'add' | 'edit', form: RouteForm, errors: FieldError[], status = 200) => {
    let display = form.domain;
    try {
      display = routeDisplay(parseRouteKey(form.domain));
    } catch {
      /* shown as typed */
    }
    return page(
      req,
      reply,
      'network-route-form',
      { title: mode === 'add' ? 'Add SMTP Route' : (may(req.principal, 'configure') ? 'Edit SMTP Route' : 'SMTP Route'), active: ROUTES, base: ROUTES, mode, form, display, errors: byField(errors), errorList: errors },
      status,
    );
  };

  const stored = (domain: string): { key: string; hosts: RouteHost[] } | undefined => {
    let key: string;
    try {
      key = parseRouteKey(domain);
    } catch {
      return undefined;
    }
    const hosts = ctx.config.routes().get(key);
    return hosts ? { key, hosts } : undefined;
  };

  app.get(ROUTES, async (req, reply) => list(req, reply));
  app.get(`${ROUTES}/add`, async (req, reply) => showForm(req, reply, 'add', { domain: '', hosts: '' }, []));

  app.get(`${ROUTES}/edit`, async (req, reply) => {
    const r = stored(param(req, 'domain'));
    if (!r) return h.notFound(req, reply, `no route for ${param(req, 'domain')}`);
    return showForm(req, reply, 'edit', { domain: r.key, hosts: routeHostsText(r.hosts) }, []);
  });

  const submit = (mode: 'add' | 'edit') => async (req: FastifyRequest, reply: FastifyReply) => {
    if (!may(req.principal, 'configure')) return h.refuse(req, reply);
    const form: RouteForm = { domain: field(req.body, 'domain'), hosts: field(req.body, 'hosts') };
    // Both fields are checked (with the service's own parsers) so that both messages show at once.
    const errors: FieldError[] = [];
    let hosts: RouteHost[] = [];
    try {
      parseRouteKey(form.domain);
    } catch (e) {
      errors.push(rejection(e, () => 'domain', 'domain').error);
    }
    try {
      hosts = parseRouteHosts(form.hosts);
    } catch (e) {
      errors.push(rejection(e, () => 'hosts', 'hosts').error);
    }
    if (errors.length > 0) return showForm(req, reply, mode, form, errors, 400);
    let key: string;
    try {
      key = h.services(req).routes.put(form.domain, hosts, mode === 'add' ? 'new' : 'edit');
    } catch (e) {
      const r = rejection(e, routeFieldOf, 'domain');
      return showForm(req, reply, mode, form, [r.error], r.status);
    }
    notify(req, `${mode === 'add' ? 'Added' : 'Saved'} the route for ${routeDisplay(key)}: ${routeHostsText(hosts)}. ${APPLIES_NOW}`);
    return reply.redirect(ROUTES);
  };
  app.post(`${ROUTES}/add`, submit('add'));
  app.post(`${ROUTES}/edit`, submit('edit'));

  app.get(`${ROUTES}/delete`, async (req, reply) => {
    const r = stored(param(req, 'domain'));
    if (!r) return h.notFound(req, reply, `no route for ${param(req, 'domain')}`);
    return page(req, reply, 'confirm', {
      title: 'Delete SMTP Route',
      active: ROUTES,
      question:
        r.key === DEFAULT_ROUTE
          ? `Delete the default route ALL (${routeHostsText(r.hosts)})? Mail for domains without a route of their own is then delivered to their MX hosts.`
          : `Delete the route for ${routeDisplay(r.key)} (${routeHostsText(r.hosts)})? Its mail is then delivered by the ALL route if there is one, else to the domain's MX hosts.`,
      action: `${ROUTES}/delete`,
      fields: { domain: r.key },
      cancel: ROUTES,
      button: 'Delete',
    });
  });

  app.post(`${ROUTES}/delete`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return h.refuse(req, reply);
    let key: string;
    try {
      key = h.services(req).routes.delete(field(req.body, 'domain'));
    } catch (e) {
      const r = rejection(e, () => 'domain', 'domain');
      return page(req, reply, 'error', { title: 'Not deleted', active: ROUTES, message: `${r.error.message}; nothing was changed` }, r.status);
    }
    notify(req, `Deleted the route for ${routeDisplay(key)}. ${APPLIES_NOW}`);
    return reply.redirect(ROUTES);
  });
}

// ---- certificates and trusted authorities ------------------------------------------------------

const USE_LABELS: Record<CertificateUse, string> = { listener: 'Relay listener', client: 'Outbound client', admin: 'Administration page' };

/** `2030-01-31` from an ISO or X.509 date text; the text itself when it does not parse. */
function day(text: string): string {
  const t = Date.parse(text);
  return Number.isNaN(t) ? text : new Date(t).toISOString().slice(0, 10);
}

function validity(notBefore: string | undefined, notAfter: string, now: number): string {
  if (Date.parse(notAfter) < now) return 'expired';
  if (notBefore !== undefined && Date.parse(notBefore) > now) return 'not yet valid';
  return '';
}

/** `ab12…` (hex, as stored for authorities) in the `AB:12:…` form certificates use. */
function colonHex(hex: string): string {
  return (hex.toUpperCase().match(/.{1,2}/g) ?? []).join(':');
}

function registerCertificatePages(app: FastifyInstance, ctx: AdminContext, h: Helpers): void {
  const show = (req: FastifyRequest, reply: FastifyReply, o: { errors?: Record<string, string>; error?: string; status?: number } = {}) => {
    const now = Date.now();
    const store = ctx.certificates;
    const certificates = store.list().map((c) => ({
      name: c.name,
      demo: c.demo,
      subject: escapeText(c.subject),
      names: escapeText(c.sans.join(', ')),
      selfSigned: c.subject === c.issuer,
      issuer: escapeText(c.issuer),
      validUntil: day(c.notAfter),
      validity: validity(c.notBefore, c.notAfter, now),
      keyType: c.keyType,
      fingerprint: c.fingerprint,
      uses: store.usesOf(c.name).map((u) => USE_LABELS[u]),
    }));
    const g = ctx.config.globals();
    const authorities = ctx.config.authorities().map((a) => ({
      id: a.id,
      subject: escapeText(a.subject),
      fingerprint: colonHex(a.fingerprint),
      notAfter: day(a.notAfter),
      validity: validity(undefined, a.notAfter, now),
    }));
    return page(
      req,
      reply,
      'network-certificates',
      {
        title: 'Certificates',
        active: CERTIFICATES,
        base: CERTIFICATES,
        certificates,
        choices: certificates.map((c) => ({ value: c.name, label: c.demo ? `${c.name} (not secure)` : c.name })),
        using: store.settings(),
        demoName: DEMO_NAME,
        authorities,
        useSystem: g.useSystemAuthorities,
        errors: o.errors ?? {},
        error: o.error,
      },
      o.status ?? 200,
    );
  };

  app.get(CERTIFICATES, async (req, reply) => show(req, reply));

  const choose = (use: CertificateUse) => async (req: FastifyRequest, reply: FastifyReply) => {
    if (!may(req.principal, 'configure')) return h.refuse(req, reply);
    const name = field(req.body, 'certificate');
    const svc = h.services(req).certificates;
    let text: string;
    try {
      if (use === 'client') {
        const c = svc.useForClient(name === '' ? null : name);
        text = c ? `Outbound connections offer the client certificate ${c.name} (${escapeText(c.subject)}). ${APPLIES_NOW}` : `Outbound connections offer no client certificate. ${APPLIES_NOW}`;
      } else {
        const c = use === 'listener' ? svc.useForListener(name) : svc.useForAdmin(name);
        const who = use === 'listener' ? 'The relay listener' : 'The administration page';
        text = `${who} offers the certificate ${c.name} (${escapeText(c.subject)}) from the next start of the gateway.${c.demo ? ' Warning: the demo certificate is not secure.' : ''}`;
      }
    } catch (e) {
      const r = rejection(e, () => use, use);
      return show(req, reply, { errors: { [use]: r.error.message }, status: r.status });
    }
    notify(req, text);
    return reply.redirect(CERTIFICATES);
  };
  app.post(`${CERTIFICATES}/listener`, choose('listener'));
  app.post(`${CERTIFICATES}/client`, choose('client'));
  app.post(`${CERTIFICATES}/admin`, choose('admin'));

  // The public chain only: no page or route here ever reads a private key.
  app.get(`${CERTIFICATES}/download`, async (req, reply) => {
    const c = ctx.certificates.get(param(req, 'name'));
    if (!c) return h.notFound(req, reply, `no certificate named ${param(req, 'name')}`);
    return reply
      .header('content-type', 'application/x-pem-file')
      .header('content-disposition', `attachment; filename="${c.name}.pem"`)
      .header('cache-control', 'no-store')
      .send(c.chainPem);
  });

  app.get(`${CERTIFICATES}/delete`, async (req, reply) => {
    const c = ctx.certificates.get(param(req, 'name'));
    if (!c) return h.notFound(req, reply, `no certificate named ${param(req, 'name')}`);
    return page(req, reply, 'confirm', {
      title: 'Delete Certificate',
      active: CERTIFICATES,
      question: `Delete the certificate ${c.name} (${escapeText(c.subject)}) and its private key? This cannot be undone.`,
      action: `${CERTIFICATES}/delete`,
      fields: { name: c.name },
      cancel: CERTIFICATES,
      button: 'Delete',
    });
  });

  app.post(`${CERTIFICATES}/delete`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return h.refuse(req, reply);
    let name: string;
    try {
      name = h.services(req).certificates.delete(field(req.body, 'name')).name;
    } catch (e) {
      const r = rejection(e, () => 'name', 'name');
      return show(req, reply, { error: `The certificate was not deleted: ${r.error.message}`, status: r.status });
    }
    notify(req, `Deleted the certificate ${name} and its private key.`);
    return reply.redirect(CERTIFICATES);
  });

  app.post(`${CERTIFICATES}/authorities/add`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return h.refuse(req, reply);
    const file = (req.body as Record<string, unknown> | undefined)?.file;
    const text = Buffer.isBuffer(file) ? file.toString('utf8') : typeof file === 'string' ? file : '';
    if (text.trim() === '') return show(req, reply, { errors: { file: 'choose a PEM file to upload (the file is empty or none was sent); nothing was added' }, status: 400 });
    let added;
    try {
      added = h.services(req).authorities.add(text);
    } catch (e) {
      const r = rejection(e, () => 'file', 'file');
      return show(req, reply, { errors: { file: `${r.error.message}; nothing was added` }, status: r.status });
    }
    notify(
      req,
      added.length === 0
        ? 'Every certificate in the file is already trusted; nothing was added.'
        : [`Added ${plural(added.length, 'trusted authority', 'trusted authorities')}. ${APPLIES_NOW}`, ...added.map((a) => escapeText(a.subject))].join('\n'),
    );
    return reply.redirect(CERTIFICATES);
  });

  const authority = (id: string) => ctx.config.authorities().find((a) => String(a.id) === id);

  app.get(`${CERTIFICATES}/authorities/remove`, async (req, reply) => {
    const a = authority(param(req, 'id'));
    if (!a) return h.notFound(req, reply, `no trusted authority ${param(req, 'id')}`);
    return page(req, reply, 'confirm', {
      title: 'Remove Trusted Authority',
      active: CERTIFICATES,
      question: `Stop trusting the authority ${escapeText(a.subject)} (SHA-256 ${colonHex(a.fingerprint)})?`,
      action: `${CERTIFICATES}/authorities/remove`,
      fields: { id: String(a.id) },
      cancel: CERTIFICATES,
      button: 'Remove',
    });
  });

  app.post(`${CERTIFICATES}/authorities/remove`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return h.refuse(req, reply);
    const id = field(req.body, 'id');
    // By id only: the service also takes a fingerprint prefix, which no form here sends.
    if (!/^\d+$/.test(id) || !authority(id)) return h.notFound(req, reply, `no trusted authority ${id}; nothing was changed`);
    let subject: string;
    try {
      subject = h.services(req).authorities.remove(id).subject;
    } catch (e) {
      const r = rejection(e, () => 'id', 'id');
      return show(req, reply, { error: `The authority was not removed: ${r.error.message}`, status: r.status });
    }
    notify(req, `Removed the trusted authority ${escapeText(subject)}. ${APPLIES_NOW}`);
    return reply.redirect(CERTIFICATES);
  });

  app.post(`${CERTIFICATES}/authorities/system`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return h.refuse(req, reply);
    const v = field(req.body, 'useSystem');
    if (v !== 'on' && v !== 'off') return show(req, reply, { errors: { useSystem: `invalid system authorities ${JSON.stringify(escapeText(v))}: allowed on, off` }, status: 400 });
    h.services(req).authorities.useSystem(v === 'on');
    notify(req, `The system's root authorities are ${v === 'on' ? 'trusted' : 'not trusted'} for outbound verification. ${APPLIES_NOW}`);
    return reply.redirect(CERTIFICATES);
  });
}

// ---- virtual gateways ----------------------------------------------------------------------------

interface GatewayForm {
  name: string;
  address: string;
  hostname: string;
}

interface AssignForm {
  domain: string;
  gateway: string;
}

const senderDisplay = (d: string): string => (d === '*' ? '* (every other sender)' : displayName(d));

function gatewayFieldOf(e: ValidationError): string {
  if (e.field === 'gateway address') return 'address';
  if (e.field === 'gateway hostname') return 'hostname';
  return 'name';
}

function registerGatewayPages(app: FastifyInstance, ctx: AdminContext, h: Helpers): void {
  const list = (req: FastifyRequest, reply: FastifyReply, error?: string, status = 200) => {
    const store = ctx.gatewayStore();
    const assignments = [...store.assignments()].map(([domain, gateway]) => ({ domain, display: senderDisplay(domain), gateway }));
    // `*` last: it is what every sender without an assignment of its own uses.
    assignments.sort((a, b) => Number(a.domain === '*') - Number(b.domain === '*'));
    const gateways = store.list().map((g) => ({ ...g, senders: assignments.filter((a) => a.gateway === g.name).map((a) => a.display) }));
    return page(req, reply, 'network-gateways', { title: 'Virtual Gateways', active: GATEWAYS, base: GATEWAYS, gateways, assignments, error }, status);
  };

  const showForm = (req: FastifyRequest, reply: FastifyReply, mode: 'add' | 'edit', form: GatewayForm, errors: FieldError[], status = 200) =>
    page(
      req,
      reply,
      'network-gateway-form',
      { title: mode === 'add' ? 'Add Virtual Gateway' : (may(req.principal, 'configure') ? 'Edit Virtual Gateway' : 'Virtual Gateway'), active: GATEWAYS, base: GATEWAYS, mode, form, errors: byField(errors), errorList: errors },
      status,
    );

  const showAssign = (req: FastifyRequest, reply: FastifyReply, form: AssignForm, errors: FieldError[], status = 200) => {
    const names = ctx.gatewayStore().list().map((g) => g.name);
    if (form.gateway !== '' && !names.includes(form.gateway)) names.push(form.gateway);
    return page(req, reply, 'network-assign-form', { title: 'Assign Sender Domain', active: GATEWAYS, base: GATEWAYS, form, gateways: names, errors: byField(errors), errorList: errors }, status);
  };

  const find = (name: string): VirtualGateway | undefined => ctx.gatewayStore().list().find((g) => g.name === name);

  app.get(GATEWAYS, async (req, reply) => list(req, reply));
  app.get(`${GATEWAYS}/add`, async (req, reply) => showForm(req, reply, 'add', { name: '', address: '', hostname: '' }, []));

  app.get(`${GATEWAYS}/edit`, async (req, reply) => {
    const g = find(param(req, 'name'));
    if (!g) return h.notFound(req, reply, `no virtual gateway named ${param(req, 'name')}`);
    return showForm(req, reply, 'edit', { name: g.name, address: g.address, hostname: g.hostname ?? '' }, []);
  });

  const submit = (mode: 'add' | 'edit') => async (req: FastifyRequest, reply: FastifyReply) => {
    if (!may(req.principal, 'configure')) return h.refuse(req, reply);
    const form: GatewayForm = { name: field(req.body, 'name'), address: field(req.body, 'address'), hostname: field(req.body, 'hostname') };
    // GatewayService.put adds or replaces; Add must not replace, and Edit must not add.
    const exists = find(form.name.trim()) !== undefined;
    if (mode === 'add' && exists) return showForm(req, reply, mode, form, [{ field: 'name', message: `a virtual gateway named ${form.name.trim()} already exists; edit it instead` }], 409);
    if (mode === 'edit' && !exists) return showForm(req, reply, mode, form, [{ field: 'name', message: `no virtual gateway named ${form.name}; it may have been deleted meanwhile` }], 409);
    const hostname = form.hostname.trim();
    let saved: VirtualGateway;
    try {
      saved = await h.services(req).gateways.put({ name: form.name.trim(), address: form.address.trim(), ...(hostname === '' ? {} : { hostname }) });
    } catch (e) {
      const r = rejection(e, gatewayFieldOf, 'name');
      return showForm(req, reply, mode, form, [r.error], r.status);
    }
    notify(req, `${mode === 'add' ? 'Added' : 'Saved'} the virtual gateway ${saved.name} (${saved.address}). ${APPLIES_NOW}`);
    return reply.redirect(GATEWAYS);
  };
  app.post(`${GATEWAYS}/add`, submit('add'));
  app.post(`${GATEWAYS}/edit`, submit('edit'));

  app.get(`${GATEWAYS}/delete`, async (req, reply) => {
    const g = find(param(req, 'name'));
    if (!g) return h.notFound(req, reply, `no virtual gateway named ${param(req, 'name')}`);
    return page(req, reply, 'confirm', { title: 'Delete Virtual Gateway', active: GATEWAYS, question: `Delete the virtual gateway ${g.name} (${g.address})?`, action: `${GATEWAYS}/delete`, fields: { name: g.name }, cancel: GATEWAYS, button: 'Delete' });
  });

  app.post(`${GATEWAYS}/delete`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return h.refuse(req, reply);
    const name = field(req.body, 'name');
    try {
      h.services(req).gateways.delete(name);
    } catch (e) {
      const r = rejection(e, () => 'name', 'name');
      return list(req, reply, `The virtual gateway was not deleted: ${r.error.message}`, r.status);
    }
    notify(req, `Deleted the virtual gateway ${name}. ${APPLIES_NOW}`);
    return reply.redirect(GATEWAYS);
  });

  app.get(`${GATEWAYS}/assign`, async (req, reply) => showAssign(req, reply, { domain: '', gateway: param(req, 'gateway') }, []));

  app.post(`${GATEWAYS}/assign`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return h.refuse(req, reply);
    const form: AssignForm = { domain: field(req.body, 'domain'), gateway: field(req.body, 'gateway') };
    const domain = form.domain.trim();
    let d: string;
    try {
      d = h.services(req).gateways.assign(domain, form.gateway);
    } catch (e) {
      const r = rejection(e, () => 'domain', 'gateway');
      return showAssign(req, reply, form, [r.error], r.status);
    }
    notify(req, `Mail from ${d === '*' ? 'every other sender' : displayName(d)} leaves from the virtual gateway ${form.gateway}. ${APPLIES_NOW}`);
    return reply.redirect(GATEWAYS);
  });

  app.get(`${GATEWAYS}/unassign`, async (req, reply) => {
    const d = param(req, 'domain');
    const gateway = ctx.gatewayStore().assignments().get(d);
    if (gateway === undefined) return h.notFound(req, reply, `no assignment for ${d}`);
    return page(req, reply, 'confirm', {
      title: 'Remove Assignment',
      active: GATEWAYS,
      question:
        d === '*'
          ? `Remove the assignment of every other sender to ${gateway}? Mail from senders without an assignment then leaves from the system address.`
          : `Remove the assignment of ${displayName(d)} to ${gateway}? Its mail then follows the * assignment, or leaves from the system address.`,
      action: `${GATEWAYS}/unassign`,
      fields: { domain: d },
      cancel: GATEWAYS,
      button: 'Remove',
    });
  });

  app.post(`${GATEWAYS}/unassign`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return h.refuse(req, reply);
    const d = field(req.body, 'domain');
    try {
      h.services(req).gateways.unassign(d);
    } catch (e) {
      const r = rejection(e, () => 'domain', 'domain');
      return list(req, reply, `The assignment was not removed: ${r.error.message}`, r.status);
    }
    notify(req, `Removed the assignment of ${senderDisplay(d)}. ${APPLIES_NOW}`);
    return reply.redirect(GATEWAYS);
  });
}

// ---- registration ------------------------------------------------------------------------------

interface Helpers {
  services: (req: FastifyRequest) => ReturnType<AdminContext['services']>;
  refuse: (req: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>;
  notFound: (req: FastifyRequest, reply: FastifyReply, message: string) => Promise<FastifyReply>;
}

export function registerNetworkPages(app: FastifyInstance, ctx: AdminContext, o: AdminServerOptions): void {
  void o;
  const by = (req: FastifyRequest) => ({ actor: req.principal!.name, client: req.ip });
  const h: Helpers = {
    services: (req) => ctx.services(by(req)),
    refuse: (req, reply) => page(req, reply, 'error', { title: 'Forbidden', message: `${forbiddenText(req.principal, 'configure')}; nothing was changed` }, 403),
    notFound: (req, reply, message) => page(req, reply, 'error', { title: 'Not found', message: escapeText(message) }, 404),
  };
  registerProfilePages(app, ctx, h);
  registerRoutePages(app, ctx, h);
  registerCertificatePages(app, ctx, h);
  registerGatewayPages(app, ctx, h);
}
