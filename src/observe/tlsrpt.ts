/**
 * TLS sessions counted for SMTP TLS Reporting (RFC 8460): each session attempt delivery makes
 * to a host of a recipient domain, by the policy that governed it (`sts` for MTA-STS, `tlsa` for
 * DANE, `no-policy-found`), its result (`success` or one of the RFC's result types), the sending
 * address and the receiving MX host and address, per UTC day, in `report.db` (table
 * `tlsrpt_sessions`). Counted per session, not per message; written every COUNT_FLUSH_MS
 * (flush.ts) in one transaction, kept and tried again when a write fails.
 */
import type Database from 'better-sqlite3';
import { openDb, type Db } from '../config/db.js';
import { COUNT_FLUSH_MS, flushBatch } from './flush.js';

export const RESULT_TYPES = [
  'starttls-not-supported',
  'certificate-host-mismatch',
  'certificate-expired',
  'certificate-not-trusted',
  'validation-failure',
  'tlsa-invalid',
  'dnssec-invalid',
  'dane-required',
  'sts-policy-fetch-error',
  'sts-policy-invalid',
  'sts-webpki-invalid',
] as const;
export type ResultType = (typeof RESULT_TYPES)[number];
export type PolicyType = 'sts' | 'tlsa' | 'no-policy-found';

export interface TlsSession {
  /** The recipient domain whose policy applies. */
  policyDomain: string;
  policyType: PolicyType;
  /** The policy as RFC 8460 reports it: the MTA-STS policy's lines, or the TLSA records. */
  policyStrings: string[];
  /** MTA-STS: the policy's mx patterns. */
  mxHosts: string[];
  result: 'success' | ResultType;
  sendingIp: string;
  receivingMx: string;
  receivingIp: string;
}

export interface SessionRow extends TlsSession {
  /** UTC day, YYYY-MM-DD. */
  day: string;
  count: number;
}

const COLUMNS = ['day', 'policy_domain', 'policy_type', 'policy_strings', 'mx_hosts', 'result', 'sending_ip', 'receiving_mx', 'receiving_ip'] as const;

export class TlsRptStore {
  private constructor(readonly db: Db) {
    db.exec(`CREATE TABLE IF NOT EXISTS tlsrpt_sessions (
      day TEXT NOT NULL, policy_domain TEXT NOT NULL, policy_type TEXT NOT NULL, policy_strings TEXT NOT NULL,
      mx_hosts TEXT NOT NULL, result TEXT NOT NULL, sending_ip TEXT NOT NULL, receiving_mx TEXT NOT NULL,
      receiving_ip TEXT NOT NULL, count INTEGER NOT NULL,
      PRIMARY KEY (${COLUMNS.join(', ')})) WITHOUT ROWID`);
  }

  static open(dataDir: string): TlsRptStore {
    return new TlsRptStore(openDb(dataDir, 'report.db'));
  }

  close(): void {
    this.db.close();
  }

  private upsert?: Database.Statement;

  add(rows: SessionRow[]): void {
    // Prepared once: add runs every COUNT_FLUSH_MS while sessions are made.
    const up = (this.upsert ??= this.db.prepare(
      `INSERT INTO tlsrpt_sessions (${COLUMNS.join(', ')}, count) VALUES (${COLUMNS.map(() => '?').join(', ')}, ?)
       ON CONFLICT (${COLUMNS.join(', ')}) DO UPDATE SET count = count + excluded.count`,
    ));
    const tx = this.db.transaction(() => {
      for (const r of rows) up.run(r.day, r.policyDomain, r.policyType, JSON.stringify(r.policyStrings), JSON.stringify(r.mxHosts), r.result, r.sendingIp, r.receivingMx, r.receivingIp, r.count);
    });
    tx.immediate();
  }

  /** A day's sessions (of one policy domain, or all), in a stable order. */
  sessions(day: string, policyDomain?: string): SessionRow[] {
    const rows = this.db
      .prepare(`SELECT * FROM tlsrpt_sessions WHERE day = ?${policyDomain === undefined ? '' : ' AND policy_domain = ?'} ORDER BY ${COLUMNS.join(', ')}`)
      .all(...(policyDomain === undefined ? [day] : [day, policyDomain])) as Record<(typeof COLUMNS)[number] | 'count', string | number>[];
    return rows.map((r) => ({
      day: String(r.day),
      policyDomain: String(r.policy_domain),
      policyType: String(r.policy_type) as PolicyType,
      policyStrings: JSON.parse(String(r.policy_strings)) as string[],
      mxHosts: JSON.parse(String(r.mx_hosts)) as string[],
      result: String(r.result) as SessionRow['result'],
      sendingIp: String(r.sending_ip),
      receivingMx: String(r.receiving_mx),
      receivingIp: String(r.receiving_ip),
      count: Number(r.count),
    }));
  }
}

export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export class TlsRptCounter {
  private pending = new Map<string, SessionRow>();
  private flushing: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: Pick<TlsRptStore, 'add'>,
    private readonly now: () => number = Date.now,
    private readonly onTrouble: (reason: string | null) => void = () => undefined,
  ) {}

  record(s: TlsSession): void {
    const row: SessionRow = { ...s, day: utcDay(this.now()), count: 1 };
    const key = JSON.stringify([row.day, s.policyDomain, s.policyType, s.policyStrings, s.mxHosts, s.result, s.sendingIp, s.receivingMx, s.receivingIp]);
    const p = this.pending.get(key);
    if (p) p.count++;
    else this.pending.set(key, row);
    this.flushing ??= setTimeout(() => this.flush(), COUNT_FLUSH_MS);
  }

  /** Writes what was counted; kept for the next try when the write fails. */
  flush(): void {
    if (this.flushing) clearTimeout(this.flushing);
    this.flushing = null;
    this.pending = flushBatch(this.pending, (b) => this.store.add([...b.values()]), (into, from) => (into.count += from.count), this.onTrouble);
  }
}
