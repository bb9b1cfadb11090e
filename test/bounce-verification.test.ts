/**
 * Bounce verification end to end (SPEC §6, §8), with the real `postern start`:
 * - Postern sends a message from joe@org.test with tagging on to a real Postfix (mx.remote.test)
 *   that accepts it and then bounces it (unknown user); Postfix's own DSN goes (transport_maps)
 *   to Postern's public listener, is verified, loses its tag and lands in the internal Postfix's
 *   Maildir (an SMTP route for the local domain org.test) addressed to joe@org.test.
 * - Forged bounces to the public listener — a random tag, a wrong hash, a tag 8 days old (made
 *   with the clock set back), a tag of a key retired 3 days ago (valid) and 8 days ago (invalid;
 *   the retirement time is set back in config.db), untagged — each get what the settings say:
 *   550 at RCPT under reject, accepted with the header under add-header.
 * - Replies (a real sender) to tagged addresses: the lenient rule; relaying to a non-local
 *   domain refused from every address; connections per client address, changed without a restart.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { after, before, describe, test } from 'node:test';
import { tagAddress, parseTag } from '../src/bounce/batv.js';
import { rawSession, sendMail, tempDir, waitForAsync as waitFor } from './harness.js';
import { startDnsServer, type DnsServer } from './peers/dns-server.js';
import { postfixAvailable, startPostfix, type PostfixInstance } from './peers/postfix.js';
import { logFile, runCli, runCliOk, startPostern, type PosternProcess } from './process.js';

const inCI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';
// Addresses 127.0.83.x and ports 2696-2698 are this file's own.
const PORT = 2698;
const REMOTE = { name: 'mx.remote.test', address: '127.0.83.1' };
const INTERNAL = { name: 'mail.org.test', address: '127.0.83.2' };
const PRIVATE = '127.0.83.10:2696';
const PUBLIC = { host: '127.0.83.10', port: 2697 };
const DAY = 86_400_000;

describe('bounce verification', { skip: !postfixAvailable() && !inCI ? 'Postfix not installed' : false }, () => {
  let dns: DnsServer;
  let remote: PostfixInstance;
  let internal: PostfixInstance;
  let postern: PosternProcess | undefined;
  let dir = '';
  const cli = (...args: string[]) => runCliOk([...args, '--data-dir', dir]);
  const mailLog = () => readFile(logFile(dir, 'mail.log'), 'utf8').catch(() => '');
  const keyText = async (n: number) => ((JSON.parse(await cli('bvconfig', 'key', 'list', '--show', '--json')) as { number: number; text: string }[]).find((k) => k.number === n)!).text;
  /** One SMTP transaction on the public listener; the reply to each RCPT (and to DATA when any was accepted). */
  const inject = async (from: string, to: string[], opts: { localAddress?: string; body?: string } = {}) => {
    const s = await rawSession(PUBLIC.port, PUBLIC.host, opts.localAddress);
    try {
      await s.cmd('EHLO forger.test');
      assert.match(await s.cmd(`MAIL FROM:<${from}>`), /^250/);
      const rcpt: string[] = [];
      for (const t of to) rcpt.push(await s.cmd(`RCPT TO:<${t}>`));
      let data: string | null = null;
      if (rcpt.some((r) => r.startsWith('250'))) {
        assert.match(await s.cmd('DATA'), /^354/);
        data = await s.cmd(`${opts.body ?? `Subject: forged ${to.join(' ')}\r\n\r\nbounce\r\n`}.`);
      }
      await s.cmd('QUIT');
      return { rcpt, data };
    } finally {
      s.close();
    }
  };
  const internalMail = async (re: RegExp) => (await internal.readDelivered()).filter((m) => re.test(m.raw));

  before(async () => {
    internal = await startPostfix({ address: INTERNAL.address, port: PORT, hostname: INTERNAL.name, tls: 'none', delivery: 'maildir' });
    // Accepts everything at SMTP, then bounces it as an unknown user; its DSNs for org.test go
    // to Postern's public listener (Postfix's resolver cannot be pointed at the test DNS).
    remote = await startPostfix({
      address: REMOTE.address,
      port: PORT,
      hostname: REMOTE.name,
      tls: 'none',
      delivery: 'maildir',
      extraMainCf: {
        // local(8) for every domain; with no recipient maps smtpd accepts anyone, and local
        // delivery then bounces a user the system does not have.
        virtual_transport: 'local',
        mailbox_size_limit: '0',
        transport_maps: `inline:{ org.test=smtp:[${PUBLIC.host}]:${PUBLIC.port} }`,
      },
    });
    dns = await startDnsServer({
      zone: {
        'remote.test': { MX: [{ preference: 10, exchange: REMOTE.name }] },
        'plain.test': { MX: [{ preference: 10, exchange: REMOTE.name }] },
        [REMOTE.name]: { A: [REMOTE.address] },
      },
    });
    dir = tempDir('postern-bv-');
    await cli('destconfig', 'new', 'remote.test', '--bounce-verification', 'on');
    await cli('localdomains', 'add', 'org.test');
    await cli('smtproutes', 'new', 'org.test', `${INTERNAL.address}:${PORT}`);
    postern = await startPostern({ dataDir: dir, listen: PRIVATE, dnsServer: dns.address, smtpPort: PORT, hostname: 'gw.org.test', args: ['--public-listen', `${PUBLIC.host}:${PUBLIC.port}`] });
  });

  after(async () => {
    await postern?.stop();
    await Promise.allSettled([remote?.stop(), internal?.stop(), dns?.close()]);
  });

  test('bvconfig: keys (shown once, then only with --show, stored 0600), setup and its refusals', async () => {
    const added = await cli('bvconfig', 'key', 'add');
    const m = /^Key 0: (\S+)$/m.exec(added);
    assert.ok(m, added);
    const list = await cli('bvconfig', 'key', 'list');
    assert.match(list, /^0\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+-$/m);
    assert.doesNotMatch(list, new RegExp(m[1]!.replace(/[-]/g, '\\-')), 'the key text is not listed without --show');
    assert.equal(await keyText(0), m[1]);
    const { statSync, readdirSync } = await import('node:fs');
    const files = readdirSync(path.join(dir, 'keys')).filter((f) => f.startsWith('bv-'));
    assert.equal(files.length, 1);
    assert.equal(statSync(path.join(dir, 'keys', files[0]!)).mode & 0o777, 0o600);
    const audit = await readFile(path.join(dir, 'logs', 'audit.log'), 'utf8');
    assert.doesNotMatch(audit, new RegExp(m[1]!.replace(/[-]/g, '\\-')), 'the key text is not in the audit log');
    assert.match(await cli('bvconfig', 'setup'), /^Invalid bounces: rejected/m);
    const bad: [string[], RegExp][] = [
      [['bvconfig', 'setup', '--invalid-action', 'drop'], /invalid invalid bounce action "drop": allowed reject, add-header/],
      [['bvconfig', 'setup', '--header', 'no colon here'], /invalid invalid bounce header "no colon here": allowed Name: value/],
      [['bvconfig', 'setup', '--untagged-valid', 'maybe'], /invalid untagged bounces valid "maybe": allowed yes, no/],
      [['bvconfig', 'key', 'add', '--key', 'short'], /invalid bounce verification key "short": allowed 8 to 256 printable ASCII characters/],
      [['bvconfig', 'key', 'retire', '7'], /no bounce verification key 7/],
      [['bvconfig', 'key', 'retire', '12'], /invalid key number "12": allowed an integer from 0 to 9/],
      [['localdomains', 'add', 'bad_name.test'], /invalid destination "bad_name\.test"/],
      [['localdomains', 'add', 'org.test'], /org\.test is already a local domain/],
      [['listenerconfig', 'public', '--connections-per-client', '0'], /invalid connections per client "0": allowed an integer from 1 to 10,000/],
    ];
    for (const [args, re] of bad) {
      const r = await runCli([...args, '--data-dir', dir]);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, re, args.join(' '));
    }
  });

  test("a real bounce: Postern tags the sender, Postfix bounces, its DSN is verified and reaches joe@org.test untagged", async () => {
    assert.ok(postern);
    const r = await sendMail(postern.port, 'joe@org.test', ['nosuchuser@remote.test'], 'Subject: to be bounced\r\nMessage-ID: <bounce-me@org.test>\r\n\r\nhello\r\n', postern.host);
    assert.equal(r.code, 250, r.text);
    const dsn = await waitFor('the DSN in the internal Maildir', async () => (await internalMail(/bounce-me@org\.test/)).at(0)).catch(async (e: Error) => {
      throw new Error(`${e.message}\n--- mail.log ---\n${await mailLog()}\n--- remote postfix ---\n${await remote.log()}`);
    });
    assert.match(dsn.raw, /^Return-Path: <>$/m, 'a bounce, from the null sender');
    assert.match(dsn.raw, /^Delivered-To: joe@org\.test$/m, 'delivered to the address without its tag');
    assert.match(dsn.raw, /unknown user: "nosuchuser"/);
    const log = await mailLog();
    // The queue kept the untagged sender; the mail log shows the tagged one.
    const tagged = /Delivery start DCID \d+ MID \d+ to RID \[0\] from tagged sender <(prvs=0\d{3}[0-9a-f]{6}=joe@org\.test)>/.exec(log);
    assert.ok(tagged, log);
    assert.match(log, /From: <joe@org\.test> To: <nosuchuser@remote\.test>/);
    assert.match(await remote.log(), new RegExp(`from=<${tagged[1]!.replace(/[.=]/g, (c) => `\\${c}`)}>`), "Postfix saw the tagged sender");
    assert.match(log, /Bounce verification: bounce to <prvs=0\d{3}[0-9a-f]{6}=joe@org\.test>: valid tag \(key 0\); accepted for <joe@org\.test>/);
    // A destination whose entry does not tag: the sender goes as it came.
    await cli('destconfig', 'new', 'plain.test', '--bounce-verification', 'off');
    await waitFor('the reload', async () => (/Configuration reloaded: 2 entries/.test(await mailLog()) ? true : undefined));
    // One message to both: tagged only towards the destination whose entry says so.
    assert.equal((await sendMail(postern.port, 'liz@org.test', ['root@plain.test', 'nosuchuser2@remote.test'], 'Subject: two destinations\r\nMessage-ID: <two@org.test>\r\n\r\nhello\r\n', postern.host)).code, 250);
    const both = await waitFor('both deliveries in the mail log', async () => {
      const l = await mailLog();
      const starts = [...l.matchAll(/Delivery start DCID (\d+) MID (\d+) to RID \[(\d)\](.*)$/gm)].filter((m) => m[2] === /Start MID (\d+) ICID \d+ From: <liz@org\.test>/.exec(l)?.[1]);
      return starts.length === 2 ? starts : undefined;
    });
    // RID 0 is root@plain.test, RID 1 nosuchuser2@remote.test (in RCPT order).
    assert.equal(both.find((m) => m[3] === '0')![4], '', 'plain.test: the sender as it came');
    assert.match(both.find((m) => m[3] === '1')![4]!, /^ from tagged sender <prvs=0\d{3}[0-9a-f]{6}=liz@org\.test>$/);
    await waitFor('the untagged delivery to Postfix', async () => (/from=<liz@org\.test>/.test(await remote.log()) ? true : undefined));
    // The queue keeps the sender untagged.
    assert.match(await cli('queue', 'list', '--state', 'delivered'), /liz@org\.test/);
  });

  test('forged bounces: each gets the action the settings say (reject, then add-header)', async () => {
    const k0 = await keyText(0);
    await cli('bvconfig', 'key', 'add', '--key', 'retired-three-days');
    await cli('bvconfig', 'key', 'add', '--key', 'retired-eight-days');
    await cli('bvconfig', 'key', 'retire', '1');
    await cli('bvconfig', 'key', 'retire', '2');
    // Clock injection for retirement: set the times back in config.db.
    const db = new Database(path.join(dir, 'config.db'));
    db.prepare('UPDATE bv_keys SET retired = ? WHERE number = 1').run(Date.now() - 3 * DAY);
    db.prepare('UPDATE bv_keys SET retired = ? WHERE number = 2').run(Date.now() - 8 * DAY);
    db.close();
    const now = Date.now();
    const valid = tagAddress('ann@org.test', { number: 0, text: k0 }, now);
    const parsed = parseTag(valid)!;
    const cases: [string, string, RegExp, boolean][] = [
      ['random tag', 'prvs=5123abcdef=bob@org.test', /unknown key 5/, false],
      ['wrong hash', `prvs=0${String(parsed.day).padStart(3, '0')}${parsed.hash === '000000' ? '000001' : '000000'}=bob@org.test`, /the hash does not match/, false],
      ['8 days old', tagAddress('carl@org.test', { number: 0, text: k0 }, now - 8 * DAY), /the tag expired 1 day ago/, false],
      ['key retired 3 days ago', tagAddress('dora@org.test', { number: 1, text: 'retired-three-days' }, now), /valid tag \(key 1\)/, true],
      ['key retired 8 days ago', tagAddress('emil@org.test', { number: 2, text: 'retired-eight-days' }, now), /key 2 was retired more than 7 days ago/, false],
      ['untagged', 'fred@org.test', /untagged \(the recipient address carries no tag\)/, false],
      ['valid', valid, /valid tag \(key 0\)/, true],
      // The appliance's order: prvs=local=TAG@domain.
      ['appliance order', (() => { const t = parseTag(tagAddress('olga@org.test', { number: 0, text: k0 }, now))!; return `prvs=olga=0${String(t.day).padStart(3, '0')}${t.hash}@org.test`; })(), /valid tag \(key 0\)/, true],
    ];
    // The gateway reloads when config.db changes: key 2 then counts as retired 8 days ago.
    await waitFor('the retirement times in effect', async () => ((await inject('', [cases[4]![1]])).rcpt[0]!.startsWith('550') ? true : undefined));
    for (const [what, to, , ok] of cases) {
      const r = await inject('', [to]);
      assert.match(r.rcpt[0]!, ok ? /^250/ : /^550 5\.7\.1 /, `${what}: ${r.rcpt[0]}`);
    }
    const log = await mailLog();
    for (const [what, to, reason] of cases) {
      const line = log.split('\n').reverse().find((l) => l.includes(`Bounce verification: bounce to <${to}>`));
      assert.ok(line, `${what}: not logged`);
      assert.match(line, reason, what);
    }

    await cli('bvconfig', 'setup', '--invalid-action', 'add-header', '--header', 'X-Bad-Bounce: yes');
    await waitFor('add-header in effect', async () => ((await inject('', [cases[5]![1]])).rcpt[0]!.startsWith('250') ? true : undefined));
    for (const [what, to, , ok] of cases) {
      const r = await inject('', [to], { body: `Subject: forged ${what}\r\nMessage-ID: <${what.replace(/\W/g, '-')}@forger.test>\r\n\r\nbounce\r\n` });
      assert.match(r.rcpt[0]!, /^250/, `${what} under add-header: ${r.rcpt[0]}`);
      assert.match(r.data ?? '', /^250/, what);
      const id = `${what.replace(/\W/g, '-')}@forger.test`;
      const m = await waitFor(`${what} in the internal Maildir`, async () => (await internalMail(new RegExp(`Message-ID: <${id.replace(/[.-]/g, (c) => `\\${c}`)}>`))).at(0));
      const original = parseTag(to)?.original ?? to;
      assert.match(m.raw, new RegExp(`^Delivered-To: ${original.replace(/\./g, '\\.')}$`, 'm'), `${what}: delivered without the tag`);
      if (ok) assert.doesNotMatch(m.raw, /^X-Bad-Bounce:/m, `${what}: valid, no header`);
      else assert.match(m.raw, /^X-Bad-Bounce: yes$/m, `${what}: the header`);
    }
    // Untagged bounces valid: accepted without the header.
    await cli('bvconfig', 'setup', '--untagged-valid', 'yes', '--invalid-action', 'reject');
    // (Under add-header, untagged was accepted already: wait for the reject action to be back.)
    await waitFor('reject in effect again', async () => ((await inject('', ['prvs=5123abcdef=bob@org.test'])).rcpt[0]!.startsWith('550') ? true : undefined));
    assert.match((await inject('', ['gina@org.test'])).rcpt[0]!, /^250/, 'untagged bounces valid');
    assert.match(await mailLog(), /Bounce verification: bounce to <gina@org\.test>: untagged \(untagged bounces are valid \(bvconfig setup --untagged-valid yes\)\); accepted for <gina@org\.test>/);
    await cli('bvconfig', 'setup', '--untagged-valid', 'no');
  });

  test('replies (a real sender): expired tags and retired keys still verify; a wrong hash gets the action; untagged is plain mail', async () => {
    const k0 = await keyText(0);
    const old = tagAddress('hugo@org.test', { number: 0, text: k0 }, Date.now() - 40 * DAY);
    const retired = tagAddress('ida@org.test', { number: 2, text: 'retired-eight-days' }, Date.now() - 30 * DAY);
    const r = await inject('someone@remote.test', [old, retired, 'prvs=0123ffffff=jan@org.test', 'kim@org.test'], { body: 'Subject: a reply\r\nMessage-ID: <reply@remote.test>\r\n\r\nthanks\r\n' });
    assert.match(r.rcpt[0]!, /^250/);
    assert.match(r.rcpt[1]!, /^250/);
    assert.match(r.rcpt[2]!, /^550 5\.7\.1 <prvs=0123ffffff=jan@org\.test>: invalid bounce address tag \(the hash does not match\)/);
    assert.match(r.rcpt[3]!, /^250/);
    const got = await waitFor('the reply delivered to three recipients', async () => {
      const m = await internalMail(/Message-ID: <reply@remote\.test>/);
      return m.length >= 3 ? m : undefined;
    });
    assert.deepEqual(got.map((m) => /^Delivered-To: (.*)$/m.exec(m.raw)?.[1]).sort(), ['hugo@org.test', 'ida@org.test', 'kim@org.test']);
    assert.match(await mailLog(), /Bounce verification: reply to <prvs=0\d{3}[0-9a-f]{6}=hugo@org\.test>: valid tag \(key 0\); accepted for <hugo@org\.test>/);
  });

  test('the public listener refuses relaying to a domain that is not local, from every address', async () => {
    for (const local of ['127.0.0.1', '127.0.83.77', PUBLIC.host]) {
      const r = await inject('someone@remote.test', ['victim@elsewhere.test', 'prvs=0123abcdef=victim@elsewhere.test'], { localAddress: local });
      assert.match(r.rcpt[0]!, /^554 5\.7\.1 <victim@elsewhere\.test>: Relay access denied/, `from ${local}`);
      assert.match(r.rcpt[1]!, /^554 5\.7\.1 /, `from ${local}: a tag does not make a domain local`);
    }
    // A bounce to a non-local domain too.
    assert.match((await inject('', ['victim@elsewhere.test'])).rcpt[0]!, /^554 5\.7\.1 /);
  });

  test('the public listener offers STARTTLS and has its own size and recipient limits', async () => {
    const s = await rawSession(PUBLIC.port, PUBLIC.host);
    try {
      assert.match(await s.cmd('EHLO client.test'), /^250-STARTTLS$/m);
    } finally {
      s.close();
    }
    await cli('listenerconfig', 'public', '--max-recipients', '2', '--max-message-size', '2048');
    await waitFor('the limits in effect', async () => {
      const r = await inject('someone@remote.test', ['a@org.test', 'b@org.test', 'c@org.test'], { body: 'Subject: small\r\n\r\nhi\r\n' });
      return r.rcpt[2]!.startsWith('452') ? r : undefined;
    });
    const big = await inject('someone@remote.test', ['a@org.test'], { body: `Subject: big\r\n\r\n${`${'x'.repeat(76)}\r\n`.repeat(40)}` });
    assert.match(big.data ?? '', /^552 5\.3\.4 Message exceeds the size limit of 2048 bytes/);
    // The private listener keeps its own limits.
    assert.equal((await sendMail(postern!.port, 'joe@org.test', ['x1@plain.test', 'x2@plain.test', 'x3@plain.test'], `Subject: big\r\n\r\n${'x'.repeat(4000)}\r\n`, postern!.host)).code, 250);
    assert.match(await cli('listenerconfig', 'public'), /^Maximum message size: 2048 bytes$/m);
    await cli('listenerconfig', 'public', '--max-recipients', 'default', '--max-message-size', 'default');
  });

  test('connections per client address: a change applies without a restart', async () => {
    await cli('listenerconfig', 'public', '--connections-per-client', '2');
    await waitFor('the limit in effect', async () => {
      const held = [await rawSession(PUBLIC.port, PUBLIC.host, '127.0.83.78'), await rawSession(PUBLIC.port, PUBLIC.host, '127.0.83.78')];
      const third = await rawSession(PUBLIC.port, PUBLIC.host, '127.0.83.78');
      const other = await rawSession(PUBLIC.port, PUBLIC.host, '127.0.83.79');
      for (const s of [...held, third, other]) s.close();
      if (!third.greeting.startsWith('421')) return undefined;
      assert.match(third.greeting, /^421 4\.7\.0 Too many connections from 127\.0\.83\.78 \(at most 2\)/);
      assert.match(other.greeting, /^220 /, 'another address is not limited by it');
      return true;
    });
    assert.match(await cli('listenerconfig', 'public'), /^Connections per client address: 2$/m);
  });
});
