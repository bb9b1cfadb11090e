/**
 * Deferral on arrival (pure). While no host of a destination could be reached a moment ago (the
 * engine's suspension), a message arriving for it is stored with those recipients already
 * deferred: no lease and no second write for them. The engine decides with its own
 * suspensions; the listener thread decides with an ArrivalView, a copy of them the engine sends
 * it whenever they change (smtp/listener-thread.ts). A copy a moment old only means a recipient
 * is stored queued and then deferred by the engine without a connection, as before.
 */
import { notifyWants } from '../bounce/dsn.js';
import { delayWarningDue, dsnAddressOf, exhausted, retryDelaySeconds, type BounceProfile } from '../bounce/profile.js';
import { gatewayFor, type GatewaySnapshot } from '../config/gateways.js';
import type { LeasedRecipient, NewMessage } from '../queue/store.js';

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

/**
 * Whether deferring this recipient once more must instead end it (a bounce) or send a delay
 * warning now: either way it needs its DSN, i.e. the engine's record(), not a bare deferral.
 */
export function noticeDueNow(profile: BounceProfile, r: LeasedRecipient, now: number): boolean {
  const attempts = r.attempts + 1;
  if (exhausted(profile, attempts, r.receivedAt, now)) return true;
  return dsnAddressOf(profile, r.sender, r.isBounce) !== null && notifyWants(r.notify, 'DELAY') && delayWarningDue(profile, attempts, r.warningsSent, r.lastWarningAt, now);
}

/** Due recipients of one held destination deferred again together: one retry time, one reply. */
export interface DueDeferral {
  rows: LeasedRecipient[];
  ids: number[];
  nextAttempt: number;
  enhanced: string;
  reason: string;
  /** `enhanced reason`, as the queue stores it. */
  reply: string;
}

/**
 * Recipients that came due for a destination still held, sorted out of a lease (the engine's
 * tick): they are deferred again at once (one attempt counted, as deferUntried does), grouped
 * by retry time, without being leased, queued in memory and written a second time. Left in
 * `keep` for the normal way: every other destination's, and those the bounce profile ends now
 * or a delay warning is due for (each needs its DSN).
 */
export function deferDue(rows: LeasedRecipient[], gateways: GatewaySnapshot | undefined, hold: (key: string) => ArrivalHold | undefined, now: number): { keep: LeasedRecipient[]; deferred: DueDeferral[] } {
  const keep: LeasedRecipient[] = [];
  const groups = new Map<string, DueDeferral>();
  for (const r of rows) {
    const s = hold(destinationKey(r.domain, gatewayFor(gateways, r.sender)?.name ?? '', r.tlsRequired));
    const attempts = r.attempts + 1;
    if (!s || now >= s.until || noticeDueNow(s.profile, r, now)) {
      keep.push(r);
      continue;
    }
    const nextAttempt = now + retryDelaySeconds(s.profile, attempts) * 1000;
    const reason = notTried(s, now);
    const k = `${nextAttempt} ${s.enhanced} ${reason}`;
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { rows: [], ids: [], nextAttempt, enhanced: s.enhanced, reason, reply: `${s.enhanced} ${reason}` }));
    g.rows.push(r);
    g.ids.push(r.id);
  }
  return { keep, deferred: [...groups.values()] };
}
