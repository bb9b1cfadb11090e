/**
 * One gateway per data directory.
 *
 * acquireGatewayLock(dataDir): takes the data directory's gateway lock or throws a
 *   GatewayLockedError naming the directory and the process id of the gateway holding it.
 *   The lock is an exclusive SQLite lock on `<data-dir>/gateway.lock`, which SQLite holds as a
 *   POSIX advisory lock: the kernel releases it when the process ends, however it ends (SIGKILL
 *   included), so a restart after a crash needs no manual step. The holder writes its process
 *   id to `<data-dir>/gateway.pid` for the message and for administrators.
 * GatewayLock.release(): gives the lock up and removes the pid file (at stop).
 *
 * Only `postern start` takes the lock; CLI commands work beside a running gateway.
 */
import Database from 'better-sqlite3';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export class GatewayLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly pid: number | null,
  ) {
    super(
      `data directory ${resolve(dataDir)} is in use by a running gateway` +
        `${pid === null ? '' : ` (process id ${pid})`}; stop it first, or give this one another --data-dir`,
    );
  }
}

export interface GatewayLock {
  release(): void;
}

export function acquireGatewayLock(dataDir: string): GatewayLock {
  const pidFile = join(dataDir, 'gateway.pid');
  const db = new Database(join(dataDir, 'gateway.lock'));
  try {
    // A rollback journal and an exclusive transaction held for the process's life: any other
    // connection's BEGIN EXCLUSIVE fails at once with SQLITE_BUSY (busy_timeout 0).
    db.pragma('busy_timeout = 0');
    db.pragma('journal_mode = DELETE');
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
  } catch (e) {
    db.close();
    if ((e as { code?: string }).code === 'SQLITE_BUSY') throw new GatewayLockedError(dataDir, readPid(pidFile));
    throw e;
  }
  writeFileSync(pidFile, `${process.pid}\n`, { mode: 0o644 });
  let held = true;
  return {
    release(): void {
      if (!held) return;
      held = false;
      // Remove the pid file only while it is still ours.
      if (readPid(pidFile) === process.pid) rmSync(pidFile, { force: true });
      db.exec('ROLLBACK');
      db.close();
    },
  };
}

function readPid(file: string): number | null {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}
