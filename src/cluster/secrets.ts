/**
 * Certificates and bounce-verification keys shared by a cluster (SPEC §12), only when every node
 * is given the same `--cluster-secret-file`: the certificates (rows and private keys), the
 * bounce-verification keys (rows and texts) and the choice of certificate for each use travel
 * with the configuration, sealed with AES-256-GCM under a key derived from that file, so Redis
 * never holds a private key in clear. Without the file they stay per node.
 *
 * The secret file: at least 32 characters (e.g. `openssl rand -base64 48`), readable by its owner
 * only. The key is scrypt(file contents); a short check value derived beside it tells nodes
 * whether they were given the same file without revealing anything of it.
 */
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { BV_KEYS_SCHEMA } from '../config/bounce-verification.js';
import { CERTIFICATES_SCHEMA } from '../config/certificates.js';
import { writeSecretFile } from '../config/secret-file.js';
import { ConfigError, type ConfigStore } from '../config/store.js';
import { ValidationError } from '../controls/validate.js';
import { NODE_GLOBALS as CERTIFICATE_GLOBALS, type Row } from './config-doc.js';

const MIN_LENGTH = 32;
const SALT = 'postern cluster secrets v1';

export class ClusterSecret {
  private constructor(
    private readonly key: Buffer,
    /** 16 hex digits; equal on every node given the same file. */
    readonly check: string,
  ) {}

  /** Reads and checks the file; a ValidationError names what is wrong with it. */
  static fromFile(path: string): ClusterSecret {
    let st;
    try {
      st = statSync(path);
    } catch (e) {
      throw new ValidationError('cluster-secret-file', path, `a readable file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (!st.isFile()) throw new ValidationError('cluster-secret-file', path, 'a regular file');
    if ((st.mode & 0o077) !== 0) {
      throw new ValidationError('cluster-secret-file', path, `a file readable by its owner only (it is mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}: chmod 600 it)`);
    }
    const text = readFileSync(path, 'utf8').trim();
    if (text.length < MIN_LENGTH) throw new ValidationError('cluster-secret-file', path, `at least ${MIN_LENGTH} characters of secret (it holds ${text.length}; e.g. openssl rand -base64 48 > FILE)`);
    const derived = scryptSync(text, SALT, 40, { N: 16384, r: 8, p: 1 });
    return new ClusterSecret(derived.subarray(0, 32), derived.subarray(32).toString('hex'));
  }

  seal(plain: string): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(this.check));
    const data = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return Buffer.concat([iv, c.getAuthTag(), data]).toString('base64');
  }

  /** The plain text; a ConfigError when the box was not sealed with this secret or was altered. */
  open(sealed: string): string {
    const b = Buffer.from(sealed, 'base64');
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, b.subarray(0, 12));
      d.setAAD(Buffer.from(this.check));
      d.setAuthTag(b.subarray(12, 28));
      return Buffer.concat([d.update(b.subarray(28)), d.final()]).toString('utf8');
    } catch {
      throw new ConfigError("the cluster's certificates and keys cannot be opened with this node's secret file (another file, or altered in Redis)");
    }
  }
}

/** What travels sealed: rows and the secrets of their files. */
export interface SecretsDoc {
  certificates: Row[];
  /** Certificate name → private key (PEM). */
  certificateKeys: Record<string, string>;
  bvKeys: Row[];
  /** bv_keys id → key text. */
  bvKeyTexts: Record<string, string>;
  globals: Row[];
}

const keyDir = (dataDir: string) => join(dataDir, 'keys');
const certKeyFile = (name: string) => `${name}.key`;
const bvKeyFile = (id: string | number) => `bv-${id}.key`;

function ensureTables(store: ConfigStore): void {
  store.db.exec(CERTIFICATES_SCHEMA);
  store.db.exec(BV_KEYS_SCHEMA);
}

function readIfExists(path: string): string | null {
  return existsSync(path) ? readFileSync(path, 'utf8') : null;
}

export function exportSecrets(store: ConfigStore, dataDir: string): SecretsDoc {
  ensureTables(store);
  const read = store.db.transaction(() => ({
    certificates: store.db.prepare('SELECT * FROM certificates ORDER BY name').all() as Row[],
    bvKeys: store.db.prepare('SELECT * FROM bv_keys ORDER BY id').all() as Row[],
    globals: store.db.prepare(`SELECT * FROM globals WHERE key IN (${CERTIFICATE_GLOBALS.map(() => '?').join(', ')}) ORDER BY key`).all(...CERTIFICATE_GLOBALS) as Row[],
  }));
  const rows = read();
  const doc: SecretsDoc = { ...rows, certificateKeys: {}, bvKeyTexts: {} };
  for (const r of rows.certificates) {
    const pem = readIfExists(join(keyDir(dataDir), certKeyFile(String(r.name))));
    if (pem !== null) doc.certificateKeys[String(r.name)] = pem;
  }
  for (const r of rows.bvKeys) {
    const text = readIfExists(join(keyDir(dataDir), bvKeyFile(String(r.id))));
    if (text !== null) doc.bvKeyTexts[String(r.id)] = text;
  }
  return doc;
}

function insertRows(store: ConfigStore, table: string, rows: Row[]): void {
  for (const r of rows) {
    const keys = Object.keys(r);
    store.db.prepare(`INSERT OR REPLACE INTO ${table} (${keys.map((k) => `"${k}"`).join(', ')}) VALUES (${keys.map(() => '?').join(', ')})`).run(...keys.map((k) => r[k]));
  }
}

/**
 * Makes this node's certificates, bounce-verification keys and certificate choices the cluster's:
 * the key files are written first (each 0600, replaced atomically), then the rows in one
 * transaction, then the files no row names any more are removed.
 */
export function importSecrets(store: ConfigStore, dataDir: string, doc: SecretsDoc): void {
  ensureTables(store);
  const dir = keyDir(dataDir);
  const wanted = new Set<string>();
  const write = (file: string, text: string) => {
    wanted.add(file);
    if (readIfExists(join(dir, file)) !== text) writeSecretFile(dir, file, text);
  };
  for (const [name, pem] of Object.entries(doc.certificateKeys)) write(certKeyFile(name), pem);
  for (const [id, text] of Object.entries(doc.bvKeyTexts)) write(bvKeyFile(id), text);
  const tx = store.db.transaction(() => {
    store.db.prepare('DELETE FROM certificates').run();
    store.db.prepare('DELETE FROM bv_keys').run();
    store.db.prepare(`DELETE FROM globals WHERE key IN (${CERTIFICATE_GLOBALS.map(() => '?').join(', ')})`).run(...CERTIFICATE_GLOBALS);
    insertRows(store, 'certificates', doc.certificates);
    insertRows(store, 'bv_keys', doc.bvKeys);
    insertRows(store, 'globals', doc.globals);
  });
  tx.immediate();
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) {
    if (f.endsWith('.key') && !f.startsWith('.') && !wanted.has(f)) unlinkSync(join(dir, f));
  }
}
