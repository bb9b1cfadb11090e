/**
 * Mail Policies > Destination Controls: the table, Add/Edit Destination, Edit Global Settings,
 * Import Table and Export Table, over manage/destinations.ts (the CLI's service).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ConfigError } from '../../config/store.js';
import { exportFile, parseImport } from '../../controls/ini.js';
import { displayName } from '../../controls/names.js';
import { DANE_MODE_LABELS, DANE_MODES, DEFAULT_ENTRY_NAME, IP_PREFERENCE_LABELS, IP_PREFERENCES, TLS_MODE_LABELS, TLS_MODES, type PartialSettings } from '../../controls/types.js';
import { ValidationError } from '../../controls/validate.js';
import { checkDestinationInput, fieldOf, type FieldError } from '../../manage/destination-input.js';
import { checkGlobalsInput } from '../../manage/destinations.js';
import { entriesConfigured, SETTING_NOTES, REQUIRED_TLS_ALERT_NOTE } from '../../cli/format.js';
import type { AdminContext } from '../context.js';
import { defaultTexts, formFromEntry, inputFromForm, readForm, type DestinationForm } from '../destination-form.js';
import { forbiddenText, may, notify, page } from '../render.js';
import type { AdminServerOptions } from '../server.js';
import { TLS_DEMO_WARNING } from './common.js';

export const BASE = '/mail-policies/destination-controls';

const count = (n: number): string => n.toLocaleString('en-US');

/** The table's Rate Limiting cell: Default, or the limits this entry sets. */
function rateLimiting(s: PartialSettings): string {
  const parts: string[] = [];
  if (s.concurrency !== undefined) parts.push(`${count(s.concurrency)} concurrent connections`);
  if (s.messagesPerConnection !== undefined) parts.push(`${count(s.messagesPerConnection)} messages per connection`);
  if (s.recipientLimit !== undefined) parts.push(s.recipientLimit === null ? 'no recipient limit' : `${count(s.recipientLimit.recipients)} recipients per ${count(s.recipientLimit.minutes)} min`);
  if (s.limitPer !== undefined) parts.push(s.limitPer === 'domain' ? 'per domain' : 'per MX IP address');
  if (s.enforce !== undefined) parts.push(s.enforce === 'system' ? 'system wide' : 'per virtual gateway');
  return parts.length === 0 ? 'Default' : parts.join(', ');
}

interface Row {
  name: string;
  display: string;
  ip: string;
  rate: string;
  tls: string;
  bv: string;
  profile: string;
  isDefault: boolean;
}

function rows(ctx: AdminContext): Row[] {
  const t = ctx.config.table();
  const out: Row[] = t.list().map((e) => ({
    name: e.name,
    display: displayName(e.name),
    ip: e.settings.ipPreference ? IP_PREFERENCE_LABELS[e.settings.ipPreference] : 'Default',
    rate: rateLimiting(e.settings),
    tls: e.settings.tls ? TLS_MODE_LABELS[e.settings.tls] : 'Default',
    bv: e.settings.bounceVerification === undefined ? 'Default' : e.settings.bounceVerification ? 'On' : 'Off',
    profile: e.settings.bounceProfile ?? 'Default',
    isDefault: false,
  }));
  const d = t.defaults;
  out.push({
    name: DEFAULT_ENTRY_NAME,
    display: DEFAULT_ENTRY_NAME,
    ip: IP_PREFERENCE_LABELS[d.ipPreference],
    rate: `${count(d.concurrency)} concurrent connections, ${count(d.messagesPerConnection)} messages per connection, ${d.recipientLimit === null ? 'no recipient limit' : `${count(d.recipientLimit.recipients)} recipients per ${count(d.recipientLimit.minutes)} min`}`,
    tls: TLS_MODE_LABELS[d.tls],
    bv: d.bounceVerification ? 'On' : 'Off',
    profile: d.bounceProfile,
    isDefault: true,
  });
  return out;
}

