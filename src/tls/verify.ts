/**
 * Certificate verification for one TLS connection (SPEC §3): stage one, the chain (trusted
 * authority, validity dates, as judged by the TLS stack against Postern's trust store); stage two,
 * the identity, by the Verify or the Hosted algorithm. Pure.
 */
import type { DetailedPeerCertificate } from 'node:tls';
import { checkHosted, checkVerify, presentedFrom, type IdentityVerdict } from './identity.js';

export interface VerificationInput {
  algorithm: 'verify' | 'hosted';
  chainTrusted: boolean;
  chainError?: string;
  /** Node's certificate object, or the server's certificate as DER alone (what the names are read from). */
  certificate: DetailedPeerCertificate | { raw: Uint8Array } | null;
  recipientDomain: string;
  /** The MX host name connected to (from DNS), if any. */
  mxHost?: string;
  /** The host named by an administrator's SMTP route, if any. */
  routeHost?: string;
  /** PTR names of the address connected to (Verify only). */
  ptrNames?: string[];
}

/** Both stages are always judged (when there is a certificate), so a report can show each. */
export type VerificationResult =
  | { ok: true; identity: IdentityVerdict }
  | { ok: false; stage: 'chain'; reason: string; identity?: IdentityVerdict }
  | { ok: false; stage: 'identity'; reason: string; identity: IdentityVerdict };

/** Words for the OpenSSL verification codes an administrator meets. */
export function describeChainError(code: string | undefined): string {
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return 'untrusted certificate: expired';
    case 'CERT_NOT_YET_VALID':
      return 'untrusted certificate: not yet valid';
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
      return `untrusted chain: self-signed certificate (${code})`;
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
      return `untrusted chain: unknown certificate authority (${code})`;
    case undefined:
      return 'untrusted chain';
    default:
      return `untrusted chain: ${code}`;
  }
}

export function verifyCertificate(i: VerificationInput): VerificationResult {
  try {
    return judge(i);
  } catch (e) {
    // Defence in depth: the checks are written not to throw; if one ever does, the verdict is a
    // failure with the reason, never a pass and never a connection error.
    const reason = `certificate names could not be checked (${e instanceof Error ? e.message : String(e)})`;
    return { ok: false, stage: 'identity', reason, identity: { ok: false, algorithm: i.algorithm, reason, compared: [] } };
  }
}

function judge(i: VerificationInput): VerificationResult {
  if (!i.certificate || Object.keys(i.certificate).length === 0) {
    return { ok: false, stage: 'chain', reason: 'the server presented no certificate' };
  }
  const presented = presentedFrom(i.certificate);
  const identity =
    i.algorithm === 'hosted'
      ? checkHosted(presented, { recipientDomain: i.recipientDomain, routeHost: i.routeHost, mxHost: i.mxHost })
      : checkVerify(presented, {
          recipientDomain: i.recipientDomain,
          connectedHosts: [...(i.mxHost ? [i.mxHost] : []), ...(i.routeHost ? [i.routeHost] : []), ...(i.ptrNames ?? [])],
        });
  if (!i.chainTrusted) {
    // Both verdicts, so that the log says everything that is wrong with the certificate.
    const chain = describeChainError(i.chainError);
    return { ok: false, stage: 'chain', reason: identity.ok ? chain : `${chain}; identity: ${identity.reason}`, identity };
  }
  return identity.ok ? { ok: true, identity } : { ok: false, stage: 'identity', reason: identity.reason, identity };
}
