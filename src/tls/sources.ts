/**
 * One decision per MX host: which policy source governs the TLS of a connection to it — the
 * destination table's setting, DANE (TLSA records found under DNSSEC, RFC 7672) or MTA-STS
 * (RFC 8461) — and what that source demands. Pure; delivery, `destconfig explain` and `tlsverify`
 * all ask it. The rule of composition (SPEC §12): a source can only raise what the entry
 * demands, never lower it.
 *
 * DANE, when the entry allows it (`dane` opportunistic or required) and the path to the host is
 * secure (the MX records and the host's addresses were authenticated):
 *   usable TLSA records        → STARTTLS mandatory, the certificate must match them (a match is
 *                                a verified peer for every Verify setting), SNI the host name;
 *   only unusable records      → STARTTLS mandatory, the entry's own verification (if any);
 *   securely no TLSA records   → as if DANE did not apply (table, then MTA-STS);
 *   lookup failed or bogus     → the host is not used (never clear text).
 * `required` uses only hosts with usable records. When DANE applies to a host, DANE wins.
 * MTA-STS, when the entry allows it and the recipient domain has a policy:
 *   enforce → only hosts matching an `mx:` pattern; STARTTLS mandatory; a PKIX certificate
 *             (trusted chain) valid for the MX host name, besides what the entry demands;
 *   testing → as the table says, failures only reported; none → ignored.
 */
import type { TlsMode } from '../controls/types.js';
import { describeTlsa, type TlsaRecord } from './dane.js';
import { isRequired } from './policy.js';

export type DaneMode = 'off' | 'opportunistic' | 'required';

/** What DNS said about `_PORT._tcp.<host>` TLSA, and whether the path was secure. */
export type TlsaFinding =
  /** The MX records or the host's addresses were not authenticated: DANE does not apply. */
  | { kind: 'not-secure' }
  /** Authenticated denial: the host publishes no TLSA records. */
  | { kind: 'none' }
  | { kind: 'records'; usable: TlsaRecord[]; unusable: number }
  /** A bogus answer or a failed look-up: nothing can be concluded, so the host is not used. */
  | { kind: 'failed'; reason: string };

export type StsMode = 'enforce' | 'testing' | 'none';
/** The recipient domain's MTA-STS policy in effect (null: none, or the entry turns MTA-STS off). */
export type StsFinding = { mode: StsMode; mx: string[]; maxAge?: number } | null;

export type PolicySource = 'table' | 'dane' | 'mta-sts';

export type HostPlan =
  | {
      use: true;
      /** The setting the connection is run under (the table's, or raised by DANE or MTA-STS). */
      mode: TlsMode;
      /** Usable TLSA records the certificate must match (instead of the table's name checks). */
      dane: TlsaRecord[] | null;
      /** MTA-STS enforce: the chain must be trusted (PKIX) and the certificate valid for this name. */
      pkixName: string | null;
      /** Who asks for that check, in log lines (default `MTA-STS enforce`). */
      pkixBy?: string;
      /** MTA-STS testing: what enforce would have refused is recorded, not acted on. */
      stsTesting: boolean;
      governedBy: PolicySource;
      why: string;
    }
  /** `failure`: the RFC 8460 result type of a session that could not be made with this host. */
  | { use: false; governedBy: PolicySource; enhanced: string; reason: string; failure: 'dnssec-invalid' | 'dane-required' | 'validation-failure' };

export interface EntryTlsSettings {
  tls: TlsMode;
  dane: DaneMode;
  mtaSts: boolean;
}

/** At least Required, keeping the entry's verification (DANE never lowers what the entry demands). */
function atLeastRequired(mode: TlsMode): TlsMode {
  if (isRequired(mode)) return mode;
  return mode === 'preferred-verify' ? 'required-verify' : 'required';
}

/** An `mx:` pattern of an MTA-STS policy: exact, or `*.` standing for exactly one label. */
export function stsMxMatches(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase().replace(/\.$/, '');
  const h = host.toLowerCase().replace(/\.$/, '');
  if (!p.startsWith('*.')) return p === h;
  const rest = p.slice(1); // ".example.com"
  if (!h.endsWith(rest)) return false;
  const first = h.slice(0, h.length - rest.length);
  return first.length > 0 && !first.includes('.');
}

