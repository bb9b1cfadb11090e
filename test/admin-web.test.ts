/**
 * The administration page in a real browser (Debian's Chromium through playwright-core)
 * against the real `postern start` process. Proves that
 * - the first start creates `admin` with a one-time password (printed, and in a 0600 file that
 *   goes away once the password is changed at the forced first-login change);
 * - the seed's own steps (Mail Policies > Destination Controls, Add Destination, example.com,
 *   TLS Support Required, Submit) govern delivery: the CLI sees the entry, and a message to
 *   example.com, whose MX is a real Postfix without STARTTLS, is deferred with 4.7.4;
 * - every out-of-range or malformed value of every field is refused beside its field with the
 *   checker's message (the CLI's, with its own field name), values kept, nothing saved;
 * - the demo-certificate warning shows at once with JavaScript and after Submit without it;
 * - CSRF, cookie attributes, roles (read-only, operator), hostile text, import of a broken
 *   file, export and the audit log.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { sendMail, waitForAsync } from './harness.js';
import { within } from './deadline.js';
import { startDnsServer, type DnsServer } from './peers/dns-server.js';
import { postfixAvailable, startPostfix, type PostfixInstance } from './peers/postfix.js';
import { chromiumAvailable, csrfOf, launchBrowser, login, startWithAdmin, type AdminPostern } from './peers/browser.js';
import { runCli, runCliOk } from './process.js';

const inCI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';

// Addresses 127.0.80.x and ports 2680-2685 are this file's own.
const MX = { name: 'mx.example.com', address: '127.0.80.1', port: 2680 };
const LISTEN = '127.0.80.10:2681';
const ADMIN = '127.0.80.10:2682';
const NEW_PASSWORD = 'a long new password 1';
const DC = '/mail-policies/destination-controls';

interface QueueRow {
  to: string;
  state: string;
  lastReply: string | null;
}

/** The text of the element(s) a field's aria-describedby names. */
async function describedText(page: Page, id: string): Promise<string> {
  const ids = (await page.locator(`#${id}`).getAttribute('aria-describedby')) ?? '';
  const texts: string[] = [];
  for (const d of ids.split(/\s+/).filter(Boolean)) {
    const el = page.locator(`#${d}`);
    if ((await el.count()) > 0 && (await el.isVisible())) texts.push((await el.innerText()).trim());
  }
  return texts.join(' ');
}

const skip = !chromiumAvailable() || !postfixAvailable();
if (skip && inCI) {
  test('Chromium and Postfix are installed (required in CI)', () => {
    assert.fail('/usr/bin/chromium or /usr/sbin/postfix is missing: .ci/run must install the chromium and postfix packages');
  });
}

