/**
 * The TLS Connections report's data (SPEC §9): every outgoing connection attempt counted per
 * recipient domain and per hour, in `report.db` of the data directory, from the same events
 * the mail log writes (so the report and the log cannot disagree).
 *
 * TlsCounter (an EventSink): classifies each event —
 * - `connection-failed`: attempted (a refused attempt counts in Total Attempted only);
 * - `connection`: attempted; under TLS No, a clear connection;
 * - `tls-success`: Required/Preferred TLS Success by the setting's class, and verified or
 *   unverified beside it when the setting verifies;
 * - `tls-failed`: `clear-text` → Preferred TLS Failed and a clear connection; `refused` or
 *   `dropped` → Required (or Preferred) TLS Failed, never clear;
 * - `tls-skipped` (broken TLS remembered): Preferred TLS Failed and a clear connection;
 * - `message-done`: a message sent encrypted or in clear, by its connection's state.
 * Counts are added to the hour's row in one transaction at most every COUNT_FLUSH_MS (flush.ts).
 *
 * TlsReportStore: hourly rows for the recent days and each domain's running totals per day;
 * queries over a window; retention.
 */
import type Database from 'better-sqlite3';
import { openDb, type Db } from '../config/db.js';
import type { TlsMode } from '../controls/types.js';
import { isRequired, verifies } from '../tls/policy.js';
import type { MailEvent } from './events.js';
import type { EventSink } from './maillog.js';
import { COUNT_FLUSH_MS, flushBatch } from './flush.js';

export const REPORT_COLUMNS = ['attempted', 'requiredOk', 'requiredFailed', 'preferredOk', 'preferredFailed', 'clear', 'verified', 'unverified', 'encryptedMessages', 'clearMessages'] as const;
export type ReportColumn = (typeof REPORT_COLUMNS)[number];
export type Counts = Record<ReportColumn, number>;

const COLUMN_SQL: Record<ReportColumn, string> = {
  attempted: 'attempted',
  requiredOk: 'required_ok',
  requiredFailed: 'required_failed',
  preferredOk: 'preferred_ok',
  preferredFailed: 'preferred_failed',
  clear: 'clear',
  verified: 'verified',
  unverified: 'unverified',
  encryptedMessages: 'encrypted_messages',
  clearMessages: 'clear_messages',
};

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** Hourly rows are kept this long (windows within it are exact to the hour). */
export const HOURLY_DAYS = 8;
export const DEFAULT_RETENTION_DAYS = 400;
/** Running totals are kept for every day this long, then for the last day of each month. */
export const DAILY_DAYS = 92;
/** The pseudo-domain whose running totals are those of every domain (the graph's series). */
const ALL = '*';

export const zeroCounts = (): Counts => Object.fromEntries(REPORT_COLUMNS.map((c) => [c, 0])) as Counts;

export interface ReportRow extends Counts {
  domain: string;
}

const COLS = REPORT_COLUMNS.map((c) => COLUMN_SQL[c]);

/**
 * Two tables: `tls_hourly` (domain, hour) for the last HOURLY_DAYS days, and `tls_running`
 * (domain, day) with each domain's running totals up to the end of that day (daily for
 * DAILY_DAYS, then month ends). A window longer than the hourly rows is the difference of two
 * running totals per domain — two index seeks per domain whatever the window's length, so a
 * year of 10,000 domains answers as fast as a week (bench/tls-report.ts).
 */
export class TlsReportStore {
  private thinnedAt = 0;

  private constructor(readonly db: Db) {
    db.exec(`CREATE TABLE IF NOT EXISTS tls_hourly (start INTEGER NOT NULL, domain TEXT NOT NULL,
        ${COLS.map((c) => `${c} INTEGER NOT NULL DEFAULT 0`).join(', ')}, PRIMARY KEY (start, domain));
      CREATE TABLE IF NOT EXISTS tls_running (domain TEXT NOT NULL, day INTEGER NOT NULL,
        ${COLS.map((c) => `${c} INTEGER NOT NULL DEFAULT 0`).join(', ')}, PRIMARY KEY (domain, day)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS tls_domains (domain TEXT PRIMARY KEY) WITHOUT ROWID;`);
    // Counting is statistics: NORMAL is enough (a power cut may lose the last second).
    db.pragma('synchronous = NORMAL');
  }

