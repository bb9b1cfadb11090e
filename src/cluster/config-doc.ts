/**
 * The cluster's configuration as one document (SPEC §12): the rows of every table of config.db
 * that the cluster shares — the destination table, SMTP routes, bounce profiles, virtual
 * gateways and their assignments, trusted authorities, alert recipients, local domains and the
 * global settings but those naming a node's own certificates. Accounts and API tokens stay with
 * each node; certificates, bounce-verification keys and the certificate choices travel only
 * sealed, beside this document, when the nodes share a cluster secret file (secrets.ts). exportDoc reads it in one transaction, importDoc
 * replaces those rows in one transaction; the node's cluster version is kept beside them, in a
 * table of its own that is never shared.
 */
import { AlertStore } from '../config/alerts.js';
import type { Db } from '../config/db.js';
import { GatewayStore } from '../config/gateways.js';
import { LocalDomainStore } from '../config/local-domains.js';
import type { ConfigStore } from '../config/store.js';

export const SHARED_TABLES = ['destinations', 'routes', 'authorities', 'bounce_profiles', 'virtual_gateways', 'gateway_assignments', 'alert_recipients', 'local_domains', 'globals'] as const;
/** Global settings that name a node's certificates: shared only with them (secrets.ts). */
export const NODE_GLOBALS = ['listenerCertificate', 'clientCertificate', 'adminCertificate'];

export type Row = Record<string, string | number | null>;
export interface ConfigDoc {
  tables: Record<string, Row[]>;
}

/** Makes sure every shared table exists, so a document can be written into a new data directory. */
function ensureTables(store: ConfigStore): void {
  new GatewayStore(store);
  new AlertStore(store);
  new LocalDomainStore(store);
  store.db.exec('CREATE TABLE IF NOT EXISTS cluster_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL)');
}

function columns(db: Db, table: string): string[] {
  return (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name);
}

export function exportDoc(store: ConfigStore): ConfigDoc {
  ensureTables(store);
  const read = store.db.transaction((): ConfigDoc => {
    const tables: Record<string, Row[]> = {};
    for (const t of SHARED_TABLES) {
      const cols = columns(store.db, t);
      let rows = store.db.prepare(`SELECT * FROM ${t} ORDER BY ${cols.map((c) => `"${c}"`).join(', ')}`).all() as Row[];
      if (t === 'globals') rows = rows.filter((r) => !NODE_GLOBALS.includes(String(r.key)));
      tables[t] = rows;
    }
    return { tables };
  });
  return read();
}

export function importDoc(store: ConfigStore, doc: ConfigDoc, version: number): void {
  ensureTables(store);
  const write = store.db.transaction(() => {
    for (const t of SHARED_TABLES) {
      const rows = doc.tables[t] ?? [];
      const cols = new Set(columns(store.db, t));
      if (t === 'globals') store.db.prepare(`DELETE FROM globals WHERE key NOT IN (${NODE_GLOBALS.map(() => '?').join(', ')})`).run(...NODE_GLOBALS);
      else store.db.prepare(`DELETE FROM ${t}`).run();
      for (const r of rows) {
        // A column this release does not know is left out rather than failing the whole import.
        const keys = Object.keys(r).filter((k) => cols.has(k));
        store.db.prepare(`INSERT OR REPLACE INTO ${t} (${keys.map((k) => `"${k}"`).join(', ')}) VALUES (${keys.map(() => '?').join(', ')})`).run(...keys.map((k) => r[k]));
      }
    }
    setLocalVersion(store, version);
  });
  write.immediate();
}

export function localVersion(store: ConfigStore): number {
  return readNodeState(store, 'version') ?? 0;
}

export function setLocalVersion(store: ConfigStore, version: number): void {
  writeNodeState(store, 'version', version);
}

/** A number this node keeps about the cluster (its version, the nodes it last saw alive). */
export function readNodeState(store: ConfigStore, key: string): number | undefined {
  ensureTables(store);
  return (store.db.prepare('SELECT value FROM cluster_state WHERE key = ?').get(key) as { value: number } | undefined)?.value;
}

export function writeNodeState(store: ConfigStore, key: string, value: number): void {
  store.db.prepare('INSERT OR REPLACE INTO cluster_state (key, value) VALUES (?, ?)').run(key, value);
}
