/**
 * The six TLS settings as a decision table (SPEC §2). Pure: delivery reports what it observed
 * at each step and gets back what to do.
 *
 *   observation            what delivery saw
 *   ───────────            ─────────────────
 *   not-offered            EHLO did not advertise STARTTLS
 *   rejected               STARTTLS answered with anything but 220 ("before 220")
 *   handshake-failed       220, then the handshake failed or the server misbehaved ("after 220")
 *   unverified             TLS up; chain untrusted or identity mismatch
 *   verified               TLS up; chain and identity verified
 */
import type { TlsMode } from '../controls/types.js';

export type TlsObservation = 'not-offered' | 'rejected' | 'handshake-failed' | 'unverified' | 'verified';

export type TlsAction =
  /** Go on with the SMTP transaction in clear text on this connection. */
  | 'clear'
  /** Go on with the SMTP transaction over TLS. */
  | 'encrypted'
  /** Go on over TLS and log that verification failed (Preferred - Verify). */
  | 'encrypted-unverified'
  /** Policy refuses delivery on this connection: QUIT, try the next MX host. */
  | 'refuse'
  /** The connection is unusable after 220: drop it, never fall back to clear text on it. */
  | 'drop';

export function isRequired(mode: TlsMode): boolean {
  return mode === 'required' || mode === 'required-verify' || mode === 'required-verify-hosted';
}

export function isPreferred(mode: TlsMode): boolean {
  return mode === 'preferred' || mode === 'preferred-verify';
}

/** Whether the certificate is checked at all; Preferred and Required make no attempt. */
export function verifies(mode: TlsMode): boolean {
  return mode === 'preferred-verify' || mode === 'required-verify' || mode === 'required-verify-hosted';
}

export function identityAlgorithm(mode: TlsMode): 'verify' | 'hosted' | null {
  if (mode === 'required-verify-hosted') return 'hosted';
  return verifies(mode) ? 'verify' : null;
}

/**
 * Whether to send STARTTLS on a connection. `rememberedBroken`: this host's handshake failed
 * after 220 recently (SPEC §2, beyond the appliance): the Preferred settings then skip STARTTLS
 * on new connections; the Required settings never do.
 */
export function shouldStartTls(mode: TlsMode, rememberedBroken: boolean): boolean {
  if (mode === 'no') return false;
  if (rememberedBroken && isPreferred(mode)) return false;
  return true;
}

/** What to do after an observation, for a setting that asked for TLS. */
export function decide(mode: TlsMode, seen: TlsObservation): TlsAction {
  if (mode === 'no') return 'clear';
  switch (seen) {
    case 'not-offered':
    case 'rejected':
      return isPreferred(mode) ? 'clear' : 'refuse';
    case 'handshake-failed':
      return 'drop';
    case 'unverified':
      if (mode === 'preferred-verify') return 'encrypted-unverified';
      return mode === 'required-verify' || mode === 'required-verify-hosted' ? 'refuse' : 'encrypted';
    case 'verified':
      return 'encrypted';
  }
}