  static open(dataDir: string): TlsReportStore {
    return new TlsReportStore(openDb(dataDir, 'report.db'));
  }

  close(): void {
    this.db.close();
  }

  /** The statements of add(), prepared once (add runs every COUNT_FLUSH_MS while sessions are made). */
  private addStatements?: Record<'hourly' | 'later' | 'has' | 'before' | 'insert' | 'known', Database.Statement>;

  /** Adds counts; `batch` maps `hourStart|domain` to counts. One transaction. */
  add(batch: Map<string, { hour: number; domain: string; counts: Counts }>): void {
    const { hourly, later, has, before, insert, known } = (this.addStatements ??= {
      hourly: this.db.prepare(
        `INSERT INTO tls_hourly (start, domain, ${COLS.join(', ')}) VALUES (?, ?, ${COLS.map(() => '?').join(', ')})
         ON CONFLICT (start, domain) DO UPDATE SET ${COLS.map((c) => `${c} = ${c} + excluded.${c}`).join(', ')}`,
      ),
      // Every running total from that day on grows by the counts (normally only today's row).
      later: this.db.prepare(`UPDATE tls_running SET ${COLS.map((c) => `${c} = ${c} + ?`).join(', ')} WHERE domain = ? AND day >= ?`),
      has: this.db.prepare('SELECT 1 FROM tls_running WHERE domain = ? AND day = ?'),
      before: this.db.prepare(`SELECT ${COLS.join(', ')} FROM tls_running WHERE domain = ? AND day < ? ORDER BY day DESC LIMIT 1`),
      insert: this.db.prepare(`INSERT INTO tls_running (domain, day, ${COLS.join(', ')}) VALUES (?, ?, ${COLS.map(() => '?').join(', ')})`),
      known: this.db.prepare('INSERT OR IGNORE INTO tls_domains (domain) VALUES (?)'),
    });
    const running = (domain: string, day: number, values: number[]) => {
      later.run(...values, domain, day);
      if (has.get(domain, day)) return;
      const base = before.get(domain, day) as Record<string, number> | undefined;
      insert.run(domain, day, ...COLS.map((c, i) => (base?.[c] ?? 0) + values[i]!));
    };
    const tx = this.db.transaction(() => {
      const all = new Map<number, number[]>();
      for (const b of batch.values()) {
        const values = REPORT_COLUMNS.map((c) => b.counts[c]);
        const day = Math.floor(b.hour / DAY) * DAY;
        hourly.run(b.hour, b.domain, ...values);
        known.run(b.domain);
        running(b.domain, day, values);
        const a = all.get(day) ?? COLS.map(() => 0);
        values.forEach((v, i) => (a[i]! += v));
        all.set(day, a);
      }
      for (const [day, values] of all) running(ALL, day, values);
    });
    tx.immediate();
  }

  /** The oldest start the hourly rows still cover. */
  private hourlyFrom(now: number): number {
    return Math.floor((now - HOURLY_DAYS * DAY) / DAY) * DAY + DAY;
  }

