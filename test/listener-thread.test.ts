/**
 * The listener thread (smtp/listener-thread.ts, listener-worker.ts): mail is taken in on a
 * thread of its own with its own queue connection. A thread that dies is started again on the
 * same port, with a condition in the mail log meanwhile, and mail sent after that is delivered;
 * the thread defers on arrival with the engine's suspensions, so a recipient of a suspended
 * destination is already deferred in the queue when its client reads the 250.
 * Real sockets: a refused port on 127.0.99.1:2663, a real SMTP peer on 127.0.99.2:2663.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fateOf, sendMail, startTestGateway, waitFor, type TestGateway } from './harness.js';
import type { Zone } from './peers/dns-server.js';
import { startSmtpPeer, type SmtpPeer } from './peers/smtp-peer.js';

const PORT = 2663;
const A = (n: number) => `127.0.99.${n}`;
const zone: Zone = {
  'down.test': { MX: [{ preference: 10, exchange: 'mx.down.test' }] },
  'mx.down.test': { A: [A(1)] },
  'up.test': { MX: [{ preference: 10, exchange: 'mx.up.test' }] },
  'mx.up.test': { A: [A(2)] },
};

describe('the listener thread', () => {
  let t: TestGateway;
  let up: SmtpPeer;

  before(async () => {
    up = await startSmtpPeer({ host: A(2), port: PORT, hostname: 'mx.up.test' });
    t = await startTestGateway({ zone, smtpPort: PORT });
  });

  after(async () => {
    await t?.close();
    await up?.close();
  });

  async function send(to: string): Promise<void> {
    const r = await sendMail(t.gw.address!.port, 'someone@sender.test', [to], `Subject: to ${to}\r\n\r\nHello.\r\n`);
    assert.equal(r.code, 250, r.text);
  }

  it('a thread that dies is started again on the same port; mail sent then is delivered', async () => {
    const port = t.gw.address!.port;
    await send('before@up.test');
    await waitFor('the first message delivered', () => up.messages.length >= 1);
    await t.gw.listeners!.crashForTest();
    const started = await waitFor('the condition started', () => t.events.find((e) => e.event === 'condition-start' && e.condition === 'SMTP listener'));
    assert.match(started.event === 'condition-start' ? started.detail : '', /listener thread stopped/);
    await waitFor('the condition ended', () => t.events.some((e) => e.event === 'condition-end' && e.condition === 'SMTP listener'), 10_000);
    assert.equal(t.gw.address!.port, port);
    await send('after@up.test');
    await waitFor('the second message delivered', () => up.messages.some((m) => m.to.includes('after@up.test')));
    // Connection ids go on from where the first thread's block ended: none is used twice.
    const icids = t.events.flatMap((e) => (e.event === 'incoming-connection' ? [e.icid] : []));
    assert.equal(new Set(icids).size, icids.length);
  });

  it('a recipient of a suspended destination is stored deferred before the 250', async () => {
    await send('first@down.test');
    await waitFor('the first deferral', () => fateOf(t, 'first@down.test'));
    // The engine's suspension has reached the thread once its destination queue is deferred.
    for (let i = 0; i < 5; i++) {
      const to = `later${i}@down.test`;
      await send(to);
      const row = t.gw.queue.list({ domain: 'down.test' }).find((r) => r.to === to);
      assert.equal(row?.state, 'deferred', `${to}: deferred in the queue when the 250 was read`);
      assert.match(row?.lastReply ?? '', /not tried: no host could be reached/);
    }
  });
});
