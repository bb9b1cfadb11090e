/**
 * The names a certificate presents, read from the exact DER bytes the authority signed. Pure.
 *
 * namesFromDer(der): the subjectAltName dNSNames and the subject CNs of a certificate.
 *   - dNSName values are IA5String octets, returned one character per octet: an octet over 0x7f
 *     or a control character stays in the string, where the name rules refuse it (it then
 *     matches nothing) and the log writer escapes it.
 *   - CN values are decoded strictly by their string type (UTF8String, PrintableString,
 *     IA5String, BMPString, UniversalString, and ASCII-only Teletex/Visible strings); a value
 *     that does not decode is returned as `\xHH` escapes of its octets, which match nothing,
 *     rather than guessed into some other name.
 *   - `unreadable` is set when a verdict cannot be reached from the names: the certificate does
 *     not decode, or it carries a subjectAltName that does not decode, is empty, or appears
 *     twice. Callers fail the identity check with that reason and never fall back to the CN:
 *     the authority signed names Postern cannot read.
 * Never throws.
 */
import * as asn1js from 'asn1js';

export interface CertificateNames {
  dnsNames: string[];
  commonNames: string[];
  /** Why no verdict can be reached from this certificate's names; absent when it can. */
  unreadable?: string;
}

// OIDs as their DER encodings (tag, length, value), compared byte for byte.
const OID_CN = Uint8Array.from([0x06, 0x03, 0x55, 0x04, 0x03]);
const OID_SAN = Uint8Array.from([0x06, 0x03, 0x55, 0x1d, 0x11]);

const UNIVERSAL = 1;
const CONTEXT = 3;
const TAG_SEQUENCE = 16;
const TAG_SET = 17;
const TAG_OCTET_STRING = 4;
const TAG_BOOLEAN = 1;

type Element = asn1js.AsnType;

function parse(bytes: Uint8Array): Element | null {
  const r = asn1js.fromBER(bytes);
  // Trailing bytes after the element are as bad as a broken element.
  if (r.offset === -1 || r.offset !== bytes.byteLength || r.result.error) return null;
  return r.result;
}

function isTag(e: Element | undefined, tagClass: number, tagNumber: number): boolean {
  return e !== undefined && e.idBlock.tagClass === tagClass && e.idBlock.tagNumber === tagNumber;
}

function children(e: Element | undefined): Element[] | null {
  if (e === undefined || !e.idBlock.isConstructed) return null;
  const v = (e.valueBlock as { value?: unknown }).value;
  return Array.isArray(v) ? (v as Element[]) : null;
}

function raw(e: Element): Uint8Array {
  return new Uint8Array(e.valueBeforeDecodeView);
}

/** The content octets of a primitive element. */
function content(e: Element): Uint8Array | null {
  if (e.idBlock.isConstructed) return null;
  const v = (e.valueBlock as { valueHexView?: Uint8Array }).valueHexView;
  return v instanceof Uint8Array ? v : null;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((x, i) => x === b[i]);
}

function hexEscaped(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => `\\x${b.toString(16).padStart(2, '0')}`).join('');
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const latin1 = (bytes: Uint8Array): string => String.fromCharCode(...bytes);
const isAscii = (bytes: Uint8Array): boolean => bytes.every((b) => b < 0x80);

function decodeUtf16Be(bytes: Uint8Array): string | null {
  if (bytes.byteLength % 2 !== 0) return null;
  const units: number[] = [];
  for (let i = 0; i < bytes.byteLength; i += 2) units.push((bytes[i]! << 8) | bytes[i + 1]!);
  const s = String.fromCharCode(...units);
  return LONE_SURROGATE.test(s) ? null : s;
}

