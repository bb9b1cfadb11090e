/**
 * The destinations of the `internet` bench scenario: one process that plays every MX host of the
 * world (up to a thousand loopback addresses), each `delayMs` away and with its fault, and
 * measures per recipient domain what a relay's limits must keep below (concurrency, messages per
 * session, recipients per sliding window) and exactly which recipients arrived.
 *
 * Contract (as bench/sink.ts):
 * - argv[2] is a JSON InternetSinkConfig. Without argv[2] (a config too large for one argument:
 *   Linux refuses an argument over 128 KiB) the process sends {wantConfig: true} and takes the
 *   first IPC message {config}. It sends {ready: true} once every address listens.
 * - IPC requests: {cmd: 'stats', addresses?: boolean} → InternetSinkStats (`addresses: false`
 *   leaves `delivered` empty); {cmd: 'global'} → InternetSinkGlobal only (cheap enough to poll
 *   every second while a relay delivers); {cmd: 'reset'} → zeroes every measure.
 * - Every reply, the greeting included, is written `delayMs` after what it answers arrived
 *   (replies to pipelined commands keep their order: one timer duration per host, and Node
 *   fires timers of one duration in the order they were set).
 * - A message is delivered when its 250 after the data has been written (after the delay, on a
 *   connection still open): only then do its recipients count in `delivered`, per domain, in
 *   the window and in messages per session. Times are epoch ms with sub-ms precision.
 * - A session counts toward domain D's concurrency from its first accepted RCPT for D until the
 *   connection closes.
 * - Faults: `refuse` (nothing listens), `never-greet` (accepts, never writes), `rcpt-4xx` (451
 *   to recipients whose local part starts with `soft`), `no-starttls` (not offered, 502),
 *   `tls-fail` (220 to STARTTLS, then the connection is closed).
 */
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import type { DomainMeasure, MxHost } from './internet-types.js';

/** The bench's side: forks this file as a process (see internet-sink-control.ts). */
export { startInternetSink, type InternetSink, type StartOptions } from './internet-sink-control.js';

export interface InternetSinkConfig {
  hosts: MxHost[];
  port: number;
  /** One key and chain whose certificate names every host. */
  tls: { key: string; cert: string };
  /** Per host name, its own key and chain (CN and SAN its name, as real MX hosts have): used instead of `tls` for that host. */
  certs?: Record<string, { key: string; cert: string }>;
  /** Per recipient domain (lower case): the window to measure, in minutes (fractions allowed). */
  limits: Record<string, { windowMinutes?: number }>;
}

export interface InternetSinkGlobal {
  /** TCP connections accepted (every host, never-greet included). */
  sessions: number;
  /** Completed TLS handshakes. */
  tlsSessions: number;
  /** TLS handshakes that failed (on hosts that offer a real one). */
  tlsErrors: number;
  /** STARTTLS answered 220 and closed (fault tls-fail). */
  tlsFailClosed: number;
  /** Handshakes whose SNI was absent or not the host's name. */
  sniMismatch: number;
  /** Connections to never-greet hosts. */
  neverGreetSessions: number;
  messages: number;
  /** Recipients delivered (summed over messages). */
  recipients: number;
  /** 451 answers to RCPT (fault rcpt-4xx). */
  rcptDeferred: number;
  /** Data bytes of delivered messages, terminator included. */
  bytes: number;
  firstAt: number;
  lastAt: number;
  /** Connections open now, and the most at once since the last reset. */
  openSessions: number;
  maxOpenSessions: number;
}

export interface InternetDomainStats extends DomainMeasure {
  /** Sessions counting toward the domain now. */
  concurrentNow: number;
  /** Sessions that had an accepted RCPT for the domain. */
  sessions: number;
  /** RCPTs of the domain answered 451. */
  deferred: number;
}

export interface InternetHostStats {
  sessions: number;
  tlsSessions: number;
  messages: number;
}

export interface InternetSinkStats {
  global: InternetSinkGlobal;
  domains: Record<string, InternetDomainStats>;
  /** `local@domain` (domain in lower case) → times delivered; empty when asked with addresses: false. */
  delivered: Record<string, number>;
  /** Per host name. */
  hosts: Record<string, InternetHostStats>;
}

