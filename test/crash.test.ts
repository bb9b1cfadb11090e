/**
 * Nothing accepted is lost (SPEC §5): the real `postern start` process is SIGKILLed while
 * clients are still handing it mail and while it is delivering to a receiving SMTP server, then
 * started again on the same data directory. Proves that
 * - every message that got a 250 after DATA (from either process) reaches the receiving server
 *   at least once, identified by its unique Message-ID;
 * - right after the kill, before the restart, the queue on disk still holds at least every
 *   250'ed message the receiver had not yet got;
 * - duplicates are limited to messages in flight at the crash (at most one per delivery
 *   connection open at that moment);
 * - the queue is empty once everything is delivered.
 * Delivery is throttled with `destconfig new crash.test --concurrency 2` so that a backlog builds
 * up and the kill lands with messages queued, being injected and being delivered at once.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { RFC5321_TIMEOUTS, SmtpSession, type SmtpTimeouts } from '../src/smtp/client.js';
import { startDnsServer, type DnsServer } from './peers/dns-server.js';
import { startSmtpPeer, type SmtpPeer } from './peers/smtp-peer.js';
import { runCliOk, startPostern, type PosternProcess } from './process.js';
import { within } from './deadline.js';

// Address block 127.0.4.x is this file's own (other test files run in parallel).
const LISTEN_HOST = '127.0.4.1';
const LISTEN_PORT = 2641;
const MX_ADDRESS = '127.0.4.2';
const MX_PORT = 2642;
const DOMAIN = 'crash.test';

const TOTAL = 300;
const WORKERS = 6;
/** Kill once the receiver has this many messages (and injection is not finished). */
const KILL_AT = 50;
/**
 * Injection pauses while this many accepted messages are still waiting for delivery: the
 * backlog stays large enough to matter and small enough that injection cannot finish before
 * the kill point, whatever the relative speed of injection and delivery on this machine.
 */
const MAX_AHEAD = 100;

