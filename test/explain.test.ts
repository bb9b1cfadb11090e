/**
 * `postern destconfig explain DOMAIN` against a real DNS server on loopback, through the real
 * CLI. Proves that it names the entry that matches and why (exact, `.suffix`, Default), where
 * each setting comes from, the MX hosts in delivery's order with their addresses ordered by
 * each IP preference (and what Required leaves out), an SMTP route instead of MX, the identity
 * algorithm with its reference identifiers, an address remembered as having broken TLS, and
 * what delivery would do when DNS has no answer — in text and in JSON.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { QueueStore } from '../src/queue/store.js';
import { tempDir } from './harness.js';
import { startDnsServer, type DnsServer } from './peers/dns-server.js';
import { runCli, runCliOk } from './process.js';

interface Explained {
  domain: string;
  matched: { entry: string; how: string };
  settings: { key: string; value: unknown; from: string }[];
  route: { key: string; hosts: string[] } | null;
  routingProblem: { enhanced: string; bounces: boolean } | null;
  hosts: { name: string; port: number; preference: number; source: string; shuffledWith: string[]; addresses: { address: string; brokenTlsUntil: string | null }[]; problem?: string }[];
  tls: { setting: string; identity: { algorithm: string; references: string[] } | null };
}

describe('destconfig explain', () => {
  let dns: DnsServer;
  let dir = '';
  const cli = (...args: string[]) => runCliOk([...args, '--data-dir', dir]);
  const explainText = (domain: string) => cli('destconfig', 'explain', domain, '--dns-server', dns.address);
  const explainJson = async (domain: string): Promise<Explained> => JSON.parse(await cli('destconfig', 'explain', domain, '--dns-server', dns.address, '--json')) as Explained;

  before(async () => {
    dns = await startDnsServer({
      zone: {
        'multi.test': { MX: [{ preference: 20, exchange: 'mx-c.multi.test' }, { preference: 10, exchange: 'mx-a.multi.test' }, { preference: 10, exchange: 'mx-b.multi.test' }] },
        'mx-a.multi.test': { A: ['192.0.2.1'], AAAA: ['2001:db8::1'] },
        'mx-b.multi.test': { A: ['192.0.2.2'] },
        'mx-c.multi.test': { AAAA: ['2001:db8::3'] },
        'a.b.sub.test': { MX: [{ preference: 5, exchange: 'mx.sub.test' }] },
        'mx.sub.test': { A: ['192.0.2.9'] },
        'plain.test': { A: ['192.0.2.7'] },
      },
    });
    dir = tempDir('postern-explain-');
    await cli('destconfig', 'new', 'multi.test', '--tls', 'required-verify-hosted', '--concurrency', '7');
    await cli('destconfig', 'new', '.sub.test', '--tls', 'preferred-verify');
    await cli('smtproutes', 'new', 'routed.test', 'relay.routed.test:2526,[2001:db8::25]:2527');
    await cli('destconfig', 'new', 'routed.test', '--tls', 'required-verify-hosted');
  });

  after(async () => {
    await dns?.close();
  });

  test('an exact entry: settings with their source, MX order, shuffled equal preferences, the Hosted references', async () => {
    const e = await explainJson('MULTI.test.');
    assert.equal(e.domain, 'multi.test');
    assert.deepEqual(e.matched, { ...e.matched, entry: 'multi.test', how: 'exact' });
    const from = Object.fromEntries(e.settings.map((s) => [s.key, [s.value, s.from]]));
    assert.deepEqual(from.tls, ['required-verify-hosted', 'multi.test']);
    assert.deepEqual(from.concurrency, [7, 'multi.test']);
    assert.deepEqual(from.messagesPerConnection, [50, '(Default)']);
    assert.deepEqual(e.hosts.map((h) => [h.name, h.preference]), [['mx-a.multi.test', 10], ['mx-b.multi.test', 10], ['mx-c.multi.test', 20]]);
    assert.deepEqual(e.hosts[0]!.shuffledWith, ['mx-b.multi.test']);
    assert.deepEqual(e.hosts[2]!.shuffledWith, []);
    assert.equal(e.route, null);
    assert.equal(e.tls.identity?.algorithm, 'hosted');
    assert.deepEqual(e.tls.identity?.references, ['multi.test (the recipient domain)', 'mx-a.multi.test (MX host)', 'mx-b.multi.test (MX host)', 'mx-c.multi.test (MX host)']);
    const text = await explainText('multi.test');
    assert.match(text, /^Matched entry: multi\.test \(exact: /m);
    assert.match(text, /^ {2}TLS Support\s+Required - Verify Hosted Domains\s+\[from multi\.test\]$/m);
    assert.match(text, /^ {2}1\. mx-a\.multi\.test port 25 \(MX preference 10; same preference as mx-b\.multi\.test: their order is random each time\)$/m);
  });

  test('the addresses of each host in the order of each IP preference; Required leaves the other family out', async () => {
    const order = async (pref: string) => {
      await cli('destconfig', 'edit', 'multi.test', '--ip-preference', pref);
      return (await explainJson('multi.test')).hosts.map((h) => [h.name, h.addresses.map((a) => a.address), h.problem ?? null]);
    };
    assert.deepEqual(await order('ipv6-preferred'), [
      ['mx-a.multi.test', ['2001:db8::1', '192.0.2.1'], null],
      ['mx-b.multi.test', ['192.0.2.2'], null],
      ['mx-c.multi.test', ['2001:db8::3'], null],
    ]);
    assert.deepEqual(await order('ipv4-preferred'), [
      ['mx-a.multi.test', ['192.0.2.1', '2001:db8::1'], null],
      ['mx-b.multi.test', ['192.0.2.2'], null],
      ['mx-c.multi.test', ['2001:db8::3'], null],
    ]);
    const v6 = await order('ipv6-required');
    assert.deepEqual(v6[0], ['mx-a.multi.test', ['2001:db8::1'], null]);
    assert.match(String(v6[1]![2]), /IPv6 Required but the host has no IPv6 address/);
    const v4 = await order('ipv4-required');
    assert.deepEqual(v4[0], ['mx-a.multi.test', ['192.0.2.1'], null]);
    assert.match(String(v4[2]![2]), /IPv4 Required but the host has no IPv4 address/);
  });

  test('a .suffix entry, the Default entry, the implicit MX, a domain DNS does not know', async () => {
    const sub = await explainJson('a.b.sub.test');
    assert.deepEqual([sub.matched.entry, sub.matched.how], ['.sub.test', 'suffix']);
    assert.equal(sub.tls.identity?.algorithm, 'verify');
    assert.ok(sub.tls.identity?.references.some((r) => r.startsWith('mx.sub.test (host connected to')));
    assert.match(await explainText('a.b.sub.test'), /^Matched entry: \.sub\.test \(suffix: no exact entry; \.sub\.test is the most specific subdomain pattern above it\)$/m);

    const plain = await explainJson('plain.test');
    assert.deepEqual([plain.matched.entry, plain.matched.how], ['(Default)', 'default']);
    assert.ok(plain.settings.every((s) => s.from === '(Default)'));
    assert.deepEqual(plain.hosts.map((h) => [h.name, h.source, h.addresses.map((a) => a.address)]), [['plain.test', 'implicit-mx', ['192.0.2.7']]]);
    assert.equal(plain.tls.identity, null);

    const none = await explainJson('nowhere.test');
    assert.deepEqual(none.routingProblem && [none.routingProblem.enhanced, none.routingProblem.bounces], ['5.1.2', true]);
    assert.match(await explainText('nowhere.test'), /^Delivery finds no host: 5\.1\.2 domain nowhere\.test does not exist \(NXDOMAIN\) \(the message bounces\)$/m);
  });

  test('an SMTP route replaces MX; its hosts are the route-host references of Hosted', async () => {
    const e = await explainJson('routed.test');
    assert.deepEqual(e.route, { key: 'routed.test', hosts: ['relay.routed.test:2526', '2001:db8::25:2527'] });
    assert.deepEqual(e.hosts.map((h) => [h.name, h.port, h.source]), [['relay.routed.test', 2526, 'route'], ['2001:db8::25', 2527, 'route']]);
    assert.match(String(e.hosts[0]!.problem), /has no address/);
    assert.deepEqual(e.hosts[1]!.addresses.map((a) => a.address), ['2001:db8::25']);
    assert.deepEqual(e.tls.identity?.references.slice(0, 2), ['routed.test (the recipient domain)', 'relay.routed.test (SMTP route host)']);
    assert.match(await explainText('routed.test'), /^SMTP route routed\.test: /m);
  });

  test('an address remembered as having broken TLS is shown with the time it is remembered until', async () => {
    const until = Date.now() + 3_600_000;
    const q = QueueStore.open(dir);
    try {
      q.rememberBrokenTls('192.0.2.2', 25, until);
      q.rememberBrokenTls('192.0.2.1', 25, Date.now() - 1000); // already over: not shown
    } finally {
      q.close();
    }
    const e = await explainJson('multi.test');
    const b = e.hosts.find((h) => h.name === 'mx-b.multi.test')!;
    assert.deepEqual(b.addresses, [{ address: '192.0.2.2', brokenTlsUntil: new Date(until).toISOString() }]);
    assert.ok(e.hosts.find((h) => h.name === 'mx-a.multi.test')!.addresses.every((a) => a.brokenTlsUntil === null));
    assert.match(await explainText('multi.test'), /192\.0\.2\.2 {3}broken TLS remembered until \S+: Preferred settings send in clear text until then/);
  });

  test('a bad domain is refused with exit 2 and the reason', async () => {
    const r = await runCli(['destconfig', 'explain', 'bad_name.test', '--data-dir', dir, '--dns-server', dns.address]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /invalid domain "bad_name\.test"/);
  });
});
