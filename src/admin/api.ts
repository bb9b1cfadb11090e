/**
 * The JSON API under /api/v1/: everything the page can do, for scripts (and later the other
 * nodes of a cluster). Bearer tokens (`postern apitoken`), roles as on the page. Every route
 * has TypeBox schemas for its body and answers: fastify validates requests with them, and the
 * OpenAPI document at /api/v1/openapi.json is generated from the same schemas. The work is done
 * by manage/ — the same functions, messages and audit as the CLI and the page.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static, type TSchema } from '@fastify/type-provider-typebox';
import { DEFAULT_PROFILE, PROFILE_RANGES } from '../bounce/profile.js';
import { exportFile, parseImport } from '../controls/ini.js';
import { displayName, parseDestinationName } from '../controls/names.js';
import { resolveEntry } from '../controls/table.js';
import { DANE_MODES, DEFAULT_ENTRY_NAME, IP_PREFERENCES, TLS_MODES } from '../controls/types.js';
import { ValidationError } from '../controls/validate.js';
import { parseQueueDomain, showMessage, type Selection } from '../queue/control.js';
import { checkDestinationInput, firstError, type DestinationInput } from '../manage/destination-input.js';
import { checkGlobalsInput } from '../manage/destinations.js';
import { parseRouteHosts, routeHostsText } from '../manage/routes.js';
import { ROLES } from '../manage/users.js';
import { plural } from '../cli/format.js';
import { deliveryDns } from '../dns/client.js';
import { ALERT_CLASSES, AlertStore, SEVERITIES } from '../config/alerts.js';
import { BvKeyStore } from '../config/bounce-verification.js';
import { LocalDomainStore } from '../config/local-domains.js';
import { bvSettings } from '../manage/bounce-verification.js';
import { explain } from '../manage/explain.js';
import { tlsReport } from '../manage/tls-report.js';
import { TLSRPT_FIELDS, tlsRptState } from '../manage/tlsrpt-settings.js';
import { clusterTlsReport } from '../cluster/reports.js';
import type { AdminContext } from './context.js';
import { forbiddenText, may } from './render.js';

const lit = <T extends readonly string[]>(values: T) => Type.Union(values.map((v) => Type.Literal(v)));
const orDefault = (s: TSchema) => Type.Union([s, Type.Literal('default')]);
const closed = { additionalProperties: false } as const;

const RecipientLimit = Type.Object({ recipients: Type.Integer({ minimum: 0, maximum: 1_000_000_000 }), minutes: Type.Integer({ minimum: 1, maximum: 60 }) }, closed);

/** A destination's settings as stored: an absent key inherits from (Default). */
const SettingsProps = {
  ipPreference: Type.Optional(lit(IP_PREFERENCES)),
  concurrency: Type.Optional(Type.Integer()),
  messagesPerConnection: Type.Optional(Type.Integer()),
  recipientLimit: Type.Optional(Type.Union([RecipientLimit, Type.Null()])),
  limitPer: Type.Optional(lit(['domain', 'mx-ip'] as const)),
  enforce: Type.Optional(lit(['system', 'virtual-gateway'] as const)),
  tls: Type.Optional(lit(TLS_MODES)),
  dane: Type.Optional(lit(DANE_MODES)),
  mtaSts: Type.Optional(Type.Boolean()),
  bounceVerification: Type.Optional(Type.Boolean()),
  bounceProfile: Type.Optional(Type.String()),
};
/** Beyond those, an entry (never (Default)) may override the global required-TLS alert switch. */
const StoredSettings = Type.Object({ ...SettingsProps, tlsAlert: Type.Optional(Type.Boolean()) });
const FullSettings = Type.Required(Type.Object(SettingsProps));