const now = (): number => performance.timeOrigin + performance.now();
const TERMINATOR = Buffer.from('\r\n.\r\n');
const CRLF = Buffer.from('\r\n');
const MAX_LINE = 65_536;

class DomainState {
  current = 0;
  maxConcurrent = 0;
  maxMessagesPerSession = 0;
  maxInWindow = 0;
  delivered = 0;
  sessions = 0;
  deferred = 0;
  /** Delivery times within the window (from `head` on), when the domain has one. */
  private times: number[] | undefined;
  private head = 0;

  constructor(private readonly windowMs: number | undefined) {
    if (windowMs !== undefined && windowMs > 0) this.times = [];
  }

  addDelivered(t: number, n: number): void {
    this.delivered += n;
    const times = this.times;
    if (!times) return;
    for (let k = 0; k < n; k++) times.push(t);
    const from = t - this.windowMs!; // the window is (t - W, t]
    while (times[this.head]! <= from) this.head++;
    const inWindow = times.length - this.head;
    if (inWindow > this.maxInWindow) this.maxInWindow = inWindow;
    if (this.head > 4096 && this.head * 2 > times.length) {
      this.times = times.slice(this.head);
      this.head = 0;
    }
  }

  snapshot(): InternetDomainStats {
    return {
      maxConcurrent: this.maxConcurrent,
      maxMessagesPerSession: this.maxMessagesPerSession,
      maxInWindow: this.maxInWindow,
      delivered: this.delivered,
      concurrentNow: this.current,
      sessions: this.sessions,
      deferred: this.deferred,
    };
  }
}

class Measures {
  readonly global: InternetSinkGlobal = {
    sessions: 0,
    tlsSessions: 0,
    tlsErrors: 0,
    tlsFailClosed: 0,
    sniMismatch: 0,
    neverGreetSessions: 0,
    messages: 0,
    recipients: 0,
    rcptDeferred: 0,
    bytes: 0,
    firstAt: 0,
    lastAt: 0,
    openSessions: 0,
    maxOpenSessions: 0,
  };
  readonly domains = new Map<string, DomainState>();
  readonly delivered = new Map<string, number>();
  readonly hosts = new Map<string, InternetHostStats>();

  constructor(private readonly windows: Map<string, number>) {}

  domain(name: string): DomainState {
    let d = this.domains.get(name);
    if (!d) {
      d = new DomainState(this.windows.get(name));
      this.domains.set(name, d);
    }
    return d;
  }

  host(name: string): InternetHostStats {
    let h = this.hosts.get(name);
    if (!h) {
      h = { sessions: 0, tlsSessions: 0, messages: 0 };
      this.hosts.set(name, h);
    }
    return h;
  }
}

let windows = new Map<string, number>();
let m = new Measures(windows);
/** Connections open now (process-wide, not reset). */
let live = 0;

function opened(host: MxHost): InternetHostStats {
  live++;
  const h = m.host(host.name);
  h.sessions++;
  m.global.sessions++;
  if (live > m.global.maxOpenSessions) m.global.maxOpenSessions = live;
  return h;
}

class Session {
  private sock: net.Socket | tls.TLSSocket;
  private buf = '';
  /** In DATA: the last (up to) 4 bytes seen, to find a terminator split across chunks. */
  private tail: Buffer = CRLF;
  private inData = false;
  private dataBytes = 0;
  private secure = false;
  /** After QUIT or STARTTLS: nothing more is read as commands on this socket. */
  private stopped = false;
  private closed = false;
  private mail = false;
  /** Accepted recipients of the transaction: addresses and their domains. */
  private rcpts: string[] = [];
  private rcptDomains: string[] = [];
  /** The measures this session's counts went into (a reset starts new ones). */
  private m: Measures;
  /** Domains this session counts toward (concurrency), and its messages per domain. */
  private readonly counted = new Set<string>();
  private readonly perSession = new Map<string, number>();
  private readonly onData = (d: Buffer): void => this.feed(d);

  constructor(
    private readonly raw: net.Socket,
    private readonly host: MxHost,
    private readonly ctx: tls.SecureContext,
  ) {
    this.sock = raw;
    this.m = m;
    opened(host);
    raw.setNoDelay(true);
    raw.on('error', () => undefined);
    raw.on('close', () => this.onClose());
    raw.on('data', this.onData);
    this.reply(`220 ${host.name} ESMTP`);
  }

