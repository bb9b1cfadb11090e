/**
 * Hostile and broken peers (issue "3/4" item 8; SPEC §4, §5): each misbehaving server gets the
 * right outcome per recipient (2xx delivered, 4xx and connection failures deferred, 5xx
 * bounced), a deferred recipient stays in the queue with a reason naming what happened (the
 * step, the reply, the time waited), nothing accepted is lost (a recipient is only "delivered"
 * when the peer really took the message; a connection lost after the final dot leaves it queued,
 * i.e. at least once), the destination's concurrency limit holds, and the gateway process
 * survives it all: no unhandled rejection, no uncaught exception, and a normal message to a good
 * peer is still delivered after each hostile one.
 *
 * Every peer listens on its own loopback address in 127.0.34.x–127.0.35.x, port 2650, and the
 * scenarios run concurrently (each has its own destination domain), so the slow ones (the
 * gateway's 5 s reply timeouts) overlap.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Zone } from './peers/dns-server.js';
import { DEFAULT_EXTENSIONS, startSmtpPeer, type PeerAction, type PeerStep, type SmtpPeer, type SmtpPeerOptions } from './peers/smtp-peer.js';
import { fateOf, sendMail, startTestGateway, waitFor, type RecipientFate, type TestGateway } from './harness.js';
import { within } from './deadline.js';

const PORT = 2650;
const A = (n: number) => (n < 256 ? `127.0.34.${n}` : `127.0.35.${n - 256}`);
const NO_PIPELINING = DEFAULT_EXTENSIONS.filter((e) => e !== 'PIPELINING');
const SENDER = 'sender@client.test';

type Expect = { kind: 'delivered' } | { kind: 'deferred'; reason: RegExp } | { kind: 'bounced'; reason: RegExp };

interface Scenario {
  /** Test title. */
  title: string;
  /** Destination domain label: `<id>.test`, served by `mx.<id>.test`. */
  id: string;
  peer: SmtpPeerOptions;
  /** Local part → expected fate. */
  expect: Record<string, Expect>;
  /** Extra checks once the outcomes are known. */
  check?: (t: TestGateway, peer: SmtpPeer, to: (local: string) => string) => void | Promise<void>;
  timeoutMs?: number;
}

/** An `act` hook acting at one step only (optionally only for some argument). */
const at =
  (step: PeerStep, action: PeerAction, when: (arg: string) => boolean = () => true): SmtpPeerOptions['act'] =>
  (s, arg) =>
    s === step && when(arg) ? action : undefined;

const deferred = (reason: RegExp): Expect => ({ kind: 'deferred', reason });
const bounced = (reason: RegExp): Expect => ({ kind: 'bounced', reason });
const delivered: Expect = { kind: 'delivered' };

