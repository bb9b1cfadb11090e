/**
 * The `internet` scenario's sink ceiling (issue "honest method"): how fast the sink
 * (bench/internet-sink.ts) takes mail when driven straight, with no relay in between, measured
 * in the same run against the same sink process, so that the report can show the relays' figures
 * were not bounded by the sink.
 *
 * What is driven: only the hosts without a fault (`fault: 'none'`), so nothing is refused or
 * deferred; `connections` SMTP sessions spread round-robin over them (host address, `port`), each
 * greeting, EHLO, STARTTLS, a TLS handshake verified against `caPem` with the host's name as
 * servername (the sink gives each host its own certificate), EHLO again, then messages back to
 * back until the window ends, then QUIT. Every reply comes `delayMs` after its command (40 ms, or
 * 300 ms for the far hosts), so with few connections the figure is bounded by those delays, not
 * by the sink's CPU: it is the ceiling *at that number of connections*. Choose `connections` at
 * least as large as the relays' (or larger) for the comparison to mean anything.
 *
 * Per message: MAIL FROM:<ceiling@bench.test>, `recipientsPerMessage` (default 1) RCPT TO, DATA —
 * sent as one group when the host advertises PIPELINING (RFC 2920; the sink does), one by one
 * otherwise — then on 354 a body of the next size in `sizes` (cycled; printable lines with CRLF,
 * none starting with '.', so no dot-stuffing) and the terminator, and the 250 is awaited. So a
 * pipelined message costs two of the host's delays.
 *
 * Recipients are `ceiling<n>@ceiling.test` (n unique in the run, as the world's recipients are
 * unique): not a domain of the world, so the sink's per-domain measures of the world's domains are
 * untouched; but the sink does count them (global messages/recipients, `delivered`, and a
 * `ceiling.test` entry in its per-domain measures, whose concurrency is `connections`). The
 * caller resets the sink (sink.reset()) after the ceiling run.
 *
 * Window: the clock starts when every session has been set up (greeting, TLS, second EHLO; those
 * that failed are in `errors` and not in `connections`), and a message counts when its 250 after
 * the data was read within `seconds` of that start. No new message is started after the window;
 * one in flight when it ends is finished (not counted) before QUIT.
 *
 * Any unexpected reply (or a connection lost, or a timeout) is noted in `errors` (at most 10 kept,
 * prefixed with the host's name) and ends that session: a ceiling with errors is not clean.
 *
 * The load runs in its own process (forked like bench/inject.ts: this file is both the helper
 * `sinkCeiling` and, run as dist/bench/internet-ceiling.js, the child serving one IPC request
 * {cmd: 'run', ...CeilingConfig} → CeilingResult), so it shares no event loop with the bench.
 */
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import type { MxHost } from './internet-types.js';
import { forkBench, request, serveRequests } from './util.js';

/** The recipients' domain and local-part prefix: not part of any world (makeWorld's are d<k>.internet.test). */
export const CEILING_DOMAIN = 'ceiling.test';
export const CEILING_LOCAL_PREFIX = 'ceiling';
const SENDER = 'ceiling@bench.test';
const MAX_ERRORS = 10;

export interface CeilingOptions {
  hosts: MxHost[];
  port: number;
  /** The CA that issued the hosts' certificates (PEM). */
  caPem: string;
  connections: number;
  seconds: number;
  /** Body sizes in bytes (terminator not included), used in turn. */
  sizes: number[];
  recipientsPerMessage?: number;
}

export interface CeilingResult {
  /** Sessions that were set up (greeting, TLS, EHLO) and took part in the window. */
  connections: number;
  /** The window's length (s). */
  seconds: number;
  /** Messages whose 250 after the data arrived within the window. */
  messages: number;
  /** Recipients of those messages (accepted RCPTs). */
  recipients: number;
  messagesPerSecond: number;
  recipientsPerSecond: number;
  errors: string[];
}

/** What the child gets: the options with only the fault-free hosts, as plain data. */
interface CeilingConfig {
  hosts: { name: string; address: string; delayMs: number }[];
  port: number;
  caPem: string;
  connections: number;
  seconds: number;
  sizes: number[];
  recipientsPerMessage: number;
}