/** What a request may set; `default` puts a setting back to Default (not on (Default) itself). */
const SettingsChange = Type.Object(
  {
    ipPreference: Type.Optional(orDefault(lit(IP_PREFERENCES))),
    concurrency: Type.Optional(orDefault(Type.Integer({ minimum: 1, maximum: 1000 }))),
    messagesPerConnection: Type.Optional(orDefault(Type.Integer({ minimum: 1, maximum: 1000 }))),
    recipientLimit: Type.Optional(Type.Union([RecipientLimit, Type.Literal('none'), Type.Literal('default')])),
    limitPer: Type.Optional(orDefault(lit(['domain', 'mx-ip'] as const))),
    enforce: Type.Optional(orDefault(lit(['system', 'virtual-gateway'] as const))),
    tls: Type.Optional(orDefault(lit(TLS_MODES))),
    /** DANE (RFC 7672): TLSA records under DNSSEC make STARTTLS mandatory and authenticate the MX host; required: only hosts with usable records. */
    dane: Type.Optional(orDefault(lit(DANE_MODES))),
    /** MTA-STS (RFC 8461): a policy in enforce mode limits delivery to its listed MX hosts over verified TLS. */
    mtaSts: Type.Optional(orDefault(Type.Boolean())),
    bounceVerification: Type.Optional(orDefault(Type.Boolean())),
    bounceProfile: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    /** Entries only: true/false, or `default` to follow the global switch (requiredTlsAlert). */
    tlsAlert: Type.Optional(orDefault(Type.Boolean())),
  },
  closed,
);
const NewDestination = Type.Object({ name: Type.String({ minLength: 1, maxLength: 260 }), ...SettingsChange.properties }, closed);
const Destination = Type.Object({ name: Type.String(), display: Type.String(), settings: StoredSettings, resolved: Type.Optional(FullSettings) });
const Table = Type.Object({ default: FullSettings, entries: Type.Array(Destination) });
const BvSettings = Type.Object({ invalidAction: lit(['reject', 'add-header'] as const), header: Type.String(), untaggedValid: Type.Boolean() });
const BvSettingsChange = Type.Object({ invalidAction: Type.Optional(lit(['reject', 'add-header'] as const)), header: Type.Optional(Type.String({ minLength: 3, maxLength: 1000 })), untaggedValid: Type.Optional(Type.Boolean()) }, closed);
const BvKeyInfo = Type.Object({ number: Type.Integer(), created: Type.String(), retired: Type.Union([Type.String(), Type.Null()]) });
const BvKeyWithText = Type.Object({ ...BvKeyInfo.properties, text: Type.String() });
const BvState = Type.Object({ settings: BvSettings, keys: Type.Array(BvKeyInfo) });
const Globals = Type.Object({ brokenTlsMemoryHours: Type.Number(), requiredTlsAlert: Type.Boolean(), useSystemAuthorities: Type.Boolean(), reportRetentionDays: Type.Integer() });
const GlobalsChange = Type.Object(
  { brokenTlsMemoryHours: Type.Optional(Type.Number({ minimum: 0, maximum: 8760 })), requiredTlsAlert: Type.Optional(Type.Boolean()), reportRetentionDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3660 })) },
  closed,
);
const ErrorBody = Type.Object({ error: Type.String(), field: Type.Optional(Type.String()), message: Type.String(), errors: Type.Optional(Type.Array(Type.Object({ line: Type.Integer(), message: Type.String() }))) });
const Done = Type.Object({ message: Type.String() });
const NameParam = Type.Object({ name: Type.String({ minLength: 1, maxLength: 260 }) });
const Route = Type.Object({ domain: Type.String(), hosts: Type.Array(Type.String()) });
const RouteChange = Type.Object({ hosts: Type.Array(Type.String({ minLength: 1, maxLength: 300 }), { minItems: 1, maxItems: 32 }) }, closed);

const profileProps = Object.fromEntries(
  Object.entries(DEFAULT_PROFILE)
    .filter(([k]) => k !== 'name')
    .map(([k, v]) => {
      const range = (PROFILE_RANGES as Record<string, { min: number; max: number }>)[k];
      const s = range ? Type.Integer({ minimum: range.min, maximum: range.max }) : typeof v === 'boolean' ? Type.Boolean() : k === 'alternateAddress' ? Type.Union([Type.String(), Type.Null()]) : Type.String();
      return [k, Type.Optional(s)];
    }),
);
const ProfileChange = Type.Object(profileProps, closed);
const NewProfile = Type.Object({ name: Type.String({ minLength: 1, maxLength: 64 }), ...profileProps }, closed);
const Profile = Type.Object({ name: Type.String(), ...profileProps, usedBy: Type.Optional(Type.Array(Type.String())) });

