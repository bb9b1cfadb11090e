/**
 * The `internet` bench scenario's sink (bench/internet-sink.ts), over real sockets with
 * Postern's own SMTP client: each host's delay and fault, and what it measures per domain.
 * Addresses 127.0.96.1–20, port 2606.
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startInternetSink, type InternetSink } from '../bench/internet-sink-control.js';
import type { InternetSinkConfig } from '../bench/internet-sink.js';
import type { MxHost } from '../bench/internet-types.js';
import { RFC5321_TIMEOUTS, SmtpFailureError, SmtpSession, dotStuff, type SmtpTimeouts } from '../src/smtp/client.js';
import { TestCA } from './peers/ca.js';

const PORT = 2606;
const A = (n: number): string => `127.0.96.${n}`;
const HOSTS: MxHost[] = [
  { name: 'mx1.it.test', address: A(1), delayMs: 40, fault: 'none' },
  { name: 'mx2.it.test', address: A(2), delayMs: 300, fault: 'none' },
  { name: 'mx3.it.test', address: A(3), delayMs: 40, fault: 'refuse' },
  { name: 'mx4.it.test', address: A(4), delayMs: 40, fault: 'never-greet' },
  { name: 'mx5.it.test', address: A(5), delayMs: 40, fault: 'rcpt-4xx' },
  { name: 'mx6.it.test', address: A(6), delayMs: 40, fault: 'no-starttls' },
  { name: 'mx7.it.test', address: A(7), delayMs: 40, fault: 'tls-fail' },
];
const T: SmtpTimeouts = { ...RFC5321_TIMEOUTS, connect: 3000, greeting: 5000, ehlo: 5000, starttls: 5000, tlsHandshake: 5000, mail: 5000, rcpt: 5000, dataInit: 5000, dataTerm: 5000, quit: 2000 };
const BODY = Buffer.from('Subject: bench\r\n\r\nHello.\r\n');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const open = (n: number, timeouts = T): Promise<SmtpSession> => SmtpSession.open({ address: A(n), port: PORT, timeouts });

async function send(s: SmtpSession, to: string[], body = BODY): Promise<{ rcpt: number[]; data: number | undefined }> {
  const r = await s.send({ from: 'bench@sender.test', recipients: to.map((address) => ({ address })), size: body.length }, body);
  assert.equal(r.kind, 'done');
  if (r.kind !== 'done') throw new Error('refused');
  return { rcpt: r.recipients.map((x) => x.code), data: r.data?.code };
}

async function until<T>(what: string, check: () => Promise<T | undefined | false>, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('internet sink', () => {
  let sink: InternetSink;
  let ca: TestCA;
  let clientCtx: tls.SecureContext;

  before(async () => {
    ca = await TestCA.create('Internet Sink Test CA');
    const cert = await ca.issue({ cn: HOSTS[0]!.name, dnsNames: HOSTS.map((h) => h.name) });
    clientCtx = tls.createSecureContext({ ca: ca.certPem });
    const cfg: InternetSinkConfig = {
      hosts: HOSTS,
      port: PORT,
      tls: { key: cert.keyPem, cert: cert.chainPem },
      limits: { 'c.test': { windowMinutes: 1 }, 'w.test': { windowMinutes: 0.005 } },
    };
    sink = await startInternetSink(cfg);
  });

  after(async () => {
    await sink?.stop();
  });

  it('writes the greeting and every reply after the host delay', async () => {
    for (const [n, delay] of [[1, 40], [2, 300]] as const) {
      const t0 = performance.now();
      const s = await open(n);
      const greeted = performance.now() - t0;
      assert.ok(greeted >= delay - 1, `greeting of mx${n} after ${greeted} ms (delay ${delay})`);
      assert.equal(s.greeting.code, 220);
      assert.equal(s.greeting.lines[0], `mx${n}.it.test ESMTP`);
      const t1 = performance.now();
      const e = await s.ehlo('client.test');
      assert.ok(performance.now() - t1 >= delay - 1);
      assert.equal(e.code, 250);
      for (const x of ['PIPELINING', 'SIZE', '8BITMIME', 'ENHANCEDSTATUSCODES', 'STARTTLS']) assert.ok(s.extensions.has(x), x);
      assert.equal(s.extensions.get('SIZE'), '104857600');
      await s.quit();
    }
  });

  it('refuse: the connection is refused', async () => {
    await assert.rejects(open(3), (e: unknown) => {
      assert.ok(e instanceof SmtpFailureError);
      assert.deepEqual(e.failure, { kind: 'connect', address: A(3), port: PORT, detail: 'ECONNREFUSED' });
      return true;
    });
  });

  it('never-greet: accepts and says nothing', async () => {
    const t0 = performance.now();
    await assert.rejects(open(4, { ...T, greeting: 500 }), (e: unknown) => {
      assert.ok(e instanceof SmtpFailureError);
      assert.equal(e.failure.kind, 'timeout');
      return true;
    });
    assert.ok(performance.now() - t0 >= 499);
    const st = await sink.stats();
    assert.ok(st.global.neverGreetSessions >= 1);
    assert.equal(st.hosts['mx4.it.test']?.sessions, 1);
  });

  it('no-starttls: EHLO lacks STARTTLS and STARTTLS is answered 502', async () => {
    const s = await open(6);
    await s.ehlo('client.test');
    assert.ok(s.extensions.has('PIPELINING'));
    assert.ok(!s.extensions.has('STARTTLS'));
    const r = await s.starttls({ servername: 'mx6.it.test', secureContext: clientCtx });
    assert.equal(r.kind, 'rejected');
    if (r.kind === 'rejected') assert.equal(r.reply.code, 502);
    assert.equal((await send(s, ['u1@plain.test'])).data, 250);
    await s.quit();
  });

  it('tls-fail: STARTTLS is answered 220, then the handshake fails', async () => {
    const s = await open(7);
    await s.ehlo('client.test');
    assert.ok(s.extensions.has('STARTTLS'));
    const r = await s.starttls({ servername: 'mx7.it.test', secureContext: clientCtx });
    assert.equal(r.kind, 'failed'); // 'rejected' would be a non-220 reply
    s.destroy();
    const st = await sink.stats();
    assert.equal(st.global.tlsFailClosed, 1);
    assert.equal(st.hosts['mx7.it.test']?.tlsSessions, 0);
  });

  it('rcpt-4xx: 451 to soft recipients, 250 to the others', async () => {
    const s = await open(5);
    await s.ehlo('client.test');
    const r = await send(s, ['soft1@soft.test', 'u1@soft.test']);
    assert.deepEqual(r, { rcpt: [451, 250], data: 250 });
    await s.quit();
    const st = await sink.stats();
    assert.equal(st.delivered['u1@soft.test'], 1);
    assert.equal(st.delivered['soft1@soft.test'], undefined);
    assert.equal(st.domains['soft.test']?.delivered, 1);
    assert.equal(st.domains['soft.test']?.deferred, 1);
    assert.equal(st.global.rcptDeferred, 1);
  });

  it('STARTTLS with the certificate naming the host; a delivered message counts', async () => {
    await sink.reset();
    const s = await open(1);
    await s.ehlo('client.test');
    const up = await s.starttls({ servername: 'mx1.it.test', secureContext: clientCtx });
    assert.equal(up.kind, 'ok');
    if (up.kind !== 'ok') return;
    assert.ok(up.chainTrusted, up.chainError);
    assert.match(up.certificate?.subjectaltname ?? '', /DNS:mx7\.it\.test/);
    await s.ehlo('client.test');
    assert.ok(!s.extensions.has('STARTTLS'));
    // Large enough to arrive in many chunks; lines starting with a dot are stuffed.
    const big = Buffer.from(Array.from({ length: 4000 }, (_, i) => (i % 7 ? `line ${i} ${'x'.repeat(40)}` : '.dot')).join('\r\n') + '\r\n');
    assert.deepEqual(await send(s, ['U1@A.Test'], big), { rcpt: [250], data: 250 });
    await s.quit();
    const st = await sink.stats();
    assert.deepEqual(st.delivered, { 'U1@a.test': 1 });
    assert.equal(st.domains['a.test']?.delivered, 1);
    assert.equal(st.global.messages, 1);
    assert.equal(st.global.bytes, Buffer.concat(dotStuff(big)).length);
    assert.equal(st.global.tlsSessions, 1);
    assert.equal(st.global.sniMismatch, 0);
    assert.ok(st.global.firstAt > 0 && st.global.lastAt >= st.global.firstAt);
  });

  it('measures concurrency, messages per session and recipients in the window, per domain', async () => {
    await sink.reset();
    const a = await open(1);
    const b = await open(2);
    await Promise.all([a.ehlo('a.client.test'), b.ehlo('b.client.test')]);
    const sa = (async () => {
      for (let i = 0; i < 3; i++) assert.deepEqual(await send(a, ['c1@c.test', 'c2@c.test']), { rcpt: [250, 250], data: 250 });
    })();
    const sb = send(b, ['c3@c.test', 'x@d.test']);
    await sa;
    assert.deepEqual(await sb, { rcpt: [250, 250], data: 250 });
    const during = await sink.stats();
    assert.equal(during.domains['c.test']?.concurrentNow, 2);
    assert.equal(during.global.openSessions, 2);
    await Promise.all([a.quit(), b.quit()]);

    const st = await until('both sessions closed', async () => {
      const x = await sink.stats();
      return x.global.openSessions === 0 && x.domains['c.test']?.concurrentNow === 0 && x;
    });
    assert.deepEqual(st.domains['c.test'], { maxConcurrent: 2, maxMessagesPerSession: 3, maxInWindow: 7, delivered: 7, concurrentNow: 0, sessions: 2, deferred: 0 });
    assert.deepEqual(st.domains['d.test'], { maxConcurrent: 1, maxMessagesPerSession: 1, maxInWindow: 0, delivered: 1, concurrentNow: 0, sessions: 1, deferred: 0 });
    assert.deepEqual(st.delivered, { 'c1@c.test': 3, 'c2@c.test': 3, 'c3@c.test': 1, 'x@d.test': 1 });
    assert.equal(st.global.messages, 4);
    assert.equal(st.global.recipients, 8);
    assert.equal(st.global.sessions, 2);
    assert.equal(st.global.maxOpenSessions, 2);
    const brief = await sink.stats({ addresses: false });
    assert.deepEqual(brief.delivered, {});
    assert.equal(brief.domains['c.test']?.delivered, 7);
  });

  it('the window slides: recipients older than the window leave it', async () => {
    await sink.reset();
    const s = await open(1);
    await s.ehlo('client.test');
    await send(s, ['w1@w.test', 'w2@w.test']); // window 0.005 min = 300 ms
    await sleep(450);
    await send(s, ['w3@w.test']);
    await send(s, ['w4@w.test']);
    await s.quit();
    const st = await sink.stats();
    assert.equal(st.domains['w.test']?.delivered, 4);
    assert.equal(st.domains['w.test']?.maxInWindow, 2);
    assert.equal(st.domains['w.test']?.maxMessagesPerSession, 3);
  });

  it('takes its config over IPC when asked (configs too large for argv)', async () => {
    const cert = await ca.issue({ cn: 'mx20.it.test', dnsNames: ['mx20.it.test'] });
    const other = await startInternetSink(
      { hosts: [{ name: 'mx20.it.test', address: A(20), delayMs: 40, fault: 'none' }], port: PORT, tls: { key: cert.keyPem, cert: cert.chainPem }, limits: {} },
      { via: 'ipc' },
    );
    try {
      const s = await SmtpSession.open({ address: A(20), port: PORT, timeouts: T });
      assert.equal(s.greeting.lines[0], 'mx20.it.test ESMTP');
      await s.quit();
      assert.equal((await other.stats()).global.sessions, 1);
    } finally {
      await other.stop();
    }
  });
});
