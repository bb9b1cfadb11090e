/**
 * The write lock the gateway's threads share for queue.db (the main thread delivers, the
 * listener thread accepts). SQLite would serialise them too, but a writer that finds the file
 * locked sleeps in backoff steps (1, 2, 5, 10 ... 100 ms) whatever the other's transaction
 * takes: on the main thread that is the event loop stopped, measured at hundreds of ms per
 * second under load. This lock wakes the waiter the moment the holder is done (Atomics).
 * Other processes (the CLI) still meet SQLite's own busy wait.
 *
 * The cell holds 0 (free) or the holder's thread id + 1; a holder that died can be released by
 * the thread that saw it go (releaseIfHeldBy).
 */
import { threadId } from 'node:worker_threads';

/** A writer waits this long at most, as SQLite's busy timeout (config/db.ts). */
const WAIT_LIMIT_MS = 5000;

export class WriteLock {
  private readonly cell: Int32Array;
  private readonly me = threadId + 1;
  private depth = 0;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(4)) {
    this.cell = new Int32Array(buffer);
  }

  /** Runs `fn` holding the lock (re-entrant within one thread). */
  run<T>(fn: () => T): T {
    if (this.depth > 0) {
      this.depth++;
      try {
        return fn();
      } finally {
        this.depth--;
      }
    }
    this.acquire();
    this.depth = 1;
    try {
      return fn();
    } finally {
      this.depth = 0;
      Atomics.store(this.cell, 0, 0);
      Atomics.notify(this.cell, 0, 1);
    }
  }

  private acquire(): void {
    const until = Date.now() + WAIT_LIMIT_MS;
    for (;;) {
      const holder = Atomics.compareExchange(this.cell, 0, 0, this.me);
      if (holder === 0) return;
      const left = until - Date.now();
      if (left <= 0) throw new Error(`queue: the write lock is held by thread ${holder - 1} for more than ${WAIT_LIMIT_MS} ms`);
      Atomics.wait(this.cell, 0, holder, left);
    }
  }

  /** A thread that ended while holding the lock (terminated) gives it back through another. */
  releaseIfHeldBy(deadThreadId: number): void {
    if (Atomics.compareExchange(this.cell, 0, deadThreadId + 1, 0) === deadThreadId + 1) Atomics.notify(this.cell, 0);
  }
}
