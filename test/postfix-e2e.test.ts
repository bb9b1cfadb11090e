/**
 * End to end, as a new user would run it: the real `postern start` process, configured only
 * with the CLI, delivers through DNS (MX) to real Postfix instances over STARTTLS.
 * Proves that
 * - under Required - Verify Hosted Domains, with the test CA added by `certconfig authority add`,
 *   a message reaches a Postfix whose certificate names the MX host, encrypted (Postfix's own
 *   Received header says TLSv1.3 / ESMTPS), and the mail log records `TLS success` and
 *   `Message done` for the domain;
 * - under Required - Verify, a Postfix whose certificate names another host gets a TLS session
 *   but never the message: the recipient stays queued (`queue list --json`) with a 4.7.x reason.
 */
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sendMail } from './harness.js';
import { TestCA } from './peers/ca.js';
import { startDnsServer, type DnsServer } from './peers/dns-server.js';
import { postfixAvailable, startPostfix, type DeliveredMessage, type PostfixInstance } from './peers/postfix.js';
import { logFile, runCli, runCliOk, startPostern, type PosternProcess } from './process.js';
import { within } from './deadline.js';

const inCI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';

// Address block 127.0.3.x and ports 26xx are this file's own (other test files run in parallel).
const MX_PORT = 2625;
const GOOD_MX = { name: 'mx1.good.test', address: '127.0.3.1' };
const BAD_MX = { name: 'mx1.badname.test', address: '127.0.3.2' };
const LISTEN = '127.0.3.10:2626';

interface QueueRow {
  mid: number;
  rid: number;
  to: string;
  domain: string;
  state: string;
  attempts: number;
  lastReply: string | null;
}

