/**
 * Opening the SQLite files of the data directory. WAL mode so that a running gateway and the
 * CLI can use the same files at once; synchronous FULL so that a commit is on stable storage
 * when it returns. The queue store switches its own connection to NORMAL and fsyncs the WAL
 * off the event loop before it lets a 250 go (src/queue/store.ts).
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { DataDirError, prepareDataDir } from './datadir.js';

export type Db = Database.Database;

export function openDb(dataDir: string, file: string): Db {
  prepareDataDir(dataDir, { create: true });
  let db: Db;
  try {
    db = new Database(join(dataDir, file));
  } catch (e) {
    throw new DataDirError(dataDir, `cannot open ${file}: ${(e as Error).message}`);
  }
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  return db;
}
