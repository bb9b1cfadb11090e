/**
 * Delivery behaviour against real peers on loopback (SPEC §2 beyond the table, §3, §4, §7):
 * routing (MX order, next MX after a TLS refusal, implicit MX, Null MX, NXDOMAIN, DNS temporary
 * failure, SMTP routes), per-recipient outcomes and DSNs, HELO fallback, the remembered broken
 * TLS rule, identity checks end to end (Verify's CN rule, Hosted via the route host, an IDN).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { TestCA, type IssuedCert } from './peers/ca.js';
import type { Zone } from './peers/dns-server.js';
import { startSmtpPeer, type SmtpPeer, type SmtpPeerOptions } from './peers/smtp-peer.js';
import { fateOf, sendMail, startTestGateway, waitFor, type TestGateway } from './harness.js';

const PORT = 2602;
const A = (n: number) => `127.0.20.${n}`;

describe('delivery', () => {
  let t: TestGateway;
  let ca: TestCA;
  const peers: SmtpPeer[] = [];
  const zone: Zone = {
    // The sender's own domain receives DSNs.
    'client.test': { MX: [{ preference: 10, exchange: 'mx.client.test' }] },
    'mx.client.test': { A: [A(1)] },
    // Two MX hosts: the better one has no STARTTLS.
    'twomx.test': { MX: [{ preference: 10, exchange: 'mx1.twomx.test' }, { preference: 20, exchange: 'mx2.twomx.test' }] },
    'mx1.twomx.test': { A: [A(2)] },
    'mx2.twomx.test': { A: [A(3)] },
    'implicit.test': { A: [A(4)] },
    'nullmx.test': { MX: [{ preference: 0, exchange: '.' }] },
    'servfail.test': { rcode: 'SERVFAIL' },
    'mixed.test': { MX: [{ preference: 10, exchange: 'mx.mixed.test' }] },
    'mx.mixed.test': { A: [A(5)] },
    'helo.test': { MX: [{ preference: 10, exchange: 'mx.helo.test' }] },
    'mx.helo.test': { A: [A(6)] },
    'broken.test': { MX: [{ preference: 10, exchange: 'mx.broken.test' }] },
    'mx.broken.test': { A: [A(7)] },
    'brokenreq.test': { MX: [{ preference: 10, exchange: 'mx.brokenreq.test' }] },
    'mx.brokenreq.test': { A: [A(8)] },
    'cnonly.test': { MX: [{ preference: 10, exchange: 'mx.cnonly.test' }] },
    'mx.cnonly.test': { A: [A(9)] },
    'cnhosted.test': { MX: [{ preference: 10, exchange: 'mx.cnhosted.test' }] },
    'mx.cnhosted.test': { A: [A(10)] },
    // Routed: DNS says nothing about it; the route names relay.routed.test.
    'relay.routed.test': { A: [A(11)] },
    'xn--bcher-kva.test': { MX: [{ preference: 10, exchange: 'mx.xn--bcher-kva.test' }] },
    'mx.xn--bcher-kva.test': { A: [A(12)] },
    'down.test': { MX: [{ preference: 10, exchange: 'mx.down.test' }] },
    'mx.down.test': { A: [A(13)] }, // nothing listens there
  };
  const peer: Record<string, SmtpPeer> = {};
  let certFor: (names: string[], cn?: string) => Promise<IssuedCert>;

  async function addPeer(name: string, o: SmtpPeerOptions): Promise<void> {
    const p = await startSmtpPeer({ port: PORT, ...o });
    peers.push(p);
    peer[name] = p;
  }

  before(async () => {
    ca = await TestCA.create();
    certFor = (names, cn) => ca.issue({ cn: cn ?? names[0], dnsNames: names });
    const good = (names: string[]) => certFor(names).then((c) => ({ keyPem: c.keyPem, certPem: c.chainPem }));
    await addPeer('client', { host: A(1), hostname: 'mx.client.test' });
    await addPeer('mx1', { host: A(2), hostname: 'mx1.twomx.test', starttls: 'none' });
    await addPeer('mx2', { host: A(3), hostname: 'mx2.twomx.test', starttls: 'ok', cert: await good(['mx2.twomx.test']) });
    await addPeer('implicit', { host: A(4), hostname: 'implicit.test' });
    await addPeer('mixed', {
      host: A(5),
      hostname: 'mx.mixed.test',
      rcptReply: (a) => (a.startsWith('soft@') ? '450 4.2.0 try later' : a.startsWith('hard@') ? '550 5.1.1 no such user' : undefined),
    });
    await addPeer('helo', { host: A(6), hostname: 'mx.helo.test', ehlo: false });
    await addPeer('broken', { host: A(7), hostname: 'mx.broken.test', starttls: 'handshake-close' });
    await addPeer('brokenreq', { host: A(8), hostname: 'mx.brokenreq.test', starttls: 'handshake-close' });
    // CN names the MX host; the only SAN names something else.
    const cnCert = await certFor(['unrelated.invalid'], 'mx.cnonly.test');
    await addPeer('cnonly', { host: A(9), hostname: 'mx.cnonly.test', starttls: 'ok', cert: { keyPem: cnCert.keyPem, certPem: cnCert.chainPem } });
    const cnHosted = await certFor(['unrelated.invalid'], 'mx.cnhosted.test');
    await addPeer('cnhosted', { host: A(10), hostname: 'mx.cnhosted.test', starttls: 'ok', cert: { keyPem: cnHosted.keyPem, certPem: cnHosted.chainPem } });
    await addPeer('routed', { host: A(11), hostname: 'relay.routed.test', starttls: 'ok', cert: await good(['relay.routed.test']) });
    await addPeer('idn', { host: A(12), hostname: 'mx.xn--bcher-kva.test', starttls: 'ok', cert: await good(['xn--bcher-kva.test']) });

    t = await startTestGateway({
      zone,
      smtpPort: PORT,
      setup: (s) => {
        s.addAuthorities(ca.certPem);
        s.setGlobals({ useSystemAuthorities: false, brokenTlsMemoryHours: 24 });
        s.newEntry('twomx.test', { tls: 'required' });
        s.newEntry('broken.test', { tls: 'preferred' });
        s.newEntry('brokenreq.test', { tls: 'required' });
        s.newEntry('cnonly.test', { tls: 'required-verify' });
        s.newEntry('cnhosted.test', { tls: 'required-verify-hosted' });
        s.newEntry('routed.test', { tls: 'required-verify-hosted' });
        s.newEntry('bücher.test', { tls: 'required-verify-hosted' });
        s.putRoute('routed.test', [{ host: 'relay.routed.test' }]);
      },
    });
  });

  after(async () => {
    await t?.close();
    await Promise.all(peers.map((p) => p.close()));
  });

  const send = async (to: string[], subject = 'test') => {
    const r = await sendMail(t.gw.address!.port, 'sender@client.test', to, `Subject: ${subject}\r\nMessage-ID: <${subject}@client.test>\r\n\r\nHello ${subject}.\r\n`);
    assert.equal(r.code, 250, r.text);
  };
  const fate = (rcpt: string) => waitFor(`an outcome for ${rcpt}`, () => fateOf(t, rcpt));

  it('after a TLS refusal by policy it QUITs and tries the next MX host', async () => {
    await send(['a@twomx.test'], 'twomx');
    assert.equal((await fate('a@twomx.test')).kind, 'delivered');
    await peer.mx2!.waitForMessages(1);
    assert.equal(peer.mx2!.messages[0]!.tls, true);
    assert.equal(peer.mx1!.messages.length, 0);
    await peer.mx1!.waitForSessions(1);
    assert.deepEqual(peer.mx1!.sessions[0]!.commands, ['EHLO postern.test', 'QUIT']);
  });

  it('delivers to the implicit MX when the domain has no MX record', async () => {
    await send(['a@implicit.test'], 'implicit');
    assert.equal((await fate('a@implicit.test')).kind, 'delivered');
    assert.equal(peer.implicit!.messages.length, 1);
  });

  it('bounces at once with 5.1.10 on a Null MX, and sends a DSN to the sender', async () => {
    await send(['a@nullmx.test'], 'nullmx');
    const f = await fate('a@nullmx.test');
    assert.equal(f.kind, 'bounced');
    assert.match(f.kind === 'bounced' ? f.reply : '', /^5\.1\.10 /);
    await waitFor('the DSN', () => peer.client!.messages.find((m) => m.data.toString().includes('nullmx@client.test')));
    const dsn = peer.client!.messages.find((m) => m.data.toString().includes('nullmx@client.test'))!;
    assert.equal(dsn.from, '', 'DSNs come from the null sender');
    assert.deepEqual(dsn.to, ['sender@client.test']);
    const parsed = await simpleParser(dsn.data);
    assert.match(String(parsed.headers.get('content-type') && (parsed.headers.get('content-type') as { value: string }).value), /multipart\/report/);
    // mailparser folds the message/delivery-status part into the text; the original is attached.
    assert.match(dsn.data.toString(), /Content-Type: message\/delivery-status/);
    assert.ok(parsed.attachments.some((a) => a.contentType === 'message/rfc822'), 'the original message is attached');
    const text = parsed.text ?? '';
    assert.match(text, /Final-Recipient: rfc822; a@nullmx\.test/);
    assert.match(text, /Action: failed/);
    assert.match(text, /Status: 5\.1\.10/);
  });

  it('bounces a domain that does not exist (NXDOMAIN) with 5.1.2', async () => {
    await send(['a@nosuch.test'], 'nxdomain');
    const f = await fate('a@nosuch.test');
    assert.equal(f.kind, 'bounced');
    assert.match(f.kind === 'bounced' ? f.reply : '', /^5\.1\.2 /);
  });

  it('defers, never bounces, on a DNS temporary failure', async () => {
    await send(['a@servfail.test'], 'servfail');
    const f = await fate('a@servfail.test');
    assert.equal(f.kind, 'deferred');
    assert.match(f.kind === 'deferred' ? f.reply : '', /^4\.4\.3 /);
    const q = t.gw.queue.list({ domain: 'servfail.test' });
    assert.equal(q.length, 1, 'still in the queue');
  });

  it('defers with 4.4.1 when no host answers', async () => {
    await send(['a@down.test'], 'down');
    const f = await fate('a@down.test');
    assert.equal(f.kind, 'deferred');
    assert.match(f.kind === 'deferred' ? f.reply : '', /^4\.4\.1 /);
  });

  it('records an outcome per recipient: 250 delivered, 450 deferred, 550 bounced with a DSN for that one only', async () => {
    await send(['ok@mixed.test', 'soft@mixed.test', 'hard@mixed.test'], 'mixed');
    assert.equal((await fate('soft@mixed.test')).kind, 'deferred');
    assert.equal((await fate('hard@mixed.test')).kind, 'bounced');
    await peer.mixed!.waitForMessages(1);
    assert.deepEqual(peer.mixed!.messages[0]!.to, ['ok@mixed.test']);
    const dsn = await waitFor('the DSN', () => peer.client!.messages.find((m) => m.data.toString().includes('mixed@client.test')));
    const text = dsn.data.toString();
    assert.match(text, /Final-Recipient: rfc822; hard@mixed\.test/);
    assert.doesNotMatch(text, /Final-Recipient: rfc822; (ok|soft)@mixed\.test/);
    assert.match(text, /Status: 5\.1\.1/);
    const queued = t.gw.queue.list({ domain: 'mixed.test' });
    assert.deepEqual(queued.map((r) => r.to), ['soft@mixed.test']);
    assert.deepEqual(queued.map((r) => r.state), ['deferred']);
    const bounced = t.gw.queue.list({ domain: 'mixed.test', state: 'bounced' });
    assert.deepEqual(bounced.map((r) => r.to), ['hard@mixed.test']);
  });

  it('falls back to HELO when EHLO is refused', async () => {
    await send(['a@helo.test'], 'helo');
    assert.equal((await fate('a@helo.test')).kind, 'delivered');
    assert.match(peer.helo!.sessions[0]?.commands.join(' | ') ?? '', /EHLO postern\.test \| HELO postern\.test/);
  });

  it('remembers a broken TLS stack: Preferred delivers in clear text on the next connection (at once); Required never does', async () => {
    const before = t.events.length;
    await send(['a@broken.test'], 'broken');
    await send(['a@brokenreq.test'], 'brokenreq');
    // The failed handshake dropped its connection; a new one, right away, skips STARTTLS.
    assert.equal((await fate('a@broken.test')).kind, 'delivered');
    assert.equal((await fate('a@brokenreq.test')).kind, 'deferred');
    await peer.broken!.waitForMessages(1);
    assert.equal(peer.broken!.messages[0]!.tls, false);
    const sessions = peer.broken!.sessions;
    assert.ok(sessions.length >= 2 && sessions[0]!.commands.includes('STARTTLS'), 'the first connection tried STARTTLS');
    const last = sessions[sessions.length - 1]!;
    assert.ok(!last.commands.includes('STARTTLS'), `the new connection went without STARTTLS: ${last.commands.join(' | ')}`);
    assert.ok(t.events.slice(before).some((e) => e.event === 'tls-failed' && e.domain === 'broken.test' && e.outcome === 'dropped'), 'the failed handshake logged');
    assert.ok(t.events.slice(before).some((e) => e.event === 'tls-skipped' && e.domain === 'broken.test'), 'the clear text logged as such');
    // Kept in queue.db too: a restart and `destconfig explain` see it.
    const kept = t.gw.queue.brokenTls(Date.now()).find((b) => b.address === A(7) && b.port === PORT);
    assert.ok(kept, 'the broken address is kept in queue.db');
    assert.ok(kept.until > Date.now() + 23 * 3_600_000, 'for the configured 24 hours');
    // What `queue delivernow` does: due now, and the destination's suspension after its failed try forgotten.
    t.gw.queue.releaseNow(Date.now());
    t.gw.engine.resetLimits();
    const sessionsBefore = peer.brokenreq!.sessions.length;
    await waitFor('a second attempt for brokenreq.test', () =>
      t.events.slice(before).filter((e) => e.event === 'delayed' && e.to === 'a@brokenreq.test').length >= 2,
    );
    assert.ok(peer.brokenreq!.sessions.length > sessionsBefore, 'the second attempt connected again');
    assert.equal(peer.brokenreq!.messages.length, 0);
    assert.ok(peer.brokenreq!.sessions.every((s) => s.commands.includes('STARTTLS')), 'Required always tries STARTTLS');
  });

  it('Verify accepts a CN naming the MX host even when the SANs do not match', async () => {
    await send(['a@cnonly.test'], 'cnonly');
    assert.equal((await fate('a@cnonly.test')).kind, 'delivered');
    assert.equal(peer.cnonly!.messages[0]!.tls, true);
  });

  it('Hosted ignores the CN when the certificate has dNSNames, and says why', async () => {
    await send(['a@cnhosted.test'], 'cnhosted');
    const f = await fate('a@cnhosted.test');
    assert.equal(f.kind, 'deferred');
    assert.match(f.kind === 'deferred' ? f.reply : '', /^4\.7\.5 .*name mismatch/);
    assert.ok(t.events.some((e) => e.event === 'verify-failed' && e.domain === 'cnhosted.test' && /unrelated\.invalid/.test(e.reason)));
  });

  it('an SMTP route replaces MX lookup and its host is a Hosted reference identifier', async () => {
    await send(['a@routed.test'], 'routed');
    assert.equal((await fate('a@routed.test')).kind, 'delivered');
    assert.equal(peer.routed!.messages[0]!.tls, true);
    assert.equal(peer.routed!.sessions[0]!.sni, 'relay.routed.test');
  });

  it('an internationalised domain matches its entry and its A-label certificate', async () => {
    await send(['a@bücher.test'], 'idn');
    assert.equal((await fate('a@bücher.test')).kind, 'delivered');
    assert.equal(peer.idn!.messages[0]!.tls, true);
  });
});

describe('relay control', () => {
  it('refuses relaying to clients outside the allowed networks', async () => {
    const t = await startTestGateway({ zone: {}, smtpPort: PORT, options: { allowedNetworks: ['10.0.0.0/8'] } });
    try {
      const r = await sendMail(t.gw.address!.port, 's@client.test', ['x@example.test']);
      assert.equal(r.code, 554);
      assert.match(r.text, /5\.7\.1 <x@example\.test>: Relay access denied/);
      assert.equal(t.gw.queue.counts().messages, 0);
    } finally {
      await t.close();
    }
  });
});
