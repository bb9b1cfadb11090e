/**
 * The delivery engine: picks due recipients from the durable queue, groups them into one queue
 * per destination domain, and runs connections for each destination within its limits
 * (concurrent connections, messages per connection). Outcomes go back to the queue in one
 * transaction per message: delivered, deferred with the bounce profile's next retry time, or
 * bounced with a DSN to the sender.
 *
 * Recipients being delivered are leased in memory only; after a crash they are simply `queued`
 * again, which makes delivery at-least-once with duplicates limited to messages in flight.
 */
import { randomBytes } from 'node:crypto';
import { buildDsn } from '../bounce/dsn.js';
import { exhausted, retryDelaySeconds } from '../bounce/profile.js';
import type { ConfigSnapshot } from '../config/store.js';
import type { DnsClient } from '../dns/resolver.js';
import type { MailLog } from '../observe/maillog.js';
import { IdSequence } from '../queue/ids.js';
import type { NewMessage, QueueStore, QueuedRecipient } from '../queue/store.js';
import { SmtpFailureError, type SmtpTimeouts } from '../smtp/client.js';
import { secureContextFor } from '../tls/trust.js';
import { BrokenTlsMemory } from './broken-tls.js';
import { LimitCounters } from './limits.js';
import { connect, type Connection, type ConnectDeps } from './connect.js';
import { outcomesOf, type RecipientOutcome } from './outcome.js';
import { resolvePolicy, type DeliveryPolicy } from './policy.js';

export interface EngineOptions {
  queue: QueueStore;
  config: () => ConfigSnapshot;
  dns: DnsClient;
  log: MailLog;
  hostname: string;
  smtpPort: number;
  timeouts: SmtpTimeouts;
  now?: () => number;
  random?: () => number;
  /** How often the queue is polled when nothing wakes the engine (ms). */
  pollMs?: number;
  /** Largest number of recipients in one transaction (RFC 5321 requires servers to take 100). */
  maxRecipientsPerTransaction?: number;
}

interface Batch {
  messageId: number;
  recipients: QueuedRecipient[];
}

export class DeliveryEngine {
  private readonly inflight = new Set<number>();
  private readonly destinations = new Map<string, DestinationQueue>();
  private readonly broken = new BrokenTlsMemory();
  readonly limits = new LimitCounters();
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private ticking = false;
  private again = false;
  private readonly dcids: IdSequence;
  readonly now: () => number;

  constructor(readonly o: EngineOptions) {
    this.now = o.now ?? Date.now;
    this.dcids = new IdSequence(o.queue, 'dcid');
  }

  start(): void {
    this.running = true;
    this.wake();
  }

