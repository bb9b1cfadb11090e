/**
 * Running Postern as a service (issue T2 2/9), with the real `postern` process:
 * - one gateway per data directory: a second start is refused at once naming the directory and
 *   the running gateway's process id; CLI commands work beside it; after SIGKILL a new start
 *   needs no manual step;
 * - SIGHUP reopens the log files: logrotate's rename + HUP loses and splits nothing, and the
 *   gateway keeps running;
 * - `--log-to stdout` and `--log-to syslog` (to a UDP syslog server on loopback);
 * - a full file system (a small tmpfs): 451 4.3.0, the gateway keeps running, the condition is
 *   reported once when it starts and once when it ends, and accepting and delivering resume
 *   without a restart, losing nothing acknowledged.
 * - errors that name the data directory and the reason; SMTP polish at the listener.
 * Address block 127.0.71.x and ports 2671–2673 are this file's own.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDnsServer, type DnsServer } from './peers/dns-server.js';
import { startSmtpPeer, type SmtpPeer } from './peers/smtp-peer.js';
import { rawSession, sendMail, tempDir, waitFor } from './harness.js';
import { logFile, POSTERN_BIN, runCli, startPostern, type PosternProcess } from './process.js';
import { within } from './deadline.js';

const MX_PORT = 2671;
const A = (n: number) => `127.0.71.${n}`;
const EVENT_LINE = /^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} (Info|Warning): \S/;

describe('running as a service', { timeout: within(240_000) }, () => {
  let dns: DnsServer;
  let peer: SmtpPeer;

  before(async () => {
    dns = await startDnsServer({
      zone: {
        'ops.test': { MX: [{ preference: 10, exchange: 'mx.ops.test' }] },
        'mx.ops.test': { A: [A(1)] },
      },
    });
    peer = await startSmtpPeer({ host: A(1), port: MX_PORT, hostname: 'mx.ops.test' });
  });
  after(async () => {
    await peer?.close();
    await dns?.close();
  });

  const start = (dataDir: string, args: string[] = []) =>
    startPostern({ dataDir, dnsServer: dns.address, smtpPort: MX_PORT, hostname: 'postern-ops.test', args });
  const send = (gw: PosternProcess, tag: string, body = 'Hello.\r\n') =>
    sendMail(gw.port, 'sender@client.test', [`${tag}@ops.test`], `Subject: ${tag}\r\n\r\n${body}`, gw.host);
  const delivered = (tag: string) => waitFor(`${tag} at the peer`, () => peer.messages.find((m) => m.to.includes(`${tag}@ops.test`)));

  it('refuses a second gateway on the same data directory, naming it and the running process; a SIGKILL frees it', async () => {
    const dir = tempDir();
    const first = await start(dir);
    try {
      const refused = await start(dir).then(
        (p) => {
          void p.kill();
          return null;
        },
        (e: Error) => e.message,
      );
      assert.ok(refused !== null, 'the second gateway must not start');
      assert.match(refused, /exited \(code 1/);
      assert.match(refused, new RegExp(`data directory ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is in use by a running gateway \\(process id ${first.pid}\\)`));
      // The CLI works beside the running gateway.
      const list = await runCli(['queue', 'list', '--data-dir', dir]);
      assert.equal(list.code, 0, list.stderr);
      assert.equal((await send(first, 'lock1')).code, 250);
      await delivered('lock1');
    } finally {
      await first.kill('SIGKILL');
    }
    const again = await start(dir);
    assert.equal((await send(again, 'lock2')).code, 250);
    await delivered('lock2');
    assert.equal((await again.stop()).code, 0);
    assert.ok(!existsSync(join(dir, 'gateway.pid')), 'the pid file goes with the gateway');
  });

  it('SIGHUP reopens the log files: a rename by logrotate loses and splits nothing, and the gateway keeps running', async () => {
    const dir = tempDir();
    const gw = await start(dir);
    try {
      for (let i = 0; i < 5; i++) assert.equal((await send(gw, `before${i}`)).code, 250);
      await delivered('before4');
      await waitFor('the last delivery logged', () => readFileSync(logFile(dir, 'mail.log'), 'utf8').includes('Message done') && readFileSync(logFile(dir, 'mail.log'), 'utf8').split('Message done').length > 5);
      renameSync(logFile(dir, 'mail.log'), `${logFile(dir, 'mail.log')}.1`);
      renameSync(logFile(dir, 'mail.jsonl'), `${logFile(dir, 'mail.jsonl')}.1`);
      process.kill(gw.pid, 'SIGHUP');
      await waitFor('the new mail.log', () => existsSync(logFile(dir, 'mail.log')) && readFileSync(logFile(dir, 'mail.log'), 'utf8').includes('log files reopened'));
      for (let i = 0; i < 5; i++) assert.equal((await send(gw, `after${i}`)).code, 250);
      await delivered('after4');
      // The CLI writes its events through the same file name.
      const q = await runCli(['queue', 'delivernow', '--data-dir', dir]);
      assert.equal(q.code, 0, q.stderr);
      await waitFor('the after-rotation lines', () => readFileSync(logFile(dir, 'mail.log'), 'utf8').split('Message done').length > 5);
    } finally {
      assert.equal((await gw.stop()).code, 0, 'still running and stopping cleanly after SIGHUP');
    }
    const old = readFileSync(`${logFile(dir, 'mail.log')}.1`, 'utf8');
    const fresh = readFileSync(logFile(dir, 'mail.log'), 'utf8');
    for (const text of [old, fresh]) {
      assert.ok(text.endsWith('\n'));
      for (const l of text.split('\n').slice(0, -1)) assert.match(l, EVENT_LINE, `a split or partial line: ${JSON.stringify(l)}`);
    }
    for (let i = 0; i < 5; i++) {
      assert.ok(old.includes(`before${i}@ops.test`), `before${i} in the rotated file`);
      assert.ok(fresh.includes(`after${i}@ops.test`), `after${i} in the new file`);
    }
    assert.match(fresh, /Queue /, 'the CLI event went to the new file');
    assert.match(fresh, /Postern \S+ stopped/);
    const jsonOld = readFileSync(`${logFile(dir, 'mail.jsonl')}.1`, 'utf8').trim().split('\n');
    const jsonNew = readFileSync(logFile(dir, 'mail.jsonl'), 'utf8').trim().split('\n');
    for (const l of [...jsonOld, ...jsonNew]) JSON.parse(l);
  });

  it('--log-to stdout writes the text log to standard output (mail.jsonl still written)', async () => {
    const dir = tempDir();
    const gw = await start(dir, ['--log-to', 'stdout']);
    try {
      assert.equal((await send(gw, 'stdout1')).code, 250);
      await delivered('stdout1');
      await waitFor('the event on stdout', () => /Info: Message done DCID \d+ MID \d+/.test(gw.output()));
    } finally {
      await gw.stop();
    }
    assert.ok(!existsSync(logFile(dir, 'mail.log')), 'no mail.log');
    assert.match(readFileSync(logFile(dir, 'mail.jsonl'), 'utf8'), /"event":"message-done"/);
  });

  it('--log-to syslog without a local syslog socket is refused at start, not silently lost', { skip: existsSync('/dev/log') ? 'this machine has /dev/log' : false }, async () => {
    const dir = join(tempDir(), 'nolog');
    const msg = await start(dir, ['--log-to', 'syslog']).then(
      async (p) => {
        await p.kill();
        return 'started';
      },
      (e: Error) => e.message,
    );
    assert.match(msg, /--log-to syslog: \/dev\/log does not exist .*give --syslog HOST:PORT/);
    assert.ok(!existsSync(dir));
  });

  it('--log-to syslog sends each line with the mail facility and its severity', async () => {
    const server = dgram.createSocket('udp4');
    const got: string[] = [];
    server.on('message', (m) => got.push(m.toString('utf8')));
    await new Promise<void>((r) => server.bind(0, '127.0.0.1', () => r()));
    const dir = tempDir();
    const gw = await start(dir, ['--log-to', 'syslog', '--syslog', `127.0.0.1:${server.address().port}`]);
    try {
      assert.equal((await send(gw, 'syslog1')).code, 250);
      await delivered('syslog1');
      await waitFor('a Message done datagram', () => got.find((g) => /postern.*Message done DCID/.test(g)));
      // <22> = mail.info (facility 2, severity 6).
      assert.ok(got.some((g) => g.startsWith('<22>') && g.includes('Message done')), got.join('\n'));
    } finally {
      await gw.stop();
      server.close();
    }
  });
});

function canMountTmpfs(): boolean {
  if (process.getuid?.() !== 0) return false;
  const probe = tempDir();
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('a full disk', { timeout: within(180_000) }, () => {
  const mountable = canMountTmpfs();
  let dns: DnsServer;
  let peer: SmtpPeer;
  let mnt = '';

  before(async () => {
    if (!mountable) return;
    dns = await startDnsServer({ zone: { 'full.test': { MX: [{ preference: 10, exchange: 'mx.full.test' }] }, 'mx.full.test': { A: [A(2)] } } });
    peer = await startSmtpPeer({ host: A(2), port: 2672, hostname: 'mx.full.test' });
    mnt = tempDir();
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt]);
  });
  after(async () => {
    await peer?.close();
    await dns?.close();
    if (mnt) execFileSync('umount', ['-l', mnt]);
  });

  it('is survived: 451 while full, reported once, resumes when space returns, nothing acknowledged lost', { skip: mountable ? false : 'needs root and tmpfs (mount -t tmpfs) to make a small file system' }, async () => {
    const dir = join(mnt, 'data');
    mkdirSync(dir);
    const gw = await startPostern({ dataDir: dir, dnsServer: dns.address, smtpPort: 2672, hostname: 'postern-full.test' });
    const send = (tag: string, body: string) => sendMail(gw.port, 'sender@client.test', [`${tag}@full.test`], `Subject: ${tag}\r\n\r\n${body}`, gw.host);
    const big = `${'x'.repeat(998)}\r\n`.repeat(300);
    try {
      assert.equal((await send('ok0', 'small\r\n')).code, 250);
      await waitFor('ok0 delivered', () => peer.messages.find((m) => m.to.includes('ok0@full.test')));
      // Take every free block.
      const filler = join(mnt, 'filler');
      const fd = openSync(filler, 'w');
      for (const size of [1 << 20, 1 << 16, 1 << 12, 512, 64, 1]) {
        const chunk = Buffer.alloc(size, 0x61);
        try {
          for (;;) writeSync(fd, chunk);
        } catch (e) {
          assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
        }
      }
      closeSync(fd);
      // A message that still fits in write-ahead-log space SQLite already holds (the log starts
      // over once checkpointed) is stored and acknowledged: durable, and delivered below. Once
      // nothing fits, every message is refused with 451.
      const sent: { tag: string; code: number; text: string }[] = [];
      for (let i = 0; i < 14; i++) sent.push({ tag: `full${i}`, ...(await send(`full${i}`, big)) });
      const codes = sent.map((x) => x.code).join(',');
      assert.ok(sent.every((x) => x.code === 250 || x.code === 451), `250 or 451 only: ${codes}`);
      assert.ok(sent.slice(-6).every((x) => x.code === 451), `refused with 451 once full: ${codes}`);
      const acknowledged = sent.filter((x) => x.code === 250).map((x) => x.tag);
      await new Promise((r) => setTimeout(r, 2500)); // the engine polls a few times meanwhile
      assert.equal(gw.output().match(/postern: queue storage: /g)?.length ?? 0, 1, `reported once:\n${gw.output()}`);
      assert.match(sent[sent.length - 1]!.text, /^4\.3\.0 /);
      // A small message may still fit where a large one did not: stored, or refused the same way.
      const small = await send('full-small', 'small\r\n');
      if (small.code === 250) acknowledged.push('full-small');
      else assert.match(`${small.code} ${small.text}`, /^451 4\.3\.0 /);
      // Space returns.
      rmSync(filler);
      assert.equal((await send('back0', big)).code, 250);
      assert.equal((await send('back1', 'small\r\n')).code, 250);
      await waitFor('back0, back1 and every acknowledged message delivered', () => ['back0', 'back1', ...acknowledged].every((t) => peer.messages.some((m) => m.to.includes(`${t}@full.test`))));
      await waitFor('the condition ended in the log', () => readFileSync(logFile(dir, 'mail.log'), 'utf8').includes('Condition ended: queue storage'));
      const log = readFileSync(logFile(dir, 'mail.log'), 'utf8');
      assert.equal(log.match(/Condition started: queue storage/g)?.length, 1, log);
      assert.equal(log.match(/Condition ended: queue storage/g)?.length, 1, log);
      assert.match(gw.output(), /postern: queue storage: ended after \d+ s/);
    } finally {
      const status = await gw.stop();
      assert.equal(status.code, 0, `the gateway ran to the end:\n${gw.output()}`);
    }
  });
});

describe('errors that say where and why', { timeout: within(120_000) }, () => {
  it('commands that only read never create a data directory: a mistyped path is an error', async () => {
    const dir = join(tempDir(), 'mistyped');
    for (const args of [['queue', 'list'], ['queue', 'show', '1'], ['destconfig', 'list'], ['destconfig', 'detail'], ['destconfig', 'export', join(tempDir(), 'out.ini')], ['smtproutes', 'list'], ['vgconfig', 'list'], ['bounceconfig', 'list'], ['certconfig', 'list'], ['tlsverify', 'example.com']]) {
      const r = await runCli([...args, '--data-dir', dir]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^postern: data directory ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: does not exist`), args.join(' '));
      assert.ok(!existsSync(dir), `${args.join(' ')} created the directory`);
    }
  });

  it('a data directory that cannot be used is named with the reason, at once', async () => {
    const file = join(tempDir(), 'a-file');
    writeFileSync(file, 'x');
    for (const [dir, reason] of [['/proc', /kernel pseudo file system/], [file, /exists and is not a directory/], [join(file, 'sub'), /not a directory/]] as const) {
      const r = await runCli(['destconfig', 'new', 'a.test', '--data-dir', dir]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, reason);
      assert.doesNotMatch(r.stderr, /EEXIST|ENOTDIR|    at /, 'no raw error code or stack');
      const s = await startPostern({ dataDir: dir }).then(
        async (p) => {
          await p.kill();
          return 'started';
        },
        (e: Error) => e.message,
      );
      assert.match(s, reason);
    }
  });

  it('a listener address in use creates nothing and says so', async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as net.AddressInfo).port;
    const dir = join(tempDir(), 'never');
    try {
      const msg = await startPostern({ dataDir: dir, listen: `127.0.0.1:${port}` }).then(
        async (p) => {
          await p.kill();
          return 'started';
        },
        (e: Error) => e.message,
      );
      assert.match(msg, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the address is in use by another process; nothing was started`));
      assert.ok(!existsSync(dir), 'no data directory was created');
    } finally {
      busy.close();
    }
  });

  it('vgconfig new refuses an address this machine does not have', async () => {
    const dir = tempDir();
    const r = await runCli(['vgconfig', 'new', 'g1', '192.0.2.77', '--data-dir', dir]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /invalid gateway address "192\.0\.2\.77": allowed an IPv4 or IPv6 address of this machine/);
    assert.equal((await runCli(['vgconfig', 'new', 'g1', '127.0.71.9', '--data-dir', dir])).code, 0, 'any loopback address is local');
  });

  it('output into a closed pipe ends quietly (postern ... | head -1)', async () => {
    const dir = tempDir();
    const file = join(dir, 'big.ini');
    const sections = Array.from({ length: 3000 }, (_, i) => `[d${i}.example.com]\ntls = preferred\n`).join('');
    writeFileSync(file, `[DEFAULT]\nip_sort_pref = PREFER_V6\nmax_host_concurrency = 500\nmax_messages_per_connection = 50\nlimit_type = 0\nlimit_apply = 0\ntls = 0\nbounce_validation = 0\n${sections}`);
    const imported = await runCli(['destconfig', 'import', file, '--data-dir', dir]);
    assert.equal(imported.code, 0, imported.stderr);
    const child = spawn(process.execPath, [POSTERN_BIN, 'destconfig', 'list', '--data-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    // Read one chunk, then close our end, as `head -1` does.
    await new Promise<void>((r) => child.stdout.once('data', () => r()));
    child.stdout.destroy();
    const code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
    assert.equal(stderr, '', 'no stack trace');
    assert.equal(code, 0);
  });

  it('postern --version prints the version', async () => {
    const r = await runCli(['--version']);
    assert.equal(r.code, 0);
    assert.match(r.stdout.trim(), /^\d+\.\d+\.\d+/);
  });
});

describe('SMTP at the listener', { timeout: within(120_000) }, () => {
  it('greets with ESMTP once, advertises ENHANCEDSTATUSCODES, and every reply carries a code; quoted local parts are accepted', async () => {
    const peer = await startSmtpPeer({ host: A(3), port: 2673, hostname: 'mx.quoted.test' });
    const dns = await startDnsServer({ zone: { 'quoted.test': { MX: [{ preference: 10, exchange: 'mx.quoted.test' }] }, 'mx.quoted.test': { A: [A(3)] } } });
    const gw = await startPostern({ dataDir: tempDir(), dnsServer: dns.address, smtpPort: 2673, hostname: 'postern-smtp.test', args: ['--allow', '127.0.0.1/32'] });
    try {
      const s = await rawSession(gw.port, gw.host);
      assert.match(s.greeting, /^220 postern-smtp\.test ESMTP Postern$/);
      assert.equal(s.greeting.match(/ESMTP/g)?.length, 1);
      const ehlo = await s.cmd('EHLO client.test');
      assert.match(ehlo, /^250-ENHANCEDSTATUSCODES$/m);
      const replies = [
        await s.cmd('MAIL FROM:<sender@client.test>'),
        await s.cmd('RCPT TO:<"john smith"@quoted.test>'),
        await s.cmd('RCPT TO:<"a@b"@quoted.test>'),
        await s.cmd('RCPT TO:<bad@-x.test>'),
        await s.cmd('FOO'),
        await s.cmd('DATA'),
      ];
      for (const r of replies.filter((x) => !x.startsWith('354'))) assert.match(r, /^\d{3} [245]\.\d{1,3}\.\d{1,3} /, `no enhanced code in ${JSON.stringify(r)}`);
      assert.match(replies[1]!, /^250 2\.1\.5 /);
      assert.match(replies[2]!, /^250 2\.1\.5 /);
      assert.match(replies[3]!, /^501 5\.1\.3 /);
      assert.match(replies[4]!, /^500 5\.5\.2 /);
      assert.match(await s.cmd('Subject: q\r\n\r\nhi\r\n.'), /^250 2\.0\.0 /);
      assert.match(await s.cmd('QUIT'), /^221 2\.0\.0 /);
      s.close();
      await waitFor('the message at the peer', () => peer.messages.find((m) => m.to.includes('"john smith"@quoted.test')));
      assert.deepEqual(peer.messages.at(-1)!.to, ['"john smith"@quoted.test', '"a@b"@quoted.test']);
    } finally {
      await gw.stop();
      await peer.close();
      await dns.close();
    }
  });

  it('relay refusal and the idle timeout carry codes; the idle timeout is configurable; the listener logs every refusal and the close', async () => {
    const dir = tempDir();
    const gw = await startPostern({ dataDir: dir, args: ['--allow', '127.0.0.2/32', '--idle-timeout', '1'] });
    try {
      const s = await rawSession(gw.port, gw.host);
      await s.cmd('EHLO client.test');
      assert.match(await s.cmd('BOGUS'), /^500 5\.5\.2 /);
      await s.cmd('MAIL FROM:<a@client.test>');
      assert.match(await s.cmd('RCPT TO:<b@example.com>'), /^554 5\.7\.1 <b@example\.com>: Relay access denied/);
      // Say nothing: the listener gives up after the idle timeout.
      const rest = await s.closed;
      assert.match(rest, /^421 4\.4\.2 /m);
      await waitFor('the close logged', () => /ICID \d+ close/.test(readFileSync(logFile(dir, 'mail.log'), 'utf8')));
    } finally {
      await gw.stop();
    }
    const log = readFileSync(logFile(dir, 'mail.log'), 'utf8');
    const icid = /New SMTP ICID (\d+) interface 127\.0\.0\.1 address 127\.0\.0\.1 port \d+/.exec(log)?.[1];
    assert.ok(icid, log);
    assert.match(log, new RegExp(`Warning: ICID ${icid} refused: 500 5\\.5\\.2 .*\\(address 127\\.0\\.0\\.1\\)`));
    assert.match(log, new RegExp(`Warning: ICID ${icid} refused: 554 5\\.7\\.1 <b@example\\.com>: Relay access denied`));
    assert.match(log, new RegExp(`Warning: ICID ${icid} refused: 421 4\\.4\\.2 `));
    assert.match(log, new RegExp(`Info: ICID ${icid} close`));
    assert.match(log, /Info: Postern \d+\.\d+\.\d+\S* starting: process \d+, listening on 127\.0\.0\.1:\d+/);
    assert.match(log, /Info: Postern \d+\.\d+\.\d+\S* stopped/);
  });

  it('logs the Received id in the Start line, many recipients over bounded lines, and a delivery cut off by a stop', async () => {
    const peer = await startSmtpPeer({ host: A(4), port: 2675, hostname: 'mx.many.test', act: (step) => (step === 'dot' ? { reply: '250 2.0.0 late', delayMs: 9_000 } : undefined) });
    const dns = await startDnsServer({ zone: { 'many.test': { MX: [{ preference: 10, exchange: 'mx.many.test' }] }, 'mx.many.test': { A: [A(4)] } } });
    const dir = tempDir();
    const gw = await startPostern({ dataDir: dir, dnsServer: dns.address, smtpPort: 2675, hostname: 'postern-many.test' });
    let stopped = false;
    try {
      const rcpts = Array.from({ length: 45 }, (_, i) => `r${i + 1}@many.test`);
      assert.equal((await sendMail(gw.port, 'sender@client.test', rcpts, 'Subject: many\r\n\r\nhi\r\n', gw.host)).code, 250);
      await waitFor('the delivery in progress', () => readFileSync(logFile(dir, 'mail.log'), 'utf8').includes('Delivery start'));
      assert.equal((await gw.stop()).code, 0);
      stopped = true;
    } finally {
      if (!stopped) await gw.stop();
      await peer.close();
      await dns.close();
    }
    const log = readFileSync(logFile(dir, 'mail.log'), 'utf8');
    const start = log.split('\n').find((l) => l.includes('Start MID'))!;
    assert.match(start, /To: <r1@many\.test>, .*<r20@many\.test> \(and 25 more on the next lines\) ready \d+ bytes, Received id [0-9a-f]{12}$/);
    assert.doesNotMatch(start, /r21@/);
    assert.match(log, /MID \d+ ICID \d+ To: <r21@many\.test>, .*<r40@many\.test> \(recipients 21–40 of 45\)/);
    assert.match(log, /MID \d+ ICID \d+ To: <r41@many\.test>, .*<r45@many\.test> \(recipients 41–45 of 45\)/);
    assert.match(log, /Warning: DCID \d+ delivery to many\.test cut off: the gateway is stopping; messages in progress stay queued/);
    const list = await runCli(['queue', 'list', '--data-dir', dir]);
    assert.match(list.stdout, /^45 recipients pending/, 'the cut-off recipients are still queued');
  });
});
