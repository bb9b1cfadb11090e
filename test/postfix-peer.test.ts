// Tests of the Postfix test peer (test/peers/postfix.ts) against real Postfix: STARTTLS
// delivery into the Maildir with the TLS facts in Received, a plain instance running at the
// same time that offers no STARTTLS, and stop() leaving no process behind.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { postfixAvailable, startPostfix, type PostfixInstance } from './peers/postfix.js';
import { within } from './deadline.js';

const TLS_HOST = 'mx1.peer.test';
const PLAIN_HOST = 'mx2.peer.test';
const inCI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';

function openssl(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`openssl ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve();
    });
  });
}

/** EC P-256 test CA and a leaf for `host`, as files in `dir` (PEERS.md §2). */
async function makePki(dir: string, host: string): Promise<{ ca: string; key: string; chain: string }> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl(
    ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3650', '-subj', '/CN=Postern Test Root CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    dir,
  );
  await openssl(['req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', `/CN=${host}`], dir);
  await writeFile(
    path.join(dir, 'leaf.ext'),
    `subjectAltName=DNS:${host}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`,
  );
  await openssl(
    ['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '825',
      '-extfile', 'leaf.ext', '-out', 'leaf.crt'],
    dir,
  );
  const ca = await readFile(path.join(dir, 'ca.crt'), 'utf8');
  const leaf = await readFile(path.join(dir, 'leaf.crt'), 'utf8');
  await writeFile(path.join(dir, 'leaf.chain.pem'), leaf + ca);
  return { ca, key: path.join(dir, 'leaf.key'), chain: path.join(dir, 'leaf.chain.pem') };
}

interface Reply {
  code: number;
  lines: string[];
}

/** A deliberately tiny SMTP client: one command, one (multi-line) reply, optional STARTTLS. */
class TinySmtp {
  private sock: net.Socket | tls.TLSSocket;
  private buf = '';
  private waiter: (() => void) | undefined;
  private failure: Error | undefined;

  private constructor(sock: net.Socket) {
    this.sock = sock;
    this.listen(sock);
  }

  static connect(host: string, port: number): Promise<TinySmtp> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port });
      s.once('connect', () => {
        s.removeListener('error', reject);
        resolve(new TinySmtp(s));
      });
      s.once('error', reject);
    });
  }

  private listen(s: net.Socket | tls.TLSSocket): void {
    s.on('data', (d: Buffer) => {
      this.buf += d.toString('utf8');
      this.wake();
    });
    s.on('error', (e: Error) => {
      this.failure = e;
      this.wake();
    });
    s.on('end', () => {
      this.failure ??= new Error('server closed the connection');
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  async read(): Promise<Reply> {
    for (;;) {
      const lines = this.buf.split('\r\n');
      const complete = lines.slice(0, -1);
      const last = complete.findIndex((l) => /^\d{3}(?: |$)/.test(l));
      if (last >= 0) {
        this.buf = lines.slice(last + 1).join('\r\n');
        const got = complete.slice(0, last + 1);
        return { code: Number(got[last]?.slice(0, 3)), lines: got.map((l) => l.slice(4)) };
      }
      if (this.failure) throw this.failure;
      await new Promise<void>((r) => (this.waiter = r));
    }
  }

  async cmd(line: string, expect: number): Promise<Reply> {
    this.sock.write(line + '\r\n');
    const r = await this.read();
    assert.equal(r.code, expect, `${line.split(' ')[0]} -> ${r.code} ${r.lines.join(' / ')}`);
    return r;
  }

  async startTls(ca: string, servername: string): Promise<tls.TLSSocket> {
    await this.cmd('STARTTLS', 220);
    const plain = this.sock;
    plain.removeAllListeners('data');
    plain.removeAllListeners('end');
    const secure = tls.connect({ socket: plain as net.Socket, ca, servername });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.sock = secure;
    this.listen(secure);
    return secure;
  }

  async send(from: string, to: string, message: string): Promise<void> {
    await this.cmd(`MAIL FROM:<${from}>`, 250);
    await this.cmd(`RCPT TO:<${to}>`, 250);
    await this.cmd('DATA', 354);
    const body = message.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
    await this.cmd(`${body}\r\n.`, 250);
  }

  async quit(): Promise<void> {
    await this.cmd('QUIT', 221);
    this.sock.destroy();
  }

  destroy(): void {
    this.sock.destroy();
  }
}

function message(to: string, token: string): string {
  return [
    'From: sender@client.test',
    `To: ${to}`,
    `Subject: postfix peer ${token}`,
    `Message-ID: <${token}@client.test>`,
    `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
    '',
    `token ${token}`,
    '.leading dot line',
    '',
  ].join('\n');
}

