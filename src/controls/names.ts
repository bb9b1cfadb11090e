/**
 * Destination names (SPEC §1): `example.com` names that domain exactly, `.example.com` every
 * subdomain of it. Stored and compared in lower-case A-label form without a trailing dot.
 */
import { normaliseDomain, toUnicode } from '../tls/names.js';
import { ValidationError } from './validate.js';

/** Normalises a destination name; throws a ValidationError naming the value when it is not one. */
export function parseDestinationName(input: string): string {
  const raw = input.trim();
  const suffix = raw.startsWith('.');
  const domain = normaliseDomain(suffix ? raw.slice(1) : raw);
  if (domain === null || (suffix && domain.length === 0)) {
    throw new ValidationError('destination', input, 'a domain name (example.com) or a subdomain pattern (.example.com)');
  }
  return suffix ? `.${domain}` : domain;
}

/**
 * Which of a set of names governs `domain` (a normalised domain name): the domain itself, else
 * the longest `.suffix` above it, else undefined. The rule of the destination table, SMTP routes
 * and local domains alike; one look-up per label, whatever the number of names.
 */
export function mostSpecificName(domain: string, has: (name: string) => boolean): string | undefined {
  if (has(domain)) return domain;
  for (let dot = domain.indexOf('.'); dot !== -1; dot = domain.indexOf('.', dot + 1)) {
    const suffix = domain.slice(dot);
    if (has(suffix)) return suffix;
  }
  return undefined;
}

/** Both forms for display: `xn--bcher-kva.test (bücher.test)` when they differ. */
/** The domain part of an address, lower-case ('' without an @). */
export function domainOfAddress(address: string): string {
  const at = address.lastIndexOf('@');
  return (at === -1 ? '' : address.slice(at + 1)).toLowerCase();
}

export function displayName(name: string): string {
  const suffix = name.startsWith('.');
  const unicode = toUnicode(suffix ? name.slice(1) : name);
  const ascii = suffix ? name.slice(1) : name;
  return unicode === ascii ? name : `${name} (${suffix ? '.' : ''}${unicode})`;
}