/** A multi-line EHLO reply of `n` lines. */
function hugeEhlo(n: number): string {
  const lines = ['mx.hugeehlo.test', 'PIPELINING', 'SIZE 52428800', '8BITMIME', 'ENHANCEDSTATUSCODES'];
  for (let i = lines.length; i < n; i++) lines.push(`X-FILLER-${i} ${'y'.repeat(40)}`);
  return lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}`).join('\n');
}

const scenarios: Scenario[] = [
  {
    title: 'a 421 greeting: deferred, naming the greeting',
    id: 'greet421',
    peer: { act: at('greeting', { reply: '421 4.3.2 mx.greet421.test too busy, try later', close: 'end' }) },
    expect: { a: deferred(/^4\.\d\.\d .*greeted with 421 4\.3\.2 mx\.greet421\.test too busy/) },
  },
  {
    title: '421 in reply to MAIL (pipelined; the peer closes): every recipient deferred, naming the 421',
    id: 'mail421',
    peer: { act: at('mail', { reply: '421 4.3.2 shutting down for maintenance', close: 'end' }) },
    expect: { a: deferred(/421 4\.3\.2 shutting down/), b: deferred(/421 4\.3\.2 shutting down/) },
  },
  {
    title: '421 in reply to MAIL (no pipelining; the peer closes): every recipient deferred, naming the 421',
    id: 'mail421np',
    peer: { extensions: NO_PIPELINING, act: at('mail', { reply: '421 4.3.2 shutting down for maintenance', close: 'end' }) },
    expect: { a: deferred(/421 4\.3\.2 shutting down/), b: deferred(/421 4\.3\.2 shutting down/) },
  },
  {
    title: '421 in reply to RCPT (pipelined; the peer closes): all deferred, naming the 421, nothing delivered',
    id: 'rcpt421',
    peer: { act: at('rcpt', { reply: '421 4.4.5 too many connections', close: 'end' }, (a) => a.startsWith('b@')) },
    expect: { a: deferred(/421 4\.4\.5 too many connections/), b: deferred(/421 4\.4\.5 too many connections/) },
  },
  {
    title: '421 in reply to RCPT (no pipelining; the peer closes): all deferred, naming the 421',
    id: 'rcpt421np',
    peer: {
      extensions: NO_PIPELINING,
      act: at('rcpt', { reply: '421 4.4.5 too many connections', close: 'end' }, (a) => a.startsWith('b@')),
    },
    expect: { a: deferred(/421 4\.4\.5 too many connections/), b: deferred(/421 4\.4\.5 too many connections/) },
  },
  {
    title: 'connection dropped silently after RCPT: deferred, naming RCPT TO',
    id: 'droprcpt',
    peer: { act: at('rcpt', { close: 'end' }) },
    expect: { a: deferred(/^4\.\d\.\d .*closed by the server during RCPT TO/) },
  },
  {
    title: 'connection dropped in the middle of DATA (after some body bytes): deferred',
    id: 'dropbody',
    peer: { act: at('body', { close: 'end' }) },
    expect: { a: deferred(/^4\.\d\.\d .*closed by the server during (end of data|data block)/) },
    check: (_t, peer) => assert.equal(peer.completed.length, 0, 'the peer never saw the final dot'),
  },
  {
    title: 'a reply slower than the timeout (RCPT): deferred, naming the step and the time waited',
    id: 'slowrcpt',
    peer: { act: at('rcpt', { reply: '250 2.1.5 Ok, eventually', delayMs: 7000 }) },
    expect: { a: deferred(/^4\.\d\.\d .*timed out after 5 s waiting for the reply to RCPT TO/) },
    timeoutMs: 30_000,
  },
  {
    title: 'a reply to the final dot slower than the timeout: deferred (the message stays queued: at least once)',
    id: 'slowdot',
    peer: { act: at('dot', { reply: '250 2.0.0 queued, eventually', delayMs: 7000 }) },
    expect: { a: deferred(/^4\.\d\.\d .*timed out after 5 s waiting for the reply to end of data/) },
    check: (_t, peer, to) => assert.ok(peer.completed.some((m) => m.to.includes(to('a'))), 'the peer did receive the data'),
    timeoutMs: 30_000,
  },
  {
    title: 'slow replies within the timeouts (greeting, EHLO, RCPT, final dot at 3–3.5 s each): delivered',
    id: 'slowok',
    peer: {
      act: (step) =>
        step === 'greeting'
          ? { reply: '220 mx.slowok.test ESMTP slow but fine', delayMs: 3000 }
          : step === 'ehlo'
            ? { reply: ['250-mx.slowok.test', ...DEFAULT_EXTENSIONS.map((e, i, all) => `250${i === all.length - 1 ? ' ' : '-'}${e}`)].join('\n'), delayMs: 3000 }
            : step === 'rcpt'
              ? { reply: '250 2.1.5 Ok', delayMs: 3500 }
              : step === 'dot'
                ? { reply: '250 2.0.0 Ok: queued slowly', delayMs: 3500 }
                : undefined,
    },
    expect: { a: delivered },
    timeoutMs: 40_000,
  },
  {
    title: 'recipients accepted and refused in one transaction (250/450/550/552): delivered/deferred/bounced each',
    id: 'mixed',
    peer: {
      rcptReply: (a) =>
        a.startsWith('soft@')
          ? '450 4.2.1 mailbox busy, try later'
          : a.startsWith('hard@')
            ? '550 5.1.1 no such user'
            : a.startsWith('full@')
              ? '552 5.2.2 mailbox full'
              : undefined,
    },
    expect: {
      ok: delivered,
      soft: deferred(/^4\.2\.1 .*450 4\.2\.1 mailbox busy/),
      hard: bounced(/^5\.1\.1 .*550 5\.1\.1 no such user/),
      full: bounced(/^5\.2\.2 .*552 5\.2\.2 mailbox full/),
    },
    check: (_t, peer, to) => {
      assert.equal(peer.messages.length, 1);
      assert.deepEqual(peer.messages[0]!.to, [to('ok')], 'only the accepted recipient got the message');
    },
  },
  {
    title: 'a garbage reply (not "ddd…") to MAIL: deferred as a protocol error',
    id: 'garbage',
    peer: { act: at('mail', { raw: 'Hello there, this is not SMTP at all\r\n' }) },
    expect: { a: deferred(/^4\.\d\.\d .*protocol error during MAIL FROM: malformed reply line/) },
  },
  {
    title: 'a reply code changing inside a multi-line reply (RCPT 250-…/550 …): deferred as a protocol error',
    id: 'codechange',
    peer: { act: at('rcpt', { raw: '250-2.1.5 looks fine so far\r\n550 5.1.1 but actually no\r\n' }) },
    expect: { a: deferred(/^4\.\d\.\d .*protocol error during RCPT TO: reply code changed from 250 to 550/) },
  },
  {
    title: 'a 1xx reply to DATA: deferred as a protocol error, never delivered',
    id: 'onexx',
    peer: { act: at('data', { reply: '154 go ahead, I suppose' }) },
    expect: { a: deferred(/^4\.\d\.\d .*protocol error during DATA: malformed reply line "154/) },
    check: (_t, peer) => assert.equal(peer.completed.length, 0),
  },
  {
    title: 'a 6xx reply to the final dot: deferred as a protocol error (queued, at least once)',
    id: 'sixxx',
    peer: { act: at('dot', { reply: '650 6.0.0 what is this' }) },
    expect: { a: deferred(/^4\.\d\.\d .*protocol error during end of data: malformed reply line "650/) },
  },
  {
    title: 'an overlong reply line (100 KB without a newline): deferred as a protocol error',
    id: 'overlong',
    peer: { act: at('rcpt', { raw: `250 ${'x'.repeat(100 * 1024)}` }) },
    expect: { a: deferred(/^4\.\d\.\d .*protocol error during RCPT TO: reply line longer than \d+ bytes/) },
  },
  {
    title: 'a multi-line EHLO of 5,000 lines: deferred as a protocol error naming EHLO',
    id: 'hugeehlo',
    peer: { act: at('ehlo', { reply: hugeEhlo(5000) }) },
    expect: { a: deferred(/^4\.\d\.\d .*protocol error during EHLO: reply of more than \d+ lines/) },
  },
  {
    title: 'an early talker (unsolicited replies sent with the greeting, before EHLO): never "delivered" unless really delivered',
    id: 'early',
    peer: { act: at('greeting', { raw: '220 mx.early.test ESMTP\r\n250 2.0.0 unsolicited early talk\r\n' }) },
    // Either outcome is acceptable (resynchronised and delivered, or deferred as a protocol
    // error); `run` asserts that "delivered" is only recorded when the peer has the message.
    expect: {},
  },
  {
    title: 'an early talker (unsolicited replies, no pipelining): never "delivered" unless really delivered',
    id: 'earlynp',
    peer: { extensions: NO_PIPELINING, act: at('greeting', { raw: '220 mx.earlynp.test ESMTP\r\n250 2.0.0 unsolicited early talk\r\n' }) },
    expect: {},
  },
  {
    title: 'junk sent before the greeting: deferred as a protocol error during the greeting',
    id: 'junkfirst',
    peer: { act: at('greeting', { raw: 'hello from the server\r\n220 mx.junkfirst.test ESMTP\r\n' }) },
    expect: { a: deferred(/^4\.\d\.\d .*protocol error during greeting: malformed reply line/) },
  },
  {
    title: 'a server that never sends a greeting: deferred, naming the greeting and the time waited',
    id: 'mute',
    peer: { act: at('greeting', {}) },
    expect: { a: deferred(/^4\.\d\.\d .*timed out after 5 s waiting for the reply to greeting/) },
    timeoutMs: 30_000,
  },
  {
    title: '5xx to DATA after accepted RCPTs: accepted recipients bounced, the 4xx one deferred',
    id: 'data5xx',
    peer: {
      rcptReply: (a) => (a.startsWith('soft@') ? '450 4.2.1 try later' : undefined),
      act: at('data', { reply: '554 5.6.0 content rejected' }),
    },
    expect: { a: bounced(/^5\.6\.0 .*554 5\.6\.0 content rejected/), b: bounced(/554 5\.6\.0/), soft: deferred(/450 4\.2\.1/) },
    check: (_t, peer) => assert.equal(peer.completed.length, 0),
  },
  {
    title: '5xx to DATA after accepted RCPTs (no pipelining): accepted recipients bounced, the 4xx one deferred',
    id: 'data5xxnp',
    peer: {
      extensions: NO_PIPELINING,
      rcptReply: (a) => (a.startsWith('soft@') ? '450 4.2.1 try later' : undefined),
      act: at('data', { reply: '554 5.6.0 content rejected' }),
    },
    expect: { a: bounced(/^5\.6\.0 .*554 5\.6\.0 content rejected/), soft: deferred(/450 4\.2\.1/) },
  },
  {
    title: '5xx to DATA and the peer closes at once: the accepted recipients still bounce',
    id: 'data5xxclose',
    peer: { act: at('data', { reply: '554 5.7.1 rejected, closing connection', close: 'end' }) },
    expect: { a: bounced(/^5\.7\.1 .*554 5\.7\.1 rejected/) },
  },
  {
    title: '5xx to DATA and the peer closes at once (no pipelining): the accepted recipients still bounce',
    id: 'data5xxclosenp',
    peer: { extensions: NO_PIPELINING, act: at('data', { reply: '554 5.7.1 rejected, closing connection', close: 'end' }) },
    expect: { a: bounced(/^5\.7\.1 .*554 5\.7\.1 rejected/) },
  },
  {
    title: '550 to the only RCPT and the peer closes at once: the recipient bounces',
    id: 'rcpt550close',
    peer: { act: at('rcpt', { reply: '550 5.1.1 no such user, goodbye', close: 'end' }) },
    expect: { a: bounced(/^5\.1\.1 .*550 5\.1\.1 no such user/) },
  },
  {
    title: '550 to the only RCPT and the peer closes at once (no pipelining): the recipient bounces',
    id: 'rcpt550closenp',
    peer: { extensions: NO_PIPELINING, act: at('rcpt', { reply: '550 5.1.1 no such user, goodbye', close: 'end' }) },
    expect: { a: bounced(/^5\.1\.1 .*550 5\.1\.1 no such user/) },
  },
  {
    title: 'a 2xx reply to DATA instead of 354 (no message sent): never recorded as delivered',
    id: 'data250',
    peer: { act: at('data', { reply: '250 2.0.0 sure, whatever' }) },
    expect: { a: deferred(/^4\.\d\.\d .*DATA/) },
    check: (_t, peer) => assert.equal(peer.completed.length, 0, 'the peer never received a message'),
  },
  {
    title: 'a 354 and then a 5xx after the final dot: bounced with a DSN',
    id: 'dot5xx',
    peer: { dataReply: () => '554 5.7.1 message refused as spam' },
    expect: { a: bounced(/^5\.7\.1 .*554 5\.7\.1 message refused as spam/) },
    check: async (t) => {
      await waitFor('the DSN for dot5xx', () => t.events.find((e) => e.event === 'dsn-created' && e.to === SENDER && dsnFor(t, e.original, 'a@dot5xx.test')));
    },
  },
  {
    title: 'the final 250 arriving in three TCP segments: delivered once',
    id: 'split',
    peer: { act: at('dot', { raw: '250 2.0.0 Ok: queued as 4F2A9\r\n', splitAt: [2, 12], gapMs: 300 }) },
    expect: { a: delivered },
    check: (_t, peer) => assert.equal(peer.messages.length, 1),
  },
  {
    title: 'a peer that resets the connection (RST) in the middle of DATA: deferred',
    id: 'resetbody',
    peer: { act: at('body', { close: 'reset' }) },
    expect: { a: deferred(/^4\.\d\.\d .*(closed by the server|ECONNRESET)/) },
  },
  {
    title: 'a peer that resets the connection (RST) at RCPT: deferred',
    id: 'resetrcpt',
    peer: { act: at('rcpt', { close: 'reset' }) },
    expect: { a: deferred(/^4\.\d\.\d .*(closed by the server|ECONNRESET)/) },
  },
];

/** Whether the DSN created for message `mid` names `rcpt` (the bounced recipient). */
function dsnFor(t: TestGateway, mid: number, rcpt: string): boolean {
  return t.events.some((e) => e.event === 'bounced' && e.mid === mid && e.to === rcpt);
}

describe('hostile and broken peers', () => {
  let t: TestGateway;
  const peers: SmtpPeer[] = [];
  const peerOf = new Map<string, SmtpPeer>();
  const zone: Zone = {
    'client.test': { MX: [{ preference: 10, exchange: 'mx.client.test' }] },
    'mx.client.test': { A: [A(1)] },
    'good.test': { MX: [{ preference: 10, exchange: 'mx.good.test' }] },
    'mx.good.test': { A: [A(2)] },
    'limited.test': { MX: [{ preference: 10, exchange: 'mx.limited.test' }] },
    'mx.limited.test': { A: [A(3)] },
    'dropdot.test': { MX: [{ preference: 10, exchange: 'mx.dropdot.test' }] },
    'mx.dropdot.test': { A: [A(4)] },
  };
  scenarios.forEach((s, i) => {
    zone[`${s.id}.test`] = { MX: [{ preference: 10, exchange: `mx.${s.id}.test` }] };
    zone[`mx.${s.id}.test`] = { A: [A(20 + i)] };
  });

  /** Everything that would have crashed the process or gone unnoticed. */
  const problems: string[] = [];
  const onRejection = (reason: unknown): void => {
    problems.push(`unhandledRejection: ${reason instanceof Error ? reason.stack : String(reason)}`);
  };
  const onException = (err: Error): void => {
    problems.push(`uncaughtException: ${err.stack ?? String(err)}`);
  };
  const assertHealthy = (): void => assert.deepEqual(problems, [], 'no unhandled rejection or uncaught exception');

  async function addPeer(domain: string, host: string, o: SmtpPeerOptions): Promise<SmtpPeer> {
    const p = await startSmtpPeer({ host, port: PORT, hostname: `mx.${domain}`, ...o });
    peers.push(p);
    peerOf.set(domain, p);
    return p;
  }

  before(async () => {
    process.on('unhandledRejection', onRejection);
    process.on('uncaughtException', onException);
    await addPeer('client.test', A(1), {});
    await addPeer('good.test', A(2), {});
    // Slow enough that 20 messages overlap: each final dot is answered after 150 ms.
    await addPeer('limited.test', A(3), { act: at('dot', { reply: '250 2.0.0 Ok: queued', delayMs: 150 }) });
    // The first session drops the connection right after the final dot, before any reply.
    await addPeer('dropdot.test', A(4), {
      act: (step, _arg, session) => (step === 'dot' && session.id === 1 ? { close: 'end' } : undefined),
    });
    await Promise.all(scenarios.map((s, i) => addPeer(`${s.id}.test`, A(20 + i), s.peer)));
    t = await startTestGateway({
      zone,
      smtpPort: PORT,
      setup: (s) => {
        s.newEntry('limited.test', { concurrency: 2 });
      },
    });
  });

  after(async () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
    await t?.close();
    await Promise.all(peers.map((p) => p.close()));
  });

  const send = async (to: string[], subject: string): Promise<void> => {
    const r = await sendMail(t.gw.address!.port, SENDER, to, `Subject: ${subject}\r\nMessage-ID: <${subject}@client.test>\r\n\r\nHello ${subject}.\r\n..a dotted line\r\n`);
    assert.equal(r.code, 250, r.text);
  };
  const fate = (rcpt: string, timeoutMs = 15_000): Promise<RecipientFate> =>
    waitFor(`an outcome for ${rcpt}`, () => fateOf(t, rcpt), timeoutMs);

  /** The queue's view agrees with the outcome, and "delivered" means the peer has the message. */
  function assertQueueAgrees(domain: string, rcpt: string, f: RecipientFate, reason?: RegExp): void {
    const peer = peerOf.get(domain)!;
    if (f.kind === 'deferred') {
      const q = t.gw.queue.list({ domain }).find((r) => r.to === rcpt);
      assert.ok(q, `${rcpt} is still in the queue`);
      assert.equal(q.state, 'deferred');
      if (reason) assert.match(q.lastReply ?? '', reason, `the queue says why ${rcpt} waits`);
    } else if (f.kind === 'bounced') {
      assert.ok(t.gw.queue.list({ domain, state: 'bounced' }).some((r) => r.to === rcpt), `${rcpt} is listed as bounced`);
      assert.ok(!t.gw.queue.list({ domain }).some((r) => r.to === rcpt), `${rcpt} left the queue`);
    } else {
      assert.ok(t.gw.queue.list({ domain, state: 'delivered' }).some((r) => r.to === rcpt), `${rcpt} is listed as delivered`);
      assert.ok(
        peer.messages.some((m) => m.to.includes(rcpt)),
        `${rcpt} is recorded as delivered, so the peer must have accepted the message (peer has: ${JSON.stringify(peer.messages.map((m) => m.to))})`,
      );
    }
  }

  /** A normal message to a good peer is still delivered, and nothing went unhandled. */
  async function assertStillDelivers(tag: string): Promise<void> {
    const rcpt = `after-${tag}@good.test`;
    await send([rcpt], `good-after-${tag}`);
    assert.equal((await fate(rcpt)).kind, 'delivered');
    assert.ok(peerOf.get('good.test')!.messages.some((m) => m.to.includes(rcpt)));
    assertHealthy();
  }

  describe('each peer gets the right outcome per recipient', { concurrency: true }, () => {
    for (const s of scenarios) {
      it(s.title, { timeout: within(60_000) }, async () => {
        const domain = `${s.id}.test`;
        const to = (local: string) => `${local}@${domain}`;
        const locals = Object.keys(s.expect).length > 0 ? Object.keys(s.expect) : ['a'];
        await send(locals.map(to), s.id);
        for (const local of locals) {
          const rcpt = to(local);
          const f = await fate(rcpt, s.timeoutMs ?? 15_000);
          const want = s.expect[local];
          if (want) {
            assert.equal(f.kind, want.kind, `${rcpt}: ${JSON.stringify(f)}`);
            if (want.kind !== 'delivered' && f.kind !== 'delivered') assert.match(f.reply, want.reason, rcpt);
            assertQueueAgrees(domain, rcpt, f, want.kind === 'deferred' ? want.reason : undefined);
          } else {
            assert.notEqual(f.kind, 'bounced', `${rcpt} must not bounce: ${JSON.stringify(f)}`);
            assertQueueAgrees(domain, rcpt, f);
          }
        }
        await s.check?.(t, peerOf.get(domain)!, to);
        await assertStillDelivers(s.id);
      });
    }

    it('a connection dropped right after the final dot, before the reply: stays queued, then delivered again (at least once)', { timeout: within(60_000) }, async () => {
      const rcpt = 'a@dropdot.test';
      const peer = peerOf.get('dropdot.test')!;
      await send([rcpt], 'dropdot');
      const f = await fate(rcpt);
      assert.equal(f.kind, 'deferred', JSON.stringify(f));
      const reason = /^4\.\d\.\d .*closed by the server during end of data/;
      assert.match(f.kind === 'deferred' ? f.reply : '', reason);
      assertQueueAgrees('dropdot.test', rcpt, f, reason);
      assert.equal(peer.completed.length, 1, 'the peer had the whole message');
      assert.equal(peer.messages.length, 0, 'but never said it took it');
      // The next attempt (made due now) delivers it: a duplicate at worst, never a loss.
      t.gw.queue.releaseNow(Date.now(), 'dropdot.test');
      t.gw.engine.wake();
      await waitFor('the retry to deliver a@dropdot.test', () => t.gw.queue.list({ domain: 'dropdot.test', state: 'delivered' }).some((r) => r.to === rcpt));
      assert.equal(peer.messages.length, 1);
      assert.deepEqual(peer.messages[0]!.to, [rcpt]);
      assert.equal(peer.completed.length, 2, 'delivered twice: at least once');
      assert.equal(t.gw.queue.list({ domain: 'dropdot.test' }).length, 0);
      await assertStillDelivers('dropdot');
    });

    it('concurrency stays within the destination limit (2) while 20 messages are delivered slowly', { timeout: within(60_000) }, async () => {
      const peer = peerOf.get('limited.test')!;
      const rcpts = Array.from({ length: 20 }, (_, i) => `m${i}@limited.test`);
      await Promise.all(rcpts.map((r, i) => send([r], `limited-${i}`)));
      await waitFor(
        'all 20 messages delivered to limited.test',
        () => t.gw.queue.list({ domain: 'limited.test', state: 'delivered' }).length === 20,
        30_000,
      );
      for (const r of rcpts) assert.equal(peer.messages.filter((m) => m.to.includes(r)).length, 1, `${r} delivered exactly once`);
      assert.ok(peer.maxActiveSessions <= 2, `at most 2 simultaneous sessions at the peer (saw ${peer.maxActiveSessions})`);
      assert.equal(peer.maxActiveSessions, 2, 'the limit is used: two sessions in parallel');
      await assertStillDelivers('limited');
    });
  });

  describe('afterwards', () => {
    it('lost nothing: every accepted recipient is queued, bounced, or delivered and really at its peer', () => {
      for (const e of t.events) {
        if (e.event !== 'message-accepted' && e.event !== 'message-recipients') continue;
        for (const rcpt of e.recipients) {
          const domain = rcpt.slice(rcpt.lastIndexOf('@') + 1);
          const pending = t.gw.queue.list({ domain }).some((r) => r.to === rcpt && r.mid === e.mid);
          const bouncedNow = t.gw.queue.list({ domain, state: 'bounced' }).some((r) => r.to === rcpt && r.mid === e.mid);
          const deliveredNow = t.gw.queue.list({ domain, state: 'delivered' }).some((r) => r.to === rcpt && r.mid === e.mid);
          assert.ok(pending || bouncedNow || deliveredNow, `MID ${e.mid} <${rcpt}> is accounted for`);
          if (deliveredNow) {
            const peer = peerOf.get(domain);
            assert.ok(peer?.messages.some((m) => m.to.includes(rcpt)), `MID ${e.mid} <${rcpt}> is delivered, so its peer has it`);
          }
        }
      }
    });

    it('the process is alive and still delivers a normal message; no unhandled rejection or exception', async () => {
      await assertStillDelivers('the-end');
      assertHealthy();
    });
  });
});