/**
 * Measures the sink's ceiling (see the header) in a forked process; resolves when it is done.
 * Throws when there is no fault-free host or the options make no sense.
 */
export async function sinkCeiling(o: CeilingOptions): Promise<CeilingResult> {
  const hosts = o.hosts.filter((h) => h.fault === 'none' || h.fault === undefined).map((h) => ({ name: h.name, address: h.address, delayMs: h.delayMs }));
  if (hosts.length === 0) throw new Error('sink ceiling: no host without a fault');
  const cfg = checkConfig({
    hosts,
    port: o.port,
    caPem: o.caPem,
    connections: o.connections,
    seconds: o.seconds,
    sizes: o.sizes,
    recipientsPerMessage: o.recipientsPerMessage ?? 1,
  });
  const { child, stop } = forkBench('internet-ceiling');
  // Set-up (bounded per session, see SETUP_MS), the window, and the last message and QUIT.
  const slowest = Math.max(...hosts.map((h) => h.delayMs));
  const timeoutMs = SETUP_MS + 20 * slowest + cfg.seconds * 1000 + 4 * replyTimeoutMs(slowest) + 30_000;
  try {
    return await request<CeilingResult>(child, { cmd: 'run', ...cfg }, timeoutMs);
  } finally {
    await stop();
  }
}

function checkConfig(c: CeilingConfig): CeilingConfig {
  if (!Number.isInteger(c.connections) || c.connections < 1) throw new RangeError(`sink ceiling: connections must be an integer ≥ 1, not ${c.connections}`);
  if (!(c.seconds > 0)) throw new RangeError(`sink ceiling: seconds must be > 0, not ${c.seconds}`);
  if (c.sizes.length === 0 || c.sizes.some((s) => !Number.isInteger(s) || s < 0)) throw new RangeError('sink ceiling: sizes must be one or more integers ≥ 0');
  if (!Number.isInteger(c.recipientsPerMessage) || c.recipientsPerMessage < 1) throw new RangeError(`sink ceiling: recipientsPerMessage must be an integer ≥ 1, not ${c.recipientsPerMessage}`);
  if (c.hosts.length === 0) throw new Error('sink ceiling: no host');
  return c;
}

// ---- the child ---------------------------------------------------------------------------------

const now = (): number => performance.timeOrigin + performance.now();

/** Most time one session may take to be set up (TCP, greeting, EHLO, STARTTLS, TLS, EHLO). */
const SETUP_MS = 60_000;
/** Most time to wait for one reply: far more than a host's delay, so only a stuck sink hits it. */
const replyTimeoutMs = (delayMs: number): number => 30_000 + 20 * delayMs;

/** A body of exactly `size` bytes (unless under 3 bytes after the headers), CRLF lines, none starting with '.', then ".\r\n". */
function makeBody(size: number): Buffer {
  const head =
    `From: ceiling <${SENDER}>\r\n` +
    `To: ceiling <${CEILING_LOCAL_PREFIX}@${CEILING_DOMAIN}>\r\n` +
    'Subject: internet sink ceiling\r\n' +
    `Date: ${new Date().toUTCString().replace('GMT', '+0000')}\r\n` +
    `Message-ID: <ceiling@bench.test>\r\n\r\n`;
  const parts: string[] = [head];
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  let r = size - head.length;
  let k = 0;
  const line = (n: number): string => {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet.charAt((k + i) % alphabet.length);
    k++;
    return s + '\r\n';
  };
  // Lines of 76 characters; the last one takes the rest (3–80 bytes, so never 1–2 bytes left over).
  while (r > 80) {
    parts.push(line(76));
    r -= 78;
  }
  if (r >= 3) parts.push(line(r - 2));
  else if (r === 2) parts.push('\r\n');
  return Buffer.from(parts.join('') + '.\r\n', 'latin1');
}

interface Reply {
  code: number;
  text: string;
}

