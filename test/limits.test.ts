/**
 * Traffic shaping observed at the receiving side (SPEC §1, §4): concurrent connections,
 * messages per connection, recipients per window (waiting is not a retry; "deliver now" resets
 * the counters), limits per MX IP address, the IP preference, virtual gateways (connections bound
 * to the sending address; limits counted per gateway).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GatewayStore } from '../src/config/gateways.js';
import type { Zone } from './peers/dns-server.js';
import { startSmtpPeer, type SmtpPeer, type SmtpPeerOptions } from './peers/smtp-peer.js';
import { sendMail, startTestGateway, waitFor, type TestGateway } from './harness.js';
import { LimitCounters } from '../src/delivery/limits.js';

const PORT = 2660;
const A = (n: number) => `127.0.36.${n}`;
const slow = (ms: number): Pick<SmtpPeerOptions, 'act'> => ({
  act: (step) => (step === 'dot' ? { reply: '250 2.0.0 Ok', delayMs: ms } : undefined),
});

describe('limits', () => {
  let t: TestGateway;
  const peer: Record<string, SmtpPeer> = {};
  const zone: Zone = {
    'conc.test': { MX: [{ preference: 10, exchange: 'mx.conc.test' }] },
    'mx.conc.test': { A: [A(1)] },
    'window.test': { MX: [{ preference: 10, exchange: 'mx.window.test' }] },
    'mx.window.test': { A: [A(2)] },
    'perip.test': { MX: [{ preference: 10, exchange: 'mx1.perip.test' }, { preference: 20, exchange: 'mx2.perip.test' }] },
    'mx1.perip.test': { A: [A(3)] },
    'mx2.perip.test': { A: [A(4)] },
    'dual.test': { MX: [{ preference: 10, exchange: 'mx.dual.test' }] },
    'mx.dual.test': { A: [A(5)], AAAA: ['::1'] },
    'dual4.test': { MX: [{ preference: 10, exchange: 'mx.dual.test' }] },
    'v6only.test': { MX: [{ preference: 10, exchange: 'mx.v6only.test' }] },
    'mx.v6only.test': { AAAA: ['::1'] },
    'vg.test': { MX: [{ preference: 10, exchange: 'mx.vg.test' }] },
    'mx.vg.test': { A: [A(6)] },
    'reuse.test': { MX: [{ preference: 10, exchange: 'mx.reuse.test' }] },
    'mx.reuse.test': { A: [A(7)] },
    'dropped.test': { MX: [{ preference: 10, exchange: 'mx.dropped.test' }] },
    'mx.dropped.test': { A: [A(8)] },
    'shared.test': { MX: [{ preference: 10, exchange: 'mx.shared.test' }] },
    'mx.shared.test': { A: [A(9)] },
    'step.test': { MX: [{ preference: 10, exchange: 'mx.step.test' }] },
    'mx.step.test': { A: [A(10)] },
  };
  /** Added to the delivery engine's wall clock: a step of the system clock (NTP, a VM resumed). */
  let clockStep = 0;

  before(async () => {
    const add = async (name: string, o: SmtpPeerOptions) => (peer[name] = await startSmtpPeer({ port: PORT, ...o }));
    await add('conc', { host: A(1), hostname: 'mx.conc.test', ...slow(150) });
    await add('window', { host: A(2), hostname: 'mx.window.test' });
    await add('perip1', { host: A(3), hostname: 'mx1.perip.test', ...slow(150) });
    await add('perip2', { host: A(4), hostname: 'mx2.perip.test', ...slow(150) });
    await add('dual4', { host: A(5), hostname: 'mx.dual.test' });
    await add('dual6', { host: '::1', hostname: 'mx.dual.test' });
    await add('vg', { host: A(6), hostname: 'mx.vg.test' });
    await add('reuse', { host: A(7), hostname: 'mx.reuse.test' });
    await add('shared', { host: A(9), hostname: 'mx.shared.test' });
    await add('step', { host: A(10), hostname: 'mx.step.test' });
    // Drops a connection at its second MAIL FROM, as a server that timed out an idle client does.
    await add('dropped', {
      host: A(8),
      hostname: 'mx.dropped.test',
      act: (step, _arg, session) => (step === 'mail' && session.commands.filter((c) => c.startsWith('MAIL FROM')).length === 2 ? { close: 'end' } : undefined),
    });
    t = await startTestGateway({
      zone,
      smtpPort: PORT,
      setup: (s) => {
        s.newEntry('conc.test', { concurrency: 3, messagesPerConnection: 2 });
        s.newEntry('window.test', { recipientLimit: { recipients: 5, minutes: 1 }, limitPer: 'domain', enforce: 'system' });
        s.newEntry('perip.test', { concurrency: 1, limitPer: 'mx-ip', enforce: 'system' });
        s.newEntry('dual.test', { ipPreference: 'ipv6-preferred' });
        s.newEntry('dual4.test', { ipPreference: 'ipv4-preferred' });
        s.newEntry('v6only.test', { ipPreference: 'ipv4-required' });
        s.newEntry('shared.test', { concurrency: 1, limitPer: 'domain', enforce: 'system' });
        s.newEntry('step.test', { recipientLimit: { recipients: 3, minutes: 1 }, limitPer: 'domain', enforce: 'system' });
        s.newEntry('vg.test', { recipientLimit: { recipients: 2, minutes: 1 }, limitPer: 'domain', enforce: 'virtual-gateway' });
        const g = new GatewayStore(s);
        g.put({ name: 'gw1', address: A(101), hostname: 'gw1.postern.test' });
        g.put({ name: 'gw2', address: A(102) });
        g.assign('one.test', 'gw1');
        g.assign('two.test', 'gw2');
      },
      tweak: (o) => {
        o.deliveryClock = () => Date.now() + clockStep;
      },
    });
  });

  after(async () => {
    await t?.close();
    await Promise.all(Object.values(peer).map((p) => p.close()));
  });

  const send = (from: string, to: string, n = 1) =>
    Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const r = await sendMail(t.gw.address!.port, from, [to], `Subject: ${i}\r\n\r\nmessage ${i}\r\n`);
        assert.equal(r.code, 250);
      }),
    );

  it('never more than the concurrent connections, never more than the messages per connection', async () => {
    await send('s@client.test', 'a@conc.test', 20);
    await peer.conc!.waitForMessages(20, 30_000);
    await waitFor('every connection closed', () => t.events.filter((e) => e.event === 'connection-closed').length > 0 && peer.conc!.sessions.every((s) => s.closedBy !== undefined));
    assert.ok(peer.conc!.maxConcurrent <= 3, `at most 3 connections at once, saw ${peer.conc!.maxConcurrent}`);
    assert.ok(peer.conc!.maxConcurrent >= 2, `connections run in parallel, saw ${peer.conc!.maxConcurrent}`);
    const perSession = peer.conc!.sessions.map((s) => s.commands.filter((c) => c.startsWith('MAIL FROM')).length);
    assert.ok(Math.max(...perSession) <= 2, `at most 2 messages per connection: ${perSession.join(',')}`);
    assert.ok(peer.conc!.sessions.every((s) => s.commands[s.commands.length - 1] === 'QUIT'), 'each connection ends with QUIT');
  });

  it('a step of the system clock does not shorten a recipient window: the window counts real seconds', async () => {
    await send('s@client.test', 'c@step.test', 3);
    await peer.step!.waitForMessages(3);
    try {
      // Two minutes later by the wall clock, a moment later in fact: the window is still full.
      clockStep = 120_000;
      await send('s@client.test', 'd@step.test', 2);
      await waitFor('both queued', () => t.gw.queue.list({ domain: 'step.test' }).length === 2);
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(peer.step!.messages.length, 3, 'nothing more within the real minute');
      assert.equal(t.gw.queue.list({ domain: 'step.test' }).length, 2, 'both still wait in the queue');
    } finally {
      clockStep = 0;
    }
  });

  it('recipients over the window wait in the queue without counting as a retry; deliver now resets the counters', async () => {
    await send('s@client.test', 'b@window.test', 8);
    await peer.window!.waitForMessages(5);
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(peer.window!.messages.length, 5, 'exactly 5 within the window');
    const waiting = t.gw.queue.list({ domain: 'window.test' });
    assert.equal(waiting.length, 3);
    assert.ok(waiting.every((r) => r.state === 'queued' && r.attempts === 0), 'waiting is not a retry');
    t.gw.engine.resetLimits('window.test');
    await peer.window!.waitForMessages(8);
  });

  it('with "each MX IP address" the connection limit is counted per address', async () => {
    await send('s@client.test', 'c@perip.test', 10);
    await waitFor('all 10 at the two MX hosts', () => peer.perip1!.messages.length + peer.perip2!.messages.length === 10, 30_000);
    assert.equal(peer.perip1!.maxConcurrent, 1);
    assert.equal(peer.perip2!.maxConcurrent, 1);
    assert.ok(peer.perip2!.messages.length > 0, 'the second MX address got its own connection');
  });

  it('the IP preference chooses the family; Required without such an address defers with the reason', async () => {
    await send('s@client.test', 'd@dual.test');
    await peer.dual6!.waitForMessages(1);
    assert.equal(peer.dual4!.messages.length, 0);
    await send('s@client.test', 'e@dual4.test');
    await peer.dual4!.waitForMessages(1);
    await send('s@client.test', 'f@v6only.test');
    const d = await waitFor('a deferral', () => t.events.find((e) => e.event === 'delayed' && e.to === 'f@v6only.test'));
    assert.match(d.event === 'delayed' ? d.reason : '', /IPv4 Required but the host has no IPv4 address/);
  });

  it('virtual gateways: connections leave from the assigned address, limits counted per gateway', async () => {
    await send('x@one.test', 'g@vg.test', 3);
    await send('y@two.test', 'g@vg.test', 3);
    await peer.vg!.waitForMessages(4);
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(peer.vg!.messages.length, 4, '2 per gateway within the window');
    const from = new Set(peer.vg!.sessions.map((s) => s.remoteAddress.replace(/^::ffff:/, '')));
    assert.deepEqual([...from].sort(), [A(101), A(102)]);
    const gw1 = peer.vg!.sessions.find((s) => s.remoteAddress.endsWith(A(101)))!;
    assert.equal(gw1.commands[0], 'EHLO gw1.postern.test');
  });

  it('a connection with nothing to send stays open for the next message, then QUITs; a configuration change ends its reuse', async () => {
    const p = peer.reuse!;
    const mails = (i: number) => p.sessions[i]!.commands.filter((c) => c.startsWith('MAIL FROM')).length;
    await send('s@client.test', 'a@reuse.test');
    await p.waitForMessages(1);
    await send('s@client.test', 'b@reuse.test');
    await p.waitForMessages(2);
    assert.equal(p.sessions.length, 1, 'the second message went over the open connection');
    assert.equal(mails(0), 2);
    await p.waitForSessions(1, 10_000);
    assert.equal(p.sessions[0]!.commands.at(-1), 'QUIT', 'the idle connection ends with QUIT');

    await send('s@client.test', 'c@reuse.test');
    await p.waitForMessages(3);
    t.configure((s) => s.newEntry('other.reuse.test', { concurrency: 2 }));
    await send('s@client.test', 'd@reuse.test');
    await p.waitForMessages(4);
    assert.equal(p.sessions.length, 3, 'after the change the next message opened a new connection');
    assert.equal(mails(1), 1);
    await p.waitForSessions(3, 10_000);
    assert.equal(p.sessions[1]!.commands.at(-1), 'QUIT');
  });

  it('a reused connection the server dropped is replaced without deferring the message', async () => {
    const p = peer.dropped!;
    await send('s@client.test', 'a@dropped.test');
    await p.waitForMessages(1);
    await send('s@client.test', 'b@dropped.test');
    await p.waitForMessages(2);
    assert.equal(p.sessions.length, 2, 'the second message went over a new connection');
    assert.equal(t.events.filter((e) => e.event === 'delayed' && e.to === 'b@dropped.test').length, 0, 'no deferral');
  });

  it('an idle connection of one virtual gateway gives its slot to the other gateway waiting for the domain', async () => {
    const p = peer.shared!;
    await send('x@one.test', 'a@shared.test');
    await p.waitForMessages(1);
    const started = Date.now();
    await send('y@two.test', 'b@shared.test');
    await p.waitForMessages(2);
    const waited = Date.now() - started;
    assert.equal(p.maxConcurrent, 1, 'one connection at a time for the domain');
    assert.deepEqual(
      p.sessions.map((s) => s.remoteAddress.replace(/^::ffff:/, '')),
      [A(101), A(102)],
    );
    assert.equal(p.sessions[0]!.commands.at(-1), 'QUIT');
    // Without the hand-over the second gateway waits for the first one's idle time (2 s).
    assert.ok(waited < 1500, `the idle connection gave way at once (waited ${waited} ms)`);
  });
});

