/**
 * Certificates and bounce-verification keys shared by a cluster (SPEC §12) with
 * `--cluster-secret-file`, on a real Redis that speaks TLS only and asks for a password
 * (rediss://:PASSWORD@…, its certificate from a test CA the nodes trust through
 * NODE_EXTRA_CA_CERTS): nodes given the same file take the cluster's certificates, keys and
 * certificate choices, Redis never holds a key in clear; a node given another file keeps its
 * own and every status says so; a secret file readable by others, or too short, stops the start.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { tempDir, waitForAsync as waitFor } from './harness.js';
import { TestCA } from './peers/ca.js';
import { redisAvailable, startRedis, type RedisPeer } from './peers/redis.js';
import { logFile, runCli, runCliOk, startPostern, type PosternProcess } from './process.js';

const inCI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';
// Addresses 127.0.86.x and port 2622 are this file's own.
const REDIS = { host: '127.0.86.100', port: 2622 };
const PASSWORD = 'redis pass/word';
const NODES = ['a', 'b', 'c'] as const;
type Node = (typeof NODES)[number];
const BV_KEY = 'Shared-bounce-key-0123456789';

interface Status {
  certificates: string;
  nodes: { node: string; alive: boolean; certificates: string }[];
}

describe('cluster certificates and keys under a secret file', { skip: !redisAvailable() && !inCI ? 'redis-server not installed' : false }, () => {
  let redis: RedisPeer;
  let ca: TestCA;
  let raw: Redis;
  const work = tempDir('postern-secrets-');
  const dirs = {} as Record<Node, string>;
  const nodes = {} as Record<Node, PosternProcess | undefined>;
  const secretFiles = { one: join(work, 'cluster.secret'), other: join(work, 'other.secret') };
  const cli = (n: Node, ...args: string[]) => runCliOk([...args, '--data-dir', dirs[n]]);
  const status = async (n: Node) => JSON.parse(await cli(n, 'cluster', 'status', '--json')) as Status;
  const start = (n: Node, secret: string) =>
    startPostern({ dataDir: dirs[n], listen: `127.0.86.${1 + NODES.indexOf(n)}:0`, hostname: `${n}.cluster.test`, args: ['--cluster', redis.url, '--node-name', n, '--cluster-secret-file', secret] });
  const keyFile = (n: Node, file: string) => join(dirs[n], 'keys', file);

  before(async () => {
    ca = await TestCA.create('Postern Redis Test CA');
    const server = await ca.issue({ cn: REDIS.host, ipAddresses: [REDIS.host] });
    writeFileSync(join(work, 'ca.pem'), ca.certPem);
    // Inherited by every node and CLI process started from here on.
    process.env.NODE_EXTRA_CA_CERTS = join(work, 'ca.pem');
    redis = await startRedis({ ...REDIS, password: PASSWORD, tls: { certPem: server.chainPem, keyPem: server.keyPem } });
    raw = new Redis({ host: REDIS.host, port: REDIS.port, password: PASSWORD, tls: { ca: ca.certPem }, lazyConnect: true });
    await raw.connect();
    writeFileSync(secretFiles.one, 'kZ3v9Qm2+xW8rT5yL0pN7bC4dF6gH1jK2sA9eU3iO8w=\n', { mode: 0o600 });
    writeFileSync(secretFiles.other, 'another-secret-entirely-0123456789abcdefghij\n', { mode: 0o600 });
    for (const n of NODES) dirs[n] = tempDir(`postern-secrets-${n}-`);
    // Node a has a certificate and a bounce-verification key before it joins: it seeds the cluster.
    await cli('a', 'certconfig', 'create', 'gw-a', '--cn', 'a.cluster.test', '--dns', 'a.cluster.test');
    await cli('a', 'bvconfig', 'key', 'add', '--key', BV_KEY);
    nodes.a = await start('a', secretFiles.one);
    await waitFor('a to seed the cluster with its certificates', async () => ((await raw.hget('postern:config', 'secrets-check')) ? true : undefined));
    nodes.b = await start('b', secretFiles.one);
  });

  after(async () => {
    delete process.env.NODE_EXTRA_CA_CERTS;
    raw?.disconnect();
    await Promise.allSettled(NODES.map((n) => nodes[n]?.stop()));
    await redis?.close();
  });

  test("a node given the same secret file takes the cluster's certificates and keys; Redis holds none in clear", async () => {
    await waitFor("b's copy holding gw-a", async () => (/^gw-a\s/m.test(await cli('b', 'certconfig', 'list')) ? true : undefined));
    for (const file of ['gw-a.key', 'bv-1.key']) {
      assert.equal(readFileSync(keyFile('b', file), 'utf8'), readFileSync(keyFile('a', file), 'utf8'), `${file} is the same on both nodes`);
      assert.equal(statSync(keyFile('b', file)).mode & 0o777, 0o600, `${file} is written 0600`);
    }
    assert.match(await cli('b', 'bvconfig', 'key', 'list'), /^0\s/m);
    // What Redis holds: no private key, no bounce-verification key text, in any field.
    const stored = Object.values(await raw.hgetall('postern:config')).join('\n');
    assert.doesNotMatch(stored, /PRIVATE KEY/);
    assert.ok(!stored.includes(BV_KEY), 'the bounce-verification key is not in Redis in clear');
    assert.ok(!stored.includes(readFileSync(keyFile('a', 'gw-a.key'), 'utf8').split('\n')[1]!), 'no line of the private key is in Redis');
    const s = await waitFor('both nodes alive', async () => {
      const x = await status('a');
      return x.nodes.filter((n) => n.alive).length === 2 ? x : undefined;
    });
    assert.equal(s.certificates, 'shared');
    const text = await cli('b', 'cluster', 'status');
    assert.match(text, /^Cluster at rediss:\/\/:\*\*\*@127\.0\.86\.100:2622; this data directory is node b\.$/m);
    assert.match(text, /^Certificates and keys: the cluster's, sealed in Redis with the cluster secret file$/m);
    assert.match(text, /^b\s+alive\s+.*\s+shared$/m);
  });

  test('a certificate made on one node, a choice of client certificate and a deletion reach the other', async () => {
    await cli('b', 'certconfig', 'create', 'gw-b', '--cn', 'b.cluster.test');
    assert.match(await cli('a', 'certconfig', 'list'), /^gw-b\s/m);
    // a's gateway takes the new version by itself: the key file appears within a second or so.
    await waitFor("gw-b's key in a's data directory", async () => (existsSync(keyFile('a', 'gw-b.key')) ? true : undefined), 5000);
    assert.equal(readFileSync(keyFile('a', 'gw-b.key'), 'utf8'), readFileSync(keyFile('b', 'gw-b.key'), 'utf8'));
    await cli('a', 'certconfig', 'use-client', 'gw-b');
    assert.match(await cli('b', 'certconfig', 'list'), /^gw-b\s.*client/m);
    await cli('a', 'certconfig', 'use-client', 'none');
    await cli('a', 'certconfig', 'delete', 'gw-b');
    await waitFor("gw-b's key gone from b's data directory", async () => (existsSync(keyFile('b', 'gw-b.key')) ? undefined : true), 5000);
    assert.doesNotMatch(await cli('b', 'certconfig', 'list'), /^gw-b\s/m);
  });

  test('a node given another secret file keeps its own certificates, shares the rest, and says so', async () => {
    await cli('c', 'certconfig', 'create', 'gw-c', '--cn', 'c.cluster.test');
    const check = await raw.hget('postern:config', 'secrets-check');
    nodes.c = await start('c', secretFiles.other);
    const s = await waitFor('c in status with another secret file', async () => {
      const x = await status('a');
      return x.nodes.find((n) => n.node === 'c' && n.alive)?.certificates === 'other secret file' ? x : undefined;
    });
    assert.equal(s.certificates, 'mixed');
    assert.match(await cli('a', 'cluster', 'status'), /^Certificates and keys: not the same on every node/m);
    await waitFor("c's mail log saying so", async () => (/certificates and keys stay this node's own: the cluster's were sealed with another cluster secret file/.test(await readFile(logFile(dirs.c, 'mail.log'), 'utf8')) ? true : undefined));
    // c's change of the shared table is the cluster's; its certificates never replace the cluster's.
    await cli('c', 'destconfig', 'new', 'from-c.test', '--tls', 'required');
    assert.match(await cli('a', 'destconfig', 'list'), /^from-c\.test\s/m);
    assert.equal(await raw.hget('postern:config', 'secrets-check'), check);
    const onA = await cli('a', 'certconfig', 'list');
    assert.match(onA, /^gw-a\s/m);
    assert.doesNotMatch(onA, /^gw-c\s/m);
    const onC = await cli('c', 'certconfig', 'list');
    assert.match(onC, /^gw-c\s/m);
    assert.doesNotMatch(onC, /^gw-a\s/m);
  });

  test('a secret file readable by others, too short or missing stops the start, saying why', async () => {
    const loose = join(work, 'loose.secret');
    writeFileSync(loose, 'kZ3v9Qm2+xW8rT5yL0pN7bC4dF6gH1jK2sA9eU3iO8w=\n', { mode: 0o644 });
    const short = join(work, 'short.secret');
    writeFileSync(short, 'too-short\n', { mode: 0o600 });
    const dir = tempDir('postern-secrets-bad-');
    const startWith = (file: string) => runCli(['start', '--data-dir', dir, '--listen', '127.0.86.9:0', '--admin', 'off', '--cluster', redis.url, '--node-name', 'bad', '--cluster-secret-file', file]);
    const cases: [string, RegExp][] = [
      [loose, /cluster-secret-file.*readable by its owner only \(it is mode 0644: chmod 600 it\)/],
      [short, /cluster-secret-file.*at least 32 characters of secret \(it holds 9/],
      [join(work, 'missing.secret'), /cluster-secret-file.*a readable file \(ENOENT\)/],
    ];
    for (const [file, message] of cases) {
      const r = await startWith(file);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, message);
      assert.ok(!existsSync(join(dir, 'cluster.json')), 'the data directory does not join');
    }
  });
});
