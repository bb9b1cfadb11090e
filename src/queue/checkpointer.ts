/**
 * WAL checkpoints beside the event loops. SQLite copies the write-ahead log into the database
 * file inside whichever commit crosses its automatic threshold, with an fsync of the database
 * file, and while queue.db's write lock is held (queue/write-lock.ts), so the gateway's other
 * thread waits for it: the largest accept-latency spike measured (docs/performance.md).
 * A worker thread with its own connection runs a PASSIVE checkpoint every `everyMs`: it copies
 * what is in the WAL without ever blocking a writer, so when an automatic checkpoint comes, the
 * frames are already in the database file and it has little left to copy (its two syncs
 * remain). The gateway's connections raise that threshold to GATEWAY_CHECKPOINT_PAGES, so those
 * syncs come ten times more rarely; an automatic checkpoint (not this one) still lets SQLite
 * start the WAL over, so the WAL stays bounded.
 * Durability is unchanged: a checkpoint syncs the WAL before copying and the database after, and
 * the WAL is reused only once every frame is in the database file.
 *
 * Only the running gateway starts one (the CLI's short-lived stores do not).
 */
import { Worker } from 'node:worker_threads';

/**
 * How often the worker checkpoints. Measured with the internet world (100,000 messages, 2.4 GB
 * of bodies): every 500 ms accept p99 67.6 ms, 100 ms 50.1–54.8, 30 ms 43.7–44.0, 10 ms 50.2
 * with more CPU. Smaller checkpoints leave less for each flush of the database file, which the
 * accepts' flushes of the WAL queue behind on the disk.
 */
export const CHECKPOINT_EVERY_MS = 30;

export class Checkpointer {
  private readonly worker: Worker;
  private stopped = false;

  constructor(dbFile: string, everyMs = CHECKPOINT_EVERY_MS, onTrouble?: (e: Error) => void) {
    this.worker = new Worker(new URL('./checkpoint-worker.js', import.meta.url), { workerData: { dbFile, everyMs } });
    // Never what keeps the process alive; a failure is told, and the gateway's own checkpoints go on.
    this.worker.unref();
    this.worker.on('error', (e) => {
      if (!this.stopped) onTrouble?.(e);
    });
  }

  /** Ends the worker; a checkpoint cut short is harmless to SQLite (it is crash-safe). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.worker.terminate();
  }
}