function decodeUtf32Be(bytes: Uint8Array): string | null {
  if (bytes.byteLength % 4 !== 0) return null;
  let s = '';
  for (let i = 0; i < bytes.byteLength; i += 4) {
    const cp = ((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0;
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return null;
    s += String.fromCodePoint(cp);
  }
  return s;
}

/** A directory string's text, strictly by its type; null when it does not decode. */
function directoryString(e: Element): string | null {
  const bytes = content(e);
  if (bytes === null || e.idBlock.tagClass !== UNIVERSAL) return null;
  switch (e.idBlock.tagNumber) {
    case 12: // UTF8String
      try {
        return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
      } catch {
        return null;
      }
    case 19: // PrintableString
    case 22: // IA5String
    case 20: // TeletexString: only its ASCII subset is unambiguous
    case 26: // VisibleString
      return isAscii(bytes) ? latin1(bytes) : null;
    case 30: // BMPString
      return decodeUtf16Be(bytes);
    case 28: // UniversalString
      return decodeUtf32Be(bytes);
    default:
      return null;
  }
}

function commonNames(subject: Element): string[] | null {
  const rdns = children(subject);
  if (rdns === null) return null;
  const names: string[] = [];
  for (const rdn of rdns) {
    const atvs = isTag(rdn, UNIVERSAL, TAG_SET) ? children(rdn) : null;
    if (atvs === null) return null;
    for (const atv of atvs) {
      const parts = isTag(atv, UNIVERSAL, TAG_SEQUENCE) ? children(atv) : null;
      if (parts === null || parts.length !== 2) return null;
      if (!sameBytes(raw(parts[0]!), OID_CN)) continue;
      const value = parts[1]!;
      names.push(directoryString(value) ?? hexEscaped(content(value) ?? raw(value)));
    }
  }
  return names;
}

type SanResult = { dnsNames: string[] } | { unreadable: string };

function altNames(extnValue: Uint8Array): SanResult {
  const undecodable = { unreadable: 'subjectAltName present but undecodable' };
  const seq = parse(extnValue);
  const names = seq !== null && isTag(seq, UNIVERSAL, TAG_SEQUENCE) ? children(seq) : null;
  if (names === null) return undecodable;
  if (names.length === 0) return { unreadable: 'subjectAltName present but empty' };
  const dnsNames: string[] = [];
  for (const n of names) {
    // Every GeneralName is context-tagged; anything else means we misread the extension.
    if (n.idBlock.tagClass !== CONTEXT) return undecodable;
    if (n.idBlock.tagNumber !== 2) continue; // IP, URI, email, ...: not DNS identifiers
    const bytes = content(n);
    if (bytes === null) return undecodable;
    dnsNames.push(latin1(bytes));
  }
  return { dnsNames };
}

/** The extnValue of every subjectAltName extension in the TBSCertificate's extensions. */
function sanValues(extensions: Element): Uint8Array[] | null {
  const list = children(children(extensions)?.[0]);
  if (list === null) return null;
  const values: Uint8Array[] = [];
  for (const ext of list) {
    const parts = isTag(ext, UNIVERSAL, TAG_SEQUENCE) ? children(ext) : null;
    if (parts === null || parts.length < 2 || parts.length > 3) return null;
    if (!sameBytes(raw(parts[0]!), OID_SAN)) continue;
    const octets = parts[parts.length - 1]!;
    if (parts.length === 3 && !isTag(parts[1], UNIVERSAL, TAG_BOOLEAN)) return null;
    const value = isTag(octets, UNIVERSAL, TAG_OCTET_STRING) ? content(octets) : null;
    if (value === null) return null;
    values.push(value);
  }
  return values;
}

export function namesFromDer(der: Uint8Array): CertificateNames {
  const unreadable = (reason: string): CertificateNames => ({ dnsNames: [], commonNames: [], unreadable: reason });
  try {
    const cert = parse(der);
    const tbs = children(children(cert ?? undefined)?.[0]);
    if (tbs === null) return unreadable('the certificate could not be decoded');
    // TBSCertificate: [0] version?, serial, signature, issuer, validity, subject, spki, [1]?, [2]?, [3] extensions?
    const offset = isTag(tbs[0], CONTEXT, 0) ? 1 : 0;
    const subject = tbs[offset + 4];
    if (subject === undefined || !isTag(subject, UNIVERSAL, TAG_SEQUENCE)) return unreadable('the certificate subject could not be decoded');
    const cns = commonNames(subject);
    if (cns === null) return unreadable('the certificate subject could not be decoded');
    const extensions = tbs.slice(offset + 6).find((e) => isTag(e, CONTEXT, 3));
    const sans = extensions === undefined ? [] : sanValues(extensions);
    if (sans === null) return unreadable('the certificate extensions could not be decoded');
    if (sans.length > 1) return unreadable('subjectAltName present more than once');
    if (sans.length === 0) return { dnsNames: [], commonNames: cns };
    const san = altNames(sans[0]!);
    if ('unreadable' in san) return unreadable(san.unreadable);
    return { dnsNames: san.dnsNames, commonNames: cns };
  } catch {
    return unreadable('the certificate could not be decoded');
  }
}