/** Complete SMTP replies from one socket, in order; fails every waiter once the socket does. */
class Replies {
  private buf = '';
  private readonly ready: Reply[] = [];
  private waiter: { resolve: (r: Reply) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;
  private readonly onData = (d: Buffer): void => {
    this.buf += d.toString('latin1');
    this.parse();
  };
  private readonly onError = (e: Error): void => this.fail(e);
  private readonly onClose = (): void => this.fail(new Error('connection closed'));

  constructor(private readonly sock: net.Socket) {
    sock.on('data', this.onData);
    sock.on('error', this.onError);
    sock.on('close', this.onClose);
  }

  /** Stops reading this socket (before STARTTLS's handshake); errors are then ignored. */
  detach(): void {
    this.sock.off('data', this.onData);
    this.sock.off('error', this.onError);
    this.sock.off('close', this.onClose);
    this.sock.on('error', () => undefined);
  }

  private parse(): void {
    let start = 0;
    for (;;) {
      const nl = this.buf.indexOf('\r\n', start);
      if (nl === -1) break;
      if (this.buf.charAt(start + 3) !== '-') {
        // The last line of the reply gives its code.
        const code = Number(this.buf.slice(start, start + 3));
        const text = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 2);
        start = 0;
        this.ready.push({ code, text });
        continue;
      }
      start = nl + 2;
    }
    if (this.waiter && this.ready.length > 0) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve(this.ready.shift()!);
    }
  }

  private fail(e: Error): void {
    this.failure ??= e;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(e);
  }

  /** Leftover bytes after the last complete reply (must be none before a TLS handshake). */
  pending(): number {
    return this.buf.length + this.ready.length;
  }

  next(): Promise<Reply> {
    const r = this.ready.shift();
    if (r) return Promise.resolve(r);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }
}

interface Session {
  host: CeilingConfig['hosts'][number];
  sock: net.Socket;
  replies: Replies;
  pipelining: boolean;
}

/** One line of a reply text, shortened for the error list. */
const brief = (text: string): string => (text.length > 200 ? `${text.slice(0, 200)}…` : text).replace(/\r\n/g, ' | ');

async function expect(s: { replies: Replies }, what: string, code: number): Promise<Reply> {
  const r = await s.replies.next();
  if (r.code !== code) throw new Error(`${what}: expected ${code}, got ${brief(r.text)}`);
  return r;
}

