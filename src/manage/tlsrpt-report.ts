/**
 * An SMTP TLS Reporting report (RFC 8460 §4) for one policy domain and one UTC day, from the
 * sessions delivery counted (observe/tlsrpt.ts). Pure: the sessions, the organisation and contact,
 * the report id are passed in. One `policies` element per policy the sessions were made under
 * (type, strings, mx patterns), with its summary and failure details grouped by result type,
 * sending address, receiving MX host and address.
 */
import type { PolicyType, SessionRow } from '../observe/tlsrpt.js';

export interface TlsRptFailureDetail {
  'result-type': string;
  'sending-mta-ip': string;
  'receiving-mx-hostname': string;
  'receiving-ip'?: string;
  'failed-session-count': number;
}

export interface TlsRptPolicy {
  policy: { 'policy-type': PolicyType; 'policy-string'?: string[]; 'policy-domain': string; 'mx-host'?: string[] };
  summary: { 'total-successful-session-count': number; 'total-failure-session-count': number };
  'failure-details'?: TlsRptFailureDetail[];
}

export interface TlsRptReport {
  'organization-name': string;
  'date-range': { 'start-datetime': string; 'end-datetime': string };
  'contact-info': string;
  'report-id': string;
  policies: TlsRptPolicy[];
}

/** The day's report for `domain`, or null when no session was made to it that day. */
export function buildTlsRptReport(rows: SessionRow[], o: { domain: string; day: string; organization: string; contact: string; reportId: string }): TlsRptReport | null {
  const mine = rows.filter((r) => r.policyDomain === o.domain && r.day === o.day);
  if (mine.length === 0) return null;
  const byPolicy = new Map<string, { policy: TlsRptPolicy['policy']; ok: number; failed: number; details: Map<string, TlsRptFailureDetail> }>();
  for (const r of mine) {
    const key = JSON.stringify([r.policyType, r.policyStrings, r.mxHosts]);
    let p = byPolicy.get(key);
    if (!p) {
      const policy: TlsRptPolicy['policy'] = { 'policy-type': r.policyType, 'policy-domain': r.policyDomain };
      if (r.policyStrings.length) policy['policy-string'] = r.policyStrings;
      if (r.mxHosts.length) policy['mx-host'] = r.mxHosts;
      byPolicy.set(key, (p = { policy, ok: 0, failed: 0, details: new Map() }));
    }
    if (r.result === 'success') {
      p.ok += r.count;
      continue;
    }
    p.failed += r.count;
    const dk = JSON.stringify([r.result, r.sendingIp, r.receivingMx, r.receivingIp]);
    const d = p.details.get(dk);
    if (d) d['failed-session-count'] += r.count;
    else {
      p.details.set(dk, {
        'result-type': r.result,
        'sending-mta-ip': r.sendingIp,
        'receiving-mx-hostname': r.receivingMx,
        ...(r.receivingIp ? { 'receiving-ip': r.receivingIp } : {}),
        'failed-session-count': r.count,
      });
    }
  }
  return {
    'organization-name': o.organization,
    'date-range': { 'start-datetime': `${o.day}T00:00:00Z`, 'end-datetime': `${o.day}T23:59:59Z` },
    'contact-info': o.contact,
    'report-id': o.reportId,
    policies: [...byPolicy.values()].map((p) => ({
      policy: p.policy,
      summary: { 'total-successful-session-count': p.ok, 'total-failure-session-count': p.failed },
      ...(p.details.size ? { 'failure-details': [...p.details.values()] } : {}),
    })),
  };
}

/** A report id as RFC 8460 suggests: unique, with the day and the domain in it for people. */
export function reportId(day: string, domain: string, now: number): string {
  return `${day}T00:00:00Z_${domain}_${now.toString(36)}`;
}
