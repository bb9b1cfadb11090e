/**
 * Sending SMTP TLS reports (RFC 8460 §5): the report mail as a mail reader parses it
 * (mailparser), the report checked against a JSON Schema of §4.4, and the https: POST against a
 * real HTTPS collector on loopback with test-CA certificates.
 *
 * Addresses 127.0.92.1–127.0.92.9, ports 2651–2655 only.
 */
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { simpleParser, type StructuredHeader } from 'mailparser';
import { buildTlsRptReport, type TlsRptReport } from '../src/manage/tlsrpt-report.js';
import type { AddressResolver } from '../src/mtasts/fetch.js';
import type { SessionRow } from '../src/observe/tlsrpt.js';
import { secureContextFor } from '../src/tls/trust.js';
import { composeReportMail, gzipReport, reportFileName } from '../src/tlsrpt/message.js';
import { GIVE_UP_AFTER_MS, nextTryAt, postReport, retryDelayMs } from '../src/tlsrpt/post.js';
import { within } from './deadline.js';
import { TestCA } from './peers/ca.js';
import { startCollector, type Collector } from './peers/tlsrpt-collector.js';
import { tlsRptValidator } from './tlsrpt-schema.js';

const A = (n: number) => `127.0.92.${n}`;

const row = (r: Partial<SessionRow>): SessionRow => ({
  day: '2024-05-01',
  policyDomain: 'example.com',
  policyType: 'sts',
  policyStrings: ['version: STSv1', 'mode: enforce', 'mx: *.mail.example.com', 'max_age: 86400'],
  mxHosts: ['*.mail.example.com'],
  result: 'success',
  sendingIp: '192.0.2.10',
  receivingMx: 'mx1.mail.example.com',
  receivingIp: '198.51.100.7',
  count: 1,
  ...r,
});

function sampleReport(domain = 'example.com', reportId = '2024-05-01T00:00:00Z_example.com_abc123'): TlsRptReport {
  const rows = [
    row({ policyDomain: domain, count: 10 }),
    row({ policyDomain: domain, result: 'certificate-expired', count: 2 }),
    row({ policyDomain: domain, result: 'starttls-not-supported', receivingMx: 'mx2.mail.example.com', receivingIp: '2001:db8::25', sendingIp: '2001:db8::1', count: 1 }),
  ];
  return buildTlsRptReport(rows, { domain, day: '2024-05-01', organization: 'Postern Test', contact: 'tlsrpt@postern.example', reportId })!;
}

const NOW = Date.UTC(2024, 4, 2, 1, 2, 3);
const mailFor = (report: TlsRptReport, policyDomain = 'example.com') =>
  composeReportMail({ report, policyDomain, submitter: 'mail.postern.example', from: 'tlsrpt@postern.example', to: ['tlsrpt@example.com', 'reports@example.net'], hostname: 'mail.postern.example', now: NOW });

describe('TLS report file name (RFC 8460 §5.1)', () => {
  it('is submitter!policy-domain!begin!end[!unique-id].json.gz', () => {
    assert.equal(reportFileName('mail.sender.example', 'example.com', 1470013207, 1470186007, '001'), 'mail.sender.example!example.com!1470013207!1470186007!001.json.gz');
    assert.equal(reportFileName('Mail.Sender.Example', 'example.com', 1470013207.9, 1470186007), 'mail.sender.example!example.com!1470013207!1470186007.json.gz');
  });

  it('keeps only letters and digits of the unique id, and no separator or quote in the domains', () => {
    assert.equal(reportFileName('a.example', 'b.example', 1, 2, '2024-05-01T00:00:00Z_b/../"x'), 'a.example!b.example!1!2!20240501T000000Zbx.json.gz');
    assert.equal(reportFileName('a.example', 'b.example', 1, 2, '-_-'), 'a.example!b.example!1!2.json.gz');
    assert.equal(reportFileName('a!"\r\n.example', 'b/c', 1, 2), 'a____.example!b_c!1!2.json.gz');
    assert.throws(() => reportFileName('a', 'b', Number.NaN, 2), RangeError);
  });
});

