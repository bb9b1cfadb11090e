/**
 * The alert decisions without a network: which class goes to whom, the interval, and the
 * delivery class for a domain whose oldest message has waited past the threshold. (The whole
 * path, through Postern's queue to a real Postfix, is test/alerts.test.ts.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { INITIAL_GLOBALS } from '../src/config/store.js';
import { Alerter } from '../src/observe/alerter.js';
import type { MailEvent } from '../src/observe/events.js';
import type { NewMessage } from '../src/queue/store.js';

test('class delivery: a domain waiting past the threshold, once per interval, to the recipients of that class', async () => {
  let now = Date.UTC(2026, 11, 1, 12);
  const sent: NewMessage[] = [];
  const log: MailEvent[] = [];
  const alerter = new Alerter({
    accept: async (m) => (sent.push(m), sent.length),
    log: { write: (e) => log.push(e) },
    config: () => ({
      globals: { ...INITIAL_GLOBALS, alertWaitMinutes: 30, alertIntervalSeconds: 600, alertQueueRecipients: 1000 },
      recipients: [
        { address: 'ops@example.org', classes: ['delivery'], severities: ['warning'] },
        { address: 'tls@example.org', classes: ['tls'], severities: ['warning'] },
      ],
    }),
    hostname: 'gw.example.org',
    now: () => now,
  });
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
  now += 5 * 60_000;
  alerter.check(() => ({ pending: 3, waiting: [waiting] }));
  await new Promise((r) => setImmediate(r));
  assert.equal(sent.length, 1);
  assert.ok(log.some((e) => e.event === 'alert-suppressed' && e.alertClass === 'delivery' && /at most one every 600 s/.test(e.reason)));
  now += 6 * 60_000;
  alerter.check(() => ({ pending: 3, waiting: [waiting] }));
  await new Promise((r) => setImmediate(r));
  assert.equal(sent.length, 2);
  // Below the queue threshold: no queue alert, and nobody wants one anyway.
  assert.ok(!log.some((e) => e.event === 'alert-sent' && e.alertClass === 'queue'));
});