  /** Writes `line` delayMs from now (in order with the replies before it), then runs `then`. */
  private reply(line: string, then?: () => void): void {
    setTimeout(() => {
      if (this.closed || this.sock.destroyed) return;
      this.sock.write(line + '\r\n');
      then?.();
    }, this.host.delayMs);
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    live--;
    for (const d of this.counted) this.m.domain(d).current--;
  }

  /** After a reset, this session's counts start again in the new measures. */
  private rebind(): void {
    if (this.m === m) return;
    this.m = m;
    this.counted.clear();
    this.perSession.clear();
  }

  private countToward(domain: string): void {
    this.rebind();
    if (this.counted.has(domain)) return;
    this.counted.add(domain);
    const d = this.m.domain(domain);
    d.sessions++;
    if (++d.current > d.maxConcurrent) d.maxConcurrent = d.current;
  }

  private feed(d: Buffer): void {
    if (this.stopped) return;
    let chunk: Buffer | undefined = d;
    while (chunk && chunk.length > 0) {
      if (this.inData) {
        const end = this.findEnd(chunk);
        if (end === -1) {
          this.dataBytes += chunk.length;
          return;
        }
        this.dataBytes += end;
        this.inData = false;
        this.endOfData();
        chunk = chunk.subarray(end);
        continue;
      }
      this.buf += chunk.toString('latin1');
      chunk = undefined;
      let nl: number;
      while ((nl = this.buf.indexOf('\r\n')) !== -1) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'DATA') {
          if (!this.mail) {
            this.reply('503 5.5.1 Error: need MAIL command');
            continue;
          }
          if (this.rcpts.length === 0) {
            this.reply('554 5.5.1 Error: no valid recipients');
            continue;
          }
          this.reply('354 End data with <CR><LF>.<CR><LF>');
          this.inData = true;
          this.dataBytes = 0;
          this.tail = CRLF; // the DATA line's CRLF starts the terminator of an empty message
          const rest = Buffer.from(this.buf, 'latin1');
          this.buf = '';
          chunk = rest;
          break;
        }
        if (!this.command(verb, line)) return;
      }
      if (!this.inData && this.buf.length > MAX_LINE) {
        this.reply('500 5.5.2 Line too long', () => this.sock.end());
        this.stopped = true;
        return;
      }
    }
  }

  /** The offset in `chunk` just after the data terminator, or -1 (then `tail` is updated). */
  private findEnd(chunk: Buffer): number {
    const tail = this.tail;
    if (tail.length > 0) {
      const head = Buffer.concat([tail, chunk.subarray(0, 4)]);
      const b = head.indexOf(TERMINATOR);
      if (b !== -1) return b + TERMINATOR.length - tail.length;
    }
    const i = chunk.indexOf(TERMINATOR);
    if (i !== -1) return i + TERMINATOR.length;
    this.tail = chunk.length >= 4 ? chunk.subarray(chunk.length - 4) : Buffer.concat([tail, chunk]).subarray(-4);
    return -1;
  }

  private endOfData(): void {
    const rcpts = this.rcpts;
    const domains = this.rcptDomains;
    const bytes = this.dataBytes;
    this.mail = false;
    this.rcpts = [];
    this.rcptDomains = [];
    this.reply('250 2.0.0 queued', () => this.delivered(rcpts, domains, bytes));
  }

  /** The 250 after the data is written: the recipients are delivered. */
  private delivered(rcpts: string[], domains: string[], bytes: number): void {
    this.rebind();
    const mm = this.m;
    const g = mm.global;
    const t = now();
    g.messages++;
    g.recipients += rcpts.length;
    g.bytes += bytes;
    if (!g.firstAt) g.firstAt = t;
    g.lastAt = t;
    mm.host(this.host.name).messages++;
    for (const a of rcpts) mm.delivered.set(a, (mm.delivered.get(a) ?? 0) + 1);
    for (let i = 0; i < domains.length; i++) {
      const name = domains[i]!;
      if (domains.indexOf(name) !== i) continue; // each domain once per message
      let n = 1;
      for (let j = i + 1; j < domains.length; j++) if (domains[j] === name) n++;
      this.countToward(name);
      const d = mm.domain(name);
      d.addDelivered(t, n);
      const k = (this.perSession.get(name) ?? 0) + 1;
      this.perSession.set(name, k);
      if (k > d.maxMessagesPerSession) d.maxMessagesPerSession = k;
    }
  }

  /** Handles one command line; false when the session stopped reading commands. */
  private command(verb: string, line: string): boolean {
    switch (verb) {
      case 'EHLO': {
        this.mail = false;
        this.rcpts = [];
        this.rcptDomains = [];
        const ext = ['PIPELINING', 'SIZE 104857600', '8BITMIME', 'ENHANCEDSTATUSCODES'];
        if (this.host.fault !== 'no-starttls' && !this.secure) ext.push('STARTTLS');
        this.reply([`250-${this.host.name}`, ...ext.map((e, i) => (i === ext.length - 1 ? `250 ${e}` : `250-${e}`))].join('\r\n'));
        return true;
      }
      case 'HELO':
        this.mail = false;
        this.rcpts = [];
        this.rcptDomains = [];
        this.reply(`250 ${this.host.name}`);
        return true;
      case 'MAIL':
        this.mail = true;
        this.rcpts = [];
        this.rcptDomains = [];
        this.reply('250 2.1.0 Ok');
        return true;
      case 'RCPT':
        this.rcpt(line);
        return true;
      case 'RSET':
        this.mail = false;
        this.rcpts = [];
        this.rcptDomains = [];
        this.reply('250 2.0.0 Ok');
        return true;
      case 'NOOP':
        this.reply('250 2.0.0 Ok');
        return true;
      case 'QUIT':
        this.stopped = true;
        this.reply('221 2.0.0 Bye', () => this.sock.end());
        return false;
      case 'STAR':
        if (line.toUpperCase() !== 'STARTTLS') break;
        if (this.host.fault === 'no-starttls') {
          this.reply('502 5.5.1 STARTTLS not supported');
          return true;
        }
        if (this.secure) {
          this.reply('503 5.5.1 TLS already active');
          return true;
        }
        // Anything pipelined after STARTTLS is discarded (RFC 3207 §4.2).
        this.stopped = true;
        this.buf = '';
        this.raw.off('data', this.onData);
        if (this.host.fault === 'tls-fail') {
          this.reply('220 2.0.0 Ready to start TLS', () => {
            this.m.global.tlsFailClosed++;
            this.raw.destroy();
          });
        } else this.reply('220 2.0.0 Ready to start TLS', () => this.upgrade());
        return false;
    }
    this.reply('502 5.5.2 Command not recognized');
    return true;
  }

  private rcpt(line: string): void {
    if (!this.mail) {
      this.reply('503 5.5.1 Error: need MAIL command');
      return;
    }
    const lt = line.indexOf('<');
    const gt = line.indexOf('>', lt + 1);
    let addr = lt !== -1 && gt !== -1 ? line.slice(lt + 1, gt) : line.slice(line.indexOf(':') + 1).trim();
    for (let i = 0; i < addr.length; i++) {
      if (addr.charCodeAt(i) > 0x7f) {
        addr = Buffer.from(addr, 'latin1').toString('utf8'); // SMTPUTF8: the line arrived as UTF-8
        break;
      }
    }
    const at = addr.lastIndexOf('@');
    if (at <= 0 || at === addr.length - 1) {
      this.reply('501 5.1.3 Bad recipient address syntax');
      return;
    }
    const local = addr.slice(0, at);
    const domain = addr.slice(at + 1).toLowerCase();
    if (this.host.fault === 'rcpt-4xx' && local.slice(0, 4).toLowerCase() === 'soft') {
      this.rebind();
      this.m.global.rcptDeferred++;
      this.m.domain(domain).deferred++;
      this.reply('451 4.3.0 try again later');
      return;
    }
    this.rcpts.push(`${local}@${domain}`);
    this.rcptDomains.push(domain);
    this.countToward(domain);
    this.reply('250 2.1.5 Ok');
  }

  private upgrade(): void {
    const raw = this.raw;
    const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: this.ctx });
    let handshook = false;
    secure.on('error', () => {
      if (!handshook) m.global.tlsErrors++;
    });
    secure.on('close', () => this.onClose());
    secure.once('secure', () => {
      handshook = true;
      m.global.tlsSessions++;
      m.host(this.host.name).tlsSessions++;
      const name = (secure as tls.TLSSocket & { servername?: string | false }).servername;
      if (!name || name.toLowerCase() !== this.host.name.toLowerCase()) m.global.sniMismatch++;
    });
    this.sock = secure;
    this.secure = true; // only decrypted bytes are read from here on
    this.stopped = false;
    secure.on('data', this.onData);
  }
}

