/**
 * The DNS client delivery, `explain`, `tlsverify` and MTA-STS use (SPEC §12): every look-up goes
 * through the DNSSEC-aware wire client. With `--dnssec-resolver HOST:PORT` those resolvers are
 * the only ones asked and the only ones whose AD bit is believed; without it the `--dns-server`
 * resolvers (or the system's) are asked, and only one on loopback is believed (a validating
 * resolver next to Postern), never one across a network.
 */
import { isLoopback, WireDnsClient, type WireDnsOptions } from './wire.js';

export type DeliveryDns = Pick<WireDnsClient, 'mx' | 'addresses' | 'ptr' | 'tlsa' | 'txt'>;

export function deliveryDns(o: { dnsServers?: string[]; dnssecResolvers?: string[]; observe?: WireDnsOptions['observe'] }): WireDnsClient {
  const resolvers = o.dnssecResolvers ?? [];
  if (resolvers.length > 0) return new WireDnsClient({ servers: resolvers, trusted: resolvers, observe: o.observe });
  // Only a resolver on this machine is believed without --dnssec-resolver: never one across a
  // network, even where resolv.conf says `options trust-ad` (the administrator declares trust here).
  return new WireDnsClient({ servers: o.dnsServers, trusted: (s) => isLoopback(s.host), observe: o.observe });
}
