/**
 * Limits held cluster-wide (SPEC §12), with three real nodes on a real Redis relaying into one
 * receiver that counts simultaneous sessions: an entry's concurrency of 5 is never exceeded by
 * the three nodes together and is reached; one recipient window of 10 per minute is shared; the
 * slots of a node SIGKILLed while holding them are free within the lease TTL; with Redis stopped
 * nothing is lost and the limit still holds (each node keeps to its share), and the nodes rejoin
 * when it is back.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sendMail, tempDir, waitForAsync as waitFor } from './harness.js';
import { startDnsServer, type DnsServer } from './peers/dns-server.js';
import { redisAvailable, startRedis, type RedisPeer } from './peers/redis.js';
import { startSmtpPeer, type SmtpPeer } from './peers/smtp-peer.js';
import { logFile, runCliOk, startPostern, type PosternProcess } from './process.js';
import { readFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { TAKE } from '../src/cluster/limits.js';
import { LimitCounters } from '../src/delivery/limits.js';

const inCI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';
// Addresses 127.0.85.x and ports 2620-2621 are this file's own.
const REDIS = { host: '127.0.85.100', port: 2620 };
const MX = { host: '127.0.85.1', port: 2621 };
const NODES = ['a', 'b', 'c'] as const;
type Node = (typeof NODES)[number];

describe('cluster-wide limits', { skip: !redisAvailable() && !inCI ? 'redis-server not installed' : false }, () => {
  let redis: RedisPeer;
  let dns: DnsServer;
  let mx: SmtpPeer;
  const dirs = {} as Record<Node, string>;
  const nodes = {} as Record<Node, PosternProcess | undefined>;
  /** Recipient domains whose final-dot reply the receiver holds back, and for how long. */
  const hold: Record<string, number> = { 'limited.test': 300, 'sticky.test': 60_000, 'longrun.test': 1500 };
  const cli = (n: Node, ...args: string[]) => runCliOk([...args, '--data-dir', dirs[n]]);
  const start = (n: Node) =>
    startPostern({
      dataDir: dirs[n],
      listen: `127.0.85.${11 + NODES.indexOf(n)}:0`,
      dnsServer: dns.address,
      smtpPort: MX.port,
      hostname: `${n}.cluster.test`,
      args: ['--cluster', redis.url, '--node-name', n, '--cluster-lease-ttl', '3'],
    });
  const delivered = (domain: string) => mx.messages.filter((m) => m.to.some((t) => t.endsWith(`@${domain}`))).length;
  const send = async (n: Node, domain: string, count: number, tag: string) => {
    for (let i = 0; i < count; i++) {
      const r = await sendMail(nodes[n]!.port, `sender@${n}.test`, [`${tag}${i}@${domain}`], `Subject: ${tag} ${i}\r\n\r\nhello\r\n`, nodes[n]!.host);
      assert.equal(r.code, 250, r.text);
    }
  };
  const openFor = (domain: string) => mx.sessions.filter((s) => s.closedBy === undefined && s.commands.some((c) => c.includes(`@${domain}>`))).length;
  /** The most sessions for `domain` open at once while `fn` runs, sampled every 10 ms. */
  const peakDuring = async (domain: string, fn: () => Promise<void>) => {
    let peak = 0;
    const open = () => openFor(domain);
    const t = setInterval(() => (peak = Math.max(peak, open())), 10);
    try {
      await fn();
    } finally {
      clearInterval(t);
    }
    return peak;
  };

  before(async () => {
    redis = await startRedis(REDIS);
    mx = await startSmtpPeer({
      host: MX.host,
      port: MX.port,
      act: (step, _arg, session) => {
        if (step !== 'dot') return undefined;
        const rcpt = session.commands.filter((c) => /^RCPT TO:/i.test(c)).at(-1) ?? '';
        const domain = /@([^>]+)>/.exec(rcpt)?.[1] ?? '';
        const ms = hold[domain];
        return ms === undefined ? undefined : { reply: '250 2.0.0 queued', delayMs: ms };
      },
    });
    dns = await startDnsServer({
      zone: Object.fromEntries([
        ...['limited.test', 'window.test', 'sticky.test', 'longrun.test'].map((d) => [d, { MX: [{ preference: 10, exchange: 'mx.cluster.test' }] }]),
        ['mx.cluster.test', { A: [MX.host] }],
      ]),
    });
    for (const n of NODES) dirs[n] = tempDir(`postern-limits-${n}-`);
    // The table is made on node a before it joins: it seeds the cluster with it.
    await cli('a', 'destconfig', 'new', 'limited.test', '--concurrency', '5', '--messages-per-connection', '1');
    await cli('a', 'destconfig', 'new', 'window.test', '--recipients', '10/1');
    await cli('a', 'destconfig', 'new', 'sticky.test', '--concurrency', '2', '--messages-per-connection', '1');
    await cli('a', 'destconfig', 'new', 'longrun.test', '--concurrency', '3', '--messages-per-connection', '100');
    nodes.a = await start('a');
    await waitFor('a to seed the cluster', async () => (/^Configuration version: \d+/m.test(await cli('a', 'cluster', 'status')) ? true : undefined));
    nodes.b = await start('b');
    nodes.c = await start('c');
    await waitFor('three nodes alive with the table', async () => {
      const s = JSON.parse(await cli('a', 'cluster', 'status', '--json')) as { nodes: { alive: boolean }[] };
      const tables = await Promise.all(NODES.map((n) => cli(n, 'destconfig', 'list')));
      return s.nodes.filter((x) => x.alive).length === 3 && tables.every((t) => /limited\.test/.test(t)) ? true : undefined;
    });
  });

  after(async () => {
    await Promise.allSettled(NODES.map((n) => nodes[n]?.stop()));
    await Promise.allSettled([mx?.close(), dns?.close(), redis?.close()]);
  });

  test("the shared recipient window answers as the local one does, on the same clock", async () => {
    const r = new Redis({ host: REDIS.host, port: REDIS.port, lazyConnect: true });
    await r.connect();
    try {
      // Pseudo-random but repeatable: steps of 0-40 s, takes of 1-7, windows of 10/1 and 25/2.
      let seed = 7;
      const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
      for (const [limit, minutes] of [[10, 1], [25, 2]] as const) {
        const local = new LimitCounters();
        const key = `postern:window:equivalence-${limit}`;
        let now = 1_764_000_000_000 + rand(1000);
        for (let i = 0; i < 400; i++) {
          now += rand(4) === 0 ? rand(40_000) : rand(1500);
          if (i === 200) now += 3 * 3_600_000; // a long idle: the whole window expires at once
          const want = 1 + rand(7);
          const available = local.recipientsAvailable('k', now, limit, minutes);
          const granted = Math.min(available, want);
          const waitMs = granted > 0 ? 0 : local.recipientsFreeAt('k', now, limit, minutes) - now;
          if (granted > 0) local.countRecipients('k', now, granted);
          const got = (await r.eval(TAKE, 1, key, String(limit), String(minutes * 60_000), String(want), String(now))) as [number, number];
          assert.deepEqual(got.map(Number), [granted, waitMs], `step ${i} at ${now}: want ${want} of ${limit}/${minutes} min`);
        }
        // However many recipients passed, the window's hash holds at most one field per second of it.
        assert.ok((await r.hlen(key)) <= minutes * 60 + 2);
      }
    } finally {
      r.disconnect();
    }
  });

  test('concurrency 5 across three nodes: never exceeded, and reached', async () => {
    const peak = await peakDuring('limited.test', async () => {
      await Promise.all(NODES.map((n) => send(n, 'limited.test', 20, `c-${n}-`)));
      await waitFor('60 messages delivered', async () => (delivered('limited.test') >= 60 ? true : undefined), 120_000);
    });
    assert.equal(delivered('limited.test'), 60);
    assert.ok(mx.maxConcurrent <= 5, `the receiver saw ${mx.maxConcurrent} sessions at once`);
    assert.equal(peak, 5, 'the limit is used, not only respected');
  });

  test('10 recipients per minute across the nodes: one window', async () => {
    await Promise.all(NODES.map((n) => send(n, 'window.test', 6, `w-${n}-`)));
    await waitFor('the window filled', async () => (delivered('window.test') >= 10 ? true : undefined));
    // Hold on a few seconds: nothing more may go within the minute.
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(delivered('window.test'), 10, 'the three nodes together sent the window, no more');
    // What waits, on every node: queue list --cluster.
    const listed = await waitFor('the 8 waiting recipients in queue list --cluster', async () => {
      const j = JSON.parse(await cli('b', 'queue', 'list', '--cluster', '--domain', 'window.test', '--json')) as { recipients: { node: string; to: string }[] };
      return j.recipients.length === 8 ? j.recipients : undefined;
    });
    for (const r of listed) assert.equal(r.node, /^w-(\w)-/.exec(r.to)![1], `${r.to} is listed under the node that holds it`);
    assert.match(await cli('a', 'queue', 'list', '--cluster', '--domain', 'window.test'), /^8 recipients pending on 3 nodes$/m);
  });

  test('a change made on node a takes effect for the deliveries of node c within a second', async () => {
    // moved.test is not in DNS: without the route made on a, c would bounce the message at once.
    await cli('a', 'smtproutes', 'new', 'moved.test', `${MX.host}:${MX.port}`);
    await new Promise((r) => setTimeout(r, 1000));
    await send('c', 'moved.test', 1, 'moved-c-');
    await waitFor("c delivering through the route made on a", async () => (delivered('moved.test') === 1 ? true : undefined), 10_000);
  });

  test("report tls --cluster: every node's counts, summed", async () => {
    type Report = { rows: ({ domain: string } & Record<string, number>)[]; totals: Record<string, number>; nodes?: string[]; missing?: string[] };
    const own = await Promise.all(NODES.map(async (n) => JSON.parse(await cli(n, 'report', 'tls', '--last', '1d', '--json')) as Report));
    const all = JSON.parse(await cli('b', 'report', 'tls', '--last', '1d', '--json', '--cluster')) as Report;
    assert.deepEqual(all.nodes, ['a', 'b', 'c']);
    assert.deepEqual(all.missing, []);
    // Each node delivered some of limited.test: the cluster's figures are the three added up.
    assert.ok(own.every((r) => r.rows.some((x) => x.domain === 'limited.test' && x.attempted > 0)), 'every node has counts of its own');
    for (const column of ['attempted', 'clear', 'preferredOk', 'encryptedMessages', 'clearMessages']) {
      assert.equal(all.totals[column], own.reduce((sum, r) => sum + r.totals[column]!, 0), column);
      for (const domain of ['limited.test', 'window.test']) {
        const mine = (r: Report) => r.rows.find((x) => x.domain === domain)?.[column] ?? 0;
        assert.equal(mine(all), own.reduce((sum, r) => sum + mine(r), 0), `${domain} ${column}`);
      }
    }
    assert.match(await cli('a', 'report', 'tls', '--cluster'), /^Nodes summed: a, b, c$/m);
  });

  test("a node SIGKILLed while holding slots: its slots are free within the lease TTL", async () => {
    // (A destination opens a second connection only while more messages wait than it has open.)
    await send('c', 'sticky.test', 4, 's-c-');
    await waitFor('c holding both slots (two sessions held at the final dot)', async () => (mx.sessions.filter((s) => s.closedBy === undefined && s.commands.some((c) => /@sticky\.test/.test(c))).length === 2 ? true : undefined), 20_000).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${JSON.stringify(mx.sessions.slice(-4).map((s) => [s.closedBy, s.commands]))}\n--- c ---\n${await readFile(logFile(dirs.c, 'mail.log'), 'utf8')}`);
    });
    await nodes.c!.kill('SIGKILL');
    nodes.c = undefined;
    hold['sticky.test'] = 0;
    await send('a', 'sticky.test', 1, 's-a-');
    // Without lease expiry node a would wait for slots nobody gives back.
    await waitFor("a's message through a slot c held", async () => (mx.messages.some((m) => m.to.includes('s-a-0@sticky.test')) ? true : undefined), 30_000);
  });

  test('Redis stopped: nothing lost, the limit still holds with shares, connections above the share close; back: the nodes rejoin', async () => {
    nodes.c = await start('c');
    await waitFor('c alive again', async () => {
      const s = JSON.parse(await cli('a', 'cluster', 'status', '--json')) as { nodes: { node: string; alive: boolean }[] };
      return s.nodes.filter((x) => x.alive).length === 3 ? true : undefined;
    });
    // Node a holds all three slots of longrun.test (connections that stay open for 100 messages).
    await send('a', 'longrun.test', 12, 'l-a-');
    await waitFor('a holding three longrun.test connections', async () => (openFor('longrun.test') === 3 ? true : undefined), 20_000);
    await redis.stop();
    // Its share is now 3 / 3 nodes = 1: two connections close after their current message.
    await waitFor('a down to its share of one connection', async () => (openFor('longrun.test') <= 1 ? true : undefined), 15_000);
    assert.match(await readFile(logFile(dirs.a, 'mail.log'), 'utf8'), /to longrun\.test closed after its current message: the cluster's Redis is unreachable and this node is above its share/);
    const longrunPeak = peakDuring('longrun.test', async () => {
      await waitFor('the 12 longrun.test messages delivered', async () => (delivered('longrun.test') >= 12 ? true : undefined), 60_000);
    });
    const before = delivered('limited.test');
    const peak = await peakDuring('limited.test', async () => {
      await Promise.all(NODES.map((n) => send(n, 'limited.test', 5, `r-${n}-`)));
      await waitFor('15 more delivered without Redis', async () => (delivered('limited.test') >= before + 15 ? true : undefined), 120_000);
    });
    assert.ok(peak <= 5, `${peak} sessions for limited.test at once without Redis`);
    assert.equal(await longrunPeak, 1, 'within its share once Redis was lost');
    assert.equal(delivered('longrun.test'), 12);
    await redis.start();
    await waitFor('three nodes alive again', async () => {
      const s = JSON.parse(await cli('a', 'cluster', 'status', '--json').catch(() => '{"nodes":[]}')) as { nodes: { alive: boolean }[] };
      return s.nodes.filter((x) => x.alive).length === 3 ? true : undefined;
    });
  });
});
