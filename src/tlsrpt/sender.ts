/**
 * Sending SMTP TLS reports (RFC 8460 §5): after each UTC day, for every policy domain Postern
 * made sessions to, the domain's `_smtp._tls` record is looked up and the day's report sent to
 * each destination it names — `mailto:` as a multipart/report message queued in Postern itself
 * (with `TLS-Required: No`, so the recipient's own MTA-STS or DANE policy cannot hold back the
 * report of its failures; the queue delivers and retries it), `https:` as a POST retried with
 * backoff for 24 hours. What was done is kept in report.db (sends.ts): each report is handled
 * once, retries survive a restart, and `postern report tlsrpt` shows it.
 *
 * Reports go out a few minutes after midnight UTC (a random delay of up to 30 minutes per
 * process, so that collectors are not hit by every sender at once), for the days of the last
 * three not yet handled (a gateway that was down at midnight catches up).
 */
import type { EventSink } from '../observe/maillog.js';
import type { SessionRow } from '../observe/tlsrpt.js';
import { utcDay } from '../observe/tlsrpt.js';
import type { NewMessage } from '../queue/store.js';
import { buildTlsRptReport, reportId, type TlsRptReport } from '../manage/tlsrpt-report.js';
import type { EffectiveTlsRptSettings } from '../manage/tlsrpt-settings.js';
import { tlsRequiredOf } from '../smtp/tls-required.js';
import { domainOfAddress } from '../controls/names.js';
import { composeReportMail, gzipReport } from './message.js';
import type tls from 'node:tls';
import type { WireDnsClient } from '../dns/wire.js';
import { addressResolver } from '../mtasts/fetch.js';
import { nextTryAt, postReport, type PostOutcome } from './post.js';
import { selectTlsRptRecord, type ReportDestination, type TlsRptRecord } from './record.js';
import type { SendRow, TlsRptSendStore } from './sends.js';

const DAY_MS = 86_400_000;
/** Days looked back for reports not yet handled. */
const CATCH_UP_DAYS = 3;

export interface TlsRptSenderDeps {
  /** The day's sessions to a policy domain (in a cluster, every node's summed). */
  sessions: (day: string, domain: string) => Promise<SessionRow[]>;
  sends: TlsRptSendStore;
  /** The domain's `_smtp._tls` record. */
  lookup: (domain: string) => Promise<TlsRptRecord | { kind: 'temporary'; reason: string }>;
  /** Queues a message in Postern; resolves with its MID. */
  accept: (msg: NewMessage) => Promise<number>;
  post: (url: string, gz: Buffer) => Promise<PostOutcome>;
  settings: () => EffectiveTlsRptSettings;
  hostname: string;
  log: EventSink;
  now?: () => number;
  /**
   * In a cluster: whether this node sends the report of a domain's day (one node does); a string
   * names the node that does. Absent: this node.
   */
  claim?: (day: string, domain: string) => Promise<true | string>;
  /** Delay after midnight UTC before the day's reports go out (ms); default random up to 30 min. */
  delayMs?: number;
}

export interface ReportOutcome {
  report: TlsRptReport | null;
  rows: SendRow[];
}

export class TlsRptSender {
  private readonly now: () => number;
  private readonly delayMs: number;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(private readonly d: TlsRptSenderDeps) {
    this.now = d.now ?? Date.now;
    this.delayMs = d.delayMs ?? Math.floor(Math.random() * 30 * 60_000);
  }

