/**
 * The trust store for outbound verification: the system's root authorities (Node's bundled
 * store plus any the platform adds) and the custom authorities added with `certconfig`.
 * Building a secure context parses every root certificate, so contexts are cached per content.
 */
import tls from 'node:tls';

export interface TrustConfig {
  useSystem: boolean;
  custom: string[];
  /** Client certificate offered to servers that ask (the outbound certificate of SETUP). */
  clientKey?: string;
  clientCert?: string;
}

const cache = new Map<string, tls.SecureContext>();

function key(t: TrustConfig): string {
  return JSON.stringify([t.useSystem, t.custom, t.clientKey ?? '', t.clientCert ?? '']);
}

export function secureContextFor(t: TrustConfig): tls.SecureContext {
  const k = key(t);
  let ctx = cache.get(k);
  if (!ctx) {
    const ca = [...(t.useSystem ? tls.rootCertificates : []), ...t.custom];
    ctx = tls.createSecureContext({
      ca,
      key: t.clientKey,
      cert: t.clientCert,
      minVersion: 'TLSv1.2',
    });
    if (cache.size > 16) cache.clear();
    cache.set(k, ctx);
  }
  return ctx;
}
