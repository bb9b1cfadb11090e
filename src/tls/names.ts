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

// Names made only of ASCII letters, digits, dots and hyphens with no A-label: for these
// domainToASCII only lower-cases, or turns a name ending in a number (decimal or 0x-hex) into
// an IPv4 address or rejects it. Both are done here without it (~1 µs a call), with the same
// result (test/identity.test.ts compares the two).
const PLAIN_ASCII = /^[A-Za-z0-9.-]+$/;
const A_LABEL = /(?:^|\.)xn--/i;
const ENDS_IN_NUMBER = /(?:^|\.)(?:[0-9]+|0x[0-9a-f]*)\.?$/i;

export function normaliseDomain(name: string): string | null {
  if (name.length === 0 || name.includes('*')) return null;
  if (PLAIN_ASCII.test(name) && !A_LABEL.test(name)) return ENDS_IN_NUMBER.test(name) ? null : finish(name);
  // domainToASCII applies UTS #46 mapping (case folding, full-width dots) and punycode; it
  // returns '' for names it rejects, including A-labels that do not decode.
  return finish(domainToASCII(name));
}

/** The checks after the A-label conversion. */
function finish(converted: string): string | null {
  let ascii = converted;
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

/** normaliseDomain as it is without the ASCII fast path: for the test comparing the two. */
export function normaliseDomainSlow(name: string): string | null {
  if (name.length === 0 || name.includes('*')) return null;
  return finish(domainToASCII(name));
}

export function toUnicode(name: string): string {
  const unicode = domainToUnicode(name);
  return unicode.length > 0 ? unicode : name;
}
