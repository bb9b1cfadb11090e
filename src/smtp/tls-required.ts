/**
 * What a message's sender asked of TLS (RFC 8689), decided once when the message is accepted:
 * the `REQUIRETLS` MAIL FROM parameter (verified TLS all the way), or else the header
 * `TLS-Required: No` (deliver even where the recipient domain's MTA-STS or DANE policy fails).
 * REQUIRETLS wins over the header (§4.1).
 */
import type { TlsRequired } from '../queue/store.js';

/** The header section of a message (up to the first empty line), unfolded into fields. */
function headerFields(body: Buffer): string[] {
  // Headers are ASCII; 64 KiB is far beyond any real header section and bounds the work.
  const text = body.subarray(0, 65_536).toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  const section = end === -1 ? text : text.slice(0, end);
  return section.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/);
}

/** Whether the header section holds `TLS-Required: No` (name and value case-insensitive). */
export function hasTlsRequiredNo(body: Buffer): boolean {
  return headerFields(body).some((f) => /^tls-required[ \t]*:[ \t]*no[ \t]*$/i.test(f));
}

export function tlsRequiredOf(requireTlsParameter: boolean, body: Buffer): TlsRequired | undefined {
  if (requireTlsParameter) return 'requiretls';
  return hasTlsRequiredNo(body) ? 'no' : undefined;
}
