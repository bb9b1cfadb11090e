/**
 * The delivery engine: leases due recipients from the durable queue, groups them into one queue
 * per destination (recipient domain, and virtual gateway when one is assigned), and runs
 * connections for each destination within its limits: concurrent connections (per domain or
 * per MX IP address, counted system-wide or per virtual gateway, from the moment a connection
 * is being opened), messages per connection, and recipients per sliding window (recipients over
 * the limit wait in memory, which is not a retry). Outcomes go back to the queue in one
 * transaction per message: delivered, deferred with the bounce profile's next retry time, or
 * bounced with a DSN to the sender.
 *
 * Leases are cleared when the gateway starts, so after a crash what was in flight is simply
 * due again: delivery is at-least-once, with duplicates limited to messages in flight.
 */
import { randomBytes } from 'node:crypto';
import { buildDsn, notifyWants } from '../bounce/dsn.js';
import { delayWarningDue, dsnAddressOf, exhausted, retryDelaySeconds } from '../bounce/profile.js';
import { gatewayFor, type VirtualGateway } from '../config/gateways.js';
import type { ConfigSnapshot } from '../config/store.js';
import type { DeliveryDns } from '../dns/client.js';
import type { StsFinding } from '../tls/sources.js';
import type { StsFailureCategory } from '../mtasts/fetch.js';
import type { TlsSession } from '../observe/tlsrpt.js';
import type { EventSink } from '../observe/maillog.js';
import { IdSequence } from '../queue/ids.js';
import type { LeasedRecipient, MessageInfo, NewMessage, OutcomeRecord, QueueStore, QueuedRecipient, TlsRequired } from '../queue/store.js';
import { SmtpFailureError, type SmtpTimeouts } from '../smtp/client.js';
import { secureContextFor } from '../tls/trust.js';
import { BrokenTlsMemory } from './broken-tls.js';
import { LimitCounters, limitKey, type Lease, type SharedLimits } from './limits.js';
import { connect, type Connection, type ConnectDeps } from './connect.js';
import { outcomesOf, type RecipientOutcome } from './outcome.js';
import { resolvePolicy, type DeliveryPolicy } from './policy.js';
import { outboundSender } from '../bounce/tagging.js';
import { QUEUE_STORAGE, type Conditions } from '../observe/conditions.js';
import { domainOfAddress } from '../controls/names.js';
import { deferArrivals, deferDue, destinationKey, noticeDueNow, notTried, type ArrivalHold, type ArrivalView, type DueDeferral } from './arrival.js';

export interface EngineOptions {
  queue: QueueStore;
  /** Where a queue that cannot be read or written is reported (once, not per attempt). */
  conditions?: Conditions;
  config: () => ConfigSnapshot;
  dns: DeliveryDns;
  /** Told of each TLS session attempt and its result (TLS reporting, RFC 8460). */
  tlsrpt?: (s: TlsSession) => void;
  /**
   * The recipient domain's MTA-STS policy in effect (fetched before its first delivery), and the
   * fetch failure that left it without one; absent: never looked at.
   */
  mtaSts?: (domain: string) => Promise<{ finding: StsFinding; failure?: StsFailureCategory }>;
  log: EventSink;
  hostname: string;
  smtpPort: number;
  timeouts: SmtpTimeouts;
  now?: () => number;
  random?: () => number;
  /**
   * Called before due recipients are taken, inside the same transaction: requests other
   * processes left (deliver now) are applied first, so what they made due is not taken under the
   * state they were meant to end (a suspended destination).
   */
  beforeLease?: () => void;
  /** How often the queue is polled when nothing wakes the engine (ms). */
  pollMs?: number;
  /** Largest number of recipients in one transaction (RFC 5321 requires servers to take 100). */
  maxRecipientsPerTransaction?: number;
  /** Most recipients held in memory for delivery at once; the rest wait in the queue. */
  maxInFlight?: number;
  /** Limits shared with the other nodes of a cluster (enforce system); absent: this process only. */
  shared?: SharedLimits;
  /**
   * How long a connection with nothing to send stays open for the next message to the same
   * destination before QUIT (ms); 0 = QUIT at once. Like Postfix's connection cache.
   */
  idleMs?: number;
  /**
   * Connections open (busy or idle) above which a connection with nothing to send QUITs at once
   * instead of waiting `idleMs` for its destination's next message.
   */
  idleKeptBelow?: number;
  /** Delivery connections open at most, over every destination (unbounded when absent). */
  maxConnections?: number;
  /** Called when the suspended destinations change (the listener thread keeps a copy: arrival.ts). */
  onHoldsChanged?: () => void;
}

/** Postfix's smtp_connection_cache_time_limit, the same idea: long enough to bridge queue scans. */
const DEFAULT_IDLE_MS = 2000;

/**
 * The connection cache's bound (Postfix bounds its cache too). With thousands of destinations,
 * most of the sockets open were idle ones waiting for a next message that mostly never came:
 * 900 TLS sockets at once in the internet bench, each holding OpenSSL's buffers.
 */
const DEFAULT_IDLE_KEPT_BELOW = 500;

interface Batch {
  messageId: number;
  recipients: LeasedRecipient[];
}

/**
 * A destination none of whose hosts could be reached at its last try: until `until` (ms) its
 * new work is deferred without a connection attempt, as Postfix treats a dead destination.
 * Held under the configuration it was made with; a change of configuration or "deliver now"
 * forgets it.
 */
interface Suspension {
  until: number;
  since: number;
  enhanced: string;
  reason: string;
  config: ConfigSnapshot;
}

/** Outcomes waiting for the end of this turn of the event loop, to be committed together. */
interface PendingOutcome {
  batch: Batch;
  record: OutcomeRecord;
  /** Logging and release, once committed (with the ids of the DSNs made). */
  after: (made: number[]) => void;
}