export function registerDestinationPages(app: FastifyInstance, ctx: AdminContext, o: AdminServerOptions): void {
  const by = (req: FastifyRequest) => ({ actor: req.principal!.name, client: req.ip });
  const refuse = (req: FastifyRequest, reply: FastifyReply) =>
    page(req, reply, 'error', { title: 'Forbidden', message: `${forbiddenText(req.principal, 'configure')}; nothing was changed` }, 403);

  app.get('/', async (_req, reply) => reply.redirect(BASE));
  app.get('/favicon.ico', async (_req, reply) => reply.code(204).send());

  app.get(BASE, async (req, reply) => {
    const r = rows(ctx);
    const d = ctx.config.defaults();
    const warnTls = o.demoCertificate() && r.some((x) => x.isDefault ? d.tls !== 'no' : x.tls !== 'Default' && x.tls !== 'No');
    return page(req, reply, 'destinations', { title: 'Destination Controls', active: BASE, rows: r, countText: entriesConfigured(r.length), warnTls, tlsWarning: TLS_DEMO_WARNING, base: BASE });
  });

  const showForm = (req: FastifyRequest, reply: FastifyReply, mode: 'add' | 'edit', form: DestinationForm, errors: FieldError[], status = 200) => {
    const isDefault = mode === 'edit' && form.domain === DEFAULT_ENTRY_NAME;
    const defaults = ctx.config.defaults();
    const errorOf: Record<string, string> = {};
    for (const e of errors) errorOf[e.field] ??= e.message;
    return page(
      req,
      reply,
      'destination-form',
      {
        title: mode === 'add' ? 'Add Destination' : isDefault ? 'Edit Default Destination' : 'Edit Destination',
        active: BASE,
        base: BASE,
        mode,
        isDefault,
        form,
        display: isDefault ? DEFAULT_ENTRY_NAME : form.domain,
        errors: errorOf,
        errorList: errors,
        defaultText: defaultTexts(defaults, ctx.config.globals().requiredTlsAlert),
        ipChoices: IP_PREFERENCES.map((v) => ({ value: v, label: IP_PREFERENCE_LABELS[v] })),
        tlsChoices: TLS_MODES.map((v) => ({ value: v, label: TLS_MODE_LABELS[v] })),
        daneChoices: DANE_MODES.map((v) => ({ value: v, label: DANE_MODE_LABELS[v] })),
        profiles: ctx.profileNames(),
        demo: o.demoCertificate(),
        // Without JavaScript the warning shows on the redisplayed form; admin.js shows it at once.
        warnTls: o.demoCertificate() && (form.tls === 'default' ? defaults.tls !== 'no' : (TLS_MODES as readonly string[]).includes(form.tls) && form.tls !== 'no'),
        tlsWarning: TLS_DEMO_WARNING,
        defaultTls: defaults.tls,
      },
      status,
    );
  };

  app.get(`${BASE}/add`, async (req, reply) => showForm(req, reply, 'add', formFromEntry({}, '', false), []));

  app.get(`${BASE}/edit`, async (req, reply) => {
    const name = String((req.query as Record<string, unknown>).domain ?? '');
    if (name === DEFAULT_ENTRY_NAME) return showForm(req, reply, 'edit', formFromEntry(ctx.config.defaults(), DEFAULT_ENTRY_NAME, true), []);
    const s = ctx.config.entrySettings(name);
    if (!s) return page(req, reply, 'error', { title: 'Not found', message: `no entry for ${name}` }, 404);
    return showForm(req, reply, 'edit', formFromEntry(s, name, false), []);
  });

  const submit = (mode: 'add' | 'edit') => async (req: FastifyRequest, reply: FastifyReply) => {
    if (!may(req.principal, 'configure')) return refuse(req, reply);
    const form = readForm(req.body);
    const entry = mode === 'edit' && form.domain === DEFAULT_ENTRY_NAME ? DEFAULT_ENTRY_NAME : form.domain;
    const checked = checkDestinationInput(inputFromForm(form), entry);
    if (checked.errors.length > 0) return showForm(req, reply, mode, form, checked.errors, 400);
    const svc = ctx.services(by(req)).destinations;
    let name: string;
    try {
      if (entry === DEFAULT_ENTRY_NAME) name = (svc.editDefaults(checked.settings), DEFAULT_ENTRY_NAME);
      else if (mode === 'add') name = svc.newEntry(form.domain, checked.settings);
      else name = svc.editEntry(form.domain, checked.settings, checked.reset);
    } catch (e) {
      if (e instanceof ValidationError) return showForm(req, reply, mode, form, [{ field: fieldOf(e), message: e.message }], 400);
      if (e instanceof ConfigError) return showForm(req, reply, mode, form, [{ field: 'domain', message: e.message }], 409);
      throw e;
    }
    const notes = [`${mode === 'add' ? 'Added' : 'Saved'} ${name === DEFAULT_ENTRY_NAME ? 'the (Default) entry' : displayName(name)}. The change applies to delivery within a second.`];
    if (checked.settings.bounceVerification === true) notes.push(SETTING_NOTES.bounceVerification);
    notify(req, notes.join('\n'));
    return reply.redirect(BASE);
  };
  app.post(`${BASE}/add`, submit('add'));
  app.post(`${BASE}/edit`, submit('edit'));

  app.get(`${BASE}/delete`, async (req, reply) => {
    const name = String((req.query as Record<string, unknown>).domain ?? '');
    if (!ctx.config.entrySettings(name) || name === DEFAULT_ENTRY_NAME) return page(req, reply, 'error', { title: 'Not found', message: `no entry for ${name}` }, 404);
    return page(req, reply, 'confirm', { title: 'Delete Destination', active: BASE, question: `Delete the destination controls for ${displayName(name)}?`, action: `${BASE}/delete`, fields: { domain: name }, cancel: BASE, button: 'Delete' });
  });

  app.post(`${BASE}/delete`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return refuse(req, reply);
    const name = String((req.body as Record<string, unknown>).domain ?? '');
    const n = ctx.services(by(req)).destinations.deleteEntry(name);
    notify(req, `Deleted ${displayName(n)}.`);
    return reply.redirect(BASE);
  });

  const globalsPage = (req: FastifyRequest, reply: FastifyReply, values: Record<string, string>, errors: Record<string, string>, status = 200) =>
    page(req, reply, 'globals', { title: 'Edit Global Settings', active: BASE, base: BASE, values, errors }, status);

  app.get(`${BASE}/global`, async (req, reply) => {
    const g = ctx.config.globals();
    return globalsPage(req, reply, { brokenTlsMemoryHours: String(g.brokenTlsMemoryHours), requiredTlsAlert: g.requiredTlsAlert ? 'on' : 'off', reportRetentionDays: String(g.reportRetentionDays) }, {});
  });

  app.post(`${BASE}/global`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return refuse(req, reply);
    const b = req.body as Record<string, unknown>;
    const values = { brokenTlsMemoryHours: String(b.brokenTlsMemoryHours ?? ''), requiredTlsAlert: String(b.requiredTlsAlert ?? ''), reportRetentionDays: String(b.reportRetentionDays ?? '') };
    let changes;
    try {
      changes = checkGlobalsInput(values);
    } catch (e) {
      if (!(e instanceof ValidationError)) throw e;
      const field = e.field.includes('alert') ? 'requiredTlsAlert' : e.field.includes('retention') ? 'reportRetentionDays' : 'brokenTlsMemoryHours';
      return globalsPage(req, reply, values, { [field]: e.message }, 400);
    }
    ctx.services(by(req)).destinations.setGlobals(changes);
    notify(req, ['Saved the global settings.', ...(changes.requiredTlsAlert ? [REQUIRED_TLS_ALERT_NOTE] : [])].join('\n'));
    return reply.redirect(BASE);
  });

  app.get(`${BASE}/import`, async (req, reply) => page(req, reply, 'import', { title: 'Import Table', active: BASE, base: BASE, errors: [] }));

  app.post(`${BASE}/import`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return refuse(req, reply);
    const file = (req.body as Record<string, unknown>).file;
    const text = Buffer.isBuffer(file) ? file.toString('utf8') : typeof file === 'string' ? file : '';
    if (text === '') return page(req, reply, 'import', { title: 'Import Table', active: BASE, base: BASE, errors: [{ line: 0, message: 'choose a file to import (the file is empty or none was sent)' }] }, 400);
    const r = parseImport(text);
    if (!r.ok) return page(req, reply, 'import', { title: 'Import Table', active: BASE, base: BASE, errors: r.errors }, 400);
    ctx.services(by(req)).destinations.importTable(r.defaults, r.entries, 'web upload');
    notify(req, `Imported the table. ${entriesConfigured(r.entries.length + 1)}`);
    return reply.redirect(BASE);
  });

  app.get(`${BASE}/export`, async (_req, reply) => {
    const t = ctx.config.table();
    return reply
      .header('content-type', 'text/plain; charset=utf-8')
      .header('content-disposition', 'attachment; filename="destconfig.txt"')
      .header('cache-control', 'no-store')
      .send(exportFile(t.defaults, t.list()));
  });
}
