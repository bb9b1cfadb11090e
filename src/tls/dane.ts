/**
 * DANE for SMTP (RFC 7672, RFC 7671): which TLSA records can be used, and whether a presented
 * certificate chain matches them. Pure: the chain is given as DER, leaf first, as the server sent
 * it; the time is passed in.
 *
 * - Usable for SMTP are DANE-TA(2) and DANE-EE(3) records with a known selector (0 full
 *   certificate, 1 SubjectPublicKeyInfo) and matching type (0 exact, 1 SHA-256, 2 SHA-512, with
 *   a digest of the right length). PKIX-TA(0)/PKIX-EE(1) and anything unknown are unusable
 *   (RFC 7672 §3.1.3): a host with only unusable records gets mandatory TLS, unauthenticated.
 * - DANE-EE(3) matches the leaf alone; its names and validity dates are not looked at (§3.1.1).
 * - DANE-TA(2) matches a certificate the server sent above the leaf (a server using DANE-TA must
 *   send its trust anchor, RFC 7671 §5.2.2); the leaf must then chain to it by signature, each
 *   certificate below the anchor within its dates, and the leaf must carry one of the reference
 *   identifiers (the TLSA base domain and the next-hop domain, §3.2.2; a wildcard only as the
 *   whole left-most label).
 */
import { createHash, X509Certificate } from 'node:crypto';
import { presentedFromX509, validForAny } from './identity.js';

export interface TlsaRecord {
  usage: number;
  selector: number;
  matchingType: number;
  data: Uint8Array;
}

export type DaneVerdict =
  | { ok: true; record: string; depth: number }
  | { ok: false; reason: string };

const DIGEST_LENGTH: Record<number, number | undefined> = { 1: 32, 2: 64 };

/** "3 1 1 ab12…" as the record is written, the data shortened for logs. */
export function describeTlsa(r: TlsaRecord): string {
  const hex = Buffer.from(r.data).toString('hex');
  return `${r.usage} ${r.selector} ${r.matchingType} ${hex.length > 16 ? `${hex.slice(0, 16)}…` : hex}`;
}

export function isUsable(r: TlsaRecord): boolean {
  if (r.usage !== 2 && r.usage !== 3) return false;
  if (r.selector !== 0 && r.selector !== 1) return false;
  if (r.matchingType === 0) return r.data.length > 0;
  return DIGEST_LENGTH[r.matchingType] === r.data.length;
}

/** The bytes a record of this selector and matching type is compared with. */
export function associationData(cert: X509Certificate, selector: number, matchingType: number): Buffer {
  const selected = selector === 0 ? cert.raw : cert.publicKey.export({ type: 'spki', format: 'der' });
  if (matchingType === 0) return Buffer.from(selected);
  return createHash(matchingType === 1 ? 'sha256' : 'sha512').update(selected).digest();
}

function matches(cert: X509Certificate, r: TlsaRecord): boolean {
  return associationData(cert, r.selector, r.matchingType).equals(Buffer.from(r.data));
}

function withinDates(cert: X509Certificate, now: number): boolean {
  return Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo);
}

/**
 * Whether the chain is authenticated by the usable records among `records`.
 * `names`: the reference identifiers for DANE-TA (TLSA base domain, next-hop domain).
 */
export function verifyDane(chainDer: Uint8Array[], records: TlsaRecord[], o: { names: string[]; now: number }): DaneVerdict {
  const usable = records.filter(isUsable);
  if (usable.length === 0) return { ok: false, reason: 'no usable TLSA record' };
  if (chainDer.length === 0) return { ok: false, reason: 'the server presented no certificate' };
  let chain: X509Certificate[];
  try {
    chain = chainDer.map((d) => new X509Certificate(d));
  } catch (e) {
    return { ok: false, reason: `the presented certificate cannot be read (${(e as Error).message})` };
  }
  const leaf = chain[0]!;
  for (const r of usable.filter((x) => x.usage === 3)) {
    if (matches(leaf, r)) return { ok: true, record: describeTlsa(r), depth: 0 };
  }
  const reasons: string[] = [];
  for (const r of usable.filter((x) => x.usage === 2)) {
    for (let depth = 1; depth < chain.length; depth++) {
      if (!matches(chain[depth]!, r)) continue;
      const why = chainTo(chain, depth, o.now) ?? nameCheck(leaf, o.names);
      if (why === null) return { ok: true, record: describeTlsa(r), depth };
      reasons.push(`${describeTlsa(r)} matched the certificate at depth ${depth}, but ${why}`);
    }
  }
  if (reasons.length) return { ok: false, reason: reasons.join('; ') };
  return { ok: false, reason: `no TLSA record matches the presented chain (${usable.map(describeTlsa).join(', ')})` };
}

/** null when every certificate below `depth` is issued and signed by the next one and within its dates. */
function chainTo(chain: X509Certificate[], depth: number, now: number): string | null {
  for (let i = 0; i < depth; i++) {
    const cert = chain[i]!;
    const issuer = chain[i + 1]!;
    if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) return `the certificate at depth ${i} is not signed by the one above it`;
    if (!withinDates(cert, now)) return `the certificate at depth ${i} is outside its validity dates (${cert.validFrom} to ${cert.validTo})`;
  }
  return null;
}

function nameCheck(leaf: X509Certificate, names: string[]): string | null {
  const v = validForAny(presentedFromX509(leaf), names);
  return v.ok ? null : `the certificate names none of ${names.join(', ')} (it names ${v.presented.join(', ') || 'nothing'})`;
}
