/**
 * The durable queue in `<data-dir>/queue.db` (SQLite, WAL, synchronous FULL): messages, their
 * recipients and each recipient's state. A message is accepted (250 after DATA) only once
 * `accept` has returned, i.e. after the commit reached stable storage. Nothing is held only in
 * memory: a crash at any moment leaves every accepted recipient either final or `queued`.
 *
 * Concurrent SMTP sessions share commits (group commit): `accept` calls arriving within the same
 * turn of the event loop are written in one transaction, so one fsync serves them all.
 */
import type { Db } from '../config/db.js';
import { openDb } from '../config/db.js';

export type RecipientState = 'queued' | 'delivered' | 'bounced' | 'deleted';

export interface NewRecipient {
  address: string;
  domain: string;
  notify?: string;
  orcpt?: string;
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
}

/** How `queue list` names a recipient's state: queued (not yet tried), deferred (tried, waiting), or final. */
export type ListedState = 'queued' | 'deferred' | 'delivered' | 'bounced' | 'deleted';

export interface QueueFilter {
  domain?: string;
  /** `pending` = queued and deferred (the default). */
  state?: ListedState | 'pending';
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
CREATE INDEX IF NOT EXISTS recipients_due ON recipients(state, next_attempt);
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
});

interface PendingAccept {
  msg: NewMessage;
  resolve: (id: number) => void;
  reject: (e: Error) => void;
}

export class QueueStore {
  private batch: PendingAccept[] = [];
  private flushScheduled = false;
  private readonly insertMessage;
  private readonly insertRecipient;

