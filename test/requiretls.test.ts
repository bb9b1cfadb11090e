/**
 * REQUIRETLS (RFC 8689) end to end: both listeners advertise it after STARTTLS only and refuse
 * the parameter in clear text; a REQUIRETLS message is delivered with the parameter to a server
 * that offers it (smtp-server, the library, with REQUIRETLS on) over verified TLS when its MX
 * records are DNSSEC-authenticated (the AD bit from the loopback DNS server, as a validating
 * resolver sets it); to Debian's Postfix (which does not offer REQUIRETLS), to an MX not found
 * securely, or to a certificate for another name it is returned with 5.7.30, the returned copy
 * holding the headers only. `queue show` and the mail log say what was asked.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { formatEvent } from '../src/observe/events.js';
import { clientSession as session, fateOf, rawSession, sendMailRequireTls, startTestGateway, tempDir, waitFor, type TestGateway } from './harness.js';
import { TestCA } from './peers/ca.js';
import { postfixAvailable, startPostfix, type PostfixInstance } from './peers/postfix.js';
import { startSmtpPeer, type SmtpPeer } from './peers/smtp-peer.js';
import { runCliOk } from './process.js';

const inCI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';
// Addresses 127.0.94.x and ports 2636-2637 are this file's own.
const SMTP_PORT = 2636;
const PUBLIC = { host: '127.0.94.1', port: 2637 };
const RT = '127.0.94.11'; // smtp-server offering REQUIRETLS, certificate for mx1.rt.test
const PF = '127.0.94.12'; // Debian's Postfix, TLS, certificate for mx1.pf.test
const BACK = '127.0.94.20'; // where returned mail for the senders' domain goes

interface Received {
  from: string;
  to: string[];
  requireTls: boolean;
  secure: boolean;
  data: string;
}

/** smtp-server as a receiving MX that offers REQUIRETLS after STARTTLS. */
async function startRequireTlsServer(host: string, name: string, cert: { keyPem: string; certPem: string }): Promise<{ received: Received[]; close: () => Promise<void> }> {
  const received: Received[] = [];
  const server = new SMTPServer({
    name,
    key: cert.keyPem,
    cert: cert.certPem,
    hideREQUIRETLS: false,
    authOptional: true,
    disabledCommands: ['AUTH'],
    logger: false,
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const env = session.envelope as typeof session.envelope & { requireTLS?: boolean };
        received.push({ from: env.mailFrom ? env.mailFrom.address : '', to: env.rcptTo.map((r) => r.address), requireTls: env.requireTLS === true, secure: session.secure, data: Buffer.concat(chunks).toString('utf8') });
        cb(null);
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((r) => server.listen(SMTP_PORT, host, r));
  return { received, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe('REQUIRETLS (RFC 8689)', { skip: !postfixAvailable() && !inCI ? 'postfix is not installed' : false }, () => {
  let t: TestGateway;
  let rt: Awaited<ReturnType<typeof startRequireTlsServer>>;
  let pf: PostfixInstance;
  let back: SmtpPeer;
  const log = () => t.events.map(formatEvent).join('\n');

  before(async () => {
    const ca = await TestCA.create('REQUIRETLS test CA');
    const rtCert = await ca.issue({ cn: 'mx1.rt.test', dnsNames: ['mx1.rt.test'] });
    rt = await startRequireTlsServer(RT, 'mx1.rt.test', rtCert);
    const pfCert = await ca.issue({ cn: 'mx1.pf.test', dnsNames: ['mx1.pf.test'] });
    const dir = tempDir('postern-requiretls-');
    writeFileSync(join(dir, 'pf.key'), pfCert.keyPem, { mode: 0o600 });
    writeFileSync(join(dir, 'pf.pem'), pfCert.chainPem);
    pf = await startPostfix({ address: PF, port: SMTP_PORT, hostname: 'mx1.pf.test', tls: 'may', keyFile: join(dir, 'pf.key'), chainFile: join(dir, 'pf.pem'), delivery: 'maildir' });
    back = await startSmtpPeer({ host: BACK, port: SMTP_PORT, hostname: 'mx.back.test', starttls: 'none' });
    const mx = (exchange: string) => ({ MX: [{ preference: 10, exchange }] });
    t = await startTestGateway({
      zone: {
        // DNSSEC-authenticated (AD) answers, as a validating resolver on loopback gives them.
        'rt.test': { ...mx('mx1.rt.test'), ad: true },
        'mx1.rt.test': { A: [RT], ad: true },
        'pf.test': { ...mx('mx1.pf.test'), ad: true },
        'mx1.pf.test': { A: [PF], ad: true },
        'wrongname.test': { ...mx('mx9.wrongname.test'), ad: true },
        'mx9.wrongname.test': { A: [RT], ad: true },
        // Not authenticated: the same server, found insecurely.
        'insecure.test': mx('mx1.insecure.test'),
        'mx1.insecure.test': { A: [RT] },
        'down.test': { ...mx('mx1.down.test'), ad: true },
        'mx1.down.test': { A: ['127.0.94.30'], ad: true },
        'back.test': mx('mx.back.test'),
        'mx.back.test': { A: [BACK] },
      } as never,
      smtpPort: SMTP_PORT,
      options: { publicListen: `${PUBLIC.host}:${PUBLIC.port}` },
      setup: (s) => {
        s.editDefaults({ tls: 'preferred' });
        s.addAuthorities(ca.certPem);
      },
    });
  });

  after(async () => {
    if (process.env.SHOW_LOG) process.stderr.write(log() + '\n');
    await t?.close();
    await rt?.close();
    await pf?.stop();
    await back?.close();
  });

  let n = 0;
  /** Submits over STARTTLS with REQUIRETLS; returns the recipient. */
  const submit = async (domain: string, extraHeaders = ''): Promise<string> => {
    const to = `user${++n}@${domain}`;
    const body = `Subject: secret ${n}\r\n${extraHeaders}\r\nThe body that must not travel in clear ${n}.\r\n`;
    const r = await sendMailRequireTls(t.gw.address!.port, `sender${n}@back.test`, [to], body);
    assert.equal(r.code, 250, r.text);
    return to;
  };

  test('both listeners offer REQUIRETLS after STARTTLS and never before', async () => {
    for (const [host, port] of [['127.0.0.1', t.gw.address!.port], [PUBLIC.host, PUBLIC.port]] as const) {
      const clear = await session(port, host, false);
      assert.ok(!clear.extensions.has('REQUIRETLS'), `${host}:${port} offers REQUIRETLS in clear text`);
      assert.ok(clear.extensions.has('STARTTLS'));
      await clear.quit();
      const secure = await session(port, host, true);
      assert.ok(secure.extensions.has('REQUIRETLS'), `${host}:${port} does not offer REQUIRETLS after STARTTLS`);
      await secure.quit();
    }
  });

  test('the MAIL FROM parameter is refused in a clear-text session', async () => {
    for (const [host, port] of [['127.0.0.1', t.gw.address!.port], [PUBLIC.host, PUBLIC.port]] as const) {
      const raw = await rawSession(port, host);
      assert.match(await raw.cmd('EHLO client.test'), /^250/);
      const reply = await raw.cmd('MAIL FROM:<a@back.test> REQUIRETLS');
      assert.match(reply, /^5\d\d /, `${host}:${port} answered ${reply}`);
      raw.close();
    }
  });

  test('delivered with the parameter to a securely found server that offers it, over verified TLS', async () => {
    const to = await submit('rt.test');
    assert.deepEqual(await waitFor(`the fate of ${to}`, () => fateOf(t, to), 20_000), { kind: 'delivered' });
    const got = rt.received.find((m) => m.to.includes(to));
    assert.ok(got, 'the REQUIRETLS server received the message');
    assert.equal(got.requireTls, true, 'sent on with MAIL FROM … REQUIRETLS');
    assert.equal(got.secure, true);
    assert.match(log(), /Start MID \d+ .* ready \d+ bytes, Received id [0-9a-f]+, REQUIRETLS/);
    assert.match(log(), /Delivery start DCID \d+ MID \d+ to RID \[0\] with REQUIRETLS/);
    assert.match(log(), /TLS success .* for rt\.test \(verified: REQUIRETLS: certificate valid for mx1\.rt\.test\)/);
  });

  test('queue show says what the sender asked', async () => {
    // Its MX does not answer: the message waits in the queue (a host that cannot be reached may
    // later be able to take it, so that is not a reason to return it).
    const to = await submit('down.test');
    const fate = await waitFor(`the fate of ${to}`, () => fateOf(t, to), 20_000);
    assert.equal(fate.kind, 'deferred');
    const mid = (t.events.find((e) => e.event === 'message-accepted' && e.recipients.includes(to)) as { mid: number }).mid;
    const shown = await runCliOk(['queue', 'show', String(mid), '--data-dir', t.dataDir]);
    assert.match(shown, /^TLS: REQUIRETLS \(RFC 8689\)/m);
    const json = JSON.parse(await runCliOk(['queue', 'show', String(mid), '--json', '--data-dir', t.dataDir])) as { tlsRequired: string };
    assert.equal(json.tlsRequired, 'requiretls');
  });

  const returned = async (to: string, why: RegExp) => {
    const fate = await waitFor(`the fate of ${to}`, () => fateOf(t, to), 20_000);
    assert.equal(fate.kind, 'bounced', JSON.stringify(fate));
    assert.match(fate.kind === 'bounced' ? fate.reply : '', /^5\.7\.30 REQUIRETLS support required/);
    assert.match(fate.kind === 'bounced' ? fate.reply : '', why);
    // The returned copy: headers only (the Subject is there, the body is not).
    const k = to.replace(/^user(\d+)@.*$/, '$1');
    await waitFor(`the DSN for ${to}`, () => back.messages.find((m) => m.data.toString('utf8').includes(`secret ${k}`)), 20_000);
    const dsn = back.messages.find((m) => m.data.toString('utf8').includes(`secret ${k}`))!.data.toString('utf8');
    assert.match(dsn, /Status: 5\.7\.30/);
    assert.match(dsn, /text\/rfc822-headers/);
    assert.ok(!dsn.includes(`must not travel in clear ${k}`), 'the body was returned');
  };

  test("to Debian's Postfix, which does not offer REQUIRETLS: returned with 5.7.30, headers only", async () => {
    const to = await submit('pf.test');
    await returned(to, /mx1\.pf\.test \[127\.0\.94\.12\] does not offer REQUIRETLS after STARTTLS/);
    assert.equal((await pf.readDelivered()).length, 0, 'Postfix received nothing');
    assert.match(log(), /TLS failed: REQUIRETLS: mx1\.pf\.test \[127\.0\.94\.12\] does not offer REQUIRETLS after STARTTLS/);
  });

  test('an MX not found securely: returned with 5.7.30, no connection made', async () => {
    const before = rt.received.length;
    const to = await submit('insecure.test');
    await returned(to, /mx1\.insecure\.test was not found securely/);
    assert.equal(rt.received.length, before);
  });

  test('a certificate not valid for the MX name: returned with 5.7.30', async () => {
    const to = await submit('wrongname.test');
    await returned(to, /the certificate is not valid for mx9\.wrongname\.test/);
  });

  test('without REQUIRETLS the same servers take the message as the table says', async () => {
    const to = `plain${++n}@pf.test`;
    const body = 'Subject: plain\r\n\r\nhello\r\n';
    const s = await session(t.gw.address!.port, '127.0.0.1', false);
    const r = await s.send({ from: 'sender@back.test', recipients: [{ address: to }], size: body.length }, Buffer.from(body));
    await s.quit();
    assert.equal(r.kind === 'done' ? r.data?.code : 0, 250);
    assert.deepEqual(await waitFor(`the fate of ${to}`, () => fateOf(t, to), 20_000), { kind: 'delivered' });
    assert.equal((await pf.waitForDelivered(1)).length, 1);
  });
});
