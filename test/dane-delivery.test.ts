/**
 * DANE in delivery (RFC 7672), with real DNSSEC: Debian's unbound validating zones signed at the
 * start of the test (test/peers/dnssec.ts), and receivers on loopback whose certificates come
 * from a test CA Postern does NOT trust — so only TLSA records can authenticate them.
 * Secure zone with a matching 3 1 1 record, with a matching 2 0 1 record (the server sends its
 * CA), with a record that does not match (never delivered), with only unusable records
 * (encrypted, not authenticated; no STARTTLS → not delivered), with no TLSA (the table's
 * setting); a bogus zone and a bogus TLSA RRset (deferred, never clear); an insecure zone (its
 * TLSA records are not believed: the table's setting); `--dane required` and `--dane off`.
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ConfigStore } from '../src/config/store.js';
import { fateOf, sendMail, waitFor, type TestGateway, startTestGateway } from './harness.js';
import { TestCA } from './peers/ca.js';
import { runCliOk } from './process.js';
import { TlsRptStore, utcDay } from '../src/observe/tlsrpt.js';
import { dnssecAvailable, startDnssec, type DnssecPeer } from './peers/dnssec.js';
import { startSmtpPeer, type SmtpPeer, type StarttlsBehaviour } from './peers/smtp-peer.js';
import { formatEvent } from '../src/observe/events.js';
import { COUNT_FLUSH_MS } from '../src/observe/flush.js';

const inCI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';
// Addresses 127.0.90.x and ports 2632-2633 are this file's own.
const DNS = { host: '127.0.90.53', port: 2632 };
const SMTP_PORT = 2633;
const spkiSha256 = (pem: string) => createHash('sha256').update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
const certSha256 = (pem: string) => createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');

interface Case {
  zone: string;
  kind: 'secure' | 'bogus' | 'insecure';
  address: string;
  starttls: StarttlsBehaviour;
  /** TLSA record data for `_2633._tcp.mx1.<zone>`, given the receiver's certificate and the CA. */
  tlsa?: (leafPem: string, caPem: string) => string[];
  tamper?: string[];
  sendChain?: boolean;
}

const CASES: Record<string, Case> = {
  ee: { zone: 'ee.test', kind: 'secure', address: '127.0.90.11', starttls: 'ok', tlsa: (leaf) => [`3 1 1 ${spkiSha256(leaf)}`] },
  ta: { zone: 'ta.test', kind: 'secure', address: '127.0.90.12', starttls: 'ok', sendChain: true, tlsa: (_leaf, ca) => [`2 0 1 ${certSha256(ca)}`] },
  mismatch: { zone: 'mismatch.test', kind: 'secure', address: '127.0.90.13', starttls: 'ok', tlsa: () => [`3 1 1 ${'ab'.repeat(32)}`] },
  unusable: { zone: 'unusable.test', kind: 'secure', address: '127.0.90.14', starttls: 'ok', tlsa: (leaf) => [`1 1 1 ${spkiSha256(leaf)}`] },
  unusableNoTls: { zone: 'unusable-notls.test', kind: 'secure', address: '127.0.90.15', starttls: 'none', tlsa: (leaf) => [`1 1 1 ${spkiSha256(leaf)}`] },
  notlsa: { zone: 'notlsa.test', kind: 'secure', address: '127.0.90.16', starttls: 'none' },
  bogus: { zone: 'bogus.test', kind: 'bogus', address: '127.0.90.17', starttls: 'none', tlsa: (leaf) => [`3 1 1 ${spkiSha256(leaf)}`] },
  tampered: { zone: 'tampered.test', kind: 'secure', address: '127.0.90.18', starttls: 'none', tlsa: (leaf) => [`3 1 1 ${spkiSha256(leaf)}`], tamper: [`_${SMTP_PORT}._tcp.mx1 TLSA`] },
  insecure: { zone: 'insecure.test', kind: 'insecure', address: '127.0.90.19', starttls: 'none', tlsa: () => [`3 1 1 ${'cd'.repeat(32)}`] },
  required: { zone: 'required.test', kind: 'insecure', address: '127.0.90.20', starttls: 'ok' },
  off: { zone: 'off.test', kind: 'secure', address: '127.0.90.21', starttls: 'ok', tlsa: () => [`3 1 1 ${'ef'.repeat(32)}`] },
};

