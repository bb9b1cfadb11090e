/**
 * Certificates (SPEC §2 last paragraph, §6, §10 `certconfig`): what `postern certconfig` stores
 * and prints, and that the running gateway uses it.
 *
 * Proves that
 * - `create` makes EC P-256 / RSA keys in `<data-dir>/keys/<name>.key` with mode 0600 in a 0700
 *   directory (whatever the umask), and certificates that parse and carry the names asked for;
 * - `import` takes a test-CA leaf + chain and its key, and refuses a key of another certificate,
 *   a chain out of order, an unparsable file and a bad name, changing nothing;
 * - no output but `export --with-key` contains a private key (`list`, `show`, `export`, JSON);
 * - `delete` is refused while the relay listener or the outbound client uses a certificate and
 *   allowed once it no longer does;
 * - the first `postern start` creates the demo certificate and the relay listener offers it for
 *   STARTTLS (fingerprint seen by a raw TLS client = `certconfig show demo`); after
 *   `use-listener` and a restart the listener offers the other certificate;
 * - `destconfig` warns about the demo certificate when TLS is enabled while only the demo is
 *   configured, and not once another certificate is the listener's;
 * - the outbound client certificate set with `use-client` is presented to a receiving server that
 *   asks for one (and none is presented before it is set).
 */
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, describe, test } from 'node:test';
import { CertificateStore, DEMO_COMMON_NAME } from '../src/config/certificates.js';
import { sendMail } from './harness.js';
import { TestCA } from './peers/ca.js';
import { startDnsServer, type DnsServer } from './peers/dns-server.js';
import { startSmtpPeer, type SmtpPeer } from './peers/smtp-peer.js';
import { logFile, runCli, runCliOk, startPostern, type PosternProcess } from './process.js';
import { within } from './deadline.js';

// Address block 127.0.9.x and port 2691 are this file's own (test files run in parallel).
const MX_ADDRESS = '127.0.9.2';
const MX_PORT = 2691;
const DOMAIN = 'client-cert.test';

const dirs: string[] = [];
function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'postern-cert-'));
  dirs.push(d);
  return join(d, 'data');
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const cli = (d: string, ...args: string[]): Promise<string> => runCliOk([...args, '--data-dir', d]);

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

/** `certconfig show NAME` → its "SHA-256:" line. */
async function shownFingerprint(d: string, name: string): Promise<string> {
  const out = await cli(d, 'certconfig', 'show', name);
  const m = /^SHA-256:\s+([0-9A-F:]+)$/m.exec(out);
  assert.ok(m, `no SHA-256 line in:\n${out}`);
  return m[1]!;
}

