/**
 * The TLS Connections report (`postern report tls`) after a run of mixed deliveries by the real
 * `postern start` to real Postfix receivers (with and without STARTTLS, a wrong-name
 * certificate; the project's SMTP test peer where Postfix is not installed), and an address
 * that refuses connections, found through a DNS server on loopback. Proves that
 * - each column of each domain is what the scenario makes it (Required success and failure,
 *   Preferred success, fallback to clear, unverified Preferred - Verify, No, refused attempts);
 * - the counts equal what mail.jsonl says for the same window;
 * - they survive a clean restart and a SIGKILL;
 * - --domain, --json, --csv and a bad window.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { sendMail, tempDir, waitForAsync as waitFor } from './harness.js';
import { TestCA } from './peers/ca.js';
import { startDnsServer, type DnsServer } from './peers/dns-server.js';
import { startSmtpPeer, type SmtpPeer, type StarttlsBehaviour } from './peers/smtp-peer.js';
import { postfixAvailable, startPostfix } from './peers/postfix.js';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { chromiumAvailable, launchBrowser, login, startWithAdmin } from './peers/browser.js';
import { logFile, runCli, runCliOk, startPostern, type PosternProcess } from './process.js';

// Addresses 127.0.81.x and ports 2690-2691 are this file's own.
const MX_PORT = 2690;
const LISTEN = '127.0.81.50:2691';
const A = (n: number) => `127.0.81.${n}`;

interface Row {
  domain: string;
  attempted: number;
  requiredOk: number;
  requiredFailed: number;
  preferredOk: number;
  preferredFailed: number;
  clear: number;
  verified: number;
  unverified: number;
  encryptedMessages: number;
  clearMessages: number;
  tlsPercent: number | null;
}

// [domain, TLS setting, the peer's STARTTLS (null: nothing listens), what the report must say]
const SCENARIO: [string, string, StarttlsBehaviour | null, Partial<Row>][] = [
  ['req-ok.test', 'required', 'ok', { attempted: 1, requiredOk: 1, encryptedMessages: 1, tlsPercent: 100 }],
  ['req-fail.test', 'required', 'none', { attempted: 1, requiredFailed: 1, tlsPercent: null }],
  ['pref-ok.test', 'preferred', 'ok', { attempted: 1, preferredOk: 1, encryptedMessages: 1, tlsPercent: 100 }],
  ['pref-fail.test', 'preferred', 'none', { attempted: 1, preferredFailed: 1, clear: 1, clearMessages: 1, tlsPercent: 0 }],
  ['prefv.test', 'preferred-verify', 'ok', { attempted: 1, preferredOk: 1, unverified: 1, encryptedMessages: 1, tlsPercent: 100 }],
  ['plain.test', 'no', 'ok', { attempted: 1, clear: 1, clearMessages: 1, tlsPercent: 0 }],
  ['refused.test', 'required', null, { attempted: 1, tlsPercent: null }],
];

const ZERO: Omit<Row, 'domain' | 'tlsPercent'> = { attempted: 0, requiredOk: 0, requiredFailed: 0, preferredOk: 0, preferredFailed: 0, clear: 0, verified: 0, unverified: 0, encryptedMessages: 0, clearMessages: 0 };

describe('postern report tls', () => {
  let dns: DnsServer;
  const closers: (() => Promise<unknown>)[] = [];
  let dir = '';
  let postern: PosternProcess | undefined;
  const cli = (...args: string[]) => runCliOk([...args, '--data-dir', dir]);
  const report = async (...args: string[]): Promise<{ rows: Row[]; totals: Row }> => JSON.parse(await cli('report', 'tls', '--last', '1h', '--json', ...args)) as { rows: Row[]; totals: Row };
  const start = () => startPostern({ dataDir: dir, listen: LISTEN, dnsServer: dns.address, smtpPort: MX_PORT, hostname: 'postern-report.test', config: { timeouts: { connect: 3, greeting: 10, ehlo: 10, starttls: 10, tlsHandshake: 10, quit: 3 } } });

  before(async () => {
    const ca = await TestCA.create('Report Test CA');
    const zone: Record<string, { MX?: { preference: number; exchange: string }[]; A?: string[] }> = {};
    const receivers: Promise<() => Promise<unknown>>[] = [];
    // Postfix receivers where Postfix is installed (always in CI); the project's SMTP test peer elsewhere.
    const files = tempDir('postern-report-certs-');
    chmodSync(files, 0o755);
    const startReceiver = async (domain: string, address: string, starttls: StarttlsBehaviour, c: { keyPem: string; chainPem: string }): Promise<() => Promise<unknown>> => {
      if (!postfixAvailable()) {
        const p: SmtpPeer = await startSmtpPeer({ host: address, port: MX_PORT, hostname: `mx.${domain}`, starttls, cert: { keyPem: c.keyPem, certPem: c.chainPem } });
        return () => p.close();
      }
      const keyFile = path.join(files, `${domain}.key`);
      const chainFile = path.join(files, `${domain}.pem`);
      writeFileSync(keyFile, c.keyPem, { mode: 0o644 });
      writeFileSync(chainFile, c.chainPem, { mode: 0o644 });
      const pf = await startPostfix({ address, port: MX_PORT, hostname: `mx.${domain}`, tls: starttls === 'ok' ? 'may' : 'none', keyFile, chainFile, delivery: 'discard' });
      return () => pf.stop();
    };
    for (const [i, [domain, , starttls]] of SCENARIO.entries()) {
      const address = A(i + 1);
      zone[domain] = { MX: [{ preference: 10, exchange: `mx.${domain}` }] };
      zone[`mx.${domain}`] = { A: [address] };
      if (starttls === null) continue;
      // prefv.test's certificate names another host: encrypted, not verified.
      const c = await ca.issue({ cn: domain === 'prefv.test' ? 'other.invalid' : `mx.${domain}`, dnsNames: [domain === 'prefv.test' ? 'other.invalid' : `mx.${domain}`] });
      receivers.push(startReceiver(domain, address, starttls, c));
    }
    for (const r of await Promise.allSettled(receivers)) if (r.status === 'fulfilled') closers.push(r.value);
    const failed = (await Promise.allSettled(receivers)).find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    dns = await startDnsServer({ zone });
    dir = tempDir('postern-report-');
    for (const [domain, tls] of SCENARIO) await cli('destconfig', 'new', domain, '--tls', tls);
    postern = await start();
  });

  after(async () => {
    await postern?.stop();
    await Promise.allSettled(closers.map((c) => c()));
    await dns?.close();
  });

  test('after mixed deliveries each column is what happened, and equals what mail.jsonl says', async () => {
    assert.ok(postern);
    for (const [domain] of SCENARIO) {
      const r = await sendMail(postern.port, 'sender@client.test', [`user@${domain}`], `Subject: ${domain}\r\n\r\nhello\r\n`, postern.host);
      assert.equal(r.code, 250, r.text);
    }
    const want = Object.fromEntries(SCENARIO.map(([d, , , w]) => [d, { domain: d, ...ZERO, tlsPercent: null, ...w }]));
    const got = await waitFor('every domain in the report as expected', async () => {
      const rows = (await report()).rows;
      const byDomain = Object.fromEntries(rows.map((r) => [r.domain, r]));
      return SCENARIO.every(([d]) => JSON.stringify(byDomain[d]) === JSON.stringify(want[d])) ? byDomain : undefined;
    }, 30_000).catch(async (e: Error) => {
      throw new Error(`${e.message}\nreport: ${JSON.stringify((await report()).rows, null, 1)}\n--- output ---\n${postern?.output()}`);
    });
    for (const [d] of SCENARIO) assert.deepEqual(got[d], want[d], d);

    // The same counts from the mail log's JSON lines, by the report's definitions.
    const events = (await readFile(logFile(dir, 'mail.jsonl'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const fromLog: Record<string, Partial<Row>> = {};
    const dcidDomain = new Map<number, string>();
    const bump = (d: string, k: keyof Row) => {
      const r = (fromLog[d] ??= {});
      (r as Record<string, number>)[k] = ((r as Record<string, number>)[k] ?? 0) + 1;
    };
    for (const e of events) {
      if (e.event === 'connection-failed') bump(String(e.domain), 'attempted');
      if (e.event === 'connection') {
        dcidDomain.set(Number(e.dcid), String(e.domain));
        bump(String(e.domain), 'attempted');
      }
      if (e.event === 'tls-success') bump(String(e.domain), String(e.domain).startsWith('req') ? 'requiredOk' : 'preferredOk');
      if (e.event === 'tls-failed') bump(String(e.domain), String(e.domain).startsWith('req') ? 'requiredFailed' : 'preferredFailed');
      if (e.event === 'message-done') bump(dcidDomain.get(Number(e.dcid))!, 'encryptedMessages');
    }
    for (const [d] of SCENARIO) {
      const l = fromLog[d] ?? {};
      const r = got[d]!;
      assert.equal(r.attempted, l.attempted ?? 0, `${d}: attempted`);
      assert.equal(r.requiredOk, l.requiredOk ?? 0, `${d}: required ok`);
      assert.equal(r.requiredFailed, l.requiredFailed ?? 0, `${d}: required failed`);
      assert.equal(r.preferredOk, l.preferredOk ?? 0, `${d}: preferred ok`);
      assert.equal(r.preferredFailed, l.preferredFailed ?? 0, `${d}: preferred failed`);
      assert.equal(r.encryptedMessages + r.clearMessages, l.encryptedMessages ?? 0, `${d}: messages`);
    }
    // The totals row adds the columns up; sorted by Total Attempted (all 1 here: then by name).
    const all = await report();
    assert.equal(all.totals.attempted, SCENARIO.length);
    assert.equal(all.totals.requiredOk + all.totals.preferredOk, 3);
    assert.equal(all.totals.clear, 2);
    assert.equal(all.totals.tlsPercent, 60);
  });

  test('the counts survive a clean restart and a SIGKILL', async () => {
    assert.ok(postern);
    const before = (await report()).totals;
    assert.equal((await postern.stop()).code, 0);
    postern = await start();
    assert.deepEqual((await report()).totals, before);
    const r = await sendMail(postern.port, 'sender@client.test', ['again@pref-ok.test'], 'Subject: again\r\n\r\nhello\r\n', postern.host);
    assert.equal(r.code, 250);
    await waitFor('the second pref-ok.test connection counted', async () => ((await report('--domain', 'pref-ok.test')).rows[0]?.preferredOk === 2 ? true : undefined), 30_000);
    await postern.kill('SIGKILL');
    postern = await start();
    const after = (await report('--domain', 'pref-ok.test')).rows;
    assert.equal(after.length, 1);
    assert.equal(after[0]!.preferredOk, 2);
    assert.equal(after[0]!.encryptedMessages, 2);
  });

  test('text, CSV and a bad window', async () => {
    const text = await cli('report', 'tls', '--last', '1d');
    assert.match(text, /^Domain\s+Required TLS Success\s+Required TLS Failed\s+Preferred TLS Success\s+Preferred TLS Failed\s+Total Attempted\s+Clear Connections\s+% TLS\s+Encrypted Messages$/m);
    assert.match(text, /^pref-ok\.test\s+0\s+0\s+2\s+0\s+2\s+0\s+100%\s+2$/m);
    assert.match(text, /^Total\s+/m);
    const csv = await cli('report', 'tls', '--last', '7d', '--csv');
    const lines = csv.trimEnd().split('\r\n');
    assert.equal(lines[0], 'Domain,Required TLS Success,Required TLS Failed,Preferred TLS Success,Preferred TLS Failed,Total Attempted,Clear Connections,% TLS,Encrypted Messages');
    assert.equal(lines[1], 'pref-ok.test,0,0,2,0,2,0,100,2');
    assert.match(lines[lines.length - 1]!, /^Total,/);
    const bad = await runCli(['report', 'tls', '--last', '2w', '--data-dir', dir]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /invalid --last "2w": allowed 1h, 1d, 7d, 30d, 90d, 1y/);
  });

  test('Monitor > TLS Connections shows the run: the table, the graph drawn from the API, CSV export', { skip: !chromiumAvailable() && !process.env.CI ? 'chromium not installed' : false }, async () => {
    assert.ok(postern);
    await postern.stop();
    const gw = await startWithAdmin({ dataDir: dir, listen: LISTEN, admin: '127.0.81.50:2692', dnsServer: dns.address, smtpPort: MX_PORT });
    postern = gw.proc;
    const browser = await launchBrowser();
    try {
      const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
      const page = await ctx.newPage();
      await login(page, gw.base, 'admin', gw.initialPassword!);
      await page.getByLabel('Current password').fill(gw.initialPassword!);
      await page.getByLabel(/^New password \(/).fill('report page password');
      await page.getByLabel('New password again').fill('report page password');
      await page.getByRole('button', { name: 'Change password' }).click();
      await page.getByRole('navigation').getByRole('link', { name: 'TLS Connections' }).click();
      const row = page.locator('table.grid').getByRole('row', { name: /^pref-ok\.test/ });
      assert.deepEqual(await row.getByRole('cell').allInnerTexts(), ['0', '0', '2', '0', '2', '0', '100%', '2']);
      // The graph: drawn from /api/v1/reports/tls with the page's session.
      await page.waitForSelector('#tls-chart canvas', { timeout: 10_000 });
      assert.match((await page.locator('#tls-chart').getAttribute('aria-label')) ?? '', /^TLS sessions 4, clear connections 2$/);
      // One domain, by clicking it.
      await Promise.all([page.waitForURL(/domain=req-fail\.test/), page.getByRole('link', { name: 'req-fail.test', exact: true }).click()]);
      await page.waitForLoadState('load');
      // The header, req-fail.test and the totals.
      assert.equal(await page.locator("table.grid").getByRole("row").count(), 3, await page.locator("main").innerText());
      // The graph is drawn after the page loads and moves what is below it: wait for it first.
      await page.waitForSelector('#tls-chart canvas', { timeout: 10_000 });
      const href = await page.getByRole('link', { name: 'Export CSV' }).getAttribute('href');
      const res = await ctx.request.get(`${gw.base}${href}`);
      assert.match(res.headers()['content-disposition'] ?? '', /attachment; filename="tls-connections\.csv"/);
      const csv = await res.text();
      assert.equal(csv, await cli('report', 'tls', '--last', '1d', '--domain', 'req-fail.test', '--csv'));
    } finally {
      await browser.close();
    }
  });
});
