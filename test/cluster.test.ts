/**
 * Cluster mode on a real Redis (Debian's redis-server on loopback): two nodes started with
 * `--cluster`; one configuration (a CLI change on node A's data directory is in node B's copy and
 * reloaded by B's gateway; a change through B's API is the cluster's too); `cluster status`; the loser of two concurrent writers is told and
 * nothing of its change remains; a restarted node rejoins under its old name; Redis away: reads
 * work on the last copy, changes are refused, the gateways say so once; Redis back empty: the
 * newest copy seeds it again.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { ClusterCliSession } from '../src/cluster/cli-session.js';
import { ConfigConflictError } from '../src/cluster/config-sync.js';
import { ConfigStore } from '../src/config/store.js';
import { ClusterNode } from '../src/cluster/node.js';
import { BrokenTlsMemory } from '../src/delivery/broken-tls.js';
import { sendMail, tempDir, waitForAsync as waitFor } from './harness.js';
import { redisAvailable, startRedis, type RedisPeer } from './peers/redis.js';
import { logFile, runCli, runCliOk, startPostern, type PosternProcess } from './process.js';
import { readMembership } from '../src/cluster/membership.js';
import { claimTlsRpt } from '../src/cluster/reports.js';
import { connectRedis } from '../src/cluster/connect.js';
import { TlsRptStore } from '../src/observe/tlsrpt.js';
import type { TlsRptReport } from '../src/manage/tlsrpt-report.js';
import { startWithAdmin } from './peers/browser.js';
import { request, type APIRequestContext } from 'playwright-core';

const inCI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';
// Address 127.0.84.x and port 2699 are this file's own.
const REDIS = { host: '127.0.84.100', port: 2699 };

interface Status {
  configVersion: number | null;
  nodes: { node: string; alive: boolean; version: number; queue: number; started: number }[];
}

describe('cluster on Redis', { skip: !redisAvailable() && !inCI ? 'redis-server not installed' : false }, () => {
  let redis: RedisPeer;
  const dirs = { a: '', b: '' };
  const nodes: Record<'a' | 'b', PosternProcess | undefined> = { a: undefined, b: undefined };
  const cli = (node: 'a' | 'b', ...args: string[]) => runCliOk([...args, '--data-dir', dirs[node]]);
  const mailLog = (node: 'a' | 'b') => readFile(logFile(dirs[node], 'mail.log'), 'utf8').catch(() => '');
  const status = async (node: 'a' | 'b') => JSON.parse(await cli(node, 'cluster', 'status', '--json')) as Status;
  let api: APIRequestContext | undefined;
  const start = (node: 'a' | 'b', join = true) =>
    startPostern({ dataDir: dirs[node], listen: `127.0.84.${node === 'a' ? 1 : 2}:0`, args: join ? ['--cluster', redis.url, '--node-name', node] : [] });

  before(async () => {
    redis = await startRedis(REDIS);
    dirs.a = tempDir('postern-cluster-a-');
    dirs.b = tempDir('postern-cluster-b-');
    // Node A had a table of its own before it joined: the first node seeds the cluster.
    await cli('a', 'destconfig', 'new', 'before.test', '--tls', 'preferred');
    nodes.a = await start('a');
    await waitFor('node a to seed Redis', async () => ((await status('a')).configVersion ? true : undefined));
    // Node B also serves the page and the API: their changes are cluster changes too.
    const b = await startWithAdmin({ dataDir: dirs.b, listen: '127.0.84.2:0', admin: '127.0.84.2:0', args: ['--cluster', redis.url, '--node-name', 'b'] });
    nodes.b = b.proc;
    const token = /^(pst_\S+)$/m.exec(await cli('b', 'apitoken', 'create', 'deploy', '--role', 'administrator'))![1]!;
    api = await request.newContext({ baseURL: b.base, ignoreHTTPSErrors: true, extraHTTPHeaders: { authorization: `Bearer ${token}` } });
  });

  after(async () => {
    await api?.dispose();
    await Promise.allSettled([nodes.a?.stop(), nodes.b?.stop()]);
    await redis?.close();
  });

  test('both nodes are in cluster status; the data directory remembers the cluster', async () => {
    const s = await waitFor('both nodes alive', async () => {
      const x = await status('b');
      return x.nodes.filter((n) => n.alive).length === 2 ? x : undefined;
    });
    assert.deepEqual(s.nodes.map((n) => n.node), ['a', 'b']);
    assert.ok(s.nodes.every((n) => n.version === s.configVersion), JSON.stringify(s));
    assert.deepEqual(readMembership(dirs.b), { url: redis.url, node: 'b', leaseTtlSeconds: 10 });
    // B joined with an empty table and took the cluster's: A's entry is there.
    assert.match(await cli('b', 'destconfig', 'list'), /^before\.test\s/m);
    const text = await cli('a', 'cluster', 'status');
    assert.match(text, /^a\s+alive\s+[\d.]+ s ago\s+\d+\s+0\s+per node$/m);
    assert.match(text, /^Certificates and keys: per node/m);
  });

  test("a change on node A's data directory reaches node B's copy and B's gateway", async () => {
    const before = (await status('a')).configVersion!;
    await cli('a', 'destconfig', 'new', 'shared.test', '--tls', 'required', '--concurrency', '5');
    assert.equal((await status('a')).configVersion, before + 1);
    // B's CLI reads the cluster's configuration…
    assert.match(await cli('b', 'destconfig', 'detail', 'shared.test'), /^TLS Support: Required$/m);
    // …and B's gateway reloads it by itself.
    await waitFor("B's gateway reloading the new version", async () => (new RegExp(`Configuration reloaded: 2 entries, 0 routes \\(cluster configuration version ${before + 1}\\)`).test(await mailLog('b')) ? true : undefined));
    // Every kind of shared setting travels: routes, profiles, globals.
    await cli('b', 'smtproutes', 'new', 'routed.test', '192.0.2.25');
    await cli('b', 'bounceconfig', 'new', 'Fast', '--max-retries', '3');
    await cli('b', 'destconfig', 'setup', '--broken-tls-memory', '6');
    assert.match(await cli('a', 'smtproutes', 'list'), /routed\.test/);
    assert.match(await cli('a', 'bounceconfig', 'list'), /Fast/);
    assert.match(await cli('a', 'destconfig', 'setup'), /6 hours/);
  });

  test('two writers at once: the second is told, and nothing of its change remains', async () => {
    const first = await ClusterCliSession.begin(dirs.a, readMembership(dirs.a)!);
    const second = await ClusterCliSession.begin(dirs.b, readMembership(dirs.b)!);
    assert.equal(first.version, second.version);
    const edit = (dir: string, tls: 'no' | 'preferred-verify') => {
      const s = ConfigStore.open(dir);
      try {
        s.editEntry('shared.test', { tls });
      } finally {
        s.close();
      }
    };
    edit(dirs.a, 'no');
    edit(dirs.b, 'preferred-verify');
    assert.equal(await first.finish(), first.version + 1);
    await assert.rejects(second.finish(), (e: unknown) => e instanceof ConfigConflictError && /changed by another node meanwhile \(version \d+ became \d+\); this change was not applied/.test(e.message));
    // B's copy holds A's change, not its own.
    assert.match(await cli('b', 'destconfig', 'detail', 'shared.test'), /^TLS Support: No$/m);
    assert.match(await cli('a', 'destconfig', 'detail', 'shared.test'), /^TLS Support: No$/m);
  });

  test('remembered broken TLS is shared: what one node learns, the others skip STARTTLS for', async () => {
    const made = ['x', 'y'].map((name) => {
      const dir = tempDir(`postern-cluster-${name}-`);
      const store = ConfigStore.open(dir);
      const brokenTls = new BrokenTlsMemory();
      const node = new ClusterNode({ membership: { url: redis.url, node: `mem-${name}`, leaseTtlSeconds: 10 }, store, queueSize: () => 0, onConfig: () => undefined, onTrouble: () => undefined, brokenTls });
      node.start();
      return { store, brokenTls, node };
    });
    try {
      const [x, y] = made as [(typeof made)[0], (typeof made)[0]];
      const now = Date.now();
      x.brokenTls.remember('192.0.2.77', 25, now, 24);
      await waitFor('y to remember it too', async () => (y.brokenTls.isBroken('192.0.2.77', 25, Date.now()) ? true : undefined));
      assert.equal(y.brokenTls.isBroken('192.0.2.78', 25, Date.now()), false);
      // Kept in y's queue.db-less memory until the same time, not longer.
      assert.equal(y.brokenTls.isBroken('192.0.2.77', 25, now + 25 * 3_600_000), false);
    } finally {
      for (const m of made) {
        await m.node.stop();
        m.store.close();
      }
    }
  });

  test('a change through the API of node B is a change of the cluster', async () => {
    const before = (await status('a')).configVersion!;
    const r = await api!.post('/api/v1/destinations', { data: { name: 'api.test', tls: 'preferred' } });
    assert.equal(r.status(), 201, await r.text());
    assert.equal((await status('a')).configVersion, before + 1);
    assert.match(await cli('a', 'destconfig', 'detail', 'api.test'), /^TLS Support: Preferred$/m);
  });

  test("/metrics?cluster=1 and the TLS report's cluster view sum every node's figures", async () => {
    for (const [n, count] of [['a', 2], ['b', 1]] as const) {
      for (let i = 0; i < count; i++) {
        const r = await sendMail(nodes[n]!.port, 'sender@example.org', [`m${i}@metrics.invalid`], 'Subject: counted\r\n\r\nhello\r\n', nodes[n]!.host);
        assert.equal(r.code, 250, r.text);
      }
    }
    const value = (text: string, name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
    assert.equal(value(await (await api!.get('/metrics')).text(), 'postern_messages_accepted_total'), 1, "B's own figure");
    // A's figures reach Redis every few seconds.
    const text = await waitFor('both nodes in the sum', async () => {
      const t = await (await api!.get('/metrics?cluster=1')).text();
      return value(t, 'postern_messages_accepted_total') === 3 ? t : undefined;
    }, 15_000);
    assert.equal(value(text, 'postern_cluster_nodes_reporting'), 2);
    assert.doesNotMatch(text, /^postern_process_/m, 'no sum of process figures');
    assert.match(text, /^# TYPE postern_accept_seconds histogram$/m);
    assert.equal(Number(/^postern_accept_seconds_count (\d+)$/m.exec(text)?.[1]), 3);
    const report = await api!.get('/api/v1/reports/tls?last=1h&cluster=true');
    assert.equal(report.status(), 200, await report.text());
    const j = (await report.json()) as { nodes: string[]; totals: { attempted: number } };
    assert.ok(['a', 'b'].every((n) => j.nodes.includes(n)), JSON.stringify(j.nodes));
  });

  test("a TLS report (RFC 8460) sums every node's sessions, and one node claims each report", async () => {
    // Sessions recorded by each node on a day long past (the nodes' own senders leave it alone).
    const day = '2026-01-15';
    const session = { policyDomain: 'summed.test', policyType: 'no-policy-found' as const, policyStrings: [], mxHosts: [], sendingIp: '127.0.84.1', receivingMx: 'mx.summed.test', receivingIp: '192.0.2.9', day };
    for (const [n, ok, failed] of [['a', 3, 1], ['b', 2, 2]] as const) {
      const store = TlsRptStore.open(dirs[n]);
      try {
        store.add([{ ...session, result: 'success', count: ok }, { ...session, result: 'starttls-not-supported', count: failed }]);
      } finally {
        store.close();
      }
    }
    const own = JSON.parse(await cli('a', 'report', 'tlsrpt', '--domain', 'summed.test', '--day', day, '--json')) as TlsRptReport;
    assert.deepEqual(own.policies[0]!.summary, { 'total-successful-session-count': 3, 'total-failure-session-count': 1 });
    const summed = JSON.parse(await cli('a', 'report', 'tlsrpt', '--domain', 'summed.test', '--day', day, '--json', '--cluster')) as TlsRptReport;
    assert.deepEqual(summed.policies[0]!.summary, { 'total-successful-session-count': 5, 'total-failure-session-count': 3 });
    assert.equal(summed.policies[0]!['failure-details']![0]!['failed-session-count'], 3);
    const r = connectRedis(redis.url, { lazy: true });
    await r.connect();
    try {
      assert.equal(await claimTlsRpt(r, 'a', day, 'summed.test'), true);
      assert.equal(await claimTlsRpt(r, 'b', day, 'summed.test'), 'a', 'the second node is told who sends it');
      assert.equal(await claimTlsRpt(r, 'a', day, 'summed.test'), true, 'the claimer keeps it');
    } finally {
      r.disconnect();
    }
  });

  test('a node restarted without --cluster rejoins under its old name', async () => {
    const was = (await status('b')).nodes.find((n) => n.node === 'a')!.started;
    await nodes.a!.stop();
    nodes.a = await start('a', false);
    await waitFor('a back with a new start time', async () => ((await status('b')).nodes.find((n) => n.node === 'a' && n.alive && n.started > was) ? true : undefined));
  });

  test('Redis away: reads use the last copy, changes are refused, the gateways say so; Redis back empty: the newest copy seeds it', async () => {
    const version = (await status('a')).configVersion!;
    await redis.stop();
    const read = await runCli(['destconfig', 'detail', 'shared.test', '--data-dir', dirs.b]);
    assert.equal(read.code, 0, read.stderr);
    assert.match(read.stdout, /^TLS Support: No$/m);
    assert.match(read.stderr, /Redis at redis:\/\/127\.0\.84\.100:2699 cannot be reached .*last copy of the configuration \(version \d+\)/);
    const change = await runCli(['destconfig', 'new', 'offline.test', '--data-dir', dirs.b]);
    assert.equal(change.code, 1);
    assert.match(change.stderr, /the cluster's configuration cannot be changed now; nothing was changed/);
    assert.doesNotMatch((await runCli(['destconfig', 'list', '--data-dir', dirs.b])).stdout, /offline\.test/);
    const viaApi = await api!.post('/api/v1/destinations', { data: { name: 'offline-api.test' } });
    assert.equal(viaApi.status(), 409, await viaApi.text());
    assert.match(((await viaApi.json()) as { message: string }).message, /cannot be changed now; nothing was changed/);
    assert.equal((await api!.get('/api/v1/destinations/offline-api.test')).status(), 404);
    await waitFor('the condition in both mail logs', async () => ((await Promise.all([mailLog('a'), mailLog('b')])).every((l) => /Condition started: cluster: Redis at redis:\/\/127\.0\.84\.100:2699 unreachable/.test(l)) ? true : undefined));
    // And the alert of class cluster (nobody wants it here: the mail log says so).
    assert.match(await mailLog('b'), /Alert not sent \(cluster, critical, the cluster\): no alert recipient for cluster critical/);
    await redis.start(); // empty: no persistence
    const back = await waitFor('Redis seeded again by a node', async () => {
      const s = await status('a').catch(() => null);
      return s && s.configVersion === version ? s : undefined;
    });
    assert.equal(back.configVersion, version);
    await waitFor('the condition ended', async () => (/Condition ended: cluster/.test(await mailLog('b')) ? true : undefined));
    // And changes work again.
    await cli('b', 'destconfig', 'new', 'after.test');
    assert.match(await cli('a', 'destconfig', 'list'), /^after\.test\s/m);
  });

  test('--cluster without --node-name, or a bad URL, is refused before anything starts', async () => {
    const d = tempDir('postern-cluster-bad-');
    const r = await runCli(['start', '--data-dir', d, '--listen', '127.0.84.3:0', '--cluster', redis.url]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /invalid node-name "": allowed a node name with --cluster/);
    const u = await runCli(['start', '--data-dir', d, '--listen', '127.0.84.3:0', '--cluster', 'http://x', '--node-name', 'n']);
    assert.equal(u.code, 2);
    assert.match(u.stderr, /invalid cluster "http:\/\/x": allowed a URL starting redis:\/\//);
  });

  test('--cluster off leaves the cluster: the data directory forgets it and keeps its last copy as its own', async () => {
    await nodes.a!.stop();
    nodes.a = await startPostern({ dataDir: dirs.a, listen: '127.0.84.1:0', args: ['--cluster', 'off'] });
    assert.equal(readMembership(dirs.a), null);
    assert.match(await cli('a', 'destconfig', 'list'), /^shared\.test\s/m, 'the last copy stays');
    await cli('a', 'destconfig', 'new', 'alone.test');
    assert.doesNotMatch(await cli('b', 'destconfig', 'list'), /alone\.test/, 'a change there is no longer the cluster\'s');
  });
});

