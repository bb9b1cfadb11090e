/**
 * Alerts (SPEC §9): watches delivery's events and sends alert mail through Postern itself (the
 * message is queued like any other, so an alert never blocks delivery and is retried like
 * mail). Class `tls`: a connection to a destination whose TLS setting is one of the Required
 * ones failed its TLS (when `destconfig setup --required-tls-alert on`, or the destination's
 * entry says `--tls-alert on`; its `off` silences it whatever the switch); class `delivery`: a
 * domain's oldest waiting message is older than a threshold; class `queue`: more recipients
 * wait than a threshold (both checked periodically, see check()); class `cluster`: the node
 * lost the cluster's Redis (clusterLost). An alert names the
 * domain, the MX host and address, the reason and the DCID; the same class for the same domain
 * is not sent again within the interval (alertconfig setup --interval). Each alert sent or not
 * sent is a mail log line.
 *
 * The last-sent times are kept in memory: a restart may send one alert again.
 */
import { randomBytes } from 'node:crypto';
import type { AlertClass, AlertRecipient, Severity } from '../config/alerts.js';
import type { GlobalSettings } from '../config/store.js';
import { TLS_MODE_LABELS, type TlsMode } from '../controls/types.js';
import type { NewMessage } from '../queue/store.js';
import { isRequired } from '../tls/policy.js';
import type { MailEvent } from './events.js';
import type { EventSink } from './maillog.js';
import { escapeText } from './text.js';

export interface AlerterDeps {
  /** Queues a message (durably); resolves with its MID. */
  accept(msg: NewMessage): Promise<number>;
  log: EventSink;
  config(): { globals: GlobalSettings; recipients: AlertRecipient[] };
  /** The destination entry's own answer for `domain` (destconfig --tls-alert); undefined: the global switch. */
  tlsAlertOverride?(domain: string): boolean | undefined;
  hostname: string;
  now?: () => number;
  /** Called once an alert is queued (to wake delivery). */
  queued?: () => void;
}

interface Open {
  domain: string;
  host: string;
  address: string;
  mode: TlsMode;
}

const MAX_OPEN = 20_000;

