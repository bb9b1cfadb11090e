/**
 * Prometheus metrics (`GET /metrics` on the administration listener), with prom-client. Every
 * figure comes from the events delivery and the listener already write (the same facts as the
 * mail log) or from the queue at scrape time. No label takes values without bound: no domain,
 * host or address labels.
 *
 *   postern_queue_recipients{state}            gauge    recipients by state: queued (never tried), deferred; delivered, bounced, deleted (last 7 days)
 *   postern_messages_accepted_total            counter  messages accepted by the listener
 *   postern_accept_seconds                     histogram from the end of DATA to the 250 (the message is on disk)
 *   postern_delivery_attempts_total{outcome}   counter  connection attempts: connected, failed (refused, timed out)
 *   postern_connections_open                   gauge    outgoing SMTP connections open now
 *   postern_tls_total{setting,outcome}         counter  per connection: setting required|preferred|no; outcome tls|failed|clear
 *   postern_messages_done_total{tls}           counter  messages delivered, over encrypted (yes) or clear (no) connections
 *   postern_recipients_final_total{outcome}    counter  recipients bounced (DSN or not), deferred attempts
 *   postern_dns_lookup_seconds{type}           histogram DNS look-ups by delivery: mx, a, aaaa
 *   postern_alerts_total{class,result}         counter  alerts sent or held back
 *   plus prom-client's process metrics (postern_process_*, postern_nodejs_*).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { TlsMode } from '../controls/types.js';
import { isRequired } from '../tls/policy.js';
import type { MailEvent } from './events.js';
import type { EventSink } from './maillog.js';

export class Metrics implements EventSink {
  readonly registry = new Registry();
  private readonly accepted: Counter;
  readonly acceptSeconds: Histogram;
  private readonly attempts: Counter<'outcome'>;
  private readonly open: Gauge;
  private readonly tls: Counter<'setting' | 'outcome'>;
  private readonly done: Counter<'tls'>;
  private readonly final: Counter<'outcome'>;
  readonly dnsSeconds: Histogram<'type'>;
  private readonly alerts: Counter<'class' | 'result'>;
  private readonly conns = new Map<number, { mode: TlsMode; encrypted: boolean }>();

  constructor(queueStates: () => Record<string, number>) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'postern_' });
    new Gauge({
      name: 'postern_queue_recipients',
      help: 'Recipients by state: queued (never tried), deferred (tried, waiting); delivered, bounced, deleted in the last 7 days',
      labelNames: ['state'],
      registers,
      collect() {
        for (const [state, n] of Object.entries(queueStates())) this.set({ state }, n);
      },
    });
    this.accepted = new Counter({ name: 'postern_messages_accepted_total', help: 'Messages accepted by the relay listener', registers });
    this.acceptSeconds = new Histogram({ name: 'postern_accept_seconds', help: 'From the end of DATA to the 250 reply (the message is on disk)', buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers });
    this.attempts = new Counter({ name: 'postern_delivery_attempts_total', help: 'Outgoing connection attempts by outcome: connected or failed', labelNames: ['outcome'], registers });
    this.open = new Gauge({ name: 'postern_connections_open', help: 'Outgoing SMTP connections open now', registers });
    this.tls = new Counter({ name: 'postern_tls_total', help: 'Outgoing connections by TLS setting class (required, preferred, no) and outcome (tls, failed, clear)', labelNames: ['setting', 'outcome'], registers });
    this.done = new Counter({ name: 'postern_messages_done_total', help: 'Messages delivered, by whether their connection was encrypted', labelNames: ['tls'], registers });
    this.final = new Counter({ name: 'postern_recipients_outcome_total', help: 'Recipient outcomes written by delivery: bounced, deferred', labelNames: ['outcome'], registers });
    this.dnsSeconds = new Histogram({ name: 'postern_dns_lookup_seconds', help: 'DNS look-ups made by delivery, by record type', labelNames: ['type'], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10], registers });
    this.alerts = new Counter({ name: 'postern_alerts_total', help: 'Alerts by class, sent or held back', labelNames: ['class', 'result'], registers });
  }

  write(e: MailEvent): void {
    const setting = (m: TlsMode) => (m === 'no' ? 'no' : isRequired(m) ? 'required' : 'preferred');
    switch (e.event) {
      case 'message-accepted':
        this.accepted.inc();
        return;
      case 'connection-failed':
        this.attempts.inc({ outcome: 'failed' });
        return;
      case 'connection': {
        const mode = e.tls ?? 'no';
        this.attempts.inc({ outcome: 'connected' });
        this.conns.set(e.dcid, { mode, encrypted: false });
        // A connection ended without a connection-closed event (a refused EHLO) is let go
        // past a bound far above any concurrency.
        if (this.conns.size > 20_000) this.conns.delete(this.conns.keys().next().value as number);
        this.open.set(this.conns.size);
        if (mode === 'no') this.tls.inc({ setting: 'no', outcome: 'clear' });
        return;
      }
      case 'tls-success': {
        const c = this.conns.get(e.dcid);
        if (!c) return;
        c.encrypted = true;
        this.tls.inc({ setting: setting(c.mode), outcome: 'tls' });
        return;
      }
      case 'tls-failed': {
        const c = this.conns.get(e.dcid);
        if (c) this.tls.inc({ setting: setting(c.mode), outcome: e.outcome === 'clear-text' ? 'clear' : 'failed' });
        return;
      }
      case 'tls-skipped': {
        const c = this.conns.get(e.dcid);
        if (c) this.tls.inc({ setting: setting(c.mode), outcome: 'clear' });
        return;
      }
      case 'message-done':
        this.done.inc({ tls: this.conns.get(e.dcid)?.encrypted ? 'yes' : 'no' });
        return;
      case 'bounced':
        this.final.inc({ outcome: 'bounced' });
        return;
      case 'delayed':
        this.final.inc({ outcome: 'deferred' });
        return;
      case 'connection-closed':
        this.conns.delete(e.dcid);
        this.open.set(this.conns.size);
        return;
      case 'alert-sent':
        this.alerts.inc({ class: e.alertClass, result: 'sent' });
        return;
      case 'alert-suppressed':
        this.alerts.inc({ class: e.alertClass, result: 'held back' });
        return;
      default:
        return;
    }
  }
}
