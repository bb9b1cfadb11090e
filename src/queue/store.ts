/**
 * The durable queue in `<data-dir>/queue.db` (SQLite, WAL): messages, their recipients and each
 * recipient's state. A message is accepted (250 after DATA) only once `accept` has resolved,
 * i.e. after its commit reached stable storage. Nothing is held only in memory: a crash at any
 * moment leaves every accepted recipient either final or `queued`.
 *
 * Durability without blocking: the connection commits with synchronous NORMAL (the commit is
 * written to the WAL file but not fsynced, so it survives a process crash), and `accept` then
 * waits for an fsync of the WAL file run on libuv's thread pool, so the event loop keeps
 * serving other sessions and deliveries while the disk flushes. An fsync started after a commit
 * covers it: either its frames are still in the WAL, or a checkpoint already copied them into
 * the database file, which a NORMAL checkpoint syncs (after syncing the WAL) before the WAL is
 * reused. Concurrent SMTP sessions share commits and fsyncs (group commit): `accept` calls in
 * the same turn of the event loop are one transaction, and every commit made while an fsync
 * runs is covered by the next one. The gateway's listener thread accepts through a connection
 * of its own (smtp/listener-worker.ts); every write transaction takes the write lock at BEGIN
 * (IMMEDIATE), so that neither fails for a snapshot the other's commit made stale.
 *
 * Delivery outcomes are not fsynced on their own (the next accept's fsync or checkpoint covers
 * them): a power loss can at worst undo the last outcomes, and a recipient that is `queued`
 * again is delivered again (at-least-once), never lost. Operator actions from the CLI sync
 * before they return.
 */
import type Database from 'better-sqlite3';
import type { WriteLock } from './write-lock.js';
import { closeSync, fsync, fsyncSync, openSync } from 'node:fs';
import type { Db } from '../config/db.js';
import { openDb } from '../config/db.js';

export type RecipientState = 'queued' | 'delivered' | 'bounced' | 'deleted';

export interface NewRecipient {
  address: string;
  domain: string;
  notify?: string;
  orcpt?: string;
  /**
   * Deferred on arrival (its destination is suspended: no host could be reached at the last try):
   * stored with one attempt counted, this reply (`enhanced reason`), and this next attempt (ms).
   */
  deferred?: { nextAttempt: number; enhanced: string; reason: string };
}

export interface NewMessage {
  sender: string;
  body: Buffer;
  receivedAt: number;
  eightBit?: boolean;
  smtputf8?: boolean;
  ret?: string;
  envid?: string;
  client?: string;
  /** A DSN made by Postern: never bounced itself. */
  isBounce?: boolean;
  /** Came in on the public listener (for the organisation's own domains): never tagged. */
  inbound?: boolean;
  /** RFC 8689: `requiretls` (MAIL FROM … REQUIRETLS) or `no` (header `TLS-Required: No`). */
  tlsRequired?: TlsRequired;
  recipients: NewRecipient[];
}

export interface QueuedRecipient {
  id: number;
  messageId: number;
  rid: number;
  address: string;
  domain: string;
  state: RecipientState;
  attempts: number;
  nextAttempt: number;
  lastReply: string | null;
  notify: string | null;
  orcpt: string | null;
  /** Delay warnings sent for this recipient (bounce profile), and when the last one was made (ms). */
  warningsSent: number;
  lastWarningAt: number | null;
}

/** A recipient taken for delivery, with its message's envelope sender. */
export interface LeasedRecipient extends QueuedRecipient {
  sender: string;
  tlsRequired: TlsRequired | null;
  /** The message's arrival (ms) and whether it is a DSN: what a deferral decides with, read with the lease. */
  receivedAt: number;
  isBounce: boolean;
}

/**
 * What the sender asked of TLS (RFC 8689): `requiretls`, only over verified TLS to a server that
 * promises the same; `no`, recipient-side policies (MTA-STS, DANE) do not hold it back.
 */
export type TlsRequired = 'requiretls' | 'no';

function tlsRequiredOf(v: string | null): TlsRequired | null {
  return v === 'requiretls' || v === 'no' ? v : null;
}

export interface MessageInfo {
  id: number;
  sender: string;
  receivedAt: number;
  size: number;
  eightBit: boolean;
  smtputf8: boolean;
  ret: string | null;
  envid: string | null;
  client: string | null;
  isBounce: boolean;
  inbound: boolean;
  tlsRequired: TlsRequired | null;
}

/** How `queue list` names a recipient's state: queued (not yet tried), deferred (tried, waiting), or final. */
export type ListedState = 'queued' | 'deferred' | 'delivered' | 'bounced' | 'deleted';

export interface QueueFilter {
  domain?: string;
  /** `pending` = queued and deferred (the default). */
  state?: ListedState | 'pending';
  /** At most this many (the first by MID and RID). */
  limit?: number;
}

