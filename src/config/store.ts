/**
 * The configuration store: destination table, SMTP routes, trusted authorities and global
 * settings, in `<data-dir>/config.db`. Every CLI command and the running gateway go through
 * this one module, so they can never disagree on what is stored. Each change is one
 * transaction; a rejected change leaves everything as it was. Changes run as IMMEDIATE
 * transactions: they take the write lock before reading, so two processes editing at once wait
 * for each other (busy timeout) instead of failing or losing an update.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { parseDestinationName } from '../controls/names.js';
import { DestinationTable } from '../controls/table.js';
import { DEFAULT_ENTRY_NAME, INITIAL_DEFAULTS, type Entry, type EntrySettingName, type PartialSettings, type Settings } from '../controls/types.js';
import { checkSettings, DEFAULT_TLS_ALERT, ValidationError } from '../controls/validate.js';
import { parseRouteKey } from '../controls/routes.js';
import type { BounceProfile } from '../bounce/profile.js';
import { openDb, type Db } from './db.js';
import { ensureProfileTable, knownProfileName, readProfiles } from './profile-table.js';
import type { AlertRecipient } from './alerts.js';
import type { GatewaySnapshot } from './gateways.js';
import type { BvKey } from './bounce-verification.js';

export interface RouteHost {
  host: string;
  port?: number;
}

export interface Authority {
  id: number;
  subject: string;
  fingerprint: string;
  notAfter: string;
  pem: string;
}

export interface GlobalSettings {
  /** How long a host whose TLS handshake failed after 220 gets clear text under Preferred (hours; 0 = off). */
  brokenTlsMemoryHours: number;
  /** Alert when a required TLS connection fails (SPEC §9). */
  requiredTlsAlert: boolean;
  /** Whether the system's root store is trusted besides the custom authorities. */
  useSystemAuthorities: boolean;
  /** Name of the certificate the relay listener offers for STARTTLS (certconfig use-listener). */
  listenerCertificate?: string;
  /** Name of the client certificate offered to receiving servers, or null for none (certconfig use-client). */
  clientCertificate?: string | null;
  /** Name of the certificate the administration page (HTTPS) offers (certconfig use-admin). */
  adminCertificate?: string;
  /** Days the TLS report keeps its counts. */
  reportRetentionDays: number;
  /** Sender of alert mail; null: postern@ the gateway's host name. */
  alertFrom: string | null;
  /** Minimum seconds between two alerts of one class for one domain. */
  alertIntervalSeconds: number;
  /** Class queue: alert when more recipients than this wait in the queue. */
  alertQueueRecipients: number;
  /** Class delivery: alert when a domain's oldest message still waiting (tried at least once) is older than this. */
  alertWaitMinutes: number;
  /** Bounce verification (SPEC §8): what an invalid or (unless valid) untagged bounce gets. */
  bvInvalidAction: 'reject' | 'add-header';
  /** The header (`Name: value`) added to an invalid bounce that is accepted. */
  bvHeader: string;
  /** Whether a bounce to an untagged address is valid. */
  bvUntaggedValid: boolean;
  /** Public listener (SPEC §6): simultaneous connections from one client address. */
  publicConnectionsPerClient: number;
  /** Public listener message size limit (bytes); null: the private listener's. */
  publicMaxMessageSize: number | null;
  /** Public listener recipients per message; null: the private listener's. */
  publicMaxRecipients: number | null;
  /** SMTP TLS Reporting (RFC 8460): whether the daily reports are sent to recipient domains. */
  tlsrptEnabled: boolean;
  /** The reports' organization-name; null: the gateway's host name. */
  tlsrptOrganization: string | null;
  /** The reports' contact-info (an address or a URL); null: the report sender address. */
  tlsrptContact: string | null;
  /** Envelope and From address of mailed reports; null: noreply-smtp-tls-reporting@ the host name. */
  tlsrptSender: string | null;
}

export const INITIAL_GLOBALS: GlobalSettings = {
  brokenTlsMemoryHours: 24,
  requiredTlsAlert: false,
  useSystemAuthorities: true,
  listenerCertificate: 'demo',
  clientCertificate: null,
  adminCertificate: 'demo',
  reportRetentionDays: 400,
  alertFrom: null,
  alertIntervalSeconds: 3600,
  alertQueueRecipients: 10_000,
  alertWaitMinutes: 240,
  bvInvalidAction: 'reject',
  bvHeader: 'X-Postern-Invalid-Bounce: the bounce address tag did not verify',
  bvUntaggedValid: false,
  publicConnectionsPerClient: 50,
  publicMaxMessageSize: null,
  publicMaxRecipients: null,
  tlsrptEnabled: true,
  tlsrptOrganization: null,
  tlsrptContact: null,
  tlsrptSender: null,
};

