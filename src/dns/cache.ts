/**
 * A bounded cache whose entries expire: at most `maxEntries` live at once, and when a new one
 * would exceed that, the least recently used goes. A Map keeps insertion order, so moving an
 * entry to the end on every read makes its first key the least recently used one.
 */

export interface CacheHit<V> {
  value: V;
  /** Milliseconds until the entry expires (always > 0). */
  remainingMs: number;
}

interface Entry<V> {
  value: V;
  expiresAt: number;
}

export class TtlLruCache<V> {
  private readonly entries = new Map<string, Entry<V>>();

  /**
   * @param maxEntries 0 disables the cache.
   * @param now milliseconds clock, injectable so tests can step over a TTL.
   */
  constructor(
    readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!Number.isInteger(maxEntries) || maxEntries < 0) throw new RangeError(`cache size must be a whole number >= 0, not ${String(maxEntries)}`);
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): CacheHit<V> | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    const remainingMs = e.expiresAt - this.now();
    if (remainingMs <= 0) {
      this.entries.delete(key);
      return undefined;
    }
    // Re-insert so that this key becomes the most recently used.
    this.entries.delete(key);
    this.entries.set(key, e);
    return { value: e.value, remainingMs };
  }

  /** Stores `value` for `ttlMs`; a TTL of zero or less stores nothing (and drops an old entry). */
  set(key: string, value: V, ttlMs: number): void {
    this.entries.delete(key);
    if (this.maxEntries === 0 || !(ttlMs > 0)) return;
    this.entries.set(key, { value, expiresAt: this.now() + ttlMs });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }
}
