/**
 * Memory of hosts whose TLS handshake failed after their 220 (SPEC §2, beyond the appliance):
 * for a while, the Preferred settings skip STARTTLS on new connections to them. Keyed by the
 * address and port connected to, since that is where the broken TLS stack lives.
 */
export class BrokenTlsMemory {
  private readonly until = new Map<string, number>();

  remember(address: string, port: number, now: number, hours: number): void {
    if (hours <= 0) return;
    this.until.set(`${address}|${port}`, now + hours * 3_600_000);
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
