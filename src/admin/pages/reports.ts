/**
 * Monitor > TLS Connections: the report's table over a chosen range, per domain when one is
 * clicked, CSV export, and a graph of TLS and clear connections drawn in the browser (uPlot,
 * served from node_modules) from the same JSON the API returns (/api/v1/reports/tls). Below it,
 * the settings of the daily SMTP TLS reports (RFC 8460) sent to recipient domains, over
 * manage/tlsrpt-settings.ts (the service `postern tlsrptconfig` and /api/v1/tlsrpt-settings use).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ValidationError } from '../../controls/validate.js';
import { cells, REPORT_HEADER, reportCsv, tlsReport } from '../../manage/tls-report.js';
import type { AdminContext } from '../context.js';
import { readMembership } from '../../cluster/membership.js';
import { clusterTlsReport, nodesLine } from '../../cluster/reports.js';
import { TLSRPT_FIELDS, tlsRptState } from '../../manage/tlsrpt-settings.js';
import { forbiddenText, may, notify, page } from '../render.js';
import type { AdminServerOptions } from '../server.js';

export const TLS_PAGE = '/monitor/tls';
/** Where the TLS reporting settings form posts. */
export const TLSRPT_SETTINGS = `${TLS_PAGE}/tlsrpt-settings`;

type TlsRptField = keyof typeof TLSRPT_FIELDS;
/** What the settings form shows: the field values, and an error beside a field. */
interface TlsRptForm {
  values?: Record<TlsRptField, string>;
  errors?: Partial<Record<TlsRptField, string>>;
}

const RANGES: { value: string; label: string }[] = [
  { value: '1h', label: 'Hour' },
  { value: '1d', label: 'Day' },
  { value: '7d', label: 'Week' },
  { value: '30d', label: '30 days' },
  { value: '90d', label: '90 days' },
  { value: '1y', label: 'Year' },
  { value: 'custom', label: 'Custom' },
];

interface Query {
  range: string;
  from: string;
  to: string;
  domain: string;
  /** '1': every node of this node's cluster, summed. */
  cluster: string;
}

function readQuery(q: unknown): Query {
  const o = (q ?? {}) as Record<string, unknown>;
  const s = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : '');
  return { range: s('range') || '1d', from: s('from'), to: s('to'), domain: s('domain'), cluster: s('cluster') === '1' ? '1' : '' };
}

function windowOf(q: Query): { last?: string; from?: string; to?: string; domain?: string } {
  const domain = q.domain.trim() === '' ? undefined : q.domain;
  if (q.range === 'custom') return { from: q.from || undefined, to: q.to || undefined, domain };
  return { last: q.range, domain };
}

export function registerReportPages(app: FastifyInstance, ctx: AdminContext, _o: AdminServerOptions): void {
  // On a cluster node the report can sum every node's counts (cluster/reports.ts).
  const inCluster = () => readMembership(ctx.dataDir) !== null;
  const report = (q: Query) => (q.cluster && inCluster() ? clusterTlsReport(ctx.dataDir, windowOf(q), Date.now()) : Promise.resolve({ ...tlsReport(ctx.report, windowOf(q), Date.now()), nodes: null, missing: [] as string[] }));
  const tlsrpt = (form: TlsRptForm) => {
    const { settings: s, effective } = tlsRptState(ctx.config.globals(), ctx.hostname);
    return {
      base: TLSRPT_SETTINGS,
      host: ctx.hostname,
      effective,
      isDefault: { enabled: s.enabled, organization: s.organization === null, contact: s.contact === null, sender: s.sender === null },
      // A text setting at its default is an empty field (empty: the default again).
      values: form.values ?? { enabled: s.enabled ? 'yes' : 'no', organization: s.organization ?? '', contact: s.contact ?? '', sender: s.sender ?? '' },
      errors: form.errors ?? {},
    };
  };
  const show = async (req: FastifyRequest, reply: FastifyReply, q: Query, form: TlsRptForm = {}) => {
    let r: Awaited<ReturnType<typeof report>> | null = null;
    let error: string | undefined;
    try {
      r = await report(q);
    } catch (e) {
      if (!(e instanceof ValidationError)) throw e;
      error = e.message;
    }
    const params = new URLSearchParams(Object.entries(q).filter(([, v]) => v !== '')).toString();
    const api = new URLSearchParams([...Object.entries(windowOf(q)).filter((e): e is [string, string] => typeof e[1] === 'string'), ...(q.cluster ? [['cluster', 'true'] as [string, string]] : [])]).toString();
    return page(
      req,
      reply,
      'tls-report',
      {
        title: 'TLS Connections',
        active: TLS_PAGE,
        base: TLS_PAGE,
        q,
        ranges: RANGES,
        header: REPORT_HEADER,
        rows: r ? r.rows.map((x) => ({ domain: x.domain, cells: cells(x) })) : [],
        totals: r ? cells(r.totals) : [],
        window: r ? `${r.from} to ${r.to}` : '',
        cluster: inCluster(),
        nodes: r?.nodes ? nodesLine({ nodes: r.nodes, missing: r.missing }) : null,
        missing: r?.missing.length ?? 0,
        error,
        csv: `${TLS_PAGE}.csv?${params}`,
        api: `/api/v1/reports/tls?${api}`,
        linkFor: (domain: string) => `${TLS_PAGE}?${new URLSearchParams({ ...Object.fromEntries(Object.entries(q).filter(([, v]) => v !== '')), domain }).toString()}`,
        tlsrpt: tlsrpt(form),
      },
      error || Object.keys(form.errors ?? {}).length > 0 ? 400 : 200,
    );
  };

  app.get(TLS_PAGE, async (req, reply) => show(req, reply, readQuery(req.query)));

  app.post(TLSRPT_SETTINGS, async (req, reply) => {
    if (!may(req.principal, 'configure')) return page(req, reply, 'error', { title: 'Forbidden', message: `${forbiddenText(req.principal, 'configure')}; nothing was changed` }, 403);
    const b = (req.body ?? {}) as Record<string, unknown>;
    const str = (k: string) => (typeof b[k] === 'string' ? (b[k] as string) : '');
    const values = { enabled: str('enabled'), organization: str('organization'), contact: str('contact'), sender: str('sender') };
    // An empty text field: the setting's default.
    const text = (v: string) => (v.trim() === '' ? 'default' : v);
    try {
      ctx.services({ actor: req.principal!.name, client: req.ip }).tlsrpt.setup({ enabled: values.enabled, organization: text(values.organization), contact: text(values.contact), sender: text(values.sender) });
    } catch (e) {
      if (!(e instanceof ValidationError)) throw e;
      const field = (Object.keys(TLSRPT_FIELDS) as TlsRptField[]).find((k) => TLSRPT_FIELDS[k] === e.field) ?? 'enabled';
      return show(req, reply, readQuery({}), { values, errors: { [field]: e.message } });
    }
    notify(req, 'Saved the TLS reporting settings.');
    return reply.redirect(`${TLS_PAGE}#tlsrpt-settings`);
  });

  app.get(`${TLS_PAGE}.csv`, async (req, reply) => {
    const r = await report(readQuery(req.query));
    return reply
      .header('content-type', 'text/csv; charset=utf-8')
      .header('content-disposition', 'attachment; filename="tls-connections.csv"')
      .send(reportCsv({ rows: r.rows, totals: r.totals }));
  });
}
