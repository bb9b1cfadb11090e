/**
 * `postern tlsverify` against real servers on loopback: good, wrong-name and self-signed
 * certificates, STARTTLS not offered; both identity algorithms; exit status 0 only when verified,
 * and the steps printed (address, STARTTLS, protocol and cipher, chain, each identity compared).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestCA, selfSigned } from './peers/ca.js';
import { startDnsServer, type DnsServer } from './peers/dns-server.js';
import { startSmtpPeer, type SmtpPeer } from './peers/smtp-peer.js';
import { tempDir } from './harness.js';
import { runCli } from './process.js';

const PORT = 2603;
const A = (n: number) => `127.0.21.${n}`;

describe('postern tlsverify', () => {
  let dns: DnsServer;
  const peers: SmtpPeer[] = [];
  const dataDir = tempDir();

  before(async () => {
    const ca = await TestCA.create();
    dns = await startDnsServer({
      zone: {
        'good.test': { MX: [{ preference: 10, exchange: 'mx.good.test' }] },
        'mx.good.test': { A: [A(1)] },
        'wrong.test': { MX: [{ preference: 10, exchange: 'mx.wrong.test' }] },
        'mx.wrong.test': { A: [A(2)] },
        'self.test': { MX: [{ preference: 10, exchange: 'mx.self.test' }] },
        'mx.self.test': { A: [A(3)] },
        'plain.test': { MX: [{ preference: 10, exchange: 'mx.plain.test' }] },
        'mx.plain.test': { A: [A(4)] },
        'cn.test': { MX: [{ preference: 10, exchange: 'mx.cn.test' }] },
        'mx.cn.test': { A: [A(5)] },
      },
    });
    const good = await ca.issue({ cn: 'mx.good.test', dnsNames: ['mx.good.test'] });
    const wrong = await ca.issue({ cn: 'other.invalid', dnsNames: ['other.invalid'] });
    const self = await selfSigned({ cn: 'mx.self.test', dnsNames: ['mx.self.test', 'self.test'] });
    const cn = await ca.issue({ cn: 'mx.cn.test', dnsNames: ['unrelated.invalid'] });
    const pem = (c: { keyPem: string; chainPem: string }) => ({ keyPem: c.keyPem, certPem: c.chainPem });
    peers.push(await startSmtpPeer({ host: A(1), port: PORT, hostname: 'mx.good.test', starttls: 'ok', cert: pem(good) }));
    peers.push(await startSmtpPeer({ host: A(2), port: PORT, hostname: 'mx.wrong.test', starttls: 'ok', cert: pem(wrong) }));
    peers.push(await startSmtpPeer({ host: A(3), port: PORT, hostname: 'mx.self.test', starttls: 'ok', cert: pem(self) }));
    peers.push(await startSmtpPeer({ host: A(4), port: PORT, hostname: 'mx.plain.test', starttls: 'none' }));
    peers.push(await startSmtpPeer({ host: A(5), port: PORT, hostname: 'mx.cn.test', starttls: 'ok', cert: pem(cn) }));
    const caFile = join(dataDir, 'ca.pem');
    writeFileSync(caFile, ca.certPem);
    assert.equal((await runCli(['certconfig', 'authority', 'add', caFile, '--data-dir', dataDir])).code, 0);
    assert.equal((await runCli(['certconfig', 'authority', 'system', 'off', '--data-dir', dataDir])).code, 0);
  });

  after(async () => {
    await Promise.all(peers.map((p) => p.close()));
    await dns?.close();
  });

  const verify = (...args: string[]) =>
    runCli(['tlsverify', ...args, '--data-dir', dataDir, '--dns-server', dns.address, '--smtp-port', String(PORT), '--timeout', '5']);

  it('verifies a good certificate and prints every step', async () => {
    const r = await verify('good.test', '--hosted');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /Mail exchangers: mx\.good\.test:2603 \(MX 10\)/);
    assert.match(r.stdout, /Connected to mx\.good\.test \[127\.0\.21\.1\] port 2603/);
    assert.match(r.stdout, /STARTTLS: offered/);
    assert.match(r.stdout, /TLS: protocol TLSv1\.3, cipher TLS_/);
    assert.match(r.stdout, /Chain: trusted/);
    assert.match(r.stdout, /good\.test \(recipient domain\) vs DNS:mx\.good\.test: no-match/);
    assert.match(r.stdout, /mx\.good\.test \(MX host\) vs DNS:mx\.good\.test: exact/);
    assert.match(r.stdout, /Verdict: VERIFIED/);
  });

  it('fails a wrong-name certificate, naming the names compared', async () => {
    const r = await verify('wrong.test');
    assert.equal(r.code, 1);
    assert.match(r.stdout, /Chain: trusted/);
    assert.match(r.stdout, /Identity: failed: name mismatch.*other\.invalid/);
    assert.match(r.stdout, /Verdict: NOT VERIFIED: 4\.7\.5/);
  });

  it('fails a self-signed certificate at the chain', async () => {
    const r = await verify('self.test');
    assert.equal(r.code, 1);
    assert.match(r.stdout, /Chain: NOT trusted: untrusted chain: self-signed/);
    assert.match(r.stdout, /Verdict: NOT VERIFIED/);
  });

  it('fails when STARTTLS is not offered', async () => {
    const r = await verify('plain.test');
    assert.equal(r.code, 1);
    assert.match(r.stdout, /STARTTLS: not offered/);
    assert.match(r.stdout, /Verdict: NOT VERIFIED: 4\.7\.4/);
  });

  it('the two algorithms differ on a CN that names the MX host beside unrelated SANs', async () => {
    assert.equal((await verify('cn.test')).code, 0, 'Verify accepts the CN');
    const hosted = await verify('cn.test', '--hosted');
    assert.equal(hosted.code, 1, 'Hosted ignores the CN when dNSNames exist');
    assert.match(hosted.stdout, /CN:mx\.cn\.test not considered/);
  });

  it('connects to an explicit HOST:PORT, which is then the route host', async () => {
    const r = await verify('example.invalid', `mx.good.test:${PORT}`, '--hosted');
    assert.equal(r.code, 0, r.stdout);
    assert.match(r.stdout, /mx\.good\.test \(SMTP route host\) vs DNS:mx\.good\.test: exact/);
  });

  it('rejects a bad domain with a clear message', async () => {
    const r = await verify('bad..domain');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /invalid domain "bad\.\.domain"/);
  });
});