  /**
   * Counts per domain over [from, to): from the hourly rows when the window lies within them
   * (exact to the hour), else from the running totals (exact to the day: the window is widened
   * to whole days). Domains with nothing in the window are left out.
   */
  query(from: number, to: number, domain?: string, now = Date.now()): ReportRow[] {
    if (from >= this.hourlyFrom(now)) {
      const sums = REPORT_COLUMNS.map((c) => `SUM(${COLUMN_SQL[c]}) AS ${c}`).join(', ');
      const where = `start >= ? AND start < ?${domain === undefined ? '' : ' AND domain = ?'}`;
      const args: (number | string)[] = domain === undefined ? [from, to] : [from, to, domain];
      return this.db.prepare(`SELECT domain, ${sums} FROM tls_hourly WHERE ${where} GROUP BY domain ORDER BY attempted DESC, domain`).all(...args) as ReportRow[];
    }
    const lastDay = Math.floor((to - 1) / DAY) * DAY;
    const firstDay = Math.floor(from / DAY) * DAY;
    const at = (cmp: '<=' | '<') => `(SELECT MAX(day) FROM tls_running x WHERE x.domain = d.domain AND x.day ${cmp} ?)`;
    const rows = this.db
      .prepare(
        `SELECT d.domain AS domain, ${COLS.map((c) => `hi.${c} - IFNULL(lo.${c}, 0) AS ${c}`).join(', ')}
         FROM tls_domains d
         JOIN tls_running hi ON hi.domain = d.domain AND hi.day = ${at('<=')}
         LEFT JOIN tls_running lo ON lo.domain = d.domain AND lo.day = ${at('<')}
         WHERE d.domain <> '${ALL}'${domain === undefined ? '' : ' AND d.domain = ?'}`,
      )
      .all(...(domain === undefined ? [lastDay, firstDay] : [lastDay, firstDay, domain])) as Record<string, number | string>[];
    return rows
      .map((r) => ({ domain: String(r.domain), ...Object.fromEntries(REPORT_COLUMNS.map((c) => [c, Number(r[COLUMN_SQL[c]])])) }) as ReportRow)
      .filter((r) => REPORT_COLUMNS.some((c) => r[c] !== 0));
  }

  /** TLS sessions and clear connections per hour (from the hourly rows) or per day (from the running totals). */
  series(from: number, to: number, bucketMs: number, domain?: string): { start: number; tls: number; clear: number }[] {
    if (bucketMs < DAY) {
      const where = `start >= ? AND start < ?${domain === undefined ? '' : ' AND domain = ?'}`;
      const args: (number | string)[] = domain === undefined ? [from, to] : [from, to, domain];
      return this.db
        .prepare(`SELECT (start - ?) / ? * ? + ? AS start, SUM(required_ok + preferred_ok) AS tls, SUM(clear) AS clear FROM tls_hourly WHERE ${where} GROUP BY 1 ORDER BY 1`)
        .all(from, bucketMs, bucketMs, from, ...args) as { start: number; tls: number; clear: number }[];
    }
    const firstDay = Math.floor(from / DAY) * DAY;
    const rows = this.db
      .prepare(`SELECT day, required_ok + preferred_ok AS tls, clear FROM tls_running WHERE domain = ? AND day >= ? AND day < ? ORDER BY day`)
      .all(domain ?? ALL, firstDay - DAY, to) as { day: number; tls: number; clear: number }[];
    const out: { start: number; tls: number; clear: number }[] = [];
    let prev = this.db.prepare('SELECT required_ok + preferred_ok AS tls, clear FROM tls_running WHERE domain = ? AND day < ? ORDER BY day DESC LIMIT 1').get(domain ?? ALL, firstDay) as { tls: number; clear: number } | undefined;
    for (const r of rows) {
      if (r.day >= firstDay) out.push({ start: r.day, tls: r.tls - (prev?.tls ?? 0), clear: r.clear - (prev?.clear ?? 0) });
      prev = r;
    }
    return out;
  }

  /**
   * Deletes hourly rows past HOURLY_DAYS; keeps running totals daily for DAILY_DAYS, then only
   * the last of each month (a window reaching further back starts at a month's end); deletes
   * them past the retention, keeping each domain's last one before it as the base.
   */
  maintain(now: number, retentionDays = DEFAULT_RETENTION_DAYS): void {
    const cutoff = Math.floor((now - retentionDays * DAY) / DAY) * DAY;
    const daily = Math.floor((now - DAILY_DAYS * DAY) / DAY) * DAY;
    const tx = this.db.transaction(() => {
      this.db.prepare('DELETE FROM tls_hourly WHERE start < ?').run(this.hourlyFrom(now));
      // Once a day, the days that have just become older than DAILY_DAYS (a band of 40 days)
      // are thinned, each month to its last day: the cost stays that of one month of rows.
      if (daily !== this.thinnedAt) this.db
        .prepare(
          `DELETE FROM tls_running WHERE (domain, day) IN (
             SELECT domain, day FROM (
               SELECT domain, day, ROW_NUMBER() OVER (PARTITION BY domain, strftime('%Y-%m', day / 1000, 'unixepoch') ORDER BY day DESC) AS n
               FROM tls_running WHERE day >= ? AND day < ?)
             WHERE n > 1)`,
        )
        .run(daily - 40 * DAY, daily);
      this.thinnedAt = daily;
      this.db
        .prepare('DELETE FROM tls_running WHERE day < ? AND day < (SELECT MAX(day) FROM tls_running x WHERE x.domain = tls_running.domain AND x.day < ?)')
        .run(cutoff, cutoff);
    });
    tx.immediate();
  }
}