export class Alerter implements EventSink {
  private readonly open = new Map<number, Open>();
  private readonly lastSent = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly deps: AlerterDeps) {
    this.now = deps.now ?? Date.now;
  }

  write(e: MailEvent): void {
    switch (e.event) {
      case 'connection':
        this.open.set(e.dcid, { domain: e.domain, host: e.host, address: e.address, mode: e.tls ?? 'no' });
        if (this.open.size > MAX_OPEN) this.open.delete(this.open.keys().next().value as number);
        return;
      case 'connection-closed':
        this.open.delete(e.dcid);
        return;
      case 'tls-failed': {
        const c = this.open.get(e.dcid);
        if (!c || e.outcome === 'clear-text' || !isRequired(c.mode)) return;
        if (!(this.deps.tlsAlertOverride?.(c.domain) ?? this.deps.config().globals.requiredTlsAlert)) return;
        const facts = [
          `Destination: ${c.domain}`,
          `TLS setting: ${TLS_MODE_LABELS[c.mode]}`,
          `Host: ${c.host}`,
          `Address: ${c.address}`,
          `DCID: ${e.dcid}`,
          `Reason: ${e.reason}`,
        ];
        this.raise('tls', 'warning', c.domain, `required TLS failed for ${c.domain}: ${c.host} [${c.address}] DCID ${e.dcid}: ${e.reason}`, [
          `A connection to ${c.host} [${c.address}] for ${c.domain}, whose TLS setting is ${TLS_MODE_LABELS[c.mode]}, did not get the TLS it requires, so no mail was sent on it.`,
          '',
          ...facts,
          '',
          `Mail for ${c.domain} stays queued and is retried under its bounce profile; it is never sent in clear text.`,
          `Run "postern destconfig explain ${c.domain}" or "postern tlsverify ${c.domain}" to see why.`,
        ]);
        return;
      }
      default:
        return;
    }
  }

  /**
   * Class queue: more recipients waiting than the threshold. Class delivery: a domain whose
   * oldest message still waiting (tried at least once) is older than the threshold — a
   * destination unreachable, or mail stuck, for that long. Called periodically by the gateway.
   */
  check(facts: (before: number) => { pending: number; waiting: { domain: string; oldest: number; recipients: number; reply: string | null }[] }): void {
    const { globals } = this.deps.config();
    const now = this.now();
    const f = facts(now - globals.alertWaitMinutes * 60_000);
    if (f.pending > globals.alertQueueRecipients) {
      this.raise('queue', 'warning', 'the queue', `${f.pending} recipients are waiting in the queue (threshold ${globals.alertQueueRecipients})`, [
        `${f.pending.toLocaleString('en-US')} recipients are waiting in the queue; the alert threshold is ${globals.alertQueueRecipients.toLocaleString('en-US')} (postern alertconfig setup --queue-recipients).`,
        '',
        'Run "postern queue list" to see which destinations they wait for, and "postern destconfig explain DOMAIN" for one of them.',
      ]);
    }
    for (const w of f.waiting) {
      const minutes = Math.floor((now - w.oldest) / 60_000);
      this.raise('delivery', 'warning', w.domain, `mail for ${w.domain} has waited ${minutes} minutes (${w.recipients} recipients; threshold ${globals.alertWaitMinutes} minutes); last reply: ${w.reply ?? 'none'}`, [
        `Mail for ${w.domain} has been waiting for ${minutes} minutes: ${w.recipients} ${w.recipients === 1 ? 'recipient' : 'recipients'} tried and not yet delivered. The alert threshold is ${globals.alertWaitMinutes} minutes (postern alertconfig setup --wait-minutes).`,
        '',
        `Destination: ${w.domain}`,
        `Oldest message received: ${new Date(w.oldest).toISOString()}`,
        `Last reply: ${w.reply ?? 'none'}`,
        '',
        `Run "postern destconfig explain ${w.domain}" and "postern queue list --domain ${w.domain}" to see why.`,
      ]);
    }
  }

  /**
   * Class cluster: this node lost Redis (SPEC §12). Delivery goes on under the last configuration,
   * each node within its share of every limit, until Redis is back.
   */
  clusterLost(reason: string): void {
    this.raise('cluster', 'critical', 'the cluster', `cluster: ${reason}`, [
      `This node cannot reach the cluster's Redis: ${reason}.`,
      '',
      'Mail is still accepted and queued. Delivery goes on under the last configuration this node saw, each node keeping within an equal share of every limit; configuration changes are refused until Redis is back. The nodes rejoin by themselves when it is.',
      '',
      'Run "postern cluster status" on another node to see which nodes are alive.',
    ]);
  }

  private raise(cls: AlertClass, severity: Severity, domain: string, summary: string, body: string[]): void {
    const { globals, recipients } = this.deps.config();
    const key = `${cls}|${domain}`;
    const now = this.now();
    const last = this.lastSent.get(key);
    const interval = globals.alertIntervalSeconds * 1000;
    if (last !== undefined && now - last < interval) {
      this.deps.log.write({ event: 'alert-suppressed', alertClass: cls, severity, domain, reason: `the same alert was sent ${Math.round((now - last) / 1000)} s ago (at most one every ${globals.alertIntervalSeconds} s): ${summary}` });
      return;
    }
    const to = recipients.filter((r) => r.classes.includes(cls) && r.severities.includes(severity)).map((r) => r.address);
    if (to.length === 0) {
      this.deps.log.write({ event: 'alert-suppressed', alertClass: cls, severity, domain, reason: `no alert recipient for ${cls} ${severity} (postern alertconfig new ADDRESS): ${summary}` });
      return;
    }
    this.lastSent.set(key, now);
    const from = globals.alertFrom ?? `postern@${this.deps.hostname}`;
    const subject = `[Postern ${severity}] ${cls === 'tls' ? `Required TLS failed for ${domain}` : cls === 'queue' ? 'Many recipients wait in the queue' : cls === 'cluster' ? 'This node lost the cluster' : `Mail for ${domain} is waiting`}`;
    const text = [
      `From: Postern <${from}>`,
      `To: ${to.map((t) => `<${t}>`).join(', ')}`,
      `Subject: ${escapeText(subject)}`,
      `Date: ${new Date(now).toUTCString().replace('GMT', '+0000')}`,
      `Message-ID: <alert.${now}.${randomBytes(6).toString('hex')}@${this.deps.hostname}>`,
      'Auto-Submitted: auto-generated',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      // Peers' words (the reason) are escaped: no line of theirs can forge a header or a line.
      ...body.map((l) => escapeText(l)),
      '',
      `Further ${cls} alerts for ${domain} are held back for ${globals.alertIntervalSeconds} seconds.`,
      `-- Postern on ${this.deps.hostname}`,
      '',
    ].join('\r\n');
    const msg: NewMessage = {
      sender: from,
      body: Buffer.from(text, 'utf8'),
      receivedAt: now,
      eightBit: /[^\x00-\x7f]/.test(text),
      // Made by Postern: never bounced itself (no alert about an alert).
      isBounce: true,
      recipients: to.map((address) => ({ address, domain: address.slice(address.lastIndexOf('@') + 1) })),
    };
    this.deps.accept(msg).then(
      (mid) => {
        this.deps.log.write({ event: 'alert-sent', alertClass: cls, severity, domain, mid, to, detail: summary });
        this.deps.queued?.();
      },
      (err: Error) => {
        this.lastSent.delete(key);
        this.deps.log.write({ event: 'alert-suppressed', alertClass: cls, severity, domain, reason: `the alert could not be queued: ${err.message}` });
      },
    );
  }
}
