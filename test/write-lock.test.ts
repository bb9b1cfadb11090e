/**
 * queue/write-lock.ts: the lock the gateway's threads share for queue.db. Real threads: a worker
 * holds the lock while the main thread asks for it; the main thread gets it only after the
 * worker let go (the order of their writes in a real SQLite file shows it), and a lock left held
 * by a thread that was terminated is given back by releaseIfHeldBy.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { WriteLock } from '../src/queue/write-lock.js';
import { tempDir } from './harness.js';

const LOCK_MODULE = new URL('../src/queue/write-lock.js', import.meta.url).href;

/** A thread that takes the lock, says so, then (unless `hold`) writes `worker` and lets go after `ms`. */
function holder(buffer: SharedArrayBuffer, file: string, ms: number, hold: boolean): { worker: Worker; holding: Promise<void> } {
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.lockModule).then(({ WriteLock }) => {
      const Database = require('better-sqlite3');
      const db = new Database(workerData.file);
      const lock = new WriteLock(workerData.buffer);
      if (workerData.hold) {
        lock.run(() => { parentPort.postMessage('holding'); const until = Date.now() + 60000; while (Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50); });
        return;
      }
      lock.run(() => {
        parentPort.postMessage('holding');
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, workerData.ms);
        db.prepare("INSERT INTO log (who) VALUES ('worker')").run();
      });
      db.close();
    });`;
  const worker = new Worker(code, { eval: true, workerData: { buffer, file, ms, hold, lockModule: LOCK_MODULE } });
  const holding = new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
  return { worker, holding };
}

function database(): { file: string; db: Database.Database } {
  const file = join(tempDir(), 'lock.db');
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE log (n INTEGER PRIMARY KEY, who TEXT)');
  return { file, db };
}

describe('the queue write lock shared by threads', () => {
  it('a thread that asks while another holds it goes after it', async () => {
    const { file, db } = database();
    const lock = new WriteLock();
    const { worker, holding } = holder(lock.buffer, file, 300, false);
    await holding;
    lock.run(() => db.prepare("INSERT INTO log (who) VALUES ('main')").run());
    await new Promise((r) => worker.once('exit', r));
    assert.deepEqual(
      (db.prepare('SELECT who FROM log ORDER BY n').all() as { who: string }[]).map((r) => r.who),
      ['worker', 'main'],
    );
    db.close();
  });

  it('is re-entrant within one thread', () => {
    const lock = new WriteLock();
    assert.equal(
      lock.run(() => lock.run(() => 7)),
      7,
    );
    // Let go at the end: taking it again does not wait.
    assert.equal(
      lock.run(() => 8),
      8,
    );
  });

  it('a lock held by a thread that was terminated is given back', async () => {
    const { db } = database();
    const lock = new WriteLock();
    const { worker, holding } = holder(lock.buffer, ':memory:', 0, true);
    await holding;
    const id = worker.threadId;
    await worker.terminate();
    lock.releaseIfHeldBy(id);
    assert.equal(
      lock.run(() => 'taken'),
      'taken',
    );
    db.close();
  });
});
