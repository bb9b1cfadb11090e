/**
 * Pure routing decisions: the ordered list of hosts for a domain (SMTP route, else MX by
 * preference with equal preferences shuffled, else implicit MX) and the ordered addresses of a
 * host under an IP preference.
 */
import type { IpPreference } from '../controls/types.js';

export interface TargetHost {
  /** Host name (or address literal) to connect to. */
  name: string;
  port: number;
  preference: number;
  source: 'route' | 'mx' | 'implicit-mx';
}

export interface MxRecord {
  exchange: string;
  priority: number;
}

/** Orders MX records by preference, shuffling equal preferences with `random` (RFC 5321 §5.1). */
export function orderMx(records: MxRecord[], port: number, random: () => number = Math.random): TargetHost[] {
  const byPref = new Map<number, string[]>();
  for (const r of records) {
    const name = r.exchange.toLowerCase().replace(/\.$/, '');
    const list = byPref.get(r.priority) ?? [];
    if (!list.includes(name)) list.push(name);
    byPref.set(r.priority, list);
  }
  const out: TargetHost[] = [];
  for (const pref of [...byPref.keys()].sort((a, b) => a - b)) {
    const names = byPref.get(pref)!;
    for (let i = names.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [names[i], names[j]] = [names[j]!, names[i]!];
    }
    for (const name of names) out.push({ name, port, preference: pref, source: 'mx' });
  }
  return out;
}

/** RFC 7505: a Null MX is a single record whose exchange is the root. */
export function isNullMx(records: MxRecord[]): boolean {
  return records.length === 1 && (records[0]!.exchange === '' || records[0]!.exchange === '.');
}

export type AddressFamily = 4 | 6;

export interface TargetAddress {
  address: string;
  family: AddressFamily;
}

export type AddressChoice = { ok: true; addresses: TargetAddress[] } | { ok: false; reason: string };

/**
 * Addresses of one host in the order to try them: Preferred puts that family first and keeps the
 * other as a fallback; Required keeps only that family and fails when it has none.
 */
export function orderAddresses(v6: string[], v4: string[], pref: IpPreference): AddressChoice {
  const six = v6.map((address) => ({ address, family: 6 as const }));
  const four = v4.map((address) => ({ address, family: 4 as const }));
  switch (pref) {
    case 'ipv6-preferred':
      return { ok: true, addresses: [...six, ...four] };
    case 'ipv4-preferred':
      return { ok: true, addresses: [...four, ...six] };
    case 'ipv6-required':
      return six.length ? { ok: true, addresses: six } : { ok: false, reason: 'IPv6 Required but the host has no IPv6 address' };
    case 'ipv4-required':
      return four.length ? { ok: true, addresses: four } : { ok: false, reason: 'IPv4 Required but the host has no IPv4 address' };
  }
}