/** Wakes closer together than this are served by one look at the queue. */
const MIN_TICK_MS = 20;

export class DeliveryEngine {
  private inflight = 0;
  private readonly destinations = new Map<string, DestinationQueue>();
  /** The destination queues of each domain (one per virtual gateway that sends to it). */
  private readonly byDomain = new Map<string, Set<DestinationQueue>>();
  private readonly broken: BrokenTlsMemory;
  readonly limits = new LimitCounters();
  private timer: NodeJS.Timeout | null = null;
  private timerAt = 0;
  private lastTick = 0;
  private running = false;
  private outcomes: PendingOutcome[] = [];
  /** After stop: outcomes that still arrive (aborted sessions) are not written; see record(). */
  private stopped = false;
  private outcomeFlush: NodeJS.Immediate | null = null;
  private readonly dcids: IdSequence;
  private readonly suspended = new Map<string, Suspension>();
  readonly now: () => number;
  /**
   * The recipient windows' clock: milliseconds that only move forward at the rate time passes
   * (the monotonic clock, from the process's start on the epoch scale), so that a step of the
   * system clock (NTP, a virtual machine resumed) cannot shorten a window while its recipients'
   * receivers count real seconds.
   */
  readonly windowNow: () => number;
  /** Connections started and not yet ended, over every destination. */
  private connections = 0;
  /** Destination queues that wanted a connection while maxConnections were open, in order. */
  private readonly waitingForConnection = new Set<DestinationQueue>();

  /** Remembered broken TLS, shared by a cluster node with the others (cluster/node.ts). */
  get brokenTls(): BrokenTlsMemory {
    return this.broken;
  }

  /** A cluster node counts its limits with the other nodes from the moment it joins. */
  setSharedLimits(shared: SharedLimits | undefined): void {
    this.o.shared = shared;
  }

  constructor(readonly o: EngineOptions) {
    this.now = o.now ?? Date.now;
    this.windowNow = () => performance.timeOrigin + performance.now();
    this.dcids = new IdSequence(o.queue, 'dcid');
    this.broken = new BrokenTlsMemory(o.queue, this.now());
  }

  start(): void {
    this.running = true;
    this.stopped = false;
    this.o.queue.clearLeases();
    this.wake();
  }

  /** Look at the queue soon (a message arrived, or an operator asked). */
  wake(): void {
    this.schedule(Math.max(0, this.lastTick + MIN_TICK_MS - Date.now()));
  }

  private schedule(delayMs: number): void {
    if (!this.running) return;
    const at = Date.now() + delayMs;
    if (this.timer && this.timerAt <= at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.tick(), delayMs);
  }

