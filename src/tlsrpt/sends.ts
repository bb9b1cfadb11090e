/**
 * What became of each day's TLS reports (RFC 8460), per policy domain and destination, in
 * report.db (table `tlsrpt_sends`), so that a report is sent once, a failed https: submission is
 * retried with backoff across restarts, and an administrator can see what was sent where.
 * `destination` is the rua URI, or '' for the domain itself (no record, an invalid one, or a DNS
 * look-up to try again).
 */
import type { Db } from '../config/db.js';

export type SendStatus =
  /** https: accepted (2xx). */
  | 'sent'
  /** mailto: handed to Postern's queue (the queue delivers and retries it). */
  | 'queued'
  /** To try again at `nextTry` (https: temporary failure, or the DNS look-up failed). */
  | 'retry'
  /** Given up: a permanent refusal, or 24 hours of temporary ones. */
  | 'failed'
  /** The domain publishes no `_smtp._tls` record: nothing to send. */
  | 'no-record'
  /** The domain's record is not usable. */
  | 'invalid-record'
  /** Another node of the cluster sends this report. */
  | 'other-node';

export interface SendRow {
  day: string;
  policyDomain: string;
  destination: string;
  status: SendStatus;
  attempts: number;
  firstTry: number;
  nextTry: number | null;
  detail: string;
  reportId: string;
  /** The gzipped report, kept for https: retries (the same bytes again). */
  body: Buffer | null;
}

export class TlsRptSendStore {
  constructor(private readonly db: Db) {
    db.exec(`CREATE TABLE IF NOT EXISTS tlsrpt_sends (
      day TEXT NOT NULL, policy_domain TEXT NOT NULL, destination TEXT NOT NULL, status TEXT NOT NULL,
      attempts INTEGER NOT NULL, first_try INTEGER NOT NULL, next_try INTEGER, detail TEXT NOT NULL,
      report_id TEXT NOT NULL, body BLOB,
      PRIMARY KEY (day, policy_domain, destination)) WITHOUT ROWID`);
  }

  put(r: SendRow): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO tlsrpt_sends (day, policy_domain, destination, status, attempts, first_try, next_try, detail, report_id, body)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(r.day, r.policyDomain, r.destination, r.status, r.attempts, r.firstTry, r.nextTry, r.detail, r.reportId, r.body);
  }

  /** Forgets what was done for a domain's day (a report sent again on request starts afresh). */
  clear(day: string, policyDomain: string): void {
    this.db.prepare('DELETE FROM tlsrpt_sends WHERE day = ? AND policy_domain = ?').run(day, policyDomain);
  }

  of(day: string, policyDomain?: string): SendRow[] {
    const rows = this.db
      .prepare(`SELECT * FROM tlsrpt_sends WHERE day = ?${policyDomain === undefined ? '' : ' AND policy_domain = ?'} ORDER BY policy_domain, destination`)
      .all(...(policyDomain === undefined ? [day] : [day, policyDomain])) as RawRow[];
    return rows.map(toRow);
  }

  due(now: number): SendRow[] {
    return (this.db.prepare(`SELECT * FROM tlsrpt_sends WHERE status = 'retry' AND next_try <= ? ORDER BY next_try`).all(now) as RawRow[]).map(toRow);
  }

  /**
   * Policy domains with sessions on a finished day (from `fromDay` to before `today`) and no
   * report handled yet.
   */
  unreported(fromDay: string, today: string): { day: string; policyDomain: string }[] {
    return (
      this.db
        .prepare(
          `SELECT DISTINCT s.day AS day, s.policy_domain AS policy_domain FROM tlsrpt_sessions s
           WHERE s.day >= ? AND s.day < ?
             AND NOT EXISTS (SELECT 1 FROM tlsrpt_sends x WHERE x.day = s.day AND x.policy_domain = s.policy_domain)
           ORDER BY s.day, s.policy_domain`,
        )
        .all(fromDay, today) as { day: string; policy_domain: string }[]
    ).map((r) => ({ day: r.day, policyDomain: r.policy_domain }));
  }
}

interface RawRow {
  day: string;
  policy_domain: string;
  destination: string;
  status: string;
  attempts: number;
  first_try: number;
  next_try: number | null;
  detail: string;
  report_id: string;
  body: Buffer | null;
}

function toRow(r: RawRow): SendRow {
  return {
    day: r.day,
    policyDomain: r.policy_domain,
    destination: r.destination,
    status: r.status as SendStatus,
    attempts: r.attempts,
    firstTry: r.first_try,
    nextTry: r.next_try,
    detail: r.detail,
    reportId: r.report_id,
    body: r.body,
  };
}