function message(to: string, token: string): string {
  return [
    'From: sender@client.test',
    `To: ${to}`,
    `Subject: e2e ${token}`,
    `Message-ID: <${token}@client.test>`,
    `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
    '',
    `token ${token}`,
    '',
  ].join('\r\n');
}

/** The Received header (unfolded) that Postfix `host` added. */
function receivedBy(raw: string, host: string): string {
  const headers = raw.split(/\r?\n\r?\n/)[0] ?? '';
  const unfolded = headers.replace(/\r?\n[ \t]+/g, ' ');
  const rec = unfolded.split(/\r?\n/).find((l) => /^Received:/i.test(l) && l.includes(`by ${host} (Postfix)`));
  assert.ok(rec, `no Received header by ${host} in:\n${headers}`);
  return rec;
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return '';
  }
}

/** Polls `check` (async) until it returns a value; fails with `what` and `detail()` after the timeout. */
async function waitForAsync<T>(what: string, check: () => Promise<T | undefined>, detail: () => Promise<string>, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + within(timeoutMs);
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out after ${within(timeoutMs)} ms waiting for ${what}\n${await detail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

if (!postfixAvailable()) {
  if (inCI) {
    test('Postfix is installed (required in CI)', () => {
      assert.fail('/usr/sbin/postfix is missing: .ci/run must install the postfix package');
    });
  } else {
    test('Postern to Postfix end to end', { skip: 'Postfix not installed (/usr/sbin/postfix missing); apt-get install postfix' }, () => {});
  }
} else {
  describe('Postern to Postfix end to end (real processes, DNS, STARTTLS)', { timeout: within(120_000) }, () => {
    let tmp = '';
    let dataDir = '';
    let dns: DnsServer | undefined;
    let good: PostfixInstance | undefined;
    let bad: PostfixInstance | undefined;
    let postern: PosternProcess | undefined;

    const diagnostics = async (): Promise<string> =>
      [
        `--- postern output ---\n${postern?.output() ?? ''}`,
        `--- postern mail.log ---\n${await readText(logFile(dataDir, 'mail.log'))}`,
        `--- postfix ${GOOD_MX.name} maillog ---\n${(await good?.log()) ?? ''}`,
        `--- postfix ${BAD_MX.name} maillog ---\n${(await bad?.log()) ?? ''}`,
      ].join('\n');

    const queued = async (): Promise<QueueRow[]> => JSON.parse(await runCliOk(['queue', 'list', '--json', '--data-dir', dataDir])) as QueueRow[];

    before(async () => {
      tmp = await mkdtemp(path.join(os.tmpdir(), 'postern-e2e-'));
      // Postfix's processes must be able to reach the key and chain files.
      await chmod(tmp, 0o755);
      dataDir = path.join(tmp, 'data');

      const ca = await TestCA.create('Postern E2E Test CA');
      const goodCert = await ca.issue({ cn: GOOD_MX.name, dnsNames: [GOOD_MX.name] });
      const wrongCert = await ca.issue({ cn: 'other.invalid', dnsNames: ['other.invalid'] });
      const caFile = path.join(tmp, 'ca.pem');
      await writeFile(caFile, ca.certPem);
      const files = {
        goodKey: path.join(tmp, 'good.key'),
        goodChain: path.join(tmp, 'good.chain.pem'),
        wrongKey: path.join(tmp, 'wrong.key'),
        wrongChain: path.join(tmp, 'wrong.chain.pem'),
      };
      await writeFile(files.goodKey, goodCert.keyPem, { mode: 0o644 });
      await writeFile(files.goodChain, goodCert.chainPem, { mode: 0o644 });
      await writeFile(files.wrongKey, wrongCert.keyPem, { mode: 0o644 });
      await writeFile(files.wrongChain, wrongCert.chainPem, { mode: 0o644 });

      const started = await Promise.allSettled([
        startPostfix({ address: GOOD_MX.address, port: MX_PORT, hostname: GOOD_MX.name, tls: 'may', keyFile: files.goodKey, chainFile: files.goodChain, delivery: 'maildir' }),
        startPostfix({ address: BAD_MX.address, port: MX_PORT, hostname: BAD_MX.name, tls: 'may', keyFile: files.wrongKey, chainFile: files.wrongChain, delivery: 'maildir' }),
      ]);
      if (started[0].status === 'fulfilled') good = started[0].value;
      if (started[1].status === 'fulfilled') bad = started[1].value;
      for (const s of started) if (s.status === 'rejected') throw s.reason;

      dns = await startDnsServer({
        zone: {
          'good.test': { MX: [{ preference: 10, exchange: GOOD_MX.name }] },
          [GOOD_MX.name]: { A: [GOOD_MX.address] },
          'badname.test': { MX: [{ preference: 10, exchange: BAD_MX.name }] },
          [BAD_MX.name]: { A: [BAD_MX.address] },
        },
      });

      // Configuration exactly as an administrator would do it, before the first start.
      await runCliOk(['certconfig', 'authority', 'add', caFile, '--data-dir', dataDir]);
      await runCliOk(['certconfig', 'authority', 'system', 'off', '--data-dir', dataDir]);
      await runCliOk(['destconfig', 'new', 'good.test', '--tls', 'required-verify-hosted', '--data-dir', dataDir]);
      await runCliOk(['destconfig', 'new', 'badname.test', '--tls', 'required-verify', '--data-dir', dataDir]);

      postern = await startPostern({
        dataDir,
        listen: LISTEN,
        dnsServer: dns.address,
        smtpPort: MX_PORT,
        hostname: 'postern.test',
        config: { timeouts: { connect: 3, greeting: 10, ehlo: 10, starttls: 10, tlsHandshake: 10, mail: 10, rcpt: 10, dataInit: 10, dataBlock: 10, dataTerm: 10, quit: 3 } },
      });
    });

    after(async () => {
      const status = await postern?.stop();
      await Promise.allSettled([good?.stop(), bad?.stop(), dns?.close()]);
      if (tmp) await rm(tmp, { recursive: true, force: true });
      if (status) assert.deepEqual(status, { code: 0, signal: null }, `postern did not stop cleanly on SIGTERM\n${postern?.output() ?? ''}`);
    });

    test('Required - Verify Hosted Domains: delivered to Postfix over verified TLS', async () => {
      assert.ok(postern && good);
      const token = `e2e-good-${Date.now()}`;
      const r = await sendMail(postern.port, 'sender@client.test', ['alice@good.test'], message('alice@good.test', token), postern.host);
      assert.equal(r.code, 250, `Postern refused the message: ${r.code} ${r.text}`);

      let delivered: DeliveredMessage[];
      try {
        delivered = await good.waitForDelivered(1, 30_000);
      } catch (e) {
        throw new Error(`${(e as Error).message}\n${await diagnostics()}`);
      }
      const got = delivered.find((m) => m.raw.includes(`<${token}@client.test>`));
      assert.ok(got, `the delivered message is not ours:\n${delivered.map((m) => m.raw).join('\n----\n')}`);
      assert.match(got.raw, new RegExp(`^token ${token}$`, 'm'));
      const rec = receivedBy(got.raw, GOOD_MX.name);
      assert.match(rec, /\(using TLSv1\.3 with cipher /, `not received over TLS 1.3: ${rec}`);
      assert.match(rec, / with ESMTPS id /, `not received with ESMTPS: ${rec}`);
      // Postern's own Received header is there too, below Postfix's.
      assert.match(got.raw, /by postern\.test \(Postern\) with ESMTP/);

      const log = await waitForAsync(
        'TLS success and Message done in the mail log',
        async () => {
          const text = await readText(logFile(dataDir, 'mail.log'));
          return /TLS success protocol TLSv1\.3 cipher \S+ for good\.test \(verified\)/.test(text) && /Message done DCID \d+ MID \d+ to RID \[0\]/.test(text)
            ? text
            : undefined;
        },
        diagnostics,
        10_000,
      );
      assert.doesNotMatch(log, /TLS failed: .* for good\.test/);
      const events = (await readText(logFile(dataDir, 'mail.jsonl')))
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as { event: string; domain?: string; verified?: string });
      assert.ok(
        events.some((e) => e.event === 'tls-success' && e.domain === 'good.test' && e.verified === 'yes'),
        'no tls-success event with verified "yes" for good.test in mail.jsonl',
      );
      assert.deepEqual(
        (await queued()).filter((q) => q.domain === 'good.test'),
        [],
        'good.test recipient still queued after delivery',
      );
    });

    test('Required - Verify, wrong-name certificate: not delivered, queued with 4.7.x', async () => {
      assert.ok(postern && bad);
      const token = `e2e-bad-${Date.now()}`;
      const r = await sendMail(postern.port, 'sender@client.test', ['bob@badname.test'], message('bob@badname.test', token), postern.host);
      assert.equal(r.code, 250, `Postern refused the message: ${r.code} ${r.text}`);

      const row = await waitForAsync(
        'bob@badname.test queued with a reason',
        async () => (await queued()).find((q) => q.to === 'bob@badname.test' && q.lastReply !== null),
        diagnostics,
      );
      assert.equal(row.state, 'deferred', 'a tried, waiting recipient is listed as deferred');
      assert.equal(row.attempts, 1);
      assert.match(row.lastReply ?? '', /^4\.7\.\d+ /, `lastReply is not a 4.7.x deferral: ${row.lastReply}`);
      assert.match(row.lastReply ?? '', /certificate not verified/, `lastReply does not give the TLS reason: ${row.lastReply}`);

      // Postern did reach this Postfix and completed a handshake (from 127.0.0.1; the helper's
      // readiness probe comes from the instance's own address) and then refused to send.
      const pfLog = await bad.log();
      assert.match(pfLog, /TLS connection established from unknown\[127\.0\.0\.1\]/, `no TLS session from Postern in Postfix's log:\n${pfLog}`);
      assert.deepEqual(await bad.readDelivered(), [], 'the message reached the Postfix with the wrong-name certificate');
      assert.doesNotMatch(pfLog, /postfix\/virtual\[/, 'Postfix delivered something');

      const log = await readText(logFile(dataDir, 'mail.log'));
      assert.match(log, /TLS certificate verification failed for badname\.test: /);
      assert.match(log, /TLS failed: certificate not verified: .* for badname\.test \(not delivered on this connection\)/);
      assert.match(log, /Delayed: (?:DCID \d+ )?MID \d+ to RID 0 <bob@badname\.test> - 4\.7\.\d+ - TLS required-verify: /);
      assert.doesNotMatch(log, /TLS success .* for badname\.test \(verified\)/);
      // The CLI's non-JSON listing agrees.
      const plain = await runCli(['queue', 'list', '--data-dir', dataDir]);
      assert.equal(plain.code, 0, plain.stderr);
      assert.match(plain.stdout, /bob@badname\.test/);
    });
  });
}