describe('the administration page in Chromium', { skip: skip && !inCI ? 'chromium or postfix not installed' : false, timeout: within(300_000) }, () => {
  let tmp = '';
  let dataDir = '';
  let dns: DnsServer | undefined;
  let mx: PostfixInstance | undefined;
  let gw: AdminPostern | undefined;
  let browser: Browser | undefined;
  let admin: BrowserContext | undefined;
  let page: Page;

  const cli = (...args: string[]) => runCliOk([...args, '--data-dir', dataDir]);
  const entries = async (): Promise<string[]> => (JSON.parse(await cli('destconfig', 'list', '--json')) as { entries: { name: string }[] }).entries.map((e) => e.name);

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'postern-web-'));
    dataDir = path.join(tmp, 'data');
    mx = await startPostfix({ address: MX.address, port: MX.port, hostname: MX.name, tls: 'none', delivery: 'maildir' });
    dns = await startDnsServer({ zone: { 'example.com': { MX: [{ preference: 10, exchange: MX.name }] }, [MX.name]: { A: [MX.address] } } });
    gw = await startWithAdmin({ dataDir, listen: LISTEN, admin: ADMIN, dnsServer: dns.address, smtpPort: MX.port, hostname: 'postern-web.test', config: { timeouts: { connect: 3, greeting: 10, ehlo: 10, starttls: 10, quit: 3 } } });
    browser = await launchBrowser();
    admin = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
    page = await admin.newPage();
  });

  after(async () => {
    await browser?.close();
    const status = await gw?.proc.stop();
    await Promise.allSettled([mx?.stop(), dns?.close()]);
    if (tmp) await rm(tmp, { recursive: true, force: true });
    if (status) assert.deepEqual(status, { code: 0, signal: null }, gw?.proc.output());
  });

  test('the first start creates admin with a one-time password in a 0600 file and prints the URL', async () => {
    assert.ok(gw?.initialPassword, gw?.proc.output());
    assert.match(gw.proc.output(), /Administration page on https:\/\/127\.0\.80\.10:2682\//);
    assert.match(gw.proc.output(), /Warning: the administration page uses the demo certificate/);
    const file = path.join(dataDir, 'admin-initial-password');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await readFile(file, 'utf8')).trim(), gw.initialPassword);
    assert.match(await cli('adminuser', 'list'), /^admin\s+administrator\s+\S+\s+yes$/m);
  });

  test("the seed's steps: log in, Destination Controls, Add Destination, example.com, Required, Submit — and delivery follows", async () => {
    assert.ok(gw?.initialPassword);
    await login(page, gw.base, 'admin', gw.initialPassword);
    // The first login must choose a new password before anything else.
    assert.equal(new URL(page.url()).pathname, '/password');
    await page.goto(`${gw.base}${DC}`);
    assert.equal(new URL(page.url()).pathname, '/password');
    await page.getByLabel('Current password').fill(gw.initialPassword);
    await page.getByLabel(/^New password \(/).fill(NEW_PASSWORD);
    await page.getByLabel('New password again').fill(NEW_PASSWORD);
    await page.getByRole('button', { name: 'Change password' }).click();
    await assert.rejects(stat(path.join(dataDir, 'admin-initial-password')), /ENOENT/);

    await page.getByRole('navigation').getByRole('link', { name: 'Destination Controls' }).click();
    await page.getByRole('link', { name: 'Add Destination…' }).click();
    await page.getByLabel('Destination').fill('example.com');
    await page.getByLabel('TLS Support').selectOption({ label: 'Required' });
    await page.getByRole('button', { name: 'Submit' }).click();
    assert.equal(new URL(page.url()).pathname, DC);
    const row = page.getByRole('row', { name: /example\.com/ });
    assert.equal(await row.getByRole('cell').nth(2).innerText(), 'Required');
    assert.match(await cli('destconfig', 'detail', 'example.com'), /^TLS Support: Required$/m);

    // The page governs delivery: Postfix offers no STARTTLS, so Required defers with 4.7.4.
    const r = await sendMail(Number(LISTEN.split(':')[1]), 'sender@client.test', ['alice@example.com'], 'Subject: web\r\n\r\nHello.\r\n', LISTEN.split(':')[0]);
    assert.equal(r.code, 250, r.text);
    const deferred = await waitForAsync('a 4.7.4 deferral', async () => {
      const rows = JSON.parse(await cli('queue', 'list', '--json')) as QueueRow[];
      return rows.find((x) => x.to === 'alice@example.com' && x.state === 'deferred' && /4\.7\.4/.test(x.lastReply ?? ''));
    });
    assert.match(deferred.lastReply!, /STARTTLS|TLS/);
    assert.equal((await mx!.readDelivered()).length, 0, 'Postfix must not have received the message in clear text');

    const auditLog = await readFile(path.join(dataDir, 'logs', 'audit.log'), 'utf8');
    assert.match(auditLog, /actor=admin client=127\.\d+\.\d+\.\d+ action=destination\.new target="example\.com" changed=\{"tls":\{"from":"Default","to":"required"\}\}/);
  });

  // [field id, how to set it, the value, the field's name in the checker's message, what is allowed]
  type Case = [string, 'fill' | 'forge', string, string, string];
  const INT_1_1000 = 'an integer from 1 to 1,000';
  const CASES: Case[] = [
    ['concurrency', 'fill', '0', 'concurrent connections', INT_1_1000],
    ['concurrency', 'fill', '1001', 'concurrent connections', INT_1_1000],
    ['concurrency', 'fill', 'ten', 'concurrent connections', INT_1_1000],
    ['concurrency', 'fill', '1.5', 'concurrent connections', INT_1_1000],
    ['concurrency', 'fill', '', 'concurrent connections', INT_1_1000],
    ['concurrency', 'fill', '-3', 'concurrent connections', INT_1_1000],
    ['messagesPerConnection', 'fill', '0', 'maximum messages per connection', INT_1_1000],
    ['messagesPerConnection', 'fill', '1,001', 'maximum messages per connection', INT_1_1000],
    ['messagesPerConnection', 'fill', '5e2', 'maximum messages per connection', INT_1_1000],
    ['recipients', 'fill', '1000000001', 'recipients', 'an integer from 0 to 1,000,000,000'],
    ['recipients', 'fill', 'many', 'recipients', 'an integer from 0 to 1,000,000,000'],
    ['minutes', 'fill', '0', 'recipient minutes', 'an integer from 1 to 60'],
    ['minutes', 'fill', '61', 'recipient minutes', 'an integer from 1 to 60'],
    ['minutes', 'fill', 'hour', 'recipient minutes', 'an integer from 1 to 60'],
    ['domain', 'fill', 'bad_name.test', 'destination', 'a domain name (example.com) or a subdomain pattern (.example.com)'],
    ['domain', 'fill', '*.wild.test', 'destination', 'a domain name (example.com) or a subdomain pattern (.example.com)'],
    ['domain', 'fill', 'ex%61mple.test', 'destination', 'a domain name (example.com) or a subdomain pattern (.example.com)'],
    ['ipPreference', 'forge', 'ipv5-preferred', 'IP address preference', 'ipv6-preferred, ipv6-required, ipv4-preferred, ipv4-required'],
    ['tls', 'forge', 'sometimes', 'TLS support', 'no, preferred, required, preferred-verify, required-verify, required-verify-hosted'],
    ['limitPer', 'forge', 'entire', 'apply limits per', 'domain (or host, 0), mx-ip (or mxip, 1), default'],
    ['enforce', 'forge', 'cluster', 'enforce limits', 'system (or 0), virtual-gateway (or vg, 1), default'],
    ['bounceVerification', 'forge', 'maybe', 'bounce verification', 'on (or yes, 1), off (or no, 0), default'],
    ['tlsAlert', 'forge', 'sometimes', 'required TLS alert', 'on (or yes, 1), off (or no, 0), default (the global switch)'],
    ['dane', 'forge', 'always', 'DANE', 'off, opportunistic, required'],
    ['mtaSts', 'forge', 'enforce', 'MTA-STS', 'on (or yes, 1), off (or no, 0), default'],
    ['bounceProfile', 'forge', 'has space', 'bounce profile', 'a profile name of 1 to 64 letters, digits, _ . -'],
    ['bounceProfile', 'forge', 'NoSuchProfile', 'bounce profile', 'a bounce profile that exists (Default); create it first with postern bounceconfig new'],
  ];
  // The same values through the CLI: the same checker, so the same "allowed" text.
  const CLI_FLAG: Record<string, (v: string) => string[]> = {
    concurrency: (v) => ['--concurrency', v],
    messagesPerConnection: (v) => ['--messages-per-connection', v],
    recipients: (v) => ['--recipients', `${v}/10`],
    minutes: (v) => ['--recipients', `10/${v}`],
    ipPreference: (v) => ['--ip-preference', v],
    tls: (v) => ['--tls', v],
    limitPer: (v) => ['--limit-per', v],
    enforce: (v) => ['--enforce', v],
    bounceVerification: (v) => ['--bounce-verification', v],
    tlsAlert: (v) => ['--tls-alert', v],
    dane: (v) => ['--dane', v],
    mtaSts: (v) => ['--mta-sts', v],
    bounceProfile: (v) => ['--bounce-profile', v],
  };

  test('every out-of-range or malformed value is refused beside its field, with values kept and nothing saved', async () => {
    assert.ok(gw);
    const before = await entries();
    for (const [i, [field, how, value, name, allowed]] of CASES.entries()) {
      const label = `${field}=${JSON.stringify(value)}`;
      await page.goto(`${gw.base}${DC}/add`);
      const domain = field === 'domain' ? value : `case${i}.test`;
      await page.locator('#domain').fill(domain);
      // A valid choice elsewhere must survive the redisplay.
      await page.locator('#tls').selectOption('preferred');
      if (field === 'concurrency') await page.locator('input[name="concurrencyMode"][value="max"]').check();
      if (field === 'messagesPerConnection') await page.locator('input[name="messagesMode"][value="max"]').check();
      if (field === 'recipients' || field === 'minutes') {
        await page.locator('input[name="recipientsMode"][value="max"]').check();
        await page.locator('#recipients').fill(field === 'recipients' ? value : '100');
        await page.locator('#minutes').fill(field === 'minutes' ? value : '10');
      } else if (how === 'fill' && field !== 'domain') {
        await page.locator(`#${field}`).fill(value);
      }
      if (how === 'forge') {
        // What a hand-made request could send: a value no option of the form offers.
        await page.evaluate(`(() => {
          const form = document.querySelector('form.destination');
          for (const el of Array.from(form.querySelectorAll('[name="${field}"]'))) el.remove();
          const input = document.createElement('input');
          input.type = 'hidden';
          input.name = ${JSON.stringify(field)};
          input.value = ${JSON.stringify(value)};
          form.appendChild(input);
        })()`);
      }
      const response = page.waitForResponse((r) => r.request().method() === 'POST');
      await page.getByRole('button', { name: 'Submit' }).click();
      assert.equal((await response).status(), 400, label);
      const id = how === 'forge' && ['limitPer', 'enforce', 'bounceVerification', 'tlsAlert', 'dane', 'mtaSts'].includes(field) ? null : field;
      const expected = `invalid ${name} ${JSON.stringify(value)}: allowed ${allowed}`;
      if (id) {
        assert.equal(await page.locator(`#${id}`).getAttribute('aria-invalid'), 'true', label);
        assert.equal(await describedText(page, id), expected, label);
      } else {
        // Radio groups: the message is tied to the group's fieldset.
        assert.equal((await page.locator(`[aria-describedby="${field}-error"]`).count()) > 0, true, label);
        assert.equal((await page.locator(`#${field}-error`).innerText()).trim(), expected, label);
      }
      assert.equal(await page.getByRole('alert').locator('li').first().innerText(), expected, label);
      // What was entered is still there.
      assert.equal(await page.locator('#domain').inputValue(), domain, label);
      assert.equal(await page.locator('#tls').inputValue(), field === 'tls' ? 'default' : 'preferred', label);
      if (how === 'fill' && field !== 'domain') assert.equal(await page.locator(`#${field}`).inputValue(), value, label);

      // The CLI's --recipients takes N/M: a word there is refused by its own syntax first.
      if (field !== 'domain' && !((field === 'recipients' || field === 'minutes') && !/^[\d,]+$/.test(value))) {
        const r = await runCli(['destconfig', 'new', `cli${i}.test`, ...CLI_FLAG[field]!(value), '--data-dir', dataDir]);
        assert.equal(r.code, 2, `${label} via the CLI: ${r.stderr}`);
        assert.ok(r.stderr.includes(`${JSON.stringify(value)}: allowed ${allowed}`), `${label}: the CLI says something else:\n${r.stderr}`);
      }
    }
    assert.deepEqual(await entries(), before, 'a refused value saved something');
  });

  test('the demo-certificate warning: at once with JavaScript, after Submit without it', async () => {
    assert.ok(gw && browser);
    await page.goto(`${gw.base}${DC}/add`);
    const warning = page.locator('#tls-warning');
    assert.equal(await warning.isVisible(), false);
    await page.locator('#tls').selectOption('required-verify');
    assert.equal(await warning.isVisible(), true);
    assert.match(await warning.innerText(), /demo certificate\/key, which is not secure/);
    await page.locator('#tls').selectOption('no');
    assert.equal(await warning.isVisible(), false);
    // With JavaScript, typing a maximum chooses "Maximum of".
    await page.locator('#concurrency').fill('5');
    assert.equal(await page.locator('input[name="concurrencyMode"][value="max"]').isChecked(), true);

    const plain = await browser.newContext({ ignoreHTTPSErrors: true, javaScriptEnabled: false, storageState: await admin!.storageState() });
    const p = await plain.newPage();
    await p.goto(`${gw.base}${DC}/add`);
    await p.locator('#domain').fill('nojs.test');
    await p.locator('#tls').selectOption('preferred');
    assert.equal(await p.locator('#tls-warning').isVisible(), false);
    await p.getByRole('button', { name: 'Submit' }).click();
    // The saved entry: the table carries the warning.
    assert.equal(new URL(p.url()).pathname, DC);
    assert.match(await p.locator('main').innerText(), /Enabling TLS uses the demo certificate\/key, which is not secure/);
    // A redisplayed form carries it too.
    await p.goto(`${gw.base}${DC}/add`);
    await p.locator('#domain').fill('nojs2.test');
    await p.locator('#tls').selectOption('required');
    await p.locator('input[name="concurrencyMode"][value="max"]').check();
    await p.locator('#concurrency').fill('0');
    await p.getByRole('button', { name: 'Submit' }).click();
    assert.equal(await p.locator('#tls-warning').isVisible(), true);
    await plain.close();
  });

  test('Edit keeps Default where it was, puts a setting back to Default, and Delete asks first', async () => {
    assert.ok(gw);
    await page.goto(`${gw.base}${DC}`);
    await page.getByRole('link', { name: 'nojs.test', exact: true }).click();
    assert.equal(await page.locator('input[name="concurrencyMode"][value="default"]').isChecked(), true);
    assert.match(await page.locator('label:has(input[name="concurrencyMode"][value="default"])').innerText(), /Use Default \(500\)/);
    await page.locator('input[name="concurrencyMode"][value="max"]').check();
    await page.locator('#concurrency').fill('7');
    await page.locator('#tls').selectOption('default');
    // The required-TLS alert: Default names the global switch (off); Yes overrides it.
    assert.equal(await page.locator('input[name="tlsAlert"][value="default"]').isChecked(), true);
    assert.match(await page.locator('label:has(input[name="tlsAlert"][value="default"])').innerText(), /Default \(No\)/);
    await page.locator('input[name="tlsAlert"][value="yes"]').check();
    // DANE and MTA-STS: radio groups whose Default names the (Default) entry's value.
    assert.equal(await page.locator('input[name="dane"][value="default"]').isChecked(), true);
    assert.match(await page.locator('label:has(input[name="dane"][value="default"])').innerText(), /Default \(Opportunistic\)/);
    assert.equal(await page.locator('input[name="mtaSts"][value="default"]').isChecked(), true);
    assert.match(await page.locator('label:has(input[name="mtaSts"][value="default"])').innerText(), /Default \(On\)/);
    await page.locator('input[name="dane"][value="required"]').check();
    await page.locator('input[name="mtaSts"][value="off"]').check();
    await page.getByRole('button', { name: 'Submit' }).click();
    const detail = await cli('destconfig', 'detail', 'nojs.test');
    assert.match(detail, /^Maximum Concurrent Connections: 7$/m);
    assert.match(detail, /^TLS Support: Default \(No\)\nDANE: Required\nMTA-STS: Off$/m);
    assert.match(detail, /^Alert When Required TLS Fails: On$/m);
    // Back to Default: the entry no longer holds it.
    await page.getByRole('link', { name: 'nojs.test', exact: true }).click();
    assert.equal(await page.locator('input[name="tlsAlert"][value="yes"]').isChecked(), true);
    assert.equal(await page.locator('input[name="dane"][value="required"]').isChecked(), true);
    assert.equal(await page.locator('input[name="mtaSts"][value="off"]').isChecked(), true);
    await page.locator('input[name="tlsAlert"][value="default"]').check();
    await page.locator('input[name="dane"][value="default"]').check();
    await page.locator('input[name="mtaSts"][value="default"]').check();
    await page.getByRole('button', { name: 'Submit' }).click();
    const back = await cli('destconfig', 'detail', 'nojs.test');
    assert.doesNotMatch(back, /Alert When Required TLS Fails/);
    assert.match(back, /^DANE: Default \(Opportunistic\)\nMTA-STS: Default \(On\)$/m);
    // (Default) has no such field: the global switch stands there.
    await page.goto(`${gw.base}${DC}/edit?domain=${encodeURIComponent('(Default)')}`);
    assert.equal(await page.locator('input[name="tlsAlert"]').count(), 0);
    // It has DANE and MTA-STS, with values only (nothing to inherit from).
    assert.equal(await page.locator('input[name="dane"][value="default"]').count(), 0);
    assert.equal(await page.locator('input[name="dane"][value="opportunistic"]').isChecked(), true);
    assert.equal(await page.locator('input[name="mtaSts"][value="on"]').isChecked(), true);
    await page.goto(`${gw.base}${DC}`);

    await page.getByRole('link', { name: 'Delete nojs.test', exact: true }).click();
    assert.match(await page.locator('main').innerText(), /Delete the destination controls for nojs\.test\?/);
    assert.ok((await entries()).includes('nojs.test'), 'deleted before the confirmation');
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    assert.ok(!(await entries()).includes('nojs.test'));
  });

  test('Message Queue: Bounce and Delete of a message, each after its confirmation page', async () => {
    assert.ok(gw);
    const r = await sendMail(Number(LISTEN.split(':')[1]), 'sender@client.test', ['bob@example.com'], 'Subject: second\r\n\r\nHello.\r\n', LISTEN.split(':')[0]);
    assert.equal(r.code, 250, r.text);
    const rows = async () => JSON.parse(await cli('queue', 'list', '--json')) as (QueueRow & { mid: number })[];
    const alice = (await rows()).find((x) => x.to === 'alice@example.com')!;
    const bob = await waitForAsync('bob@example.com queued', async () => (await rows()).find((x) => x.to === 'bob@example.com'));
    for (const [verb, who, state] of [['Delete', alice, 'deleted'], ['Bounce', bob, 'bounced']] as const) {
      await page.goto(`${gw.base}/monitor/queue`);
      await page.getByRole('link', { name: `${verb} MID ${who.mid}`, exact: true }).click();
      assert.ok((await rows()).some((x) => x.mid === who.mid), `${verb}: nothing may change before the confirmation`);
      await page.getByRole('button', { name: verb, exact: true }).click();
      const done = JSON.parse(await cli('queue', 'list', '--state', state, '--json')) as { mid: number; to: string }[];
      assert.ok(done.some((x) => x.mid === who.mid && x.to === who.to), `${verb}: ${JSON.stringify(done)}`);
      assert.match(await page.locator('.notice').innerText(), new RegExp(`${state}`));
    }
    assert.match(await readFile(path.join(dataDir, 'logs', 'audit.log'), 'utf8'), /actor=admin client=\S+ action=queue\.bounce target="MID \d+"/);
  });

  test('CSRF: a form sent without the token, or with another, gets 403 and changes nothing; the cookie is Secure, HttpOnly, SameSite=Strict', async () => {
    assert.ok(gw && admin);
    const cookie = (await admin.cookies()).find((c) => c.name === 'postern_session');
    assert.ok(cookie);
    assert.equal(cookie.secure, true);
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    const before = await entries();
    // Everything the form sends, as a browser would.
    const form = {
      domain: 'forged.test', ipPreference: 'default', concurrencyMode: 'default', concurrency: '', messagesMode: 'default', messagesPerConnection: '',
      recipientsMode: 'default', recipients: '', minutes: '', limitPer: 'default', enforce: 'default', tls: 'no', tlsAlert: 'default', dane: 'default', mtaSts: 'default',
      bounceVerification: 'default', bounceProfile: 'default',
    };
    const without = await admin.request.post(`${gw.base}${DC}/add`, { form, maxRedirects: 0 });
    assert.equal(without.status(), 403);
    const wrong = await admin.request.post(`${gw.base}${DC}/add`, { form: { ...form, _csrf: 'not-the-token' }, maxRedirects: 0 });
    assert.equal(wrong.status(), 403);
    assert.deepEqual(await entries(), before);
    // The same request with the page's token is accepted: the refusal was the token's.
    await page.goto(`${gw.base}${DC}`);
    const ok = await admin.request.post(`${gw.base}${DC}/add`, { form: { ...form, _csrf: await csrfOf(page) }, maxRedirects: 0 });
    assert.equal(ok.status(), 302);
    assert.ok((await entries()).includes('forged.test'));
  });

  test('read-only sees everything and changes nothing; an operator acts on the queue but not the configuration', async () => {
    assert.ok(gw && browser);
    const add = (name: string, role: string) => runCli(['adminuser', 'add', name, '--role', role, '--password-stdin', '--data-dir', dataDir], { input: 'reader password 1\n' });
    assert.equal((await add('reader', 'read-only')).code, 0);
    assert.equal((await add('oper', 'operator')).code, 0);

    const ro = await browser.newContext({ ignoreHTTPSErrors: true });
    const p = await ro.newPage();
    await login(p, gw.base, 'reader', 'reader password 1');
    await p.goto(`${gw.base}${DC}`);
    assert.match(await p.locator('table.grid').innerText(), /example\.com/);
    assert.equal(await p.getByRole('link', { name: 'Add Destination…' }).count(), 0);
    assert.equal(await p.getByRole('link', { name: /^Delete / }).count(), 0);
    await p.getByRole('link', { name: 'example.com', exact: true }).click();
    assert.equal(await p.getByRole('button', { name: 'Submit' }).count(), 0);
    assert.equal(await p.locator('#tls').isDisabled(), true);
    const token = await csrfOf(p);
    const before = await entries();
    const forged = await ro.request.post(`${gw.base}${DC}/add`, { form: { _csrf: token, domain: 'ro.test', tls: 'no' }, maxRedirects: 0 });
    assert.equal(forged.status(), 403);
    const del = await ro.request.post(`${gw.base}${DC}/delete`, { form: { _csrf: token, domain: 'example.com' }, maxRedirects: 0 });
    assert.equal(del.status(), 403);
    const q = await ro.request.post(`${gw.base}/monitor/queue/delivernow`, { form: { _csrf: token }, maxRedirects: 0 });
    assert.equal(q.status(), 403);
    assert.deepEqual(await entries(), before);
    await ro.close();

    const op = await browser.newContext({ ignoreHTTPSErrors: true });
    const o = await op.newPage();
    await login(o, gw.base, 'oper', 'reader password 1');
    await o.goto(`${gw.base}/monitor/queue`);
    assert.equal(await o.getByRole('link', { name: /Deliver Now/ }).count() + (await o.getByRole('button', { name: /Deliver Now/ }).count()) > 0, true);
    const otoken = await csrfOf(o);
    assert.equal((await op.request.post(`${gw.base}${DC}/add`, { form: { _csrf: otoken, domain: 'op.test', tls: 'no' }, maxRedirects: 0 })).status(), 403);
    assert.equal((await op.request.post(`${gw.base}/monitor/queue/delivernow`, { form: { _csrf: otoken }, maxRedirects: 0 })).status(), 302);
    assert.deepEqual(await entries(), before);
    await op.close();
  });

  test('Import Table: a broken file shows every error with its line and changes nothing; a good one replaces the table; Export is the CLI export', async () => {
    assert.ok(gw);
    const exportedBefore = await page.context().request.get(`${gw.base}${DC}/export`);
    const before = await exportedBefore.text();
    await page.goto(`${gw.base}${DC}/import`);
    const broken = ['[DEFAULT]', 'tls = no', 'max_host_concurrency = 5000', '', '[bad.test]', 'tls = sometimes', '[<script>alert(1)</script>]', 'tls = no', ''].join('\n');
    await page.locator('#file').setInputFiles({ name: 'broken.txt', mimeType: 'text/plain', buffer: Buffer.from(broken) });
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    const errors = await page.locator('#import-errors').innerText();
    assert.match(errors, /line 3: /);
    assert.match(errors, /line 6: /);
    assert.match(errors, /line 7: .*<script>alert\(1\)<\/script>/);
    assert.doesNotMatch(await page.content(), /<script>alert\(1\)<\/script>/);
    assert.equal(await (await page.context().request.get(`${gw.base}${DC}/export`)).text(), before, 'a broken import changed the table');

    const good = [
      '[DEFAULT]', 'ip_sort_pref = PREFER_V6', 'max_host_concurrency = 500', 'max_messages_per_connection = 50', 'recipient_limit = none',
      'limit_type = host', 'limit_apply = system', 'tls = preferred', 'bounce_validation = off', 'bounce_profile = Default', '',
      '[imported.test]', 'tls = required', '',
    ].join('\n');
    await page.locator('#file').setInputFiles({ name: 'good.txt', mimeType: 'text/plain', buffer: Buffer.from(good) });
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    assert.equal(new URL(page.url()).pathname, DC);
    assert.deepEqual(await entries(), ['imported.test']);

    const download = page.waitForEvent('download');
    await page.getByRole('link', { name: 'Export Table' }).click();
    const file = await (await download).path();
    const cliFile = path.join(tmp, 'cli-export.txt');
    await cli('destconfig', 'export', cliFile);
    assert.equal(await readFile(file, 'utf8'), await readFile(cliFile, 'utf8'));
  });

  test('every input on every page has a label, the form is keyboard-navigable, and the CSP allows no inline script', async () => {
    assert.ok(gw);
    const pages = [
      DC, `${DC}/add`, `${DC}/edit?domain=(Default)`, `${DC}/global`, `${DC}/import`, '/monitor/queue', '/monitor/tls', '/network/bounce-profiles',
      '/network/bounce-profiles/add', '/network/smtp-routes', '/network/smtp-routes/add', '/network/certificates', '/network/virtual-gateways',
      '/network/virtual-gateways/add', '/system/users', '/system/users/add', '/system/alerts', '/password',
    ];
    for (const p of pages) {
      const r = await page.goto(`${gw.base}${p}`);
      assert.equal(r?.status(), 200, p);
      const unlabelled = (await page.evaluate(`Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
        .filter((el) => !(el.labels && el.labels.length > 0) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
        .map((el) => el.name || el.id || el.outerHTML)`)) as string[];
      assert.deepEqual(unlabelled, [], `${p}: inputs without a label`);
      const csp = r!.headers()['content-security-policy'] ?? '';
      assert.match(csp, /script-src 'self'/, p);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, p);
      assert.equal((await page.locator('script:not([src])').count()), 0, `${p}: an inline script`);
    }
    await page.goto(`${gw.base}${DC}/add`);
    await page.locator('#domain').focus();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate('document.activeElement.id'), 'ipPreference');
  });

  test('System Administration > Alerts: a bad address beside its field, a recipient added with its classes', async () => {
    assert.ok(gw);
    await page.goto(`${gw.base}/system/alerts`);
    await page.getByLabel('Address', { exact: true }).fill('not an address');
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    assert.equal(await page.locator('#address').getAttribute('aria-invalid'), 'true');
    assert.equal(await describedText(page, 'address'), 'invalid alert address "not an address": allowed an email address (local@domain)');
    await page.getByLabel('Address', { exact: true }).fill('noc@example.net');
    await page.getByRole('checkbox', { name: 'delivery' }).uncheck();
    await page.getByRole('checkbox', { name: 'queue' }).uncheck();
    await page.getByRole('checkbox', { name: 'cluster' }).uncheck();
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    assert.match(await page.locator('table.grid').innerText(), /noc@example\.net\s+tls\s+critical, warning, info/);
    assert.match(await cli('alertconfig', 'list'), /^noc@example\.net\s+tls\s+critical,warning,info$/m);
  });

  test('Mail Policies > Bounce Verification: a key added (its text shown once), retired after confirming; settings and a local domain, a bad value beside its field', async () => {
    assert.ok(gw);
    await page.goto(`${gw.base}/mail-policies/bounce-verification`);
    assert.match(await page.locator('main').innerText(), /No tagging keys: nothing is tagged\./);
    await page.getByRole('button', { name: 'Add Key' }).click();
    const notice = await page.locator('main').innerText();
    const text = /Its text, shown this once: (\S+)/.exec(notice)?.[1];
    assert.ok(text, notice);
    assert.match(await cli('bvconfig', 'key', 'list', '--show'), new RegExp(`^0\\s+\\S+\\s+-\\s+${text.replace(/[-]/g, '\\-')}$`, 'm'));
    await page.reload();
    assert.doesNotMatch(await page.locator('main').innerText(), new RegExp(text.replace(/[-]/g, '\\-')), 'the text is shown once only');
    await page.getByLabel('Key text').fill('short');
    await page.getByRole('button', { name: 'Add Key' }).click();
    assert.equal(await describedText(page, 'key'), 'invalid bounce verification key "short": allowed 8 to 256 printable ASCII characters without spaces');
    await page.getByRole('link', { name: 'Retire key 0' }).click();
    assert.match(await page.locator('main').innerText(), /Retire key 0\? Its tags still verify for 7 days/);
    await page.getByRole('button', { name: 'Retire', exact: true }).click();
    assert.match(await cli('bvconfig', 'key', 'list'), /^0\s+\S+\s+\d{4}-\d\d-\d\dT/m);

    await page.getByLabel('Header', { exact: true }).fill('no colon');
    await page.getByRole('button', { name: 'Save' }).click();
    assert.equal(await describedText(page, 'header'), 'invalid invalid bounce header "no colon": allowed Name: value on one line (printable ASCII), e.g. X-Invalid-Bounce: yes');
    await page.getByLabel('Header', { exact: true }).fill('X-Bad-Bounce: yes');
    await page.getByRole('radio', { name: 'Accept and add the header' }).check();
    await page.getByRole('button', { name: 'Save' }).click();
    assert.deepEqual(JSON.parse(await cli('bvconfig', 'setup', '--json')), { invalidAction: 'add-header', header: 'X-Bad-Bounce: yes', untaggedValid: false });

    await page.getByLabel('Domain', { exact: true }).fill('.corp.example');
    await page.getByRole('button', { name: 'Add Domain' }).click();
    assert.deepEqual(JSON.parse(await cli('localdomains', 'list', '--json')), ['.corp.example']);
    await page.getByLabel('Domain', { exact: true }).fill('bad_name');
    await page.getByRole('button', { name: 'Add Domain' }).click();
    assert.equal(await page.locator('#domain').getAttribute('aria-invalid'), 'true');
  });

  test('an upload over 1 MB is refused (413) and changes nothing', async () => {
    assert.ok(gw && admin);
    const before = await entries();
    await page.goto(`${gw.base}${DC}/import`);
    const big = Buffer.alloc(1024 * 1024 + 10, '#');
    const r = await admin.request.post(`${gw.base}${DC}/import`, {
      multipart: { _csrf: await csrfOf(page), file: { name: 'big.txt', mimeType: 'text/plain', buffer: big } },
      maxRedirects: 0,
    });
    assert.equal(r.status(), 413);
    assert.deepEqual(await entries(), before);
  });

  test('hostile text is shown as text: a domain, a profile name and control characters', async () => {
    assert.ok(gw);
    let dialogs = 0;
    page.on('dialog', (d) => {
      dialogs++;
      void d.dismiss();
    });
    await page.goto(`${gw.base}${DC}/add`);
    await page.locator('#domain').fill('"><script>alert(1)</script>\u0007.test');
    await page.getByRole('button', { name: 'Submit' }).click();
    assert.match(await page.locator('#domain-error').innerText(), /invalid destination ".*<script>alert\(1\)<\/script>\\u0007\.test"/);
    assert.equal(await page.locator('#domain').inputValue(), '"><script>alert(1)</script>\u0007.test');
    assert.doesNotMatch(await page.content(), /<script>alert/);

    await page.goto(`${gw.base}/network/bounce-profiles/add`);
    await page.locator('input[name="name"]').fill('<img src=x onerror=alert(2)>');
    await page.getByRole('button', { name: 'Submit' }).click();
    assert.match(await page.locator('main').innerText(), /<img src=x onerror=alert\(2\)>/);
    assert.equal(await page.locator('main img').count(), 0);
    assert.equal(dialogs, 0);
  });
});

