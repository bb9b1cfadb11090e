// Test peer: starts and stops a real Postfix instance as a receiving MTA on a loopback
// address, entirely inside a temporary directory (own main.cf/master.cf, queue, data,
// Maildir and log). Nothing under /etc/postfix is written, and no main.cf is needed there;
// Postfix still reads the package's meta files (postfix-files, dynamicmaps.cf) from it.
//
// Notes for users of this helper (Postfix 3.7, Debian 12):
// - Start-up runs `postfix check` (about 0.8 s: it creates the queue tree), then
//   `postfix start` with the queue's quick-start flag so the checks are not repeated.
// - Readiness is probed with one SMTP session (plus STARTTLS when TLS is on) bound to the
//   instance's own address as source, so anvil limits a test sets for 127.0.0.1 clients
//   are not consumed by the probe. The probe still shows in log() as "connect from".
// - stop() sends SIGTERM to the master (queue/pid/master.pid), waits until no process of
//   its process group is left (the master runs in its own session), then removes the dir.
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { access, chmod, chown, mkdir, mkdtemp, readFile, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { within } from '../deadline.js';

export interface PostfixOptions {
  /** Loopback address to listen on, e.g. '127.0.0.20' (or '::1'). */
  address: string;
  port: number;
  /** myhostname: greeting, EHLO name and the "by" part of Received. */
  hostname: string;
  tls: 'none' | 'may' | 'encrypt';
  /** PEM private key (required unless tls is 'none'). */
  keyFile?: string;
  /** PEM leaf certificate followed by its CA chain (required unless tls is 'none'). */
  chainFile?: string;
  /** 'maildir': every recipient goes to one catchall Maildir; 'discard': accepted, dropped. */
  delivery: 'maildir' | 'discard';
  /** Extra or overriding main.cf parameters (the last word on any parameter). */
  extraMainCf?: Record<string, string>;
  /** Lines appended to master.cf (extra services, e.g. clones of smtp with their own -o settings). */
  extraMasterCf?: string;
}

export interface DeliveredMessage {
  /** Absolute path of the message file in the Maildir's new/ folder. */
  file: string;
  raw: string;
}

export interface PostfixInstance {
  dir: string;
  address: string;
  port: number;
  /** The catchall Maildir; delivered messages appear in its new/ folder. */
  maildir: string;
  readDelivered(): Promise<DeliveredMessage[]>;
  waitForDelivered(n: number, timeoutMs?: number): Promise<DeliveredMessage[]>;
  log(): Promise<string>;
  stop(): Promise<void>;
}

const POSTFIX = '/usr/sbin/postfix';
const MASTER_CF_DIST = '/usr/share/postfix/master.cf.dist';
const SCRIPT = '/usr/bin/script';

export function postfixAvailable(): boolean {
  return existsSync(POSTFIX);
}

interface RunResult {
  code: number | null;
  output: string;
}

/** Runs a command, collecting stdout and stderr together; never rejects on a non-zero exit. */
function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SHELL: '/bin/sh' },
    });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.stderr.on('data', (d: Buffer) => chunks.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), within(timeoutMs));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output: Buffer.concat(chunks).toString('utf8').replace(/\r/g, '').trim() });
    });
  });
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Runs a postfix(1) command. Without a terminal on stderr the postfix command prints
 * nothing at all on failure, so it runs under script(1), which supplies a pty.
 */
function runPostfix(args: string[]): Promise<RunResult> {
  if (existsSync(SCRIPT)) {
    const line = [POSTFIX, ...args].map(shellQuote).join(' ');
    return run(SCRIPT, ['-qec', line, '/dev/null']);
  }
  return run(POSTFIX, args);
}

function getent(db: 'passwd' | 'group', name: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile('getent', [db, name], (err, stdout) => {
      if (err) reject(new Error(`getent ${db} ${name} failed: ${err.message}`));
      else resolve(stdout.trim().split(':'));
    });
  });
}

