/**
 * Queue control (SPEC §5): `postern queue list | show | delivernow | bounce | delete` against
 * the real `postern start` process, a loopback DNS server and SMTP peers. The destination is
 * first unreachable (nothing listens), so mail stays deferred with a 60 s retry; then
 * - `queue list --json` shows it deferred with attempts ≥ 1;
 * - `queue show MID` (text, --json, --body) shows the envelope, each recipient and the headers;
 * - with the peer started, `queue delivernow DOMAIN` gets it delivered within seconds, and the
 *   running gateway resets that destination's counters (logged);
 * - `queue bounce MID` sends a DSN (5.0.0, Action: failed) to the sender's domain, routed to a
 *   second peer; the recipient leaves the queue and is listed under `--state bounced` with its
 *   attempt count unchanged;
 * - `queue delete MID` / `--domain` remove recipients with no DSN, listed under
 *   `--state deleted`;
 * - bad requests say why and exit non-zero; every action is in mail.log.
 * Plus the races with delivery in flight, on the store itself: a later outcome (deferral or
 * success) cannot bring a bounced or deleted recipient back, also when its message is gone.
 *
 * Address block 127.0.32.x and ports 2640–2649 are this file's own (test files run in parallel).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { deleteQueued, bounceQueued, QueueActionError } from '../src/queue/control.js';
import { QueueStore } from '../src/queue/store.js';
import { ConfigStore } from '../src/config/store.js';
import type { EventSink } from '../src/observe/maillog.js';
import type { MailEvent } from '../src/observe/events.js';
import { sendMail, waitFor } from './harness.js';
import { startDnsServer, type DnsServer } from './peers/dns-server.js';
import { startSmtpPeer, type SmtpPeer } from './peers/smtp-peer.js';
import { logFile, runCli, runCliOk, startPostern, type PosternProcess } from './process.js';
import { within } from './deadline.js';

const A = (n: number) => `127.0.32.${n}`;
const DNS_PORT = 2640;
const SMTP_PORT = 2641; // where delivery reaches destinations (--smtp-port)
const ROUTE_PORT = 2642; // the sender's domain, by SMTP route
const LISTEN = `${A(10)}:2643`;
const HOSTNAME = 'postern-qc.test';
const SENDER = 'sender@client.test';

interface Listed {
  mid: number;
  rid: number;
  from: string;
  to: string;
  domain: string;
  state: string;
  attempts: number;
  nextAttempt: string | null;
  lastReply: string | null;
  finishedAt: string | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('queue control against the running gateway', { timeout: within(120_000) }, () => {
  let tmp = '';
  let dataDir = '';
  let dns: DnsServer;
  let postern: PosternProcess;
  let senderPeer: SmtpPeer;
  let destPeer: SmtpPeer | undefined;
  let limitedPeer: SmtpPeer | undefined;
  const cli = (...args: string[]) => runCliOk([...args, '--data-dir', dataDir]);
  const cliRaw = (...args: string[]) => runCli([...args, '--data-dir', dataDir]);
  const list = async (...args: string[]): Promise<Listed[]> => JSON.parse(await cli('queue', 'list', '--json', ...args)) as Listed[];
  const mailLog = () => readFileSync(logFile(dataDir, 'mail.log'), 'utf8');

  /** Waits until `queue list` shows every recipient of `domain` deferred after ≥ 1 attempt. */
  async function deferred(domain: string, n: number): Promise<Listed[]> {
    const until = Date.now() + within(15_000);
    for (;;) {
      const rows = await list('--domain', domain);
      if (rows.length === n && rows.every((r) => r.state === 'deferred' && r.attempts >= 1)) return rows;
      if (Date.now() > until) throw new Error(`not deferred: ${JSON.stringify(rows)}\n${postern.output()}`);
      await sleep(100);
    }
  }

  const send = async (to: string[], subject: string, body = `token-${subject}-body`) => {
    const r = await sendMail(
      postern.port,
      SENDER,
      to,
      `From: <${SENDER}>\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@client.test>\r\n\r\n${body}\r\n`,
      postern.host,
    );
    assert.equal(r.code, 250, r.text);
  };

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'postern-qc-'));
    dataDir = join(tmp, 'data');
    dns = await startDnsServer({
      host: A(1),
      port: DNS_PORT,
      zone: {
        'dest.test': { MX: [{ preference: 10, exchange: 'mx.dest.test' }] },
        'mx.dest.test': { A: [A(2)] }, // nothing listens until the delivernow test starts a peer
        'down.test': { MX: [{ preference: 10, exchange: 'mx.down.test' }] },
        'mx.down.test': { A: [A(4)] }, // nothing ever listens
        'relay.client.test': { A: [A(3)] }, // the sender's domain, by SMTP route
        'limited.test': { MX: [{ preference: 10, exchange: 'mx.limited.test' }] },
        'mx.limited.test': { A: [A(5)] }, // 1 recipient per 60 minutes (destconfig)
      },
    });
    senderPeer = await startSmtpPeer({ host: A(3), port: ROUTE_PORT, hostname: 'relay.client.test' });
    limitedPeer = await startSmtpPeer({ host: A(5), port: SMTP_PORT, hostname: 'mx.limited.test' });
    await runCliOk(['smtproutes', 'new', 'client.test', `relay.client.test:${ROUTE_PORT}`, '--data-dir', dataDir]);
    await runCliOk(['destconfig', 'new', 'limited.test', '--recipients', '1/60', '--limit-per', 'domain', '--enforce', 'system', '--data-dir', dataDir]);
    postern = await startPostern({
      dataDir,
      listen: LISTEN,
      dnsServer: dns.address,
      smtpPort: SMTP_PORT,
      hostname: HOSTNAME,
      config: { timeouts: { connect: 3, greeting: 5, ehlo: 5, mail: 5, rcpt: 5, dataInit: 5, dataBlock: 5, dataTerm: 5 } },
    });
  });

  after(async () => {
    await postern?.stop(5000);
    await Promise.allSettled([dns?.close(), senderPeer?.close(), destPeer?.close(), limitedPeer?.close()]);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  let m1 = 0;
  let m2 = 0;

  it('queue list --json shows unreachable mail deferred, attempts ≥ 1, next attempt about a minute away', async () => {
    await send(['a@dest.test', 'b@dest.test'], 'first');
    await send(['c@dest.test'], 'second');
    const rows = await deferred('dest.test', 3);
    m1 = rows.find((r) => r.to === 'a@dest.test')!.mid;
    m2 = rows.find((r) => r.to === 'c@dest.test')!.mid;
    assert.notEqual(m1, m2);
    assert.deepEqual(rows.map((r) => [r.mid, r.rid, r.to]), [
      [m1, 0, 'a@dest.test'],
      [m1, 1, 'b@dest.test'],
      [m2, 0, 'c@dest.test'],
    ]);
    for (const r of rows) {
      assert.equal(r.from, SENDER);
      assert.match(r.lastReply ?? '', /^4\.4\.1 /, 'no host answered');
      assert.ok(Date.parse(r.nextAttempt!) - Date.now() > 30_000, `the retry is about 60 s away: ${r.nextAttempt}`);
    }
  });

  it('queue show MID prints the envelope, every recipient and the headers, not the body', async () => {
    const out = await cli('queue', 'show', String(m1));
    assert.match(out, new RegExp(`^MID ${m1}\\n`));
    assert.match(out, /^From: <sender@client\.test>$/m);
    assert.match(out, /^Size: \d+ bytes$/m);
    assert.match(out, /^Received: \d{4}-\d\d-\d\dT\S+ from 127\.\d+\.\d+\.\d+$/m, 'arrival time and the client address');
    assert.match(out, /^0\s+a@dest\.test\s+deferred\s+[1-9]\d*\s+\S+\s+4\.4\.1 /m);
    assert.match(out, /^1\s+b@dest\.test\s+deferred\s+[1-9]\d*\s+\S+\s+4\.4\.1 /m);
    assert.match(out, /^Subject: first$/m);
    assert.match(out, /^Received: from .*\n\tby postern-qc\.test \(Postern\)/m, "Postern's own Received header is shown");
    assert.doesNotMatch(out, /token-first-body/, 'no body without --body');
    assert.match(await cli('queue', 'show', String(m1), '--body'), /^token-first-body$/m);
  });

  it('queue show MID --json has the same facts, the headers as fields, and the message only with --body', async () => {
    const v = JSON.parse(await cli('queue', 'show', String(m2), '--json')) as {
      mid: number;
      inQueue: boolean;
      from: string;
      size: number;
      receivedAt: string;
      client: string;
      recipients: { rid: number; to: string; state: string; attempts: number; nextAttempt: string; lastReply: string }[];
      headers: { name: string; value: string }[];
      message?: string;
    };
    assert.equal(v.mid, m2);
    assert.equal(v.inQueue, true);
    assert.equal(v.from, SENDER);
    assert.match(v.client, /^127\.\d+\.\d+\.\d+$/);
    assert.ok(v.size > 50);
    assert.ok(Math.abs(Date.parse(v.receivedAt) - Date.now()) < 60_000);
    assert.equal(v.recipients.length, 1);
    assert.equal(v.recipients[0]!.to, 'c@dest.test');
    assert.equal(v.recipients[0]!.state, 'deferred');
    assert.ok(v.recipients[0]!.attempts >= 1);
    assert.ok(Date.parse(v.recipients[0]!.nextAttempt) > Date.now() + 30_000);
    assert.match(v.recipients[0]!.lastReply, /^4\.4\.1 /);
    assert.ok(v.headers.some((h) => h.name === 'Subject' && h.value === 'second'));
    assert.ok(v.headers.some((h) => h.name === 'Received' && h.value.includes(`by ${HOSTNAME} (Postern)`)), 'folded header unfolded');
    assert.equal(v.message, undefined);
    const withBody = JSON.parse(await cli('queue', 'show', String(m2), '--json', '--body')) as { message: string };
    assert.match(withBody.message, /token-second-body/);
  });

  it('queue delivernow DOMAIN delivers within seconds, long before the 60 s retry, and resets the counters', async () => {
    destPeer = await startSmtpPeer({ host: A(2), port: SMTP_PORT, hostname: 'mx.dest.test' });
    await sleep(1500); // nothing is retried by itself meanwhile
    assert.equal(destPeer.messages.length, 0, 'not retried before delivernow');
    const started = Date.now();
    const out = await cli('queue', 'delivernow', 'DEST.test');
    assert.match(out, /^3 recipients of 2 messages for dest\.test made due now\. The destination counters of dest\.test are reset/);
    await destPeer.waitForMessages(2, 5000);
    assert.ok(Date.now() - started < 5000, `delivered ${Date.now() - started} ms after delivernow`);
    await waitFor('both messages recorded as delivered', () => mailLog().match(/Message done DCID \d+ MID/g)?.length === 2, 5000);
    assert.deepEqual(destPeer.messages.map((m) => m.to.join(',')).sort(), ['a@dest.test,b@dest.test', 'c@dest.test']);
    assert.deepEqual(await list('--domain', 'dest.test'), []);
    const delivered = await list('--state', 'delivered', '--domain', 'dest.test');
    assert.deepEqual(delivered.map((r) => r.to).sort(), ['a@dest.test', 'b@dest.test', 'c@dest.test']);
    // The CLI logged the action; the running gateway logged that it reset the counters.
    await waitFor('the gateway picked up delivernow', () => /Info: Queue limits-reset: destination counters of dest\.test reset/.test(mailLog()), 3000);
    assert.match(mailLog(), /Info: Queue delivernow: 3 recipients of 2 messages for dest\.test made due now; the destination counters of dest\.test reset/);
  });

  it('queue delivernow DOMAIN resets the recipient window: mail held by a full window goes at once', async () => {
    await send(['one@limited.test'], 'limited1');
    await limitedPeer!.waitForMessages(1, 10_000);
    await send(['two@limited.test'], 'limited2');
    await sleep(2000);
    assert.equal(limitedPeer!.messages.length, 1, 'the 1-per-60-minutes window holds the second message');
    assert.deepEqual((await list('--domain', 'limited.test')).map((r) => [r.to, r.state]), [['two@limited.test', 'queued']]);
    const started = Date.now();
    assert.match(await cli('queue', 'delivernow', 'limited.test'), /^1 recipient of 1 message for limited\.test made due now\./);
    await limitedPeer!.waitForMessages(2, 5000);
    assert.ok(Date.now() - started < 5000, `delivered ${Date.now() - started} ms after delivernow`);
    assert.deepEqual(limitedPeer!.messages[1]!.to, ['two@limited.test']);
  });

  it('a recipient held in memory by a full window and then deleted is never sent', async () => {
    await send(['three@limited.test'], 'limited3');
    const [held] = await list('--domain', 'limited.test');
    assert.equal(held?.to, 'three@limited.test');
    await sleep(1000);
    assert.match(await cli('queue', 'delete', String(held.mid)), /^1 recipient of 1 message deleted/);
    await cli('queue', 'delivernow', 'limited.test');
    await sleep(2500);
    assert.equal(limitedPeer!.messages.length, 2, 'the deleted recipient was not sent after the window reset');
  });

  let m3 = 0;
  let m4 = 0;
  let bouncedAttempts = 0;

  it('queue bounce MID fails the recipient now with a 5.0.0 DSN to the sender', async () => {
    await send(['x@down.test'], 'third');
    await send(['y@down.test'], 'fourth');
    const rows = await deferred('down.test', 2);
    m3 = rows.find((r) => r.to === 'x@down.test')!.mid;
    m4 = rows.find((r) => r.to === 'y@down.test')!.mid;
    bouncedAttempts = rows.find((r) => r.to === 'x@down.test')!.attempts;
    const before = senderPeer.messages.length;

    const out = await cli('queue', 'bounce', String(m3));
    assert.match(out, /^1 recipient of 1 message bounced \(5\.0\.0 bounced by the administrator\), 1 DSN queued\./);
    assert.match(out, new RegExp(`MID ${m3}: RID 0 <x@down\\.test>; DSN MID \\d+ to <sender@client\\.test>`));

    await senderPeer.waitForMessages(before + 1, 10_000);
    const dsn = senderPeer.messages[before]!;
    assert.equal(dsn.from, '', 'from the null sender');
    assert.deepEqual(dsn.to, [SENDER]);
    const raw = dsn.data.toString();
    assert.match(raw, /Content-Type: multipart\/report; report-type=delivery-status/);
    const parsed = await simpleParser(dsn.data);
    assert.equal(parsed.subject, 'Undelivered Mail Returned to Sender');
    const text = parsed.text ?? '';
    assert.match(text, /Final-Recipient: rfc822; x@down\.test/);
    assert.match(text, /Action: failed/);
    assert.match(text, /Status: 5\.0\.0/);
    assert.match(text, /Diagnostic-Code: smtp; bounced by the administrator/);
    assert.match(text, new RegExp(`Reporting-MTA: dns; ${HOSTNAME.replace(/\./g, '\\.')}`), 'the hostname the gateway runs with');
    assert.doesNotMatch(text, /y@down\.test/);
    assert.ok(parsed.attachments.some((a) => a.contentType === 'message/rfc822' && a.content.toString().includes('token-third-body')), 'the original is attached');

    const pending = await list('--domain', 'down.test');
    assert.deepEqual(pending.map((r) => r.to), ['y@down.test'], 'the bounced recipient left the queue; the other stays');
    const bounced = await list('--state', 'bounced');
    assert.deepEqual(bounced.map((r) => [r.mid, r.to]), [[m3, 'x@down.test']]);
    assert.equal(bounced[0]!.lastReply, '5.0.0 bounced by the administrator');
    assert.equal(bounced[0]!.attempts, bouncedAttempts, 'an operator bounce is not a delivery attempt');
  });

  it('queue show of a message that left the queue shows the outcomes from history', async () => {
    const out = await cli('queue', 'show', String(m3));
    assert.match(out, /no longer in the queue/);
    assert.match(out, /x@down\.test\s+bounced\s+\d+\s+\S+\s+5\.0\.0 bounced by the administrator/);
  });

  it('queue delete MID removes the recipient without a DSN; --state deleted lists it', async () => {
    const before = senderPeer.messages.length;
    const out = await cli('queue', 'delete', String(m4));
    assert.match(out, /^1 recipient of 1 message deleted \(no DSN\)\./);
    assert.match(out, new RegExp(`MID ${m4}: RID 0 <y@down\\.test>`));
    assert.deepEqual(await list('--domain', 'down.test'), []);
    const deleted = await list('--state', 'deleted', '--domain', 'down.test');
    assert.deepEqual(deleted.map((r) => [r.mid, r.to, r.lastReply]), [[m4, 'y@down.test', 'deleted by the administrator']]);
    await sleep(2000);
    assert.equal(senderPeer.messages.length, before, 'no DSN for a deleted recipient');
    assert.ok(!senderPeer.messages.some((m) => m.data.toString().includes('y@down.test')));
  });

  it('queue delete --domain and bounce --all act on every queued recipient they name', async () => {
    await send(['p@down.test', 'q@down.test'], 'fifth');
    await send(['r@down.test'], 'sixth');
    await deferred('down.test', 3);
    const out = await cli('queue', 'delete', '--domain', 'down.test');
    assert.match(out, /^3 recipients of 2 messages deleted \(no DSN\)\./);
    assert.deepEqual(await list(), []);
    const empty = await cli('queue', 'bounce', '--all');
    assert.match(empty, /The queue is empty: nothing bounced\./);
  });

  it('refuses bad requests with a clear message and a non-zero exit', async () => {
    const unknownShow = await cliRaw('queue', 'show', '99999');
    assert.equal(unknownShow.code, 1);
    assert.match(unknownShow.stderr, /MID 99999 is not in the queue/);
    for (const verb of ['bounce', 'delete']) {
      const unknown = await cliRaw('queue', verb, '99999');
      assert.equal(unknown.code, 1, `${verb} of an unknown MID`);
      assert.match(unknown.stderr, /MID 99999 is not in the queue/);
      const nothing = await cliRaw('queue', verb, '--domain', 'nothing.test');
      assert.equal(nothing.code, 1);
      assert.match(nothing.stderr, /nothing is queued for nothing\.test/);
      const none = await cliRaw('queue', verb);
      assert.equal(none.code, 2, `${verb} without MID, --domain or --all`);
      assert.match(none.stderr, /exactly one of MID, --domain DOMAIN, --all/);
      const two = await cliRaw('queue', verb, '5', '--all');
      assert.equal(two.code, 2);
      const notMid = await cliRaw('queue', verb, 'abc');
      assert.equal(notMid.code, 2);
      assert.match(notMid.stderr, /invalid MID "abc"/);
    }
    const again = await cliRaw('queue', 'bounce', String(m3));
    assert.equal(again.code, 1);
    assert.match(again.stderr, new RegExp(`MID ${m3} has no queued recipient to bounce \\(1 bounced\\)`));
    const badDomain = await cliRaw('queue', 'delivernow', 'not a domain');
    assert.equal(badDomain.code, 2);
    const nothingDue = await cli('queue', 'delivernow', 'nothing.test');
    assert.match(nothingDue, /^Nothing is queued for nothing\.test\. The destination counters of nothing\.test are reset/);
  });

  it('every action is in the mail log', async () => {
    const log = mailLog();
    assert.match(log, /Info: Queue delivernow: 3 recipients of 2 messages for dest\.test/);
    assert.match(log, new RegExp(`Info: Queue bounce: MID ${m3} RID \\[0\\] <x@down\\.test>: 5\\.0\\.0 bounced by the administrator; DSN MID \\d+ to <sender@client\\.test>`));
    assert.match(log, new RegExp(`Warning: Bounced: MID ${m3} to RID 0 <x@down\\.test> - 5\\.0\\.0 - bounced by the administrator`));
    assert.match(log, new RegExp(`Info: MID \\d+ DSN for MID ${m3} to <sender@client\\.test>`));
    assert.match(log, new RegExp(`Info: Queue delete: MID ${m4} RID \\[0\\] <y@down\\.test>: deleted by the administrator, no DSN`));
    assert.equal(log.match(/Info: Queue delete: /g)?.length, 4, 'one line per message deleted');
    const json = readFileSync(logFile(dataDir, 'mail.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; action?: string });
    const actions = json.filter((e) => e.event === 'queue-action').map((e) => e.action);
    const count = (a: string) => actions.filter((x) => x === a).length;
    assert.deepEqual([count('delivernow'), count('bounce'), count('delete')], [4, 1, 4], actions.join(' '));
    assert.ok(count('limits-reset') >= 3, 'the gateway logged each counters reset it applied');
    assert.deepEqual(actions.slice(0, 4), ['delivernow', 'limits-reset', 'delivernow', 'limits-reset']);
    // Every line is whole: the CLI's appends never tore the gateway's lines.
    for (const line of log.trimEnd().split('\n')) assert.match(line, /^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} (Info|Warning): /);
  });
});

describe('queue control races with delivery in flight (the store)', () => {
  let dir = '';
  let q: QueueStore;
  const events: MailEvent[] = [];
  const sink: EventSink = { write: (e) => events.push(e) };
  const msg = (to: string[]) => ({
    sender: SENDER,
    body: Buffer.from('Subject: race\r\n\r\nbody\r\n'),
    receivedAt: Date.now(),
    recipients: to.map((address) => ({ address, domain: address.slice(address.indexOf('@') + 1) })),
  });

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'postern-qc-store-'));
    q = QueueStore.open(dir);
  });
  after(() => {
    q.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a deferral or a success reported after a delete does not bring the recipient back', async () => {
    const mid = await q.accept(msg(['a@race.test', 'b@race.test']));
    const [a, b] = q.recipientsOf(mid);
    q.record({ deferred: [{ ids: [a!.id, b!.id], reply: '4.4.1 down', nextAttempt: Date.now() + 60_000, countAttempt: true }] });
    const r = deleteQueued(q, sink, { mid });
    assert.equal(r.recipients, 2);
    assert.equal(q.message(mid), undefined, 'a message with nothing queued leaves the queue');
    // The engine, still holding the batch, now reports its outcomes.
    q.record({ deferred: [{ ids: [a!.id], reply: '4.4.1 down again', nextAttempt: Date.now(), countAttempt: true }] });
    q.record({ delivered: { ids: [b!.id], reply: '250 ok' } });
    assert.deepEqual(q.list(), []);
    assert.deepEqual(q.queuedIn({}), []);
    assert.equal(q.nextDue(), null);
    const hist = q.list({ state: 'deleted' });
    assert.deepEqual(hist.map((h) => [h.to, h.attempts, h.lastReply]), [
      ['a@race.test', 1, 'deleted by the administrator'],
      ['b@race.test', 1, 'deleted by the administrator'],
    ]);
    assert.deepEqual(q.list({ state: 'delivered' }), []);
    assert.deepEqual(q.sendable(mid, [a!.id, b!.id]), { live: new Set() }, 'nothing left to send, no message read');
  });

  it('a bounce of one recipient keeps the message for the others; a later outcome for it changes nothing', async () => {
    const cfg = ConfigStore.open(dir);
    const snapshot = cfg.snapshot();
    cfg.close();
    const mid = await q.accept(msg(['c@race.test', 'd@other.test']));
    const [c, d] = q.recipientsOf(mid);
    const r = bounceQueued(q, sink, snapshot, { domain: 'race.test' }, { hostname: 'h.test' });
    assert.equal(r.recipients, 1);
    assert.equal(r.messages[0]!.dsns.length, 1);
    assert.ok(q.message(mid), 'the message stays for d@other.test');
    q.record({ deferred: [{ ids: [c!.id], reply: '4.4.1 late', nextAttempt: Date.now(), countAttempt: true }] });
    q.record({ delivered: { ids: [c!.id], reply: '250 late' } });
    assert.deepEqual(
      q.list({ domain: 'race.test' }).map((x) => x.to),
      [],
    );
    const sendable = q.sendable(mid, [c!.id, d!.id]);
    assert.deepEqual([...sendable.live], [d!.id], 'only d@other.test is still to be sent');
    assert.equal(sendable.message?.id, mid);
    assert.equal(sendable.body?.toString(), q.body(mid)?.toString());
    const cNow = q.recipientsOf(mid).find((x) => x.id === c!.id)!;
    assert.deepEqual([cNow.state, cNow.attempts, cNow.lastReply], ['bounced', 0, '5.0.0 bounced by the administrator'], 'the late outcomes left no trace');
    const bounced = q.list({ state: 'bounced' });
    assert.deepEqual(bounced.map((x) => [x.to, x.attempts]), [['c@race.test', 0]]);
    // The DSN is queued for the sender, from the null sender, and is itself never bounced.
    const dsnMid = r.messages[0]!.dsns[0]!.mid;
    const dsnInfo = q.message(dsnMid)!;
    assert.equal(dsnInfo.sender, '');
    assert.equal(dsnInfo.isBounce, true);
    assert.match(q.body(dsnMid)!.toString(), /Status: 5\.0\.0/);
    assert.throws(() => bounceQueued(q, sink, snapshot, { mid: dsnMid + 100 }, { hostname: 'h.test' }), QueueActionError);
    const again = bounceQueued(q, sink, snapshot, { mid: dsnMid }, { hostname: 'h.test' });
    assert.deepEqual(again.messages[0]!.dsns, [], 'no DSN for a DSN');
    assert.ok(events.some((e) => e.event === 'queue-action' && e.action === 'bounce'));
  });
});
