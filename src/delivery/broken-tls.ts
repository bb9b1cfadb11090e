/**
 * Memory of hosts whose TLS handshake failed after their 220 (SPEC §2, beyond the appliance):
 * for a while, the Preferred settings skip STARTTLS on new connections to them. Keyed by the
 * address and port connected to, since that is where the broken TLS stack lives. Kept in memory
 * and, when a store is given, in queue.db too.
 */
export interface BrokenTlsStore {
  rememberBrokenTls(address: string, port: number, until: number): void;
  brokenTls(now: number): { address: string; port: number; until: number }[];
}

export class BrokenTlsMemory {
  private readonly until = new Map<string, number>();
  /** Told of each new memory (a cluster node shares it with the others). */
  onRemember: ((address: string, port: number, until: number) => void) | null = null;

  /** `store`: where the memory is kept too (queue.db), so that it outlives a restart and `explain` can show it. */
  constructor(
    private readonly store?: BrokenTlsStore,
    now = Date.now(),
  ) {
    for (const b of store?.brokenTls(now) ?? []) this.until.set(`${b.address}|${b.port}`, b.until);
  }

  remember(address: string, port: number, now: number, hours: number): void {
    if (hours <= 0) return;
    const until = now + hours * 3_600_000;
    this.until.set(`${address}|${port}`, until);
    this.keep(address, port, until);
    this.onRemember?.(address, port, until);
  }

  /** A memory another node shared: kept unless this one already remembers longer. */
  adopt(address: string, port: number, until: number, now: number): void {
    const k = `${address}|${port}`;
    if (until <= now || (this.until.get(k) ?? 0) >= until) return;
    this.until.set(k, until);
    this.keep(address, port, until);
  }

  private keep(address: string, port: number, until: number): void {
    try {
      this.store?.rememberBrokenTls(address, port, until);
    } catch {
      // The memory in this process still holds it; only a restart would forget it.
    }
  }

  isBroken(address: string, port: number, now: number): boolean {
    const k = `${address}|${port}`;
    const t = this.until.get(k);
    if (t === undefined) return false;
    if (t <= now) {
      this.until.delete(k);
      return false;
    }
    return true;
  }
}
