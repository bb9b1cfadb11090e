/**
 * The connection cache's bound: above `idleKeptBelow` open connections, a connection with nothing
 * to send QUITs at once instead of waiting for its destination's next message; at or below it,
 * it is kept for reuse as usual. Observed at real receiving servers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Zone } from './peers/dns-server.js';
import { startSmtpPeer, type SmtpPeer } from './peers/smtp-peer.js';
import { sendMail, startTestGateway, type TestGateway } from './harness.js';

const PORT = 2662;
const A = (n: number) => `127.0.98.${n}`;
const zone: Zone = {
  'x.test': { MX: [{ preference: 10, exchange: 'mx.x.test' }] },
  'mx.x.test': { A: [A(1)] },
  'y.test': { MX: [{ preference: 10, exchange: 'mx.y.test' }] },
  'mx.y.test': { A: [A(2)] },
};

async function send(t: TestGateway, to: string): Promise<void> {
  const r = await sendMail(t.gw.address!.port, 's@client.test', [to], 'Subject: t\r\n\r\nbody\r\n');
  assert.equal(r.code, 250);
}

const mails = (p: SmtpPeer, i: number) => p.sessions[i]!.commands.filter((c) => c.startsWith('MAIL FROM')).length;

describe('connections kept for reuse, within a bound', () => {
  let x: SmtpPeer;
  let y: SmtpPeer;

  before(async () => {
    // The end of DATA is answered after a delay: y's delivery ends well after x's.
    const slow = (ms: number) => ({ act: (step: string) => (step === 'dot' ? { reply: '250 2.0.0 Ok', delayMs: ms } : undefined) });
    x = await startSmtpPeer({ host: A(1), port: PORT, hostname: 'mx.x.test', ...slow(200) });
    y = await startSmtpPeer({ host: A(2), port: PORT, hostname: 'mx.y.test', ...slow(1200) });
  });

  after(async () => {
    await x.close();
    await y.close();
  });

  it('with none allowed, each finished connection QUITs at once and the next message opens another', async () => {
    const t = await startTestGateway({ zone, smtpPort: PORT, tweak: (o) => (o.idleKeptBelow = 0) });
    try {
      const before = x.sessions.length;
      await send(t, 'a@x.test');
      // Ended well before the 2 s a kept connection would wait.
      await x.waitForSessions(before + 1, 1500);
      assert.equal(x.sessions[before]!.commands.at(-1), 'QUIT');
      await send(t, 'b@x.test');
      await x.waitForSessions(before + 2, 1500);
      assert.equal(mails(x, before), 1);
      assert.equal(mails(x, before + 1), 1, 'the second message had a connection of its own');
    } finally {
      await t.close();
    }
  });

  it('above the bound a finished connection QUITs; at or below it, it is kept and reused', async () => {
    const t = await startTestGateway({ zone, smtpPort: PORT, tweak: (o) => (o.idleKeptBelow = 1) });
    try {
      const bx = x.sessions.length;
      const by = y.sessions.length;
      const my = y.messages.length;
      // Two connections at once: x's ends first, with 2 open (> 1): QUIT at once. y's ends when
      // x's has closed, with 1 open: kept.
      await Promise.all([send(t, 'c@x.test'), send(t, 'd@y.test')]);
      await x.waitForSessions(bx + 1, 1500);
      assert.equal(x.sessions[bx]!.commands.at(-1), 'QUIT');
      await y.waitForMessages(my + 1);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(y.sessions[by]!.closedBy, undefined, "y's connection is kept for reuse");
      // It QUITs after its idle time; the count is back to 0, and reuse works as before.
      await y.waitForSessions(by + 1, 10_000);
      const mx = x.messages.length;
      await send(t, 'e@x.test');
      await x.waitForMessages(mx + 1);
      await send(t, 'f@x.test');
      await x.waitForMessages(mx + 2);
      await x.waitForSessions(bx + 2, 10_000);
      assert.equal(x.sessions.length, bx + 2, 'no third connection');
      assert.equal(mails(x, bx + 1), 2, 'the second message went over the kept connection');
    } finally {
      await t.close();
    }
  });
});