const MAX_OPEN = 20_000;

type SettingClass = 'required' | 'preferred' | 'no';
const classOf = (mode: TlsMode): SettingClass => (mode === 'no' ? 'no' : isRequired(mode) ? 'required' : 'preferred');

interface OpenConnection {
  domain: string;
  mode: TlsMode;
  encrypted: boolean;
}

export class TlsCounter implements EventSink {
  private readonly open = new Map<number, OpenConnection>();
  private pending = new Map<string, { hour: number; domain: string; counts: Counts }>();
  private flushing: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: Pick<TlsReportStore, 'add'>,
    private readonly now: () => number = Date.now,
    /** Called when counts cannot be written (they are kept and tried again). */
    private readonly onTrouble: (reason: string | null) => void = () => undefined,
  ) {}

  private count(domain: string, column: ReportColumn): void {
    const t = this.now();
    const hour = Math.floor(t / HOUR) * HOUR;
    const key = `${hour}|${domain}`;
    let p = this.pending.get(key);
    if (!p) this.pending.set(key, (p = { hour, domain, counts: zeroCounts() }));
    p.counts[column]++;
    this.flushing ??= setTimeout(() => this.flush(), COUNT_FLUSH_MS);
  }

  write(e: MailEvent): void {
    switch (e.event) {
      case 'connection-failed':
        this.count(e.domain, 'attempted');
        return;
      case 'connection': {
        const mode = e.tls ?? 'no';
        this.count(e.domain, 'attempted');
        this.open.set(e.dcid, { domain: e.domain, mode, encrypted: false });
        // A connection ended without a connection-closed event (a refused EHLO) must not stay
        // here for ever: the oldest are let go past a bound far above any concurrency.
        if (this.open.size > MAX_OPEN) this.open.delete(this.open.keys().next().value as number);
        if (mode === 'no') this.count(e.domain, 'clear');
        return;
      }
      case 'tls-success': {
        const c = this.open.get(e.dcid);
        if (!c) return;
        c.encrypted = true;
        this.count(c.domain, classOf(c.mode) === 'required' ? 'requiredOk' : 'preferredOk');
        if (verifies(c.mode)) this.count(c.domain, e.verified === 'yes' ? 'verified' : 'unverified');
        return;
      }
      case 'tls-failed': {
        const c = this.open.get(e.dcid);
        if (!c) return;
        this.count(c.domain, classOf(c.mode) === 'required' ? 'requiredFailed' : 'preferredFailed');
        if (e.outcome === 'clear-text') this.count(c.domain, 'clear');
        return;
      }
      case 'tls-skipped': {
        const c = this.open.get(e.dcid);
        if (!c) return;
        this.count(c.domain, 'preferredFailed');
        this.count(c.domain, 'clear');
        return;
      }
      case 'message-done': {
        const c = this.open.get(e.dcid);
        if (c) this.count(c.domain, c.encrypted ? 'encryptedMessages' : 'clearMessages');
        return;
      }
      case 'connection-closed':
        this.open.delete(e.dcid);
        return;
      default:
        return;
    }
  }

  /** Writes what was counted; kept for the next try when the write fails. */
  flush(): void {
    if (this.flushing) clearTimeout(this.flushing);
    this.flushing = null;
    this.pending = flushBatch(this.pending, (b) => this.store.add(b), (into, from) => REPORT_COLUMNS.forEach((c) => (into.counts[c] += from.counts[c])), this.onTrouble);
  }
}
