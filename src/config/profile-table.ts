/**
 * The `bounce_profiles` table of `<data-dir>/config.db`: one row per bounce profile, its name
 * (primary key, compared without case) and its fields as JSON. The low-level reads and writes
 * shared by ConfigStore (which creates the table, puts the profiles into each snapshot and
 * checks the profile an entry names) and ProfileStore (src/config/profiles.ts, the operations).
 *
 * Contract:
 * - ensureProfileTable(db): creates the table and the `Default` profile (SPEC §7 values) when
 *   missing; never changes an existing row.
 * - readProfiles(db): every profile, keyed by its stored name. Fields missing from a stored row
 *   (written by an older release) take DEFAULT_PROFILE's values.
 * - readProfile(db, name): one profile by name in any case, or undefined.
 * - writeProfile(db, p) / deleteProfileRow(db, name): plain writes; callers validate and hold
 *   the transaction.
 * - knownProfileName(db, name, field): the stored spelling of the profile `name` names, or a
 *   ValidationError naming `field`, the value and the profiles that exist.
 */
import { DEFAULT_PROFILE, DEFAULT_PROFILE_NAME, type BounceProfile } from '../bounce/profile.js';
import { ValidationError } from '../controls/validate.js';
import type { Db } from './db.js';

const SCHEMA = `CREATE TABLE IF NOT EXISTS bounce_profiles (name TEXT PRIMARY KEY COLLATE NOCASE, profile TEXT NOT NULL);`;

function fieldsJson(p: BounceProfile): string {
  const { name: _name, ...fields } = p;
  return JSON.stringify(fields);
}

function fromRow(r: { name: string; profile: string }): BounceProfile {
  return { ...DEFAULT_PROFILE, ...(JSON.parse(r.profile) as Partial<BounceProfile>), name: r.name };
}

export function ensureProfileTable(db: Db): void {
  db.exec(SCHEMA);
  db.prepare('INSERT OR IGNORE INTO bounce_profiles (name, profile) VALUES (?, ?)').run(DEFAULT_PROFILE_NAME, fieldsJson(DEFAULT_PROFILE));
}

export function readProfiles(db: Db): Map<string, BounceProfile> {
  const rows = db.prepare('SELECT name, profile FROM bounce_profiles ORDER BY name').all() as { name: string; profile: string }[];
  return new Map(rows.map((r) => [r.name, fromRow(r)]));
}

export function readProfile(db: Db, name: string): BounceProfile | undefined {
  const r = db.prepare('SELECT name, profile FROM bounce_profiles WHERE name = ?').get(name) as { name: string; profile: string } | undefined;
  return r ? fromRow(r) : undefined;
}

export function writeProfile(db: Db, p: BounceProfile): void {
  db.prepare('INSERT INTO bounce_profiles (name, profile) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET profile = excluded.profile').run(
    p.name,
    fieldsJson(p),
  );
}

export function deleteProfileRow(db: Db, name: string): boolean {
  return db.prepare('DELETE FROM bounce_profiles WHERE name = ?').run(name).changes > 0;
}

export function knownProfileName(db: Db, name: string, field = 'bounce profile'): string {
  const r = db.prepare('SELECT name FROM bounce_profiles WHERE name = ?').get(name) as { name: string } | undefined;
  if (r) return r.name;
  const names = (db.prepare('SELECT name FROM bounce_profiles ORDER BY name').all() as { name: string }[]).map((x) => x.name);
  throw new ValidationError(field, name, `a bounce profile that exists (${names.join(', ')}); create it first with postern bounceconfig new`);
}