async function runCeiling(cfg: CeilingConfig): Promise<CeilingResult> {
  checkConfig(cfg);
  const errors: string[] = [];
  const noteError = (host: string, e: unknown): void => {
    if (errors.length < MAX_ERRORS) errors.push(`${host}: ${e instanceof Error ? e.message : String(e)}`);
  };
  const bodies = new Map<number, Buffer>();
  const bodyOf = (size: number): Buffer => {
    let b = bodies.get(size);
    if (!b) bodies.set(size, (b = makeBody(size)));
    return b;
  };
  for (const size of cfg.sizes) bodyOf(size);
  const secureContext = tls.createSecureContext({ ca: cfg.caPem });

  async function open(host: CeilingConfig['hosts'][number]): Promise<Session> {
    const raw = net.connect({ host: host.address, port: cfg.port });
    try {
      return await handshake(host, raw);
    } catch (e) {
      raw.destroy();
      throw e;
    }
  }

  async function handshake(host: CeilingConfig['hosts'][number], raw: net.Socket): Promise<Session> {
    const idleMs = replyTimeoutMs(host.delayMs);
    raw.setNoDelay(true);
    raw.setTimeout(idleMs, () => raw.destroy(new Error(`no reply within ${idleMs} ms`)));
    const plain = new Replies(raw);
    const s0 = { replies: plain };
    await expect(s0, 'greeting', 220);
    raw.write('EHLO ceiling.bench.test\r\n');
    await expect(s0, 'EHLO', 250);
    raw.write('STARTTLS\r\n');
    await expect(s0, 'STARTTLS', 220);
    if (plain.pending() > 0) throw new Error('data after the 220 to STARTTLS');
    plain.detach();
    const secure = tls.connect({ socket: raw, servername: host.name, secureContext });
    const replies = new Replies(secure);
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', (e) => reject(new Error(`TLS handshake: ${e.message}`)));
      secure.once('close', () => reject(new Error('TLS handshake: connection closed')));
    });
    // From here the TLS socket reads the connection: its own idle timeout replaces the raw one's.
    raw.setTimeout(0);
    secure.setTimeout(idleMs, () => secure.destroy(new Error(`no reply within ${idleMs} ms`)));
    secure.write('EHLO ceiling.bench.test\r\n');
    const ehlo = await expect({ replies }, 'EHLO after STARTTLS', 250);
    const pipelining = /^250[ -]PIPELINING\b/im.test(ehlo.text);
    return { host, sock: secure, replies, pipelining };
  }

  let nextSize = 0;
  let nextRcpt = 0;
  let messages = 0;
  let recipients = 0;

  /** One message; counted when its 250 after the data arrives within the window. */
  async function send(s: Session, deadline: number): Promise<void> {
    const rcpts: string[] = [];
    for (let i = 0; i < cfg.recipientsPerMessage; i++) rcpts.push(`${CEILING_LOCAL_PREFIX}${++nextRcpt}@${CEILING_DOMAIN}`);
    const body = bodyOf(cfg.sizes[nextSize++ % cfg.sizes.length]!);
    if (s.pipelining) {
      s.sock.write(`MAIL FROM:<${SENDER}>\r\n${rcpts.map((a) => `RCPT TO:<${a}>\r\n`).join('')}DATA\r\n`);
      await expect(s, 'MAIL', 250);
      for (let i = 0; i < rcpts.length; i++) await expect(s, 'RCPT', 250);
      await expect(s, 'DATA', 354);
    } else {
      s.sock.write(`MAIL FROM:<${SENDER}>\r\n`);
      await expect(s, 'MAIL', 250);
      for (const a of rcpts) {
        s.sock.write(`RCPT TO:<${a}>\r\n`);
        await expect(s, 'RCPT', 250);
      }
      s.sock.write('DATA\r\n');
      await expect(s, 'DATA', 354);
    }
    s.sock.write(body);
    await expect(s, 'end of data', 250);
    if (now() <= deadline) {
      messages++;
      recipients += rcpts.length;
    }
  }

  // Set-up: every session at once, each bounded by SETUP_MS.
  const opened = await Promise.all(
    Array.from({ length: cfg.connections }, async (_, i): Promise<Session | undefined> => {
      const host = cfg.hosts[i % cfg.hosts.length]!;
      let timer: NodeJS.Timeout | undefined;
      const attempt = open(host);
      try {
        return await Promise.race([
          attempt,
          new Promise<never>((_r, reject) => (timer = setTimeout(() => reject(new Error(`session not set up within ${SETUP_MS / 1000} s`)), SETUP_MS))),
        ]);
      } catch (e) {
        noteError(host.name, e);
        void attempt.then((s) => s.sock.destroy(), () => undefined);
        return undefined;
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const sessions = opened.filter((s): s is Session => s !== undefined);

  // The window starts once every session is set up.
  const start = now();
  const deadline = start + cfg.seconds * 1000;
  await Promise.all(
    sessions.map(async (s) => {
      try {
        while (now() < deadline) await send(s, deadline);
        s.sock.write('QUIT\r\n');
        await expect(s, 'QUIT', 221).catch(() => undefined);
      } catch (e) {
        noteError(s.host.name, e);
      } finally {
        s.sock.destroy();
      }
    }),
  );
  return {
    connections: sessions.length,
    seconds: cfg.seconds,
    messages,
    recipients,
    messagesPerSecond: messages / cfg.seconds,
    recipientsPerSecond: recipients / cfg.seconds,
    errors,
  };
}

// Only when run as its own process (forked by sinkCeiling), never when imported.
const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain && process.send) {
  serveRequests(async (m) => {
    if (m.cmd !== 'run') throw new Error(`unknown command ${String(m.cmd)}`);
    return runCeiling(m as unknown as CeilingConfig);
  });
}