describe('sessions and login throttling', { skip: !chromiumAvailable() && !inCI ? 'chromium not installed' : false, timeout: within(120_000) }, () => {
  let tmp = '';
  let gw: AdminPostern | undefined;
  let browser: Browser | undefined;
  const IDLE_S = Math.max(2, Math.round(within(2000) / 1000));

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'postern-session-'));
    gw = await startWithAdmin({ dataDir: path.join(tmp, 'data'), listen: '127.0.80.20:2683', admin: '127.0.80.20:2684', args: ['--admin-session-idle', String(IDLE_S)] });
    browser = await launchBrowser();
    const add = (name: string) => runCli(['adminuser', 'add', name, '--role', 'administrator', '--password-stdin', '--data-dir', path.join(tmp, 'data')], { input: `${name} password 12\n` });
    for (const n of ['idle', 'victim', 'other']) assert.equal((await add(n)).code, 0);
  });

  after(async () => {
    await browser?.close();
    await gw?.proc.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('an idle session ends after the idle time (--admin-session-idle); using it keeps it alive', async () => {
    assert.ok(gw && browser);
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    const p = await ctx.newPage();
    await login(p, gw.base, 'idle', 'idle password 12');
    assert.equal(new URL(p.url()).pathname, DC);
    // Used more often than the idle time: still logged in.
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, (IDLE_S * 1000) / 2));
      await p.goto(`${gw.base}${DC}`);
      assert.equal(new URL(p.url()).pathname, DC);
    }
    await new Promise((r) => setTimeout(r, IDLE_S * 1000 + 1000));
    await p.goto(`${gw.base}${DC}`);
    assert.equal(new URL(p.url()).pathname, '/login');
    await ctx.close();
  });

  test('failed logins are throttled per user (even the right password is refused), and per address', async () => {
    assert.ok(gw && browser);
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    const p = await ctx.newPage();
    for (let i = 0; i < 5; i++) {
      await login(p, gw.base, 'victim', `wrong password ${i}`);
      assert.match(await p.locator('main').innerText(), /user name or the password is wrong/);
    }
    const throttled = p.waitForResponse((r) => r.request().method() === 'POST');
    await login(p, gw.base, 'victim', 'victim password 12');
    assert.equal((await throttled).status(), 429);
    assert.match(await p.locator('main').innerText(), /Too many failed logins/);
    // Another user from the same address still gets in: the user's limit is the user's.
    await login(p, gw.base, 'other', 'other password 12');
    assert.equal(new URL(p.url()).pathname, DC);
    await ctx.close();

    // Per address: many names, all wrong, from one address; then even a good login waits.
    const c2 = await browser.newContext({ ignoreHTTPSErrors: true });
    const q = await c2.newPage();
    for (let i = 0; i < 20; i++) {
      await q.goto(`${gw.base}/login`);
      const token = await csrfOf(q);
      const r = await c2.request.post(`${gw.base}/login`, { form: { _csrf: token, user: `nobody${i}`, password: 'wrong password' }, maxRedirects: 0 });
      assert.ok(r.status() === 401 || r.status() === 429, `login attempt ${i}: ${r.status()}`);
    }
    // The same client (address) with a right password: refused for now.
    await q.goto(`${gw.base}/login`);
    const last = await c2.request.post(`${gw.base}/login`, { form: { _csrf: await csrfOf(q), user: 'idle', password: 'idle password 12' }, maxRedirects: 0 });
    assert.equal(last.status(), 429);
    assert.match(await last.text(), /Too many failed logins/);
    await c2.close();
  });
});
