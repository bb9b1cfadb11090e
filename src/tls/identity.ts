/**
 * Certificate identity checks (SPEC §3, stage two): does the certificate a receiving MTA
 * presented name the destination we meant to reach?
 *
 * presentedFrom(cert): the DNS identifiers of a tls.PeerCertificate — every `DNS:` entry of
 *   `subjectaltname` (Node's JSON-quoted form `DNS:"a\u002cb"` decoded) and every subject CN.
 *   Other entry types (IP Address, email, URI, ...) are dropped: they are not DNS names.
 *   Names are kept as presented; normalisation happens when comparing.
 * presentedFromX509(x): the same from a crypto.X509Certificate, whose `subject` is the
 *   multi-line RFC 2253-escaped form ("CN=a\nO=Foo\, Inc").
 * matchName(presented, reference): 'exact' when both normalise to the same name, 'wildcard'
 *   when the presented name is `*.` + a name of at least two labels and the reference is one
 *   further label + that name, otherwise null. Any other `*` (partial label, not left-most,
 *   a bare `*`) never matches. Without a public suffix list, "at least two labels after the
 *   wildcard" is the rule that refuses `*.com` (it still accepts `*.co.uk`). A reference that
 *   is not a valid domain name (including one containing `*`) never matches.
 * checkVerify(presented, refs): the Verify algorithm — passes when a dNSName matches the
 *   recipient domain, or a CN matches the recipient domain or a connected host name. The CN
 *   counts even when dNSNames exist.
 * checkHosted(presented, refs): the Verify Hosted Domains algorithm — presented identifiers are
 *   the dNSNames, or the CNs only when there is no dNSName at all; references are tried in the
 *   order recipient domain, route host, MX host, stopping at the first that matches.
 *
 * Both checks try references in order; for one reference every eligible presented name is
 * compared once (recorded in `compared` with its result), an exact match is preferred to a
 * wildcard match, and the first reference that matches ends the check. A reference equal to an
 * earlier one (after normalisation) is skipped: it would only repeat the same comparisons.
 */

import type { X509Certificate } from 'node:crypto';
import { normaliseDomain } from './names.js';

export interface PresentedIdentity {
  dnsNames: string[];
  commonNames: string[];
}

export type MatchKind = 'exact' | 'wildcard';

export type ReferenceRole = 'recipient-domain' | 'route-host' | 'mx-host' | 'connected-host';
export type PresentedSource = 'dNSName' | 'CN';

export interface Comparison {
  /** The reference name in normalised form (as given when it is not a valid domain name). */
  reference: string;
  referenceRole: ReferenceRole;
  /** The presented name exactly as the certificate carries it. */
  presented: string;
  presentedSource: PresentedSource;
  result: MatchKind | 'no-match';
}

export type IdentityVerdict =
  | { ok: true; algorithm: 'verify' | 'hosted'; matched: Comparison; compared: Comparison[] }
  | { ok: false; algorithm: 'verify' | 'hosted'; reason: string; compared: Comparison[] };

export interface VerifyReferences {
  recipientDomain: string;
  /** MX host name and/or PTR name of the address connected to; may be empty. */
  connectedHosts: string[];
}

export interface HostedReferences {
  recipientDomain: string;
  routeHost?: string;
  mxHost?: string;
}

// ---- parsing what the certificate presents -------------------------------------------------

/**
 * Split Node's subjectaltname string into its entries. Node joins entries with ", " and
 * JSON-quotes any value holding a comma, quote, backslash or control character, so a plain
 * split on ", " would cut such a value in two.
 */
function splitAltNames(san: string): string[] {
  const entries: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < san.length; i++) {
    const c = san[i] ?? '';
    if (quoted) {
      current += c;
      if (c === '\\' && i + 1 < san.length) {
        current += san[i + 1] ?? '';
        i++;
      } else if (c === '"') {
        quoted = false;
      }
    } else if (c === '"') {
      quoted = true;
      current += c;
    } else if (c === ',' && san[i + 1] === ' ') {
      entries.push(current);
      current = '';
      i++;
    } else {
      current += c;
    }
  }
  if (current.length > 0) entries.push(current);
  return entries;
}