const Certificate = Type.Object({ name: Type.String(), subject: Type.String(), issuer: Type.String(), notAfter: Type.String(), fingerprint: Type.String(), demo: Type.Boolean(), uses: Type.Array(Type.String()) });
const Authority = Type.Object({ id: Type.Integer(), subject: Type.String(), fingerprint: Type.String(), notAfter: Type.String() });
const AuthorityUpload = Type.Object({ pem: Type.String({ minLength: 1, maxLength: 1_048_576 }) }, closed);
const Gateway = Type.Object({ name: Type.String(), address: Type.String(), hostname: Type.Optional(Type.String()) });
const GatewayChange = Type.Object({ address: Type.String({ minLength: 1, maxLength: 64 }), hostname: Type.Optional(Type.String({ minLength: 1, maxLength: 253 })) }, closed);
const Assignment = Type.Object({ senderDomain: Type.String(), gateway: Type.String() });
const CertificateUses = Type.Object({ listener: Type.Optional(Type.String({ minLength: 1 })), client: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Null()])), admin: Type.Optional(Type.String({ minLength: 1 })) }, closed);
const CertificateUsesNow = Type.Object({ listener: Type.String(), client: Type.Union([Type.String(), Type.Null()]), admin: Type.String() });

const QueueQuery = Type.Object({ state: Type.Optional(lit(['pending', 'queued', 'deferred', 'delivered', 'bounced', 'deleted'] as const)), domain: Type.Optional(Type.String({ maxLength: 260 })) }, closed);
const QueueRow = Type.Object({
  mid: Type.Integer(), rid: Type.Integer(), from: Type.String(), to: Type.String(), domain: Type.String(), state: Type.String(), attempts: Type.Integer(),
  nextAttempt: Type.Union([Type.Integer(), Type.Null()]), lastReply: Type.Union([Type.String(), Type.Null()]), finishedAt: Type.Union([Type.Integer(), Type.Null()]),
});
const QueueSelection = Type.Object({ mid: Type.Optional(Type.Integer({ minimum: 1 })), domain: Type.Optional(Type.String({ minLength: 1, maxLength: 260 })), all: Type.Optional(Type.Literal(true)) }, closed);
const Acted = Type.Object({ recipients: Type.Integer(), messages: Type.Array(Type.Object({ mid: Type.Integer(), rids: Type.Array(Type.Integer()), to: Type.Array(Type.String()) })) });

const User = Type.Object({ name: Type.String(), role: lit(ROLES), mustChange: Type.Boolean(), created: Type.String(), passwordChanged: Type.String() });
const NewUser = Type.Object({ name: Type.String({ minLength: 1, maxLength: 32 }), role: lit(ROLES), password: Type.String({ minLength: 1, maxLength: 1024 }) }, closed);

const ReportQuery = Type.Object(
  { last: Type.Optional(lit(['1h', '1d', '7d', '30d', '90d', '1y'] as const)), from: Type.Optional(Type.String({ maxLength: 40 })), to: Type.Optional(Type.String({ maxLength: 40 })), domain: Type.Optional(Type.String({ maxLength: 260 })), cluster: Type.Optional(lit(['true', 'false'] as const)) },
  closed,
);

const AlertRecipient = Type.Object({ address: Type.String(), classes: Type.Array(Type.String()), severities: Type.Array(Type.String()) });
const AlertRecipientBody = Type.Object({ address: Type.String({ minLength: 3, maxLength: 320 }), classes: Type.Optional(Type.Array(lit(ALERT_CLASSES), { minItems: 1 })), severities: Type.Optional(Type.Array(lit(SEVERITIES), { minItems: 1 })) }, closed);
const AlertState = Type.Object({
  settings: Type.Object({ from: Type.Union([Type.String(), Type.Null()]), intervalSeconds: Type.Integer(), waitMinutes: Type.Integer(), queueRecipients: Type.Integer(), requiredTlsAlert: Type.Boolean() }),
  recipients: Type.Array(AlertRecipient),
});
const AlertSettingsChange = Type.Object(
  {
    from: Type.Optional(Type.Union([Type.String({ minLength: 3, maxLength: 320 }), Type.Null()])),
    intervalSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 604_800 })),
    waitMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 43_200 })),
    queueRecipients: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000_000 })),
  },
  closed,
);

/** SMTP TLS Reporting (RFC 8460): stored settings (null: the default) and the values in effect. */
const TlsRptState = Type.Object({
  settings: Type.Object({ enabled: Type.Boolean(), organization: Type.Union([Type.String(), Type.Null()]), contact: Type.Union([Type.String(), Type.Null()]), sender: Type.Union([Type.String(), Type.Null()]) }),
  effective: Type.Object({ enabled: Type.Boolean(), organization: Type.String(), contact: Type.String(), sender: Type.String() }),
});
/** null puts a text setting back to its default (organization: the host name; contact: the sender; sender: noreply-smtp-tls-reporting@ the host name). */
const TlsRptSettingsChange = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean()),
    organization: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 1000 }), Type.Null()])),
    contact: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 1000 }), Type.Null()])),
    sender: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 320 }), Type.Null()])),
  },
  closed,
);

