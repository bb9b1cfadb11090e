/**
 * Limits held cluster-wide (SPEC §12) with `--enforce system`: a destination's concurrent
 * connections and its recipients per window count every node's.
 *
 * - A connection slot is a lease: a member of sorted set `postern:lease:<key>` whose score is its
 *   expiry (Redis's own clock), taken only while fewer than the limit are unexpired, renewed
 *   every third of the TTL while the connection lives, removed when it closes. A node that dies
 *   frees its slots within the TTL. Taking, renewing and releasing are Lua scripts (atomic).
 * - The recipient window is one sliding window, hash `postern:window:<key>` of per-second
 *   buckets with their total: a take grants what the window still allows, atomically, in O(1).
 *
 * When Redis cannot be reached, each node keeps within an equal share of each limit (the limit
 * divided by the number of nodes last seen alive, at least 1), counted locally; and since the
 * others' leases may still be live for one TTL, it opens no new connection during the first TTL
 * after losing Redis. Connections it holds at that moment are kept up to its share; those above
 * it are revoked and close after their current message. When Redis is back, each kept connection
 * takes a lease again (or is revoked if the cluster has no slot left for it).
 */
import { randomBytes } from 'node:crypto';
import { LimitCounters } from '../delivery/limits.js';
import type { Lease, SharedLimits } from '../delivery/limits.js';
import { runScript, type RedisClient } from './connect.js';

const NOW = `local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** KEYS[1] lease set; ARGV: max, ttl ms, lease id. 1 taken (or renewed), 0 none free. */
const ACQUIRE = `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[3]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 1`;

/**
 * KEYS[1] window; ARGV: limit, window ms, wanted. {granted, ms until one is free}.
 * The window is a hash of per-second buckets (`s<second>`), their total (`t`) and the oldest
 * second that may still hold a bucket (`o`), so a take costs O(1) however many recipients the
 * window holds (buckets leaving it are dropped as time passes; at most 3,600 for 60 minutes).
 * Exact to the second, as the local window (delivery/limits.ts): a bucket leaves the window
 * once the window has passed the end of its second (never early). ARGV[4], when given, is the time in ms (tests compare
 * the script with the local window on the same clock); nodes always use Redis's own clock.
 */
export const TAKE = `local now
if ARGV[4] then now = tonumber(ARGV[4]) else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local sec = math.floor(now / 1000)
local span = tonumber(ARGV[2])
local spanS = span / 1000
local cutoff = sec - spanS - 1
local o = tonumber(redis.call('HGET', KEYS[1], 'o') or '0')
local total = tonumber(redis.call('HGET', KEYS[1], 't') or '0')
if o <= cutoff then
  if cutoff - o >= spanS then
    redis.call('DEL', KEYS[1])
    total = 0
  else
    for s = o, cutoff do
      local c = redis.call('HGET', KEYS[1], 's' .. s)
      if c then
        total = total - tonumber(c)
        redis.call('HDEL', KEYS[1], 's' .. s)
      end
    end
  end
  o = cutoff + 1
end
redis.call('HSET', KEYS[1], 'o', o, 't', total)
redis.call('PEXPIRE', KEYS[1], span + 2000)
local avail = tonumber(ARGV[1]) - total
if avail <= 0 then
  local excess = total - tonumber(ARGV[1]) + 1
  for s = o, sec do
    local c = redis.call('HGET', KEYS[1], 's' .. s)
    if c then
      excess = excess - tonumber(c)
      if excess <= 0 then return {0, (s + spanS + 1) * 1000 - now} end
    end
  end
  return {0, span}