async function userIds(name: string): Promise<{ uid: number; gid: number }> {
  const f = await getent('passwd', name);
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/** Debian's stock master.cf, chroot column forced to n, "smtp inet" renamed to ADDR:PORT. */
async function masterCf(service: string): Promise<string> {
  const dist = await readFile(MASTER_CF_DIST, 'utf8');
  return dist
    .split('\n')
    .map((line) => {
      if (line === '' || line.startsWith('#') || /^\s/.test(line)) return line;
      const f = line.trim().split(/\s+/);
      if (f[0] === 'smtp' && f[1] === 'inet') f[0] = service;
      if (f.length >= 8) f[4] = 'n';
      return f.join(' ');
    })
    .join('\n');
}

function mainCf(dir: string, opts: PostfixOptions, ids: { nobodyUid: number; nobodyGid: number }): string {
  const ipv6 = opts.address.includes(':');
  const dot = opts.hostname.indexOf('.');
  const p = new Map<string, string>([
    ['compatibility_level', '3.6'],
    ['queue_directory', `${dir}/queue`],
    ['data_directory', `${dir}/data`],
    ['mail_owner', 'postfix'],
    ['setgid_group', 'postdrop'],
    ['myhostname', opts.hostname],
    ['mydomain', dot > 0 && dot < opts.hostname.length - 1 ? opts.hostname.slice(dot + 1) : 'localdomain'],
    ['myorigin', '$myhostname'],
    ['mydestination', ''],
    ['alias_maps', ''],
    ['alias_database', ''],
    ['local_recipient_maps', ''],
    // All interfaces, but master.cf names the one ADDR:PORT to bind (127.0.0.x other than
    // 127.0.0.1 is not an interface address, so inet_interfaces cannot name it).
    ['inet_interfaces', 'all'],
    ['inet_protocols', ipv6 ? 'all' : 'ipv4'],
    ['mynetworks', ipv6 ? '127.0.0.0/8 [::1]/128' : '127.0.0.0/8'],
    ['smtpd_relay_restrictions', 'permit_mynetworks, reject_unauth_destination'],
    ['smtpd_peername_lookup', 'no'],
    ['smtp_dns_support_level', 'disabled'],
    ['maillog_file_prefixes', dir],
    ['maillog_file', `${dir}/maillog`],
    ['biff', 'no'],
    ['message_size_limit', '52428800'],
    ['virtual_mailbox_limit', '0'],
    ['virtual_mailbox_domains', 'static:all'],
    ['virtual_mailbox_base', `${dir}/mail`],
    ['virtual_mailbox_maps', 'static:catchall/'],
    ['virtual_uid_maps', `static:${ids.nobodyUid}`],
    ['virtual_gid_maps', `static:${ids.nobodyGid}`],
    ['virtual_minimum_uid', '100'],
    ['smtpd_client_connection_count_limit', '0'],
    ['smtpd_client_connection_rate_limit', '0'],
    ['default_process_limit', '200'],
  ]);
  if (opts.delivery === 'discard') p.set('virtual_transport', 'discard:accepted and discarded');
  if (opts.tls === 'none') {
    p.set('smtpd_tls_security_level', 'none');
  } else {
    p.set('smtpd_tls_security_level', opts.tls);
    p.set('smtpd_tls_chain_files', `${opts.keyFile ?? ''}, ${opts.chainFile ?? ''}`);
    p.set('smtpd_tls_loglevel', '1');
    p.set('smtpd_tls_received_header', 'yes');
  }
  for (const [k, v] of Object.entries(opts.extraMainCf ?? {})) {
    if (!/^[A-Za-z0-9_]+$/.test(k)) throw new Error(`extraMainCf: bad parameter name ${JSON.stringify(k)}`);
    if (/[\r\n]/.test(v)) throw new Error(`extraMainCf: value of ${k} contains a line break`);
    p.set(k, v);
  }
  return [...p].map(([k, v]) => (v === '' ? `${k} =` : `${k} = ${v}`)).join('\n') + '\n';
}

async function tailLog(dir: string, lines = 40): Promise<string> {
  try {
    const text = await readFile(path.join(dir, 'maillog'), 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no maillog)';
  }
}

function readMasterPid(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(path.join(dir, 'queue', 'pid', 'master.pid'), 'utf8').trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Live (non-zombie) processes whose process group is pgid, from /proc. */
function groupMembers(pgid: number): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let st: string;
    try {
      st = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses.
    const rest = st.slice(st.lastIndexOf(')') + 2).split(' ');
    if (rest[0] !== 'Z' && Number(rest[2]) === pgid) found.push(Number(name));
  }
  return found;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Stops the master of dir's instance and waits until its whole process group is gone. */
async function stopMaster(dir: string, timeoutMs = 10_000): Promise<void> {
  const pid = readMasterPid(dir);
  if (pid === undefined) return;
  signal(pid, 'SIGTERM');
  const deadline = Date.now() + within(timeoutMs);
  while (groupMembers(pid).length > 0) {
    if (Date.now() > deadline) {
      for (const p of groupMembers(pid)) signal(p, 'SIGKILL');
      await sleep(200);
      const left = groupMembers(pid);
      if (left.length > 0) throw new Error(`postfix master ${pid}: processes still running after SIGKILL: ${left.join(' ')}`);
      return;
    }
    await sleep(50);
  }
}

/** Instances not yet stopped, so that a crashed test run does not leave masters behind. */
const live = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const dir of live) {
      const pid = readMasterPid(dir);
      if (pid !== undefined) signal(pid, 'SIGTERM');
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // best effort
      }
    }
  });
}

