/**
 * MTA-STS in delivery (RFC 8461), with real HTTPS: policies served by a local HTTPS server with
 * test-CA certificates for `mta-sts.<domain>` (the CA added with certconfig, as an administrator
 * would), TXT and MX records from the test DNS server, receivers on loopback.
 * enforce: an MX outside the patterns is skipped, none left → deferred (never bounced), a
 * certificate not valid for the MX host → not delivered; testing: delivered as the table says,
 * the mismatch logged; none: the table; a redirect is not followed (no policy); a fetch failure
 * with a cached policy still enforces it; an id change is refetched.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { formatEvent } from '../src/observe/events.js';
import { fateOf, sendMail, sendMailRequireTls, startTestGateway, waitFor, type TestGateway } from './harness.js';
import { TestCA } from './peers/ca.js';
import { runCliOk } from './process.js';
import { TlsRptStore, utcDay } from '../src/observe/tlsrpt.js';
import { DEFAULT_EXTENSIONS, startSmtpPeer, type SmtpPeer, type StarttlsBehaviour } from './peers/smtp-peer.js';
import { COUNT_FLUSH_MS } from '../src/observe/flush.js';

// Addresses 127.0.91.x and ports 2634-2635 are this file's own.
const HTTPS = { host: '127.0.91.80', port: 2634 };
const SMTP_PORT = 2635;
const policy = (mode: string, mx: string[]) => ['version: STSv1', `mode: ${mode}`, ...mx.map((m) => `mx: ${m}`), 'max_age: 86400', ''].join('\n');

describe('MTA-STS in delivery', () => {
  let ca: TestCA;
  let server: https.Server;
  let t: TestGateway;
  const peers: Record<string, SmtpPeer> = {};
  /** Per policy host: what the HTTPS server answers. */
  const sites: Record<string, (res: ServerResponse) => void> = {};
  const requests: string[] = [];
  const contexts = new Map<string, tls.SecureContext>();
  const log = () => t.events.map(formatEvent).join('\n');
  const serve = (text: string) => (res: ServerResponse) => res.writeHead(200, { 'content-type': 'text/plain' }).end(text);

  const receiver = async (name: string, address: string, starttls: StarttlsBehaviour, certName = name) => {
    const cert = await ca.issue({ cn: certName, dnsNames: [certName] });
    peers[name] = await startSmtpPeer({ host: address, port: SMTP_PORT, hostname: name, starttls, cert: { keyPem: cert.keyPem, certPem: cert.certPem } });
  };

  before(async () => {
    ca = await TestCA.create('MTA-STS delivery test CA');
    const policyHosts = ['enforce.test', 'nonefit.test', 'badcert.test', 'testing.test', 'none.test', 'redirect.test', 'cached.test', 'idchange.test', 'tlsno.test', 'tlsnoreq.test', 'rtsts.test'];
    for (const d of policyHosts) {
      const c = await ca.issue({ cn: `mta-sts.${d}`, dnsNames: [`mta-sts.${d}`] });
      contexts.set(`mta-sts.${d}`, tls.createSecureContext({ key: c.keyPem, cert: c.certPem }));
    }
    server = https.createServer(
      { SNICallback: (name, cb) => cb(null, contexts.get(name)) },
      (req: IncomingMessage, res: ServerResponse) => {
        const host = String(req.headers.host ?? '').replace(/:\d+$/, '');
        requests.push(`${host}${req.url}`);
        const site = sites[host];
        if (!site || req.url !== '/.well-known/mta-sts.txt') return res.writeHead(404).end();
        site(res);
      },
    );
    await new Promise<void>((r) => server.listen(HTTPS.port, HTTPS.host, r));
    await receiver('mx0.enforce.test', '127.0.91.10', 'none');
    await receiver('mx1.enforce.test', '127.0.91.11', 'ok');
    await receiver('mx1.nonefit.test', '127.0.91.12', 'ok');
    await receiver('mx1.badcert.test', '127.0.91.13', 'ok', 'wrong.example');
    await receiver('mx1.testing.test', '127.0.91.14', 'none');
    await receiver('mx1.none.test', '127.0.91.15', 'none');
    await receiver('mx1.redirect.test', '127.0.91.16', 'none');
    await receiver('mx1.cached.test', '127.0.91.17', 'ok');
    await receiver('mx9.cached.test', '127.0.91.18', 'none');
    await receiver('mx1.idchange.test', '127.0.91.19', 'ok');
    await receiver('mx2.idchange.test', '127.0.91.20', 'ok');
    await receiver('mx1.tlsno.test', '127.0.91.21', 'none');
    await receiver('mx1.tlsnoreq.test', '127.0.91.22', 'none');
    const rtCert = await ca.issue({ cn: 'mx1.rtsts.test', dnsNames: ['mx1.rtsts.test'] });
    peers['mx1.rtsts.test'] = await startSmtpPeer({ host: '127.0.91.23', port: SMTP_PORT, hostname: 'mx1.rtsts.test', starttls: 'ok', cert: rtCert, extensions: [...DEFAULT_EXTENSIONS, 'REQUIRETLS'] });
    sites['mta-sts.enforce.test'] = serve(policy('enforce', ['mx1.enforce.test']));
    sites['mta-sts.nonefit.test'] = serve(policy('enforce', ['mx.elsewhere.test']));
    sites['mta-sts.badcert.test'] = serve(policy('enforce', ['*.badcert.test']));
    sites['mta-sts.testing.test'] = serve(policy('testing', ['mx.elsewhere.test']));
    sites['mta-sts.none.test'] = serve(policy('none', []));
    sites['mta-sts.redirect.test'] = (res) => res.writeHead(301, { location: `https://mta-sts.enforce.test:${HTTPS.port}/.well-known/mta-sts.txt` }).end();
    sites['mta-sts.cached.test'] = serve(policy('enforce', ['mx1.cached.test']));
    sites['mta-sts.idchange.test'] = serve(policy('enforce', ['mx1.idchange.test']));
    sites['mta-sts.tlsno.test'] = serve(policy('enforce', ['mx.elsewhere.test']));
    sites['mta-sts.tlsnoreq.test'] = serve(policy('enforce', ['mx.elsewhere.test']));
    sites['mta-sts.rtsts.test'] = serve(policy('testing', ['mx1.rtsts.test']));

    const zone: Record<string, object> = {};
    for (const [name, p] of Object.entries(peers)) zone[name] = { A: [p.host] };
    // TTL 1 s: the tests that change records wait for Postern's DNS cache to let them go.
    const domain = (d: string, mx: [number, string][]) => {
      zone[d] = { MX: mx.map(([preference, exchange]) => ({ preference, exchange })), ttl: 1 };
      zone[`_mta-sts.${d}`] = { TXT: ['v=STSv1; id=1;'], ttl: 1 };
      zone[`mta-sts.${d}`] = { A: [HTTPS.host] };
    };
    domain('enforce.test', [[10, 'mx0.enforce.test'], [20, 'mx1.enforce.test']]);
    domain('nonefit.test', [[10, 'mx1.nonefit.test']]);
    domain('badcert.test', [[10, 'mx1.badcert.test']]);
    domain('testing.test', [[10, 'mx1.testing.test']]);
    domain('none.test', [[10, 'mx1.none.test']]);
    domain('redirect.test', [[10, 'mx1.redirect.test']]);
    domain('cached.test', [[10, 'mx1.cached.test']]);
    domain('idchange.test', [[10, 'mx1.idchange.test']]);
    domain('tlsno.test', [[10, 'mx1.tlsno.test']]);
    domain('tlsnoreq.test', [[10, 'mx1.tlsnoreq.test']]);
    domain('rtsts.test', [[10, 'mx1.rtsts.test']]);
    t = await startTestGateway({
      zone: zone as never,
      smtpPort: SMTP_PORT,
      options: { httpsPort: HTTPS.port },
      setup: (s) => {
        s.editDefaults({ tls: 'preferred' });
        s.addAuthorities(ca.certPem);
        s.newEntry('tlsnoreq.test', { tls: 'required' });
      },
    });
  });

  after(async () => {
    await t?.close();
    await new Promise<void>((r) => server?.close(() => r()));
    await Promise.all(Object.values(peers).map((p) => p.close()));
  });

  /** Delivery keeps a connection open a moment for more mail: wait until it has closed. */
  const closed = (name: string) => waitFor(`${name}'s connections closed`, () => peers[name]!.sessions.every((x) => x.closedBy !== undefined), 10_000);
  let n = 0;
  const deliver = async (domain: string, headers = '') => {
    const to = `user${++n}@${domain}`;
    const r = await sendMail(t.gw.address!.port, 'sender@example.org', [to], `Subject: sts\r\n${headers}\r\nhello\r\n`);
    assert.equal(r.code, 250, r.text);
    return waitFor(`the fate of ${to}`, () => fateOf(t, to), 20_000);
  };

  test('enforce: an MX outside the policy is skipped; the listed one gets the mail over verified TLS', async () => {
    assert.deepEqual(await deliver('enforce.test'), { kind: 'delivered' });
    assert.equal(peers['mx0.enforce.test']!.sessions.length, 0, 'the MX outside the patterns is never connected to');
    assert.equal(peers['mx1.enforce.test']!.messages[0]?.tls, true);
    assert.match(log(), /MTA-STS policy for enforce\.test: fetched: mode enforce, mx mx1\.enforce\.test/);
    assert.match(log(), /TLS policy for enforce\.test host mx0\.enforce\.test: MTA-STS enforce: mx mx0\.enforce\.test not in policy \(mx1\.enforce\.test\)/);
    assert.match(log(), /for enforce\.test \(verified: MTA-STS enforce: certificate valid for mx1\.enforce\.test\)/);
  });

  test('explain and tlsverify show the policy in effect and what it decides per host', async () => {
    const common = ['--data-dir', t.dataDir, '--dns-server', t.dns.address, '--smtp-port', String(SMTP_PORT), '--https-port', String(HTTPS.port)];
    const explained = await runCliOk(['destconfig', 'explain', 'enforce.test', ...common]);
    assert.match(explained, /^MTA-STS policy of enforce\.test: mode enforce, mx mx1\.enforce\.test \((cached|fetched now)\)$/m);
    assert.match(explained, /TLS policy \(MTA-STS\): not used: MTA-STS enforce: mx mx0\.enforce\.test not in policy/);
    assert.match(explained, /TLS policy \(MTA-STS\): MTA-STS enforce: STARTTLS required, a trusted certificate valid for mx1\.enforce\.test; connections run as Required$/m);
    const verified = await runCliOk(['tlsverify', 'enforce.test', ...common]);
    assert.match(verified, /^MTA-STS policy: mode enforce, mx mx1\.enforce\.test \((cached|fetched now)\)$/m);
    assert.match(verified, /^TLS policy for mx0\.enforce\.test: .*not used: MTA-STS enforce: mx mx0\.enforce\.test not in policy/m);
    assert.match(verified, /^  MTA-STS: a trusted certificate valid for mx1\.enforce\.test$/m);
    assert.match(verified, /^Verdict: VERIFIED: enforce\.test via mx1\.enforce\.test/m);
  });

  test('enforce with no MX in the policy: deferred with 4.7.5, never bounced', async () => {
    const fate = await deliver('nonefit.test');
    assert.equal(fate.kind, 'deferred');
    assert.match(fate.kind === 'deferred' ? fate.reply : '', /^4\.7\.5 .*MTA-STS enforce: mx mx1\.nonefit\.test not in policy/);
    assert.equal(peers['mx1.nonefit.test']!.sessions.length, 0);
  });

  test('enforce: a certificate not valid for the MX host name is refused', async () => {
    const fate = await deliver('badcert.test');
    assert.equal(fate.kind, 'deferred');
    assert.match(fate.kind === 'deferred' ? fate.reply : '', /MTA-STS enforce: the certificate is not valid for mx1\.badcert\.test \(it names wrong\.example\)/);
    assert.equal(peers['mx1.badcert.test']!.messages.length, 0);
  });

  test('TLS-Required: No (RFC 8689): delivered despite an enforce mismatch, but never against the table', async () => {
    const held = await deliver('tlsno.test');
    assert.equal(held.kind, 'deferred', 'without the header the policy holds the message');
    assert.deepEqual(await deliver('tlsno.test', 'TLS-Required: No\r\n'), { kind: 'delivered' });
    assert.equal(peers['mx1.tlsno.test']!.messages.length, 1);
    assert.equal(peers['mx1.tlsno.test']!.messages[0]!.tls, false, 'Preferred, no STARTTLS offered: clear text');
    assert.match(log(), /Start MID \d+ .*, TLS-Required: No$/m);
    assert.match(log(), /TLS policy for tlsno\.test host \*: TLS-Required: No: the domain's MTA-STS and DANE policies are not applied/);
    // The table says Required for tlsnoreq.test: the header does not lower that.
    const fate = await deliver('tlsnoreq.test', 'tls-required:   no\r\n');
    assert.equal(fate.kind, 'deferred');
    assert.match(fate.kind === 'deferred' ? fate.reply : '', /^4\.7\.4 TLS required: mx1\.tlsnoreq\.test .*STARTTLS not offered/);
    assert.equal(peers['mx1.tlsnoreq.test']!.messages.length, 0);
    // Still queued: queue show says what the sender asked.
    const mid = (t.events.find((e) => e.event === 'message-accepted' && e.recipients.includes(`user${n}@tlsnoreq.test`)) as { mid: number }).mid;
    assert.match(await runCliOk(['queue', 'show', String(mid), '--data-dir', t.dataDir]), /^TLS: TLS-Required: No \(RFC 8689\): the recipient domain's MTA-STS and DANE policies are not applied/m);
  });

  test('REQUIRETLS: an MX named by the MTA-STS policy (testing counts as enforce) is found securely', async () => {
    const to = `user${++n}@rtsts.test`;
    const r = await sendMailRequireTls(t.gw.address!.port, 'sender@example.org', [to], 'Subject: rt\r\n\r\nhello\r\n');
    assert.equal(r.code, 250, r.text);
    assert.deepEqual(await waitFor(`the fate of ${to}`, () => fateOf(t, to), 20_000), { kind: 'delivered' });
    const peer = peers['mx1.rtsts.test']!;
    assert.equal(peer.messages[0]?.tls, true);
    assert.ok(peer.sessions.some((x) => x.commands.some((c) => /^MAIL FROM:<sender@example\.org>.* REQUIRETLS$/i.test(c))), 'MAIL FROM carried REQUIRETLS');
  });

  test('testing: delivered as the table says, the mismatch said in the log; none: the table', async () => {
    assert.deepEqual(await deliver('testing.test'), { kind: 'delivered' });
    assert.equal(peers['mx1.testing.test']!.messages[0]?.tls, false, 'Preferred, no STARTTLS offered: clear text');
    assert.match(log(), /MTA-STS testing: mx mx1\.testing\.test not in policy \(mx\.elsewhere\.test\); delivering as the table says/);
    assert.deepEqual(await deliver('none.test'), { kind: 'delivered' });
  });

  test('a redirect is not followed: no policy, the table', async () => {
    const before = requests.length;
    assert.deepEqual(await deliver('redirect.test'), { kind: 'delivered' });
    assert.deepEqual(requests.slice(before), ['mta-sts.redirect.test/.well-known/mta-sts.txt'], 'the redirect target was never asked');
    assert.match(log(), /MTA-STS policy for redirect\.test: sts-policy-fetch-error: .*redirect/i);
  });

  test('a fetch that fails keeps the cached policy in force', async () => {
    assert.deepEqual(await deliver('cached.test'), { kind: 'delivered' });
    await closed('mx1.cached.test');
    // The domain now names another MX and a new policy id, and its policy host fails.
    t.dns.zone['cached.test'] = { MX: [{ preference: 10, exchange: 'mx9.cached.test' }], ttl: 1 };
    t.dns.zone['_mta-sts.cached.test'] = { TXT: ['v=STSv1; id=2;'], ttl: 1 };
    sites['mta-sts.cached.test'] = (res) => res.writeHead(500).end();
    await new Promise((r) => setTimeout(r, 1100));
    const fate = await deliver('cached.test');
    assert.equal(fate.kind, 'deferred');
    assert.match(fate.kind === 'deferred' ? fate.reply : '', /MTA-STS enforce: mx mx9\.cached\.test not in policy \(mx1\.cached\.test\)/);
    assert.equal(peers['mx9.cached.test']!.sessions.length, 0);
    assert.match(log(), /MTA-STS policy for cached\.test: sts-policy-fetch-error: .*500.*; the cached policy \(mode enforce\) stays in force/);
  });

  test('a new policy id is fetched again before delivery', async () => {
    assert.deepEqual(await deliver('idchange.test'), { kind: 'delivered' });
    await closed('mx1.idchange.test');
    t.dns.zone['idchange.test'] = { MX: [{ preference: 10, exchange: 'mx2.idchange.test' }], ttl: 1 };
    t.dns.zone['_mta-sts.idchange.test'] = { TXT: ['v=STSv1; id=2;'], ttl: 1 };
    sites['mta-sts.idchange.test'] = serve(policy('enforce', ['mx2.idchange.test']));
    await new Promise((r) => setTimeout(r, 1100));
    assert.deepEqual(await deliver('idchange.test'), { kind: 'delivered' });
    assert.equal(peers['mx2.idchange.test']!.messages.length, 1);
    assert.equal(requests.filter((r) => r.startsWith('mta-sts.idchange.test')).length, 2);
  });

  test('each session is counted for TLS reporting under the MTA-STS policy', async () => {
    // Counts are written COUNT_FLUSH_MS after the session; a timer set now fires after that one.
    await new Promise((r) => setTimeout(r, COUNT_FLUSH_MS));
    const store = TlsRptStore.open(t.dataDir);
    try {
      const day = utcDay(Date.now());
      const rows = store.sessions(day, 'enforce.test');
      const skipped = rows.find((r) => r.receivingMx === 'mx0.enforce.test')!;
      assert.equal(skipped.policyType, 'sts');
      assert.equal(skipped.result, 'validation-failure');
      assert.deepEqual(skipped.policyStrings, ['version: STSv1', 'mode: enforce', 'mx: mx1.enforce.test', 'max_age: 86400']);
      assert.deepEqual(skipped.mxHosts, ['mx1.enforce.test']);
      assert.ok(rows.some((r) => r.receivingMx === 'mx1.enforce.test' && r.result === 'success' && r.receivingIp === '127.0.91.11'));
      assert.ok(store.sessions(day, 'badcert.test').some((r) => r.result === 'certificate-host-mismatch'));
      assert.ok(store.sessions(day, 'testing.test').every((r) => r.policyType === 'sts' && r.result === 'starttls-not-supported'));
      // The policy could not be fetched (a redirect): its sessions are reported as that failure.
      const redirected = store.sessions(day, 'redirect.test');
      assert.ok(redirected.length > 0);
      assert.ok(redirected.every((r) => r.policyType === 'sts' && r.result === 'sts-policy-fetch-error' && r.receivingMx === 'mx1.redirect.test'), JSON.stringify(redirected));
    } finally {
      store.close();
    }
  });
});
