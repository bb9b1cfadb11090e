/**
 * Alert recipients (SPEC §9, `postern alertconfig`): an address, the classes it wants (tls,
 * delivery, queue) and the severities (critical, warning, info). Kept in config.db; the sender
 * address and the minimum interval between repeats are global settings (alertFrom,
 * alertIntervalSeconds).
 */
import { ValidationError } from '../controls/validate.js';
import { parseAlternateAddress } from '../bounce/profile.js';
import { ConfigError, type ConfigStore } from './store.js';

export const ALERT_CLASSES = ['tls', 'delivery', 'queue', 'cluster'] as const;
export type AlertClass = (typeof ALERT_CLASSES)[number];
export const SEVERITIES = ['critical', 'warning', 'info'] as const;
export type Severity = (typeof SEVERITIES)[number];

export interface AlertRecipient {
  address: string;
  classes: AlertClass[];
  severities: Severity[];
}

/** `tls,delivery` or `all`; each word checked. */
function parseList<T extends string>(field: string, text: string, allowed: readonly T[]): T[] {
  const words = text.split(',').map((w) => w.trim().toLowerCase()).filter(Boolean);
  if (words.length === 1 && words[0] === 'all') return [...allowed];
  if (words.length === 0 || words.some((w) => !(allowed as readonly string[]).includes(w))) throw new ValidationError(field, text, `a comma-separated list of ${allowed.join(', ')}, or all`);
  return allowed.filter((a) => words.includes(a));
}

export const parseClasses = (text: string): AlertClass[] => parseList('alert classes', text, ALERT_CLASSES);
export const parseSeverities = (text: string): Severity[] => parseList('alert severities', text, SEVERITIES);

/** An alert recipient's address: `local@domain`, the domain in A-label form. */
export function parseAlertAddress(text: string): string {
  const a = text.trim() === '' || text.trim().toLowerCase() === 'none' ? null : parseAlternateAddressOrNull(text);
  if (a === null) throw new ValidationError('alert address', text, 'an email address (local@domain)');
  return a;
}

function parseAlternateAddressOrNull(text: string): string | null {
  try {
    return parseAlternateAddress(text);
  } catch {
    return null;
  }
}

const SCHEMA = 'CREATE TABLE IF NOT EXISTS alert_recipients (address TEXT PRIMARY KEY, classes TEXT NOT NULL, severities TEXT NOT NULL)';

export class AlertStore {
  constructor(private readonly config: ConfigStore) {
    config.db.exec(SCHEMA);
  }

  list(): AlertRecipient[] {
    const rows = this.config.db.prepare('SELECT * FROM alert_recipients ORDER BY address').all() as { address: string; classes: string; severities: string }[];
    return rows.map((r) => ({ address: r.address, classes: JSON.parse(r.classes) as AlertClass[], severities: JSON.parse(r.severities) as Severity[] }));
  }

  get(address: string): AlertRecipient | undefined {
    return this.list().find((r) => r.address === address.trim().toLowerCase() || r.address === address.trim());
  }

  /** `new` refuses an address that is there, `edit` one that is not. */
  put(r: AlertRecipient, mode: 'new' | 'edit'): AlertRecipient {
    const tx = this.config.db.transaction(() => {
      const exists = this.config.db.prepare('SELECT 1 FROM alert_recipients WHERE address = ?').get(r.address);
      if (mode === 'new' && exists) throw new ConfigError(`${r.address} already receives alerts; use edit`);
      if (mode === 'edit' && !exists) throw new ConfigError(`${r.address} receives no alerts; use new`);
      this.config.db.prepare('INSERT OR REPLACE INTO alert_recipients (address, classes, severities) VALUES (?, ?, ?)').run(r.address, JSON.stringify(r.classes), JSON.stringify(r.severities));
    });
    tx.immediate();
    return r;
  }

  delete(address: string): void {
    const r = this.config.db.prepare('DELETE FROM alert_recipients WHERE address = ?').run(address);
    if (r.changes === 0) throw new ConfigError(`${address} receives no alerts`);
  }
}