  start(intervalMs = 60_000): void {
    this.timer = setInterval(() => void this.tick(), intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One look: the finished days' reports not yet handled, then the retries that are due. */
  tick(): Promise<void> {
    this.running ??= this.work().finally(() => (this.running = null));
    return this.running;
  }

  private async work(): Promise<void> {
    if (!this.d.settings().enabled) return;
    const now = this.now();
    const today = utcDay(now);
    if (now < Date.parse(`${today}T00:00:00Z`) + this.delayMs) return;
    for (const { day, policyDomain } of this.d.sends.unreported(utcDay(now - CATCH_UP_DAYS * DAY_MS), today)) {
      await this.sendReport(day, policyDomain).catch((e: Error) => this.say(day, policyDomain, '', 'failed', `not sent: ${e.message}`));
    }
    await this.retryDue();
  }

  /**
   * Builds and sends the report of `domain` for `day`. `again`: what was done for that day is
   * forgotten first and a new report (new id) is sent (`report tlsrpt --send`).
   */
  async sendReport(day: string, domain: string, o: { again?: boolean; carried?: Pick<SendRow, 'firstTry' | 'attempts'> } = {}): Promise<ReportOutcome> {
    const now = this.now();
    const claim = this.d.claim ? await this.d.claim(day, domain) : true;
    if (claim !== true) {
      const row = this.row(day, domain, '', now, { status: 'other-node', detail: `sent by node ${claim}`, reportId: '' });
      this.d.sends.put(row);
      return { report: null, rows: [row] };
    }
    if (o.again) this.d.sends.clear(day, domain);
    const s = this.d.settings();
    const report = buildTlsRptReport(await this.d.sessions(day, domain), { domain, day, organization: s.organization, contact: s.contact, reportId: reportId(day, domain, now) });
    if (!report) return { report: null, rows: [] };
    const id = report['report-id'];
    const record = await this.d.lookup(domain);
    const first = { firstTry: o.carried?.firstTry ?? now, attempts: (o.carried?.attempts ?? 0) + 1 };
    if (record.kind !== 'record') {
      const row =
        record.kind === 'temporary'
          ? this.retryRow(this.row(day, domain, '', now, { ...first, reportId: id }), now, `the TXT record _smtp._tls.${domain} cannot be looked up: ${record.reason}`)
          : this.row(day, domain, '', now, {
              status: record.kind === 'none' ? 'no-record' : 'invalid-record',
              detail: record.kind === 'none' ? `no TXT record _smtp._tls.${domain} (v=TLSRPTv1): the domain asks for no report` : `the TXT record _smtp._tls.${domain} is not usable: ${record.reason}`,
              reportId: id,
            });
      this.record(row);
      return { report, rows: [row] };
    }
    const gz = gzipReport(report);
    const rows: SendRow[] = [];
    const mailto = record.destinations.filter((x): x is Extract<ReportDestination, { kind: 'mailto' }> => x.kind === 'mailto');
    if (mailto.length > 0) {
      const body = composeReportMail({ report, policyDomain: domain, submitter: domainOfAddress(s.sender), from: s.sender, to: mailto.map((m) => m.address), hostname: this.d.hostname, now });
      const made = await this.queueMail(body, mailto.map((m) => m.address), now);
      for (const m of mailto) rows.push(this.row(day, domain, m.uri, now, { ...first, reportId: id, body, ...made }));
    }
    for (const h of record.destinations) {
      if (h.kind !== 'https') continue;
      rows.push(this.posted(this.row(day, domain, h.uri, now, { ...first, reportId: id, body: gz }), await this.d.post(h.url, gz), now));
    }
    for (const r of rows) this.record(r);
    return { report, rows };
  }

  /** Destinations whose retry time has come: the same bytes again. */
  async retryDue(): Promise<void> {
    const now = this.now();
    for (const r of this.d.sends.due(now)) {
      const again = { ...r, attempts: r.attempts + 1 };
      if (r.destination === '') {
        await this.sendReport(r.day, r.policyDomain, { again: true, carried: r });
      } else if (r.destination.toLowerCase().startsWith('mailto:') && r.body) {
        const to = decodeURIComponent(r.destination.slice(7).split('?')[0]!);
        this.record({ ...again, ...(await this.queueMail(r.body, [to], now)) });
      } else if (r.body) {
        this.record(this.posted(again, await this.d.post(r.destination, r.body), now));
      }
    }
  }

  private async queueMail(body: Buffer, to: string[], now: number): Promise<Pick<SendRow, 'status' | 'detail' | 'nextTry'>> {
    const s = this.d.settings();
    const msg: NewMessage = {
      sender: s.sender,
      body,
      receivedAt: now,
      tlsRequired: tlsRequiredOf(false, body),
      // Made by Postern: a report that cannot be delivered is not bounced back to its sender.
      isBounce: true,
      recipients: to.map((address) => ({ address, domain: domainOfAddress(address) })),
    };
    try {
      const mid = await this.d.accept(msg);
      return { status: 'queued', detail: `queued as MID ${mid}`, nextTry: null };
    } catch (e) {
      return { status: 'retry', detail: `the report could not be queued: ${(e as Error).message}`, nextTry: now + 5 * 60_000 };
    }
  }

  private posted(row: SendRow, out: PostOutcome, now: number): SendRow {
    if (out.ok) return { ...row, status: 'sent', detail: `accepted (HTTP ${out.status})`, nextTry: null };
    if (out.permanent) return { ...row, status: 'failed', detail: out.reason, nextTry: null };
    return this.retryRow(row, now, out.reason);
  }

  private retryRow(row: SendRow, now: number, reason: string): SendRow {
    const next = nextTryAt(row.firstTry, now, row.attempts);
    if (next === null) return { ...row, status: 'failed', detail: `given up after ${row.attempts} attempts in 24 hours: ${reason}`, nextTry: null };
    return { ...row, status: 'retry', detail: `${reason}; next attempt ${new Date(next).toISOString()}`, nextTry: next };
  }

  private row(day: string, policyDomain: string, destination: string, now: number, over: Partial<SendRow>): SendRow {
    return { day, policyDomain, destination, status: 'retry', attempts: 1, firstTry: now, nextTry: null, detail: '', reportId: '', body: null, ...over };
  }

  private record(r: SendRow): void {
    this.d.sends.put(r);
    this.say(r.day, r.policyDomain, r.destination, r.status, r.detail);
  }

  private say(day: string, domain: string, destination: string, status: SendRow['status'], detail: string): void {
    this.d.log.write({ event: 'tlsrpt-report', domain, day, destination, status, detail });
  }
}

/**
 * The network half of the deps, the same for the gateway and `report tlsrpt --send`: the record
 * through Postern's DNS client, reports posted with the delivery trust store.
 */
export function networkDeps(dns: Pick<WireDnsClient, 'txt' | 'addresses'>, secureContext: () => tls.SecureContext): Pick<TlsRptSenderDeps, 'lookup' | 'post'> {
  return {
    lookup: async (domain) => {
      try {
        return selectTlsRptRecord(await dns.txt(`_smtp._tls.${domain}`));
      } catch (e) {
        return { kind: 'temporary', reason: (e as Error).message };
      }
    },
    post: (url, gz) => postReport(url, gz, { secureContext: secureContext(), resolve: addressResolver(dns) }),
  };
}