const errors = { 400: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody };

function selectionOf(b: Static<typeof QueueSelection>): Selection {
  const given = [b.mid !== undefined, b.domain !== undefined, b.all === true].filter(Boolean).length;
  if (given !== 1) throw new ValidationError('selection', JSON.stringify(b), 'exactly one of mid, domain, all');
  if (b.mid !== undefined) return { mid: b.mid };
  if (b.domain !== undefined) return { domain: parseQueueDomain(b.domain) };
  return { all: true };
}

export function registerApi(api: FastifyInstance, ctx: AdminContext): void {
  const by = (req: FastifyRequest) => ({ actor: `token:${req.principal!.name}`, client: req.ip });
  const svc = (req: FastifyRequest) => ctx.services(by(req));
  /** Throws 403 unless the token's role may do `what`. */
  const need = (req: FastifyRequest, reply: FastifyReply, what: 'queue' | 'configure'): boolean => {
    if (may(req.principal, what)) return true;
    void reply.code(403).send({ error: 'forbidden', message: `${forbiddenText(req.principal, what)}; nothing was changed` });
    return false;
  };
  const destination = (name: string) => {
    const t = ctx.config.table();
    const s = ctx.config.entrySettings(name);
    if (!s || name === DEFAULT_ENTRY_NAME) return undefined;
    return { name, display: displayName(name), settings: s, resolved: resolveEntry({ name, settings: s }, t.defaults).settings };
  };
  /** Checks a body with the CLI's functions; a rejected value throws the first ValidationError. */
  const checked = (input: DestinationInput, entry: string) => {
    const c = checkDestinationInput(input, entry);
    const e = firstError(c);
    if (e) throw e;
    return c;
  };

  api.get('/openapi.json', { schema: { hide: true } }, async () => api.swagger());

  // ---- destinations ----------------------------------------------------------------------
  api.get('/destinations', { schema: { tags: ['destinations'], summary: 'The whole table', response: { 200: Table } } }, async () => {
    const t = ctx.config.table();
    return { default: t.defaults, entries: t.list().map((e) => ({ name: e.name, display: displayName(e.name), settings: e.settings })) };
  });

  api.get('/destinations/:name', { schema: { tags: ['destinations'], summary: 'One entry, with the values it resolves to', params: NameParam, response: { 200: Destination, ...errors } } }, async (req, reply) => {
    const { name } = req.params as Static<typeof NameParam>;
    const d = destination(parseDestinationName(name));
    return d ?? reply.code(404).send({ error: 'not found', message: `no entry for ${name}` });
  });

  api.get('/destinations/:name/effective', { schema: { tags: ['destinations'], summary: 'What delivery would do for a domain, and why (destconfig explain)', params: NameParam } }, async (req) => {
    const e = await explain(ctx.config.snapshot(), (req.params as Static<typeof NameParam>).name, {
      dns: deliveryDns({ dnsServers: ctx.delivery.dnsServers, dnssecResolvers: ctx.delivery.dnssecResolvers }),
      smtpPort: ctx.delivery.smtpPort,
      broken: ctx.queue.brokenTls(Date.now()),
    });
    return e;
  });

  api.post('/destinations', { schema: { tags: ['destinations'], summary: 'Add a destination', body: NewDestination, response: { 201: Destination, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const { name, ...rest } = req.body as Static<typeof NewDestination>;
    const c = checked(rest as DestinationInput, name);
    const n = svc(req).destinations.newEntry(name, c.settings);
    return reply.code(201).send(destination(n));
  });

  api.put('/destinations/:name', { schema: { tags: ['destinations'], summary: 'Change an entry; "default" puts a setting back to Default', params: NameParam, body: SettingsChange, response: { 200: Destination, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const { name } = req.params as Static<typeof NameParam>;
    const c = checked(req.body as DestinationInput, name);
    const n = svc(req).destinations.editEntry(name, c.settings, c.reset);
    return destination(n);
  });

  api.delete('/destinations/:name', { schema: { tags: ['destinations'], summary: 'Delete an entry', params: NameParam, response: { 200: Done, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const { name } = req.params as Static<typeof NameParam>;
    const n = svc(req).destinations.deleteEntry(name);
    return { message: `deleted ${n}` };
  });

  api.get('/default', { schema: { tags: ['destinations'], summary: 'The (Default) entry', response: { 200: FullSettings } } }, async () => ctx.config.defaults());

  api.put('/default', { schema: { tags: ['destinations'], summary: 'Change the (Default) entry', body: SettingsChange, response: { 200: FullSettings, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const c = checked(req.body as DestinationInput, DEFAULT_ENTRY_NAME);
    return svc(req).destinations.editDefaults(c.settings);
  });

  api.get('/global-settings', { schema: { tags: ['destinations'], summary: 'The global settings (SETUP)', response: { 200: Globals } } }, async () => ctx.config.globals());

  api.put('/global-settings', { schema: { tags: ['destinations'], summary: 'Change the global settings', body: GlobalsChange, response: { 200: Globals, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    return svc(req).destinations.setGlobals(checkGlobalsInput(req.body as Static<typeof GlobalsChange>));
  });

  api.get('/destinations-file', { schema: { tags: ['destinations'], summary: 'Export: the file destconfig export writes', produces: ['text/plain'] } }, async (_req, reply) => {
    const t = ctx.config.table();
    return reply.header('content-type', 'text/plain; charset=utf-8').send(exportFile(t.defaults, t.list()));
  });

  api.put('/destinations-file', { schema: { tags: ['destinations'], summary: 'Import: replace the whole table; any error changes nothing', consumes: ['text/plain'], body: Type.String({ maxLength: 1_048_576 }), response: { 200: Done, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const r = parseImport(req.body as string);
    if (!r.ok) return reply.code(400).send({ error: 'invalid', field: 'file', message: `${r.errors.length} error${r.errors.length === 1 ? '' : 's'} in the file; the table was not changed`, errors: r.errors });
    svc(req).destinations.importTable(r.defaults, r.entries, 'API upload');
    return { message: `imported (Default) and ${plural(r.entries.length, 'entry', 'entries')}` };
  });

  // ---- reports ------------------------------------------------------------------------------
  api.get('/reports/tls', { schema: { tags: ['reports'], summary: 'TLS Connections: per domain over a window, with totals and a series for a graph', querystring: ReportQuery } }, async (req) => {
    const q = req.query as Static<typeof ReportQuery>;
    return q.cluster === 'true' ? clusterTlsReport(ctx.dataDir, q, Date.now()) : tlsReport(ctx.report, q, Date.now());
  });

  // ---- SMTP routes -------------------------------------------------------------------------
  api.get('/routes', { schema: { tags: ['routes'], response: { 200: Type.Array(Route) } } }, async () =>
    [...ctx.config.routes()].map(([domain, hosts]) => ({ domain, hosts: routeHostsText(hosts).split(', ') })),
  );
  api.put('/routes/:name', { schema: { tags: ['routes'], summary: 'Create or replace a route', params: NameParam, body: RouteChange, response: { 200: Route, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const { name } = req.params as Static<typeof NameParam>;
    const hosts = parseRouteHosts((req.body as Static<typeof RouteChange>).hosts.join(','));
    const exists = ctx.config.routes().has(name.trim().toLowerCase());
    const d = svc(req).routes.put(name, hosts, exists ? 'edit' : 'new');
    return { domain: d, hosts: routeHostsText(hosts).split(', ') };
  });
  api.delete('/routes/:name', { schema: { tags: ['routes'], params: NameParam, response: { 200: Done, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    return { message: `deleted route ${svc(req).routes.delete((req.params as Static<typeof NameParam>).name)}` };
  });

  // ---- bounce profiles -----------------------------------------------------------------------
  api.get('/profiles', { schema: { tags: ['profiles'], response: { 200: Type.Array(Profile) } } }, async () => {
    const s = ctx.profileStore();
    const usage = s.usage();
    return s.list().map((p) => ({ ...p, usedBy: usage.get(p.name) ?? [] }));
  });
  api.post('/profiles', { schema: { tags: ['profiles'], body: NewProfile, response: { 201: Profile, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const { name, ...rest } = req.body as Static<typeof NewProfile>;
    return reply.code(201).send(svc(req).profiles.create(name, rest));
  });
  api.put('/profiles/:name', { schema: { tags: ['profiles'], params: NameParam, body: ProfileChange, response: { 200: Profile, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    return svc(req).profiles.edit((req.params as Static<typeof NameParam>).name, req.body as Static<typeof ProfileChange>);
  });
  api.delete('/profiles/:name', { schema: { tags: ['profiles'], params: NameParam, response: { 200: Done, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    return { message: `deleted profile ${svc(req).profiles.delete((req.params as Static<typeof NameParam>).name)}` };
  });

  // ---- certificates and authorities (never a private key) ---------------------------------
  api.get('/certificates', { schema: { tags: ['certificates'], response: { 200: Type.Array(Certificate) } } }, async () =>
    ctx.certificates.list().map((c) => ({ ...c, uses: ctx.certificates.usesOf(c.name) })),
  );
  api.put('/certificate-uses', { schema: { tags: ['certificates'], summary: 'Choose the certificates of the relay listener, the outbound client (null: none) and the page', body: CertificateUses, response: { 200: CertificateUsesNow, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const b = req.body as Static<typeof CertificateUses>;
    const s = svc(req).certificates;
    if (b.listener !== undefined) s.useForListener(b.listener);
    if (b.client !== undefined) s.useForClient(b.client);
    if (b.admin !== undefined) s.useForAdmin(b.admin);
    return ctx.certificates.settings();
  });
  api.get('/certificate-uses', { schema: { tags: ['certificates'], response: { 200: CertificateUsesNow } } }, async () => ctx.certificates.settings());
  api.put('/authorities/system', { schema: { tags: ['certificates'], summary: "Whether the system's root store is trusted too", body: Type.Object({ on: Type.Boolean() }, closed), response: { 200: Globals, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    return svc(req).authorities.useSystem((req.body as { on: boolean }).on);
  });
  api.get('/authorities', { schema: { tags: ['certificates'], response: { 200: Type.Array(Authority) } } }, async () => ctx.config.authorities());
  api.post('/authorities', { schema: { tags: ['certificates'], summary: 'Trust the PEM certificates given', body: AuthorityUpload, response: { 201: Type.Array(Authority), ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    return reply.code(201).send(svc(req).authorities.add((req.body as Static<typeof AuthorityUpload>).pem));
  });
  api.delete('/authorities/:name', { schema: { tags: ['certificates'], summary: 'Remove an authority by id or fingerprint', params: NameParam, response: { 200: Done, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const a = svc(req).authorities.remove((req.params as Static<typeof NameParam>).name);
    return { message: `removed ${a.subject}` };
  });

  // ---- virtual gateways ------------------------------------------------------------------------
  api.get('/gateways', { schema: { tags: ['gateways'], response: { 200: Type.Array(Gateway) } } }, async () => ctx.gatewayStore().list());
  api.put('/gateways/:name', { schema: { tags: ['gateways'], summary: 'Create or replace a virtual gateway', params: NameParam, body: GatewayChange, response: { 200: Gateway, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const b = req.body as Static<typeof GatewayChange>;
    return svc(req).gateways.put({ name: (req.params as Static<typeof NameParam>).name, address: b.address, hostname: b.hostname });
  });
  api.delete('/gateways/:name', { schema: { tags: ['gateways'], params: NameParam, response: { 200: Done, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const { name } = req.params as Static<typeof NameParam>;
    svc(req).gateways.delete(name);
    return { message: `deleted gateway ${name}` };
  });
  api.get('/gateway-assignments', { schema: { tags: ['gateways'], response: { 200: Type.Array(Assignment) } } }, async () =>
    [...ctx.gatewayStore().assignments()].map(([senderDomain, gateway]) => ({ senderDomain, gateway })),
  );
  api.put('/gateway-assignments/:name', { schema: { tags: ['gateways'], summary: 'Send mail from a sender domain (or * for any) through a gateway', params: NameParam, body: Type.Object({ gateway: Type.String({ minLength: 1, maxLength: 64 }) }, closed), response: { 200: Assignment, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const gateway = (req.body as { gateway: string }).gateway;
    return { senderDomain: svc(req).gateways.assign((req.params as Static<typeof NameParam>).name, gateway), gateway };
  });
  api.delete('/gateway-assignments/:name', { schema: { tags: ['gateways'], params: NameParam, response: { 200: Done, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const { name } = req.params as Static<typeof NameParam>;
    svc(req).gateways.unassign(name);
    return { message: `${name} no longer assigned` };
  });

  // ---- the queue --------------------------------------------------------------------------------
  api.get('/queue', { schema: { tags: ['queue'], querystring: QueueQuery, response: { 200: Type.Array(QueueRow) } } }, async (req) => {
    const q = req.query as Static<typeof QueueQuery>;
    return ctx.queue.list({ state: q.state, domain: q.domain === undefined ? undefined : parseQueueDomain(q.domain) });
  });
  api.get('/queue/:name', { schema: { tags: ['queue'], summary: 'One message (MID) and the history of its recipients', params: NameParam } }, async (req, reply) => {
    const mid = Number((req.params as Static<typeof NameParam>).name);
    const v = Number.isSafeInteger(mid) && mid > 0 ? showMessage(ctx.queue, mid) : undefined;
    if (!v) return reply.code(404).send({ error: 'not found', field: 'mid', message: `no message with MID ${(req.params as Static<typeof NameParam>).name}` });
    return { ...v, message: undefined };
  });
  api.post('/queue/delivernow', { schema: { tags: ['queue'], body: Type.Object({ domain: Type.Optional(Type.String({ minLength: 1, maxLength: 260 })) }, closed), response: { 200: Type.Object({ recipients: Type.Integer(), messages: Type.Integer() }), ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'queue')) return reply;
    const d = (req.body as { domain?: string }).domain;
    return svc(req).queue.deliverNow(d === undefined ? undefined : parseQueueDomain(d));
  });
  api.post('/queue/bounce', { schema: { tags: ['queue'], body: QueueSelection, response: { 200: Acted, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'queue')) return reply;
    return svc(req).queue.bounce(ctx.config.snapshot(), selectionOf(req.body as Static<typeof QueueSelection>), { hostname: ctx.hostname });
  });
  api.post('/queue/delete', { schema: { tags: ['queue'], body: QueueSelection, response: { 200: Acted, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'queue')) return reply;
    return svc(req).queue.delete(selectionOf(req.body as Static<typeof QueueSelection>));
  });

  // ---- alerts ---------------------------------------------------------------------------------
  const alertState = () => {
    const g = ctx.config.globals();
    return {
      settings: { from: g.alertFrom, intervalSeconds: g.alertIntervalSeconds, waitMinutes: g.alertWaitMinutes, queueRecipients: g.alertQueueRecipients, requiredTlsAlert: g.requiredTlsAlert },
      recipients: new AlertStore(ctx.config).list(),
    };
  };
  api.get('/alerts', { schema: { tags: ['alerts'], response: { 200: AlertState } } }, async () => alertState());
  api.post('/alerts', { schema: { tags: ['alerts'], summary: 'Send alerts to an address', body: AlertRecipientBody, response: { 201: AlertRecipient, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const b = req.body as Static<typeof AlertRecipientBody>;
    return reply.code(201).send(svc(req).alerts.add(b.address, { classes: b.classes?.join(','), severities: b.severities?.join(',') }));
  });
  api.put('/alerts/:name', { schema: { tags: ['alerts'], params: NameParam, body: Type.Object({ classes: Type.Optional(Type.Array(lit(ALERT_CLASSES), { minItems: 1 })), severities: Type.Optional(Type.Array(lit(SEVERITIES), { minItems: 1 })) }, closed), response: { 200: AlertRecipient, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const b = req.body as { classes?: string[]; severities?: string[] };
    return svc(req).alerts.edit((req.params as Static<typeof NameParam>).name, { classes: b.classes?.join(','), severities: b.severities?.join(',') });
  });
  api.delete('/alerts/:name', { schema: { tags: ['alerts'], params: NameParam, response: { 200: Done, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const { name } = req.params as Static<typeof NameParam>;
    svc(req).alerts.delete(name);
    return { message: `${name} receives no more alerts` };
  });
  api.put('/alert-settings', { schema: { tags: ['alerts'], body: AlertSettingsChange, response: { 200: AlertState, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const b = req.body as Static<typeof AlertSettingsChange>;
    svc(req).alerts.setup({ from: b.from === null ? 'default' : b.from, interval: b.intervalSeconds, waitMinutes: b.waitMinutes, queueRecipients: b.queueRecipients });
    return alertState();
  });

  // ---- SMTP TLS Reporting (RFC 8460) ----------------------------------------------------------
  const tlsrptState = () => tlsRptState(ctx.config.globals(), ctx.hostname);
  api.get('/tlsrpt-settings', { schema: { tags: ['reports'], summary: 'The settings of the daily SMTP TLS reports (RFC 8460): as stored (null: the default) and in effect', response: { 200: TlsRptState } } }, async () => tlsrptState());
  api.put('/tlsrpt-settings', { schema: { tags: ['reports'], summary: 'Change the TLS reporting settings; null puts a text setting back to its default', body: TlsRptSettingsChange, response: { 200: TlsRptState, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const b = req.body as Static<typeof TlsRptSettingsChange>;
    const text = (v: string | null | undefined) => (v === null ? 'default' : v);
    try {
      svc(req).tlsrpt.setup({ enabled: b.enabled, organization: text(b.organization), contact: text(b.contact), sender: text(b.sender) });
    } catch (e) {
      // The service's message; the field as this body names it.
      const field = e instanceof ValidationError ? (Object.keys(TLSRPT_FIELDS) as (keyof typeof TLSRPT_FIELDS)[]).find((k) => TLSRPT_FIELDS[k] === e.field) : undefined;
      if (e instanceof ValidationError && field) return reply.code(400).send({ error: 'invalid', field, message: e.message });
      throw e;
    }
    return tlsrptState();
  });

  // ---- bounce verification and the public listener's local domains ------------------------------
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  // Reads go to the stores: nothing is changed, so no service (and no actor) is needed.
  const bvState = () => ({
    settings: bvSettings(ctx.config.globals()),
    keys: new BvKeyStore(ctx.config, ctx.dataDir).list().map((k) => ({ number: k.number, created: iso(k.created)!, retired: iso(k.retired) })),
  });
  api.get('/bounce-verification', { schema: { tags: ['bounce verification'], summary: 'Settings and keys (never a key text)', response: { 200: BvState } } }, async () => bvState());
  api.put('/bounce-verification/settings', { schema: { tags: ['bounce verification'], body: BvSettingsChange, response: { 200: BvState, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    svc(req).bv.setup(req.body as Static<typeof BvSettingsChange>);
    return bvState();
  });
  api.post('/bounce-verification/keys', { schema: { tags: ['bounce verification'], summary: 'Add a tagging key (random unless given); its text is in this answer only', body: Type.Object({ key: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })) }, closed), response: { 201: BvKeyWithText, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const k = svc(req).bv.addKey((req.body as { key?: string }).key);
    return reply.code(201).send({ number: k.number, created: iso(k.created)!, retired: null, text: k.text });
  });
  api.post('/bounce-verification/keys/:name/retire', { schema: { tags: ['bounce verification'], params: NameParam, response: { 200: BvKeyInfo, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const k = svc(req).bv.retireKey((req.params as Static<typeof NameParam>).name);
    return { number: k.number, created: iso(k.created)!, retired: iso(k.retired) };
  });
  api.get('/local-domains', { schema: { tags: ['bounce verification'], summary: "The organisation's local domains (the public listener accepts only these)", response: { 200: Type.Array(Type.String()) } } }, async () => new LocalDomainStore(ctx.config).list());
  api.post('/local-domains', { schema: { tags: ['bounce verification'], body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 260 }) }, closed), response: { 201: Done, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const n = svc(req).publicListener.addLocalDomain((req.body as { name: string }).name);
    return reply.code(201).send({ message: `${n} is a local domain` });
  });
  api.delete('/local-domains/:name', { schema: { tags: ['bounce verification'], params: NameParam, response: { 200: Done, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const n = svc(req).publicListener.deleteLocalDomain((req.params as Static<typeof NameParam>).name);
    return { message: `${n} is no longer a local domain` };
  });

  // ---- users ------------------------------------------------------------------------------------
  api.get('/users', { schema: { tags: ['users'], response: { 200: Type.Array(User) } } }, async () => ctx.users.list());
  api.post('/users', { schema: { tags: ['users'], body: NewUser, response: { 201: User, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const b = req.body as Static<typeof NewUser>;
    return reply.code(201).send(await ctx.users.add(b.name, b.role, b.password, by(req)));
  });
  api.put('/users/:name', { schema: { tags: ['users'], summary: "Change a user's role", params: NameParam, body: Type.Object({ role: lit(ROLES) }, closed), response: { 200: User, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    return ctx.users.setRole((req.params as Static<typeof NameParam>).name, (req.body as { role: (typeof ROLES)[number] }).role, by(req));
  });
  api.delete('/users/:name', { schema: { tags: ['users'], params: NameParam, response: { 200: Done, ...errors } } }, async (req, reply) => {
    if (!need(req, reply, 'configure')) return reply;
    const { name } = req.params as Static<typeof NameParam>;
    ctx.users.delete(name, by(req));
    return { message: `deleted user ${name}` };
  });
}
