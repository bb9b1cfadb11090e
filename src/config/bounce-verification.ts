/**
 * Bounce verification keys (SPEC §8, `postern bvconfig key …`). Each key has a number 0-9 (the
 * K of its tags), a creation time and, once retired, a retirement time; the facts live in
 * config.db (`bv_keys`), the key text in its own file `<data-dir>/keys/bv-<id>.key`, written as
 * private keys are (config/secret-file.ts: mode 0600, directory 0700), so that it is never in a
 * listing, an export or the audit log.
 *
 * Tagging uses the newest key that is not retired. A number is free again once its key no longer
 * verifies any bounce (retired at least 7 days ago): `add` then replaces that old key.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { TAG_LIFETIME_DAYS, type TagKey } from '../bounce/batv.js';
import { ValidationError } from '../controls/validate.js';
import { writeSecretFile } from './secret-file.js';
import { ConfigError, type ConfigStore } from './store.js';

export interface BvKeyInfo {
  number: number;
  created: number;
  retired: number | null;
}

export interface BvKey extends BvKeyInfo {
  text: string;
}

export const BV_KEYS_SCHEMA = 'CREATE TABLE IF NOT EXISTS bv_keys (id INTEGER PRIMARY KEY AUTOINCREMENT, number INTEGER NOT NULL UNIQUE, created INTEGER NOT NULL, retired INTEGER)';
const DAY_MS = 86_400_000;

/** A key text given with --key: 8 to 256 printable ASCII characters. */
export function parseKeyText(text: string): string {
  if (!/^[\x21-\x7e]{8,256}$/.test(text)) throw new ValidationError('bounce verification key', text.length > 40 ? `${text.slice(0, 40)}…` : text, '8 to 256 printable ASCII characters without spaces');
  return text;
}

export class BvKeyStore {
  constructor(
    private readonly config: ConfigStore,
    private readonly dataDir: string,
  ) {
    config.db.exec(BV_KEYS_SCHEMA);
  }

  private get dir(): string {
    return join(this.dataDir, 'keys');
  }

  private file(id: number): string {
    return `bv-${id}.key`;
  }

  list(): BvKeyInfo[] {
    return this.config.db.prepare('SELECT number, created, retired FROM bv_keys ORDER BY number').all() as BvKeyInfo[];
  }

  /** Every key with its text, for tagging and checking (the gateway's snapshot). */
  keys(): BvKey[] {
    const rows = this.config.db.prepare('SELECT id, number, created, retired FROM bv_keys ORDER BY created').all() as (BvKeyInfo & { id: number })[];
    const out: BvKey[] = [];
    for (const r of rows) {
      const path = join(this.dir, this.file(r.id));
      // A row whose file is not there yet (written first, then the row) or was lost: no key.
      if (!existsSync(path)) continue;
      out.push({ number: r.number, created: r.created, retired: r.retired, text: readFileSync(path, 'utf8') });
    }
    return out;
  }

  /** The key text of `number`, for `key list --show`. */
  text(number: number): string {
    const k = this.keys().find((x) => x.number === number);
    if (!k) throw new ConfigError(`no bounce verification key ${number}`);
    return k.text;
  }

  /** Adds a key (random when `text` is undefined) under the lowest free number; returns its facts and text. */
  add(text: string | undefined, now = Date.now()): BvKey {
    const keyText = text === undefined ? randomBytes(24).toString('base64url') : parseKeyText(text);
    const tx = this.config.db.transaction((): BvKey & { id: number; replaced: number | null } => {
      const held = this.config.db.prepare('SELECT id, number, retired FROM bv_keys').all() as { id: number; number: number; retired: number | null }[];
      const stillVerifies = (r: { retired: number | null }) => r.retired === null || now - r.retired < TAG_LIFETIME_DAYS * DAY_MS;
      const number = [...Array(10).keys()].find((n) => !held.some((r) => r.number === n && stillVerifies(r)));
      if (number === undefined) {
        throw new ConfigError(`all ten key numbers (0-9) hold keys that still verify bounces; retire one (bvconfig key retire N): its number is free ${TAG_LIFETIME_DAYS} days later`);
      }
      const old = held.find((r) => r.number === number) ?? null;
      if (old) this.config.db.prepare('DELETE FROM bv_keys WHERE id = ?').run(old.id);
      const id = Number(this.config.db.prepare('INSERT INTO bv_keys (number, created) VALUES (?, ?)').run(number, now).lastInsertRowid);
      // The file before the commit: a key row is never without its text.
      writeSecretFile(this.dir, this.file(id), keyText);
      return { id, number, created: now, retired: null, text: keyText, replaced: old?.id ?? null };
    });
    const r = tx.immediate();
    if (r.replaced !== null) this.removeFile(r.replaced);
    return { number: r.number, created: r.created, retired: r.retired, text: r.text };
  }

  retire(number: number, now = Date.now()): BvKeyInfo {
    const r = this.config.db.prepare('UPDATE bv_keys SET retired = ? WHERE number = ? AND retired IS NULL').run(now, number);
    if (r.changes === 0) {
      const k = this.list().find((x) => x.number === number);
      throw new ConfigError(k ? `key ${number} is already retired (since ${new Date(k.retired!).toISOString()})` : `no bounce verification key ${number}`);
    }
    return this.list().find((x) => x.number === number)!;
  }

  private removeFile(id: number): void {
    try {
      unlinkSync(join(this.dir, this.file(id)));
    } catch {
      /* already gone */
    }
  }
}

/** What tagging and checking need from the keys. */
export function tagKeys(keys: BvKey[]): { active: BvKey | null; all: TagKey[] } {
  const active = keys.filter((k) => k.retired === null).sort((a, b) => b.created - a.created)[0] ?? null;
  return { active, all: keys.map((k) => ({ number: k.number, text: k.text, retiredAt: k.retired })) };
}