/** Reads one SMTP reply (possibly multi-line) from a line buffer fed by a socket. */
class ReplyReader {
  private buf = '';
  private waiter: (() => void) | undefined;
  private failure: Error | undefined;

  attach(s: net.Socket | tls.TLSSocket): void {
    s.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      this.wake();
    });
    s.on('error', (e: Error) => {
      this.failure = e;
      this.wake();
    });
    s.on('close', () => {
      this.failure ??= new Error('connection closed');
      this.wake();
    });
  }

  detach(s: net.Socket | tls.TLSSocket): void {
    s.removeAllListeners('data');
    s.removeAllListeners('close');
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  async reply(): Promise<{ code: number; lines: string[] }> {
    for (;;) {
      const lines = this.buf.split('\r\n');
      const complete = lines.slice(0, -1);
      const last = complete.findIndex((l) => /^\d{3}(?: |$)/.test(l));
      if (last >= 0) {
        const got = complete.slice(0, last + 1);
        this.buf = lines.slice(last + 1).join('\r\n');
        return { code: Number(got[last]?.slice(0, 3)), lines: got.map((l) => l.slice(4)) };
      }
      if (this.failure) throw this.failure;
      await new Promise<void>((r) => (this.waiter = r));
    }
  }
}

function connect(opts: PostfixOptions): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const loopback = opts.address.startsWith('127.') || opts.address === '::1';
    const s = net.connect({
      host: opts.address,
      port: opts.port,
      ...(loopback ? { localAddress: opts.address } : {}),
    });
    s.once('connect', () => {
      s.removeListener('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/**
 * One probe session: 220 greeting, and unless tls is 'none', EHLO must offer STARTTLS
 * and a handshake must complete (Postfix only logs a missing or bad key at that point).
 */
async function probe(opts: PostfixOptions): Promise<void> {
  const sock = await connect(opts);
  sock.setTimeout(within(10_000), () => sock.destroy(new Error('probe timed out')));
  let cur: net.Socket | tls.TLSSocket = sock;
  const r = new ReplyReader();
  r.attach(sock);
  const cmd = async (line: string): Promise<{ code: number; lines: string[] }> => {
    cur.write(line + '\r\n');
    return r.reply();
  };
  try {
    const greet = await r.reply();
    if (greet.code !== 220) throw new Error(`greeting was ${greet.code} ${greet.lines.join(' / ')}`);
    if (opts.tls !== 'none') {
      const ehlo = await cmd('EHLO probe.invalid');
      if (!ehlo.lines.some((l) => /^STARTTLS\b/i.test(l))) throw new Error('STARTTLS not advertised');
      const st = await cmd('STARTTLS');
      if (st.code !== 220) throw new Error(`STARTTLS answered ${st.code}`);
      r.detach(sock);
      const secure = tls.connect({ socket: sock, servername: opts.hostname, rejectUnauthorized: false });
      await new Promise<void>((resolve, reject) => {
        secure.once('secureConnect', () => resolve());
        secure.once('error', reject);
      });
      cur = secure;
      r.attach(secure);
    }
    await cmd('QUIT').catch(() => undefined);
  } finally {
    cur.destroy();
    sock.destroy();
  }
}

async function waitReady(dir: string, opts: PostfixOptions, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + within(timeoutMs);
  for (;;) {
    try {
      await probe(opts);
      return;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const retry = err.code === 'ECONNREFUSED' || err.code === 'ECONNRESET';
      if (!retry || Date.now() > deadline) {
        throw new Error(`postfix on ${opts.address}:${opts.port} not ready: ${err.message}\n--- maillog ---\n${await tailLog(dir)}`);
      }
      await sleep(50);
    }
  }
}

async function readDelivered(maildir: string): Promise<DeliveredMessage[]> {
  const newDir = path.join(maildir, 'new');
  let names: string[];
  try {
    names = await readdir(newDir);
  } catch {
    return [];
  }
  const entries = await Promise.all(
    names.map(async (name) => {
      const file = path.join(newDir, name);
      const [st, raw] = await Promise.all([stat(file, { bigint: true }), readFile(file, 'utf8')]);
      return { file, raw, mtime: st.mtimeNs };
    }),
  );
  entries.sort((a, b) => (a.mtime < b.mtime ? -1 : a.mtime > b.mtime ? 1 : a.file.localeCompare(b.file)));
  return entries.map(({ file, raw }) => ({ file, raw }));
}

export async function startPostfix(opts: PostfixOptions): Promise<PostfixInstance> {
  if (!postfixAvailable()) throw new Error(`${POSTFIX} not found: install the postfix package`);
  if (!net.isIP(opts.address)) throw new Error(`startPostfix: address must be an IP literal, got ${opts.address}`);
  if (opts.tls !== 'none') {
    for (const [name, f] of [['keyFile', opts.keyFile], ['chainFile', opts.chainFile]] as const) {
      if (f === undefined) throw new Error(`startPostfix: tls '${opts.tls}' needs ${name}`);
      await access(f, fsConstants.R_OK).catch(() => {
        throw new Error(`startPostfix: ${name} ${f} is not readable`);
      });
    }
  }
  const [postfixUser, nobody] = await Promise.all([userIds('postfix'), userIds('nobody')]);

  const dir = await mkdtemp(path.join(os.tmpdir(), 'postern-postfix-'));
  // mkdtemp gives 0700; postfix (queue, data) and nobody (Maildir) must traverse it.
  await chmod(dir, 0o755);
  const maildir = path.join(dir, 'mail', 'catchall');
  const setup = async (): Promise<void> => {
    await Promise.all(['etc', 'queue', 'data', 'mail'].map((d) => mkdir(path.join(dir, d))));
    await chown(path.join(dir, 'data'), postfixUser.uid, postfixUser.gid);
    await chown(path.join(dir, 'mail'), nobody.uid, nobody.gid);
    const service = opts.address.includes(':') ? `[${opts.address}]:${opts.port}` : `${opts.address}:${opts.port}`;
    const cfFiles = [path.join(dir, 'etc', 'master.cf'), path.join(dir, 'etc', 'main.cf')] as const;
    await writeFile(cfFiles[0], (await masterCf(service)) + (opts.extraMasterCf ? `\n${opts.extraMasterCf}\n` : ''));
    await writeFile(cfFiles[1], mainCf(dir, opts, { nobodyUid: nobody.uid, nobodyGid: nobody.gid }));
    // Postfix pauses in 300 ms steps ("to let it cool down") while a table or main.cf was
    // modified within the last second or so: each Postfix command that reads a fresh
    // main.cf loses ~1.5 s. Back-date the files.
    const past = new Date(Date.now() - 60_000);
    await Promise.all(cfFiles.map((f) => utimes(f, past, past)));

    const etc = path.join(dir, 'etc');
    const check = await runPostfix(['-c', etc, 'check']);
    if (check.code !== 0) {
      throw new Error(`postfix check failed (exit ${check.code}):\n${check.output}\n--- maillog ---\n${await tailLog(dir)}`);
    }
    // check has just created and verified the queue tree: let start skip the same work.
    await writeFile(path.join(dir, 'queue', 'quick-start'), '');
    live.add(dir);
    installExitHook();
    const start = await runPostfix(['-c', etc, 'start']);
    if (start.code !== 0) {
      throw new Error(`postfix start failed (exit ${start.code}):\n${start.output}\n--- maillog ---\n${await tailLog(dir)}`);
    }
    await waitReady(dir, opts);
  };
  try {
    await setup();
  } catch (e) {
    await stopMaster(dir).catch(() => undefined);
    live.delete(dir);
    await rm(dir, { recursive: true, force: true });
    throw e;
  }

  let stopped: Promise<void> | undefined;
  return {
    dir,
    address: opts.address,
    port: opts.port,
    maildir,
    readDelivered: () => readDelivered(maildir),
    async waitForDelivered(n: number, timeoutMs = 20_000): Promise<DeliveredMessage[]> {
      const deadline = Date.now() + within(timeoutMs);
      for (;;) {
        const got = await readDelivered(maildir);
        if (got.length >= n) return got;
        if (Date.now() > deadline) {
          throw new Error(
            `postfix ${opts.address}:${opts.port}: ${got.length} of ${n} messages delivered after ${within(timeoutMs)} ms\n--- maillog ---\n${await tailLog(dir)}`,
          );
        }
        await sleep(100);
      }
    },
    async log(): Promise<string> {
      try {
        return await readFile(path.join(dir, 'maillog'), 'utf8');
      } catch {
        return '';
      }
    },
    stop(): Promise<void> {
      stopped ??= (async () => {
        try {
          await stopMaster(dir);
        } finally {
          live.delete(dir);
          await rm(dir, { recursive: true, force: true });
        }
      })();
      return stopped;
    },
  };
}
