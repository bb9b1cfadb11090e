/**
 * Domain names: one strict rule for every name Postern compares or stores (SPEC §3; RFC 6125
 * §6.4, RFC 5890). Pure.
 *
 * normaliseDomain(name): the comparison form — lower-case ASCII, A-labels, no trailing dot — or
 *   null when the name is not a host name as written. Accepted: LDH labels (letters, digits,
 *   hyphen; 1–63 octets; no hyphen first or last) compared ignoring ASCII case only; `xn--`
 *   labels that are valid A-labels (they decode to a valid IDNA2008 U-label that encodes back to
 *   the same label); U-labels valid under IDNA2008 exactly as written, converted to A-labels.
 *   Nothing is mapped or decoded on the way: no percent-decoding, no UTS #46 mapping (full-width
 *   letters, U+3002 as a dot, soft hyphens, upper-case non-ASCII letters, ª), no NFKC. A name
 *   that needs any of that is refused, so one name can never stand for another. Also refused:
 *   `*` anywhere (wildcards belong to the matcher), a final label of digits only (an IPv4
 *   address), more than 253 octets. One trailing dot is dropped (an absolute name).
 * normaliseDnsName(name): the same for a certificate's dNSName, which is an IA5String and may
 *   hold only ASCII (RFC 5280 §4.2.1.6): any other character makes it match nothing.
 * isPublicSuffix(name): true when the normalised name is a public suffix in the Public Suffix
 *   List (ICANN and private sections) shipped by the `tldts` package, or a single label (the
 *   list's implicit `*` rule). A dependency bump updates the list.
 * toUnicode(name): the U-label form of a name for display; the input unchanged when it cannot be
 *   converted. Never use its result for comparison.
 */

import punycode from 'punycode/punycode.js';
import { getPublicSuffix } from 'tldts';
import { isULabel } from './idna.js';

const LDH_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const ALL_DIGITS = /^[0-9]+$/;
const ASCII_NAME = /^[A-Za-z0-9.-]+$/;
const ASCII_ONLY = /^[\x00-\x7f]*$/;
const MAX_NAME_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;

/** An `xn--` label is an A-label only if it decodes to a U-label that encodes back to it. */
function isALabel(label: string): boolean {
  let decoded: string;
  try {
    decoded = punycode.decode(label.slice(4));
  } catch {
    return false;
  }
  if (!isULabel(decoded)) return false;
  return `xn--${punycode.encode(decoded)}` === label;
}

/** One label in comparison form, or null. */
function label(raw: string): string | null {
  if (ASCII_NAME.test(raw)) {
    const l = raw.toLowerCase();
    if (!LDH_LABEL.test(l)) return null;
    return l.startsWith('xn--') && !isALabel(l) ? null : l;
  }
  // Non-ASCII: a U-label as written. ASCII letters in it may be upper case (ASCII case is never
  // significant); anything else must already be in IDNA2008 form.
  const lowered = raw.replace(/[A-Z]+/g, (s) => s.toLowerCase());
  if (!isULabel(lowered)) return null;
  const encoded = `xn--${punycode.encode(lowered)}`;
  return encoded.length <= MAX_LABEL_LENGTH ? encoded : null;
}

export function normaliseDomain(name: string): string | null {
  if (typeof name !== 'string' || name.length === 0 || name.length > 4 * MAX_NAME_LENGTH) return null;
  const absolute = name.endsWith('.') ? name.slice(0, -1) : name;
  if (absolute.length === 0) return null;
  // Fast path for the common case: plain ASCII with no A-label needs no conversion.
  if (ASCII_NAME.test(absolute) && !/xn--/i.test(absolute)) {
    if (absolute.length > MAX_NAME_LENGTH) return null;
    const lower = absolute.toLowerCase();
    const labels = lower.split('.');
    for (const l of labels) if (!LDH_LABEL.test(l)) return null;
    return ALL_DIGITS.test(labels[labels.length - 1]!) ? null : lower;
  }
  const labels: string[] = [];
  for (const raw of absolute.split('.')) {
    const l = label(raw);
    if (l === null) return null;
    labels.push(l);
  }
  const ascii = labels.join('.');
  if (ascii.length > MAX_NAME_LENGTH) return null;
  return ALL_DIGITS.test(labels[labels.length - 1]!) ? null : ascii;
}

export function normaliseDnsName(name: string): string | null {
  return typeof name === 'string' && ASCII_ONLY.test(name) ? normaliseDomain(name) : null;
}

export function isPublicSuffix(normalised: string): boolean {
  if (!normalised.includes('.')) return true;
  const suffix = getPublicSuffix(normalised, { allowPrivateDomains: true, extractHostname: false, validateHostname: false });
  return suffix === normalised;
}

export function toUnicode(name: string): string {
  try {
    return punycode.toUnicode(name);
  } catch {
    return name;
  }
}