  /** Look at the queue now (a message arrived, or an operator asked). */
  wake(): void {
    if (!this.running) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.tick(), 0);
  }

  /** Stops taking work and waits for connections in progress (at most `graceMs`). */
  async stop(graceMs = 10_000): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    const all = [...this.destinations.values()].map((d) => d.idle());
    await Promise.race([Promise.all(all), new Promise((r) => setTimeout(r, graceMs).unref())]);
    for (const d of this.destinations.values()) d.abort();
  }

  /**
   * Forgets the limit counters (recipients per window) of one destination domain, or of all:
   * what "deliver now" does besides making the queued recipients due (SPEC §5).
   */
  resetLimits(domain?: string): void {
    this.limits.reset(domain);
    this.wake();
  }

  get inFlight(): number {
    return this.inflight.size;
  }

  private tick(): void {
    this.timer = null;
    if (!this.running) return;
    this.ticking = true;
    let full = false;
    try {
      const limit = 2000;
      const rows = this.o.queue.due(this.now(), limit, this.inflight);
      full = rows.length >= limit;
      const byDomain = new Map<string, Map<number, QueuedRecipient[]>>();
      for (const r of rows) {
        this.inflight.add(r.id);
        let msgs = byDomain.get(r.domain);
        if (!msgs) byDomain.set(r.domain, (msgs = new Map()));
        const list = msgs.get(r.messageId) ?? [];
        list.push(r);
        msgs.set(r.messageId, list);
      }
      const max = this.o.maxRecipientsPerTransaction ?? 100;
      for (const [domain, msgs] of byDomain) {
        let dq = this.destinations.get(domain);
        if (!dq) this.destinations.set(domain, (dq = new DestinationQueue(domain, this)));
        for (const [messageId, recipients] of msgs) {
          for (let i = 0; i < recipients.length; i += max) dq.add({ messageId, recipients: recipients.slice(i, i + max) });
        }
        dq.pump();
      }
    } catch (e) {
      process.emitWarning(`delivery engine: ${(e as Error).message}`);
    } finally {
      this.ticking = false;
    }
    if (!this.running) return;
    if (full || this.again) {
      this.again = false;
      this.timer = setTimeout(() => this.tick(), full ? 0 : 0);
      return;
    }
    const next = this.o.queue.nextDue();
    const poll = this.o.pollMs ?? 1000;
    const wait = next === null ? poll : Math.max(0, Math.min(poll, next - this.now()));
    this.timer = setTimeout(() => this.tick(), wait);
  }

  // ---- services for destination queues ------------------------------------------------

  release(batch: Batch): void {
    for (const r of batch.recipients) this.inflight.delete(r.id);
  }

  forget(domain: string): void {
    this.destinations.delete(domain);
  }

  policy(domain: string): DeliveryPolicy {
    return resolvePolicy(this.o.config(), domain);
  }

  connectDeps(policy: DeliveryPolicy): ConnectDeps {
    const snap = this.o.config();
    return {
      dns: this.o.dns,
      log: this.o.log,
      hostname: this.o.hostname,
      smtpPort: this.o.smtpPort,
      timeouts: this.o.timeouts,
      broken: this.broken,
      secureContext: secureContextFor({
        useSystem: policy.globals.useSystemAuthorities,
        custom: snap.authorities.map((a) => a.pem),
        clientKey: snap.clientCertificate?.keyPem,
        clientCert: snap.clientCertificate?.certPem,
      }),
      nextDcid: () => this.dcids.take(),
      now: this.now,
      random: this.o.random,
    };
  }

  /** Writes the outcomes of one batch to the queue and the log, making DSNs where due. */
  record(batch: Batch, outcomes: RecipientOutcome[], policy: DeliveryPolicy, dcid?: number): void {
    const { queue, log } = this.o;
    const info = queue.message(batch.messageId);
    const now = this.now();
    const delivered: number[] = [];
    const deliveredRids: number[] = [];
    const bounced: { r: QueuedRecipient; enhanced: string; reason: string }[] = [];
    const deferred = new Map<number, { ids: number[]; reply: string; rows: QueuedRecipient[]; enhanced: string; reason: string }>();
    batch.recipients.forEach((r, i) => {
      const o = outcomes[i]!;
      if (o.kind === 'delivered') {
        delivered.push(r.id);
        deliveredRids.push(r.rid);
        return;
      }
      if (o.kind === 'hard') {
        bounced.push({ r, enhanced: o.enhanced, reason: o.reason });
        return;
      }
      const done = info ? exhausted(policy.profile, r.attempts + 1, info.receivedAt, now) : null;
      if (done) {
        bounced.push({ r, enhanced: o.enhanced, reason: `${o.reason}; ${done}` });
        return;
      }
      const next = now + retryDelaySeconds(policy.profile, r.attempts + 1) * 1000;
      const key = next;
      const d = deferred.get(key) ?? { ids: [], reply: `${o.enhanced} ${o.reason}`, rows: [], enhanced: o.enhanced, reason: o.reason };
      d.ids.push(r.id);
      d.rows.push(r);
      deferred.set(key, d);
    });

    const dsns: NewMessage[] = [];
    if (bounced.length > 0 && info && info.sender !== '' && !info.isBounce && policy.profile.sendHardBounces) {
      const original = queue.body(batch.messageId) ?? Buffer.alloc(0);
      const to = policy.profile.alternateAddress ?? info.sender;
      dsns.push({
        sender: '',
        receivedAt: now,
        isBounce: true,
        body: buildDsn({
          reportingMta: this.o.hostname,
          to,
          originalMid: batch.messageId,
          arrivalDate: new Date(info.receivedAt),
          now: new Date(now),
          envid: info.envid,
          recipients: bounced.map((b) => ({
            address: b.r.address,
            orcpt: b.r.orcpt,
            action: 'failed',
            status: b.enhanced,
            diagnostic: b.reason,
          })),
          original,
          maxCopy: policy.profile.maxBounceCopy,
          headersOnly: info.ret === 'HDRS',
          boundarySeed: randomBytes(8).toString('hex'),
        }),
        recipients: [{ address: to, domain: domainOf(to) }],
      });
    }
    const deferredList = [...deferred.entries()];
    const firstDelivered = outcomes.find((o) => o.kind === 'delivered');
    const deliveredReply = firstDelivered?.kind === 'delivered' ? firstDelivered.reply : '';
    const made = queue.record({
      delivered: delivered.length ? { ids: delivered, reply: deliveredReply } : undefined,
      failed: bounced.map((b) => ({ id: b.r.id, reply: `${b.enhanced} ${b.reason}` })),
      deferred: deferredList.map(([next, d]) => ({ ids: d.ids, reply: d.reply, nextAttempt: next, countAttempt: true })),
      newMessages: dsns,
    });

    if (deliveredRids.length && dcid !== undefined) {
      log.write({ event: 'message-done', dcid, mid: batch.messageId, rids: deliveredRids, reply: deliveredReply });
    }
    for (const [next, d] of deferredList) {
      for (const r of d.rows) {
        log.write({ event: 'delayed', dcid, mid: batch.messageId, rid: r.rid, to: r.address, enhanced: d.enhanced, reason: d.reason, nextAttempt: new Date(next).toISOString() });
      }
    }
    for (const b of bounced) {
      log.write({ event: 'bounced', dcid, mid: batch.messageId, rid: b.r.rid, to: b.r.address, enhanced: b.enhanced, reason: b.reason });
    }
    made.forEach((mid, i) => log.write({ event: 'dsn-created', mid, original: batch.messageId, to: dsns[i]!.recipients[0]!.address }));
    this.release(batch);
    if (made.length) this.wake();
  }

  get isRunning(): boolean {
    return this.running;
  }
}

