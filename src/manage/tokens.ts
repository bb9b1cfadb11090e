/**
 * API bearer tokens (`postern apitoken create|list|revoke`), kept in config.db. A token carries a
 * role like an administrator account does (administrator, operator, read-only). Only a SHA-256
 * of each token is stored: the token is 32 random bytes, so a fast hash is enough (there is
 * nothing to guess), and the token itself is shown once, when it is created.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ConfigStore } from '../config/store.js';
import { ConfigError } from '../config/store.js';
import { ValidationError } from '../controls/validate.js';
import { audit, type Actor } from './audit.js';
import { parseRole, type Role } from './users.js';

export interface ApiToken {
  name: string;
  role: Role;
  created: string;
  lastUsed: string | null;
}

const NAME = /^[A-Za-z][A-Za-z0-9._-]{0,31}$/;
const PREFIX = 'pst_';
const SCHEMA = `CREATE TABLE IF NOT EXISTS api_tokens (name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
  created TEXT NOT NULL, last_used TEXT)`;

interface Row {
  name: string;
  role: string;
  hash: string;
  created: string;
  last_used: string | null;
}

const digest = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

export class TokenStore {
  constructor(
    private readonly config: ConfigStore,
    private readonly dataDir: string,
  ) {
    config.db.exec(SCHEMA);
  }

  list(): ApiToken[] {
    return (this.config.db.prepare('SELECT * FROM api_tokens ORDER BY name').all() as Row[]).map(toToken);
  }

  /** Creates a token; returns it in clear text (the only time it exists outside the caller). */
  create(name: string, role: Role, by: Actor): { token: string; info: ApiToken } {
    if (!NAME.test(name)) throw new ValidationError('token name', name, '1 to 32 letters, digits, . _ -, starting with a letter');
    parseRole(role);
    const token = PREFIX + randomBytes(32).toString('base64url');
    const tx = this.config.db.transaction(() => {
      if (this.config.db.prepare('SELECT 1 FROM api_tokens WHERE name = ?').get(name)) {
        throw new ConfigError(`a token named ${name} already exists (revoke it first or choose another name)`);
      }
      this.config.db.prepare('INSERT INTO api_tokens (name, role, hash, created) VALUES (?, ?, ?, ?)').run(name, role, digest(token), new Date().toISOString());
    });
    tx.immediate();
    audit(this.dataDir, { ...by, action: 'apitoken.create', target: name, changed: { role } });
    return { token, info: this.list().find((t) => t.name === name)! };
  }

  revoke(name: string, by: Actor): void {
    const r = this.config.db.prepare('DELETE FROM api_tokens WHERE name = ?').run(name);
    if (r.changes === 0) throw new ConfigError(`no token named ${name}`);
    audit(this.dataDir, { ...by, action: 'apitoken.revoke', target: name });
  }

  /** The token's record when `token` is a live token, else null; notes when it was last used. */
  check(token: string): ApiToken | null {
    if (!token.startsWith(PREFIX) || token.length > 200) return null;
    const row = this.config.db.prepare('SELECT * FROM api_tokens WHERE hash = ?').get(digest(token)) as Row | undefined;
    if (!row) return null;
    this.config.db.prepare('UPDATE api_tokens SET last_used = ? WHERE name = ?').run(new Date().toISOString(), row.name);
    return toToken(row);
  }
}

function toToken(r: Row): ApiToken {
  return { name: r.name, role: parseRole(r.role), created: r.created, lastUsed: r.last_used };
}
