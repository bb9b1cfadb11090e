/**
 * The service files in contrib/ (systemd unit, logrotate) work as written: where systemd is
 * absent their commands are run directly, with the unit's paths pointed at this checkout and a
 * temporary data directory:
 * - ExecStart starts a gateway that accepts and delivers mail;
 * - ExecReload (`kill -HUP $MAINPID`) reopens the logs and the gateway keeps running;
 * - logrotate with contrib/logrotate.d/postern rotates both files, its postrotate (the pid from
 *   gateway.pid) makes the gateway write to the new files, and no line is lost or split;
 * - KillSignal stops the gateway with exit 0 within TimeoutStopSec.
 * Address 127.0.71.20 and port 2674 are this file's own.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { within } from './deadline.js';
import { startDnsServer, type DnsServer } from './peers/dns-server.js';
import { startSmtpPeer, type SmtpPeer } from './peers/smtp-peer.js';
import { sendMail, tempDir, waitFor } from './harness.js';
import { logFile, POSTERN_BIN } from './process.js';
import { environmentPairs } from '../bench/util.js';

const ROOT = dirname(dirname(POSTERN_BIN));
const MX = '127.0.71.20';
const MX_PORT = 2674;
const EVENT_LINE = /^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} (Info|Warning): \S/;

/** The unit's `Key=value` lines (the last of each key wins, as in systemd). */
function unitKeys(text: string): Map<string, string> {
  const keys = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) keys.set(m[1]!, m[2]!);
  }
  return keys;
}

function hasLogrotate(): boolean {
  try {
    execFileSync('logrotate', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('contrib/postern.service and contrib/logrotate.d/postern, run directly', { timeout: within(120_000) }, () => {
  let dns: DnsServer;
  let peer: SmtpPeer;
  const dataDir = tempDir();
  const local = (s: string): string =>
    s.replaceAll('/opt/postern', ROOT).replaceAll('/var/lib/postern', dataDir).replaceAll('/usr/bin/node', process.execPath);

  before(async () => {
    dns = await startDnsServer({ zone: { 'svc.test': { MX: [{ preference: 10, exchange: 'mx.svc.test' }] }, 'mx.svc.test': { A: [MX] } } });
    peer = await startSmtpPeer({ host: MX, port: MX_PORT, hostname: 'mx.svc.test' });
  });
  after(async () => {
    await peer?.close();
    await dns?.close();
  });

  it('starts, reloads, rotates and stops as the unit and the logrotate file say', async () => {
    const unit = unitKeys(readFileSync(join(ROOT, 'contrib', 'postern.service'), 'utf8'));
    assert.equal(unit.get('Type'), 'simple');
    assert.ok(unit.get('User') !== 'root', 'runs as an unprivileged user');
    const exec = local(unit.get('ExecStart')!).replace('127.0.0.1:2525', '127.0.0.1:0').replace('127.0.0.1:8443', '127.0.0.1:0').split(/\s+/);
    // The test's DNS server and MX port stand in for the internet's.
    // Environment= as systemd passes it (KEY=VALUE pairs separated by spaces).
    const environment = environmentPairs(unit.get('Environment') ?? '');
    assert.equal(environment.MALLOC_MMAP_THRESHOLD_, '131072', 'the allocator setting of docs/running-as-a-service.md');
    const child = spawn(exec[0]!, [...exec.slice(1), '--dns-server', dns.address, '--smtp-port', String(MX_PORT), '--hostname', 'postern-svc.test'], {
      env: { ...process.env, ...environment },
      cwd: local(unit.get('WorkingDirectory')!),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    try {
      const m = await waitFor('the listening line', () => /Postern listening on (\S+):(\d+),/.exec(output), 15_000);
      const port = Number(m[2]);
      const send = async (tag: string) => assert.equal((await sendMail(port, 'sender@client.test', [`${tag}@svc.test`], `Subject: ${tag}\r\n\r\nhi\r\n`)).code, 250);
      const delivered = (tag: string) => waitFor(`${tag} delivered`, () => peer.messages.find((x) => x.to.includes(`${tag}@svc.test`)));

      await send('one');
      await delivered('one');
      assert.equal(readFileSync(join(dataDir, 'gateway.pid'), 'utf8').trim(), String(child.pid), 'gateway.pid names the process');

      // ExecReload, with systemd's $MAINPID.
      execFileSync('/bin/sh', ['-c', unit.get('ExecReload')!.replace('$MAINPID', String(child.pid))]);
      await waitFor('the reload logged', () => readFileSync(logFile(dataDir, 'mail.log'), 'utf8').includes('log files reopened'));

      if (hasLogrotate()) {
        const conf = join(tempDir(), 'postern.logrotate');
        // `su` needs the postern user; the test runs as whoever it is.
        writeFileSync(conf, local(readFileSync(join(ROOT, 'contrib', 'logrotate.d', 'postern'), 'utf8')).replace(/^\s*su .*$/m, ''), { mode: 0o644 });
        execFileSync('logrotate', ['-f', '-s', join(dirname(conf), 'state'), conf]);
        assert.ok(existsSync(`${logFile(dataDir, 'mail.log')}.1`), 'mail.log rotated');
        assert.ok(existsSync(`${logFile(dataDir, 'mail.jsonl')}.1`), 'mail.jsonl rotated');
        // The postrotate HUP is handled on the gateway's event loop; mail taken in on the listener
        // thread before that is logged to the file being moved, as with any HUP-reopened log.
        await waitFor('the reopen in the new mail.log', () => existsSync(logFile(dataDir, 'mail.log')) && readFileSync(logFile(dataDir, 'mail.log'), 'utf8').includes('log files reopened'));
        await send('two');
        await delivered('two');
        await waitFor('two in the new mail.log', () => existsSync(logFile(dataDir, 'mail.log')) && readFileSync(logFile(dataDir, 'mail.log'), 'utf8').includes('two@svc.test'));
        const rotated = readFileSync(`${logFile(dataDir, 'mail.log')}.1`, 'utf8');
        assert.ok(rotated.includes('one@svc.test'));
        for (const text of [rotated, readFileSync(logFile(dataDir, 'mail.log'), 'utf8')]) {
          for (const l of text.split('\n').slice(0, -1)) assert.match(l, EVENT_LINE, `split line ${JSON.stringify(l)}`);
        }
      } else {
        process.stderr.write('service.test: logrotate not installed; the logrotate file was not run (.ci/run installs it)\n');
      }
    } finally {
      child.kill(unit.get('KillSignal') as NodeJS.Signals);
    }
    const limit = Number(unit.get('TimeoutStopSec')) * 1000;
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('timeout'), limit).unref())]);
    assert.equal(code, 0, `stopped with exit 0 within TimeoutStopSec:\n${output}`);
    assert.ok(!existsSync(join(dataDir, 'gateway.pid')));
  });
});
