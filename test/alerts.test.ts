/**
 * Alerts, end to end with the real `postern start` and a real Postfix: a destination whose TLS
 * is Required has an MX (Postfix) without STARTTLS; with `destconfig setup --required-tls-alert
 * on` and an alert recipient of class tls, exactly one alert mail — sent through Postern itself
 * — lands in Postfix's Maildir, naming the domain, the MX host and address, the reason and the
 * DCID; the second failure within the interval sends none, and the mail log says so. Plus the
 * `alertconfig` commands and their refusals.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { sendMail, tempDir, waitForAsync as waitFor } from './harness.js';
import { startDnsServer, type DnsServer } from './peers/dns-server.js';
import { postfixAvailable, startPostfix, type PostfixInstance } from './peers/postfix.js';
import { logFile, runCli, runCliOk, type PosternProcess } from './process.js';
import { startWithAdmin } from './peers/browser.js';
import { request } from 'playwright-core';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';

const inCI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';
// Addresses 127.0.82.x and ports 2693-2694 are this file's own.
const MX = { name: 'mx.req.test', address: '127.0.82.1', port: 2693 };
const LISTEN = '127.0.82.10:2694';
const ADMIN = '127.0.82.10:2695';

describe('alerts', { skip: !postfixAvailable() && !inCI ? 'Postfix not installed' : false }, () => {
  let dns: DnsServer;
  let mx: PostfixInstance;
  let dir = '';
  let postern: PosternProcess | undefined;
  let adminBase = '';
  const cli = (...args: string[]) => runCliOk([...args, '--data-dir', dir]);
  const mailLog = () => readFile(logFile(dir, 'mail.log'), 'utf8').catch(() => '');
  const alertsIn = async () => (await mx.readDelivered()).filter((m) => /^To: <admin@alerts\.test>/m.test(m.raw));

  before(async () => {
    mx = await startPostfix({ address: MX.address, port: MX.port, hostname: MX.name, tls: 'none', delivery: 'maildir' });
    dns = await startDnsServer({
      zone: {
        'req.test': { MX: [{ preference: 10, exchange: MX.name }] },
        'alerts.test': { MX: [{ preference: 10, exchange: MX.name }] },
        'quiet.test': { MX: [{ preference: 10, exchange: MX.name }] },
        'loud.test': { MX: [{ preference: 10, exchange: MX.name }] },
        [MX.name]: { A: [MX.address] },
      },
    });
    dir = tempDir('postern-alerts-');
    await cli('destconfig', 'new', 'req.test', '--tls', 'required');
    await cli('destconfig', 'setup', '--required-tls-alert', 'on');
    await cli('alertconfig', 'new', 'admin@alerts.test', '--classes', 'tls', '--severities', 'critical,warning');
    await cli('alertconfig', 'new', 'queue-only@alerts.test', '--classes', 'queue');
    await cli('alertconfig', 'setup', '--from', 'postern@alerts.test', '--interval', '3600');
    const gw = await startWithAdmin({ dataDir: dir, listen: LISTEN, admin: ADMIN, dnsServer: dns.address, smtpPort: MX.port, hostname: 'postern-alerts.test', config: { alertCheckSeconds: 1, timeouts: { connect: 3, greeting: 10, ehlo: 10, starttls: 10, quit: 3 } } });
    postern = gw.proc;
    adminBase = gw.base;
  });

  after(async () => {
    await postern?.stop();
    await Promise.allSettled([mx?.stop(), dns?.close()]);
  });

  test('a Required destination without STARTTLS: one alert mail through Postern, none for the second failure', async () => {
    assert.ok(postern);
    const first = await sendMail(postern.port, 'sender@client.test', ['a@req.test'], 'Subject: one\r\n\r\nhello\r\n', postern.host);
    assert.equal(first.code, 250);
    const alerts = await waitFor('the alert in the Maildir', async () => {
      const a = await alertsIn();
      return a.length > 0 ? a : undefined;
    }).catch(async (e: Error) => {
      throw new Error(`${e.message}\n--- mail.log ---\n${await mailLog()}\n--- postfix ---\n${await mx.log()}`);
    });
    const raw = alerts[0]!.raw;
    assert.match(raw, /^Subject: \[Postern warning\] Required TLS failed for req\.test$/m);
    assert.match(raw, /^From: Postern <postern@alerts\.test>$/m);
    assert.match(raw, /^Destination: req\.test$/m);
    assert.match(raw, /^Host: mx\.req\.test$/m);
    assert.match(raw, /^Address: 127\.0\.82\.1$/m);
    assert.match(raw, /^DCID: \d+$/m);
    assert.match(raw, /^Reason: STARTTLS not offered by the server$/m);
    // Not for the recipient of another class; never the message itself in clear text.
    assert.ok((await mx.readDelivered()).every((m) => !/queue-only@alerts\.test/.test(m.raw.split(/\r?\n\r?\n/)[0] ?? '')));
    assert.ok((await mx.readDelivered()).every((m) => !/^Subject: one$/m.test(m.raw)));
    const log = await mailLog();
    assert.match(log, /Alert sent MID \d+ to <admin@alerts\.test> \(tls, warning, req\.test\): required TLS failed for req\.test: mx\.req\.test \[127\.0\.82\.1\] DCID \d+: STARTTLS not offered/);

    const second = await sendMail(postern.port, 'sender@client.test', ['b@req.test'], 'Subject: two\r\n\r\nhello\r\n', postern.host);
    assert.equal(second.code, 250);
    await waitFor('the second failure held back in the mail log', async () => (/Alert not sent \(tls, warning, req\.test\): the same alert was sent \d+ s ago \(at most one every 3600 s\)/.test(await mailLog()) ? true : undefined));
    // Let anything queued go out before counting.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await alertsIn()).length, 1, 'exactly one alert within the interval');
  });

  test('alertconfig: list, edit, delete and refusals', async () => {
    const list = JSON.parse(await cli('alertconfig', 'list', '--json')) as { from: string; intervalSeconds: number; recipients: { address: string; classes: string[]; severities: string[] }[] };
    assert.equal(list.from, 'postern@alerts.test');
    assert.equal(list.intervalSeconds, 3600);
    assert.deepEqual(list.recipients.map((r) => [r.address, r.classes, r.severities]), [
      ['admin@alerts.test', ['tls'], ['critical', 'warning']],
      ['queue-only@alerts.test', ['queue'], ['critical', 'warning', 'info']],
    ]);
    await cli('alertconfig', 'edit', 'queue-only@alerts.test', '--classes', 'all');
    assert.match(await cli('alertconfig', 'list'), /^queue-only@alerts\.test\s+tls,delivery,queue,cluster\s+critical,warning,info$/m);
    await cli('alertconfig', 'delete', 'queue-only@alerts.test');
    assert.doesNotMatch(await cli('alertconfig', 'list'), /queue-only/);
    const bad: [string[], RegExp][] = [
      [['alertconfig', 'new', 'not-an-address'], /invalid alert address "not-an-address"/],
      [['alertconfig', 'new', 'x@alerts.test', '--classes', 'tls,spam'], /invalid alert classes "tls,spam": allowed a comma-separated list of tls, delivery, queue, cluster, or all/],
      [['alertconfig', 'new', 'x@alerts.test', '--severities', 'loud'], /invalid alert severities "loud"/],
      [['alertconfig', 'new', 'admin@alerts.test'], /already receives alerts/],
      [['alertconfig', 'delete', 'nobody@alerts.test'], /receives no alerts/],
      [['alertconfig', 'setup', '--interval', '5'], /invalid alert interval seconds "5": allowed an integer from 60 to 604,800/],
    ];
    for (const [args, re] of bad) {
      const r = await runCli([...args, '--data-dir', dir]);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, re, args.join(' '));
    }
    const audit = await readFile(`${dir}/logs/audit.log`, 'utf8');
    assert.match(audit, /action=alert\.new target="admin@alerts\.test" changed=\{"classes":\["tls"\],"severities":\["critical","warning"\]\}/);
  });

  test('/metrics: Prometheus text that a parser reads, counters that match the queue and the log, a token required', async () => {
    const anonymous = await request.newContext({ baseURL: adminBase, ignoreHTTPSErrors: true });
    assert.equal((await anonymous.get('/metrics')).status(), 401);
    await anonymous.dispose();
    const token = /^(pst_\S+)$/m.exec(await cli('apitoken', 'create', 'prometheus', '--role', 'read-only'))![1]!;
    const api = await request.newContext({ baseURL: adminBase, ignoreHTTPSErrors: true, extraHTTPHeaders: { authorization: `Bearer ${token}` } });
    try {
      const r = await api.get('/metrics');
      assert.equal(r.status(), 200);
      assert.match(r.headers()['content-type'] ?? '', /^text\/plain; version=0\.0\.4/);
      const families = parsePrometheusTextFormat(await r.text());
      const value = (name: string, labels: Record<string, string> = {}): number => {
        const f = families.find((x) => x.name === name);
        assert.ok(f, `${name} is missing`);
        const m = f.metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
        // (the parser gives a labelled histogram's buckets only: its count is the +Inf bucket)
        return m ? Number(m.value ?? m.count ?? m.buckets?.['+Inf']) : 0;
      };
      const rows = JSON.parse(await cli('queue', 'list', '--json')) as { state: string }[];
      assert.equal(value('postern_queue_recipients', { state: 'deferred' }) + value('postern_queue_recipients', { state: 'queued' }), rows.length);
      assert.equal(value('postern_queue_recipients', { state: 'deferred' }), rows.filter((x) => x.state === 'deferred').length);
      assert.equal(value('postern_messages_accepted_total'), 2);
      assert.equal(value('postern_alerts_total', { class: 'tls', result: 'sent' }), 1);
      assert.ok(value('postern_alerts_total', { class: 'tls', result: 'held back' }) >= 1);
      const log = await mailLog();
      const failedTls = (log.match(/TLS failed .*for req\.test/g) ?? []).length;
      assert.equal(value('postern_tls_total', { setting: 'required', outcome: 'failed' }), failedTls);
      assert.equal(value('postern_messages_done_total', { tls: 'no' }), (log.match(/Message done /g) ?? []).length);
      assert.ok(value('postern_accept_seconds') >= 2, 'the accept histogram counted both messages');
      assert.ok(value('postern_dns_lookup_seconds') >= 1, 'DNS look-ups timed');
      assert.match(await r.text(), /^postern_dns_lookup_seconds_count\{type="mx"\} [1-9]/m);
      // No label that grows without bound: no domain, host or address labels anywhere.
      for (const f of families) for (const m of f.metrics) assert.deepEqual(Object.keys(m.labels ?? {}).filter((k) => /domain|host|address/.test(k)), [], f.name);
    } finally {
      await api.dispose();
    }
  });

  test('class queue: more recipients waiting than the threshold sends one alert to the queue class', async () => {
    await cli('alertconfig', 'new', 'ops@alerts.test', '--classes', 'queue,delivery');
    await cli('alertconfig', 'setup', '--queue-recipients', '1');
    const alert = await waitFor('the queue alert in the Maildir', async () => {
      const m = (await mx.readDelivered()).find((x) => /^To: <ops@alerts\.test>/m.test(x.raw));
      return m;
    }).catch(async (e: Error) => {
      throw new Error(`${e.message}\n--- mail.log ---\n${await mailLog()}`);
    });
    assert.match(alert.raw, /^Subject: \[Postern warning\] Many recipients wait in the queue$/m);
    assert.match(alert.raw, /^2 recipients are waiting in the queue; the alert threshold is 1 /m);
    assert.match(await mailLog(), /Alert sent MID \d+ to <ops@alerts\.test> \(queue, warning, the queue\)/);
    const bad = await runCli(['alertconfig', 'setup', '--wait-minutes', '0', '--data-dir', dir]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /invalid delivery alert threshold \(minutes\) "0": allowed an integer from 1 to 43,200/);
  });

  test('per destination: --tls-alert off silences a Required destination under the global switch; --tls-alert on alerts with the switch off', async () => {
    assert.ok(postern);
    // The entry count tells which change a reload has seen (each CLI command may reload alone).
    const reloaded = async (entries: number) =>
      waitFor(`the gateway to reload with ${entries} entries`, async () => (new RegExp(`Configuration reloaded: ${entries} entries`).test(await mailLog()) ? true : undefined));
    const tlsAlerts = async (domain: string) => (await alertsIn()).filter((m) => new RegExp(`^Subject: \\[Postern warning\\] Required TLS failed for ${domain.replace('.', '\\.')}$`, 'm').test(m.raw));

    // The switch is on (set in before()); quiet.test says off.
    await cli('destconfig', 'new', 'quiet.test', '--tls', 'required', '--tls-alert', 'off');
    await reloaded(2);
    assert.equal((await sendMail(postern.port, 'sender@client.test', ['a@quiet.test'], 'Subject: quiet\r\n\r\nhello\r\n', postern.host)).code, 250);
    await waitFor('the quiet.test failure in the mail log', async () => (/TLS failed: STARTTLS not offered by the server for quiet\.test/.test(await mailLog()) ? true : undefined));

    // The switch off; loud.test says on.
    await cli('destconfig', 'setup', '--required-tls-alert', 'off');
    await cli('destconfig', 'new', 'loud.test', '--tls', 'required', '--tls-alert', 'on');
    await reloaded(3);
    assert.equal((await sendMail(postern.port, 'sender@client.test', ['a@loud.test'], 'Subject: loud\r\n\r\nhello\r\n', postern.host)).code, 250);
    const loud = await waitFor('the loud.test alert in the Maildir', async () => {
      const a = await tlsAlerts('loud.test');
      return a.length > 0 ? a : undefined;
    }).catch(async (e: Error) => {
      throw new Error(`${e.message}\n--- mail.log ---\n${await mailLog()}`);
    });
    assert.equal(loud.length, 1);
    assert.match(loud[0]!.raw, /^Destination: loud\.test$/m);
    // Anything queued for quiet.test would have gone out with the loud.test alert by now.
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(await tlsAlerts('quiet.test'), [], 'no alert for the entry that says off');
    assert.doesNotMatch(await mailLog(), /\(tls, warning, quiet\.test\)/, 'not even held back: the entry turned it off');
    // explain says what decides, for both.
    assert.match(await cli('destconfig', 'explain', 'quiet.test', '--dns-server', dns.address), /Alert when a connection fails its required TLS: Off \[from the entry quiet\.test \(--tls-alert\)\]/);
    assert.match(await cli('destconfig', 'explain', 'req.test', '--dns-server', dns.address), /Alert when a connection fails its required TLS: Off \[from the global switch/);
    assert.match(await cli('destconfig', 'detail', 'loud.test'), /^Alert When Required TLS Fails: On$/m);
  });
});