const CLIENT_TIMEOUTS: SmtpTimeouts = {
  ...RFC5321_TIMEOUTS,
  connect: 2000,
  greeting: 10_000,
  ehlo: 10_000,
  mail: 10_000,
  rcpt: 10_000,
  dataInit: 10_000,
  dataBlock: 10_000,
  dataTerm: 10_000,
  quit: 2000,
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function messageId(i: number): string {
  return `crash-${i}-${process.pid}@client.test`;
}

function body(i: number): Buffer {
  const id = messageId(i);
  return Buffer.from(
    [
      'From: sender@client.test',
      `To: user${i % 7}@${DOMAIN}`,
      `Subject: crash test ${i}`,
      `Message-ID: <${id}>`,
      `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
      '',
      `token ${id}`,
      'x'.repeat(900),
      '',
    ].join('\r\n'),
  );
}

const MESSAGE_ID_RE = /^Message-ID:\s*<([^>]+)>/im;

/** Message-IDs the receiver got, with how often each arrived. */
function receivedCounts(peer: SmtpPeer): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of peer.messages) {
    const id = MESSAGE_ID_RE.exec(m.data.toString('latin1'))?.[1];
    if (id === undefined) continue;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 25, detail: () => string = () => ''): Promise<void> {
  const until = Date.now() + within(timeoutMs);
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${within(timeoutMs)} ms waiting for ${what}\n${detail()}`);
    await sleep(stepMs);
  }
}

describe('crash: SIGKILL during injection and delivery loses nothing accepted', { timeout: within(180_000) }, () => {
  let tmp = '';
  let dataDir = '';
  let dns: DnsServer | undefined;
  let peer: SmtpPeer | undefined;
  const processes: PosternProcess[] = [];
  let stopping = false;

  after(async () => {
    stopping = true;
    for (const p of processes) await p.stop(5000).catch(() => undefined);
    await Promise.allSettled([peer?.close(), dns?.close()]);
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test(`${TOTAL} messages, ${WORKERS} sessions, SIGKILL after ${KILL_AT} delivered, restart`, async (t) => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'postern-crash-'));
    dataDir = path.join(tmp, 'data');
    const dnsServer = await startDnsServer({
      zone: {
        [DOMAIN]: { MX: [{ preference: 10, exchange: `mx.${DOMAIN}` }] },
        [`mx.${DOMAIN}`]: { A: [MX_ADDRESS] },
      },
    });
    dns = dnsServer;
    peer = await startSmtpPeer({ host: MX_ADDRESS, port: MX_PORT, hostname: `mx.${DOMAIN}` });
    const receiver = peer;
    await runCliOk(['destconfig', 'new', DOMAIN, '--concurrency', '2', '--data-dir', dataDir]);

    const start = async (): Promise<PosternProcess> => {
      const p = await startPostern({
        dataDir,
        listen: `${LISTEN_HOST}:${LISTEN_PORT}`,
        dnsServer: dnsServer.address,
        smtpPort: MX_PORT,
        hostname: 'postern.test',
        config: { timeouts: { connect: 3, greeting: 10, ehlo: 10, starttls: 10, tlsHandshake: 10, mail: 10, rcpt: 10, dataInit: 10, dataBlock: 10, dataTerm: 10, quit: 3 } },
      });
      processes.push(p);
      return p;
    };
    const first = await start();
    const output = (): string => processes.map((p, i) => `--- postern #${i + 1} (pid ${p.pid}) ---\n${p.output()}`).join('\n');

    // ---- injection: WORKERS sessions take message numbers from one counter ----------------
    const acked = new Set<string>();
    const notAcked = new Map<string, string>();
    let nextIndex = 0;
    let attempted = 0;
    let sending = 0;

    const openSession = async (): Promise<SmtpSession> => {
      const until = Date.now() + within(30_000);
      for (;;) {
        if (stopping) throw new Error('test is stopping');
        try {
          const s = await SmtpSession.open({ address: LISTEN_HOST, port: LISTEN_PORT, timeouts: CLIENT_TIMEOUTS });
          if (s.greeting.code === 220) {
            const e = await s.ehlo('client.test');
            if (e.code === 250) return s;
          }
          s.destroy();
        } catch {
          // refused while the gateway is down: try again until the restart
        }
        if (Date.now() > until) throw new Error(`cannot reach postern on ${LISTEN_HOST}:${LISTEN_PORT} for 30 s\n${output()}`);
        await sleep(50);
      }
    };

    // ---- the kill point: the receiver has ≥ KILL_AT, a delivery connection is open, and a
    // client has just written a transaction (MAIL, RCPT, DATA) that Postern has not answered --
    const openDeliverySessions = (): number => receiver.sessions.filter((s) => s.closedBy === undefined).length;
    interface KillSnapshot {
      received: number;
      attempted: number;
      acked: number;
      injectionsInFlight: number;
      openDeliverySessions: number;
    }
    let atKill: KillSnapshot | undefined;
    let reachedKillPoint: () => void = () => undefined;
    const killPoint = new Promise<void>((r) => (reachedKillPoint = r));
    const maybeKill = (): void => {
      if (atKill !== undefined || receiver.messages.length < KILL_AT || openDeliverySessions() === 0) return;
      atKill = { received: receiver.messages.length, attempted, acked: acked.size, injectionsInFlight: sending, openDeliverySessions: openDeliverySessions() };
      process.kill(first.pid, 'SIGKILL');
      reachedKillPoint();
    };

    const worker = async (): Promise<void> => {
      let s: SmtpSession | undefined;
      try {
        while (!stopping && nextIndex < TOTAL) {
          if (acked.size - receiver.messages.length >= MAX_AHEAD) {
            await sleep(5);
            continue;
          }
          s ??= await openSession();
          const i = nextIndex++;
          const id = messageId(i);
          const data = body(i);
          attempted++;
          sending++;
          try {
            // send() writes MAIL/RCPT/DATA at once (the listener offers PIPELINING), so from
            // here until the reply this transaction is in progress.
            const transaction = s.send({ from: 'sender@client.test', recipients: [{ address: `user${i % 7}@${DOMAIN}` }], size: data.length }, data);
            maybeKill();
            const r = await transaction;
            const final = r.kind === 'done' ? r.data : r.reply;
            if (final && final.code === 250) acked.add(id);
            else notAcked.set(id, final ? `${final.code} ${final.lines.join(' ')}` : `no DATA reply (${r.kind}: ${r.kind === 'done' ? (r.recipients[0]?.lines.join(' ') ?? '') : ''})`);
            if (!s.usable) {
              // The listener went away mid-transaction (the client reports it as a failed
              // transaction, not an exception): this session is over, as after a throw.
              s.destroy();
              s = undefined;
            }
          } catch (e) {
            notAcked.set(id, (e as Error).message);
            s?.destroy();
            s = undefined;
          } finally {
            sending--;
          }
        }
      } finally {
        if (s) await s.quit();
      }
    };
    const injection = Promise.all(Array.from({ length: WORKERS }, () => worker()));

    let killTimer: NodeJS.Timeout | undefined;
    await Promise.race([
      killPoint,
      injection.then(() => {
        throw new Error(`injection finished before the kill point (received ${receiver.messages.length})\n${output()}`);
      }),
      new Promise<never>((_, reject) => {
        killTimer = setTimeout(
          () => reject(new Error(`no kill point within 30 s: received ${receiver.messages.length}, attempted ${attempted}/${TOTAL}\n${output()}`)),
          30_000,
        );
      }),
    ]).finally(() => clearTimeout(killTimer));
    const killed = await first.exited;
    assert.equal(killed.signal, 'SIGKILL', `postern was not killed by SIGKILL: ${JSON.stringify(killed)}`);
    assert.ok(atKill);
    assert.ok(atKill.attempted < TOTAL, 'injection had finished before the kill');
    assert.ok(atKill.injectionsInFlight >= 1, 'no injection in progress at the kill');

    // ---- on disk, with no process running: everything 250'ed and not yet received is queued --
    const ackedByFirst = new Set(acked);
    const receivedBeforeRestart = receivedCounts(receiver);
    const missingAtCrash = [...ackedByFirst].filter((id) => !receivedBeforeRestart.has(id)).length;
    const pendingAtCrash = (JSON.parse(await runCliOk(['queue', 'list', '--json', '--data-dir', dataDir])) as unknown[]).length;
    assert.ok(missingAtCrash > 0, `no backlog at the kill: all ${ackedByFirst.size} accepted messages were already delivered (the test did not test a crash with mail queued)`);
    assert.ok(
      pendingAtCrash >= missingAtCrash,
      `after the crash the queue holds ${pendingAtCrash} recipients, but ${missingAtCrash} accepted messages were not yet delivered`,
    );

    // ---- restart on the same data directory; injection resumes against it ------------------
    const second = await start();
    await injection;
    assert.equal(attempted, TOTAL);
    const deliveredAll = (): boolean => {
      const got = receivedCounts(receiver);
      return [...acked].every((id) => got.has(id));
    };
    await waitUntil('every 250-acknowledged Message-ID at the receiver', deliveredAll, 60_000, 50, () => {
      const got = receivedCounts(receiver);
      const missing = [...acked].filter((id) => !got.has(id));
      return `${missing.length} of ${acked.size} missing, e.g. ${missing.slice(0, 5).join(', ')}\n${output()}`;
    });
    let pending: unknown[] = [];
    await waitUntil(
      'an empty queue',
      async () => {
        pending = JSON.parse(await runCliOk(['queue', 'list', '--json', '--data-dir', dataDir])) as unknown[];
        return pending.length === 0;
      },
      15_000,
      100,
      () => `still pending: ${JSON.stringify(pending.slice(0, 5))}\n${output()}`,
    );

    // ---- the books -----------------------------------------------------------------------
    const counts = receivedCounts(receiver);
    const ours = new Set(Array.from({ length: TOTAL }, (_, i) => messageId(i)));
    const strangers = [...counts.keys()].filter((id) => !ours.has(id));
    assert.deepEqual(strangers, [], 'the receiver got Message-IDs nobody sent');
    for (const m of receiver.messages) {
      const id = MESSAGE_ID_RE.exec(m.data.toString('latin1'))?.[1];
      assert.ok(id !== undefined && m.data.includes(`token ${id}`), `a delivered message lost its body: ${m.data.subarray(0, 200).toString('latin1')}`);
    }
    const duplicates = [...counts.values()].filter((n) => n > 1).reduce((a, n) => a + n - 1, 0);
    const committedWithout250 = [...notAcked.keys()].filter((id) => counts.has(id)).length;
    const stats = {
      total: TOTAL,
      acked: acked.size,
      ackedByFirstProcess: ackedByFirst.size,
      notAcked: notAcked.size,
      notAckedButDelivered: committedWithout250,
      atKill,
      missingAtCrash,
      pendingAtCrash,
      receivedMessages: receiver.messages.length,
      uniqueReceived: counts.size,
      duplicates,
    };
    t.diagnostic(`crash stats: ${JSON.stringify(stats)}`);
    // Each client session loses at most the one transaction the crash interrupted.
    assert.ok(notAcked.size <= WORKERS, `${notAcked.size} messages not accepted: ${JSON.stringify([...notAcked].slice(0, 10))}\n${output()}`);
    assert.ok(
      duplicates <= atKill.openDeliverySessions,
      `${duplicates} duplicates, more than the ${atKill.openDeliverySessions} delivery connections open at the crash: ${JSON.stringify(stats)}`,
    );

    const stopped = await second.stop();
    assert.deepEqual(stopped, { code: 0, signal: null }, `postern did not stop cleanly on SIGTERM\n${second.output()}`);

    // Delivery connection ids (DCID) are persisted, so the restarted process does not reuse them.
    const dcids = [...(await readFile(path.join(dataDir, 'logs', 'mail.log'), 'utf8')).matchAll(/New SMTP DCID (\d+) /g)].map((m) => m[1]);
    assert.ok(dcids.length > 0, 'no delivery connection in the mail log');
    assert.deepEqual(dcids.filter((v, i) => dcids.indexOf(v) !== i), [], 'DCIDs reused after the restart');
  });

  // ICIDs, like DCIDs, come from a counter kept in queue.db, so a restart never reuses one.
  test('incoming connection ids (ICID) are not reused by the restarted process', async () => {
    assert.ok(dataDir, 'the crash test did not run');
    const icids = [...(await readFile(path.join(dataDir, 'logs', 'mail.log'), 'utf8')).matchAll(/New SMTP ICID (\d+) /g)].map((m) => m[1]);
    assert.ok(icids.length > 0, 'no incoming connection in the mail log');
    const reused = [...new Set(icids.filter((v, i) => icids.indexOf(v) !== i))];
    assert.deepEqual(reused.slice(0, 10), [], `${reused.length} ICIDs used for more than one connection`);
  });
});

describe('stop: a client idle on the listener does not hold SIGTERM', { timeout: within(60_000) }, () => {
  test('the idle client gets 421 and Postern exits 0 within the grace time, not smtp-server’s 30 s', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'postern-stop-'));
    const p = await startPostern({ dataDir, listen: `${LISTEN_HOST}:2643` });
    try {
      const socket = net.connect({ host: LISTEN_HOST, port: 2643 });
      let received = '';
      socket.setEncoding('utf8').on('data', (d: string) => (received += d));
      socket.on('error', () => undefined); // the server ends the connection; that is the point
      const deadline = Date.now() + within(10_000);
      while (!received.startsWith('220') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.match(received, /^220 /);
      const started = Date.now();
      const status = await p.stop(40_000);
      const took = Date.now() - started;
      assert.equal(status.code, 0, p.output());
      assert.match(received, /\r\n421 /, 'the idle client was told the server is shutting down');
      // The grace is 5 s; before, smtp-server's own closeTimeout (30 s) held the stop.
      assert.ok(took < 20_000, `stop took ${took} ms`);
      socket.destroy();
    } finally {
      await p.kill().catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