export interface ListedRecipient {
  mid: number;
  rid: number;
  from: string;
  to: string;
  domain: string;
  state: ListedState;
  attempts: number;
  nextAttempt: number | null;
  lastReply: string | null;
  finishedAt: number | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  sender TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  size INTEGER NOT NULL,
  eight_bit INTEGER NOT NULL DEFAULT 0,
  smtputf8 INTEGER NOT NULL DEFAULT 0,
  ret TEXT, envid TEXT, client TEXT,
  is_bounce INTEGER NOT NULL DEFAULT 0,
  body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS recipients (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  rid INTEGER NOT NULL,
  address TEXT NOT NULL,
  domain TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'queued',
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt INTEGER NOT NULL,
  last_reply TEXT,
  notify TEXT, orcpt TEXT
);
CREATE INDEX IF NOT EXISTS recipients_message ON recipients(message_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
-- Recipients that reached a final state, kept for a while after their message left the queue
-- so that an operator can still see what happened to each one.
CREATE TABLE IF NOT EXISTS history (
  recipient_id INTEGER PRIMARY KEY,
  message_id INTEGER NOT NULL,
  rid INTEGER NOT NULL,
  sender TEXT NOT NULL,
  address TEXT NOT NULL,
  domain TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  reply TEXT,
  finished_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS history_finished ON history(finished_at);
`;

/**
 * Operator actions (src/queue/control.ts): requests the CLI leaves for the running gateway,
 * which reads and deletes them when it polls (`postern queue delivernow`: reset the destination
 * counters), and facts the gateway leaves for the CLI (the host name its DSNs report).
 */
const INSERT_MESSAGE = `INSERT INTO messages (sender, received_at, size, eight_bit, smtputf8, ret, envid, client, is_bounce, inbound, tls_required, body)
  VALUES (@sender, @receivedAt, @size, @eightBit, @smtputf8, @ret, @envid, @client, @isBounce, @inbound, @tlsRequired, @body)`;
const INSERT_RECIPIENT = `INSERT INTO recipients (message_id, rid, address, domain, next_attempt, notify, orcpt) VALUES (?, ?, ?, ?, ?, ?, ?)`;
const INSERT_DEFERRED_RECIPIENT = `INSERT INTO recipients (message_id, rid, address, domain, next_attempt, notify, orcpt, attempts, last_reply) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)`;
const LEASE_SELECT = `SELECT r.*, m.sender, m.tls_required, m.received_at, m.is_bounce FROM recipients r JOIN messages m ON m.id = r.message_id
  WHERE r.state = 'queued' AND r.leased = 0 AND r.next_attempt <= ? ORDER BY r.next_attempt, r.id LIMIT ?`;

/**
 * A list of recipient ids bound as one JSON parameter: a whole lease or a destination's deferral
 * is one statement (one B-tree pass) instead of one per recipient.
 */
const ID_LIST = '(SELECT value FROM json_each(?))';

/** Recipient ids made due per transaction by `queue delivernow` (about 0.1 s of writing each). */
const DELIVER_NOW_SLICE = 20_000;
const idList = (ids: readonly number[]): string => JSON.stringify(ids);

const CONTROL_SCHEMA = `
CREATE TABLE IF NOT EXISTS queue_control (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  action TEXT NOT NULL,
  domain TEXT,
  requested_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS broken_tls (address TEXT NOT NULL, port INTEGER NOT NULL, until INTEGER NOT NULL, PRIMARY KEY (address, port));
CREATE TABLE IF NOT EXISTS gateway_facts (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

/** Outcomes to record for some recipients (see QueueStore.record). */
export interface OutcomeRecord {
  delivered?: { ids: number[]; reply: string };
  failed?: { id: number; reply: string }[];
  failedState?: 'bounced' | 'deleted';
  deferred?: { ids: number[]; reply: string; nextAttempt: number; countAttempt: boolean }[];
  newMessages?: NewMessage[];
  /** Recipients a delay warning was made for (one of `newMessages`), and when. */
  warned?: { ids: number[]; at: number };
}

/** A request the CLI left for the running gateway. `domain` null = every destination. */
export interface QueueControl {
  action: 'delivernow';
  domain: string | null;
  requestedAt: number;
}

/** Which queued recipients an operator action applies to; both empty = the whole queue. */
export interface QueuedSelection {
  messageId?: number;
  domain?: string;
}

/**
 * Per-recipient delay-warning state (bounce profiles, SPEC §7), added to queues created by
 * earlier releases: each column only when PRAGMA table_info shows it missing.
 */
function addWarningColumns(db: Db): void {
  const columns = new Set((db.prepare('PRAGMA table_info(recipients)').all() as { name: string }[]).map((c) => c.name));
  if (!columns.has('warnings_sent')) db.exec('ALTER TABLE recipients ADD COLUMN warnings_sent INTEGER NOT NULL DEFAULT 0');
  if (!columns.has('last_warning_at')) db.exec('ALTER TABLE recipients ADD COLUMN last_warning_at INTEGER');
  // Messages from the public listener (bounce verification, SPEC §8), likewise added.
  const messageColumns = new Set((db.prepare('PRAGMA table_info(messages)').all() as { name: string }[]).map((c) => c.name));
  if (!messageColumns.has('inbound')) db.exec('ALTER TABLE messages ADD COLUMN inbound INTEGER NOT NULL DEFAULT 0');
  // What the sender asked of TLS (RFC 8689), likewise added.
  if (!messageColumns.has('tls_required')) db.exec('ALTER TABLE messages ADD COLUMN tls_required TEXT');
}

/** A row of the history table (final outcomes). */
interface HistoryRow {
  message_id: number;
  rid: number;
  sender: string;
  address: string;
  domain: string;
  state: ListedState;
  attempts: number;
  reply: string | null;
  finished_at: number;
}

const fromHistory = (r: HistoryRow): ListedRecipient => ({
  mid: r.message_id,
  rid: r.rid,
  from: r.sender,
  to: r.address,
  domain: r.domain,
  state: r.state,
  attempts: r.attempts,
  nextAttempt: null,
  lastReply: r.reply,
  finishedAt: r.finished_at,
});

interface RecipientRow {
  id: number;
  message_id: number;
  rid: number;
  address: string;
  domain: string;
  state: RecipientState;
  attempts: number;
  next_attempt: number;
  last_reply: string | null;
  notify: string | null;
  orcpt: string | null;
  warnings_sent: number;
  last_warning_at: number | null;
}

const toRecipient = (r: RecipientRow): QueuedRecipient => ({
  id: r.id,
  messageId: r.message_id,
  rid: r.rid,
  address: r.address,
  domain: r.domain,
  state: r.state,
  attempts: r.attempts,
  nextAttempt: r.next_attempt,
  lastReply: r.last_reply,
  notify: r.notify,
  orcpt: r.orcpt,
  warningsSent: r.warnings_sent,
  lastWarningAt: r.last_warning_at,
});

const MESSAGE_INFO_COLUMNS = 'id, sender, received_at, size, eight_bit, smtputf8, ret, envid, client, is_bounce, inbound, tls_required';

interface MessageInfoRow {
  id: number;
  sender: string;
  received_at: number;
  size: number;
  eight_bit: number;
  smtputf8: number;
  ret: string | null;
  envid: string | null;
  client: string | null;
  is_bounce: number;
  inbound: number;
  tls_required: string | null;
}

const toMessageInfo = (r: MessageInfoRow): MessageInfo => ({
  id: r.id,
  sender: r.sender,
  receivedAt: r.received_at,
  size: r.size,
  eightBit: r.eight_bit === 1,
  smtputf8: r.smtputf8 === 1,
  ret: r.ret,
  envid: r.envid,
  client: r.client,
  isBounce: r.is_bounce === 1,
  inbound: r.inbound === 1,
  tlsRequired: tlsRequiredOf(r.tls_required),
});

type LeaseRow = RecipientRow & { sender: string; tls_required: string | null; received_at: number; is_bounce: number };

const toLeased = (r: LeaseRow): LeasedRecipient => ({
  ...toRecipient(r),
  sender: r.sender,
  tlsRequired: tlsRequiredOf(r.tls_required),
  receivedAt: r.received_at,
  isBounce: r.is_bounce === 1,
});

interface PendingAccept {
  msg: NewMessage;
  resolve: (id: number) => void;
  reject: (e: Error) => void;
}

export type FsyncFn = (fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => void;

interface SyncWaiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * The automatic checkpoint threshold (WAL pages) of the running gateway's queue connections,
 * where the checkpointer thread copies meanwhile (queue/checkpointer.ts); SQLite's default is 1,000.
 */
export const GATEWAY_CHECKPOINT_PAGES = 10_000;

/**
 * Page cache of a queue connection, in KB (SQLite's build default is 16,000). In WAL mode a
 * connection empties its cache whenever another one has committed, which in a running gateway
 * (the listener thread and delivery commit in turns) is almost every transaction: a larger cache
 * only holds memory. Measured with the internet world: peak RSS 287 against 295 MB, no slower.
 */
const QUEUE_CACHE_KB = 4000;

export class QueueStore {
  private batch: PendingAccept[] = [];
  private flushScheduled = false;
  /** Commits waiting for the next fsync of the WAL, and whether one is running. */
  private syncWaiters: SyncWaiter[] = [];
  private syncing = false;
  private closed = false;
  private readonly walFd: number;
  private readonly statements = new Map<string, Database.Statement>();
  private constructor(
    private readonly db: Db,
    private readonly fsync: FsyncFn,
    private readonly lock: WriteLock | null,
  ) {
    // NORMAL: commits reach the WAL file without an fsync; `durable()` adds it where needed.
    db.pragma('synchronous = NORMAL');
    db.pragma(`cache_size = -${QUEUE_CACHE_KB}`);
    this.walFd = openSync(`${db.name}-wal`, 'r');
  }

  /** `fsync` is replaceable so that tests can hold a flush and watch what waits for it. */
  static open(dataDir: string, o: { fsync?: FsyncFn; lock?: WriteLock; autoCheckpointPages?: number } = {}): QueueStore {
    const db = openDb(dataDir, 'queue.db');
    if (o.autoCheckpointPages !== undefined) db.pragma(`wal_autocheckpoint = ${o.autoCheckpointPages}`);
    db.exec(SCHEMA);
    addWarningColumns(db);
    db.exec(CONTROL_SCHEMA);
    const columns = (db.prepare('PRAGMA table_info(recipients)').all() as { name: string }[]).map((c) => c.name);
    if (!columns.includes('leased')) db.exec('ALTER TABLE recipients ADD COLUMN leased INTEGER NOT NULL DEFAULT 0');
    db.exec('CREATE INDEX IF NOT EXISTS recipients_lease ON recipients(state, leased, next_attempt)');
    // Earlier releases also kept (state, next_attempt): no query needs it that the lease index
    // does not serve, and every insert and deferral paid for it.
    db.exec('DROP INDEX IF EXISTS recipients_due');
    return new QueueStore(db, o.fsync ?? fsync, o.lock ?? null);
  }

  /** Runs a write holding the lock the gateway's threads share (write-lock.ts), when given. */
  private write<T>(fn: () => T): T {
    return this.lock ? this.lock.run(fn) : fn();
  }

  /** A write transaction: the write lock is taken at BEGIN (IMMEDIATE), see the file comment. */
  private tx<T>(fn: () => T): T {
    return this.write(() => this.db.transaction(fn).immediate());
  }

  /** A prepared statement, made once per SQL text (preparing costs more than running most). */
  private st(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) this.statements.set(sql, (s = this.db.prepare(sql)));
    return s;
  }

  /** Resolves once an fsync of the WAL, started after this call, has completed. */
  private durable(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.syncWaiters.push({ resolve, reject });
      if (!this.syncing) this.startSync();
    });
  }

  private startSync(): void {
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    this.syncing = true;
    this.fsync(this.walFd, (err) => {
      this.syncing = false;
      if (this.closed) {
        // close() synced everything itself; this fsync only had to finish before the fd closes.
        closeSync(this.walFd);
        for (const w of waiters) w.resolve();
        return;
      }
      for (const w of waiters) {
        if (err) w.reject(new Error(`queue: fsync of the write-ahead log failed: ${err.message}`));
        else w.resolve();
      }
      if (this.syncWaiters.length > 0) this.startSync();
    });
  }

  /** Flushes the WAL before returning: for operator actions, whose process exits right after. */
  private syncNow(): void {
    fsyncSync(this.walFd);
  }

  /**
   * Forgets every lease: what a process that died was delivering is due again (at-least-once).
   * Called once by the gateway at start, never while another process delivers from this queue.
   */
  clearLeases(): number {
    return this.write(() => this.st('UPDATE recipients SET leased = 0 WHERE leased = 1').run().changes);
  }

  /**
   * Takes up to `limit` due recipients for delivery, oldest first, and marks them leased so the
   * next call does not return them again. Leases need not survive a crash (clearLeases), so
   * this commit skips the fsync that accepted mail gets. With `settle` the caller sorts the due
   * rows first, in the same transaction: those it defers (a held destination's: deferDue in
   * delivery/arrival.ts) get their new retry time, one attempt counted, instead of a lease — one
   * write each instead of a lease and a deferral after it. `first` runs at the start of the same
   * transaction (the gateway takes the CLI's requests there: see Gateway.applyQueueControl), so
   * that a commit of another process falls wholly before both or wholly after both.
   */
  lease<D extends { ids: number[]; reply: string; nextAttempt: number }>(
    now: number,
    limit: number,
    settle?: (rows: LeasedRecipient[]) => { keep: LeasedRecipient[]; deferred: D[] },
    first?: () => void,
  ): { leased: LeasedRecipient[]; deferred: D[]; selected: number } {
    return this.tx(() => {
      first?.();
      const rows = (this.st(LEASE_SELECT).all(now, limit) as LeaseRow[]).map(toLeased);
      const { keep, deferred } = settle ? settle(rows) : { keep: rows, deferred: [] as D[] };
      const defer = this.st(`UPDATE recipients SET last_reply = ?, next_attempt = ?, attempts = attempts + 1 WHERE id IN ${ID_LIST} AND +state = 'queued'`);
      for (const d of deferred) if (d.ids.length) defer.run(d.reply, d.nextAttempt, idList(d.ids));
      if (keep.length) this.st(`UPDATE recipients SET leased = 1 WHERE id IN ${ID_LIST}`).run(idList(keep.map((r) => r.id)));
      return { leased: keep, deferred, selected: rows.length };
    });
  }

  /** Gives leased recipients back without an outcome (they are due again at once). */
  unlease(ids: number[]): void {
    if (ids.length) this.write(() => this.st(`UPDATE recipients SET leased = 0 WHERE id IN ${ID_LIST}`).run(idList(ids)));
  }

  close(): void {
    this.flushNow();
    this.syncNow();
    this.closed = true;
    for (const w of this.syncWaiters.splice(0)) w.resolve();
    this.db.close();
    if (!this.syncing) closeSync(this.walFd);
  }

  /** Stores a message durably; resolves with its MID once the commit is on stable storage. */
  accept(msg: NewMessage): Promise<number> {
    return new Promise((resolve, reject) => {
      this.batch.push({ msg, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flushNow());
      }
    });
  }

  /** Synchronous insert for messages Postern makes itself (DSNs), inside a caller's transaction. */
  insertNow(msg: NewMessage): number {
    const info = this.st(INSERT_MESSAGE).run({
      sender: msg.sender,
      receivedAt: msg.receivedAt,
      size: msg.body.length,
      eightBit: msg.eightBit ? 1 : 0,
      smtputf8: msg.smtputf8 ? 1 : 0,
      ret: msg.ret ?? null,
      envid: msg.envid ?? null,
      client: msg.client ?? null,
      isBounce: msg.isBounce ? 1 : 0,
      inbound: msg.inbound ? 1 : 0,
      tlsRequired: msg.tlsRequired ?? null,
      body: msg.body,
    });
    const id = Number(info.lastInsertRowid);
    const insertRecipient = this.st(INSERT_RECIPIENT);
    msg.recipients.forEach((r, rid) => {
      if (r.deferred) this.st(INSERT_DEFERRED_RECIPIENT).run(id, rid, r.address, r.domain, r.deferred.nextAttempt, r.notify ?? null, r.orcpt ?? null, `${r.deferred.enhanced} ${r.deferred.reason}`);
      else insertRecipient.run(id, rid, r.address, r.domain, msg.receivedAt, r.notify ?? null, r.orcpt ?? null);
    });
    return id;
  }

  private flushNow(): void {
    this.flushScheduled = false;
    const batch = this.batch;
    this.batch = [];
    if (batch.length === 0) return;
    let ids: number[];
    try {
      ids = this.tx(() => batch.map((p) => this.insertNow(p.msg)));
    } catch (e) {
      for (const p of batch) p.reject(e as Error);
      return;
    }
    this.durable().then(
      () => batch.forEach((p, i) => p.resolve(ids[i]!)),
      (e: Error) => batch.forEach((p) => p.reject(e)),
    );
  }

  /** The earliest next attempt among queued recipients, or null when none is queued. */
  nextDue(): number | null {
    const r = this.st(`SELECT MIN(next_attempt) AS t FROM recipients WHERE state = 'queued' AND leased = 0`).get() as {
      t: number | null;
    };
    return r.t;
  }

  message(id: number): MessageInfo | undefined {
    const r = this.st(`SELECT ${MESSAGE_INFO_COLUMNS} FROM messages WHERE id = ?`).get(id) as MessageInfoRow | undefined;
    return r && toMessageInfo(r);
  }

  body(id: number): Buffer | undefined {
    const r = this.st('SELECT body FROM messages WHERE id = ?').get(id) as { body: Buffer } | undefined;
    return r?.body;
  }

  recipientsOf(messageId: number): QueuedRecipient[] {
    return (this.st('SELECT * FROM recipients WHERE message_id = ? ORDER BY rid').all(messageId) as RecipientRow[]).map(toRecipient);
  }

  list(f: QueueFilter = {}): ListedRecipient[] {
    const state = f.state ?? 'pending';
    const args: (string | number)[] = [];
    const byDomain = f.domain ? ' AND domain = ?' : '';
    if (f.domain) args.push(f.domain);
    const limit = f.limit === undefined ? '' : ` LIMIT ${Math.max(0, Math.floor(f.limit))}`;
    if (state === 'delivered' || state === 'bounced' || state === 'deleted') {
      const rows = this.st(`SELECT * FROM history WHERE state = ?${byDomain} ORDER BY message_id, rid${limit}`)
        .all(state, ...args) as HistoryRow[];
      return rows.map(fromHistory);
    }
    const attempts = state === 'queued' ? ' AND r.attempts = 0' : state === 'deferred' ? ' AND r.attempts > 0' : '';
    const rows = this.st(
        `SELECT r.*, m.sender FROM recipients r JOIN messages m ON m.id = r.message_id
         WHERE r.state = 'queued'${attempts}${byDomain.replace('domain', 'r.domain')} ORDER BY r.message_id, r.rid${limit}`,
      )
      .all(...args) as (RecipientRow & { sender: string })[];
    return rows.map((r) => ({
      mid: r.message_id,
      rid: r.rid,
      from: r.sender,
      to: r.address,
      domain: r.domain,
      state: r.attempts > 0 ? 'deferred' : 'queued',
      attempts: r.attempts,
      nextAttempt: r.next_attempt,
      lastReply: r.last_reply,
      finishedAt: null,
    }));
  }

  /** Recipients by state for /metrics: queued (never tried), deferred, and the final states still in the history. */
  stateCounts(): Record<ListedState, number> {
    const q = this.st(`SELECT SUM(attempts = 0) AS queued, SUM(attempts > 0) AS deferred FROM recipients WHERE state = 'queued'`).get() as { queued: number | null; deferred: number | null };
    const h = this.st('SELECT state, count(*) AS n FROM history GROUP BY state').all() as { state: string; n: number }[];
    const by = Object.fromEntries(h.map((r) => [r.state, r.n]));
    return { queued: q.queued ?? 0, deferred: q.deferred ?? 0, delivered: by.delivered ?? 0, bounced: by.bounced ?? 0, deleted: by.deleted ?? 0 };
  }

  /** For the queue and delivery alerts: recipients waiting, and each domain whose oldest message tried at least once arrived before `before`. */
  waitingFacts(before: number): { pending: number; waiting: { domain: string; oldest: number; recipients: number; reply: string | null }[] } {
    const pending = (this.st(`SELECT count(*) AS n FROM recipients WHERE state = 'queued'`).get() as { n: number }).n;
    const waiting = this.st(
      `SELECT r.domain AS domain, MIN(m.received_at) AS oldest, COUNT(*) AS recipients, MAX(r.last_reply) AS reply
       FROM recipients r JOIN messages m ON m.id = r.message_id
       WHERE r.state = 'queued' AND r.attempts > 0 GROUP BY r.domain HAVING MIN(m.received_at) < ? ORDER BY oldest`,
    ).all(before) as { domain: string; oldest: number; recipients: number; reply: string | null }[];
    return { pending, waiting };
  }

  /** Forgets final outcomes older than `before` (ms since the epoch); returns how many. */
  pruneHistory(before: number): number {
    return this.write(() => this.st('DELETE FROM history WHERE finished_at < ?').run(before).changes);
  }

  /**
   * Records outcomes in one transaction: final states, deferrals with their next attempt, and any
   * messages Postern makes in consequence (DSNs). Messages whose recipients are all final are
   * removed with them, so the queue holds only work still to do.
   */
  record(o: OutcomeRecord): number[] {
    return this.tx(() => this.recordIn(o));
  }

  /**
   * Several `record`s in one transaction (the delivery engine gathers the outcomes of one turn
   * of the event loop): one WAL append for all of them. Returns the DSN ids of each.
   */
  recordMany(list: OutcomeRecord[]): number[][] {
    return this.tx(() => list.map((o) => this.recordIn(o)));
  }

  private recordIn(o: OutcomeRecord): number[] {
    const touched = new Set<number>();
    const now = Date.now();
    // Two statements per recipient, by rowid. Measured: the same over the ids as one JSON list
    // (UPDATE … RETURNING, INSERT … SELECT) took five times as long in the tls scenario.
    const st = this.st(
      `UPDATE recipients SET state = ?, last_reply = ?, attempts = attempts + 1 WHERE id = ? AND state = 'queued' RETURNING message_id`,
    );
    const keep = this.st(
      `INSERT OR REPLACE INTO history (recipient_id, message_id, rid, sender, address, domain, state, attempts, reply, finished_at)
       SELECT r.id, r.message_id, r.rid, m.sender, r.address, r.domain, r.state, r.attempts, r.last_reply, ?
       FROM recipients r JOIN messages m ON m.id = r.message_id WHERE r.id = ?`,
    );
    const mark = (ids: number[], state: RecipientState, reply: string) => {
      for (const id of ids) {
        const r = st.get(state, reply, id) as { message_id: number } | undefined;
        if (!r) continue;
        touched.add(r.message_id);
        keep.run(now, id);
      }
    };
    if (o.delivered) mark(o.delivered.ids, 'delivered', o.delivered.reply);
    for (const f of o.failed ?? []) mark([f.id], o.failedState ?? 'bounced', f.reply);
    // `+state`: the ids are the way in (rowid look-ups); with a bare `state = 'queued'` SQLite
    // walks the state index over every queued recipient instead, a million rows per deferral.
    const defer = this.st(
      `UPDATE recipients SET last_reply = ?, next_attempt = ?, attempts = attempts + ?, leased = 0 WHERE id IN ${ID_LIST} AND +state = 'queued'`,
    );
    for (const d of o.deferred ?? []) if (d.ids.length) defer.run(d.reply, d.nextAttempt, d.countAttempt ? 1 : 0, idList(d.ids));
    if (o.warned) {
      const warn = this.st(`UPDATE recipients SET warnings_sent = warnings_sent + 1, last_warning_at = ? WHERE id = ? AND state = 'queued'`);
      for (const id of o.warned.ids) warn.run(o.warned.at, id);
    }
    const made = (o.newMessages ?? []).map((m) => this.insertNow(m));
    const gone = this.st(
      `DELETE FROM messages WHERE id = ? AND NOT EXISTS (SELECT 1 FROM recipients WHERE message_id = ? AND state = 'queued')`,
    );
    for (const id of touched) gone.run(id, id);
    return made;
  }

  /** Makes queued recipients due now (deliver now); returns how many. */
  releaseNow(now: number, domain?: string): number {
    const sql = domain
      ? `UPDATE recipients SET next_attempt = ? WHERE state = 'queued' AND domain = ?`
      : `UPDATE recipients SET next_attempt = ? WHERE state = 'queued'`;
    const st = this.st(sql);
    return this.write(() => (domain ? st.run(now, domain) : st.run(now)).changes);
  }

  /** A monotonic counter kept across restarts (connection ids for the log). */
  allocate(key: string, count: number): number {
    return this.tx(() => {
      const r = this.st('SELECT value FROM meta WHERE key = ?').get(key) as { value: number } | undefined;
      const start = (r?.value ?? 0) + 1;
      this.st('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run(key, start + count - 1);
      return start;
    });
  }

  counts(): { messages: number; queued: number } {
    const m = this.st('SELECT COUNT(*) AS n FROM messages').get() as { n: number };
    const q = this.st(`SELECT COUNT(*) AS n FROM recipients WHERE state = 'queued'`).get() as { n: number };
    return { messages: m.n, queued: q.n };
  }

  // ---- operator actions (src/queue/control.ts) -------------------------------------------

  /** Recipients still queued (queued or deferred) of one message and/or one domain, or all. */
  queuedIn(sel: QueuedSelection): QueuedRecipient[] {
    const where: string[] = [`state = 'queued'`];
    const args: (string | number)[] = [];
    if (sel.messageId !== undefined) {
      where.push('message_id = ?');
      args.push(sel.messageId);
    }
    if (sel.domain !== undefined) {
      where.push('domain = ?');
      args.push(sel.domain);
    }
    const rows = this.st(`SELECT * FROM recipients WHERE ${where.join(' AND ')} ORDER BY message_id, rid`).all(...args) as RecipientRow[];
    return rows.map(toRecipient);
  }

  /** The final outcomes history holds for one message (also after the message left the queue). */
  historyOf(messageId: number): ListedRecipient[] {
    const rows = this.st('SELECT * FROM history WHERE message_id = ? ORDER BY rid').all(messageId) as HistoryRow[];
    return rows.map(fromHistory);
  }

  /**
   * Deliver now: makes the queued recipients (of `domain`, or all) due at `now` and leaves a
   * `delivernow` request for the running gateway (which resets the destination counters).
   * Returns how many recipients and messages were made due. The recipients are made due in
   * slices of DELIVER_NOW_SLICE ids, each its own transaction, and the request is written with
   * the last: a backlog of a million does not hold the queue's write lock for seconds, during
   * which the gateway could neither accept mail nor start delivering it. Stopped half-way, some
   * are due now and the rest keep their retry times (running it again finishes the job).
   * `announce` runs inside the last transaction, before the request is written: what it logs
   * is on disk before the gateway can see the request (and log what it does about it).
   */
  requestDeliverNow(
    now: number,
    domain?: string,
    announce: (made: { recipients: number; messages: number }) => void = () => {},
  ): { recipients: number; messages: number } {
    const byDomain = domain === undefined ? '' : ' AND domain = ?';
    const args = domain === undefined ? [] : [domain];
    const c = this.st(`SELECT COUNT(*) AS r, COUNT(DISTINCT message_id) AS m, MIN(id) AS lo, MAX(id) AS hi FROM recipients WHERE state = 'queued'${byDomain}`)
      .get(...args) as { r: number; m: number; lo: number | null; hi: number | null };
    const slice = this.st(`UPDATE recipients SET next_attempt = ? WHERE id >= ? AND id < ? AND state = 'queued'${byDomain}`);
    const request = this.st('INSERT INTO queue_control (action, domain, requested_at) VALUES (?, ?, ?)');
    const made = { recipients: c.r, messages: c.m };
    const lo = c.lo ?? 0;
    const hi = c.hi ?? -1;
    const finish = (): void => {
      announce(made);
      request.run('delivernow', domain ?? null, now);
    };
    for (let from = lo; from <= hi; from += DELIVER_NOW_SLICE) {
      const to = from + DELIVER_NOW_SLICE;
      const last = to > hi;
      this.tx(() => {
        slice.run(now, from, to, ...args);
        if (last) finish();
      });
    }
    if (hi < lo) this.tx(finish);
    this.syncNow();
    return made;
  }

  /** Reads and removes the requests left for the running gateway, oldest first (cheap when none). */
  takeControl(): QueueControl[] {
    const select = this.st('SELECT id, action, domain, requested_at FROM queue_control ORDER BY id');
    type Row = { id: number; action: string; domain: string | null; requested_at: number };
    // Polled twice a second: a plain read first; the write lock only when there is something.
    if (select.get() === undefined) return [];
    return this.tx(() => {
      const rows = select.all() as Row[];
      if (rows.length === 0) return [];
      this.st('DELETE FROM queue_control WHERE id <= ?').run(rows[rows.length - 1]!.id);
      return rows.filter((r) => r.action === 'delivernow').map((r) => ({ action: 'delivernow' as const, domain: r.domain, requestedAt: r.requested_at }));
    });
  }

  /**
   * An operator's final state for the selected recipients still queued, in one write
   * transaction: they become `state` with `reply` through `record` (history, removal of
   * messages left with nothing queued, DSNs inserted with them), keeping their attempt count
   * (an operator's action is not a delivery attempt). `makeDsns` runs inside the transaction
   * with exactly the recipients that change. Recipients no longer queued (delivered or bounced
   * meanwhile) are left alone, and any later outcome of a delivery in flight cannot bring these
   * back: `record` changes only rows still queued.
   */
  finishByOperator(
    sel: QueuedSelection,
    state: 'bounced' | 'deleted',
    reply: string,
    makeDsns: (rows: QueuedRecipient[]) => NewMessage[] = () => [],
  ): { recipients: QueuedRecipient[]; made: number[] } {
    const r = this.tx(() => {
      const rows = this.queuedIn(sel);
      if (rows.length === 0) return { recipients: rows, made: [] };
      const newMessages = makeDsns(rows);
      const made = this.record({ failed: rows.map((r) => ({ id: r.id, reply })), failedState: state, newMessages });
      const keepRecipient = this.st('UPDATE recipients SET attempts = ? WHERE id = ?');
      const keepHistory = this.st('UPDATE history SET attempts = ? WHERE recipient_id = ?');
      for (const r of rows) {
        keepRecipient.run(r.attempts, r.id);
        keepHistory.run(r.attempts, r.id);
      }
      return { recipients: rows, made };
    });
    this.syncNow();
    return r;
  }

  /** Facts the gateway leaves for the CLI, e.g. `hostname` (the name its DSNs report). */
  /** Remembered broken TLS (delivery/broken-tls.ts), kept here so a restart and `explain` see it. */
  rememberBrokenTls(address: string, port: number, until: number): void {
    this.write(() => this.st('INSERT OR REPLACE INTO broken_tls (address, port, until) VALUES (?, ?, ?)').run(address, port, until));
  }

  /** The remembered addresses still broken at `now` (older ones are dropped). */
  brokenTls(now: number): { address: string; port: number; until: number }[] {
    this.write(() => this.st('DELETE FROM broken_tls WHERE until <= ?').run(now));
    return this.st('SELECT address, port, until FROM broken_tls ORDER BY address, port').all() as { address: string; port: number; until: number }[];
  }

  setFact(key: string, value: string): void {
    this.write(() => this.st('INSERT OR REPLACE INTO gateway_facts (key, value) VALUES (?, ?)').run(key, value));
  }

  fact(key: string): string | undefined {
    const r = this.st('SELECT value FROM gateway_facts WHERE key = ?').get(key) as { value: string } | undefined;
    return r?.value;
  }

  /**
   * What a sender reads right before it sends one message, in two statements: which of these
   * recipient ids of the message are still queued (it held them in memory for a while, leased,
   * waiting for a connection or a window: an operator may have bounced or deleted some
   * meanwhile), and the message with its body (undefined when it has left the queue).
   */
  sendable(messageId: number, ids: readonly number[]): { live: Set<number>; message?: MessageInfo; body?: Buffer } {
    const queued = this.st(`SELECT id FROM recipients WHERE message_id = ? AND state = 'queued'`).all(messageId) as { id: number }[];
    const inQueue = new Set(queued.map((r) => r.id));
    const live = new Set(ids.filter((id) => inQueue.has(id)));
    if (live.size === 0) return { live };
    const r = this.st(`SELECT ${MESSAGE_INFO_COLUMNS}, body FROM messages WHERE id = ?`).get(messageId) as (MessageInfoRow & { body: Buffer }) | undefined;
    return r ? { live, message: toMessageInfo(r), body: r.body } : { live };
  }
}
