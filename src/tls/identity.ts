/**
 * Certificate identity checks (SPEC §3, stage two): does the certificate a receiving MTA
 * presented name the destination we meant to reach?
 *
 * presentedFrom(cert): the identifiers of a tls.PeerCertificate. From its DER (`raw`) when
 *   present (certificate-names.ts: the exact octets the authority signed); otherwise from Node's
 *   decoded fields — every `DNS:` entry of `subjectaltname` (Node's JSON-quoted form decoded) and
 *   every subject CN. A `subjectaltname` that is there but not a string (Node gives `null` when
 *   it cannot decode the extension) makes the certificate unreadable. Never throws.
 * presentedFromX509(x): the same from a crypto.X509Certificate (its DER).
 * matchName(presented, reference, source): 'exact' when both names are equal in comparison
 *   form (names.ts: LDH/A-labels, ASCII case ignored, nothing mapped; a dNSName must be ASCII),
 *   'wildcard' when the presented name is `*.` + a name that is not a public suffix (Public
 *   Suffix List, both sections) and the reference is exactly one further label + that name,
 *   otherwise null. Any other `*` (partial label, not left-most, a bare `*`) never matches; a
 *   reference that is not a valid domain name never matches.
 * checkVerify(presented, refs): the Verify algorithm — passes when a dNSName matches the
 *   recipient domain, or a CN matches the recipient domain or a connected host name. The CN
 *   counts even when dNSNames exist.
 * checkHosted(presented, refs): the Verify Hosted Domains algorithm — presented identifiers are
 *   the dNSNames, or the CNs only when there is no dNSName at all; references are tried in the
 *   order recipient domain, route host, MX host, stopping at the first that matches.
 *
 * A certificate whose names cannot be read (`unreadable`) fails both checks with that reason:
 * no pass, no CN fallback. Both checks try references in order; for one reference every eligible presented name is
 * compared once (recorded in `compared` with its result), an exact match is preferred to a
 * wildcard match, and the first reference that matches ends the check. A reference equal to an
 * earlier one (after normalisation) is skipped: it would only repeat the same comparisons.
 */

import type { X509Certificate } from 'node:crypto';
import { namesFromDer } from './certificate-names.js';
import { isPublicSuffix, normaliseDnsName, normaliseDomain } from './names.js';

export interface PresentedIdentity {
  dnsNames: string[];
  commonNames: string[];
  /** Set when no verdict can be reached from the certificate's names (the reason). */
  unreadable?: string;
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

function dnsNamesFromAltNames(san: string): string[] {
  if (san.length === 0) return [];
  const names: string[] = [];
  for (const entry of splitAltNames(san)) {
    const value = dnsValue(entry);
    if (value !== null) names.push(value);
  }
  return names;
}

const strings = (v: unknown): string[] =>
  typeof v === 'string' ? [v] : Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];

/** The identifiers of a peer certificate (see the header); any object shape is accepted. */
export function presentedFrom(cert: unknown): PresentedIdentity {
  if (typeof cert !== 'object' || cert === null) return { dnsNames: [], commonNames: [], unreadable: 'the server presented no certificate' };
  const c = cert as { raw?: unknown; subjectaltname?: unknown; subject?: unknown };
  if (c.raw instanceof Uint8Array) return namesFromDer(c.raw);
  const subject = typeof c.subject === 'object' && c.subject !== null ? (c.subject as { CN?: unknown }) : {};
  const commonNames = strings(subject.CN);
  if (c.subjectaltname === undefined) return { dnsNames: [], commonNames };
  if (typeof c.subjectaltname !== 'string') {
    return { dnsNames: [], commonNames, unreadable: 'subjectAltName present but undecodable' };
  }
  return { dnsNames: dnsNamesFromAltNames(c.subjectaltname), commonNames };
}

export function presentedFromX509(x: Pick<X509Certificate, 'raw'>): PresentedIdentity {
  return namesFromDer(x.raw);
}

// ---- the single-name rule -------------------------------------------------------------------

export function matchName(presented: string, reference: string, source: PresentedSource = 'CN'): MatchKind | null {
  const ref = normaliseDomain(reference);
  if (ref === null) return null;
  const norm = source === 'dNSName' ? normaliseDnsName : normaliseDomain;
  if (!presented.includes('*')) {
    return norm(presented) === ref ? 'exact' : null;
  }
  // The only wildcard form honoured: "*" as the whole left-most label, nowhere else.
  if (!presented.startsWith('*.')) return null;
  const parent = norm(presented.slice(2)); // refuses any further "*"
  if (parent === null || isPublicSuffix(parent)) return null;
  if (!ref.endsWith('.' + parent)) return null;
  const first = ref.slice(0, ref.length - parent.length - 1);
  // Exactly one label: not the bare parent, not two labels.
  return first.length > 0 && !first.includes('.') ? 'wildcard' : null;
}

/**
 * Whether a certificate is valid for one of `names` as a PKIX client judges a host name: its DNS
 * names, or its CN when it has none; a wildcard only as the whole left-most label. Used where a
 * policy source names the host (DANE-TA, MTA-STS); `presented` lists what the certificate names.
 */
export function validForAny(p: PresentedIdentity, names: string[]): { ok: boolean; presented: string[] } {
  const candidates = p.dnsNames.length ? p.dnsNames.map((n) => [n, 'dNSName'] as const) : p.commonNames.map((n) => [n, 'CN'] as const);
  const ok = names.some((ref) => candidates.some(([n, source]) => matchName(n, ref, source) !== null));
  return { ok, presented: candidates.map(([n]) => n) };
}

// ---- the two algorithms ---------------------------------------------------------------------

const MAX_NAMES_SHOWN = 10;

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
    const result = matchName(candidate.name, ref.name, candidate.source) ?? 'no-match';
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

/** A name list for a log line: the first ten, then how many more. */
function listed(names: string[]): string {
  const shown = names.slice(0, MAX_NAMES_SHOWN).join(', ');
  return names.length > MAX_NAMES_SHOWN ? `${shown}, … and ${names.length - MAX_NAMES_SHOWN} more` : shown;
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
  let reason = `name mismatch: certificate names [${listed(used.map(label))}] do not match ${refList}`;
  if (algorithm === 'hosted' && presented.dnsNames.length > 0 && presented.commonNames.length > 0) {
    const ignored = listed(presented.commonNames.map((n) => `CN:${n}`));
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
  // Names the authority signed but Postern cannot read: no verdict from the rest (fail closed).
  if (presented.unreadable !== undefined) return { ok: false, algorithm, reason: presented.unreadable, compared };
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