async function serve(cfg: InternetSinkConfig): Promise<void> {
  windows = new Map(
    Object.entries(cfg.limits ?? {})
      .filter(([, l]) => l.windowMinutes !== undefined && l.windowMinutes > 0)
      .map(([d, l]) => [d.toLowerCase(), l.windowMinutes! * 60_000]),
  );
  m = new Measures(windows);
  const ctx = tls.createSecureContext({ key: cfg.tls.key, cert: cfg.tls.cert });
  const contexts = new Map(Object.entries(cfg.certs ?? {}).map(([name, c]) => [name, tls.createSecureContext({ key: c.key, cert: c.cert })]));
  const silent = new Set<net.Socket>();
  await Promise.all(
    cfg.hosts
      .filter((h) => h.fault !== 'refuse')
      .map(
        (host) =>
          new Promise<void>((resolve, reject) => {
            const server = net.createServer((s) => {
              if (host.fault === 'never-greet') {
                opened(host);
                m.global.neverGreetSessions++;
                silent.add(s);
                s.on('error', () => undefined);
                s.on('close', () => {
                  silent.delete(s);
                  live--;
                });
                s.resume();
                return;
              }
              new Session(s, host, contexts.get(host.name) ?? ctx);
            });
            server.on('error', (e: Error) => {
              reject(new Error(`${host.name} (${host.address}:${cfg.port}): ${e.message}`));
            });
            server.listen({ host: host.address, port: cfg.port, backlog: 4096 }, () => resolve());
          }),
      ),
  );
}

