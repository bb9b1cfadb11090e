/**
 * Where a domain wants its SMTP TLS reports (RFC 8460 §3): the TXT record `_smtp._tls.<domain>`,
 * `v=TLSRPTv1; rua=<URI>[,<URI>…]`. Exactly one record must begin with `v=TLSRPTv1` (several, or
 * a malformed one, mean no reporting); `rua` lists `mailto:` and `https:` URIs (a comma inside a
 * URI is percent-encoded); other schemes are ignored.
 */
import type { DnsResult } from '../dns/wire.js';

export type ReportDestination = { kind: 'mailto'; address: string; uri: string } | { kind: 'https'; url: string; uri: string };

export type TlsRptRecord = { kind: 'none' } | { kind: 'invalid'; reason: string } | { kind: 'record'; destinations: ReportDestination[] };

const START = /^v=TLSRPTv1\s*(;|$)/;

export function parseTlsRptRecord(txt: string): TlsRptRecord {
  const fields = txt.split(';').map((f) => f.trim()).filter((f) => f.length > 0);
  if (fields[0] !== 'v=TLSRPTv1') return { kind: 'invalid', reason: 'the record does not begin with v=TLSRPTv1' };
  const rua = fields.slice(1).filter((f) => /^rua\s*=/i.test(f));
  if (rua.length !== 1) return { kind: 'invalid', reason: rua.length === 0 ? 'no rua= field' : 'more than one rua= field' };
  const destinations: ReportDestination[] = [];
  for (const raw of rua[0]!.replace(/^rua\s*=/i, '').split(',')) {
    const uri = raw.trim();
    if (/^mailto:/i.test(uri)) {
      const address = decodeURIComponent(uri.slice(7).split('?')[0]!);
      if (/^[^@\s]+@[^@\s]+$/.test(address)) destinations.push({ kind: 'mailto', address, uri });
    } else if (/^https:\/\//i.test(uri)) {
      try {
        destinations.push({ kind: 'https', url: new URL(uri).toString(), uri });
      } catch {
        /* not a URL: ignored, as an unknown scheme is */
      }
    }
  }
  if (destinations.length === 0) return { kind: 'invalid', reason: 'rua= names no mailto: or https: destination' };
  return { kind: 'record', destinations };
}

/** The domain's reporting record from its TXT records; a DNS failure says so (no report is sent then). */
export function selectTlsRptRecord(result: DnsResult<string>): TlsRptRecord | { kind: 'temporary'; reason: string } {
  if (result.kind === 'temporary') return result;
  if (result.kind !== 'answer') return { kind: 'none' };
  const mine = result.records.filter((r) => START.test(r));
  if (mine.length === 0) return { kind: 'none' };
  if (mine.length > 1) return { kind: 'invalid', reason: `${mine.length} TXT records begin with v=TLSRPTv1` };
  return parseTlsRptRecord(mine[0]!);
}