  /** Stops taking work and waits for connections in progress (at most `graceMs`). */
  async stop(graceMs = 10_000): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.waitingForConnection.clear();
    for (const d of this.destinations.values()) {
      d.stopWaiting();
      d.closeIdle();
    }
    const all = [...this.destinations.values()].map((d) => d.idle());
    await Promise.race([Promise.all(all), new Promise((r) => setTimeout(r, graceMs).unref())]);
    for (const d of this.destinations.values()) d.abort();
    this.flushOutcomes();
    this.stopped = true;
  }

  /**
   * Commits the outcomes gathered in this turn in one transaction. Should that fail, each is
   * tried alone, so one bad record cannot take the others with it; a batch whose outcome cannot
   * be written goes back to the queue without one (it is delivered again: at-least-once).
   */
  private flushOutcomes(): void {
    if (this.outcomeFlush) clearImmediate(this.outcomeFlush);
    this.outcomeFlush = null;
    const list = this.outcomes;
    this.outcomes = [];
    if (list.length === 0) return;
    let made: (number[] | Error)[];
    try {
      made = this.o.queue.recordMany(list.map((p) => p.record));
    } catch {
      made = list.map((p) => {
        try {
          return this.o.queue.record(p.record);
        } catch (e) {
          return e as Error;
        }
      });
    }
    list.forEach((p, i) => {
      const m = made[i]!;
      if (m instanceof Error) {
        this.storageTrouble(`the outcome of MID ${p.batch.messageId} was not recorded (it will be delivered again): ${m.message}`);
        try {
          this.release(p.batch, false);
        } catch {
          // The lease is cleared at the next start.
        }
      } else {
        this.o.conditions?.clear(QUEUE_STORAGE);
        p.after(m);
      }
    });
  }

  private storageTrouble(detail: string): void {
    if (this.o.conditions) this.o.conditions.raise(QUEUE_STORAGE, detail);
    else process.emitWarning(`delivery engine: ${detail}`);
  }

  /**
   * Forgets the limit counters (recipients per window) of one destination domain, or of all:
   * what "deliver now" does besides making the queued recipients due (SPEC §5).
   */
  resetLimits(domain?: string): void {
    this.limits.reset(domain);
    for (const key of [...this.suspended.keys()]) if (domain === undefined || key.startsWith(`${domain}|`)) this.unsuspend(key);
    for (const d of this.destinations.values()) if (domain === undefined || d.domain === domain) d.pump();
    this.wake();
  }

  get inFlight(): number {
    return this.inflight;
  }

  private tick(): void {
    this.timer = null;
    this.lastTick = Date.now();
    if (!this.running) return;
    let full = false;
    try {
      const room = (this.o.maxInFlight ?? 20_000) - this.inflight;
      const limit = Math.min(2000, room);
      const now = this.now();
      const snapshot = this.o.config();
      // A held destination's due recipients are deferred again inside the lease (deferDue): a
      // large backlog for a dead destination is not leased, queued in memory and written twice.
      const holds = new Map<string, ArrivalHold | undefined>();
      const held = (key: string): ArrivalHold | undefined => {
        if (!holds.has(key)) holds.set(key, this.hold(key, snapshot));
        return holds.get(key);
      };
      // Whether anything is held is asked inside the lease, after `beforeLease` (which can end holds).
      const settle = (all: LeasedRecipient[]) => (this.suspended.size > 0 ? deferDue(all, snapshot.gateways, held, now) : { keep: all, deferred: [] });
      // `beforeLease` inside the lease's transaction: `queue delivernow` makes recipients due and
      // leaves its request in one commit, so the lease cannot see the first without the second
      // and defer them again under the suspension the request ends.
      let got: { leased: LeasedRecipient[]; deferred: DueDeferral[]; selected: number } = { leased: [], deferred: [], selected: 0 };
      if (limit > 0) got = this.o.queue.lease(now, limit, settle, this.o.beforeLease);
      else this.o.beforeLease?.();
      const rows = got.leased;
      full = limit > 0 && got.selected >= limit;
      this.inflight += rows.length;
      this.logDelayed(got.deferred);
      const byQueue = new Map<string, { domain: string; gateway?: VirtualGateway; tlsRequired: TlsRequired | null; msgs: Map<number, LeasedRecipient[]> }>();
      for (const r of rows) {
        const gateway = gatewayFor(snapshot.gateways, r.sender);
        // Messages with REQUIRETLS or TLS-Required: No travel on connections of their own.
        const key = destinationKey(r.domain, gateway?.name ?? '', r.tlsRequired);
        let q = byQueue.get(key);
        if (!q) byQueue.set(key, (q = { domain: r.domain, gateway, tlsRequired: r.tlsRequired, msgs: new Map() }));
        const list = q.msgs.get(r.messageId) ?? [];
        list.push(r);
        q.msgs.set(r.messageId, list);
      }
      const max = this.o.maxRecipientsPerTransaction ?? 100;
      for (const [key, q] of byQueue) {
        let dq = this.destinations.get(key);
        if (!dq) {
          this.destinations.set(key, (dq = new DestinationQueue(key, q.domain, q.gateway, q.tlsRequired, this)));
          const same = this.byDomain.get(q.domain) ?? new Set<DestinationQueue>();
          same.add(dq);
          this.byDomain.set(q.domain, same);
        }
        for (const [messageId, recipients] of q.msgs) {
          for (let i = 0; i < recipients.length; i += max) dq.add({ messageId, recipients: recipients.slice(i, i + max) });
        }
        dq.pump();
      }
    } catch (e) {
      // Cleared only by writes that add data (an accepted message, a recorded outcome): a lease
      // can still fit in the WAL of a full disk.
      this.storageTrouble(`the queue cannot be read or written: ${(e as Error).message}`);
    }
    if (full) return this.schedule(MIN_TICK_MS);
    const poll = this.o.pollMs ?? 1000;
    let next: number | null = null;
    try {
      next = this.o.queue.nextDue();
    } catch (e) {
      this.storageTrouble(`the queue cannot be read: ${(e as Error).message}`);
    }
    this.schedule(next === null ? poll : Math.max(MIN_TICK_MS, Math.min(poll, next - this.now())));
  }

  // ---- services for destination queues ------------------------------------------------

  /** A batch leaves memory: recorded (`outcome`), or given back to the queue without one. */
  release(batch: Batch, outcome: boolean): void {
    this.inflight -= batch.recipients.length;
    if (!outcome) this.o.queue.unlease(batch.recipients.map((r) => r.id));
    if (this.inflight < (this.o.maxInFlight ?? 20_000) / 2) this.wake();
  }

  forget(key: string): void {
    const dq = this.destinations.get(key);
    this.destinations.delete(key);
    if (!dq) return;
    const same = this.byDomain.get(dq.domain);
    same?.delete(dq);
    if (same?.size === 0) this.byDomain.delete(dq.domain);
  }

  /** The other destination queues of a domain (other virtual gateways). */
  private othersOf(domain: string, except: DestinationQueue): DestinationQueue[] {
    const same = this.byDomain.get(domain);
    return same && same.size > 1 ? [...same].filter((d) => d !== except) : [];
  }

  /**
   * A destination could not open a connection because its domain's limit is taken: connections
   * of other destination queues of that domain (other virtual gateways) that sit idle give
   * their slot back rather than hold it for the idle time.
   */
  closeIdleOf(domain: string, except: DestinationQueue): void {
    for (const d of this.othersOf(domain, except)) d.closeIdle();
  }

  /** A connection to some destination is being opened (counted until connectionClosed). */
  connectionStarted(): void {
    this.connections++;
  }

  /** A connection to `domain` closed: its slot may be what another queue of the domain waits for. */
  connectionClosed(domain: string, from: DestinationQueue): void {
    this.connections--;
    for (const d of this.othersOf(domain, from)) if (d.hasWork) d.pump();
    // Then the queues that waited for any connection, first come first served; one that gets a
    // connection and still has work asks again at the end of the line (pump → mayConnect).
    for (const d of this.waitingForConnection) {
      if (this.connections >= (this.o.maxConnections ?? Infinity)) break;
      this.waitingForConnection.delete(d);
      if (d.hasWork) d.pump();
    }
  }

  /**
   * Whether `d` may open one more connection under maxConnections; if not, it is remembered and
   * pumped when a connection closes. Connections kept idle elsewhere are let go meanwhile.
   */
  mayConnect(d: DestinationQueue): boolean {
    if (this.connections < (this.o.maxConnections ?? Infinity)) return true;
    // The first to wait lets go what is idle; while any waits, no finished connection idles (idleMs).
    if (this.waitingForConnection.size === 0) for (const other of this.destinations.values()) if (other !== d) other.closeIdle();
    this.waitingForConnection.add(d);
    return false;
  }

  /** How long a connection with nothing to send waits for more (ms); 0 while too many are open or any destination waits for one. */
  get idleMs(): number {
    if (this.connections > (this.o.idleKeptBelow ?? DEFAULT_IDLE_KEPT_BELOW) || this.waitingForConnection.size > 0) return 0;
    return this.o.idleMs ?? DEFAULT_IDLE_MS;
  }

  policy(domain: string): DeliveryPolicy {
    const snapshot = this.o.config();
    return resolvePolicy(snapshot, domain, snapshot.profiles);
  }

  connectDeps(policy: DeliveryPolicy, gateway: VirtualGateway | undefined, addressSlot?: AddressSlot): ConnectDeps {
    const snap = this.o.config();
    return {
      dns: this.o.dns,
      log: this.o.log,
      hostname: gateway?.hostname ?? this.o.hostname,
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
      localAddress: gateway?.address,
      addressSlot,
      tlsrpt: this.o.tlsrpt,
    };
  }

  /**
   * Writes the outcomes of one batch to the queue and the log, with the DSNs they call for, in
   * one transaction. The bounce profile decides: a soft failure is deferred by the doubling
   * retry wait, or becomes a bounce once the retries or the time in queue run out; a failure DSN
   * is made when the profile sends hard bounces; a delay warning (Action: delayed, headers only)
   * when delayWarningDue says so, counted on the recipient in the same transaction. Both go to
   * the profile's alternate address or else the sender, from the null sender, never for a DSN or
   * a null-sender message, and only where the recipient's NOTIFY (RFC 3461) allows that kind.
   */
  record(batch: Batch, outcomes: RecipientOutcome[], policy: DeliveryPolicy, dcid?: number, known?: MessageInfo): void {
    // The queue may be closed already; the recipients stay leased and are due again at the
    // next start, as after a crash.
    if (this.stopped) return;
    const { queue } = this.o;
    const profile = policy.profile;
    // The envelope read with the lease is enough to decide; the message itself only for a DSN.
    const first = batch.recipients[0];
    const info: Pick<MessageInfo, 'sender' | 'receivedAt' | 'isBounce'> | undefined = known ?? (first ? first : queue.message(batch.messageId));
    const now = this.now();
    const dsnTo = info ? dsnAddressOf(profile, info.sender, info.isBounce) : null;
    const delivered: number[] = [];
    const deliveredRids: number[] = [];
    type Notice = { r: QueuedRecipient; enhanced: string; reason: string };
    const bounced: Notice[] = [];
    const warned: Notice[] = [];
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
      const attempts = r.attempts + 1;
      const done = info ? exhausted(profile, attempts, info.receivedAt, now) : null;
      if (done) {
        bounced.push({ r, enhanced: o.enhanced, reason: `${o.reason}; ${done}` });
        return;
      }
      const next = now + retryDelaySeconds(profile, attempts) * 1000;
      const key = next;
      const d = deferred.get(key) ?? { ids: [], reply: `${o.enhanced} ${o.reason}`, rows: [], enhanced: o.enhanced, reason: o.reason };
      d.ids.push(r.id);
      d.rows.push(r);
      deferred.set(key, d);
      if (dsnTo !== null && notifyWants(r.notify, 'DELAY') && delayWarningDue(profile, attempts, r.warningsSent, r.lastWarningAt, now)) {
        warned.push({ r, enhanced: o.enhanced, reason: o.reason });
      }
    });

    const dsns: NewMessage[] = [];
    const failures = dsnTo !== null && profile.sendHardBounces ? bounced.filter((b) => notifyWants(b.r.notify, 'FAILURE')) : [];
    const message = info && dsnTo !== null && (failures.length > 0 || warned.length > 0) ? (known ?? queue.message(batch.messageId)) : undefined;
    if (message && dsnTo !== null) {
      const original = queue.body(batch.messageId) ?? Buffer.alloc(0);
      const notice = (action: 'failed' | 'delayed', list: Notice[]): NewMessage => ({
        sender: '',
        receivedAt: now,
        isBounce: true,
        body: buildDsn({
          reportingMta: this.o.hostname,
          to: dsnTo,
          originalMid: batch.messageId,
          arrivalDate: new Date(message.receivedAt),
          now: new Date(now),
          envid: message.envid,
          recipients: list.map((n) => ({
            address: n.r.address,
            orcpt: n.r.orcpt,
            action,
            status: n.enhanced,
            diagnostic: n.reason,
            willRetryUntil: action === 'delayed' ? new Date(message.receivedAt + profile.maxQueueSeconds * 1000) : undefined,
          })),
          original,
          maxCopy: profile.maxBounceCopy,
          // A delay warning returns the headers only: the message itself is still on its way.
          // A REQUIRETLS message's body never travels back over a path that may be in clear (RFC 8689 §5).
          headersOnly: action === 'delayed' || message.ret === 'HDRS' || message.tlsRequired === 'requiretls',
          boundarySeed: randomBytes(8).toString('hex'),
        }),
        recipients: [{ address: dsnTo, domain: domainOfAddress(dsnTo) }],
      });
      if (failures.length > 0) dsns.push(notice('failed', failures));
      if (warned.length > 0) dsns.push(notice('delayed', warned));
    }
    const deferredList = [...deferred.entries()];
    const firstDelivered = outcomes.find((o) => o.kind === 'delivered');
    const deliveredReply = firstDelivered?.kind === 'delivered' ? firstDelivered.reply : '';
    const record: OutcomeRecord = {
      delivered: delivered.length ? { ids: delivered, reply: deliveredReply } : undefined,
      failed: bounced.map((b) => ({ id: b.r.id, reply: `${b.enhanced} ${b.reason}` })),
      deferred: deferredList.map(([next, d]) => ({ ids: d.ids, reply: d.reply, nextAttempt: next, countAttempt: true })),
      newMessages: dsns,
      warned: warned.length > 0 ? { ids: warned.map((w) => w.r.id), at: now } : undefined,
    };
    this.outcomes.push({ batch, record, after: (made) => this.recorded(batch, made, { dcid, deliveredRids, deliveredReply, deferredList, bounced, dsns }) });
    this.outcomeFlush ??= setImmediate(() => this.flushOutcomes());
  }

  /**
   * No host of a destination could be reached: everything waiting for it is deferred (or
   * bounced where its retries or time ran out, with the DSNs that calls for). Recipients that
   * need nothing but a new retry time go back in one statement per retry time for the whole
   * destination, not one per message; and the destination is suspended for the shortest retry
   * wait, so what becomes due for it meanwhile is deferred without a connection attempt.
   */
  failAll(key: string, batches: Batch[], o: RecipientOutcome, policy: DeliveryPolicy, suspend = true): void {
    if (o.kind === 'delivered' || o.kind === 'hard') {
      for (const b of batches) this.record(b, b.recipients.map(() => o), policy);
      return;
    }
    const profile = policy.profile;
    const now = this.now();
    if (suspend) {
      this.suspended.set(key, { until: now + retryDelaySeconds(profile, 1) * 1000, since: now, enhanced: o.enhanced, reason: o.reason, config: this.o.config() });
      this.o.onHoldsChanged?.();
    }
    const reply = `${o.enhanced} ${o.reason}`;
    const byNext = new Map<number, LeasedRecipient[]>();
    const simple: Batch[] = [];
    for (const b of batches) {
      // A bounce or a delay warning is decided per message, with its DSN (record()).
      const special = b.recipients.some((r) => noticeDueNow(profile, r, now));
      if (special) {
        this.record(b, b.recipients.map(() => o), policy);
        continue;
      }
      simple.push(b);
      for (const r of b.recipients) {
        const next = now + retryDelaySeconds(profile, r.attempts + 1) * 1000;
        const list = byNext.get(next) ?? [];
        list.push(r);
        byNext.set(next, list);
      }
    }
    this.deferTogether(simple, [...byNext].map(([next, rows]) => ({ next, rows })), reply, o);
  }

  /**
   * New work for a suspended destination: it fails as the last try did, without a connection
   * attempt (the reply says so). It counts as an attempt — the try would have failed the same
   * way, and Postfix counts a dead destination's deferrals alike — so the bounce profile's
   * doubling waits keep a large backlog from coming back every minute. False: not suspended.
   */
  deferUntried(key: string, batches: Batch[], policy: DeliveryPolicy): boolean {
    const s = this.suspended.get(key);
    if (!s) return false;
    const now = this.now();
    if (now >= s.until || s.config !== this.o.config()) {
      this.unsuspend(key);
      return false;
    }
    const reason = notTried(s, now);
    this.failAll(key, batches, { kind: 'soft', enhanced: s.enhanced, reason }, policy, false);
    return true;
  }

  /**
   * A message arriving for a suspended destination: its recipients there are stored deferred
   * (one attempt counted, as deferUntried), so they cost the queue no lease and no second write.
   * Those whose bounce profile would end them at this attempt go the normal way (a DSN).
   */
  deferOnArrival(msg: NewMessage): void {
    if (this.suspended.size === 0) return;
    const snapshot = this.o.config();
    deferArrivals(msg, snapshot.gateways, (key) => this.hold(key, snapshot), this.now());
  }

  /** A suspension still in force under this configuration, as arrivals see it. */
  private hold(key: string, snapshot: ConfigSnapshot): ArrivalHold | undefined {
    const s = this.suspended.get(key);
    if (!s || s.config !== snapshot) return undefined;
    return { until: s.until, since: s.since, enhanced: s.enhanced, reason: s.reason, profile: this.policy(key.slice(0, key.indexOf('|'))).profile };
  }

  /** A copy of the suspensions in force, for the listener thread's deferrals on arrival. */
  arrivalView(): ArrivalView {
    const snapshot = this.o.config();
    const now = this.now();
    const holds = new Map<string, ArrivalHold>();
    for (const key of this.suspended.keys()) {
      const h = this.hold(key, snapshot);
      if (h && now < h.until) holds.set(key, h);
    }
    return { holds, gateways: snapshot.gateways };
  }

  private unsuspend(key: string): void {
    if (this.suspended.delete(key)) this.o.onHoldsChanged?.();
  }

  /** A message was stored: what it had deferred on arrival is logged; the queue is looked at for the rest. */
  accepted(mid: number, msg: { recipients: readonly Pick<NewMessage['recipients'][number], 'address' | 'deferred'>[] }): void {
    let due = false;
    msg.recipients.forEach((r, rid) => {
      const d = r.deferred;
      if (d) this.o.log.write({ event: 'delayed', mid, rid, to: r.address, enhanced: d.enhanced, reason: d.reason, nextAttempt: new Date(d.nextAttempt).toISOString() });
      else due = true;
    });
    if (due) this.wake();
  }

  /** A connection to the destination was made: it is not suspended (any more). */
  reachable(key: string): void {
    this.unsuspend(key);
  }

  /** One outcome record for the deferrals of many messages; the log and the release after its commit. */
  private deferTogether(batches: Batch[], groups: { next: number; rows: LeasedRecipient[] }[], reply: string, o: { enhanced: string; reason: string }): void {
    if (batches.length === 0) return;
    const record: OutcomeRecord = { deferred: groups.map((g) => ({ ids: g.rows.map((r) => r.id), reply, nextAttempt: g.next, countAttempt: true })) };
    const all: Batch = { messageId: batches[0]!.messageId, recipients: batches.flatMap((b) => b.recipients) };
    this.outcomes.push({
      batch: all,
      record,
      after: () => {
        this.logDelayed(groups.map((g) => ({ rows: g.rows, nextAttempt: g.next, enhanced: o.enhanced, reason: o.reason })));
        for (const b of batches) this.release(b, true);
      },
    });
    this.outcomeFlush ??= setImmediate(() => this.flushOutcomes());
  }

  /** One `Delayed` line per recipient deferred together (a dead destination's). */
  private logDelayed(groups: { rows: LeasedRecipient[]; nextAttempt: number; enhanced: string; reason: string }[]): void {
    for (const g of groups) {
      const nextAttempt = new Date(g.nextAttempt).toISOString();
      for (const r of g.rows) this.o.log.write({ event: 'delayed', mid: r.messageId, rid: r.rid, to: r.address, enhanced: g.enhanced, reason: g.reason, nextAttempt });
    }
  }

  /** What follows a committed outcome: the mail log, and the batch leaves memory. */
  private recorded(
    batch: Batch,
    made: number[],
    r: {
      dcid: number | undefined;
      deliveredRids: number[];
      deliveredReply: string;
      deferredList: [number, { rows: QueuedRecipient[]; enhanced: string; reason: string }][];
      bounced: { r: QueuedRecipient; enhanced: string; reason: string }[];
      dsns: NewMessage[];
    },
  ): void {
    const log = this.o.log;
    const { dcid, deliveredRids, deliveredReply, deferredList, bounced, dsns } = r;
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
    this.release(batch, true);
    if (made.length) this.wake();
  }

  get isRunning(): boolean {
    return this.running;
  }
}