/** The value of a `DNS:` entry, JSON-unquoted when quoted; null for other entry types. */
function dnsValue(entry: string): string | null {
  if (!entry.startsWith('DNS:')) return null;
  const value = entry.slice(4);
  if (value.startsWith('"')) {
    try {
      const parsed: unknown = JSON.parse(value);
      // A quoted value that does not decode cannot be trusted to be what the CA signed.
      return typeof parsed === 'string' ? parsed : null;
    } catch {
      return null;
    }
  }
  return value;
}

function dnsNamesFromAltNames(san: string | undefined): string[] {
  if (san === undefined || san.length === 0) return [];
  const names: string[] = [];
  for (const entry of splitAltNames(san)) {
    const value = dnsValue(entry);
    if (value !== null) names.push(value);
  }
  return names;
}

export function presentedFrom(cert: {
  subjectaltname?: string;
  subject?: { CN?: string | string[] };
}): PresentedIdentity {
  const cn = cert.subject?.CN;
  const commonNames = cn === undefined ? [] : Array.isArray(cn) ? [...cn] : [cn];
  return { dnsNames: dnsNamesFromAltNames(cert.subjectaltname), commonNames };
}

const HEX2 = /^[0-9A-Fa-f]{2}$/;

/**
 * The CN values of X509Certificate.subject: one RDN per line, multi-valued RDNs joined by
 * " + ", values escaped per RFC 2253 (`\,` etc.) and control characters as `\XX`.
 */
function commonNamesFromSubject(subject: string | undefined): string[] {
  if (subject === undefined) return [];
  const names: string[] = [];
  for (const line of subject.split('\n')) {
    // Scan the line into attribute=value pairs, unescaping as we go so that an escaped
    // "+" or "=" inside a value is not taken for a separator.
    let key = '';
    let value = '';
    let inValue = false;
    const flush = (): void => {
      if (inValue && key === 'CN') names.push(value);
      key = '';
      value = '';
      inValue = false;
    };
    for (let i = 0; i < line.length; i++) {
      const c = line[i] ?? '';
      if (!inValue) {
        if (c === '=') inValue = true;
        else key += c;
        continue;
      }
      if (c === '\\' && i + 1 < line.length) {
        const hex = line.slice(i + 1, i + 3);
        if (HEX2.test(hex)) {
          value += String.fromCharCode(parseInt(hex, 16));
          i += 2;
        } else {
          value += line[i + 1] ?? '';
          i += 1;
        }
      } else if (c === ' ' && line.startsWith(' + ', i)) {
        flush();
        i += 2;
      } else {
        value += c;
      }
    }
    flush();
  }
  return names;
}

export function presentedFromX509(
  x: Pick<X509Certificate, 'subjectAltName' | 'subject'>,
): PresentedIdentity {
  return {
    dnsNames: dnsNamesFromAltNames(x.subjectAltName),
    commonNames: commonNamesFromSubject(x.subject),
  };
}

// ---- the single-name rule -------------------------------------------------------------------

export function matchName(presented: string, reference: string): MatchKind | null {
  const ref = normaliseDomain(reference);
  if (ref === null) return null;
  if (!presented.includes('*')) {
    return normaliseDomain(presented) === ref ? 'exact' : null;
  }
  // The only wildcard form honoured: "*" as the whole left-most label, nowhere else.
  if (!presented.startsWith('*.')) return null;
  const parent = normaliseDomain(presented.slice(2)); // refuses any further "*"
  if (parent === null || parent.split('.').length < 2) return null;
  if (!ref.endsWith('.' + parent)) return null;
  const first = ref.slice(0, ref.length - parent.length - 1);
  // Exactly one label: not the bare parent, not two labels.
  return first.length > 0 && !first.includes('.') ? 'wildcard' : null;
}

// ---- the two algorithms ---------------------------------------------------------------------

interface Candidate {
  name: string;
  source: PresentedSource;
}

interface Reference {
  name: string; // normalised, or as given when invalid
  valid: boolean;
  role: ReferenceRole;
  candidates: Candidate[];
}

function reference(raw: string, role: ReferenceRole, candidates: Candidate[]): Reference {
  const normalised = normaliseDomain(raw);
  return { name: normalised ?? raw, valid: normalised !== null, role, candidates };
}

