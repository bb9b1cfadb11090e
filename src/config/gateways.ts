/**
 * Virtual gateways (SPEC §4): sending addresses an administrator configures. A message is sent
 * from the gateway assigned to its sender's domain (or the default assignment `*`); with
 * "per virtual gateway" enforcement the destination limits are counted per gateway. Stored in
 * config.db beside the destination table.
 *
 * GatewayStore(config): list/put/delete gateways, assign/unassign sender domains; delete is
 * refused while a sender domain is assigned to the gateway. `snapshot()` gives what delivery
 * needs; `gatewayFor(snapshot, sender)` picks the gateway of one message (pure).
 */
import net from 'node:net';
import { ValidationError } from '../controls/validate.js';
import { normaliseDomain } from '../tls/names.js';
import { ConfigError, type ConfigStore } from './store.js';

export interface VirtualGateway {
  name: string;
  /** Local address connections are bound to. */
  address: string;
  /** EHLO name used from this address; the gateway's host name when absent. */
  hostname?: string;
}

export interface GatewaySnapshot {
  gateways: Map<string, VirtualGateway>;
  /** Sender domain (A-label) or `*` → gateway name. */
  assignments: Map<string, string>;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS virtual_gateways (name TEXT PRIMARY KEY, address TEXT NOT NULL, hostname TEXT);
CREATE TABLE IF NOT EXISTS gateway_assignments (sender_domain TEXT PRIMARY KEY, gateway TEXT NOT NULL);
`;

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** The gateway a message from `sender` is sent through, or undefined (the system's own address). */
export function gatewayFor(s: GatewaySnapshot | undefined, sender: string): VirtualGateway | undefined {
  if (!s || s.gateways.size === 0) return undefined;
  const at = sender.lastIndexOf('@');
  const domain = at === -1 ? null : normaliseDomain(sender.slice(at + 1));
  const name = (domain !== null ? s.assignments.get(domain) : undefined) ?? s.assignments.get('*');
  return name === undefined ? undefined : s.gateways.get(name);
}

export class GatewayStore {
  constructor(private readonly config: ConfigStore) {
    config.db.exec(SCHEMA);
  }

  list(): VirtualGateway[] {
    const rows = this.config.db.prepare('SELECT name, address, hostname FROM virtual_gateways ORDER BY name').all() as {
      name: string;
      address: string;
      hostname: string | null;
    }[];
    return rows.map((r) => (r.hostname ? { name: r.name, address: r.address, hostname: r.hostname } : { name: r.name, address: r.address }));
  }

  assignments(): Map<string, string> {
    const rows = this.config.db.prepare('SELECT sender_domain, gateway FROM gateway_assignments ORDER BY sender_domain').all() as {
      sender_domain: string;
      gateway: string;
    }[];
    return new Map(rows.map((r) => [r.sender_domain, r.gateway]));
  }

  put(g: VirtualGateway): VirtualGateway {
    if (!NAME.test(g.name)) throw new ValidationError('gateway name', g.name, '1 to 64 letters, digits, _ . -');
    if (net.isIP(g.address) === 0) throw new ValidationError('gateway address', g.address, 'an IPv4 or IPv6 address of this machine');
    if (g.hostname !== undefined && normaliseDomain(g.hostname) === null) throw new ValidationError('gateway hostname', g.hostname, 'a DNS host name');
    this.config.db
      .prepare('INSERT OR REPLACE INTO virtual_gateways (name, address, hostname) VALUES (?, ?, ?)')
      .run(g.name, g.address, g.hostname ?? null);
    return g;
  }

  delete(name: string): void {
    const tx = this.config.db.transaction(() => {
      const used = [...this.assignments()].filter(([, gw]) => gw === name).map(([d]) => d);
      if (used.length) throw new ConfigError(`gateway ${name} is assigned to ${used.join(', ')}; unassign it first`);
      if (this.config.db.prepare('DELETE FROM virtual_gateways WHERE name = ?').run(name).changes === 0) {
        throw new ConfigError(`no gateway ${name}`);
      }
    });
    tx.immediate();
  }

  /** Assigns a sender domain (or `*`, every other sender) to a gateway. */
  assign(senderDomain: string, gateway: string): string {
    const d = senderDomain === '*' ? '*' : normaliseDomain(senderDomain);
    if (d === null) throw new ValidationError('sender domain', senderDomain, 'a domain name or *');
    const tx = this.config.db.transaction(() => {
      if (!this.config.db.prepare('SELECT 1 FROM virtual_gateways WHERE name = ?').get(gateway)) throw new ConfigError(`no gateway ${gateway}`);
      this.config.db.prepare('INSERT OR REPLACE INTO gateway_assignments (sender_domain, gateway) VALUES (?, ?)').run(d, gateway);
    });
    tx.immediate();
    return d;
  }

  unassign(senderDomain: string): void {
    const d = senderDomain === '*' ? '*' : (normaliseDomain(senderDomain) ?? senderDomain);
    if (this.config.db.prepare('DELETE FROM gateway_assignments WHERE sender_domain = ?').run(d).changes === 0) {
      throw new ConfigError(`no assignment for ${senderDomain}`);
    }
  }

  snapshot(): GatewaySnapshot {
    return { gateways: new Map(this.list().map((g) => [g.name, g])), assignments: this.assignments() };
  }
}
