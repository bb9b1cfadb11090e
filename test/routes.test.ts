/**
 * SMTP routes: `ALL` (the default route, a smarthost), `.suffix` routes like the table's, exact
 * routes, and `smtproutes new` refusing a route that exists (edit changes it), end to end with
 * a gateway delivering to three peers. Address block 127.0.72.x and port 2676 are this file's own.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_ROUTE, parseRouteKey, routeFor } from '../src/controls/routes.js';
import { startSmtpPeer, type SmtpPeer } from './peers/smtp-peer.js';
import { fateOf, sendMail, startTestGateway, tempDir, waitFor, type TestGateway } from './harness.js';
import { runCli } from './process.js';
import { within } from './deadline.js';

const PORT = 2676;
const A = (n: number) => `127.0.72.${n}`;

describe('route lookup (pure)', () => {
  const routes = new Map([
    ['example.com', 'exact'],
    ['.example.com', 'suffix'],
    ['.deep.example.com', 'deeper suffix'],
    [DEFAULT_ROUTE, 'default'],
  ]);
  const rows: Array<[string, string | undefined]> = [
    ['example.com', 'exact'],
    ['a.example.com', 'suffix'],
    ['a.b.example.com', 'suffix'],
    ['x.deep.example.com', 'deeper suffix'],
    ['deep.example.com', 'suffix'], // .deep.example.com is its subdomains only
    ['example.org', 'default'],
    ['com', 'default'],
  ];
  for (const [domain, want] of rows) it(`${domain} → ${want}`, () => assert.equal(routeFor(routes, domain), want));
  it('no ALL route: an unrouted domain has none', () => assert.equal(routeFor(new Map([['a.test', 1]]), 'b.test'), undefined));
  it('route keys', () => {
    assert.equal(parseRouteKey('all'), 'ALL');
    assert.equal(parseRouteKey('.Example.COM.'), '.example.com');
    assert.equal(parseRouteKey('bücher.test'), 'xn--bcher-kva.test');
    assert.throws(() => parseRouteKey('bad..name'), /invalid route domain "bad\.\.name": allowed a domain \(example\.com\), a subdomain pattern \(\.example\.com\) or ALL/);
  });
});

describe('routes end to end', { timeout: within(60_000) }, () => {
  let t: TestGateway;
  const peers: SmtpPeer[] = [];
  before(async () => {
    for (const n of [1, 2, 3]) peers.push(await startSmtpPeer({ host: A(n), port: PORT, hostname: `relay${n}.routes.test` }));
    t = await startTestGateway({
      zone: {}, // no DNS at all: everything must go by route
      smtpPort: PORT,
      setup: (s) => {
        s.putRoute('ALL', [{ host: A(1) }]);
        s.putRoute('.corp.test', [{ host: A(2) }]);
        s.putRoute('special.corp.test', [{ host: A(3) }]);
      },
    });
  });
  after(async () => {
    await t?.close();
    await Promise.all(peers.map((p) => p.close()));
  });

  it('exact, then the longest .suffix, then ALL', async () => {
    const cases: Array<[string, number]> = [
      ['a@anywhere.example', 0],
      ['b@mail.corp.test', 1],
      ['c@x.y.corp.test', 1],
      ['d@special.corp.test', 2],
      ['e@corp.test', 0], // .corp.test is the subdomains only
    ];
    for (const [rcpt] of cases) assert.equal((await sendMail(t.gw.address!.port, 'sender@client.test', [rcpt])).code, 250);
    for (const [rcpt, peer] of cases) {
      assert.equal((await waitFor(`${rcpt}`, () => fateOf(t, rcpt))).kind, 'delivered', rcpt);
      assert.ok(peers[peer]!.messages.some((m) => m.to.includes(rcpt)), `${rcpt} went to relay${peer + 1}`);
    }
  });
});

describe('smtproutes new / edit', () => {
  it('new refuses an existing route (use edit); edit refuses a missing one; ALL and .suffix are listed', async () => {
    const d = tempDir();
    const cli = (...args: string[]) => runCli(['smtproutes', ...args, '--data-dir', d]);
    assert.equal((await cli('new', 'ALL', 'smarthost.test:2525')).code, 0);
    const again = await cli('new', 'all', 'other.test');
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /a route for ALL already exists \(use smtproutes edit to change it\)/);
    assert.equal((await cli('edit', 'ALL', 'other.test')).code, 0);
    const missing = await cli('edit', '.corp.test', 'x.test');
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /no route for \.corp\.test \(use smtproutes new to add one\)/);
    assert.equal((await cli('new', '.corp.test', 'x.test')).code, 0);
    const list = await cli('list');
    assert.match(list.stdout, /^ALL\s+other\.test$/m);
    assert.match(list.stdout, /^\.corp\.test\s+x\.test$/m);
    assert.equal((await cli('delete', 'ALL')).code, 0);
  });
});