describe('the recipient window, as receivers measure it', () => {
  const T0 = 1_764_000_000_000;
  it('never frees a recipient early: a bucket leaves once the window has passed the end of its second', () => {
    const c = new LimitCounters();
    c.countRecipients('k', T0 + 900, 10); // 0.9 s into its second
    assert.equal(c.recipientsFreeAt('k', T0 + 30_000, 10, 1), T0 + 61_000);
    assert.equal(c.recipientsAvailable('k', T0 + 60_500, 10, 1), 0, '59.6 s after it: still in the window');
    assert.equal(c.recipientsAvailable('k', T0 + 60_999, 10, 1), 0);
    assert.equal(c.recipientsAvailable('k', T0 + 61_000, 10, 1), 10);
  });

  it('recipients count from when their transaction ended (moved), so a slow delivery cannot overlap the next window', () => {
    const c = new LimitCounters();
    c.countRecipients('k', T0, 6);
    c.countRecipients('k', T0 + 2_000, 4);
    c.moveRecipients('k', T0, T0 + 5_000, 6); // delivered 5 s after it began
    assert.equal(c.recipientsAvailable('k', T0 + 61_000, 10, 1), 0, 'the moved six are still counted');
    assert.equal(c.recipientsAvailable('k', T0 + 63_500, 10, 1), 4, 'the four of T0+2 s left the window');
    assert.equal(c.recipientsAvailable('k', T0 + 66_000, 10, 1), 10);
  });
});
