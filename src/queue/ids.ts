/**
 * Log ids (ICID, DCID) that are never reused, also across restarts: taken in blocks from a
 * counter kept in the queue database, so only one write per thousand ids.
 */
import type { QueueStore } from './store.js';

export class IdSequence {
  private next = 0;
  private end = -1;

  constructor(
    private readonly queue: QueueStore,
    private readonly key: string,
    private readonly block = 1000,
  ) {}

  take(): number {
    if (this.next > this.end) {
      this.next = this.queue.allocate(this.key, this.block);
      this.end = this.next + this.block - 1;
    }
    return this.next++;
  }
}
