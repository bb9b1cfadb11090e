/**
 * The queue's background checkpoints (src/queue/checkpointer.ts): with the gateway's own
 * automatic checkpoint far away (a few hundred WAL pages of its 1,000), the worker copies what
 * was committed into the database file, and the data reads back the same. Real SQLite files.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Checkpointer } from '../src/queue/checkpointer.js';
import { QueueStore } from '../src/queue/store.js';
import { tempDir, waitFor } from './harness.js';

describe('background WAL checkpoints', () => {
  it('copy committed messages into the database file before SQLite would itself', async () => {
    const dir = tempDir('postern-ckpt-');
    const q = QueueStore.open(dir);
    const file = join(dir, 'queue.db');
    const c = new Checkpointer(file, 50);
    try {
      const before = statSync(file).size;
      const body = Buffer.alloc(400_000, 0x61); // ~100 pages: far below the automatic checkpoint
      const mid = await q.accept({ sender: 'a@example.org', receivedAt: Date.now(), body, recipients: [{ address: 'b@example.net', domain: 'example.net' }] });
      await waitFor('the database file holds the message', () => statSync(file).size >= before + body.length);
      assert.equal(q.body(mid)?.length, body.length);
    } finally {
      await c.stop();
      q.close();
    }
  });
});
