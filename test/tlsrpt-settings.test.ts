/**
 * The settings of SMTP TLS Reporting (RFC 8460) through every interface, over the one service
 * (manage/tlsrpt-settings.ts). Proves that
 * - the defaults are filled in from the host name (organization; sender
 *   noreply-smtp-tls-reporting@ the host; contact: the sender);
 * - `postern tlsrptconfig setup` stores each setting, `default` puts one back, `show` says each
 *   value in effect and whether it is the default; every bad value exits 2 with a message naming
 *   the setting and the value, and changes nothing; each change is in the audit log;
 * - GET /api/v1/tlsrpt-settings answers the stored and effective values; PUT refuses a bad value
 *   with 400 naming the field, stores a good one (null: the default), and a read-only token
 *   changes nothing;
 * - the form on Monitor > TLS Connections shows the effective values, refuses a bad value
 *   beside its field, saves a good one (the CLI sees it), and refuses a post without the
 *   page's CSRF token.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request, type APIRequestContext, type Browser } from 'playwright-core';
import { INITIAL_GLOBALS } from '../src/config/store.js';
import { effectiveTlsRptSettings } from '../src/manage/tlsrpt-settings.js';
import { within } from './deadline.js';
import { tempDir } from './harness.js';
import { chromiumAvailable, csrfOf, launchBrowser, login, startWithAdmin, type AdminPostern } from './peers/browser.js';
import { runCli, runCliOk } from './process.js';

const inCI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';

// Addresses 127.0.93.1-9 and ports 2656-2659 are this file's own.
const LISTEN = '127.0.93.1:2656';
const ADMIN = '127.0.93.1:2657';
const HOST = 'postern-tlsrpt.test';

interface State {
  hostname?: string;
  settings: { enabled: boolean; organization: string | null; contact: string | null; sender: string | null };
  effective: { enabled: boolean; organization: string; contact: string; sender: string };
}

const DEFAULTS = (host: string): State['effective'] => ({ enabled: true, organization: host, contact: `noreply-smtp-tls-reporting@${host}`, sender: `noreply-smtp-tls-reporting@${host}` });

describe('effectiveTlsRptSettings', () => {
  test('fills in the defaults from the host name; the contact follows the sender', () => {
    assert.deepEqual(effectiveTlsRptSettings(INITIAL_GLOBALS, 'mx.example.org'), DEFAULTS('mx.example.org'));
    assert.deepEqual(effectiveTlsRptSettings({ ...INITIAL_GLOBALS, tlsrptSender: 'tls@example.org' }, 'h'), { enabled: true, organization: 'h', contact: 'tls@example.org', sender: 'tls@example.org' });
    assert.deepEqual(effectiveTlsRptSettings({ ...INITIAL_GLOBALS, tlsrptEnabled: false, tlsrptOrganization: 'Example', tlsrptContact: 'https://example.org/tls' }, 'h'), {
      enabled: false,
      organization: 'Example',
      contact: 'https://example.org/tls',
      sender: 'noreply-smtp-tls-reporting@h',
    });
  });
});

describe('postern tlsrptconfig', () => {
  const dir = tempDir('postern-tlsrpt-cli-');
  const cli = (...args: string[]) => runCliOk([...args, '--data-dir', dir]);
  const show = async () => JSON.parse(await cli('tlsrptconfig', 'show', '--json', '--hostname', 'cli.test')) as State;

  test('show: the defaults, each said to be the default', async () => {
    const s = await show();
    assert.deepEqual(s.settings, { enabled: true, organization: null, contact: null, sender: null });
    assert.deepEqual(s.effective, DEFAULTS('cli.test'));
    const text = await cli('tlsrptconfig', 'show', '--hostname', 'cli.test');
    assert.match(text, /^TLS reporting \(RFC 8460\): daily reports are sent \(default\)\.$/m);
    assert.match(text, /^Organization: cli\.test \(default: this host's name\)$/m);
    assert.match(text, /^Contact: noreply-smtp-tls-reporting@cli\.test \(default: the report sender\)$/m);
    assert.match(text, /^Sender: noreply-smtp-tls-reporting@cli\.test \(default: /m);
  });

  test('setup stores every setting, show says so, default puts one back; each change audited', async () => {
    assert.match(await cli('tlsrptconfig', 'setup', '--enabled', 'no', '--organization', 'Example Mail Ops', '--contact', 'https://example.net/tls-contact', '--sender', 'tlsrpt@example.net'), /Saved the TLS reporting settings/);
    let s = await show();
    assert.deepEqual(s.settings, { enabled: false, organization: 'Example Mail Ops', contact: 'https://example.net/tls-contact', sender: 'tlsrpt@example.net' });
    assert.deepEqual(s.effective, { enabled: false, organization: 'Example Mail Ops', contact: 'https://example.net/tls-contact', sender: 'tlsrpt@example.net' });
    const text = await cli('tlsrptconfig', 'show', '--hostname', 'cli.test');
    assert.match(text, /daily reports are not sent \(set;/);
    assert.match(text, /^Organization: Example Mail Ops \(set\)$/m);
    assert.match(text, /^Sender: tlsrpt@example\.net \(set\)$/m);

    await cli('tlsrptconfig', 'setup', '--contact', 'DEFAULT', '--enabled', 'ON');
    s = await show();
    assert.equal(s.settings.contact, null);
    assert.equal(s.effective.contact, 'tlsrpt@example.net', 'the default contact is the report sender');
    assert.equal(s.effective.enabled, true);
    assert.match(await cli('tlsrptconfig', 'show', '--hostname', 'cli.test'), /^Contact: tlsrpt@example\.net \(default: the report sender\)$/m);

    const audit = (await readFile(join(dir, 'logs', 'audit.log'), 'utf8')).split('\n').filter((l) => l.includes('action=tlsrpt.setup'));
    assert.equal(audit.length, 2);
    assert.match(audit[0]!, /actor=cli:\S+ client=cli action=tlsrpt\.setup target="TLS reporting" changed=\{"tlsrptEnabled":\{"from":true,"to":false\},"tlsrptOrganization":\{"from":null,"to":"Example Mail Ops"\},/);
    assert.match(audit[1]!, /changed=\{"tlsrptEnabled":\{"from":false,"to":true\},"tlsrptContact":\{"from":"https:\/\/example\.net\/tls-contact","to":null\}\}/);
  });

  test('every bad value: exit 2, a message naming the setting and the value, nothing changed', async () => {
    const before = await show();
    const bad: [string[], RegExp][] = [
      [['--enabled', 'maybe'], /^postern: invalid TLS reporting \(enabled\) "maybe": allowed yes, no/m],
      [['--enabled', ''], /^postern: invalid TLS reporting \(enabled\) "": allowed yes, no/m],
      [['--organization', 'x'.repeat(201)], /^postern: invalid TLS report organization "x{201}": allowed an organization name: 1 to 200 printable characters/m],
      [['--organization', '   '], /^postern: invalid TLS report organization " {3}": allowed/m],
      [['--organization', 'Evil\nOrg'], /^postern: invalid TLS report organization "Evil\\nOrg": allowed/m],
      [['--contact', 'mailto:a@b.test\u0007'], /^postern: invalid TLS report contact "mailto:a@b\.test\\u0007": allowed an email address or a URL: 1 to 200 printable characters \(no control characters\), or default/m],
      [['--contact', 'y'.repeat(201)], /^postern: invalid TLS report contact "y{201}"/m],
      [['--sender', 'not-an-address'], /^postern: invalid TLS report sender "not-an-address": allowed an email address \(local@domain\), or default/m],
      [['--sender', 'a@b@c.test'], /^postern: invalid TLS report sender "a@b@c\.test"/m],
      // One bad value among good ones: nothing stored.
      [['--organization', 'Fine Org', '--sender', 'none'], /^postern: invalid TLS report sender "none"/m],
    ];
    for (const [args, re] of bad) {
      const r = await runCli(['tlsrptconfig', 'setup', ...args, '--data-dir', dir]);
      assert.equal(r.code, 2, `${args.join(' ')}\n${r.stdout}${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
      assert.doesNotMatch(r.stdout, /Saved/, args.join(' '));
    }
    assert.deepEqual(await show(), before);
    const audit = (await readFile(join(dir, 'logs', 'audit.log'), 'utf8')).split('\n').filter((l) => l.includes('action=tlsrpt.setup'));
    assert.equal(audit.length, 2, 'a refused change is not audited');
  });

  test('show is a reader: a mistyped --data-dir is an error, not a new directory', async () => {
    const r = await runCli(['tlsrptconfig', 'show', '--data-dir', join(dir, 'no-such-dir')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /does not exist/);
  });
});

describe('TLS reporting settings over the API and on the page', { timeout: within(180_000) }, () => {
  const dataDir = join(tempDir('postern-tlsrpt-web-'), 'data');
  let gw: AdminPostern | undefined;
  let api: APIRequestContext;
  let readOnly: APIRequestContext;
  let browser: Browser | undefined;
  const cli = (...args: string[]) => runCliOk([...args, '--data-dir', dataDir]);
  const cliShow = async () => JSON.parse(await cli('tlsrptconfig', 'show', '--json')) as State;
  const token = async (name: string, role: string) => /^(pst_\S+)$/m.exec(await cli('apitoken', 'create', name, '--role', role))![1]!;
  const client = (t: string) => request.newContext({ baseURL: gw!.base, ignoreHTTPSErrors: true, extraHTTPHeaders: { authorization: `Bearer ${t}` } });
  const auditLines = async () => (await readFile(join(dataDir, 'logs', 'audit.log'), 'utf8')).split('\n').filter((l) => l.includes('action=tlsrpt.setup'));

  before(async () => {
    gw = await startWithAdmin({ dataDir, listen: LISTEN, admin: ADMIN, hostname: HOST });
    api = await client(await token('deploy', 'administrator'));
    readOnly = await client(await token('monitor', 'read-only'));
  });

  after(async () => {
    await browser?.close();
    await Promise.allSettled([api?.dispose(), readOnly?.dispose()]);
    const status = await gw?.proc.stop();
    if (status) assert.deepEqual(status, { code: 0, signal: null }, gw?.proc.output());
  });

  test('GET: the defaults, made of the gateway host name; the CLI says the same', async () => {
    const r = await api.get('/api/v1/tlsrpt-settings');
    assert.equal(r.status(), 200);
    const s = (await r.json()) as State;
    assert.deepEqual(s, { settings: { enabled: true, organization: null, contact: null, sender: null }, effective: DEFAULTS(HOST) });
    // The CLI takes the host name the gateway started with.
    assert.deepEqual((await cliShow()).effective, DEFAULTS(HOST));
  });

  test('PUT: a bad value is refused with 400 naming the field; a good one is stored; null resets; read-only refused', async () => {
    const refused: [Record<string, unknown>, string, RegExp][] = [
      [{ sender: 'not-an-address' }, 'sender', /^invalid TLS report sender "not-an-address": allowed an email address/],
      [{ contact: 'mailto:x@y.test\u0001' }, 'contact', /^invalid TLS report contact "mailto:x@y\.test\\u0001": allowed/],
      [{ organization: 'o'.repeat(201) }, 'organization', /^invalid TLS report organization "o{201}"/],
      [{ organization: 'Good Org', sender: 'bad' }, 'sender', /^invalid TLS report sender "bad"/],
      [{ enabled: 'maybe' }, 'enabled', /enabled/],
      [{ colour: 'blue' }, 'colour', /colour/],
    ];
    for (const [body, field, re] of refused) {
      const r = await api.put('/api/v1/tlsrpt-settings', { data: body });
      assert.equal(r.status(), 400, JSON.stringify(body));
      const e = (await r.json()) as { field?: string; message: string };
      assert.equal(e.field, field, JSON.stringify(body));
      assert.match(e.message, re, JSON.stringify(body));
    }
    assert.deepEqual((await cliShow()).settings, { enabled: true, organization: null, contact: null, sender: null }, 'nothing stored by a refused request');
    assert.equal((await auditLines()).length, 0);

    const ro = await readOnly.put('/api/v1/tlsrpt-settings', { data: { enabled: false } });
    assert.equal(ro.status(), 403);
    assert.equal((await cliShow()).settings.enabled, true);

    const ok = await api.put('/api/v1/tlsrpt-settings', { data: { enabled: false, organization: 'API Org', sender: 'reports@api.test' } });
    assert.equal(ok.status(), 200, await ok.text());
    const s = (await ok.json()) as State;
    assert.deepEqual(s.settings, { enabled: false, organization: 'API Org', contact: null, sender: 'reports@api.test' });
    assert.deepEqual(s.effective, { enabled: false, organization: 'API Org', contact: 'reports@api.test', sender: 'reports@api.test' });
    assert.deepEqual((await cliShow()).settings, s.settings, 'the CLI reads what the API stored');
    const [line] = await auditLines();
    assert.match(line!, /actor=token:deploy client=\S+ action=tlsrpt\.setup target="TLS reporting" changed=\{"tlsrptEnabled":\{"from":true,"to":false\},"tlsrptOrganization":\{"from":null,"to":"API Org"\},"tlsrptSender":\{"from":null,"to":"reports@api\.test"\}\}/);

    const reset = await api.put('/api/v1/tlsrpt-settings', { data: { enabled: true, organization: null } });
    assert.equal(reset.status(), 200);
    assert.deepEqual(((await reset.json()) as State).settings, { enabled: true, organization: null, contact: null, sender: 'reports@api.test' });
    assert.deepEqual(((await (await api.get('/api/v1/tlsrpt-settings')).json()) as State).effective.organization, HOST);
  });

  test('the form on Monitor > TLS Connections: effective values shown, a bad value beside its field, a good one saved; CSRF required', { skip: !chromiumAvailable() && !inCI ? 'chromium not installed' : false }, async () => {
    assert.ok(gw);
    const added = await runCli(['adminuser', 'add', 'web', '--role', 'administrator', '--password-stdin', '--data-dir', dataDir], { input: 'web admin password 1\n' });
    assert.equal(added.code, 0, added.stderr);
    browser = await launchBrowser();
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await login(page, gw.base, 'web', 'web admin password 1');
    await page.goto(`${gw.base}/monitor/tls`);
    const section = page.locator('section', { has: page.getByRole('heading', { name: 'TLS reporting (RFC 8460)' }) });
    assert.equal(await section.count(), 1);
    const effective = await section.locator('#tlsrpt-effective').innerText();
    assert.match(effective, new RegExp(`Organization\\s+${HOST.replace(/\./g, '\\.')} \\(default: this host's name\\)`));
    assert.match(effective, /Sender\s+reports@api\.test$/);
    assert.match(effective, /Contact\s+reports@api\.test \(default: the report sender\)/);
    assert.equal(await page.locator('#tlsrpt-sender').inputValue(), 'reports@api.test');
    assert.equal(await page.locator('#tlsrpt-organization').inputValue(), '', 'a default is an empty field');

    // A bad sender: refused beside its field, the values kept, nothing saved.
    await page.getByLabel('Organization name').fill('Web Org');
    await page.getByLabel('Sender address').fill('no address here');
    const refused = page.waitForResponse((r) => r.url().endsWith('/monitor/tls/tlsrpt-settings'));
    await page.getByRole('button', { name: 'Save TLS Reporting Settings' }).click();
    assert.equal((await refused).status(), 400);
    assert.equal(await page.locator('#tlsrpt-sender').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.locator('#tlsrpt-sender-error').innerText(), 'invalid TLS report sender "no address here": allowed an email address (local@domain), or default');
    assert.equal(await page.locator('#tlsrpt-organization').inputValue(), 'Web Org');
    assert.equal((await cliShow()).settings.organization, null);

    // Good values: saved, shown, and the CLI sees them.
    await page.getByLabel('Sender address').fill('');
    await page.getByLabel('Contact (address or URL)').fill('mailto:tls-ops@web.test');
    await page.getByLabel('Send daily reports').selectOption('no');
    await page.getByRole('button', { name: 'Save TLS Reporting Settings' }).click();
    await page.waitForURL(/\/monitor\/tls(#.*)?$/);
    assert.match(await page.getByRole('status').innerText(), /Saved the TLS reporting settings\./);
    const shown = await page.locator('#tlsrpt-effective').innerText();
    assert.match(shown, /Daily reports\s+not sent/);
    assert.match(shown, /Organization\s+Web Org\n/);
    assert.match(shown, /Contact\s+mailto:tls-ops@web\.test\n/);
    assert.match(shown, new RegExp(`Sender\\s+noreply-smtp-tls-reporting@${HOST.replace(/\./g, '\\.')} \\(default\\)`));
    assert.equal(await page.locator('#tlsrpt-enabled').inputValue(), 'no');
    const s = await cliShow();
    assert.deepEqual(s.settings, { enabled: false, organization: 'Web Org', contact: 'mailto:tls-ops@web.test', sender: null });
    assert.match((await auditLines()).at(-1)!, /actor=web client=\S+ action=tlsrpt\.setup target="TLS reporting"/);

    // Without the page's CSRF token: refused, nothing changed; with it: accepted.
    const forged = await context.request.post(`${gw.base}/monitor/tls/tlsrpt-settings`, { form: { _csrf: 'not-the-token', enabled: 'yes', organization: 'Forged', contact: '', sender: '' }, maxRedirects: 0 });
    assert.equal(forged.status(), 403);
    assert.deepEqual((await cliShow()).settings, s.settings);
    const real = await context.request.post(`${gw.base}/monitor/tls/tlsrpt-settings`, { form: { _csrf: await csrfOf(page), enabled: 'yes', organization: 'Web Org', contact: 'mailto:tls-ops@web.test', sender: '' }, maxRedirects: 0 });
    assert.equal(real.status(), 302);
    assert.equal((await cliShow()).settings.enabled, true);
    await context.close();
  });
});
