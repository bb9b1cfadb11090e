/**
 * The organisation's own domains (SPEC §6, `postern localdomains`): the only recipients the
 * public listener accepts. `example.org` names that domain, `.example.org` every subdomain of it
 * (as in the destination table). Kept in config.db.
 */
import { displayName, parseDestinationName } from '../controls/names.js';
import { ConfigError, type ConfigStore } from './store.js';

const SCHEMA = 'CREATE TABLE IF NOT EXISTS local_domains (name TEXT PRIMARY KEY)';

export class LocalDomainStore {
  constructor(private readonly config: ConfigStore) {
    config.db.exec(SCHEMA);
  }

  list(): string[] {
    return (this.config.db.prepare('SELECT name FROM local_domains').all() as { name: string }[]).map((r) => r.name).sort((a, b) => a.replace(/^\./, '').localeCompare(b.replace(/^\./, '')));
  }

  add(name: string): string {
    const n = parseDestinationName(name);
    const r = this.config.db.prepare('INSERT OR IGNORE INTO local_domains (name) VALUES (?)').run(n);
    if (r.changes === 0) throw new ConfigError(`${displayName(n)} is already a local domain`);
    return n;
  }

  delete(name: string): string {
    const n = parseDestinationName(name);
    const r = this.config.db.prepare('DELETE FROM local_domains WHERE name = ?').run(n);
    if (r.changes === 0) throw new ConfigError(`${displayName(n)} is not a local domain`);
    return n;
  }
}
