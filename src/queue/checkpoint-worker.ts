/**
 * The worker of checkpointer.ts: its own connection to queue.db, a PASSIVE checkpoint every
 * `everyMs`. Never waits for a lock (busy_timeout 0): a checkpoint that cannot run now runs at
 * the next turn. NORMAL syncs the WAL and the database file at each checkpoint, as the
 * gateway's own connection does.
 */
import { workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const { dbFile, everyMs } = workerData as { dbFile: string; everyMs: number };
const db = new Database(dbFile, { fileMustExist: true });
db.pragma('busy_timeout = 0');
db.pragma('synchronous = NORMAL');
setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // SQLITE_BUSY (another checkpoint running) or a transient error: the next turn tries again.
  }
}, everyMs);
