/**
 * The SMTP TLS report as it is sent (RFC 8460 §5). Pure: no clock, no randomness (the Message-ID
 * and MIME boundary are derived from the report and `now`).
 *
 * gzipReport(report): the report's JSON, gzip-compressed (§5.1: the `.json.gz` form).
 * reportFileName(...): §5.1 `submitter!policy-domain!begin!end[!unique-id].json.gz`.
 * composeReportMail(o): the §5.3 message — multipart/report; report-type="tlsrpt", a short
 *   text/plain part for a person, and the gzipped report as application/tlsrpt+gzip in base64 —
 *   as CRLF text ready to queue. Values from outside Postern (policy domain, report id,
 *   addresses) pass through escapeText, so none of them can start a header line of its own.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { TlsRptReport } from '../manage/tlsrpt-report.js';
import { escapeText } from '../observe/text.js';

export function gzipReport(report: TlsRptReport): Buffer {
  return gzipSync(Buffer.from(JSON.stringify(report), 'utf8'));
}

/** A domain as a file-name part: no `!` (the separator), no `/`, quote or control character. */
function namePart(domain: string): string {
  return domain.toLowerCase().replace(/[^a-z0-9._-]/g, '_');
}

function seconds(n: number, what: string): string {
  if (!Number.isFinite(n) || n < 0) throw new RangeError(`${what} must be a non-negative number of seconds, not ${n}`);
  return String(Math.floor(n));
}

/**
 * RFC 8460 §5.1 file name. The unique id keeps only letters and digits (the RFC's
 * `unique-id = 1*(ALPHA / DIGIT)`); an id with none of them is left out.
 */
export function reportFileName(submitter: string, policyDomain: string, beginSec: number, endSec: number, uniqueId?: string): string {
  const id = (uniqueId ?? '').replace(/[^A-Za-z0-9]/g, '');
  const parts = [namePart(submitter), namePart(policyDomain), seconds(beginSec, 'begin'), seconds(endSec, 'end')];
  if (id) parts.push(id);
  return `${parts.join('!')}.json.gz`;
}

/** One header, folded at blanks to keep lines near 78 characters (RFC 5322 §2.2.3). */
function header(name: string, value: string): string {
  const lines: string[] = [];
  let line = `${name}:`;
  for (const word of value.split(/ +/).filter((w) => w.length > 0)) {
    if (line.length + 1 + word.length > 78 && line.trim() !== `${name}:`) {
      lines.push(line);
      line = '';
    }
    line += ` ${word}`;
  }
  lines.push(line);
  return lines.join('\r\n');
}

/** Untrusted text for a header or a body line: no control character, so no line of its own. */
const safe = (s: string): string => escapeText(s);

function rfc5322Date(now: number): string {
  return new Date(now).toUTCString().replace('GMT', '+0000');
}

export interface ReportMailOptions {
  report: TlsRptReport;
  policyDomain: string;
  /** The submitting organisation's domain (usually Postern's host name or its mail domain). */
  submitter: string;
  from: string;
  to: string[];
  /** For the Message-ID. */
  hostname: string;
  now: number;
}

export function composeReportMail(o: ReportMailOptions): Buffer {
  const { report } = o;
  const domain = safe(o.policyDomain);
  const submitter = safe(o.submitter);
  const reportId = safe(report['report-id']);
  const start = report['date-range']['start-datetime'];
  const end = report['date-range']['end-datetime'];
  const fileName = reportFileName(o.submitter, o.policyDomain, Date.parse(start) / 1000, Date.parse(end) / 1000, report['report-id']);
  const gz = gzipReport(report);
  // Derived, not random: the function stays pure, and the report id makes it unique.
  const digest = createHash('sha256').update(JSON.stringify([report['report-id'], o.policyDomain, o.to, o.now])).digest('hex');
  const boundary = `tlsrpt-${digest.slice(0, 32)}`;
  let ok = 0;
  let failed = 0;
  for (const p of report.policies) {
    ok += p.summary['total-successful-session-count'];
    failed += p.summary['total-failure-session-count'];
  }
  const period = start.slice(0, 10) === end.slice(0, 10) ? `on ${start.slice(0, 10)} (UTC)` : `from ${safe(start)} to ${safe(end)}`;
  const text = [
    `This is an SMTP TLS report (RFC 8460) from ${submitter}`,
    `on the TLS sessions made to deliver mail to ${domain} ${period}:`,
    `${ok} ${ok === 1 ? 'session' : 'sessions'} succeeded and ${failed} failed.`,
    '',
    'The report itself is attached as gzip-compressed JSON,',
    `Report-ID <${reportId}>.`,
  ];
  const base64 = gz.toString('base64').match(/.{1,76}/g) ?? [];
  const eightBit = text.some((l) => /[^\x00-\x7f]/.test(l));

  const lines = [
    header('From', safe(o.from)),
    header('To', o.to.map((t) => safe(t)).join(', ')),
    header('Date', rfc5322Date(o.now)),
    header('Message-ID', `<tlsrpt.${digest.slice(32, 56)}@${safe(o.hostname)}>`),
    header('Subject', `Report Domain: ${domain} Submitter: ${submitter} Report-ID: <${reportId}>`),
    header('TLS-Report-Domain', domain),
    header('TLS-Report-Submitter', submitter),
    // RFC 8689 §5: the recipient's TLS policy must not hold back the report about that policy.
    'TLS-Required: No',
    'Auto-Submitted: auto-generated',
    'MIME-Version: 1.0',
    header('Content-Type', `multipart/report; report-type="tlsrpt"; boundary="${boundary}"`),
    '',
    'This is a multipart message in MIME format.',
    '',
    `--${boundary}`,
    `Content-Type: text/plain; charset=${eightBit ? 'utf-8' : 'us-ascii'}`,
    `Content-Transfer-Encoding: ${eightBit ? '8bit' : '7bit'}`,
    '',
    ...text,
    '',
    `--${boundary}`,
    'Content-Type: application/tlsrpt+gzip',
    'Content-Transfer-Encoding: base64',
    `Content-Disposition: attachment;\r\n filename="${fileName}"`,
    '',
    ...base64,
    '',
    `--${boundary}--`,
    '',
  ];
  return Buffer.from(lines.join('\r\n'), 'utf8');
}