/** The policy with the entry's DANE and MTA-STS switched off (TLS-Required: No). */
function withoutRecipientPolicies(p: DeliveryPolicy): DeliveryPolicy {
  return { ...p, entry: { ...p.entry, settings: { ...p.entry.settings, dane: 'off', mtaSts: false } } };
}

/** A connection slot per MX IP address (limits applied "per each mail exchanger IP"). */
export interface AddressSlot {
  take(address: string): boolean | Promise<boolean>;
  give(address: string): void;
}

/** The work for one destination (domain, gateway) and the connections serving it. */
class DestinationQueue {
  private readonly pending: Batch[] = [];
  private active = 0;
  /** Connections open with nothing to send: called with true when there is work, false to QUIT. */
  private idleConns: ((work: boolean) => void)[] = [];
  private readonly sessions = new Set<Connection>();
  private idleWaiters: (() => void)[] = [];
  private windowTimer: NodeJS.Timeout | null = null;
  /** Until when (ms) no new connection is tried: every slot was taken at the last try. */
  private busyUntil = 0;

  constructor(
    readonly key: string,
    readonly domain: string,
    readonly gateway: VirtualGateway | undefined,
    /** What the messages of this queue asked of TLS (RFC 8689); null: nothing. */
    readonly tlsRequired: TlsRequired | null,
    private readonly engine: DeliveryEngine,
  ) {}