describe('DANE in delivery, with a validating resolver', { skip: !dnssecAvailable() && !inCI ? 'unbound or dnssec-signzone not installed' : false }, () => {
  let dns: DnssecPeer;
  let t: TestGateway;
  const peers: Record<string, SmtpPeer> = {};
  const log = () => t.events.map(formatEvent).join('\n');

  before(async () => {
    const ca = await TestCA.create('Untrusted DANE test CA');
    const zones = [];
    for (const [name, c] of Object.entries(CASES)) {
      const mx = `mx1.${c.zone}`;
      const cert = await ca.issue({ cn: mx, dnsNames: [mx] });
      peers[name] = await startSmtpPeer({ host: c.address, port: SMTP_PORT, hostname: mx, starttls: c.starttls, cert: { keyPem: cert.keyPem, certPem: c.sendChain ? cert.chainPem : cert.certPem } });
      zones.push({
        name: c.zone,
        kind: c.kind,
        records: ['@ MX 10 mx1', `mx1 A ${c.address}`, ...(c.tlsa ? c.tlsa(cert.certPem, ca.certPem).map((r) => `_${SMTP_PORT}._tcp.mx1 TLSA ${r}`) : [])],
        ...(c.tamper ? { tamper: c.tamper } : {}),
      });
    }
    dns = await startDnssec({ ...DNS, zones });
    t = await startTestGateway({
      zone: {},
      smtpPort: SMTP_PORT,
      options: { dnsServers: [dns.address] },
      setup: (s: ConfigStore) => {
        // The (Default) entry: Preferred, DANE opportunistic (the default).
        s.editDefaults({ tls: 'preferred' });
        s.newEntry('required.test', { dane: 'required' });
        s.newEntry('off.test', { dane: 'off' });
      },
    });
  });

  after(async () => {
    await t?.close();
    await dns?.close();
    await Promise.all(Object.values(peers).map((p) => p.close()));
  });

  const deliver = async (name: string) => {
    const to = `user@${CASES[name]!.zone}`;
    const r = await sendMail(t.gw.address!.port, 'sender@example.org', [to], 'Subject: dane\r\n\r\nhello\r\n', '127.0.0.1');
    assert.equal(r.code, 250, r.text);
    return waitFor(`the fate of ${to}`, () => fateOf(t, to), 20_000);
  };

  test('a matching DANE-EE record authenticates a certificate from an unknown CA', async () => {
    assert.deepEqual(await deliver('ee'), { kind: 'delivered' });
    assert.match(log(), /TLS success .* for ee\.test \(verified: DANE TLSA 3 1 1 [0-9a-f]{16}… verified\)/);
    assert.match(log(), /TLS policy for ee\.test host mx1\.ee\.test: DANE: 1 usable TLSA record for mx1\.ee\.test: STARTTLS required/);
  });

  test('tlsverify and explain show the TLSA records and the decision', async () => {
    const common = ['--data-dir', t.dataDir, '--dns-server', dns.address, '--smtp-port', String(SMTP_PORT)];
    const verified = await runCliOk(['tlsverify', 'ee.test', ...common]);
    assert.match(verified, /^TLS policy for mx1\.ee\.test: TLSA 1 usable, 0 unusable \(3 1 1 [0-9a-f]{16}…\); DANE: 1 usable TLSA record/m);
    assert.match(verified, /^  DANE: verified by TLSA 3 1 1 [0-9a-f]{16}…$/m);
    assert.match(verified, /^Verdict: VERIFIED: ee\.test via mx1\.ee\.test/m);
    const explained = await runCliOk(['destconfig', 'explain', 'tampered.test', ...common]);
    assert.match(explained, /TLSA records: cannot be known: /);
    assert.match(explained, /TLS policy \(DANE\): not used: DANE: the TLSA records of mx1\.tampered\.test cannot be known/);
  });

  test('a matching DANE-TA record: the chain the server sends leads to it', async () => {
    assert.deepEqual(await deliver('ta'), { kind: 'delivered' });
    assert.match(log(), /for ta\.test \(verified: DANE TLSA 2 0 1 [0-9a-f]{16}… verified\)/);
  });

  test('a TLSA record that does not match: never delivered', async () => {
    const fate = await deliver('mismatch');
    assert.equal(fate.kind, 'deferred');
    assert.match(fate.kind === 'deferred' ? fate.reply : '', /^4\.7\.5 .*DANE: no TLSA record matches the presented chain/);
    assert.equal(peers.mismatch!.messages.length, 0);
    assert.ok(!peers.mismatch!.sessions.some((s) => s.commands.some((c) => /^MAIL FROM/i.test(c))), 'no MAIL FROM was sent');
  });

  test('only unusable records: encrypted without authentication; no STARTTLS, no delivery', async () => {
    assert.deepEqual(await deliver('unusable'), { kind: 'delivered' });
    assert.match(log(), /TLS policy for unusable\.test host mx1\.unusable\.test: DANE: mx1\.unusable\.test has only unusable TLSA records: STARTTLS required/);
    assert.equal(peers.unusable!.messages[0]?.tls, true);
    const fate = await deliver('unusableNoTls');
    assert.equal(fate.kind, 'deferred');
    assert.match(fate.kind === 'deferred' ? fate.reply : '', /^4\.7\.4 .*STARTTLS not offered/);
    assert.equal(peers.unusableNoTls!.messages.length, 0);
  });

  test('securely no TLSA records: the table setting (Preferred delivers in clear without STARTTLS)', async () => {
    assert.deepEqual(await deliver('notlsa'), { kind: 'delivered' });
    assert.equal(peers.notlsa!.messages[0]?.tls, false);
  });

  test('a bogus zone, and a bogus TLSA RRset under a secure MX: deferred, never in clear', async () => {
    const bogus = await deliver('bogus');
    assert.equal(bogus.kind, 'deferred');
    assert.equal(peers.bogus!.sessions.length, 0, 'the bogus zone gives no MX to connect to');
    const tampered = await deliver('tampered');
    assert.equal(tampered.kind, 'deferred');
    assert.match(tampered.kind === 'deferred' ? tampered.reply : '', /^4\.7\.5 .*the TLSA records of mx1\.tampered\.test cannot be known/);
    assert.equal(peers.tampered!.sessions.length, 0, 'the host is not used at all');
  });

  test('an insecure zone: its TLSA records are not believed; the table setting', async () => {
    assert.deepEqual(await deliver('insecure'), { kind: 'delivered' });
    assert.equal(peers.insecure!.messages[0]?.tls, false);
  });

  test('--dane required: only hosts with usable records under DNSSEC; --dane off: TLSA never asked', async () => {
    const fate = await deliver('required');
    assert.equal(fate.kind, 'deferred');
    assert.match(fate.kind === 'deferred' ? fate.reply : '', /DANE required: mx1\.required\.test is not reached through DNSSEC-authenticated records/);
    assert.equal(peers.required!.sessions.length, 0);
    // off.test publishes a record that matches nothing: with DANE off it is ignored.
    assert.deepEqual(await deliver('off'), { kind: 'delivered' });
    assert.equal(peers.off!.messages[0]?.tls, true);
  });

  test('each session is counted for TLS reporting under the policy that governed it', async () => {
    // Counts are written COUNT_FLUSH_MS after the session; a timer set now fires after that one.
    await new Promise((r) => setTimeout(r, COUNT_FLUSH_MS));
    const store = TlsRptStore.open(t.dataDir);
    try {
      const day = utcDay(Date.now());
      const of = (domain: string) => store.sessions(day, domain).map((r) => `${r.policyType} ${r.result} ${r.receivingMx} ${r.receivingIp} [${r.policyStrings.join('; ')}]`);
      assert.match(of('ee.test').join('\n'), /^tlsa success mx1\.ee\.test 127\.0\.90\.11 \[3 1 1 [0-9a-f]{64}\]$/m);
      assert.match(of('ta.test').join('\n'), /^tlsa success mx1\.ta\.test 127\.0\.90\.12 \[2 0 1 [0-9a-f]{64}\]$/m);
      assert.match(of('mismatch.test').join('\n'), /^tlsa tlsa-invalid mx1\.mismatch\.test 127\.0\.90\.13 /m);
      assert.match(of('tampered.test').join('\n'), /^tlsa dnssec-invalid mx1\.tampered\.test 127\.0\.90\.18 \[\]$/m);
      assert.match(of('required.test').join('\n'), /^tlsa dane-required mx1\.required\.test /m);
      assert.match(of('unusable.test').join('\n'), /^tlsa success mx1\.unusable\.test /m);
      assert.deepEqual(of('notlsa.test'), ['no-policy-found starttls-not-supported mx1.notlsa.test 127.0.90.16 []']);
      const ee = store.sessions(day, 'ee.test').find((r) => r.result === 'success')!;
      assert.equal(ee.sendingIp, '127.0.0.1');
      assert.ok(ee.count >= 1);
    } finally {
      store.close();
    }
  });
});
