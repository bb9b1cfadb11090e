/**
 * Administrator accounts with the appliance's roles (SPEC §10), kept in config.db:
 * - administrator: everything;
 * - operator: the queue (deliver now, bounce, delete), not the configuration;
 * - read-only: sees everything, changes nothing.
 *
 * One service for every interface (CLI now, the page and the API next): names, roles and
 * passwords are validated here, each change is written to the audit log, and the last
 * administrator can be neither deleted nor demoted.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ConfigStore } from '../config/store.js';
import { ConfigError } from '../config/store.js';
import { ValidationError } from '../controls/validate.js';
import { audit, type Actor } from './audit.js';
import { hashPassword, passwordProblem, verifyPassword } from './passwords.js';

export const ROLES = ['administrator', 'operator', 'read-only'] as const;
export type Role = (typeof ROLES)[number];

export interface AdminUser {
  name: string;
  role: Role;
  /** The password was set for the user (the initial one): it must be changed at the next login. */
  mustChange: boolean;
  created: string;
  passwordChanged: string;
}


const NAME = /^[A-Za-z][A-Za-z0-9._-]{0,31}$/;
const SCHEMA = `CREATE TABLE IF NOT EXISTS admin_users (name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL,
  must_change INTEGER NOT NULL DEFAULT 0, created TEXT NOT NULL, password_changed TEXT NOT NULL)`;

/** File where `postern start` leaves the first administrator's password (mode 0600). */
export const INITIAL_PASSWORD_FILE = 'admin-initial-password';

interface Row {
  name: string;
  role: string;
  hash: string;
  must_change: number;
  created: string;
  password_changed: string;
}

export function parseRole(input: string): Role {
  const r = input.trim().toLowerCase();
  if (!(ROLES as readonly string[]).includes(r)) throw new ValidationError('role', input, ROLES.join(', '));
  return r as Role;
}

export class UserStore {
  constructor(
    private readonly config: ConfigStore,
    private readonly dataDir: string,
  ) {
    config.db.exec(SCHEMA);
  }

  list(): AdminUser[] {
    return (this.config.db.prepare('SELECT * FROM admin_users ORDER BY name').all() as Row[]).map(toUser);
  }

  get(name: string): AdminUser | undefined {
    const row = this.row(name);
    return row ? toUser(row) : undefined;
  }

  count(): number {
    return (this.config.db.prepare('SELECT count(*) AS n FROM admin_users').get() as { n: number }).n;
  }

  async add(name: string, role: Role, password: string, by: Actor, o: { mustChange?: boolean } = {}): Promise<AdminUser> {
    if (!NAME.test(name)) throw new ValidationError('user name', name, '1 to 32 letters, digits, . _ -, starting with a letter');
    const problem = passwordProblem(password, name);
    if (problem) throw new ValidationError('password', '(hidden)', problem);
    const hash = await hashPassword(password);
    const now = new Date().toISOString();
    const tx = this.config.db.transaction(() => {
      if (this.row(name)) throw new ConfigError(`a user named ${name} already exists (use adminuser passwd to change the password)`);
      this.config.db
        .prepare('INSERT INTO admin_users (name, role, hash, must_change, created, password_changed) VALUES (?, ?, ?, ?, ?, ?)')
        .run(name, role, hash, o.mustChange ? 1 : 0, now, now);
    });
    tx.immediate();
    audit(this.dataDir, { ...by, action: 'adminuser.add', target: name, changed: { role } });
    return this.get(name)!;
  }

  delete(name: string, by: Actor): void {
    const tx = this.config.db.transaction(() => {
      const row = this.row(name);
      if (!row) throw new ConfigError(`no user named ${name}`);
      if (row.role === 'administrator' && this.administrators() === 1) {
        throw new ConfigError(`${name} is the last administrator and cannot be deleted (add another administrator first)`);
      }
      this.config.db.prepare('DELETE FROM admin_users WHERE name = ?').run(name);
    });
    tx.immediate();
    audit(this.dataDir, { ...by, action: 'adminuser.delete', target: name });
  }

  /**
   * `mustChange`: the password is set for the user by someone else (an administrator on the
   * page), so the user must choose their own at the next login.
   */
  async setPassword(name: string, password: string, by: Actor, o: { mustChange?: boolean } = {}): Promise<void> {
    const problem = passwordProblem(password, name);
    if (problem) throw new ValidationError('password', '(hidden)', problem);
    const row = this.row(name);
    if (!row) throw new ConfigError(`no user named ${name}`);
    if (await verifyPassword(password, row.hash)) throw new ValidationError('password', '(hidden)', 'a password other than the current one');
    const hash = await hashPassword(password);
    const changes = this.config.db
      .prepare('UPDATE admin_users SET hash = ?, must_change = ?, password_changed = ? WHERE name = ?')
      .run(hash, o.mustChange ? 1 : 0, new Date().toISOString(), name).changes;
    if (changes === 0) throw new ConfigError(`no user named ${name}`);
    audit(this.dataDir, { ...by, action: 'adminuser.passwd', target: name });
    // The first administrator's password file is only needed until that password is changed.
    if (row.must_change === 1 && !o.mustChange) rmSync(join(this.dataDir, INITIAL_PASSWORD_FILE), { force: true });
  }

  /** Changes a user's role; the last administrator keeps theirs. */
  setRole(name: string, role: Role, by: Actor): AdminUser {
    const tx = this.config.db.transaction(() => {
      const row = this.row(name);
      if (!row) throw new ConfigError(`no user named ${name}`);
      if (row.role === 'administrator' && role !== 'administrator' && this.administrators() === 1) {
        throw new ConfigError(`${name} is the last administrator and keeps that role (make another user an administrator first)`);
      }
      this.config.db.prepare('UPDATE admin_users SET role = ? WHERE name = ?').run(role, name);
      return row.role;
    });
    const before = tx.immediate();
    audit(this.dataDir, { ...by, action: 'adminuser.role', target: name, changed: { role: { from: before, to: role } } });
    return this.get(name)!;
  }

  /** The user when the password is right, else null (the same answer for an unknown user). */
  async verify(name: string, password: string): Promise<AdminUser | null> {
    const row = this.row(name);
    // An unknown user costs a hash too, so timing does not tell which names exist.
    const ok = await verifyPassword(password, row?.hash ?? DUMMY_HASH);
    return row && ok ? toUser(row) : null;
  }

  private administrators(): number {
    return (this.config.db.prepare("SELECT count(*) AS n FROM admin_users WHERE role = 'administrator'").get() as { n: number }).n;
  }

  private row(name: string): Row | undefined {
    return this.config.db.prepare('SELECT * FROM admin_users WHERE name = ?').get(name) as Row | undefined;
  }
}

// A well-formed hash of a random password nobody knows.
const DUMMY_HASH = 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

function toUser(r: Row): AdminUser {
  return { name: r.name, role: parseRole(r.role), mustChange: r.must_change === 1, created: r.created, passwordChanged: r.password_changed };
}
