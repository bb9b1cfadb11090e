/**
 * The MTA-STS policy cache (RFC 8461 §5), durable in `<data-dir>/mtasts.db`: one row per
 * recipient domain (a policy belongs to the domain, never to an MX site) with the policy in
 * effect — its id, mode, mx patterns, max_age, when it was fetched, when it expires (fetched +
 * max_age) and the text as served — and the last failed fetch (category, reason, time), which
 * rate-limits retries. A row may hold only an error (no policy fetched yet). Expired policies
 * are kept (for `mtasts show`); readers compare `expiresAt` with the time themselves.
 */
import { openDb, type Db } from '../config/db.js';
import type { StsMode } from './policy.js';
import type { StsFailure, StsFailureCategory } from './fetch.js';

export const MTASTS_DB = 'mtasts.db';

export interface CachedPolicy {
  id: string;
  mode: StsMode;
  mx: string[];
  /** Seconds. */
  maxAge: number;
  /** Milliseconds since the epoch. */
  fetchedAt: number;
  /** fetchedAt + maxAge × 1000. */
  expiresAt: number;
  /** The policy file as served. */
  text: string;
}

export interface FetchFailureRecord extends StsFailure {
  /** Milliseconds since the epoch. */
  at: number;
}

export interface MtaStsEntry {
  domain: string;
  policy: CachedPolicy | null;
  lastError: FetchFailureRecord | null;
}

interface Row {
  domain: string;
  policy_id: string | null;
  mode: string | null;
  mx: string | null;
  max_age: number | null;
  fetched_at: number | null;
  expires_at: number | null;
  policy_text: string | null;
  error_category: string | null;
  error_reason: string | null;
  error_at: number | null;
}

function fromRow(r: Row): MtaStsEntry {
  const policy: CachedPolicy | null =
    r.policy_id !== null && r.mode !== null && r.max_age !== null && r.fetched_at !== null && r.expires_at !== null
      ? {
          id: r.policy_id,
          mode: r.mode as StsMode,
          mx: JSON.parse(r.mx ?? '[]') as string[],
          maxAge: r.max_age,
          fetchedAt: r.fetched_at,
          expiresAt: r.expires_at,
          text: r.policy_text ?? '',
        }
      : null;
  const lastError: FetchFailureRecord | null =
    r.error_category !== null && r.error_at !== null ? { category: r.error_category as StsFailureCategory, reason: r.error_reason ?? '', at: r.error_at } : null;
  return { domain: r.domain, policy, lastError };
}

export class MtaStsStore {
  private constructor(readonly db: Db) {
    db.exec(`CREATE TABLE IF NOT EXISTS mtasts_policies (
      domain TEXT PRIMARY KEY,
      policy_id TEXT, mode TEXT, mx TEXT, max_age INTEGER, fetched_at INTEGER, expires_at INTEGER, policy_text TEXT,
      error_category TEXT, error_reason TEXT, error_at INTEGER
    ) WITHOUT ROWID`);
  }

  static open(dataDir: string): MtaStsStore {
    return new MtaStsStore(openDb(dataDir, MTASTS_DB));
  }

  get(domain: string): MtaStsEntry | null {
    const r = this.db.prepare('SELECT * FROM mtasts_policies WHERE domain = ?').get(domain) as Row | undefined;
    return r ? fromRow(r) : null;
  }

  /** Every domain's row, by name. */
  list(): MtaStsEntry[] {
    return (this.db.prepare('SELECT * FROM mtasts_policies ORDER BY domain').all() as Row[]).map(fromRow);
  }

  /** A policy fetched: it replaces the cached one, and the last error is forgotten. */
  savePolicy(domain: string, p: CachedPolicy): void {
    this.db
      .prepare(
        `INSERT INTO mtasts_policies (domain, policy_id, mode, mx, max_age, fetched_at, expires_at, policy_text, error_category, error_reason, error_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)
         ON CONFLICT (domain) DO UPDATE SET policy_id = excluded.policy_id, mode = excluded.mode, mx = excluded.mx,
           max_age = excluded.max_age, fetched_at = excluded.fetched_at, expires_at = excluded.expires_at,
           policy_text = excluded.policy_text, error_category = NULL, error_reason = NULL, error_at = NULL`,
      )
      .run(domain, p.id, p.mode, JSON.stringify(p.mx), p.maxAge, p.fetchedAt, p.expiresAt, p.text);
  }

  /** A fetch failed: recorded beside the cached policy, which stays as it was. */
  saveError(domain: string, e: FetchFailureRecord): void {
    this.db
      .prepare(
        `INSERT INTO mtasts_policies (domain, error_category, error_reason, error_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (domain) DO UPDATE SET error_category = excluded.error_category, error_reason = excluded.error_reason, error_at = excluded.error_at`,
      )
      .run(domain, e.category, e.reason, e.at);
  }

  delete(domain: string): boolean {
    return this.db.prepare('DELETE FROM mtasts_policies WHERE domain = ?').run(domain).changes > 0;
  }

  close(): void {
    this.db.close();
  }
}
