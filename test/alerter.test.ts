/**
 * The alert decisions without a network: which class goes to whom, the interval, and the
 * delivery class for a domain whose oldest message has waited past the threshold. (The whole
 * path, through Postern's queue to a real Postfix, is test/alerts.test.ts.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { INITIAL_GLOBALS } from '../src/config/store.js';
import { Alerter, type AlerterDeps } from '../src/observe/alerter.js';
import type { MailEvent } from '../src/observe/events.js';
import type { NewMessage } from '../src/queue/store.js';

/** An Alerter whose queued mail and log lines are kept, on a clock the test moves. */
function watched(config: AlerterDeps['config'], extra: Partial<AlerterDeps> = {}) {
  const sent: NewMessage[] = [];
  const log: MailEvent[] = [];
  const clock = { now: Date.UTC(2026, 11, 1, 12) };
  const alerter = new Alerter({ accept: async (m) => (sent.push(m), sent.length), log: { write: (e) => log.push(e) }, config, hostname: 'gw.example.org', now: () => clock.now, ...extra });
  return { alerter, sent, log, clock };
}

test('class delivery: a domain waiting past the threshold, once per interval, to the recipients of that class', async () => {
  const { alerter, sent, log, clock } = watched(() => ({
    globals: { ...INITIAL_GLOBALS, alertWaitMinutes: 30, alertIntervalSeconds: 600, alertQueueRecipients: 1000 },
    recipients: [
      { address: 'ops@example.org', classes: ['delivery'], severities: ['warning'] },
      { address: 'tls@example.org', classes: ['tls'], severities: ['warning'] },
    ],
  }));
  const now = clock.now;
  const waiting = { domain: 'slow.example', oldest: now - 45 * 60_000, recipients: 3, reply: '4.4.1 connection refused' };
  let asked = 0;
  alerter.check((before) => {
    asked = before;
    return { pending: 3, waiting: [waiting] };
  });
  assert.equal(asked, now - 30 * 60_000, 'the threshold is asked for as a time');
  await new Promise((r) => setImmediate(r));
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0]!.recipients.map((r) => r.address), ['ops@example.org']);
  const text = sent[0]!.body.toString('utf8');
  assert.match(text, /^Subject: \[Postern warning\] Mail for slow\.example is waiting\r$/m);
  assert.match(text, /^Mail for slow\.example has been waiting for 45 minutes: 3 recipients tried and not yet delivered/m);
  assert.match(text, /^Last reply: 4\.4\.1 connection refused\r$/m);
  assert.equal(sent[0]!.isBounce, true, 'an alert is never bounced');
  // Within the interval: held back and logged; after it: sent again.
  clock.now += 5 * 60_000;
  alerter.check(() => ({ pending: 3, waiting: [waiting] }));
  await new Promise((r) => setImmediate(r));
  assert.equal(sent.length, 1);
  assert.ok(log.some((e) => e.event === 'alert-suppressed' && e.alertClass === 'delivery' && /at most one every 600 s/.test(e.reason)));
  clock.now += 6 * 60_000;
  alerter.check(() => ({ pending: 3, waiting: [waiting] }));
  await new Promise((r) => setImmediate(r));
  assert.equal(sent.length, 2);
  // Below the queue threshold: no queue alert, and nobody wants one anyway.
  assert.ok(!log.some((e) => e.event === 'alert-sent' && e.alertClass === 'queue'));
});

test('class tls: the entry\'s --tls-alert on/off overrides the global switch; left out, the switch decides', async () => {
  const cases: { global: boolean; override: boolean | undefined; alert: boolean }[] = [
    { global: true, override: undefined, alert: true },
    { global: false, override: undefined, alert: false },
    { global: true, override: false, alert: false },
    { global: false, override: true, alert: true },
    { global: true, override: true, alert: true },
    { global: false, override: false, alert: false },
  ];
  for (const [i, c] of cases.entries()) {
    const asked: string[] = [];
    const { alerter, sent, log } = watched(() => ({ globals: { ...INITIAL_GLOBALS, requiredTlsAlert: c.global }, recipients: [{ address: 'tls@example.org', classes: ['tls'], severities: ['warning'] }] }), {
      tlsAlertOverride: (domain) => (asked.push(domain), c.override),
    });
    const dcid = 100 + i;
    alerter.write({ event: 'connection', dcid, interface: 'Management', address: '192.0.2.7', port: 25, host: 'mx.bank.example', domain: 'bank.example', tls: 'required-verify' });
    alerter.write({ event: 'tls-failed', dcid, domain: 'bank.example', reason: 'certificate not verified: name mismatch', outcome: 'refused' });
    // Under Preferred a failure is never a required-TLS alert, whatever the entry says.
    alerter.write({ event: 'connection', dcid: dcid + 50, interface: 'Management', address: '192.0.2.8', port: 25, host: 'mx.shop.example', domain: 'shop.example', tls: 'preferred' });
    alerter.write({ event: 'tls-failed', dcid: dcid + 50, domain: 'shop.example', reason: 'handshake failed', outcome: 'clear-text' });
    await new Promise((r) => setImmediate(r));
    const what = `switch ${c.global ? 'on' : 'off'}, entry ${c.override === undefined ? 'default' : c.override ? 'on' : 'off'}`;
    assert.equal(sent.length, c.alert ? 1 : 0, what);
    assert.deepEqual(asked, ['bank.example'], `${what}: the entry is asked for the Required destination only`);
    if (c.alert) assert.match(sent[0]!.body.toString('utf8'), /^Destination: bank\.example\r$/m, what);
    assert.equal(log.filter((e) => e.event === 'alert-sent').length, c.alert ? 1 : 0, what);
  }
});

test('class cluster: a node that lost Redis alerts the cluster class, once per interval', async () => {
  const { alerter, sent, log, clock } = watched(() => ({
    globals: { ...INITIAL_GLOBALS, alertIntervalSeconds: 600 },
    recipients: [
      { address: 'noc@example.org', classes: ['cluster'], severities: ['critical'] },
      { address: 'tls@example.org', classes: ['tls'], severities: ['critical', 'warning'] },
    ],
  }));
  alerter.clusterLost('Redis at redis://10.0.0.5:6379 unreachable (connect ECONNREFUSED)');
  await new Promise((r) => setImmediate(r));
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0]!.recipients.map((r) => r.address), ['noc@example.org']);
  const text = sent[0]!.body.toString('utf8');
  assert.match(text, /^Subject: \[Postern critical\] This node lost the cluster\r$/m);
  assert.match(text, /^This node cannot reach the cluster's Redis: Redis at redis:\/\/10\.0\.0\.5:6379 unreachable \(connect ECONNREFUSED\)\.\r$/m);
  clock.now += 60_000;
  alerter.clusterLost('Redis at redis://10.0.0.5:6379 unreachable (connect ECONNREFUSED)');
  await new Promise((r) => setImmediate(r));
  assert.equal(sent.length, 1, 'held back within the interval');
  assert.ok(log.some((e) => e.event === 'alert-suppressed' && e.alertClass === 'cluster'));
});
