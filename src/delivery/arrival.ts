/**
 * Deferral on arrival (pure). While no host of a destination could be reached a moment ago (the
 * engine's suspension), a message arriving for it is stored with those recipients already
 * deferred: no lease and no second write for them. The engine decides with its own
 * suspensions; the listener thread decides with an ArrivalView, a copy of them the engine sends
 * it whenever they change (smtp/listener-thread.ts). A copy a moment old only means a recipient
 * is stored queued and then deferred by the engine without a connection, as before.
 */
import { exhausted, retryDelaySeconds, type BounceProfile } from '../bounce/profile.js';
import { gatewayFor, type GatewaySnapshot } from '../config/gateways.js';
import type { NewMessage } from '../queue/store.js';

/** A suspended destination as arrivals see it. */
export interface ArrivalHold {
  /** Until when new work is deferred without a connection (epoch ms). */
  until: number;
  /** When the hosts were found unreachable (epoch ms). */
  since: number;
  enhanced: string;
  reason: string;
  /** The destination's bounce profile (retry waits, the end of retries). */
  profile: BounceProfile;
}

/** What the listener thread needs to decide: the suspensions by destination key, and the gateways. */
export interface ArrivalView {
  holds: Map<string, ArrivalHold>;
  gateways?: GatewaySnapshot;
}

/** The engine's key of a destination queue: domain, virtual gateway, REQUIRETLS / TLS-Required: No. */
export function destinationKey(domain: string, gateway: string, tlsRequired: string | null | undefined): string {
  return `${domain}|${gateway}|${tlsRequired ?? ''}`;
}

/** Why a recipient of a suspended destination was deferred without a connection attempt. */
export function notTried(s: { since: number; reason: string }, now: number): string {
  return `not tried: no host could be reached ${Math.round((now - s.since) / 1000)} s ago (${s.reason})`;
}

/**
 * Marks the recipients of `msg` whose destination is held as deferred (one attempt counted).
 * Those whose bounce profile would end them at this attempt are left to the normal way (a DSN).
 */
export function deferArrivals(msg: NewMessage, gateways: GatewaySnapshot | undefined, hold: (key: string) => ArrivalHold | undefined, now: number): void {
  const gateway = gatewayFor(gateways, msg.sender)?.name ?? '';
  for (const r of msg.recipients) {
    const s = hold(destinationKey(r.domain, gateway, msg.tlsRequired));
    if (!s || now >= s.until) continue;
    if (exhausted(s.profile, 1, msg.receivedAt, now)) continue;
    r.deferred = { nextAttempt: now + retryDelaySeconds(s.profile, 1) * 1000, enhanced: s.enhanced, reason: notTried(s, now) };
  }
}