/** Connects to an SMTP listener, STARTTLS, and returns the certificate it presented. */
async function presentedCertificate(host: string, port: number): Promise<tls.PeerCertificate> {
  const sock = net.connect(port, host);
  let buf = '';
  const onData = (d: Buffer): void => {
    buf += d.toString('latin1');
  };
  sock.on('data', onData);
  const reply = async (): Promise<string> => {
    const until = Date.now() + within(5000);
    for (;;) {
      const m = /^(\d{3}) [^\r\n]*\r\n/m.exec(buf);
      if (m) {
        const text = buf.slice(0, m.index + m[0].length);
        buf = buf.slice(m.index + m[0].length);
        return text;
      }
      if (Date.now() > until) throw new Error(`no SMTP reply; have ${JSON.stringify(buf)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  try {
    assert.match(await reply(), /^220 /);
    sock.write('EHLO client.test\r\n');
    assert.match(await reply(), /STARTTLS/);
    sock.write('STARTTLS\r\n');
    assert.match(await reply(), /^220 /);
    sock.off('data', onData);
    const secure = tls.connect({ socket: sock, rejectUnauthorized: false, servername: 'postern.test' });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    const cert = secure.getPeerCertificate();
    secure.end();
    return cert;
  } finally {
    sock.destroy();
  }
}

describe('certconfig: create, import, export, delete', () => {
  test('create EC and RSA: key files 0600 in a 0700 directory, certificates with the names asked for', async () => {
    const d = dataDir();
    const ec = await cli(d, 'certconfig', 'create', 'mail-ec', '--cn', 'mail.example.com', '--dns', 'mail.example.com', '--dns', '*.example.com', '--days', '30');
    assert.match(ec, /^Created certificate mail-ec: CN=mail\.example\.com, ec-p256/m);
    await cli(d, 'certconfig', 'create', 'mail-rsa', '--cn', 'rsa.example.com', '--dns', 'rsa.example.com', '--key-type', 'rsa-2048');

    const keys = join(d, 'keys');
    assert.equal(mode(keys), 0o700);
    assert.deepEqual(readdirSync(keys).sort(), ['mail-ec.key', 'mail-rsa.key'], 'no temporary files left behind');
    for (const name of ['mail-ec', 'mail-rsa']) assert.equal(mode(join(keys, `${name}.key`)), 0o600, `${name}.key`);

    const ecCert = new X509Certificate(await cli(d, 'certconfig', 'export', 'mail-ec'));
    assert.equal(ecCert.subject, 'CN=mail.example.com');
    assert.equal(ecCert.subjectAltName, 'DNS:mail.example.com, DNS:*.example.com');
    assert.equal(ecCert.publicKey.asymmetricKeyType, 'ec');
    assert.equal(ecCert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.ok(ecCert.checkPrivateKey(createPrivateKey(readFileSync(join(keys, 'mail-ec.key'), 'utf8'))));
    const days = (Date.parse(ecCert.validTo) - Date.now()) / 86_400_000;
    assert.ok(days > 29 && days <= 30, `valid for ${days} days`);
    assert.ok(ecCert.checkHost('mail.example.com'));

    const rsaCert = new X509Certificate(await cli(d, 'certconfig', 'export', 'mail-rsa'));
    assert.equal(rsaCert.subject, 'CN=rsa.example.com');
    assert.equal(rsaCert.subjectAltName, 'DNS:rsa.example.com');
    assert.equal(rsaCert.publicKey.asymmetricKeyType, 'rsa');
    assert.equal(rsaCert.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
    assert.ok(rsaCert.checkPrivateKey(createPrivateKey(readFileSync(join(keys, 'mail-rsa.key'), 'utf8'))));

    const show = await cli(d, 'certconfig', 'show', 'mail-rsa');
    assert.match(show, /^Subject:\s+CN=rsa\.example\.com$/m);
    assert.match(show, /^SANs:\s+DNS:rsa\.example\.com$/m);
    assert.match(show, /^Key type:\s+rsa-2048$/m);
    assert.equal(await shownFingerprint(d, 'mail-rsa'), rsaCert.fingerprint256);
  });

  test('key files are 0600 whatever the umask (API, umask 000)', async () => {
    const d = dataDir();
    const old = process.umask(0o000);
    try {
      const s = CertificateStore.open(d);
      try {
        await s.createSelfSigned({ name: 'open-umask', commonName: 'u.example.com', keyType: 'ec-p256', days: 1 });
      } finally {
        s.close();
      }
    } finally {
      process.umask(old);
    }
    assert.equal(mode(join(d, 'keys')), 0o700);
    assert.equal(mode(join(d, 'keys', 'open-umask.key')), 0o600);
  });

  test('bad create input is refused, naming the field and the value', async () => {
    const d = dataDir();
    const cases: [string[], RegExp][] = [
      [['bad name!', '--cn', 'x'], /certificate name "bad name!"/],
      [['x'.repeat(65), '--cn', 'x'], /certificate name/],
      [['ok', '--cn', 'x', '--days', '0'], /days "?0"?/],
      [['ok', '--cn', 'x', '--days', 'soon'], /days "soon"/],
      [['ok', '--cn', 'x', '--dns', 'not a name'], /DNS name "not a name"/],
      [['demo', '--cn', 'x'], /certificate name "demo".*reserved/],
    ];
    for (const [args, re] of cases) {
      const r = await runCli(['certconfig', 'create', ...args, '--data-dir', d]);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, re, args.join(' '));
    }
    await cli(d, 'certconfig', 'create', 'ok', '--cn', 'ok.example.com');
    const again = await runCli(['certconfig', 'create', 'ok', '--cn', 'other.example.com', '--data-dir', d]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already exists/);
    assert.match(await cli(d, 'certconfig', 'show', 'ok'), /CN=ok\.example\.com/);
  });

  test('import a test-CA leaf with its chain; mismatched key, wrong order, garbage and bad names refused', async () => {
    const d = dataDir();
    const tmp = join(d, '..');
    const ca = await TestCA.create('Postern Import CA');
    const leaf = await ca.issue({ cn: 'relay.example.org', dnsNames: ['relay.example.org', 'smtp.example.org'] });
    const other = await ca.issue({ cn: 'other.example.org' });
    const file = (name: string, text: string): string => {
      const p = join(tmp, name);
      writeFileSync(p, text);
      return p;
    };
    const chain = file('chain.pem', leaf.chainPem);
    const key = file('leaf.key', leaf.keyPem);

    const refused = async (args: string[], re: RegExp): Promise<void> => {
      const r = await runCli(['certconfig', 'import', ...args, '--data-dir', d]);
      assert.equal(r.code, 2, `${args.join(' ')}\n${r.stdout}${r.stderr}`);
      assert.match(r.stderr, re);
    };
    await refused(['relay', '--cert', chain, '--key', file('other.key', other.keyPem)], /key file/);
    await refused(['relay', '--cert', file('reversed.pem', ca.certPem + leaf.certPem), '--key', key], /key file.*put the leaf first/);
    await refused(['relay', '--cert', file('misordered.pem', leaf.certPem + other.certPem), '--key', key], /certificate file "certificate #2/);
    await refused(['relay', '--cert', file('garbage.pem', 'hello\n'), '--key', key], /certificate file/);
    await refused(['relay', '--cert', chain, '--key', file('garbage.key', 'not a key\n')], /key file/);
    await refused(['bad/name', '--cert', chain, '--key', key], /certificate name "bad\/name"/);
    await refused(['relay', '--cert', join(tmp, 'missing.pem'), '--key', key], /certificate file ".*missing\.pem"/);
    assert.match(await cli(d, 'certconfig', 'list'), /No certificates/);
    assert.ok(!existsSync(join(d, 'keys')) || readdirSync(join(d, 'keys')).length === 0, 'no key file written by a refused import');

    const out = await cli(d, 'certconfig', 'import', 'relay', '--cert', chain, '--key', key);
    assert.match(out, /^Imported certificate relay: CN=relay\.example\.org, ec-p256/m);
    assert.equal(mode(join(d, 'keys', 'relay.key')), 0o600);
    const show = await cli(d, 'certconfig', 'show', 'relay');
    assert.match(show, /^Issuer:\s+CN=Postern Import CA$/m);
    assert.match(show, /^SANs:\s+DNS:relay\.example\.org, DNS:smtp\.example\.org$/m);
    assert.match(show, /^Chain:\s+2 certificates$/m);
    assert.equal(await shownFingerprint(d, 'relay'), new X509Certificate(leaf.certPem).fingerprint256);
    // The exported chain is the imported one, leaf first.
    const exported = await cli(d, 'certconfig', 'export', 'relay');
    const blocks = exported.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    assert.equal(blocks.length, 2);
    assert.equal(new X509Certificate(blocks[0]!).fingerprint256, new X509Certificate(leaf.certPem).fingerprint256);
    assert.equal(new X509Certificate(blocks[1]!).fingerprint256, new X509Certificate(ca.certPem).fingerprint256);
  });

  test('import an RSA key in PKCS#1 form', async () => {
    const d = dataDir();
    const tmp = join(d, '..');
    // A self-signed RSA certificate made by Postern itself in another data directory, exported
    // with its key, then the key converted to the traditional "RSA PRIVATE KEY" form.
    const src = dataDir();
    await cli(src, 'certconfig', 'create', 'r', '--cn', 'rsa1.example.net', '--key-type', 'rsa-2048');
    const pem = await cli(src, 'certconfig', 'export', 'r', '--with-key');
    const keyPkcs1 = createPrivateKey(pem).export({ type: 'pkcs1', format: 'pem' }).toString();
    assert.match(keyPkcs1, /BEGIN RSA PRIVATE KEY/);
    writeFileSync(join(tmp, 'r.pem'), pem.replace(/-----BEGIN PRIVATE KEY-----[\s\S]+$/, ''));
    writeFileSync(join(tmp, 'r.key'), keyPkcs1);
    assert.match(await cli(d, 'certconfig', 'import', 'r1', '--cert', join(tmp, 'r.pem'), '--key', join(tmp, 'r.key')), /rsa-2048/);
    // A random RSA key of the same size is not its key.
    const wrong = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    writeFileSync(join(tmp, 'wrong.key'), wrong);
    const r = await runCli(['certconfig', 'import', 'r2', '--cert', join(tmp, 'r.pem'), '--key', join(tmp, 'wrong.key'), '--data-dir', d]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /key file "rsa-2048 key".*CN=rsa1\.example\.net/);
  });

  test('no output but export --with-key contains a private key', async () => {
    const d = dataDir();
    await cli(d, 'certconfig', 'create', 'a', '--cn', 'a.example.com', '--dns', 'a.example.com');
    await cli(d, 'certconfig', 'create', 'b', '--cn', 'b.example.com', '--key-type', 'rsa-2048');
    const outputs = [
      await cli(d, 'certconfig', 'list'),
      await cli(d, 'certconfig', 'list', '--json'),
      await cli(d, 'certconfig', 'show', 'a'),
      await cli(d, 'certconfig', 'show', 'b', '--json'),
      await cli(d, 'certconfig', 'export', 'a'),
      await cli(d, 'certconfig', 'export', 'b'),
    ];
    for (const o of outputs) assert.doesNotMatch(o, /PRIVATE KEY/);
    assert.match(outputs[0]!, /^a\s+a\.example\.com\s/m);
    const listed = JSON.parse(outputs[1]!) as { certificates: { name: string; fingerprint: string }[] };
    assert.deepEqual(listed.certificates.map((c) => c.name), ['a', 'b']);

    const withKey = await cli(d, 'certconfig', 'export', 'a', '--with-key');
    assert.match(withKey, /-----BEGIN PRIVATE KEY-----/);
    assert.ok(new X509Certificate(withKey).checkPrivateKey(createPrivateKey(withKey)));

    const out = join(d, '..', 'a-with-key.pem');
    await cli(d, 'certconfig', 'export', 'a', '--with-key', '--out', out);
    assert.equal(mode(out), 0o600);
    assert.match(readFileSync(out, 'utf8'), /PRIVATE KEY/);
    const certOnly = join(d, '..', 'a.pem');
    await cli(d, 'certconfig', 'export', 'a', '--out', certOnly);
    assert.doesNotMatch(readFileSync(certOnly, 'utf8'), /PRIVATE KEY/);
  });

  test('delete is refused while the listener or the outbound client uses the certificate', async () => {
    const d = dataDir();
    await cli(d, 'certconfig', 'create', 'one', '--cn', 'one.example.com');
    await cli(d, 'certconfig', 'create', 'two', '--cn', 'two.example.com');
    assert.match(await cli(d, 'certconfig', 'use-listener', 'one'), /offers certificate one/);

    let r = await runCli(['certconfig', 'delete', 'one', '--data-dir', d]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /used by the relay listener/);
    assert.equal(mode(join(d, 'keys', 'one.key')), 0o600, 'key still there');

    await cli(d, 'certconfig', 'use-client', 'two');
    r = await runCli(['certconfig', 'delete', 'two', '--data-dir', d]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /used as the outbound client certificate/);
    assert.match(await cli(d, 'certconfig', 'list'), /^two\s.*outbound client$/m);

    await cli(d, 'certconfig', 'use-listener', 'two');
    assert.match(await cli(d, 'certconfig', 'delete', 'one'), /Deleted certificate one/);
    assert.deepEqual(readdirSync(join(d, 'keys')), ['two.key']);
    r = await runCli(['certconfig', 'show', 'one', '--data-dir', d]);
    assert.notEqual(r.code, 0);

    r = await runCli(['certconfig', 'delete', 'two', '--data-dir', d]);
    assert.match(r.stderr, /used by the relay listener and used as the outbound client certificate/);
    await cli(d, 'certconfig', 'use-client', 'none');
    r = await runCli(['certconfig', 'use-listener', 'nosuch', '--data-dir', d]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /no certificate named "nosuch"/);
  });
});

describe('the demo certificate and the relay listener', { timeout: within(60_000) }, () => {
  const running: PosternProcess[] = [];
  after(async () => {
    for (const p of running) await p.stop().catch(() => undefined);
  });
  const start = async (d: string): Promise<PosternProcess> => {
    const p = await startPostern({ dataDir: d, hostname: 'postern.test' });
    running.push(p);
    return p;
  };

  test('the first start creates the demo certificate and STARTTLS offers it; use-listener takes effect after a restart', async () => {
    const d = dataDir();
    // A command that only reads never creates the data directory: a mistyped path is an error.
    const missing = await runCli(['certconfig', 'list', '--data-dir', d]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /data directory .* does not exist/);
    assert.ok(!existsSync(d), 'certconfig list created nothing');
    const first = await start(d);
    const demoFp = await shownFingerprint(d, 'demo');
    const show = await cli(d, 'certconfig', 'show', 'demo');
    assert.match(show, new RegExp(`^Subject:\\s+CN=${DEMO_COMMON_NAME}, O=.*NOT SECURE`, 'm'));
    assert.match(show, /^Used by:\s+relay listener, administration page$/m);
    assert.equal(mode(join(d, 'keys', 'demo.key')), 0o600);

    const offered = await presentedCertificate(first.host, first.port);
    assert.equal(offered.fingerprint256, demoFp);
    assert.equal(offered.subject.CN, DEMO_COMMON_NAME);

    // The demo certificate is made once: a restart keeps it.
    await first.stop();
    const second = await start(d);
    assert.equal(await shownFingerprint(d, 'demo'), demoFp);
    assert.equal((await presentedCertificate(second.host, second.port)).fingerprint256, demoFp);

    await cli(d, 'certconfig', 'create', 'relay', '--cn', 'relay.example.com', '--dns', 'relay.example.com', '--key-type', 'rsa-2048');
    await cli(d, 'certconfig', 'use-listener', 'relay');
    const relayFp = await shownFingerprint(d, 'relay');
    assert.notEqual(relayFp, demoFp);
    await second.stop();
    const third = await start(d);
    const now = await presentedCertificate(third.host, third.port);
    assert.equal(now.fingerprint256, relayFp);
    assert.equal(now.subject.CN, 'relay.example.com');
    // The demo is not made again and can be deleted once the page uses another certificate too.
    assert.match(await cli(d, 'certconfig', 'delete', 'demo').catch((e: Error) => e.message), /used by the administration page.*certconfig use-admin OTHER/s);
    await cli(d, 'certconfig', 'use-admin', 'relay');
    assert.match(await cli(d, 'certconfig', 'delete', 'demo'), /Deleted certificate demo/);
    await third.stop();
    const fourth = await start(d);
    assert.equal((await presentedCertificate(fourth.host, fourth.port)).fingerprint256, relayFp);
    assert.doesNotMatch(await cli(d, 'certconfig', 'list'), /^demo/m);
    await fourth.stop();
  });
});

describe('the demo-certificate warning (SPEC §2)', () => {
  const WARNING =
    "You have chosen to enable TLS. Please use the 'certconfig' command to ensure that there is a valid certificate configured.\n" +
    'Enabling TLS uses the demo certificate, which is not secure.\n';

  test('shown while only the demo is configured, not once another certificate is the listener\'s', async () => {
    const d = dataDir();
    const destconfig = (...args: string[]) => runCli(['destconfig', ...args, '--data-dir', d]);

    let r = await destconfig('new', 'a.example.com', '--tls', 'preferred');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stderr.includes(WARNING), `no warning in:\n${r.stderr}`);
    r = await destconfig('new', 'b.example.com', '--tls', 'no');
    assert.equal(r.stderr, '', 'no warning when TLS is not enabled');

    // Another certificate exists but the listener still offers the demo: still a warning.
    await cli(d, 'certconfig', 'create', 'real', '--cn', 'mail.example.com');
    r = await destconfig('edit', 'b.example.com', '--tls', 'required');
    assert.ok(r.stderr.includes(WARNING), `no warning in:\n${r.stderr}`);

    await cli(d, 'certconfig', 'use-listener', 'real');
    r = await destconfig('edit', 'b.example.com', '--tls', 'required-verify');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /demo certificate|certconfig/);
    r = await destconfig('default', '--tls', 'preferred');
    assert.doesNotMatch(r.stderr, /demo certificate|certconfig/);
  });
});

describe('the outbound client certificate', { timeout: within(60_000) }, () => {
  let dns: DnsServer | undefined;
  let peer: SmtpPeer | undefined;
  let gw: PosternProcess | undefined;
  after(async () => {
    await gw?.stop().catch(() => undefined);
    await Promise.allSettled([peer?.close(), dns?.close()]);
  });

  test('use-client makes delivery present the certificate to a server that asks for one', async () => {
    const d = dataDir();
    const ca = await TestCA.create('Client Cert Test CA');
    const mxCert = await ca.issue({ cn: `mx.${DOMAIN}`, dnsNames: [`mx.${DOMAIN}`] });
    dns = await startDnsServer({
      zone: { [DOMAIN]: { MX: [{ preference: 10, exchange: `mx.${DOMAIN}` }] }, [`mx.${DOMAIN}`]: { A: [MX_ADDRESS] } },
    });
    peer = await startSmtpPeer({
      host: MX_ADDRESS,
      port: MX_PORT,
      hostname: `mx.${DOMAIN}`,
      starttls: 'ok',
      cert: { keyPem: mxCert.keyPem, certPem: mxCert.chainPem },
      requestClientCert: true,
    });
    await cli(d, 'destconfig', 'new', DOMAIN, '--tls', 'required');
    await cli(d, 'certconfig', 'create', 'outbound', '--cn', 'postern.test', '--dns', 'postern.test', '--key-type', 'rsa-2048');
    const clientFp = await shownFingerprint(d, 'outbound');

    gw = await startPostern({
      dataDir: d,
      dnsServer: dns.address,
      smtpPort: MX_PORT,
      hostname: 'postern.test',
      config: { timeouts: { connect: 3, greeting: 5, ehlo: 5, starttls: 5, tlsHandshake: 5, mail: 5, rcpt: 5, dataInit: 5, dataBlock: 5, dataTerm: 5, quit: 2 } },
    });

    // Before use-client: TLS, but no client certificate.
    assert.equal((await sendMail(gw.port, 'a@postern.test', [`one@${DOMAIN}`])).code, 250);
    await peer.waitForMessages(1, 15_000);
    await peer.waitForSessions(1, 15_000);
    assert.equal(peer.sessions[0]!.tls, true);
    assert.equal(peer.sessions[0]!.clientCertFingerprint, undefined);

    const reloads = (): number => (readFileSync(logFile(d, 'mail.log'), 'utf8').match(/Configuration reloaded/g) ?? []).length;
    const before = reloads();
    assert.match(await cli(d, 'certconfig', 'use-client', 'outbound'), /offer client certificate outbound/);
    const until = Date.now() + within(10_000);
    while (reloads() === before) {
      assert.ok(Date.now() < until, 'the gateway did not reload the configuration');
      await new Promise((r) => setTimeout(r, 50));
    }

    assert.equal((await sendMail(gw.port, 'a@postern.test', [`two@${DOMAIN}`])).code, 250);
    await peer.waitForMessages(2, 15_000);
    const session = peer.sessions.find((s) => s.id === peer!.messages[1]!.sessionId)!;
    assert.equal(session.tls, true);
    assert.equal(session.clientCertFingerprint, clientFp, `mail log:\n${readFileSync(logFile(d, 'mail.log'), 'utf8')}\n${gw.output()}`);

    // And `use-client none` stops it again.
    const before2 = reloads();
    await cli(d, 'certconfig', 'use-client', 'none');
    while (reloads() === before2) {
      assert.ok(Date.now() < until + 10_000, 'the gateway did not reload the configuration');
      await new Promise((r) => setTimeout(r, 50));
    }
    await peer.waitForSessions(2, 15_000);
    assert.equal((await sendMail(gw.port, 'a@postern.test', [`three@${DOMAIN}`])).code, 250);
    await peer.waitForMessages(3, 15_000);
    const third = peer.sessions.find((s) => s.id === peer!.messages[2]!.sessionId)!;
    assert.equal(third.tls, true);
    assert.equal(third.clientCertFingerprint, undefined);
  });
});