  private constructor(private readonly db: Db) {
    this.insertMessage = db.prepare(
      `INSERT INTO messages (sender, received_at, size, eight_bit, smtputf8, ret, envid, client, is_bounce, body)
       VALUES (@sender, @receivedAt, @size, @eightBit, @smtputf8, @ret, @envid, @client, @isBounce, @body)`,
    );
    this.insertRecipient = db.prepare(
      `INSERT INTO recipients (message_id, rid, address, domain, next_attempt, notify, orcpt)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  static open(dataDir: string): QueueStore {
    const db = openDb(dataDir, 'queue.db');
    db.exec(SCHEMA);
    return new QueueStore(db);
  }

  close(): void {
    this.flushNow();
    this.db.close();
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
    const info = this.insertMessage.run({
      sender: msg.sender,
      receivedAt: msg.receivedAt,
      size: msg.body.length,
      eightBit: msg.eightBit ? 1 : 0,
      smtputf8: msg.smtputf8 ? 1 : 0,
      ret: msg.ret ?? null,
      envid: msg.envid ?? null,
      client: msg.client ?? null,
      isBounce: msg.isBounce ? 1 : 0,
      body: msg.body,
    });
    const id = Number(info.lastInsertRowid);
    msg.recipients.forEach((r, rid) => {
      this.insertRecipient.run(id, rid, r.address, r.domain, msg.receivedAt, r.notify ?? null, r.orcpt ?? null);
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
      ids = this.db.transaction(() => batch.map((p) => this.insertNow(p.msg)))();
    } catch (e) {
      for (const p of batch) p.reject(e as Error);
      return;
    }
    batch.forEach((p, i) => p.resolve(ids[i]!));
  }

  /** Recipients due for delivery at `now`, oldest first, leaving out ids already in flight. */
  due(now: number, limit: number, exclude: ReadonlySet<number>): QueuedRecipient[] {
    const rows = this.db
      .prepare(`SELECT * FROM recipients WHERE state = 'queued' AND next_attempt <= ? ORDER BY next_attempt, id LIMIT ?`)
      .all(now, limit + exclude.size) as RecipientRow[];
    const out: QueuedRecipient[] = [];
    for (const r of rows) {
      if (!exclude.has(r.id)) out.push(toRecipient(r));
      if (out.length >= limit) break;
    }
    return out;
  }

  /** The earliest next attempt among queued recipients, or null when none is queued. */
  nextDue(): number | null {
    const r = this.db.prepare(`SELECT MIN(next_attempt) AS t FROM recipients WHERE state = 'queued'`).get() as { t: number | null };
    return r.t;
  }

  message(id: number): MessageInfo | undefined {
    const r = this.db
      .prepare('SELECT id, sender, received_at, size, eight_bit, smtputf8, ret, envid, client, is_bounce FROM messages WHERE id = ?')
      .get(id) as
      | {
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
        }
      | undefined;
    if (!r) return undefined;
    return {
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
    };
  }

  body(id: number): Buffer | undefined {
    const r = this.db.prepare('SELECT body FROM messages WHERE id = ?').get(id) as { body: Buffer } | undefined;
    return r?.body;
  }

  recipientsOf(messageId: number): QueuedRecipient[] {
    return (this.db.prepare('SELECT * FROM recipients WHERE message_id = ? ORDER BY rid').all(messageId) as RecipientRow[]).map(toRecipient);
  }

  list(f: QueueFilter = {}): ListedRecipient[] {
    const state = f.state ?? 'pending';
    const args: (string | number)[] = [];
    const byDomain = f.domain ? ' AND domain = ?' : '';
    if (f.domain) args.push(f.domain);
    if (state === 'delivered' || state === 'bounced' || state === 'deleted') {
      const rows = this.db
        .prepare(`SELECT * FROM history WHERE state = ?${byDomain} ORDER BY message_id, rid`)
        .all(state, ...args) as {
        message_id: number;
        rid: number;
        sender: string;
        address: string;
        domain: string;
        state: ListedState;
        attempts: number;
        reply: string | null;
        finished_at: number;
      }[];
      return rows.map((r) => ({
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
      }));
    }
    const attempts = state === 'queued' ? ' AND r.attempts = 0' : state === 'deferred' ? ' AND r.attempts > 0' : '';
    const rows = this.db
      .prepare(
        `SELECT r.*, m.sender FROM recipients r JOIN messages m ON m.id = r.message_id
         WHERE r.state = 'queued'${attempts}${byDomain.replace('domain', 'r.domain')} ORDER BY r.message_id, r.rid`,
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

  /** Forgets final outcomes older than `before` (ms since the epoch); returns how many. */
  pruneHistory(before: number): number {
    return this.db.prepare('DELETE FROM history WHERE finished_at < ?').run(before).changes;
  }

  /**
   * Records outcomes in one transaction: final states, deferrals with their next attempt, and any
   * messages Postern makes in consequence (DSNs). Messages whose recipients are all final are
   * removed with them, so the queue holds only work still to do.
   */
  record(o: {
    delivered?: { ids: number[]; reply: string };
    failed?: { id: number; reply: string }[];
    failedState?: 'bounced' | 'deleted';
    deferred?: { ids: number[]; reply: string; nextAttempt: number; countAttempt: boolean }[];
    newMessages?: NewMessage[];
  }): number[] {
    return this.db.transaction(() => {
      const touched = new Set<number>();
      const now = Date.now();
      const st = this.db.prepare(
        `UPDATE recipients SET state = ?, last_reply = ?, attempts = attempts + 1 WHERE id = ? AND state = 'queued' RETURNING message_id`,
      );
      const keep = this.db.prepare(
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
      const defer = this.db.prepare(
        `UPDATE recipients SET last_reply = ?, next_attempt = ?, attempts = attempts + ? WHERE id = ? AND state = 'queued'`,
      );
      for (const d of o.deferred ?? []) for (const id of d.ids) defer.run(d.reply, d.nextAttempt, d.countAttempt ? 1 : 0, id);
      const made = (o.newMessages ?? []).map((m) => this.insertNow(m));
      const gone = this.db.prepare(
        `DELETE FROM messages WHERE id = ? AND NOT EXISTS (SELECT 1 FROM recipients WHERE message_id = ? AND state = 'queued')`,
      );
      for (const id of touched) gone.run(id, id);
      return made;
    })();
  }

  /** Makes queued recipients due now (deliver now); returns how many. */
  releaseNow(now: number, domain?: string): number {
    const sql = domain
      ? `UPDATE recipients SET next_attempt = ? WHERE state = 'queued' AND domain = ?`
      : `UPDATE recipients SET next_attempt = ? WHERE state = 'queued'`;
    const st = this.db.prepare(sql);
    return (domain ? st.run(now, domain) : st.run(now)).changes;
  }

  /** A monotonic counter kept across restarts (connection ids for the log). */
  allocate(key: string, count: number): number {
    return this.db.transaction(() => {
      const r = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: number } | undefined;
      const start = (r?.value ?? 0) + 1;
      this.db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run(key, start + count - 1);
      return start;
    })();
  }

  counts(): { messages: number; queued: number } {
    const m = this.db.prepare('SELECT COUNT(*) AS n FROM messages').get() as { n: number };
    const q = this.db.prepare(`SELECT COUNT(*) AS n FROM recipients WHERE state = 'queued'`).get() as { n: number };
    return { messages: m.n, queued: q.n };
  }
}
