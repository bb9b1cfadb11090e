/**
 * The bench's SMTP injector: S sessions with connection reuse send N messages of a fixed size,
 * one recipient each (like `smtp-source -s S -d -m N -l SIZE`, no PIPELINING), either as fast
 * as the server answers or at a fixed total rate. Runs as its own process (forked, one IPC
 * request {cmd: 'run', ...InjectConfig} → InjectResult) so that its CPU use does not disturb
 * the bench's own timers.
 *
 * Accept latency of a message = from the moment the final "<CRLF>.<CRLF>" was handed to the
 * kernel (socket.write of the last chunk of the body returned) to the moment the complete 250
 * reply was read. The time to transfer the body before it is not part of it.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { percentile, serveRequests } from './util.js';

export interface InjectConfig {
  host: string;
  port: number;
  sessions: number;
  messages: number;
  /** Body size in bytes (headers included), as smtp-source -l. */
  size: number;
  /** Recipient domains, used round-robin: message i goes to u{i}@domains[i % n]. */
  domains: string[];
  /** Total messages per second over all sessions; 0 = as fast as possible. */
  rate: number;
  /** QUIT and reconnect after this many messages on one connection; 0 = never. */
  messagesPerConnection: number;
  /** STARTTLS with verification against this CA and name (for measuring a TLS sink). */
  starttls?: { ca: string; servername: string };
  /** Stop after this many ms even if not all messages are sent (0 = no limit). */
  maxMs?: number;
  /**
   * Instead of `domains` and `size`: message i goes to mix[i].to (every recipient) with a body of
   * mix[i].size bytes (the `internet` scenario's traffic).
   */
  mix?: { to: string[]; size: number }[];
}

export interface InjectResult {
  sent: number;
  failed: number;
  /** Epoch ms: just before the first connection, and when the last 250 was read. */
  startAt: number;
  endAt: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  errors: string[];
}

const now = (): number => performance.timeOrigin + performance.now();

function makeBody(size: number): Buffer {
  const head =
    'From: bench <sender@client.bench.test>\r\n' +
    'To: bench <rcpt@bench.test>\r\n' +
    'Subject: postern bench message\r\n' +
    `Date: ${new Date().toUTCString().replace('GMT', '+0000')}\r\n` +
    'Message-ID: <bench@client.bench.test>\r\n\r\n';
  const lines: string[] = [head];
  let len = head.length;
  const line = 'X'.repeat(76) + '\r\n';
  while (len + line.length <= size) {
    lines.push(line);
    len += line.length;
  }
  if (size - len >= 3) lines.push('Y'.repeat(size - len - 2) + '\r\n');
  return Buffer.from(lines.join('') + '.\r\n', 'latin1');
}

/**
 * A body of about `size` bytes, cut from one long body at a line boundary (so that the mix's
 * thousands of sizes cost one buffer).
 */
let longBody: Buffer | undefined;
function bodyOfSize(size: number): Buffer {
  longBody ??= makeBody(110 * 1024).subarray(0, -3);
  const line = 78;
  const head = longBody.indexOf('\r\n\r\n') + 4;
  const end = Math.min(longBody.length, Math.max(head, head + Math.floor((size - head) / line) * line));
  return Buffer.concat([longBody.subarray(0, end), Buffer.from('.\r\n')]);
}

/** Reads SMTP replies from a socket, one complete (possibly multi-line) reply per call. */
class Replies {
  private buf = '';
  private waiter: ((r: { code: number; text: string }) => void) | undefined;
  private failure: Error | undefined;
  private failWaiter: ((e: Error) => void) | undefined;

  attach(s: net.Socket | tls.TLSSocket): void {
    s.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      this.drain();
    });
    s.on('error', (e) => this.fail(e));
    s.on('close', () => this.fail(new Error('connection closed')));
  }

  detach(s: net.Socket | tls.TLSSocket): void {
    s.removeAllListeners('data');
    s.removeAllListeners('close');
    s.removeAllListeners('error');
    s.on('error', () => undefined);
  }

  private fail(e: Error): void {
    this.failure ??= e;
    const f = this.failWaiter;
    this.waiter = undefined;
    this.failWaiter = undefined;
    f?.(e);
  }

  private take(): { code: number; text: string } | undefined {
    let start = 0;
    for (;;) {
      const nl = this.buf.indexOf('\r\n', start);
      if (nl === -1) return undefined;
      if (this.buf.charAt(start + 3) !== '-') {
        const text = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 2);
        return { code: Number(text.slice(start, start + 3)), text };
      }
      start = nl + 2;
    }
  }

  private drain(): void {
    if (!this.waiter) return;
    const r = this.take();
    if (!r) return;
    const w = this.waiter;
    this.waiter = undefined;
    this.failWaiter = undefined;
    w(r);
  }

  next(): Promise<{ code: number; text: string }> {
    const r = this.take();
    if (r) return Promise.resolve(r);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = resolve;
      this.failWaiter = reject;
    });
  }
}

function lastCode(text: string): number {
  const lines = text.split('\r\n');
  return Number(lines[lines.length - 1]!.slice(0, 3));
}

