/**
 * SMTP TLS Reporting (RFC 8460) end to end: a day of deliveries to a domain with an MTA-STS
 * policy (served over HTTPS), one with DANE (TLSA records under DNSSEC, the AD bit from the
 * loopback DNS server) and one with no policy; the day's report checked field by field against
 * what happened and against the RFC's JSON schema; sent with `report tlsrpt --send` to a local
 * HTTPS collector and, by mail through Postern itself, to Debian's Postfix (Maildir: the
 * attachment decompressed and parsed) — although the reports' own domain has an MTA-STS policy
 * that would hold back ordinary mail. Then the gateway sends the previous day's reports by
 * itself, and a collector that fails is tried again.
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { simpleParser } from 'mailparser';
import { formatEvent } from '../src/observe/events.js';
import { TlsRptStore, utcDay } from '../src/observe/tlsrpt.js';
import type { TlsRptReport } from '../src/manage/tlsrpt-report.js';
import { fateOf, sendMail, startTestGateway, waitFor, type TestGateway } from './harness.js';
import { TestCA } from './peers/ca.js';
import { postfixAvailable, startPostfix, type PostfixInstance } from './peers/postfix.js';
import { startSmtpPeer, type SmtpPeer } from './peers/smtp-peer.js';
import { startCollector, type Collector } from './peers/tlsrpt-collector.js';
import { runCli, runCliOk } from './process.js';
import { tlsRptValidator } from './tlsrpt-schema.js';

const inCI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';
// Addresses 127.0.95.x and ports 2638, 2639 and 2604 are this file's own.
const SMTP_PORT = 2638;
const HTTPS = { host: '127.0.95.80', port: 2639 };
const COLLECTOR = { host: '127.0.95.40', port: 2604 };
const REPORTS_MX = '127.0.95.30';
const spkiSha256 = (pem: string) => createHash('sha256').update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
const policy = (mode: string, mx: string[]) => ['version: STSv1', `mode: ${mode}`, ...mx.map((m) => `mx: ${m}`), 'max_age: 86400', ''].join('\n');

describe('TLS reporting (RFC 8460) end to end', { skip: !postfixAvailable() && !inCI ? 'postfix is not installed' : false }, () => {
  let t: TestGateway;
  let server: https.Server;
  let collector: Collector;
  let pf: PostfixInstance;
  const peers: SmtpPeer[] = [];
  let tlsaRecord = '';
  const today = utcDay(Date.now());
  const yesterday = utcDay(Date.now() - 86_400_000);
  const validate = tlsRptValidator();
  const log = () => t.events.map(formatEvent).join('\n');

  before(async () => {
    const ca = await TestCA.create('TLS reporting test CA');
    const contexts = new Map<string, tls.SecureContext>();
    for (const d of ['sts.test', 'reports.test']) {
      const c = await ca.issue({ cn: `mta-sts.${d}`, dnsNames: [`mta-sts.${d}`] });
      contexts.set(`mta-sts.${d}`, tls.createSecureContext({ key: c.keyPem, cert: c.certPem }));
    }
    const policies: Record<string, string> = { 'mta-sts.sts.test': policy('enforce', ['mx1.sts.test']), 'mta-sts.reports.test': policy('enforce', ['mx.elsewhere.test']) };
    server = https.createServer({ SNICallback: (name, cb) => cb(null, contexts.get(name)) }, (req: IncomingMessage, res: ServerResponse) => {
      const text = policies[String(req.headers.host ?? '').replace(/:\d+$/, '')];
      if (text === undefined || req.url !== '/.well-known/mta-sts.txt') return res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'text/plain' }).end(text);
    });
    await new Promise<void>((r) => server.listen(HTTPS.port, HTTPS.host, r));
    const collectorCert = await ca.issue({ cn: 'collector.test', dnsNames: ['collector.test'] });
    collector = await startCollector({ ...COLLECTOR, certChainPem: collectorCert.chainPem, keyPem: collectorCert.keyPem, name: 'collector.test' });

    const receiver = async (name: string, host: string, starttls: 'ok' | 'none') => {
      const cert = await ca.issue({ cn: name, dnsNames: [name] });
      peers.push(await startSmtpPeer({ host, port: SMTP_PORT, hostname: name, starttls, cert: { keyPem: cert.keyPem, certPem: cert.certPem } }));
      return cert;
    };
    await receiver('mx1.sts.test', '127.0.95.11', 'ok');
    const tlsaCert = await receiver('mx1.tlsa.test', '127.0.95.12', 'ok');
    tlsaRecord = `3 1 1 ${spkiSha256(tlsaCert.certPem)}`;
    await receiver('mx1.plain.test', '127.0.95.13', 'none');
    pf = await startPostfix({ address: REPORTS_MX, port: SMTP_PORT, hostname: 'mx.reports.test', tls: 'none', delivery: 'maildir' });

    const collectorUrl = `https://collector.test:${COLLECTOR.port}`;
    t = await startTestGateway({
      zone: {
        'sts.test': { MX: [{ preference: 10, exchange: 'mx0.sts.test' }, { preference: 20, exchange: 'mx1.sts.test' }] },
        'mx0.sts.test': { A: ['127.0.95.10'] },
        'mx1.sts.test': { A: ['127.0.95.11'] },
        '_mta-sts.sts.test': { TXT: ['v=STSv1; id=1;'] },
        'mta-sts.sts.test': { A: [HTTPS.host] },
        '_smtp._tls.sts.test': { TXT: [`v=TLSRPTv1; rua=mailto:tlsrpt@reports.test,${collectorUrl}/sts`] },
        'tlsa.test': { MX: [{ preference: 10, exchange: 'mx1.tlsa.test' }], ad: true },
        'mx1.tlsa.test': { A: ['127.0.95.12'], ad: true },
        [`_${SMTP_PORT}._tcp.mx1.tlsa.test`]: { TLSA: [{ usage: 3, selector: 1, matchingType: 1, data: Buffer.from(tlsaRecord.split(' ')[3]!, 'hex') }], ad: true },
        '_smtp._tls.tlsa.test': { TXT: [`v=TLSRPTv1; rua=${collectorUrl}/tlsa`], ad: true },
        'plain.test': { MX: [{ preference: 10, exchange: 'mx1.plain.test' }] },
        'mx1.plain.test': { A: ['127.0.95.13'] },
        'reports.test': { MX: [{ preference: 10, exchange: 'mx.reports.test' }] },
        'mx.reports.test': { A: [REPORTS_MX] },
        '_mta-sts.reports.test': { TXT: ['v=STSv1; id=1;'] },
        'mta-sts.reports.test': { A: [HTTPS.host] },
        'collector.test': { A: [COLLECTOR.host] },
      } as never,
      smtpPort: SMTP_PORT,
      options: { httpsPort: HTTPS.port },
      setup: (s) => {
        s.editDefaults({ tls: 'preferred' });
        s.addAuthorities(ca.certPem);
      },
      // The previous day's reports go out at once, and the sender looks often.
      tweak: (o) => {
        o.tlsRptDelayMs = 0;
        o.tlsRptCheckMs = 200;
      },
    });
    await runCliOk(['tlsrptconfig', 'setup', '--organization', 'Example Sender Inc.', '--contact', 'mailto:tls-admin@sender.test', '--sender', 'tlsrpt@sender.test', '--data-dir', t.dataDir]);
    t.configure(() => undefined);
  });

  after(async () => {
    if (process.env.SHOW_LOG) process.stderr.write(log() + '\n');
    await t?.close();
    await new Promise<void>((r) => server?.close(() => r()));
    await collector?.close();
    await pf?.stop();
    await Promise.all(peers.map((p) => p.close()));
  });

  let n = 0;
  const deliver = async (domain: string, body = 'Subject: a day of mail\r\n\r\nhello\r\n') => {
    const to = `user${++n}@${domain}`;
    const r = await sendMail(t.gw.address!.port, 'someone@sender.test', [to], body);
    assert.equal(r.code, 250, r.text);
    return waitFor(`the fate of ${to}`, () => fateOf(t, to), 20_000);
  };
  const reportOf = async (domain: string, day = today) => JSON.parse(await runCliOk(['report', 'tlsrpt', '--domain', domain, '--day', day, '--json', '--data-dir', t.dataDir])) as TlsRptReport;

  test('a day of deliveries: MTA-STS, DANE and no policy', async () => {
    assert.deepEqual(await deliver('sts.test'), { kind: 'delivered' });
    assert.deepEqual(await deliver('tlsa.test'), { kind: 'delivered' });
    assert.deepEqual(await deliver('plain.test'), { kind: 'delivered' });
    // Ordinary mail to the reports' domain is held by its policy (no MX of it is in the policy).
    const held = await deliver('reports.test');
    assert.equal(held.kind, 'deferred');
    assert.match(held.kind === 'deferred' ? held.reply : '', /MTA-STS enforce: mx mx\.reports\.test not in policy/);
    await new Promise((r) => setTimeout(r, 100)); // the counter writes at the end of the turn
  });

  test("the day's reports, field by field, and valid against the RFC's schema", async () => {
    const sts = await reportOf('sts.test');
    assert.ok(validate(sts), JSON.stringify(validate.errors));
    assert.equal(sts['organization-name'], 'Example Sender Inc.');
    assert.equal(sts['contact-info'], 'mailto:tls-admin@sender.test');
    assert.deepEqual(sts['date-range'], { 'start-datetime': `${today}T00:00:00Z`, 'end-datetime': `${today}T23:59:59Z` });
    assert.match(sts['report-id'], new RegExp(`^${today}T00:00:00Z_sts\\.test_`));
    assert.equal(sts.policies.length, 1);
    const p = sts.policies[0]!;
    assert.deepEqual(p.policy, { 'policy-type': 'sts', 'policy-domain': 'sts.test', 'policy-string': ['version: STSv1', 'mode: enforce', 'mx: mx1.sts.test', 'max_age: 86400'], 'mx-host': ['mx1.sts.test'] });
    // mx1 took the message over verified TLS; mx0 (not in the policy) was ruled out before any connection.
    assert.deepEqual(p.summary, { 'total-successful-session-count': 1, 'total-failure-session-count': 1 });
    assert.equal(p['failure-details']!.length, 1);
    const d = p['failure-details']![0]!;
    assert.equal(d['result-type'], 'validation-failure');
    assert.equal(d['receiving-mx-hostname'], 'mx0.sts.test');
    assert.equal(d['receiving-ip'], '127.0.95.10');
    assert.equal(d['sending-mta-ip'], '127.0.0.1', 'the address the kernel would send from');
    assert.equal(d['failed-session-count'], 1);

    const tlsa = await reportOf('tlsa.test');
    assert.ok(validate(tlsa), JSON.stringify(validate.errors));
    assert.deepEqual(tlsa.policies, [{ policy: { 'policy-type': 'tlsa', 'policy-domain': 'tlsa.test', 'policy-string': [tlsaRecord] }, summary: { 'total-successful-session-count': 1, 'total-failure-session-count': 0 } }]);

    const plain = await reportOf('plain.test');
    assert.ok(validate(plain), JSON.stringify(validate.errors));
    assert.deepEqual(plain.policies[0]!.policy, { 'policy-type': 'no-policy-found', 'policy-domain': 'plain.test' });
    assert.deepEqual(plain.policies[0]!.summary, { 'total-successful-session-count': 0, 'total-failure-session-count': 1 });
    assert.equal(plain.policies[0]!['failure-details']![0]!['result-type'], 'starttls-not-supported');
    assert.equal(plain.policies[0]!['failure-details']![0]!['receiving-ip'], '127.0.95.13');
  });

  test('report tlsrpt --send: posted to the HTTPS collector and mailed through Postern to Postfix, past the MTA-STS policy', async () => {
    const sent = await runCliOk(['report', 'tlsrpt', '--domain', 'sts.test', '--day', today, '--send', '--dns-server', t.dns.address, '--data-dir', t.dataDir]);
    assert.match(sent, /^  https:\/\/collector\.test:2604\/sts: sent: accepted \(HTTP 200\)$/m);
    assert.match(sent, /^  mailto:tlsrpt@reports\.test: queued: queued as MID \d+$/m);
    // The collector got the gzipped report.
    const posted = collector.received.find((r) => r.path === '/sts')!;
    assert.equal(posted.contentType, 'application/tlsrpt+gzip');
    const fromCollector = JSON.parse(gunzipSync(posted.body).toString('utf8')) as TlsRptReport;
    assert.ok(validate(fromCollector), JSON.stringify(validate.errors));
    assert.deepEqual(fromCollector.policies, (await reportOf('sts.test')).policies);
    // Postfix got the mail although reports.test's policy names no MX of it (TLS-Required: No).
    const [got] = await pf.waitForDelivered(1, 30_000);
    const mail = await simpleParser(got!.raw);
    assert.equal(mail.headers.get('tls-report-domain'), 'sts.test');
    assert.equal(mail.headers.get('tls-report-submitter'), 'sender.test');
    assert.equal(mail.headers.get('tls-required'), 'No');
    assert.match(String(mail.subject), new RegExp(`^Report Domain: sts\\.test Submitter: sender\\.test Report-ID: <${today}T00:00:00Z_sts\\.test_`));
    assert.match(String((mail.headers.get('content-type') as { value: string; params: Record<string, string> }).params['report-type']), /^tlsrpt$/);
    const part = mail.attachments.find((a) => a.contentType === 'application/tlsrpt+gzip')!;
    assert.match(part.filename ?? '', /^sender\.test!sts\.test!\d+!\d+(![A-Za-z0-9]+)?\.json\.gz$/);
    const fromMail = JSON.parse(gunzipSync(part.content).toString('utf8')) as TlsRptReport;
    assert.ok(validate(fromMail), JSON.stringify(validate.errors));
    assert.deepEqual(fromMail, fromCollector);
    assert.match(log(), /TLS policy for reports\.test host \*: TLS-Required: No/);
    // And the report says where it went.
    const shown = await runCliOk(['report', 'tlsrpt', '--domain', 'sts.test', '--day', today, '--data-dir', t.dataDir]);
    assert.match(shown, /^Sent:$/m);
    assert.match(shown, /https:\/\/collector\.test:2604\/sts: sent/);
  });

  test("after the day: the gateway sends the previous day's reports by itself, and tries a failing collector again", async () => {
    // The sessions of the first test, as if they had been made yesterday.
    const store = TlsRptStore.open(t.dataDir);
    try {
      for (const d of ['sts.test', 'tlsa.test', 'plain.test']) store.add(store.sessions(today, d).map((r) => ({ ...r, day: yesterday })));
    } finally {
      store.close();
    }
    collector.respondWith(503);
    const tlsaPath = () => collector.received.filter((r) => r.path === '/tlsa');
    await waitFor('the first try of the tlsa.test report', () => tlsaPath().length >= 1, 20_000);
    await waitFor('the sts.test report posted', () => collector.received.filter((r) => r.path === '/sts').length >= 2, 20_000);
    await waitFor('the log line of the failed try', () => /TLS report for tlsa\.test of \d{4}-\d{2}-\d{2} to https:\/\/collector\.test:2604\/tlsa not sent yet: https:\/\/collector\.test:2604\/tlsa: HTTP 503.*; next attempt/.test(log()), 10_000);
    assert.match(log(), new RegExp(`TLS report for plain\\.test of ${yesterday} not sent: no TXT record _smtp\\._tls\\.plain\\.test`));
    const posted = JSON.parse(gunzipSync(collector.received.filter((r) => r.path === '/sts')[1]!.body).toString('utf8')) as TlsRptReport;
    assert.deepEqual(posted['date-range'], { 'start-datetime': `${yesterday}T00:00:00Z`, 'end-datetime': `${yesterday}T23:59:59Z` });
    // Retried after the backoff: brought forward here, as the clock would.
    collector.respondWith(200);
    const reports = TlsRptStore.open(t.dataDir);
    try {
      reports.db.prepare(`UPDATE tlsrpt_sends SET next_try = 0 WHERE status = 'retry'`).run();
    } finally {
      reports.close();
    }
    await waitFor('the retried tlsa.test report', () => tlsaPath().length >= 2, 20_000);
    await waitFor('the log line of the retry', () => new RegExp(`TLS report for tlsa\\.test of ${yesterday} to https://collector\\.test:2604/tlsa sent: accepted \\(HTTP 200\\)`).test(log()), 10_000);
    assert.deepEqual(tlsaPath()[0]!.body, tlsaPath()[1]!.body, 'the same report again');
    // Each report once: nothing more goes out.
    const count = collector.received.length;
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(collector.received.length, count);
  });

  test('report tlsrpt refuses bad arguments with a clear message', async () => {
    const r = await runCli(['report', 'tlsrpt', '--domain', 'sts.test', '--day', '2026-02-30', '--data-dir', t.dataDir]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--day.*2026-02-30.*YYYY-MM-DD/);
  });
});