describe('TLS report mail (RFC 8460 §5.3)', () => {
  const report = sampleReport();
  const raw = mailFor(report);

  it('has CRLF line ends only and base64 lines of at most 76 characters', () => {
    const text = raw.toString('utf8');
    assert.ok(!/[^\r]\n/.test(text) && !/\r(?!\n)/.test(text), 'bare LF or CR');
    const body = text.split('Content-Transfer-Encoding: base64\r\n')[1]!;
    const b64 = body.split('\r\n\r\n')[1]!.split('\r\n').filter((l) => /^[A-Za-z0-9+/=]+$/.test(l));
    assert.ok(b64.length > 1);
    for (const l of b64) assert.ok(l.length <= 76, l);
    assert.ok(b64.slice(0, -1).every((l) => l.length === 76));
  });

  it('carries the headers RFC 8460 asks for, and parses as multipart/report with report-type tlsrpt', async () => {
    const m = await simpleParser(raw);
    assert.equal(m.from?.text, 'tlsrpt@postern.example');
    const to = Array.isArray(m.to) ? m.to : [m.to!];
    assert.deepEqual(to.flatMap((t) => t.value.map((v) => v.address)), ['tlsrpt@example.com', 'reports@example.net']);
    assert.equal(m.date?.getTime(), NOW);
    assert.match(m.messageId ?? '', /^<tlsrpt\.[0-9a-f]{24}@mail\.postern\.example>$/);
    assert.equal(m.subject, `Report Domain: example.com Submitter: mail.postern.example Report-ID: <${report['report-id']}>`);
    assert.equal(m.headers.get('tls-report-domain'), 'example.com');
    assert.equal(m.headers.get('tls-report-submitter'), 'mail.postern.example');
    assert.equal(m.headers.get('tls-required'), 'No');
    assert.equal(m.headers.get('auto-submitted'), 'auto-generated');
    assert.equal(m.headers.get('mime-version'), '1.0');
    const ct = m.headers.get('content-type') as StructuredHeader;
    assert.equal(ct.value, 'multipart/report');
    assert.equal(ct.params['report-type'], 'tlsrpt');
    assert.ok(ct.params.boundary);

    assert.match(m.text ?? '', /from mail\.postern\.example\r?\non the TLS sessions made to deliver mail to example\.com on 2024-05-01 \(UTC\):/);
    assert.match(m.text ?? '', /10 sessions succeeded and 3 failed\./);

    assert.equal(m.attachments.length, 1);
    const att = m.attachments[0]!;
    assert.equal(att.contentType, 'application/tlsrpt+gzip');
    assert.equal(att.contentDisposition, 'attachment');
    assert.equal(att.filename, 'mail.postern.example!example.com!1714521600!1714607999!20240501T000000Zexamplecomabc123.json.gz');
    assert.deepEqual(att.content, gzipReport(report));
    assert.deepEqual(JSON.parse(gunzipSync(att.content).toString('utf8')), report);
  });

  it('is the same mail for the same input (no clock, no randomness)', () => {
    assert.deepEqual(mailFor(report), raw);
  });

  it('lets no domain or report id start a header line of its own', async () => {
    const evilDomain = 'evil.example\r\nBcc: victim@example.com';
    const evil = sampleReport(evilDomain, 'id\r\nX-Injected: yes\nReply-To: x@evil.example');
    const mail = mailFor(evil, evilDomain);
    const text = mail.toString('utf8');
    for (const line of text.split('\r\n')) assert.ok(!/^(Bcc|X-Injected|Reply-To):/i.test(line), line);
    const m = await simpleParser(mail);
    assert.equal(m.headers.has('bcc'), false);
    assert.equal(m.headers.has('x-injected'), false);
    assert.equal(m.headers.has('reply-to'), false);
    assert.equal(m.headers.get('tls-report-domain'), 'evil.example\\x0d\\x0aBcc: victim@example.com');
    assert.match(m.subject ?? '', /Report-ID: <id\\x0d\\x0aX-Injected: yes\\x0aReply-To: x@evil\.example>$/);
    assert.equal(m.attachments.length, 1);
    assert.equal(m.attachments[0]!.filename, 'mail.postern.example!evil.example__bcc__victim_example.com!1714521600!1714607999!idXInjectedyesReplyToxevilexample.json.gz');
    assert.deepEqual(JSON.parse(gunzipSync(m.attachments[0]!.content).toString('utf8')), evil);
  });
});