export async function inject(cfg: InjectConfig): Promise<InjectResult> {
  const body = makeBody(cfg.size);
  const lat = new Float64Array(cfg.messages);
  let nLat = 0;
  let next = 0;
  let sent = 0;
  let failed = 0;
  const errors: string[] = [];
  const startAt = now();
  let endAt = startAt;
  const deadline = cfg.maxMs ? startAt + cfg.maxMs : Infinity;
  const noteError = (e: string): void => {
    if (errors.length < 20) errors.push(e);
  };

  async function open(): Promise<{ sock: net.Socket | tls.TLSSocket; r: Replies }> {
    const raw = net.connect({ host: cfg.host, port: cfg.port });
    raw.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      raw.once('connect', () => resolve());
      raw.once('error', reject);
    });
    let sock: net.Socket | tls.TLSSocket = raw;
    let r = new Replies();
    r.attach(raw);
    const cmd = async (line: string, want: number): Promise<void> => {
      sock.write(line + '\r\n');
      const rep = await r.next();
      if (lastCode(rep.text) !== want) throw new Error(`${line.split(' ')[0]}: ${rep.text}`);
    };
    const greet = await r.next();
    if (lastCode(greet.text) !== 220) throw new Error(`greeting: ${greet.text}`);
    await cmd('EHLO client.bench.test', 250);
    if (cfg.starttls) {
      await cmd('STARTTLS', 220);
      r.detach(raw);
      const secure = tls.connect({ socket: raw, servername: cfg.starttls.servername, ca: cfg.starttls.ca });
      await new Promise<void>((resolve, reject) => {
        secure.once('secureConnect', () => resolve());
        secure.once('error', reject);
      });
      sock = secure;
      r = new Replies();
      r.attach(secure);
      await cmd('EHLO client.bench.test', 250);
    }
    return { sock, r };
  }

  async function session(): Promise<void> {
    let conn: { sock: net.Socket | tls.TLSSocket; r: Replies } | undefined;
    let onConn = 0;
    let connectFailures = 0;
    while (next < cfg.messages && now() < deadline) {
      const i = next++;
      if (cfg.rate > 0) {
        const due = startAt + (i * 1000) / cfg.rate;
        const wait = due - now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      }
      try {
        if (!conn) {
          conn = await open();
          onConn = 0;
        }
        const { sock, r } = conn;
        const m = cfg.mix?.[i];
        const recipients = m ? m.to : [`u${i}@${cfg.domains[i % cfg.domains.length]}`];
        sock.write('MAIL FROM:<sender@client.bench.test>\r\n');
        let rep = await r.next();
        if (lastCode(rep.text) !== 250) throw new Error(`MAIL: ${rep.text}`);
        for (const to of recipients) {
          sock.write(`RCPT TO:<${to}>\r\n`);
          rep = await r.next();
          if (lastCode(rep.text) !== 250) throw new Error(`RCPT: ${rep.text}`);
        }
        sock.write('DATA\r\n');
        rep = await r.next();
        if (lastCode(rep.text) !== 354) throw new Error(`DATA: ${rep.text}`);
        sock.write(m ? bodyOfSize(m.size) : body);
        const t0 = now();
        rep = await r.next();
        const t1 = now();
        if (lastCode(rep.text) !== 250) throw new Error(`end of data: ${rep.text}`);
        lat[nLat++] = t1 - t0;
        sent++;
        endAt = t1;
        connectFailures = 0;
        if (cfg.messagesPerConnection > 0 && ++onConn >= cfg.messagesPerConnection) {
          sock.write('QUIT\r\n');
          await r.next().catch(() => undefined);
          sock.destroy();
          conn = undefined;
        }
      } catch (e) {
        failed++;
        noteError((e as Error).message);
        conn?.sock.destroy();
        conn = undefined;
        if (++connectFailures > 50) throw new Error(`session gave up after repeated failures: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, Math.min(1000, 10 * connectFailures)));
      }
    }
    if (conn) {
      conn.sock.write('QUIT\r\n');
      await conn.r.next().catch(() => undefined);
      conn.sock.destroy();
    }
  }

  // Progress for long runs: {progress: sent, failed, at} to the parent every second.
  const progress = process.send ? setInterval(() => process.send?.({ progress: sent, failed, at: now() }), 1000) : undefined;
  const results = await Promise.allSettled(Array.from({ length: cfg.sessions }, () => session()));
  if (progress) clearInterval(progress);
  for (const r of results) if (r.status === 'rejected') noteError(String((r.reason as Error).message));
  const sorted = lat.subarray(0, nLat).sort();
  let sum = 0;
  for (const x of sorted) sum += x;
  return {
    sent,
    failed,
    startAt,
    endAt,
    latencyMs: {
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      max: sorted.length ? sorted[sorted.length - 1]! : NaN,
      mean: sorted.length ? sum / sorted.length : NaN,
    },
    errors,
  };
}

if (process.send) {
  serveRequests(async (m) => {
    if (m.cmd !== 'run') throw new Error(`unknown command ${String(m.cmd)}`);
    return inject(m as unknown as InjectConfig);
  });
}
