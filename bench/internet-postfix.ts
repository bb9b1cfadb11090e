/**
 * Postfix configured for the `internet` scenario as close to Postern's destination table as
 * Postfix allows, through its own maps (pure: returns the texts; relays.ts writes and starts):
 *
 * - Routing: Postfix looks MX records up through the system resolver on port 53, which the bench
 *   cannot point at its own DNS server; so `transport_maps` names each domain's MX hosts in
 *   preference order as a next-hop list (`[addr]:port, [addr]:port`, Postfix ≥ 3.5), the same
 *   hosts and order Postern finds through DNS.
 * - Per destination: each table entry gets its own transport, a clone of `smtp` in master.cf,
 *   whose destination concurrency is the entry's concurrency (`<t>_destination_concurrency_limit`),
 *   whose `smtp_connection_reuse_count_limit` is the entry's messages per connection minus one
 *   (Postfix counts reuses; 1 message per connection = no reuse), and whose
 *   `smtp_tls_security_level` is the entry's TLS setting: No → none, Preferred and
 *   Preferred - Verify → may (Postfix has no "try TLS, verify if you can, else clear"), Required →
 *   encrypt, Required - Verify → verify (the certificate must chain to the bench CA and name the MX
 *   host: with IP next hops Postfix cannot know the host name, so those transports read a TLS
 *   policy table giving `verify match=<MX host name>` per address). Domains without an entry use
 *   `smtp` with the (Default) entry's values.
 * - Recipients per window: Postfix has nothing like it (its rate delay serialises a destination
 *   to one connection), so those destinations run with their concurrency only — an advantage to
 *   Postfix, and the receivers' window check applies to Postern only.
 * - Timeouts: the greeting (smtp_helo_timeout) 30 s like Postern's `timeouts.greeting` here.
 *   Retries keep Debian's defaults (minimal_backoff_time 300 s): a message whose handshake failed
 *   under `may` is deferred and tried again after the backoff (Postern opens a new connection in
 *   clear text at once, SPEC §2's remembered broken TLS).
 * - Processes: default_process_limit 500 (Debian's 100 would cap all 10,000 destinations at 100
 *   connections; Postern has no global cap).
 */
import type { TableEntry, TlsSetting, World } from './internet-types.js';

const LEVEL: Record<TlsSetting, string> = { no: 'none', preferred: 'may', 'preferred-verify': 'may', required: 'encrypt', 'required-verify': 'verify' };

export interface PostfixInternetConfig {
  transport: string;
  /** The TLS policy table of the Required - Verify transports (written to `o.policyFile`). */
  verifyPolicy: string;
  masterCf: string;
  mainCf: Record<string, string>;
}

function transportName(i: number): string {
  return `dest${i}`;
}

export function postfixInternetConfig(world: World, o: { port: number; caFile: string; policyFile: string; processLimit?: number }): PostfixInternetConfig {
  const entryOf = new Map<string, { entry: TableEntry; transport: string }>();
  world.table.forEach((entry, i) => entryOf.set(entry.domain, { entry, transport: transportName(i) }));
  const nexthops = (mx: number[]) => mx.map((h) => `[${world.hosts[h]!.address}]:${o.port}`).join(', ');
  const transport = world.domains.map((d) => `${d.name} ${entryOf.get(d.name)?.transport ?? 'smtp'}:${nexthops(d.mx)}\n`).join('');
  const reuse = (e: TableEntry) => String(Math.max(0, e.messagesPerConnection - 1));
  const masterCf = world.table
    .map((e, i) => {
      const name = transportName(i);
      // Reuse needs the connection cache; a one-message entry turns it off.
      const cache = e.messagesPerConnection > 1 ? 'yes' : 'no';
      const policy = e.tls === 'required-verify' ? ` -o smtp_tls_policy_maps=texthash:${o.policyFile}` : '';
      return `${name} unix - - n - - smtp -o smtp_tls_security_level=${LEVEL[e.tls]} -o smtp_connection_reuse_count_limit=${reuse(e)} -o smtp_connection_cache_on_demand=${cache}${policy}`;
    })
    .join('\n');
  const mainCf: Record<string, string> = {
    default_process_limit: String(o.processLimit ?? 500),
    default_destination_concurrency_limit: String(world.defaults.concurrency),
    smtp_tls_security_level: LEVEL[world.defaults.tls],
    smtp_connection_reuse_count_limit: reuse(world.defaults),
    smtp_helo_timeout: '30s',
    smtp_tls_CAfile: o.caFile,
    smtp_tls_loglevel: '1',
    // TLS sessions are reused through tlsproxy, as Postern reuses its connections.
    smtp_tls_connection_reuse: 'yes',
  };
  world.table.forEach((e, i) => (mainCf[`${transportName(i)}_destination_concurrency_limit`] = String(e.concurrency)));
  const verifyPolicy = world.hosts.map((h) => `[${h.address}]:${o.port} verify match=${h.name}\n`).join('');
  return { transport, verifyPolicy, masterCf: `${masterCf}\ntlsproxy unix - - n - 0 tlsproxy`, mainCf };
}