describe('TLS report JSON Schema (RFC 8460 §4.4)', () => {
  const validate = tlsRptValidator();

  it('accepts the reports Postern builds', () => {
    const reports = [
      sampleReport(),
      buildTlsRptReport([row({ policyType: 'no-policy-found', policyStrings: [], mxHosts: [], count: 4 })], { domain: 'example.com', day: '2024-05-01', organization: 'o', contact: 'c@example.org', reportId: 'r' })!,
    ];
    for (const r of reports) {
      const gz = gzipReport(r);
      assert.ok(validate(JSON.parse(gunzipSync(gz).toString('utf8'))), JSON.stringify(validate.errors));
    }
  });

  it('refuses reports that break the RFC', () => {
    const DELETE = Symbol('delete');
    const broken: [string, (string | number)[], unknown][] = [
      ['unknown policy type', ['policies', 0, 'policy', 'policy-type'], 'dane'],
      ['no failure count', ['policies', 0, 'summary', 'total-failure-session-count'], DELETE],
      ['negative count', ['policies', 0, 'summary', 'total-successful-session-count'], -1],
      ['fractional count', ['policies', 0, 'failure-details', 0, 'failed-session-count'], 1.5],
      ['not an IP address', ['policies', 0, 'failure-details', 0, 'sending-mta-ip'], 'mx.example'],
      ['not a date-time', ['date-range', 'start-datetime'], '2024-05-01'],
      ['no report id', ['report-id'], DELETE],
      ['no policies', ['policies'], []],
      ['no result type', ['policies', 0, 'failure-details', 0, 'result-type'], DELETE],
      ['policy strings not an array', ['policies', 0, 'policy', 'policy-string'], 'version: STSv1'],
    ];
    for (const [what, path, value] of broken) {
      const r: unknown = structuredClone(sampleReport());
      let parent = r as Record<string | number, unknown>;
      for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
      const last = path.at(-1)!;
      if (value === DELETE) delete parent[last];
      else parent[last] = value;
      assert.equal(validate(r), false, what);
    }
  });
});

