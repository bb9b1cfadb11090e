/**
 * What a message's sender asked of TLS (RFC 8689), decided once when the message is accepted:
 * the `REQUIRETLS` MAIL FROM parameter (verified TLS all the way), or else the header
 * `TLS-Required: No` (deliver even where the recipient domain's MTA-STS or DANE policy fails).
 * REQUIRETLS wins over the header (§4.1).
 */
import { headerFields, headerSection } from '../queue/headers.js';
import type { TlsRequired } from '../queue/store.js';

/** Whether the header section holds `TLS-Required: No` (name and value case-insensitive). */
export function hasTlsRequiredNo(body: Buffer): boolean {
  const section = headerSection(body);
  // Most messages have no such field: a search of the section spares splitting it into fields.
  if (!/tls-required/i.test(section)) return false;
  return headerFields(section).some((f) => f.name.trim().toLowerCase() === 'tls-required' && f.value.trim().toLowerCase() === 'no');
}

export function tlsRequiredOf(requireTlsParameter: boolean, body: Buffer): TlsRequired | undefined {
  if (requireTlsParameter) return 'requiretls';
  return hasTlsRequiredNo(body) ? 'no' : undefined;
}