function receivedByPeer(raw: string, host: string): string {
  const headers = raw.split(/\r?\n\r?\n/)[0] ?? '';
  const unfolded = headers.replace(/\r?\n[ \t]+/g, ' ');
  const rec = unfolded.split(/\r?\n/).find((l) => /^Received:/i.test(l) && l.includes(`by ${host} (Postfix)`));
  assert.ok(rec, `no Received header by ${host} in:\n${headers}`);
  return rec;
}

/** State and process group of pid from /proc, or undefined once it is gone. */
function procStat(pid: number): { state: string; pgrp: number } | undefined {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0] ?? '', pgrp: Number(rest[2]) };
  } catch {
    return undefined;
  }
}

/** True while pid is a live (non-zombie) process. */
function alive(pid: number): boolean {
  const st = procStat(pid);
  return st !== undefined && st.state !== 'Z';
}

/** Live processes in process group pgid (the master's daemons share its group). */
function groupMembers(pgid: number): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .filter((pid) => {
      const st = procStat(pid);
      return st !== undefined && st.state !== 'Z' && st.pgrp === pgid;
    });
}

if (!postfixAvailable()) {
  if (inCI) {
    test('Postfix is installed (required in CI)', () => {
      assert.fail('/usr/sbin/postfix is missing: .ci/run must install the postfix package');
    });
  } else {
    test('Postfix peer', { skip: 'Postfix not installed (/usr/sbin/postfix missing); apt-get install postfix' }, () => {});
  }
} else {
  describe('Postfix peer', { timeout: within(120_000) }, () => {
    let pkiDir = '';
    let ca = '';
    let tlsPeer: PostfixInstance | undefined;
    let plainPeer: PostfixInstance | undefined;

    before(async () => {
      pkiDir = await mkdtemp(path.join(os.tmpdir(), 'postern-pki-'));
      const pki = await makePki(pkiDir, TLS_HOST);
      ca = pki.ca;
      // Two instances started at the same time on different addresses.
      const started = await Promise.allSettled([
        startPostfix({ address: '127.0.0.181', port: 2525, hostname: TLS_HOST, tls: 'may', keyFile: pki.key, chainFile: pki.chain, delivery: 'maildir' }),
        startPostfix({ address: '127.0.0.182', port: 2525, hostname: PLAIN_HOST, tls: 'none', delivery: 'maildir' }),
      ]);
      if (started[0].status === 'fulfilled') tlsPeer = started[0].value;
      if (started[1].status === 'fulfilled') plainPeer = started[1].value;
      for (const s of started) if (s.status === 'rejected') throw s.reason;
    });

    after(async () => {
      await Promise.all([tlsPeer?.stop(), plainPeer?.stop()]);
      if (pkiDir) await rm(pkiDir, { recursive: true, force: true });
    });

    test('delivers over STARTTLS into the Maildir; Received records TLSv1.3 and ESMTPS', async () => {
      const peer = tlsPeer;
      assert.ok(peer);
      const c = await TinySmtp.connect(peer.address, peer.port);
      try {
        const greet = await c.read();
        assert.equal(greet.code, 220);
        assert.match(greet.lines[0] ?? '', new RegExp(`^${TLS_HOST} `));
        const ehlo = await c.cmd('EHLO client.test', 250);
        assert.ok(ehlo.lines.includes('STARTTLS'), `STARTTLS not offered: ${ehlo.lines.join(', ')}`);
        const secure = await c.startTls(ca, TLS_HOST);
        assert.equal(secure.authorized, true);
        assert.equal(secure.getProtocol(), 'TLSv1.3');
        const ehlo2 = await c.cmd('EHLO client.test', 250);
        assert.ok(!ehlo2.lines.includes('STARTTLS'), 'STARTTLS offered again inside TLS');
        await c.send('sender@client.test', 'alice@dest.test', message('alice@dest.test', 'tls-1'));
        await c.quit();
      } finally {
        c.destroy();
      }
      const [got] = await peer.waitForDelivered(1);
      assert.ok(got);
      assert.ok(got.file.startsWith(path.join(peer.maildir, 'new') + path.sep));
      assert.match(got.raw, /^token tls-1$/m);
      assert.match(got.raw, /^\.leading dot line$/m, 'dot-stuffing undone');
      const rec = receivedByPeer(got.raw, TLS_HOST);
      assert.match(rec, /\(using TLSv1\.3 with cipher /);
      assert.match(rec, / with ESMTPS id /);
      assert.match(await peer.log(), /Anonymous TLS connection established from/);
    });

    test('a tls none instance offers no STARTTLS and records plain ESMTP', async () => {
      const peer = plainPeer;
      assert.ok(peer);
      const c = await TinySmtp.connect(peer.address, peer.port);
      try {
        assert.equal((await c.read()).code, 220);
        const ehlo = await c.cmd('EHLO client.test', 250);
        assert.equal(ehlo.lines[0], PLAIN_HOST);
        assert.ok(!ehlo.lines.some((l) => /^STARTTLS/i.test(l)), `STARTTLS offered: ${ehlo.lines.join(', ')}`);
        const st = await c.cmd('STARTTLS', 502);
        assert.match(st.lines.join(' '), /not implemented/i);
        await c.send('sender@client.test', 'bob@dest.test', message('bob@dest.test', 'plain-1'));
        await c.quit();
      } finally {
        c.destroy();
      }
      const [got] = await peer.waitForDelivered(1);
      assert.ok(got);
      const rec = receivedByPeer(got.raw, PLAIN_HOST);
      assert.doesNotMatch(rec, /using TLS/);
      assert.match(rec, / with ESMTP id /);
    });

    test('stop() ends the master and its children and removes the directory', async () => {
      const peer = await startPostfix({ address: '127.0.0.183', port: 2525, hostname: 'mx3.peer.test', tls: 'none', delivery: 'discard' });
      const pidFile = path.join(peer.dir, 'queue', 'pid', 'master.pid');
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      assert.ok(Number.isInteger(pid) && pid > 1, `bad master.pid: ${pid}`);
      assert.ok(alive(pid), 'master not running after start');
      assert.equal(procStat(pid)?.pgrp, pid, 'master leads its own process group');
      const c = await TinySmtp.connect(peer.address, peer.port);
      assert.equal((await c.read()).code, 220);
      await c.cmd('EHLO client.test', 250);
      await c.send('sender@client.test', 'carol@dest.test', message('carol@dest.test', 'discard-1'));
      await c.quit();
      assert.ok(groupMembers(pid).length > 1, 'master has daemon children');
      await peer.stop();
      assert.equal(alive(pid), false, `master ${pid} still running`);
      assert.deepEqual(groupMembers(pid), [], 'Postfix daemons left behind');
      assert.equal(existsSync(peer.dir), false, 'instance dir not removed');
      await assert.rejects(TinySmtp.connect(peer.address, peer.port), /ECONNREFUSED/);
      await peer.stop(); // idempotent
    });
  });
}
