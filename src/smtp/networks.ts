/**
 * Client networks allowed to relay (SPEC §6), in CIDR notation. IPv4-mapped IPv6 addresses
 * (`::ffff:127.0.0.1`, as dual-stack sockets report IPv4 clients) are checked as IPv4.
 */
import net from 'node:net';
import { ValidationError } from '../controls/validate.js';

export class NetworkList {
  private readonly list = new net.BlockList();
  /** Answers by client address: BlockList.check builds a SocketAddress per call (every RCPT). */
  private readonly known = new Map<string, boolean>();

  constructor(readonly cidrs: string[]) {
    for (const c of cidrs) {
      const [addr, bits] = c.split('/');
      const family = net.isIP(addr ?? '');
      const max = family === 6 ? 128 : 32;
      const prefix = bits === undefined ? max : Number(bits);
      if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > max) {
        throw new ValidationError('allowed network', c, 'an address or CIDR block, e.g. 127.0.0.0/8 or ::1/128');
      }
      this.list.addSubnet(addr!, prefix, family === 6 ? 'ipv6' : 'ipv4');
    }
  }

  allows(address: string): boolean {
    let ok = this.known.get(address);
    if (ok === undefined) {
      ok = this.check(address);
      if (this.known.size >= 1024) this.known.clear();
      this.known.set(address, ok);
    }
    return ok;
  }

  private check(address: string): boolean {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    const a = mapped ? mapped[1]! : address;
    const family = net.isIP(a);
    if (family === 0) return false;
    return this.list.check(a, family === 6 ? 'ipv6' : 'ipv4');
  }
}

export const LOOPBACK_NETWORKS = ['127.0.0.0/8', '::1/128'];