end
local granted = math.min(avail, tonumber(ARGV[3]))
redis.call('HINCRBY', KEYS[1], 's' .. sec, granted)
redis.call('HSET', KEYS[1], 't', total + granted)
return {granted, 0}`;

export interface RedisLimitsDeps {
  redis: RedisClient;
  node: string;
  leaseTtlMs: number;
  /** Nodes last seen alive (at least 1), for the shares used without Redis. */
  nodesAlive: () => number;
  now?: () => number;
}

/** One connection slot this node holds: a lease in Redis, a slot of its share, or revoked. */
interface Held {
  key: string;
  max: number;
  mode: 'redis' | 'share' | 'revoked';
}

export class RedisLimits implements SharedLimits {
  private readonly held = new Map<string, Held>();
  private readonly local = new LimitCounters();
  private readonly renewTimer: NodeJS.Timeout;
  private seq = 0;
  /** Since when Redis has been unreachable (ms), or null. */
  private lostAt: number | null = null;
  private readonly now: () => number;

  constructor(private readonly d: RedisLimitsDeps) {
    this.now = d.now ?? Date.now;
    this.renewTimer = setInterval(() => void this.renew(), Math.max(250, Math.floor(d.leaseTtlMs / 3)));
    this.renewTimer.unref();
  }

  private id(): string {
    return `${this.d.node}:${randomBytes(4).toString('hex')}:${++this.seq}`;
  }

  private share(max: number): number {
    return Math.max(1, Math.floor(max / Math.max(1, this.d.nodesAlive())));
  }

  private shareKey(key: string): string {
    return `share|${key}`;
  }

  /** Redis answered: leaving the shares (the slots kept are taken as leases at the next renewal). */
  private reached(): void {
    this.lostAt = null;
  }

  /** Redis did not answer: the slots held as leases are kept up to the share, the rest revoked. */
  private lost(): void {
    if (this.lostAt !== null) return;
    this.lostAt = this.now();
    for (const h of this.held.values()) {
      if (h.mode !== 'redis') continue;
      h.mode = this.local.tryOpen(this.shareKey(h.key), this.share(h.max)) ? 'share' : 'revoked';
    }
  }

  private lease(id: string, h: Held): Lease {
    this.held.set(id, h);
    return {
      release: () => this.release(id),
      get revoked() {
        return h.mode === 'revoked';
      },
    };
  }

  async acquire(key: string, max: number): Promise<Lease | null> {
    const id = this.id();
    try {
      const ok = Number(await runScript(this.d.redis, ACQUIRE, `postern:lease:${key}`, String(max), String(this.d.leaseTtlMs), id));
      this.reached();
      if (ok !== 1) return null;
      return this.lease(id, { key, max, mode: 'redis' });
    } catch {
      this.lost();
      // The others' leases may live one more TTL: no new connection until then; then a share.
      if (this.now() - this.lostAt! < this.d.leaseTtlMs) return null;
      if (!this.local.tryOpen(this.shareKey(key), this.share(max))) return null;
      return this.lease(id, { key, max, mode: 'share' });
    }
  }

  private release(id: string): void {
    const h = this.held.get(id);
    if (!h) return;
    this.held.delete(id);
    if (h.mode === 'share') this.local.close(this.shareKey(h.key));
    // A slot held before Redis was lost may still be listed there: remove it either way.
    this.d.redis.zrem(`postern:lease:${h.key}`, id).catch(() => undefined);
  }

  /** Renews the leases; with Redis back, a slot of the share becomes a lease again, or is revoked. */
  private async renew(): Promise<void> {
    for (const [id, h] of this.held) {
      if (h.mode === 'revoked') continue;
      let ok: number;
      try {
        ok = Number(await runScript(this.d.redis, ACQUIRE, `postern:lease:${h.key}`, String(h.max), String(this.d.leaseTtlMs), id));
      } catch {
        this.lost();
        return;
      }
      this.reached();
      if (!this.held.has(id)) continue; // released meanwhile
      if (h.mode === 'share') this.local.close(this.shareKey(h.key));
      // (A lease that expired during a stall and found no room is revoked too.)
      h.mode = ok === 1 ? 'redis' : 'revoked';
    }
  }

  async takeRecipients(key: string, limit: number, minutes: number, want: number): Promise<{ granted: number; waitMs: number }> {
    try {
      const r = (await runScript(this.d.redis, TAKE, `postern:window:${key}`, String(limit), String(minutes * 60_000), String(want))) as [number, number];
      this.reached();
      return { granted: Number(r[0]), waitMs: Number(r[1]) };
    } catch {
      this.lost();
      const share = this.share(limit);
      const now = this.now();
      const granted = Math.min(want, this.local.recipientsAvailable(this.shareKey(key), now, share, minutes));
      if (granted > 0) this.local.countRecipients(this.shareKey(key), now, granted);
      return { granted, waitMs: granted > 0 ? 0 : this.local.recipientsFreeAt(this.shareKey(key), now, share, minutes) - now };
    }
  }

  close(): void {
    clearInterval(this.renewTimer);
    for (const id of [...this.held.keys()]) this.release(id);
  }
}
