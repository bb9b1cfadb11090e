/**
 * Hostile certificates and text end to end (issue T2 1/9), with a real gateway, real STARTTLS
 * servers and the real CLI:
 * - a server presenting a certificate whose subjectAltName does not decode gets the message
 *   under Preferred - Verify (encrypted, logged as not verified, with the reason) and a 4.7.5
 *   deferral under Required - Verify — never a 4.4.2 connection error;
 * - names and replies carrying CR, LF, ESC, BEL, NUL and Unicode line separators (in a
 *   certificate, an EHLO/greeting name, an SMTP reply) never start a line in mail.log, keep
 *   mail.jsonl valid JSON, forge no DSN header, and reach `queue show` and `tlsverify` escaped;
 * - the listener refuses envelope domains that are not host names as written.
 * Address block 127.0.70.x and port 2670 are this file's own.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { TestCA, SAN_TAG, ascii, rawSan } from './peers/ca.js';
import type { Zone } from './peers/dns-server.js';
import { startSmtpPeer, type SmtpPeer } from './peers/smtp-peer.js';
import { fateOf, rawSession, sendMail, startTestGateway, waitFor, type TestGateway } from './harness.js';
import { logFile, runCli } from './process.js';
import { within } from './deadline.js';

const PORT = 2670;
const A = (n: number) => `127.0.70.${n}`;
// What a hostile peer puts into names and replies: line breaks, a terminal escape, a bell, NUL,
// the Unicode line separator and a right-to-left override.
const NASTY = 'x\r\nFORGED: line\x1b[2J\x07\u0000\u2028\u202e';
const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f\u2028\u202e]/; // anything but \t and \n

describe('hostile certificates and text, end to end', { timeout: within(120_000) }, () => {
  let t: TestGateway;
  const peers: SmtpPeer[] = [];
  const zone: Zone = {
    'client.test': { MX: [{ preference: 10, exchange: 'mx.client.test' }] },
    'mx.client.test': { A: [A(1)] },
    'undec-pv.test': { MX: [{ preference: 10, exchange: 'mx.undec.test' }] },
    'undec-rv.test': { MX: [{ preference: 10, exchange: 'mx.undec.test' }] },
    'mx.undec.test': { A: [A(2)] },
    'evilcert.test': { MX: [{ preference: 10, exchange: 'mx.evilcert.test' }] },
    'mx.evilcert.test': { A: [A(3)] },
    'evilreply.test': { MX: [{ preference: 10, exchange: 'mx.evilreply.test' }] },
    'mx.evilreply.test': { A: [A(4)] },
  };

  before(async () => {
    const ca = await TestCA.create();
    // CN names the MX host, so a CN fallback would pass: it must not happen.
    const undecodable = await ca.issue({ cn: 'mx.undec.test', rawSan: Uint8Array.from([0x30, 0x03, 0x82, 0x05, 0x61]) });
    const evil = await ca.issue({
      cn: 'x.invalid',
      rawSan: rawSan([
        [SAN_TAG.dns, ascii(`evilcert.test${NASTY}`)],
        [SAN_TAG.dns, ascii('\x1b]0;owned\x07')],
      ]),
    });
    const pem = (c: { keyPem: string; chainPem: string }) => ({ keyPem: c.keyPem, certPem: c.chainPem });
    peers.push(await startSmtpPeer({ host: A(1), port: PORT, hostname: 'mx.client.test' }));
    peers.push(await startSmtpPeer({ host: A(2), port: PORT, hostname: 'mx.undec.test', starttls: 'ok', cert: pem(undecodable) }));
    peers.push(await startSmtpPeer({ host: A(3), port: PORT, hostname: 'mx.evilcert.test\x1b[31m', starttls: 'ok', cert: pem(evil) }));
    peers.push(
      await startSmtpPeer({
        host: A(4),
        port: PORT,
        hostname: 'mx.evilreply.test\x1b[31m\x07',
        act: (step, arg) => {
          // A bare CR and controls inside one reply line (CRLF would end the line on the wire).
          if (step === 'rcpt' && arg.startsWith('hard@')) return { raw: '550 5.1.1 no such user\rX-Forged: yes\x1b[2J\x07\u0000 end\r\n' };
          if (step === 'rcpt' && arg.startsWith('soft@')) return { raw: '450 4.2.0 later\rDelayed: MID 999 forged\x1b]0;t\x07\r\n' };
          return undefined;
        },
      }),
    );
    t = await startTestGateway({
      zone,
      smtpPort: PORT,
      setup: (s) => {
        s.addAuthorities(ca.certPem);
        s.setGlobals({ useSystemAuthorities: false });
        s.newEntry('undec-pv.test', { tls: 'preferred-verify' });
        s.newEntry('undec-rv.test', { tls: 'required-verify' });
        s.newEntry('evilcert.test', { tls: 'required-verify' });
      },
    });
  });

  after(async () => {
    await t?.close();
    await Promise.all(peers.map((p) => p.close()));
  });

  const send = async (to: string) => {
    const r = await sendMail(t.gw.address!.port, 'sender@client.test', [to], `Subject: ${to}\r\n\r\nHello.\r\n`);
    assert.equal(r.code, 250, r.text);
  };
  const fate = (rcpt: string) => waitFor(`an outcome for ${rcpt}`, () => fateOf(t, rcpt));

  it('undecodable subjectAltName under Preferred - Verify: delivered encrypted, logged as not verified with the reason', async () => {
    await send('a@undec-pv.test');
    assert.equal((await fate('a@undec-pv.test')).kind, 'delivered');
    const got = peers[1]!.messages.find((m) => m.to.includes('a@undec-pv.test'));
    assert.ok(got, 'the server received the message');
    assert.equal(got.tls, true, 'over TLS');
    const failed = t.events.find((e) => e.event === 'verify-failed' && e.domain === 'undec-pv.test');
    assert.ok(failed && failed.event === 'verify-failed');
    assert.match(failed.reason, /subjectAltName present but undecodable/);
    assert.ok(t.events.some((e) => e.event === 'tls-success' && e.domain === 'undec-pv.test' && e.verified === 'no'));
  });

  it('undecodable subjectAltName under Required - Verify: deferred 4.7.5 with the reason (not a 4.4.2 connection error)', async () => {
    await send('a@undec-rv.test');
    const f = await fate('a@undec-rv.test');
    assert.equal(f.kind, 'deferred');
    assert.match(f.kind === 'deferred' ? f.reply : '', /^4\.7\.5 .*certificate not verified: .*subjectAltName present but undecodable/);
  });

  it('certificate names with controls: deferred, and every text sink shows them escaped on one line', async () => {
    await send('a@evilcert.test');
    const f = await fate('a@evilcert.test');
    assert.equal(f.kind, 'deferred');
    assert.match(f.kind === 'deferred' ? f.reply : '', /^4\.7\.5 /);
    const log = readFileSync(logFile(t.dataDir, 'mail.log'), 'utf8');
    assert.match(log, /DNS:evilcert\.testx\\x0d\\x0aFORGED: line\\x1b\[2J\\x07\\x00/);
  });

  it('a reply with a bare CR and controls: bounced and deferred with the text escaped; the DSN forges no header', async () => {
    await send('hard@evilreply.test');
    await send('soft@evilreply.test');
    const hard = await fate('hard@evilreply.test');
    const soft = await fate('soft@evilreply.test');
    assert.equal(hard.kind, 'bounced');
    assert.equal(soft.kind, 'deferred');
    const dsn = await waitFor('the DSN', () => peers[0]!.messages.find((m) => m.data.toString('latin1').includes('hard@evilreply.test')));
    const text = dsn.data.toString('latin1');
    assert.doesNotMatch(text, /\rX-Forged/, 'no header starts after a CR');
    assert.doesNotMatch(text, /^X-Forged/m);
    assert.match(text, /Diagnostic-Code: smtp; .*550 5\.1\.1 no such user\\x0dX-Forged: yes\\x1b\[2J\\x07\\x00 end/);
    assert.doesNotMatch(text.replace(/\r\n/g, '\n'), RAW_CONTROL);
  });

  it('mail.log holds one event per line with no raw control; mail.jsonl is valid JSON with the exact text', async () => {
    await waitFor('the evil-reply events', () => t.events.some((e) => e.event === 'delayed' && e.to === 'soft@evilreply.test'));
    // Let the writers flush.
    await new Promise((r) => setTimeout(r, 200));
    const lines = readFileSync(logFile(t.dataDir, 'mail.log'), 'utf8').split('\n').filter((l) => l.length > 0);
    for (const l of lines) {
      assert.match(l, /^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} (Info|Warning): /, `a line that is not an event: ${JSON.stringify(l)}`);
      assert.doesNotMatch(l, RAW_CONTROL, `raw control in ${JSON.stringify(l)}`);
    }
    assert.ok(!lines.some((l) => /^Delayed: MID 999/.test(l) || /^X-Forged/.test(l)));
    const json = readFileSync(logFile(t.dataDir, 'mail.jsonl'), 'utf8').split('\n').filter((l) => l.length > 0);
    const events = json.map((l) => JSON.parse(l) as { event: string; reason?: string; to?: string });
    assert.equal(events.length, lines.length, 'one JSON line per text line');
    const soft = events.find((e) => e.event === 'delayed' && e.to === 'soft@evilreply.test');
    assert.ok(soft?.reason?.includes('later\rDelayed: MID 999 forged\x1b]0;t\x07'), 'the JSON value keeps the exact text');
    for (const l of json) assert.doesNotMatch(l, RAW_CONTROL);
  });

  it('queue show and queue list print the stored reply escaped', async () => {
    const soft = t.events.find((e) => e.event === 'delayed' && e.to === 'soft@evilreply.test');
    assert.ok(soft && soft.event === 'delayed');
    const show = await runCli(['queue', 'show', String(soft.mid), '--data-dir', t.dataDir]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /later\\x0dDelayed: MID 999 forged\\x1b\]0;t\\x07/);
    assert.doesNotMatch(show.stdout, RAW_CONTROL);
    const list = await runCli(['queue', 'list', '--data-dir', t.dataDir]);
    assert.doesNotMatch(list.stdout, RAW_CONTROL);
    const json = await runCli(['queue', 'show', String(soft.mid), '--json', '--data-dir', t.dataDir]);
    assert.doesNotMatch(json.stdout, RAW_CONTROL);
    assert.ok(JSON.stringify(JSON.parse(json.stdout)).includes('later\\rDelayed'));
  });

  it('tlsverify against a server presenting such names prints them escaped', async () => {
    const r = await runCli(['tlsverify', 'evilcert.test', '--data-dir', t.dataDir, '--dns-server', t.dns.address, '--smtp-port', String(PORT), '--timeout', '5']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /DNS:evilcert\.testx\\x0d\\x0aFORGED: line\\x1b\[2J/);
    assert.match(r.stdout, /Greeting: 220 mx\.evilcert\.test\\x1b\[31m/);
    assert.match(r.stdout, /Verdict: NOT VERIFIED: 4\.7\.5/);
    assert.doesNotMatch(r.stdout, RAW_CONTROL);
  });

  it('the listener refuses envelope domains that are not host names as written', async () => {
    const s = await rawSession(t.gw.address!.port);
    try {
      const cmd = s.cmd;
      assert.match(await cmd('EHLO client.test'), /^250/);
      assert.match(await cmd('MAIL FROM:<sender@client.test>'), /^250/);
      for (const bad of ['a@ex%61mple.com', 'a@example%2ecom', 'a@ｅｘａｍｐｌｅ.com', 'a@example\u3002com', 'a@exam\u00adple.com', 'a@ex\u00aample.com', 'a@exa\x01mple.com', 'a@[127.0.0.1]', 'a@-bad.test', 'a@b..test']) {
        assert.match(await cmd(`RCPT TO:<${bad}>`), /^501 5\.1\.3 /, bad);
      }
      assert.match(await cmd('RCPT TO:<a@bücher.test>'), /^250/, 'an IDNA2008 U-label is a host name');
      assert.match(await cmd('RSET'), /^250/);
      for (const bad of ['a@ex%61mple.com', 'a@ｅｘａｍｐｌｅ.com', 'a@[999.0.0.1]']) {
        assert.match(await cmd(`MAIL FROM:<${bad}>`), /^553 5\.1\.7 /, bad);
        await cmd('RSET');
      }
      assert.match(await cmd('MAIL FROM:<a@[192.0.2.1]>'), /^250/, 'a sender may be an address literal');
    } finally {
      s.close();
    }
  });
});