/** Everything delivery needs from configuration, read at one moment. */
export interface ConfigSnapshot {
  table: DestinationTable;
  routes: Map<string, RouteHost[]>;
  authorities: Authority[];
  globals: GlobalSettings;
  /** Bounce profiles by name (src/config/profiles.ts); always holds `Default`. */
  profiles: Map<string, BounceProfile>;
  /** Virtual gateways and their assignment to senders; filled in by the gateway. */
  gateways?: GatewaySnapshot;
  /** Alert recipients; filled in by the gateway. */
  alertRecipients?: AlertRecipient[];
  /** Outbound client certificate (key + chain), when one is set; filled in by the gateway. */
  clientCertificate?: { keyPem: string; certPem: string };
  /** Bounce verification keys with their texts; filled in by the gateway. */
  bvKeys?: BvKey[];
  /** The organisation's own domains (public listener); filled in by the gateway. */
  localDomains?: ReadonlySet<string>;
}

export class ConfigError extends Error {}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS destinations (name TEXT PRIMARY KEY, settings TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS routes (domain TEXT PRIMARY KEY, hosts TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS authorities (id INTEGER PRIMARY KEY, fingerprint TEXT UNIQUE NOT NULL,
  subject TEXT NOT NULL, not_after TEXT NOT NULL, pem TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS globals (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

export class ConfigStore {
  /** The database, for sibling stores that keep their own tables in config.db (gateways, …). */
  private constructor(readonly db: Db) {}

  static open(dataDir: string): ConfigStore {
    const db = openDb(dataDir, 'config.db');
    db.exec(SCHEMA);
    ensureProfileTable(db);
    db.prepare('INSERT OR IGNORE INTO destinations (name, settings) VALUES (?, ?)').run(
      DEFAULT_ENTRY_NAME,
      JSON.stringify(INITIAL_DEFAULTS),
    );
    return new ConfigStore(db);
  }

  close(): void {
    this.db.close();
  }

  /** Changes whenever another connection commits; the running gateway polls it to reload. */
  dataVersion(): number {
    return this.db.pragma('data_version', { simple: true }) as number;
  }

  // ---- destination table -------------------------------------------------------------

  /**
   * The (Default) entry's settings. Each entry's settings are one JSON object, so a setting added
   * later (dane, mtaSts) needs no new column: a (Default) stored before it existed reads as its
   * initial value, and an entry without it inherits.
   */
  defaults(): Settings {
    const row = this.db.prepare('SELECT settings FROM destinations WHERE name = ?').get(DEFAULT_ENTRY_NAME) as
      | { settings: string }
      | undefined;
    return { ...INITIAL_DEFAULTS, ...(row ? (JSON.parse(row.settings) as Partial<Settings>) : {}) };
  }

  table(): DestinationTable {
    const rows = this.db.prepare('SELECT name, settings FROM destinations WHERE name <> ?').all(DEFAULT_ENTRY_NAME) as {
      name: string;
      settings: string;
    }[];
    return new DestinationTable(
      this.defaults(),
      rows.map((r) => ({ name: r.name, settings: JSON.parse(r.settings) as PartialSettings })),
    );
  }

  /** NEW: creates an entry; fails if it exists. Returns the normalised name. */
  newEntry(name: string, settings: PartialSettings): string {
    const n = parseDestinationName(name);
    const clean = checkSettings(settings);
    const tx = this.db.transaction(() => {
      if (this.db.prepare('SELECT 1 FROM destinations WHERE name = ?').get(n)) {
        throw new ConfigError(`an entry for ${n} already exists; use edit`);
      }
      this.checkProfileOf(clean);
      this.db.prepare('INSERT INTO destinations (name, settings) VALUES (?, ?)').run(n, JSON.stringify(clean));
    });
    tx.immediate();
    return n;
  }

  /**
   * EDIT: changes the given settings of an existing entry. A key whose value is `'default'` in
   * `reset` goes back to Default.
   */
  editEntry(name: string, settings: PartialSettings, reset: EntrySettingName[] = []): string {
    const n = parseDestinationName(name);
    const clean = checkSettings(settings);
    const tx = this.db.transaction(() => {
      const row = this.db.prepare('SELECT settings FROM destinations WHERE name = ?').get(n) as { settings: string } | undefined;
      if (!row) throw new ConfigError(`no entry for ${n}; use new`);
      this.checkProfileOf(clean);
      const merged = { ...(JSON.parse(row.settings) as PartialSettings), ...clean };
      for (const k of reset) delete merged[k];
      this.db.prepare('UPDATE destinations SET settings = ? WHERE name = ?').run(JSON.stringify(merged), n);
    });
    tx.immediate();
    return n;
  }

  /** The stored settings of one entry (only those it sets), or undefined; `(Default)` for the defaults. */
  entrySettings(name: string): PartialSettings | undefined {
    const row = this.db.prepare('SELECT settings FROM destinations WHERE name = ?').get(name) as { settings: string } | undefined;
    return row ? (JSON.parse(row.settings) as PartialSettings) : undefined;
  }

  /** DEFAULT: changes settings of the (Default) entry, which always holds every setting. */
  editDefaults(settings: PartialSettings): Settings {
    if (settings.tlsAlert !== undefined) throw new ValidationError('required TLS alert', settings.tlsAlert, DEFAULT_TLS_ALERT);
    const clean = checkSettings(settings);
    if (clean.recipientLimit === undefined && 'recipientLimit' in settings) clean.recipientLimit = null;
    // Read, merge and write under one write lock, so two concurrent edits never undo each other.
    const tx = this.db.transaction((): Settings => {
      this.checkProfileOf(clean);
      const merged: Settings = { ...this.defaults(), ...clean };
      this.db.prepare('UPDATE destinations SET settings = ? WHERE name = ?').run(JSON.stringify(merged), DEFAULT_ENTRY_NAME);
      return merged;
    });
    return tx.immediate();
  }

  /**
   * An entry may only name a bounce profile that exists: refuses an unknown one (ValidationError
   * naming `field`, the value and the profiles there are) and writes the profile's stored
   * spelling into `s` (names compare without case). Called inside the write transaction, so a
   * profile cannot be deleted between the check and the write.
   */
  private checkProfileOf(s: PartialSettings, field = 'bounce profile'): void {
    if (s.bounceProfile !== undefined) s.bounceProfile = knownProfileName(this.db, s.bounceProfile, field);
  }

  deleteEntry(name: string): string {
    if (name.trim() === DEFAULT_ENTRY_NAME) throw new ConfigError('the (Default) entry cannot be deleted');
    const n = parseDestinationName(name);
    const r = this.db.prepare('DELETE FROM destinations WHERE name = ?').run(n);
    if (r.changes === 0) throw new ConfigError(`no entry for ${n}`);
    return n;
  }

  /** CLEAR: removes every entry but (Default). */
  clearEntries(): number {
    return this.db.prepare('DELETE FROM destinations WHERE name <> ?').run(DEFAULT_ENTRY_NAME).changes;
  }

  /** Replaces the whole table (IMPORT) in one transaction. */
  replaceTable(defaults: Settings, entries: Entry[]): void {
    const tx = this.db.transaction(() => {
      // Each distinct profile name is looked up once, however large the table.
      const known = new Map<string, string>();
      const check = (s: PartialSettings, field: string): void => {
        if (s.bounceProfile === undefined) return;
        const key = s.bounceProfile.toLowerCase();
        s.bounceProfile = known.get(key) ?? knownProfileName(this.db, s.bounceProfile, field);
        known.set(key, s.bounceProfile);
      };
      const d = { ...defaults };
      check(d, `bounce profile of ${DEFAULT_ENTRY_NAME}`);
      const checked = entries.map((e) => {
        const settings = { ...e.settings };
        check(settings, `bounce profile of ${e.name}`);
        return { name: e.name, settings };
      });
      this.db.prepare('DELETE FROM destinations').run();
      const ins = this.db.prepare('INSERT INTO destinations (name, settings) VALUES (?, ?)');
      ins.run(DEFAULT_ENTRY_NAME, JSON.stringify(d));
      for (const e of checked) ins.run(e.name, JSON.stringify(e.settings));
    });
    tx.immediate();
  }

  // ---- SMTP routes ---------------------------------------------------------------------

  routes(): Map<string, RouteHost[]> {
    const rows = this.db.prepare('SELECT domain, hosts FROM routes ORDER BY domain').all() as { domain: string; hosts: string }[];
    return new Map(rows.map((r) => [r.domain, JSON.parse(r.hosts) as RouteHost[]]));
  }

  /**
   * Adds or replaces a route. `mode` 'new' refuses a route that exists and 'edit' one that does
   * not (as destconfig new/edit do); 'put' does either. Returns the stored key.
   */
  putRoute(domain: string, hosts: RouteHost[], mode: 'new' | 'edit' | 'put' = 'put'): string {
    const d = parseRouteKey(domain);
    if (hosts.length === 0) throw new ValidationError('route hosts', '', 'one or more HOST[:PORT]');
    const write = this.db.transaction(() => {
      const exists = this.db.prepare('SELECT 1 FROM routes WHERE domain = ?').get(d) !== undefined;
      if (mode === 'new' && exists) throw new ConfigError(`a route for ${d} already exists (use smtproutes edit to change it)`);
      if (mode === 'edit' && !exists) throw new ConfigError(`no route for ${d} (use smtproutes new to add one)`);
      this.db.prepare('INSERT OR REPLACE INTO routes (domain, hosts) VALUES (?, ?)').run(d, JSON.stringify(hosts));
    });
    write.immediate();
    return d;
  }

  deleteRoute(domain: string): string {
    const d = parseRouteKey(domain);
    if (this.db.prepare('DELETE FROM routes WHERE domain = ?').run(d).changes === 0) throw new ConfigError(`no route for ${d}`);
    return d;
  }

  // ---- trusted authorities -------------------------------------------------------------

  authorities(): Authority[] {
    const rows = this.db.prepare('SELECT id, fingerprint, subject, not_after, pem FROM authorities ORDER BY id').all() as {
      id: number;
      fingerprint: string;
      subject: string;
      not_after: string;
      pem: string;
    }[];
    return rows.map((r) => ({ id: r.id, fingerprint: r.fingerprint, subject: r.subject, notAfter: r.not_after, pem: r.pem }));
  }

  /** Adds every certificate of a PEM bundle; returns those added (already present ones are skipped). */
  addAuthorities(pemText: string): Authority[] {
    const blocks = pemText.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
    if (!blocks) throw new ValidationError('authority file', '(contents)', 'one or more PEM certificates');
    const certs = blocks.map((pem, i) => {
      try {
        return { pem, x: new X509Certificate(pem) };
      } catch (e) {
        throw new ValidationError(`authority certificate #${i + 1}`, '(PEM block)', `a parsable X.509 certificate (${(e as Error).message})`);
      }
    });
    const added: Authority[] = [];
    const tx = this.db.transaction(() => {
      for (const { pem, x } of certs) {
        const fingerprint = createHash('sha256').update(x.raw).digest('hex');
        const r = this.db
          .prepare('INSERT OR IGNORE INTO authorities (fingerprint, subject, not_after, pem) VALUES (?, ?, ?, ?)')
          .run(fingerprint, x.subject.replace(/\n/g, ', '), x.validTo, pem);
        if (r.changes > 0) {
          added.push({ id: Number(r.lastInsertRowid), fingerprint, subject: x.subject.replace(/\n/g, ', '), notAfter: x.validTo, pem });
        }
      }
    });
    tx.immediate();
    return added;
  }

  /** Removes an authority by id or by (a unique prefix of) its SHA-256 fingerprint. */
  removeAuthority(idOrFingerprint: string): Authority {
    const all = this.authorities();
    const key = idOrFingerprint.toLowerCase().replace(/:/g, '');
    const found = all.filter((a) => String(a.id) === key || (key.length >= 8 && a.fingerprint.startsWith(key)));
    if (found.length !== 1) {
      throw new ConfigError(found.length === 0 ? `no authority ${idOrFingerprint}` : `${idOrFingerprint} matches several authorities`);
    }
    this.db.prepare('DELETE FROM authorities WHERE id = ?').run(found[0]!.id);
    return found[0]!;
  }

  // ---- global settings -----------------------------------------------------------------

  globals(): GlobalSettings {
    const rows = this.db.prepare('SELECT key, value FROM globals').all() as { key: string; value: string }[];
    const out: GlobalSettings = { ...INITIAL_GLOBALS };
    for (const r of rows) if (r.key in out) (out as unknown as Record<string, unknown>)[r.key] = JSON.parse(r.value);
    return out;
  }

  setGlobals(changes: Partial<GlobalSettings>): GlobalSettings {
    const tx = this.db.transaction(() => {
      for (const [k, v] of Object.entries(changes)) {
        if (v === undefined) continue;
        this.db.prepare('INSERT OR REPLACE INTO globals (key, value) VALUES (?, ?)').run(k, JSON.stringify(v));
      }
    });
    tx.immediate();
    return this.globals();
  }

  snapshot(): ConfigSnapshot {
    const read = this.db.transaction(() => ({
      table: this.table(),
      routes: this.routes(),
      authorities: this.authorities(),
      globals: this.globals(),
      profiles: readProfiles(this.db),
    }));
    return read();
  }
}
