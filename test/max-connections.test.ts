/**
 * `maxConnections`: delivery connections open at most over every destination. Six domains,
 * each allowed many connections, share one real SMTP peer that answers the end of DATA slowly:
 * the peer never sees more than the cap at once, the cap is used, and every message arrives
 * (a destination that waited for a connection gets one when another closes).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Zone } from './peers/dns-server.js';
import { startSmtpPeer, type SmtpPeer } from './peers/smtp-peer.js';
import { sendMail, startTestGateway } from './harness.js';
import { buildOptions } from '../src/config/options.js';
import { ValidationError } from '../src/controls/validate.js';

const PORT = 2664;
const HOST = '127.0.99.10';
const DOMAINS = ['d1', 'd2', 'd3', 'd4', 'd5', 'd6'].map((d) => `${d}.cap.test`);
const zone: Zone = { 'mx.cap.test': { A: [HOST] } };
for (const d of DOMAINS) zone[d] = { MX: [{ preference: 10, exchange: 'mx.cap.test' }] };

describe('delivery connections over every destination', () => {
  let peer: SmtpPeer;

  before(async () => {
    peer = await startSmtpPeer({ host: HOST, port: PORT, hostname: 'mx.cap.test', act: (step) => (step === 'dot' ? { reply: '250 2.0.0 Ok', delayMs: 400 } : undefined) });
  });

  after(async () => {
    await peer.close();
  });

  it('never more than maxConnections at once, and every message delivered', async () => {
    const t = await startTestGateway({ zone, smtpPort: PORT, tweak: (o) => (o.maxConnections = 2) });
    try {
      // Two messages per domain, sent together: every domain has work at the same moment.
      const sends = DOMAINS.flatMap((d) => [1, 2].map((i) => sendMail(t.gw.address!.port, 's@client.test', [`u${i}@${d}`], `Subject: ${i}\r\n\r\nbody\r\n`)));
      for (const r of await Promise.all(sends)) assert.equal(r.code, 250, r.text);
      await peer.waitForMessages(12, 20_000);
      assert.equal(peer.maxConcurrent, 2, 'the cap was reached and never passed');
      assert.deepEqual(peer.messages.flatMap((m) => m.to).sort(), DOMAINS.flatMap((d) => [`u1@${d}`, `u2@${d}`]).sort());
    } finally {
      await t.close();
    }
  });

  it('the option is checked: an integer from 1 to 100000', () => {
    assert.equal(buildOptions({ maxConnections: 50 }, {}).maxConnections, 50);
    assert.equal(buildOptions({}, {}).maxConnections, 500);
    for (const bad of [0, 1.5, 100_001, 'many' as unknown as number]) {
      assert.throws(() => buildOptions({ maxConnections: bad }, {}), (e: unknown) => e instanceof ValidationError && /max-connections/.test(e.message));
    }
  });
});