/** Drop references equal to an earlier one: they would repeat the same comparisons. */
function distinct(refs: Reference[]): Reference[] {
  const seen = new Set<string>();
  return refs.filter((r) => {
    if (seen.has(r.name)) return false;
    seen.add(r.name);
    return true;
  });
}

/** Compare every candidate with one reference; the first exact match, else the first wildcard. */
function tryReference(ref: Reference, compared: Comparison[]): Comparison | null {
  let wildcard: Comparison | null = null;
  let exact: Comparison | null = null;
  for (const candidate of ref.candidates) {
    const result = matchName(candidate.name, ref.name) ?? 'no-match';
    const comparison: Comparison = {
      reference: ref.name,
      referenceRole: ref.role,
      presented: candidate.name,
      presentedSource: candidate.source,
      result,
    };
    compared.push(comparison);
    if (result === 'exact' && exact === null) exact = comparison;
    if (result === 'wildcard' && wildcard === null) wildcard = comparison;
  }
  return exact ?? wildcard;
}

function label(c: Candidate): string {
  return `${c.source === 'dNSName' ? 'DNS' : 'CN'}:${c.name}`;
}

function failureReason(
  algorithm: 'verify' | 'hosted',
  presented: PresentedIdentity,
  used: Candidate[],
  refs: Reference[],
): string {
  const refList = refs.map((r) => r.name).join(', ');
  if (presented.dnsNames.length === 0 && presented.commonNames.length === 0) {
    return `no certificate names: the certificate has neither a subjectAltName dNSName nor a subject CN to compare with ${refList}`;
  }
  let reason = `name mismatch: certificate names [${used.map(label).join(', ')}] do not match ${refList}`;
  if (algorithm === 'hosted' && presented.dnsNames.length > 0 && presented.commonNames.length > 0) {
    const ignored = presented.commonNames.map((n) => `CN:${n}`).join(', ');
    reason += ` (${ignored} not considered: the certificate has dNSName entries)`;
  }
  const invalid = refs.filter((r) => !r.valid).map((r) => r.name);
  if (invalid.length > 0) {
    reason += `; not a valid domain name: ${invalid.map((n) => JSON.stringify(n)).join(', ')}`;
  }
  return reason;
}

function run(
  algorithm: 'verify' | 'hosted',
  presented: PresentedIdentity,
  used: Candidate[],
  refs: Reference[],
): IdentityVerdict {
  const compared: Comparison[] = [];
  for (const ref of refs) {
    const matched = tryReference(ref, compared);
    if (matched !== null) return { ok: true, algorithm, matched, compared };
  }
  return { ok: false, algorithm, reason: failureReason(algorithm, presented, used, refs), compared };
}

function candidates(names: string[], source: PresentedSource): Candidate[] {
  return names.map((name) => ({ name, source }));
}

export function checkVerify(presented: PresentedIdentity, refs: VerifyReferences): IdentityVerdict {
  const dns = candidates(presented.dnsNames, 'dNSName');
  const cns = candidates(presented.commonNames, 'CN');
  // dNSNames answer only for the recipient domain; the CN also for the host connected to.
  const references = distinct([
    reference(refs.recipientDomain, 'recipient-domain', [...dns, ...cns]),
    ...refs.connectedHosts.filter((h) => h.length > 0).map((h) => reference(h, 'connected-host', cns)),
  ]);
  return run('verify', presented, [...dns, ...cns], references);
}

export function checkHosted(presented: PresentedIdentity, refs: HostedReferences): IdentityVerdict {
  // The CN is a fallback for certificates without any dNSName, never a second chance.
  const used =
    presented.dnsNames.length > 0
      ? candidates(presented.dnsNames, 'dNSName')
      : candidates(presented.commonNames, 'CN');
  const list: Reference[] = [reference(refs.recipientDomain, 'recipient-domain', used)];
  // An absent or empty optional reference is simply not tried.
  if (refs.routeHost) list.push(reference(refs.routeHost, 'route-host', used));
  if (refs.mxHost) list.push(reference(refs.mxHost, 'mx-host', used));
  return run('hosted', presented, used, distinct(list));
}