function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return (at === -1 ? '' : address.slice(at + 1)).toLowerCase();
}

/** The work for one destination domain and the connections serving it. */
class DestinationQueue {
  private readonly pending: Batch[] = [];
  private active = 0;
  private readonly sessions = new Set<Connection>();
  private idleWaiters: (() => void)[] = [];

  constructor(
    readonly domain: string,
    private readonly engine: DeliveryEngine,
  ) {}

  add(b: Batch): void {
    this.pending.push(b);
  }

  pump(): void {
    if (!this.engine.isRunning) return;
    const policy = this.engine.policy(this.domain);
    while (this.active < policy.entry.settings.concurrency && this.pending.length > this.active) {
      this.active++;
      void this.runConnection(policy).finally(() => {
        this.active--;
        if (this.pending.length > 0 && this.engine.isRunning) this.pump();
        if (this.active === 0) {
          if (this.pending.length === 0) this.engine.forget(this.domain);
          for (const w of this.idleWaiters.splice(0)) w();
        }
      });
    }
  }

  idle(): Promise<void> {
    return this.active === 0 ? Promise.resolve() : new Promise((r) => this.idleWaiters.push(r));
  }

  abort(): void {
    for (const c of this.sessions) c.session.destroy();
  }

  private async runConnection(policy: DeliveryPolicy): Promise<void> {
    let out;
    try {
      out = await connect(policy, this.engine.connectDeps(policy));
    } catch (e) {
      out = { ok: false as const, hard: false, enhanced: '4.4.0', reason: `internal error: ${(e as Error).message}` };
    }
    if (!out.ok) {
      // The destination cannot be reached now: everything waiting for it shares the outcome.
      const failure = out;
      const o: RecipientOutcome = { kind: failure.hard ? 'hard' : 'soft', enhanced: failure.enhanced, reason: failure.reason };
      for (const b of this.pending.splice(0)) this.engine.record(b, b.recipients.map(() => o), policy);
      return;
    }
    const conn = out.conn;
    this.sessions.add(conn);
    const log = this.engine.o.log;
    const remote = `${conn.host.name}[${conn.address}]`;
    let sent = 0;
    try {
      while (this.pending.length > 0 && sent < policy.entry.settings.messagesPerConnection && conn.session.usable) {
        const batch = this.pending.shift()!;
        sent++;
        const info = this.engine.o.queue.message(batch.messageId);
        const body = this.engine.o.queue.body(batch.messageId);
        if (!info || !body) {
          this.engine.release(batch); // deleted by an operator meanwhile
          continue;
        }
        log.write({ event: 'delivery-start', dcid: conn.dcid, mid: batch.messageId, rids: batch.recipients.map((r) => r.rid) });
        let outcomes: RecipientOutcome[];
        try {
          const result = await conn.session.send(
            {
              from: info.sender,
              recipients: batch.recipients.map((r) => ({ address: r.address, notify: r.notify ?? undefined, orcpt: r.orcpt ?? undefined })),
              size: info.size,
              eightBit: info.eightBit,
              smtputf8: info.smtputf8,
              ret: info.ret ?? undefined,
              envid: info.envid ?? undefined,
            },
            body,
          );
          outcomes = outcomesOf(result, batch.recipients.length, remote);
        } catch (e) {
          const reason = e instanceof SmtpFailureError ? `${remote}: ${e.message}` : `${remote}: ${(e as Error).message}`;
          outcomes = batch.recipients.map(() => ({ kind: 'soft' as const, enhanced: '4.4.2', reason }));
        }
        this.engine.record(batch, outcomes, policy, conn.dcid);
      }
    } finally {
      await conn.session.quit();
      this.sessions.delete(conn);
      log.write({ event: 'connection-closed', dcid: conn.dcid });
    }
  }
}