function snapshot(addresses: boolean): InternetSinkStats {
  const domains: Record<string, InternetDomainStats> = {};
  for (const [name, d] of m.domains) domains[name] = d.snapshot();
  const hosts: Record<string, InternetHostStats> = {};
  for (const [name, h] of m.hosts) hosts[name] = { ...h };
  return {
    global: { ...m.global, openSessions: live },
    domains,
    delivered: addresses ? Object.fromEntries(m.delivered) : {},
    hosts,
  };
}

function handle(msg: { cmd?: string; addresses?: boolean }): InternetSinkStats | InternetSinkGlobal | true {
  if (msg.cmd === 'stats') return snapshot(msg.addresses !== false);
  if (msg.cmd === 'global') return { ...m.global, openSessions: live };
  if (msg.cmd === 'reset') {
    m = new Measures(windows);
    m.global.maxOpenSessions = live;
    return true;
  }
  throw new Error(`unknown command ${msg.cmd}`);
}

async function readConfig(): Promise<InternetSinkConfig> {
  if (process.argv[2]) return JSON.parse(process.argv[2]) as InternetSinkConfig;
  return new Promise((resolve) => {
    const on = (msg: { config?: InternetSinkConfig }): void => {
      if (!msg.config) return;
      process.off('message', on);
      resolve(msg.config);
    };
    process.on('message', on);
    process.send?.({ wantConfig: true });
  });
}

async function main(): Promise<void> {
  const cfg = await readConfig();
  await serve(cfg);
  process.on('message', (msg: { cmd?: string; id?: number; addresses?: boolean }) => {
    if (msg.id === undefined) return;
    try {
      process.send?.({ id: msg.id, result: handle(msg) });
    } catch (e) {
      process.send?.({ id: msg.id, error: (e as Error).message });
    }
  });
  process.on('disconnect', () => process.exit(0));
  process.send?.({ ready: true });
}

// Only when run as its own process (forked by the bench), never when imported.
const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain && process.send) void main().catch((e: Error) => {
  process.stderr.write(`internet-sink: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
