/**
 * Per-destination limit counters (SPEC §1, §4): connections open (counted from the moment one
 * is being opened) and recipients sent within a sliding window of M minutes. Keys name what a
 * limit is counted for: the domain, or (domain, MX IP) with "each MX IP address", each
 * optionally per virtual gateway. Pure state with time passed in.
 *
 * The recipient window is exact to the second: sends are kept as (second, count) buckets, at
 * most M × 60 of them per key, so memory does not grow with the number of recipients.
 */

/** A connection slot held in the cluster; released when the connection closes. */
export interface Lease {
  release(): void;
  /** True once the slot was taken back (the node fell above its share): close after this message. */
  readonly revoked: boolean;
}

/**
 * Limits counted beyond this process (cluster/limits.ts, on Redis): a connection slot of `key`
 * among at most `max` across every node, and recipients taken from one window shared by every
 * node (how many were granted, and how long until one is free when none was).
 */
export interface SharedLimits {
  acquire(key: string, max: number): Promise<Lease | null>;
  takeRecipients(key: string, limit: number, minutes: number, want: number): Promise<{ granted: number; waitMs: number }>;
  close(): void;
}

export function limitKey(domain: string, o: { mxIp?: string; gateway?: string } = {}): string {
  return `${domain}|${o.mxIp ?? ''}|${o.gateway ?? ''}`;
}

class RecipientWindow {
  private readonly buckets: { second: number; count: number }[] = [];
  private total = 0;

  private expire(now: number, minutes: number): void {
    // A bucket holds recipients of any moment of its second: it leaves the window only once the
    // window has passed the end of that second (never early).
    const oldest = Math.floor(now / 1000) - minutes * 60;
    while (this.buckets.length > 0 && this.buckets[0]!.second < oldest) this.total -= this.buckets.shift()!.count;
  }

  available(now: number, limit: number, minutes: number): number {
    this.expire(now, minutes);
    return Math.max(0, limit - this.total);
  }

  /** When the next recipient may go (ms since the epoch), given the window is full now. */
  nextFree(now: number, limit: number, minutes: number): number {
    this.expire(now, minutes);
    if (this.total < limit || this.buckets.length === 0) return now;
    // The oldest bucket leaves the window minutes*60 s after its second began.
    let excess = this.total - limit + 1;
    for (const b of this.buckets) {
      excess -= b.count;
      if (excess <= 0) return (b.second + minutes * 60 + 1) * 1000;
    }
    return now + minutes * 60_000;
  }

  add(now: number, count: number): void {
    const second = Math.floor(now / 1000);
    // Almost always the newest second; a moved count may land a little before it.
    let i = this.buckets.length;
    while (i > 0 && this.buckets[i - 1]!.second > second) i--;
    const at = this.buckets[i - 1];
    if (at && at.second === second) at.count += count;
    else this.buckets.splice(i, 0, { second, count });
    this.total += count;
  }

  /** Recipients counted at `from` are counted at `to` instead (later: when their delivery ended). */
  move(from: number, to: number, count: number): void {
    const second = Math.floor(from / 1000);
    const b = this.buckets.find((x) => x.second === second);
    if (!b) return; // already out of the window
    const n = Math.min(count, b.count);
    b.count -= n;
    this.total -= n;
    if (b.count === 0) this.buckets.splice(this.buckets.indexOf(b), 1);
    this.add(to, n);
  }
}

export class LimitCounters {
  private readonly connections = new Map<string, number>();
  private readonly windows = new Map<string, RecipientWindow>();

  /** Takes a connection slot if fewer than `max` are open for `key`. */
  tryOpen(key: string, max: number): boolean {
    const n = this.connections.get(key) ?? 0;
    if (n >= max) return false;
    this.connections.set(key, n + 1);
    return true;
  }

  close(key: string): void {
    const n = (this.connections.get(key) ?? 1) - 1;
    if (n <= 0) this.connections.delete(key);
    else this.connections.set(key, n);
  }

  open(key: string): number {
    return this.connections.get(key) ?? 0;
  }

  recipientsAvailable(key: string, now: number, limit: number, minutes: number): number {
    return this.window(key).available(now, limit, minutes);
  }

  recipientsFreeAt(key: string, now: number, limit: number, minutes: number): number {
    return this.window(key).nextFree(now, limit, minutes);
  }

  countRecipients(key: string, now: number, count: number): void {
    this.window(key).add(now, count);
  }

  /**
   * Recipients counted when their transaction began count from when it ended: a receiver sees
   * them arrive then, and the window must hold where it is measured.
   */
  moveRecipients(key: string, from: number, to: number, count: number): void {
    this.windows.get(key)?.move(from, to, count);
  }

  /** Forgets the recipient windows of a domain (every key that starts with it), or of all. */
  reset(domain?: string): void {
    if (domain === undefined) {
      this.windows.clear();
      return;
    }
    for (const k of [...this.windows.keys()]) if (k.startsWith(`${domain}|`)) this.windows.delete(k);
  }

  private window(key: string): RecipientWindow {
    let w = this.windows.get(key);
    if (!w) this.windows.set(key, (w = new RecipientWindow()));
    return w;
  }
}