export function planHost(entry: EntryTlsSettings, host: { name: string }, tlsa: TlsaFinding, sts: StsFinding): HostPlan {
  const dane = entry.dane;
  if (dane !== 'off' && tlsa.kind !== 'not-secure') {
    if (tlsa.kind === 'failed') {
      return { use: false, governedBy: 'dane', enhanced: '4.7.5', reason: `DANE: the TLSA records of ${host.name} cannot be known (${tlsa.reason}); host not used`, failure: 'dnssec-invalid' };
    }
    if (tlsa.kind === 'records' && tlsa.usable.length > 0) {
      return { use: true, mode: atLeastRequired(entry.tls), dane: tlsa.usable, pkixName: null, stsTesting: false, governedBy: 'dane', why: `DANE: ${tlsa.usable.length} usable TLSA record${tlsa.usable.length === 1 ? '' : 's'} for ${host.name}: STARTTLS required, the certificate must match them` };
    }
    if (tlsa.kind === 'records') {
      if (dane === 'required') return { use: false, governedBy: 'dane', enhanced: '4.7.5', reason: `DANE required: ${host.name} has only unusable TLSA records`, failure: 'dane-required' };
      return { use: true, mode: atLeastRequired(entry.tls), dane: null, pkixName: null, stsTesting: false, governedBy: 'dane', why: `DANE: ${host.name} has only unusable TLSA records: STARTTLS required, not authenticated by DANE` };
    }
    // Securely no TLSA records: DANE does not apply to this host.
  }
  if (dane === 'required') {
    const why = tlsa.kind === 'not-secure' ? `${host.name} is not reached through DNSSEC-authenticated records` : `${host.name} publishes no TLSA records`;
    return { use: false, governedBy: 'dane', enhanced: '4.7.5', reason: `DANE required: ${why}`, failure: 'dane-required' };
  }
  if (entry.mtaSts && sts && sts.mode === 'enforce') {
    if (!sts.mx.some((p) => stsMxMatches(p, host.name))) {
      return { use: false, governedBy: 'mta-sts', enhanced: '4.7.5', reason: `MTA-STS enforce: mx ${host.name} not in policy (${sts.mx.join(', ')})`, failure: 'validation-failure' };
    }
    return { use: true, mode: atLeastRequired(entry.tls), dane: null, pkixName: host.name, stsTesting: false, governedBy: 'mta-sts', why: `MTA-STS enforce: STARTTLS required, a trusted certificate valid for ${host.name}` };
  }
  const testing = entry.mtaSts && sts !== null && sts.mode === 'testing';
  return { use: true, mode: entry.tls, dane: null, pkixName: null, stsTesting: testing, governedBy: 'table', why: testing ? 'the table (MTA-STS testing: what enforce would refuse is reported)' : 'the table' };
}

/**
 * A plan made stricter for a REQUIRETLS message (RFC 8689 §5): the host must have been found
 * securely (MX records authenticated by DNSSEC, an administrator's SMTP route, or the host named
 * by the domain's MTA-STS policy, testing counting as enforce), STARTTLS is required and the
 * certificate verified: by DANE where the host has usable TLSA records, else a trusted chain
 * valid for the host's name. Whether the server offers REQUIRETLS is checked after STARTTLS.
 */
export function requireTlsPlan(plan: HostPlan, host: { name: string }, foundSecurely: boolean, sts: StsFinding): HostPlan {
  if (!plan.use) return plan;
  const byPolicy = sts !== null && sts.mode !== 'none' && sts.mx.some((p) => stsMxMatches(p, host.name));
  if (!foundSecurely && !byPolicy) {
    return {
      use: false,
      governedBy: plan.governedBy,
      enhanced: '5.7.30',
      reason: `REQUIRETLS: ${host.name} was not found securely (the MX records are not DNSSEC-authenticated and no MTA-STS policy names it)`,
      failure: 'validation-failure',
    };
  }
  const mode = atLeastRequired(plan.mode);
  if (plan.dane) return { ...plan, mode, why: `${plan.why}; REQUIRETLS: the server must offer REQUIRETLS` };
  return {
    ...plan,
    mode,
    pkixName: plan.pkixName ?? host.name,
    pkixBy: plan.pkixName ? `${plan.pkixBy ?? 'MTA-STS enforce'} and REQUIRETLS` : 'REQUIRETLS',
    stsTesting: false,
    why: `${plan.why}; REQUIRETLS: STARTTLS required, a trusted certificate valid for ${host.name}, and the server must offer REQUIRETLS`,
  };
}

/** What DNS said of a host's TLSA records, for people (`explain`, `tlsverify`). */
export function describeFinding(f: TlsaFinding, dane: DaneMode): string {
  switch (f.kind) {
    case 'records':
      return `${f.usable.length} usable, ${f.unusable} unusable${f.usable.length ? ` (${f.usable.map(describeTlsa).join(', ')})` : ''}`;
    case 'none':
      return 'none (DNSSEC-authenticated denial)';
    case 'failed':
      return `cannot be known: ${f.reason}`;
    case 'not-secure':
      return dane === 'off' ? 'not looked up (DANE off for this entry)' : 'not looked up (the records leading to this host are not DNSSEC-authenticated)';
  }
}
