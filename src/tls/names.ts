/**
 * Domain-name normalisation for certificate identity checks (SPEC §3, stage two).
 *
 * normaliseDomain(name): the canonical comparison form of a DNS name — lower-case, A-label
 *   (punycode) form, without the trailing dot — or null when the name is not a usable host name:
 *   empty, an empty or over-long label, a character outside letters/digits/hyphen, a label that
 *   begins or ends with a hyphen, a final label made only of digits (that is an IPv4 address, not
 *   a DNS name), over 253 characters, or a U-label that `domainToASCII` cannot convert. A name
 *   containing `*` is never valid here: wildcards are handled by the matcher, not by this function.
 * toUnicode(name): the U-label form of a name for display; the input unchanged when it cannot be
 *   converted. Never use its result for comparison.
 */

import { domainToASCII, domainToUnicode } from 'node:url';

// LDH rule (RFC 1123 host names). Underscores are refused: host names and certificate dNSNames
// may not carry them, and refusing fails closed (a non-match), never open.
const LDH_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const ALL_DIGITS = /^[0-9]+$/;
const MAX_NAME_LENGTH = 253;

export function normaliseDomain(name: string): string | null {
  if (name.length === 0 || name.includes('*')) return null;
  // domainToASCII applies UTS #46 mapping (case folding, full-width dots) and punycode; it
  // returns '' for names it rejects, including A-labels that do not decode.
  let ascii = domainToASCII(name);
  if (ascii.length === 0) return null;
  // One trailing dot marks an absolute name and is not part of the identity; a second one would
  // leave an empty label, which the label check below refuses.
  if (ascii.endsWith('.')) ascii = ascii.slice(0, -1);
  ascii = ascii.toLowerCase();
  if (ascii.length === 0 || ascii.length > MAX_NAME_LENGTH) return null;
  const labels = ascii.split('.');
  if (!labels.every((label) => LDH_LABEL.test(label))) return null;
  // domainToASCII turns numeric hosts (even "0x7f.1") into dotted IPv4; those are addresses.
  if (ALL_DIGITS.test(labels[labels.length - 1] ?? '')) return null;
  return ascii;
}

export function toUnicode(name: string): string {
  const unicode = domainToUnicode(name);
  return unicode.length > 0 ? unicode : name;
}
