/**
 * DNS look-ups for delivery, over node:dns's Resolver (which can be pointed at a server on
 * loopback with a port). Answers are typed outcomes: a temporary failure is never mistaken for
 * "no such domain", because only the latter may bounce mail.
 */
import { promises as dns } from 'node:dns';
import net from 'node:net';
import type { MxRecord } from './select.js';

export type MxLookup =
  | { kind: 'mx'; records: MxRecord[] }
  /** The name exists but has no MX: its own address is the implicit MX. */
  | { kind: 'no-mx' }
  | { kind: 'nxdomain' }
  | { kind: 'temporary'; reason: string };

export type AddressLookup = { kind: 'ok'; addresses: string[] } | { kind: 'none' } | { kind: 'temporary'; reason: string };

export interface DnsOptions {
  /** `HOST:PORT` or `HOST` entries; empty means the system's resolvers. */
  servers?: string[];
  timeoutMs?: number;
  tries?: number;
  /** Told how long each look-up took (for /metrics). */
  observe?: (type: 'mx' | 'a' | 'aaaa', seconds: number) => void;
}

export class DnsClient {
  private readonly resolver: dns.Resolver;

  private readonly observe?: DnsOptions['observe'];

  constructor(o: DnsOptions = {}) {
    this.resolver = new dns.Resolver({ timeout: o.timeoutMs ?? 5000, tries: o.tries ?? 2 });
    if (o.servers && o.servers.length > 0) this.resolver.setServers(o.servers);
    this.observe = o.observe;
  }

  async mx(domain: string): Promise<MxLookup> {
    const t = performance.now();
    try {
      return await this.mxLookup(domain);
    } finally {
      this.observe?.('mx', (performance.now() - t) / 1000);
    }
  }

  private async mxLookup(domain: string): Promise<MxLookup> {
    try {
      return { kind: 'mx', records: await this.resolver.resolveMx(domain) };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENODATA') return { kind: 'no-mx' };
      if (code === 'ENOTFOUND') return { kind: 'nxdomain' };
      return { kind: 'temporary', reason: `MX lookup for ${domain} failed: ${code ?? (e as Error).message}` };
    }
  }

  async addresses(host: string, family: 4 | 6): Promise<AddressLookup> {
    if (net.isIP(host)) return net.isIP(host) === family ? { kind: 'ok', addresses: [host] } : { kind: 'none' };
    const t = performance.now();
    try {
      return await this.addressLookup(host, family);
    } finally {
      this.observe?.(family === 4 ? 'a' : 'aaaa', (performance.now() - t) / 1000);
    }
  }

  private async addressLookup(host: string, family: 4 | 6): Promise<AddressLookup> {
    try {
      const list = family === 4 ? await this.resolver.resolve4(host) : await this.resolver.resolve6(host);
      return list.length ? { kind: 'ok', addresses: list } : { kind: 'none' };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENODATA' || code === 'ENOTFOUND') return { kind: 'none' };
      return { kind: 'temporary', reason: `address lookup (IPv${family}) for ${host} failed: ${code ?? (e as Error).message}` };
    }
  }

  /** PTR names of an address; empty on any failure (used only as an extra identity). */
  async ptr(address: string): Promise<string[]> {
    try {
      return (await this.resolver.reverse(address)).map((n) => n.toLowerCase().replace(/\.$/, ''));
    } catch {
      return [];
    }
  }
}