describe('posting a TLS report over https (RFC 8460 §5.3.1)', { timeout: within(20_000) }, () => {
  let ca: TestCA;
  let good: Collector;
  let wrongName: Collector;
  let stranger: Collector;
  let trust: ReturnType<typeof secureContextFor>;
  const gz = gzipReport(sampleReport());
  /** collector.example (and only it) at `address`, as Postern's DNS client would find it. */
  const at =
    (address: string): AddressResolver =>
    async (host) => {
      if (host !== 'collector.example') throw new Error(`${host} has no address (no A or AAAA record)`);
      return [{ address, family: 4 }];
    };

  before(async () => {
    ca = await TestCA.create('TLSRPT Test CA');
    trust = secureContextFor({ useSystem: false, custom: [ca.certPem] });
    const cert = await ca.issue({ dnsNames: ['collector.example'] });
    const other = await ca.issue({ dnsNames: ['other.example'] });
    const unknownCa = await TestCA.create('Unknown CA');
    const strangers = await unknownCa.issue({ dnsNames: ['collector.example'] });
    good = await startCollector({ host: A(1), port: 2651, certChainPem: cert.chainPem, keyPem: cert.keyPem });
    wrongName = await startCollector({ host: A(2), port: 2652, certChainPem: other.chainPem, keyPem: other.keyPem });
    stranger = await startCollector({ host: A(3), port: 2653, certChainPem: strangers.chainPem, keyPem: strangers.keyPem });
  });

  after(async () => {
    await Promise.all([good?.close(), wrongName?.close(), stranger?.close()]);
  });

  const post = (url: string, address: string, timeoutMs = within(5000)) => postReport(url, gz, { secureContext: trust, resolve: at(address), timeoutMs });

  it('posts the exact gzipped bytes as application/tlsrpt+gzip; 2xx is ok', async () => {
    good.respondWith(201);
    const before = good.received.length;
    const r = await post(good.url('/v1/tlsrpt?x=1'), A(1));
    assert.deepEqual(r, { ok: true, status: 201 });
    assert.equal(good.received.length, before + 1);
    const got = good.received.at(-1)!;
    assert.equal(got.path, '/v1/tlsrpt?x=1');
    assert.equal(got.contentType, 'application/tlsrpt+gzip');
    assert.ok(got.body.equals(gz));
  });

  it('takes 5xx, 408 and 429 as temporary, other 4xx and redirects as permanent, naming the URL', async () => {
    for (const [status, permanent] of [[503, false], [500, false], [408, false], [429, false], [400, true], [404, true], [413, true], [301, true]] as const) {
      good.respondWith(status);
      const r = await post(good.url(), A(1));
      assert.equal(r.ok, false, String(status));
      if (r.ok) continue;
      assert.equal(r.permanent, permanent, `${status}: ${r.reason}`);
      assert.ok(r.reason.startsWith(`https://collector.example:2651/tlsrpt: HTTP ${status}`), r.reason);
      if (status === 301) assert.match(r.reason, /redirect refused/);
    }
    good.respondWith(200);
  });

  it('refuses a certificate for another name, saying so (temporary: the collector may fix it)', async () => {
    const before = wrongName.received.length;
    const r = await post(wrongName.url(), A(2));
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.permanent, false);
    assert.match(r.reason, /^https:\/\/collector\.example:2652\/tlsrpt: the certificate is not valid for collector\.example/);
    assert.equal(wrongName.received.length, before, 'the report was not sent');
  });

  it('refuses a certificate from an authority not in the trust store', async () => {
    const r = await post(stranger.url(), A(3));
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.permanent, false);
    assert.match(r.reason, /^https:\/\/collector\.example:2653\/tlsrpt: untrusted chain: self-signed certificate \(SELF_SIGNED_CERT_IN_CHAIN\)$/);
    assert.equal(stranger.received.length, 0);
  });

  it('gives up on a collector that never answers after timeoutMs (temporary)', async () => {
    good.respondWith('never');
    const started = Date.now();
    const r = await post(good.url('/slow'), A(1), 400);
    good.respondWith(200);
    assert.deepEqual(r, { ok: false, permanent: false, reason: 'https://collector.example:2651/slow: no answer within 0.4 s' });
    assert.ok(Date.now() - started < within(2000));
  });

  it('takes DNS and connection failures as temporary, and a bad URL as permanent', async () => {
    const dns = await postReport('https://nowhere.example:2654/r', gz, { secureContext: trust, resolve: at(A(4)) });
    assert.deepEqual(dns, { ok: false, permanent: false, reason: 'https://nowhere.example:2654/r: nowhere.example has no address (no A or AAAA record)' });
    const refused = await post('https://collector.example:2654/r', A(4));
    assert.equal(refused.ok, false);
    if (!refused.ok) {
      assert.equal(refused.permanent, false);
      assert.match(refused.reason, /^https:\/\/collector\.example:2654\/r: .*ECONNREFUSED/);
    }
    assert.deepEqual(await post('http://collector.example:2651/r', A(1)), { ok: false, permanent: true, reason: 'http://collector.example:2651/r: not an https: URL' });
  });
});

describe('retrying https deliveries (RFC 8460 §5.4)', () => {
  it('waits 5 minutes, then twice as long each time, at most 4 hours', () => {
    const min = 60_000;
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8, 50].map(retryDelayMs), [5, 10, 20, 40, 80, 160, 240, 240, 240].map((m) => m * min));
    assert.equal(retryDelayMs(0), 5 * min);
  });

  it('gives a report up 24 hours after its first try', () => {
    assert.equal(GIVE_UP_AFTER_MS, 24 * 3_600_000);
    const first = 1_000_000;
    assert.equal(nextTryAt(first, first, 1), first + 5 * 60_000);
    assert.equal(nextTryAt(first, first + 20 * 3_600_000, 7), first + 24 * 3_600_000);
    assert.equal(nextTryAt(first, first + 20 * 3_600_000 + 1, 7), null);
  });
});