  add(b: Batch): void {
    this.pending.push(b);
  }

  get hasWork(): boolean {
    return this.pending.length > 0;
  }

  /** Idle connections QUIT now (stop, or another queue of the domain needs the slot). */
  closeIdle(): void {
    for (const w of this.idleConns.splice(0)) w(false);
  }

  /** Waits for work on an open connection; false: QUIT (idle time over, stop, or asked to). */
  private waitForWork(): Promise<boolean> {
    const ms = this.engine.idleMs;
    if (ms <= 0 || !this.engine.isRunning) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(false), ms);
      const done = (work: boolean): void => {
        clearTimeout(timer);
        const i = this.idleConns.indexOf(done);
        if (i !== -1) this.idleConns.splice(i, 1);
        resolve(work);
      };
      this.idleConns.push(done);
    });
  }

  /** The gateway part of limit keys: only with "per virtual gateway" enforcement. */
  private scope(policy: DeliveryPolicy): string | undefined {
    return policy.entry.settings.enforce === 'virtual-gateway' ? (this.gateway?.name ?? '') : undefined;
  }

  /** Opens connections while there is work and the limits allow. */
  pump(): void {
    if (!this.engine.isRunning) return;
    const policy = this.engine.policy(this.domain);
    if (this.active === 0 && this.pending.length > 0 && this.engine.deferUntried(this.key, this.pending, policy)) {
      this.pending.length = 0;
      if (this.idleConns.length === 0 && !this.windowTimer) this.engine.forget(this.key);
      return;
    }
    const s = policy.entry.settings;
    const scope = this.scope(policy);
    const perIp = s.limitPer === 'mx-ip';
    const domainKey = limitKey(this.domain, { gateway: scope });
    if (s.recipientLimit && !perIp && this.pending.length > 0) {
      const { recipients, minutes } = s.recipientLimit;
      const now = this.engine.windowNow();
      if (this.engine.limits.recipientsAvailable(domainKey, now, recipients, minutes) === 0) {
        this.waitForWindow(this.engine.limits.recipientsFreeAt(domainKey, now, recipients, minutes) - now);
        return;
      }
    }
    // Connections already open and idle take the work first.
    let idleBusy = 0;
    while (this.idleConns.length > 0 && idleBusy < this.pending.length) {
      this.idleConns.shift()!(true);
      idleBusy++;
    }
    // Per MX IP, each address has its own cap; a destination never opens more connections than
    // it has batches waiting, nor more than the cap times a generous number of addresses.
    const cap = perIp ? s.concurrency * 16 : s.concurrency;
    // Every slot was taken a moment ago (the cluster's, or every MX address's): new work waits for
    // the timer set then instead of asking again for each batch that arrives.
    const now = this.engine.now();
    if (now < this.busyUntil) return this.waitForWindow(this.busyUntil - now);
    while (this.active < cap && this.pending.length > this.active) {
      if (!this.engine.mayConnect(this)) break;
      if (!perIp && !this.engine.limits.tryOpen(domainKey, s.concurrency)) {
        this.engine.closeIdleOf(this.domain, this);
        break;
      }
      this.active++;
      void this.runConnection(policy, perIp ? undefined : domainKey).then((busy) => {
        this.active--;
        // All MX addresses at their limit: look again shortly rather than spin.
        if (busy) {
          this.engine.closeIdleOf(this.domain, this);
          this.busyUntil = this.engine.now() + 100;
          this.waitForWindow(100);
        }
        // (A connection that ended on a full recipient window set the timer: it pumps when due.)
        else if (this.pending.length > 0 && this.engine.isRunning && !this.windowTimer) this.pump();
        if (this.active === 0) {
          if (this.pending.length === 0 && !this.windowTimer) this.engine.forget(this.key);
          for (const w of this.idleWaiters.splice(0)) w();
        }
      });
    }
  }

  /** A batch goes back to the head of the queue, not as a retry: its connection was closed. */
  private retryElsewhere(batch: Batch, dcid: number, why: string): void {
    this.pending.unshift(batch);
    this.engine.o.log.write({ event: 'connection-reused-closed', dcid, mid: batch.messageId, detail: why });
  }

  private waitForWindow(ms: number): void {
    if (this.windowTimer) return;
    this.windowTimer = setTimeout(() => {
      this.windowTimer = null;
      this.pump();
    }, Math.max(50, ms));
  }

  /** At stop: batches waiting for a recipient window go back to the queue. */
  stopWaiting(): void {
    if (this.windowTimer) clearTimeout(this.windowTimer);
    this.windowTimer = null;
    if (this.active === 0) for (const b of this.pending.splice(0)) this.engine.release(b, false);
  }

  idle(): Promise<void> {
    return this.active === 0 ? Promise.resolve() : new Promise((r) => this.idleWaiters.push(r));
  }

  abort(): void {
    for (const c of this.sessions) {
      // Whatever this connection was sending stays queued (no outcome is recorded for it).
      this.engine.o.log.write({ event: 'delivery-cut', dcid: c.dcid, domain: this.domain, detail: 'the gateway is stopping; messages in progress stay queued and are delivered after the next start' });
      c.session.destroy();
    }
  }

  /** One connection's life; resolves true when it could not start because every MX address is busy. */
  private async runConnection(policy: DeliveryPolicy, domainKey: string | undefined): Promise<boolean> {
    const s = policy.entry.settings;
    const scope = this.scope(policy);
    const limits = this.engine.limits;
    const held: string[] = [];
    // With "system" enforcement in a cluster, each slot is also a lease among every node's.
    const shared = s.enforce === 'system' ? this.engine.o.shared : undefined;
    const leases = new Map<string, Lease>();
    this.engine.connectionStarted(); // paired with connectionClosed in the finally below
    const slot: AddressSlot | undefined = domainKey
      ? undefined
      : {
          take: async (address) => {
            const k = limitKey(this.domain, { mxIp: address, gateway: scope });
            if (!limits.tryOpen(k, s.concurrency)) return false;
            if (shared) {
              const lease = await shared.acquire(k, s.concurrency);
              if (!lease) {
                limits.close(k);
                return false;
              }
              leases.set(k, lease);
            }
            held.push(k);
            return true;
          },
          give: (address) => {
            const k = limitKey(this.domain, { mxIp: address, gateway: scope });
            const i = held.indexOf(k);
            if (i !== -1) {
              held.splice(i, 1);
              limits.close(k);
              leases.get(k)?.release();
              leases.delete(k);
            }
          },
        };
    try {
      if (domainKey && shared) {
        const lease = await shared.acquire(domainKey, s.concurrency);
        if (!lease) return true; // every slot of the cluster is taken: look again shortly
        leases.set(domainKey, lease);
      }
      // A slot taken back while Redis is away (this node above its share): close after the message.
      const revoked = () => [...leases.values()].some((l) => l.revoked);
      return await this.deliverOnConnection(policy, slot, revoked);
    } catch (e) {
      process.emitWarning(`delivery to ${this.domain}: ${(e as Error).message}`);
      return false;
    } finally {
      if (domainKey) limits.close(domainKey);
      for (const k of held.splice(0)) limits.close(k);
      for (const l of leases.values()) l.release();
      this.engine.connectionClosed(this.domain, this);
    }
  }

  private async deliverOnConnection(tablePolicy: DeliveryPolicy, slot: AddressSlot | undefined, revoked: () => boolean): Promise<boolean> {
    let out;
    const requireTls = this.tlsRequired === 'requiretls';
    // TLS-Required: No: the recipient domain's MTA-STS and DANE policies are not applied; the
    // table's own TLS setting is (RFC 8689 §4.2.1).
    const policy = this.tlsRequired === 'no' ? withoutRecipientPolicies(tablePolicy) : tablePolicy;
    try {
      if (this.tlsRequired === 'no' && (tablePolicy.entry.settings.mtaSts || tablePolicy.entry.settings.dane !== 'off')) {
        this.engine.o.log.write({ event: 'tls-policy', domain: this.domain, host: '*', detail: "TLS-Required: No: the domain's MTA-STS and DANE policies are not applied to these messages; the table's TLS setting is" });
      }
      // MTA-STS: the domain's first delivery waits for its policy (bounded by the fetch timeout).
      const sts = policy.entry.settings.mtaSts && this.engine.o.mtaSts ? await this.engine.o.mtaSts(this.domain) : null;
      out = await connect(policy, { ...this.engine.connectDeps(policy, this.gateway, slot), sts: sts?.finding ?? null, stsFailure: sts?.failure, requireTls });
    } catch (e) {
      out = { ok: false as const, hard: false, enhanced: '4.4.0', reason: `internal error: ${(e as Error).message}` };
    }
    if (!out.ok) {
      if (out.busy) return true; // every MX address is at its connection limit
      // The destination cannot be reached now: everything waiting for it shares the outcome.
      const failure = out;
      const o: RecipientOutcome = { kind: failure.hard ? 'hard' : 'soft', enhanced: failure.enhanced, reason: failure.reason };
      this.engine.failAll(this.key, this.pending.splice(0), o, policy);
      return false;
    }
    const conn = out.conn;
    this.engine.reachable(this.key);
    this.sessions.add(conn);
    const s = policy.entry.settings;
    const limits = this.engine.limits;
    const windowKey = limitKey(this.domain, { mxIp: s.limitPer === 'mx-ip' ? conn.address : undefined, gateway: this.scope(policy) });
    const log = this.engine.o.log;
    const remote = `${conn.host.name}[${conn.address}]`;
    let sent = 0;
    // A connection is reused only under the configuration it was opened with.
    const opened = this.engine.o.config();
    try {
      while (sent < s.messagesPerConnection && conn.session.usable && this.engine.isRunning) {
        if (revoked()) {
          log.write({ event: 'connection-over-share', dcid: conn.dcid, domain: this.domain });
          break;
        }
        if (this.pending.length === 0) {
          if (!(await this.waitForWork()) || this.engine.o.config() !== opened) break;
          continue;
        }
        let batch = this.pending.shift()!;
        /** Recipients counted in the local window for this transaction, and when. */
        let counted: { at: number; n: number } | null = null;
        if (s.recipientLimit) {
          const now = this.engine.windowNow();
          const { recipients: limit, minutes } = s.recipientLimit;
          const shared = s.enforce === 'system' ? this.engine.o.shared : undefined;
          let available: number;
          let waitMs = 0;
          if (shared) {
            // The cluster's one window: what it grants is taken at once.
            const r = await shared.takeRecipients(windowKey, limit, minutes, batch.recipients.length);
            available = r.granted;
            waitMs = r.waitMs;
          } else {
            available = limits.recipientsAvailable(windowKey, now, limit, minutes);
            waitMs = available === 0 ? limits.recipientsFreeAt(windowKey, now, limit, minutes) - now : 0;
            if (available > 0) {
              counted = { at: now, n: Math.min(available, batch.recipients.length) };
              limits.countRecipients(windowKey, now, counted.n);
            }
          }
          if (available === 0) {
            this.pending.unshift(batch);
            this.waitForWindow(waitMs);
            break;
          }
          if (batch.recipients.length > available) {
            // Send what the window allows; the rest waits at the head of the queue.
            this.pending.unshift({ messageId: batch.messageId, recipients: batch.recipients.slice(available) });
            batch = { messageId: batch.messageId, recipients: batch.recipients.slice(0, available) };
          }
        }
        sent++;
        // An operator may have bounced or deleted some recipients while they waited here.
        const { live, message: info, body } = this.engine.o.queue.sendable(batch.messageId, batch.recipients.map((r) => r.id));
        if (live.size < batch.recipients.length) {
          this.engine.release({ messageId: batch.messageId, recipients: batch.recipients.filter((r) => !live.has(r.id)) }, true);
          batch = { messageId: batch.messageId, recipients: batch.recipients.filter((r) => live.has(r.id)) };
        }
        if (!info || !body) {
          if (batch.recipients.length) this.engine.release(batch, true);
          continue;
        }
        const from = outboundSender(info, s.bounceVerification, this.engine.o.config().bvKeys ?? [], this.engine.now());
        log.write({ event: 'delivery-start', dcid: conn.dcid, mid: batch.messageId, rids: batch.recipients.map((r) => r.rid), ...(from !== info.sender ? { sender: from } : {}), ...(requireTls ? { requireTls } : {}) });
        let outcomes: RecipientOutcome[];
        try {
          const reused = sent > 1;
          const result = await conn.session.send(
            {
              from,
              recipients: batch.recipients.map((r) => ({ address: r.address, notify: r.notify ?? undefined, orcpt: r.orcpt ?? undefined })),
              size: info.size,
              eightBit: info.eightBit,
              smtputf8: info.smtputf8,
              ret: info.ret ?? undefined,
              envid: info.envid ?? undefined,
              requireTls,
            },
            body,
          );
          if (reused && result.kind === 'message-refused' && result.step === 'MAIL FROM' && result.reply.code === 421) {
            this.retryElsewhere(batch, conn.dcid, '421 at MAIL FROM');
            break;
          }
          outcomes = outcomesOf(result, batch.recipients.length, remote);
        } catch (e) {
          // A server may drop a connection that sat idle: if a reused connection is gone before
          // the reply to MAIL FROM, nothing was sent; the batch goes on a new connection.
          if (sent > 1 && e instanceof SmtpFailureError && e.failure.kind === 'closed' && e.failure.step === 'MAIL FROM') {
            this.retryElsewhere(batch, conn.dcid, e.message);
            break;
          }
          const reason = e instanceof SmtpFailureError ? `${remote}: ${e.message}` : `${remote}: ${(e as Error).message}`;
          outcomes = batch.recipients.map(() => ({ kind: 'soft' as const, enhanced: '4.4.2', reason }));
        }
        if (counted) limits.moveRecipients(windowKey, counted.at, this.engine.windowNow(), counted.n);
        this.engine.record(batch, outcomes, policy, conn.dcid, info);
      }
    } finally {
      await conn.session.quit();
      slot?.give(conn.address);
      this.sessions.delete(conn);
      log.write({ event: 'connection-closed', dcid: conn.dcid });
    }
    return false;
  }
}
