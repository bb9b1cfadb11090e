/**
 * The TLS Connections report as the appliance shows it (SPEC §9), from the counts in report.db
 * (observe/tls-report.ts). Pure: the window, the columns, the totals row, CSV.
 *
 * parseWindow({ last, from, to }, now) → [from, to) in ms; `last` is 1h, 1d, 7d, 30d, 90d or 1y.
 * reportLines(rows) → the rows with % TLS, sorted by Total Attempted (descending), and totals.
 */
import { ValidationError } from '../controls/validate.js';
import { normaliseDomain } from '../tls/names.js';
import { REPORT_COLUMNS, zeroCounts, type ReportRow, type TlsReportStore } from '../observe/tls-report.js';

export const LAST = { '1h': 3_600_000, '1d': 86_400_000, '7d': 7 * 86_400_000, '30d': 30 * 86_400_000, '90d': 90 * 86_400_000, '1y': 365 * 86_400_000 } as const;
export type Last = keyof typeof LAST;

export const REPORT_HEADER = ['Domain', 'Required TLS Success', 'Required TLS Failed', 'Preferred TLS Success', 'Preferred TLS Failed', 'Total Attempted', 'Clear Connections', '% TLS', 'Encrypted Messages'];

export interface ReportLine extends ReportRow {
  /** TLS sessions / (TLS sessions + clear connections), in percent; null when both are 0. */
  tlsPercent: number | null;
}

function time(field: string, v: string): number {
  const t = Date.parse(v);
  if (!Number.isFinite(t)) throw new ValidationError(field, v, 'a date and time, e.g. 2026-12-01 or 2026-12-01T13:00Z');
  return t;
}

/** Hours are whole: the window starts at the beginning of the hour `last` reaches back to. */
export function parseWindow(o: { last?: string; from?: string; to?: string }, now: number): { from: number; to: number } {
  if (o.last !== undefined && (o.from !== undefined || o.to !== undefined)) throw new ValidationError('--last', o.last, 'either --last or --from/--to, not both');
  if (o.from !== undefined || o.to !== undefined) {
    const from = o.from === undefined ? 0 : time('--from', o.from);
    const to = o.to === undefined ? now : time('--to', o.to);
    if (to <= from) throw new ValidationError('--to', o.to, `a time after --from (${new Date(from).toISOString()})`);
    return { from, to };
  }
  const last = (o.last ?? '1d') as Last;
  if (!(last in LAST)) throw new ValidationError('--last', o.last, Object.keys(LAST).join(', '));
  const hour = 3_600_000;
  return { from: Math.floor((now - LAST[last]) / hour) * hour + hour, to: now + 1 };
}

function withPercent(r: ReportRow): ReportLine {
  const tls = r.requiredOk + r.preferredOk;
  const total = tls + r.clear;
  return { ...r, tlsPercent: total === 0 ? null : Math.round((tls / total) * 1000) / 10 };
}

export function reportLines(rows: ReportRow[]): { rows: ReportLine[]; totals: ReportLine } {
  const sorted = rows.slice().sort((a, b) => b.attempted - a.attempted || a.domain.localeCompare(b.domain));
  const totals: ReportRow = { domain: 'Total', ...zeroCounts() };
  for (const r of sorted) for (const c of REPORT_COLUMNS) totals[c] += r[c];
  return { rows: sorted.map(withPercent), totals: withPercent(totals) };
}

export function cells(r: ReportLine): string[] {
  const n = (v: number) => v.toLocaleString('en-US');
  return [r.domain, n(r.requiredOk), n(r.requiredFailed), n(r.preferredOk), n(r.preferredFailed), n(r.attempted), n(r.clear), r.tlsPercent === null ? '-' : `${r.tlsPercent}%`, n(r.encryptedMessages)];
}

/** CSV (RFC 4180) with the header, a row per domain and the totals. */
export function reportCsv(lines: { rows: ReportLine[]; totals: ReportLine }): string {
  const q = (v: string) => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  const raw = (r: ReportLine) => [r.domain, r.requiredOk, r.requiredFailed, r.preferredOk, r.preferredFailed, r.attempted, r.clear, r.tlsPercent ?? '', r.encryptedMessages].map(String);
  return [REPORT_HEADER, ...lines.rows.map(raw), raw(lines.totals)].map((row) => row.map(q).join(',')).join('\r\n') + '\r\n';
}

/** What a report asks of the counts: the window, the domain, the graph's bucket (hourly up to 7 days, else daily). */
export interface ReportAsk {
  from: number;
  to: number;
  domain?: string;
  bucketMs: number;
  /** Instead: a policy domain's TLS sessions of one UTC day, for its RFC 8460 report. */
  tlsrpt?: { day: string; domain: string };
}

export type SeriesPoint = { start: number; tls: number; clear: number };

export function reportAsk(q: { last?: string; from?: string; to?: string; domain?: string }, now: number): ReportAsk {
  const w = parseWindow(q, now);
  const domain = q.domain === undefined || q.domain.trim() === '' ? undefined : normaliseDomain(q.domain.trim());
  if (domain === null) throw new ValidationError('domain', q.domain, 'a domain name (example.com)');
  return { ...w, ...(domain ? { domain } : {}), bucketMs: w.to - w.from <= 7 * 86_400_000 ? 3_600_000 : 86_400_000 };
}

/** The report from counts already read (one node's, or every node's summed: cluster/reports.ts). */
export function reportOf(ask: ReportAsk, rows: ReportRow[], series: SeriesPoint[]) {
  const lines = reportLines(rows);
  return { from: new Date(ask.from).toISOString(), to: new Date(ask.to).toISOString(), domain: ask.domain ?? null, bucketSeconds: ask.bucketMs / 1000, rows: lines.rows, totals: lines.totals, series };
}

/** The counts one node holds for an ask. */
export function countsFor(store: Pick<TlsReportStore, 'query' | 'series'>, ask: ReportAsk): { rows: ReportRow[]; series: SeriesPoint[] } {
  return { rows: store.query(ask.from, ask.to, ask.domain), series: store.series(ask.from, ask.to, ask.bucketMs, ask.domain) };
}

/** The whole report for the page and the API: window, rows, totals, and a series for a graph. */
export function tlsReport(store: Pick<TlsReportStore, 'query' | 'series'>, q: { last?: string; from?: string; to?: string; domain?: string }, now: number) {
  const ask = reportAsk(q, now);
  const c = countsFor(store, ask);
  return reportOf(ask, c.rows, c.series);
}
