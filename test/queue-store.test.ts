/**
 * The queue's durability rule with commits that do not block the event loop (SPEC §5): a
 * message is reported accepted only after an fsync of the write-ahead log that started after its
 * commit has completed. The fsync is held by the test to watch what waits for it.
 */
import assert from 'node:assert/strict';
import { readlinkSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, it } from 'node:test';
import { QueueStore, type FsyncFn, type NewMessage } from '../src/queue/store.js';
import { tempDir } from './harness.js';

const msg = (n: number): NewMessage => ({
  sender: 's@client.test',
  body: Buffer.from(`Subject: ${n}\r\n\r\nbody ${n}\r\n`),
  receivedAt: Date.now(),
  recipients: [{ address: `r${n}@dest.test`, domain: 'dest.test' }],
});

/** An fsync that completes only when the test says so. */
function heldFsync(): { fn: FsyncFn; calls: { fd: number; done: (err: NodeJS.ErrnoException | null) => void }[] } {
  const calls: { fd: number; done: (err: NodeJS.ErrnoException | null) => void }[] = [];
  return { fn: (fd, done) => calls.push({ fd, done }), calls };
}

const turn = () => new Promise((r) => setTimeout(r, 20));

describe('queue store durability', () => {
  it('resolves accept only after an fsync of the WAL started after the commit', async () => {
    const dir = tempDir();
    const held = heldFsync();
    const q = QueueStore.open(dir, { fsync: held.fn });
    try {
      let first: number | undefined;
      let second: number | undefined;
      void q.accept(msg(1)).then((id) => (first = id));
      await turn();
      assert.equal(held.calls.length, 1, 'one fsync after the first commit');
      assert.match(readlinkSync(`/proc/self/fd/${held.calls[0]!.fd}`), /queue\.db-wal$/);
      assert.equal(q.counts().messages, 1, 'committed (visible) before it is durable');
      assert.equal(first, undefined, 'not accepted while the fsync runs');

      void q.accept(msg(2)).then((id) => (second = id));
      await turn();
      assert.equal(held.calls.length, 1, 'a commit during a running fsync waits for the next one');
      held.calls[0]!.done(null);
      await turn();
      assert.equal(typeof first, 'number');
      assert.equal(second, undefined, 'the fsync that was running does not cover a later commit');
      assert.equal(held.calls.length, 2);
      held.calls[1]!.done(null);
      await turn();
      assert.equal(typeof second, 'number');
    } finally {
      for (const c of held.calls.splice(0)) c.done(null);
      q.close();
    }
  });

  it('rejects accept with a clear error when the fsync fails', async () => {
    const dir = tempDir();
    const held = heldFsync();
    const q = QueueStore.open(dir, { fsync: held.fn });
    try {
      const p = q.accept(msg(1));
      await turn();
      held.calls[0]!.done(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
      await assert.rejects(p, /fsync of the write-ahead log failed: EIO/);
    } finally {
      q.close();
    }
  });

  it('close flushes what is waiting and keeps it: the message is there after reopening', async () => {
    const dir = tempDir();
    const held = heldFsync();
    const q = QueueStore.open(dir, { fsync: held.fn });
    const p = q.accept(msg(1));
    await turn();
    q.close(); // syncs itself; the held fsync finishing later must not fail anything
    held.calls[0]!.done(null);
    const id = await p;
    const again = QueueStore.open(dir);
    try {
      assert.equal(again.message(id)?.sender, 's@client.test');
      assert.equal(again.counts().queued, 1);
    } finally {
      again.close();
    }
  });
});

describe('deliver now over a large backlog', () => {
  it('makes every queued recipient of the domain due, in slices of ids, with one request for the gateway', async () => {
    const dir = tempDir();
    const q = QueueStore.open(dir);
    try {
      const later = Date.now() + 3_600_000;
      // 45 messages of 1,000 recipients: 45,000 ids, more than two slices; every other one for a.test.
      const big = (n: number): NewMessage => ({
        ...msg(n),
        recipients: Array.from({ length: 1000 }, (_, i) => {
          const domain = i % 2 === 0 ? 'a.test' : 'b.test';
          return { address: `r${n}-${i}@${domain}`, domain, deferred: { nextAttempt: later, enhanced: '4.4.1', reason: 'refused' } };
        }),
      });
      await Promise.all(Array.from({ length: 45 }, (_, n) => q.accept(big(n))));
      const now = Date.now();
      assert.deepEqual(q.requestDeliverNow(now, 'a.test'), { recipients: 22_500, messages: 45 });
      const a = q.list({ domain: 'a.test' });
      const b = q.list({ domain: 'b.test' });
      assert.equal(a.length, 22_500);
      assert.equal(a.filter((r) => r.nextAttempt !== now).length, 0, 'every a.test recipient due now');
      assert.equal(b.filter((r) => r.nextAttempt !== later).length, 0, 'b.test untouched');
      assert.deepEqual(q.takeControl().map((c) => [c.action, c.domain]), [['delivernow', 'a.test']]);

      // The announcement (the CLI's mail-log line) runs once, before any reader can see the request.
      const reader = new Database(join(dir, 'queue.db'), { readonly: true });
      const seen: { made: { recipients: number; messages: number }; requests: number }[] = [];
      const all = now + 1;
      try {
        const count = reader.prepare('SELECT COUNT(*) AS n FROM queue_control');
        assert.deepEqual(
          q.requestDeliverNow(all, undefined, (made) => seen.push({ made, requests: (count.get() as { n: number }).n })),
          { recipients: 45_000, messages: 45 },
        );
        assert.equal((count.get() as { n: number }).n, 1, 'the request is there once it returns');
      } finally {
        reader.close();
      }
      assert.deepEqual(seen, [{ made: { recipients: 45_000, messages: 45 }, requests: 0 }]);
      assert.equal(q.list({}).filter((r) => r.nextAttempt !== all).length, 0, 'the whole queue due now');
      assert.deepEqual(q.takeControl().map((c) => [c.action, c.domain]), [['delivernow', null]]);

      assert.deepEqual(q.requestDeliverNow(all, 'none.test'), { recipients: 0, messages: 0 });
      assert.deepEqual(q.takeControl().map((c) => [c.action, c.domain]), [['delivernow', 'none.test']], 'the request is left even when nothing matched');
    } finally {
      q.close();
    }
  });
});

describe('the lease and what runs first in it', () => {
  it('runs `first` inside the lease transaction: another process cannot commit between the two', async () => {
    const dir = tempDir();
    const q = QueueStore.open(dir);
    // Another process's connection (the CLI's), not waiting for locks.
    const cli = new Database(join(dir, 'queue.db'));
    cli.pragma('busy_timeout = 0');
    try {
      await q.accept(msg(1));
      let during: string | undefined;
      const got = q.lease(Date.now(), 10, undefined, () => {
        try {
          cli.prepare("INSERT INTO queue_control (action, domain, requested_at) VALUES ('delivernow', 'dest.test', 0)").run();
          during = 'committed';
        } catch (e) {
          during = (e as { code?: string }).code;
        }
      });
      assert.equal(during, 'SQLITE_BUSY', "the CLI's commit waits for the lease's transaction to end");
      assert.equal(got.leased.length, 1);
      cli.prepare("INSERT INTO queue_control (action, domain, requested_at) VALUES ('delivernow', 'dest.test', 0)").run();
      assert.deepEqual(q.takeControl().map((c) => c.domain), ['dest.test'], 'and goes through after it');
    } finally {
      cli.close();
      q.close();
    }
  });
});
