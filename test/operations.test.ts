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
 * Address block 127.0.71.x and ports 2671–2672 are this file's own.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDnsServer, type DnsServer } from './peers/dns-server.js';
import { startSmtpPeer, type SmtpPeer } from './peers/smtp-peer.js';
import { sendMail, tempDir, waitFor } from './harness.js';
import { logFile, runCli, startPostern, type PosternProcess } from './process.js';
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
      const refused: number[] = [];
      for (let i = 0; i < 6; i++) refused.push((await send(`full${i}`, big)).code);
      assert.ok(refused.every((c) => c === 451), `every message refused with 451 while full: ${refused.join(',')}`);
      await new Promise((r) => setTimeout(r, 2500)); // the engine polls a few times meanwhile
      assert.equal(gw.output().match(/postern: queue storage: /g)?.length ?? 0, 1, `reported once:\n${gw.output()}`);
      const r = await send('full-text', 'small\r\n');
      assert.equal(r.code, 451);
      assert.match(r.text, /^4\.3\.0 /);
      // Space returns.
      rmSync(filler);
      assert.equal((await send('back0', big)).code, 250);
      assert.equal((await send('back1', 'small\r\n')).code, 250);
      await waitFor('back0 and back1 delivered', () => ['back0', 'back1'].every((t) => peer.messages.some((m) => m.to.includes(`${t}@full.test`))));
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
