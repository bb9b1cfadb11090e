// Receiving SMTP server for tests, written directly on node:net/node:tls so that it can
// misbehave exactly as configured (STARTTLS refusal, broken handshakes, RFC 3207 response
// injection, scripted MAIL/RCPT/DATA replies) while recording everything a client sent.
// The opt-in `act` hook makes it hostile at any step: slow or never-sent replies, replies
// split into several TCP segments, raw bytes (garbage, overlong lines, unsolicited replies),
// and closing (FIN) or resetting (RST) the connection instead of or after a reply.
import net from 'node:net';
import tls from 'node:tls';
import { within } from '../deadline.js';

export type StarttlsBehaviour =
  | 'none' // STARTTLS not advertised (and answered 502 if sent anyway)
  | 'refuse' // advertised, answers 454 4.7.0 TLS not available
  | 'ok' // advertised, 220, real handshake with opts.cert
  | 'handshake-close' // advertised, 220, then closes the socket without a handshake
  | 'handshake-garbage' // advertised, 220, then (after ~50 ms, as a separate write) sends non-TLS bytes and closes
  | 'inject'; // advertised, writes "220 Ready\r\n250 injected\r\n" in ONE write, then handshakes normally if the client goes on

/** Where the opt-in `act` hook can replace the peer's normal behaviour. */
export type PeerStep =
  | 'greeting' // the session starts (arg '')
  | 'ehlo' // EHLO received (arg: its argument)
  | 'mail' // MAIL received (arg: the reverse path)
  | 'rcpt' // RCPT received (arg: the address)
  | 'data' // DATA received with a valid transaction (arg '')
  | 'body' // one line of message data received, before it is stored (arg: the line, latin1)
  | 'dot'; // the final dot received (arg ''); the message is complete

/**
 * What the peer does instead of its normal reply at a step. The reply (if any) is sent after
 * `delayMs`; replies to later (pipelined) commands queue behind it, in order. With no reply
 * and no `close`, the peer never answers and sends nothing more on this session (it hangs
 * until the client gives up). At 'body', a returned action also stops reading the data.
 */
export interface PeerAction {
  /** Bytes sent verbatim (no CRLF added): garbage, overlong lines, several replies at once. */
  raw?: string;
  /** A reply in the scripted form (CRLF added, multi-line allowed). `raw` wins. */
  reply?: string;
  /** Wait this long before sending (and before closing). */
  delayMs?: number;
  /** Cut the reply at these character offsets and write the pieces as separate TCP segments. */
  splitAt?: number[];
  /** Pause between the pieces of a split reply; default 200 ms. */
  gapMs?: number;
  /** After the reply (or without one): 'end' closes (FIN), 'reset' aborts (RST). */
  close?: 'end' | 'reset';
}

export interface PeerCert {
  keyPem: string;
  /** Chain (leaf first). */
  certPem: string;
}

export interface SmtpPeerOptions {
  host?: string;
  port?: number;
  /** Greeting/EHLO name, default 'mx.test'. */
  hostname?: string;
  starttls?: StarttlsBehaviour;
  /** Needed for 'ok' and 'inject'. */
  cert?: PeerCert;
  /** Ask the client for a certificate during the handshake (accepted whoever issued it). */
  requestClientCert?: boolean;
  /** false: EHLO is answered 502 so the client must fall back to HELO. */
  ehlo?: boolean;
  /** EHLO keywords; STARTTLS is appended when advertised and not yet in TLS. */
  extensions?: string[];
  /** e.g. '550 5.1.1 no such user'; undefined = 250. A reply starting 421 also closes the session. */
  rcptReply?: (address: string) => string | undefined;
  mailReply?: (address: string) => string | undefined;
  /** Reply after the final dot; undefined = 250 2.0.0 queued. */
  dataReply?: () => string | undefined;
  /**
   * Opt-in hostility: called at each step; a returned action replaces the peer's normal reply
   * there (a positive reply still updates the transaction as the normal one would: MAIL/RCPT
   * 2xx are taken, DATA 354 enters data mode, a 2xx after the dot accepts the message).
   * undefined = normal behaviour (and the scripted rcptReply/mailReply/dataReply still apply).
   */
  act?: (step: PeerStep, arg: string, session: PeerSession) => PeerAction | undefined;
}

export interface ReceivedMessage {
  sessionId: number;
  from: string;
  to: string[];
  /** Dot-unstuffed, without the final dot line. */
  data: Buffer;
  tls: boolean;
  protocol?: string;
  cipher?: string;
}

export interface PeerSession {
  id: number;
  remoteAddress: string;
  /** Every command line received in order, plus '<TLS>' when a handshake completes and
   * '<PRE-TLS-BYTES>' when bytes followed STARTTLS before the handshake. */
  commands: string[];
  tls: boolean;
  sni?: string;
  /** SHA-256 ("AB:CD:…") of the certificate the client presented, with requestClientCert. */
  clientCertFingerprint?: string;
  /** Who closed the connection first; undefined while it is open. */
  closedBy?: 'client' | 'server';
}

export interface SmtpPeer {
  host: string;
  port: number;
  /** Only messages whose final-dot reply was 2xx. */
  messages: ReceivedMessage[];
  /** Every message whose final dot arrived, whatever the peer answered (or did not answer). */
  completed: ReceivedMessage[];
  /** Sessions open now (from the connection until QUIT is received or the socket ends). */
  readonly activeSessions: number;
  /** The largest number of sessions that were open at the same time. */
  readonly maxActiveSessions: number;
  sessions: PeerSession[];
  /** The most sessions that were open at the same moment. */
  readonly maxConcurrent: number;
  /** Resolves once at least n messages were accepted. */
  waitForMessages(n: number, timeoutMs?: number): Promise<void>;
  /** Resolves once at least n sessions have been opened and closed (so commands/closedBy are final). */
  waitForSessions(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export const DEFAULT_EXTENSIONS: readonly string[] = ['PIPELINING', 'SIZE 52428800', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES'];
const DEFAULT_WAIT_MS = 5000;
const GARBAGE_DELAY_MS = 50;
const GARBAGE = 'this is definitely not a TLS record\r\n';

/** Puts a (possibly multi-line) scripted reply into wire form. */
function wireReply(reply: string): string {
  const body = reply.replace(/\r?\n$/, '').replace(/\r?\n/g, '\r\n');
  return `${body}\r\n`;
}

function isPositive(reply: string): boolean {
  return reply.startsWith('2');
}

/** Parses `FROM:<addr> PARAMS` / `TO:<addr> PARAMS`; null on bad syntax. */
function parsePath(rest: string, keyword: 'FROM' | 'TO'): { address: string; params: string[] } | null {
  const m = new RegExp(`^${keyword}:\\s*(.*)$`, 'i').exec(rest);
  if (!m) return null;
  const arg = m[1]!.trim();
  let address: string;
  let tail: string;
  if (arg.startsWith('<')) {
    const end = arg.indexOf('>');
    if (end < 0) return null;
    address = arg.slice(1, end);
    tail = arg.slice(end + 1);
  } else {
    // Tolerate a bare address (some clients do this) rather than hide what they sent.
    const sp = arg.search(/\s/);
    address = sp < 0 ? arg : arg.slice(0, sp);
    tail = sp < 0 ? '' : arg.slice(sp);
    if (address === '') return null;
  }
  const params = tail.trim() === '' ? [] : tail.trim().split(/\s+/);
  return { address, params };
}

function sizeLimit(extensions: readonly string[]): number | undefined {
  for (const ext of extensions) {
    const m = /^SIZE\s+(\d+)$/i.exec(ext.trim());
    if (m && Number(m[1]) > 0) return Number(m[1]);
  }
  return undefined;
}

type Mode = 'command' | 'data' | 'tls-pending' | 'closed';

/** Splits a string at the given offsets (sorted, inside the string). */
function cut(text: string, at: number[]): string[] {
  const points = [...new Set(at)].filter((n) => n > 0 && n < text.length).sort((a, b) => a - b);
  const parts: string[] = [];
  let start = 0;
  for (const p of points) {
    parts.push(text.slice(start, p));
    start = p;
  }
  parts.push(text.slice(start));
  return parts;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Waiter {
  ready: () => boolean;
  resolve: () => void;
}

class Session {
  readonly record: PeerSession;
  private socket: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  private mode: Mode = 'command';
  private greeted = false;
  private from: string | undefined;
  private to: string[] = [];
  private dataChunks: Buffer[] = [];
  private protocol: string | undefined;
  private cipher: string | undefined;
  private closeCounted = false;
  private activeCounted = false;
  /** Output queue, created by the first `act` action: later writes wait behind it, in order. */
  private out: Promise<void> | null = null;
  private readonly onPlainData = (chunk: Buffer): void => this.onData(chunk);

  constructor(
    id: number,
    socket: net.Socket,
    private readonly opts: Required<Pick<SmtpPeerOptions, 'hostname' | 'starttls' | 'ehlo' | 'extensions'>> & SmtpPeerOptions,
    private readonly secureContext: tls.SecureContext | undefined,
    private readonly peer: PeerState,
  ) {
    this.socket = socket;
    this.record = { id, remoteAddress: socket.remoteAddress ?? '', commands: [], tls: false };
    this.watch(socket);
    socket.on('data', this.onPlainData);
    this.peer.sessionOpened(this);
    const action = opts.act?.('greeting', '', this.record);
    if (action) this.perform(action);
    else this.write(`220 ${opts.hostname} ESMTP Postern test peer\r\n`);
  }

  /** The reply text of an action, for deciding how the transaction goes on. */
  private static textOf(a: PeerAction): string {
    return a.raw ?? a.reply ?? '';
  }

  /** Carries out an `act` action through the ordered output queue. */
  private perform(a: PeerAction): void {
    const text = a.raw ?? (a.reply !== undefined ? wireReply(a.reply) : undefined);
    if (a.close) this.mode = 'closed'; // read nothing more: the session is ending
    const run = async (): Promise<void> => {
      if (a.delayMs) await sleep(a.delayMs);
      if (text !== undefined) {
        const parts = a.splitAt ? cut(text, a.splitAt) : [text];
        for (let i = 0; i < parts.length; i++) {
          if (i > 0) await sleep(a.gapMs ?? 200);
          this.rawWrite(parts[i]!);
        }
      }
      if (a.close === 'end') this.endSession();
      else if (a.close === 'reset') this.reset();
      else if (text === undefined) await new Promise<void>(() => undefined); // never answers
    };
    this.out = (this.out ?? Promise.resolve()).then(run);
  }

  /** Hooks close/error bookkeeping on the plain socket and later on the TLS socket. */
  private watch(sock: net.Socket): void {
    sock.on('error', () => undefined); // ECONNRESET and handshake failures are test outcomes, not crashes
    sock.on('end', () => {
      this.markClosedBy('client');
      this.inactive();
    });
    sock.on('close', () => {
      this.markClosedBy('client');
      this.inactive();
      this.mode = 'closed';
      if (!this.closeCounted) {
        this.closeCounted = true;
        this.peer.sessionClosed(this);
      }
    });
  }

  /** The session no longer counts as active (QUIT received, or the socket is ending). */
  private inactive(): void {
    if (this.activeCounted) return;
    this.activeCounted = true;
    this.peer.sessionInactive(this);
  }

  private markClosedBy(who: 'client' | 'server'): void {
    if (this.record.closedBy === undefined) this.record.closedBy = who;
  }

  private write(data: string): void {
    if (this.out) this.out = this.out.then(() => this.rawWrite(data));
    else this.rawWrite(data);
  }

  private rawWrite(data: string): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(data);
  }

  /** Aborts the connection with a TCP RST. */
  private reset(): void {
    this.markClosedBy('server');
    this.mode = 'closed';
    this.inactive();
    this.socket.resetAndDestroy();
  }

  /** Server-initiated close: after QUIT, 421, or a scripted broken handshake. */
  endSession(): void {
    this.markClosedBy('server');
    this.mode = 'closed';
    if (this.out) this.out = this.out.then(() => void this.socket.end());
    else this.socket.end();
  }

  destroy(): void {
    this.markClosedBy('server');
    this.mode = 'closed';
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.mode === 'closed' || this.mode === 'tls-pending') return; // e.g. a ClientHello after 'handshake-close'
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    // Pipelined input: consume complete lines in order until the mode stops us.
    while (this.mode === 'command' || this.mode === 'data') {
      const nl = this.buf.indexOf(0x0a);
      if (nl < 0) return;
      const line = this.buf.subarray(0, nl + 1);
      this.buf = this.buf.subarray(nl + 1);
      if (this.mode === 'data') this.dataLine(line);
      else this.command(line.toString('utf8').replace(/\r?\n$/, ''));
    }
  }

  private dataLine(line: Buffer): void {
    const text = line.toString('latin1');
    if (text === '.\r\n' || text === '.\n') {
      this.finishData();
      return;
    }
    const action = this.opts.act?.('body', text, this.record);
    if (action) {
      this.mode = 'closed';
      this.perform(action);
      return;
    }
    this.dataChunks.push(line[0] === 0x2e ? line.subarray(1) : line);
  }

  private finishData(): void {
    this.mode = 'command';
    const action = this.opts.act?.('dot', '', this.record);
    const reply = action ? Session.textOf(action) : (this.opts.dataReply?.() ?? '250 2.0.0 queued');
    if (this.from !== undefined) {
      const msg: ReceivedMessage = {
        sessionId: this.record.id,
        from: this.from,
        to: [...this.to],
        data: Buffer.concat(this.dataChunks),
        tls: this.record.tls,
      };
      if (this.protocol !== undefined) msg.protocol = this.protocol;
      if (this.cipher !== undefined) msg.cipher = this.cipher;
      this.peer.messageCompleted(msg);
      if (isPositive(reply)) this.peer.messageAccepted(msg);
    }
    this.resetTransaction();
    if (action) this.perform(action);
    else this.scripted(reply);
  }

  /** Sends a reply from a test callback; 421 means the server is going away. */
  private scripted(reply: string): void {
    this.write(wireReply(reply));
    if (reply.startsWith('421')) this.endSession();
  }

  private resetTransaction(): void {
    this.from = undefined;
    this.to = [];
    this.dataChunks = [];
  }

  private advertisesStarttls(): boolean {
    return this.opts.starttls !== 'none' && !this.record.tls;
  }

  private command(line: string): void {
    this.record.commands.push(line);
    const sp = line.indexOf(' ');
    const verb = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
    const arg = sp < 0 ? '' : line.slice(sp + 1).trim();
    switch (verb) {
      case 'EHLO':
        return this.ehlo(arg);
      case 'HELO':
        if (arg === '') return this.write('501 5.5.4 Syntax: HELO hostname\r\n');
        this.greeted = true;
        this.resetTransaction();
        return this.write(`250 ${this.opts.hostname}\r\n`);
      case 'STARTTLS':
        return this.starttls();
      case 'MAIL':
        return this.mail(arg);
      case 'RCPT':
        return this.rcpt(arg);
      case 'DATA': {
        if (this.from === undefined) return this.write('503 5.5.1 Error: need MAIL command\r\n');
        if (this.to.length === 0) return this.write('554 5.5.1 Error: no valid recipients\r\n');
        const action = this.opts.act?.('data', '', this.record);
        if (action) {
          if (Session.textOf(action).startsWith('354') && !action.close) {
            this.mode = 'data';
            this.dataChunks = [];
          }
          return this.perform(action);
        }
        this.mode = 'data';
        this.dataChunks = [];
        return this.write('354 End data with <CR><LF>.<CR><LF>\r\n');
      }
      case 'RSET':
        this.resetTransaction();
        return this.write('250 2.0.0 Ok\r\n');
      case 'NOOP':
        return this.write('250 2.0.0 Ok\r\n');
      case 'QUIT':
        this.inactive();
        this.write('221 2.0.0 Bye\r\n');
        return this.endSession();
      default:
        return this.write('500 5.5.2 Error: command not recognized\r\n');
    }
  }

  private ehlo(arg: string): void {
    if (!this.opts.ehlo) return this.write('502 5.5.1 Error: command not implemented\r\n');
    if (arg === '') return this.write('501 5.5.4 Syntax: EHLO hostname\r\n');
    const action = this.opts.act?.('ehlo', arg, this.record);
    if (action) {
      if (isPositive(Session.textOf(action))) {
        this.greeted = true;
        this.resetTransaction();
      }
      return this.perform(action);
    }
    this.greeted = true;
    this.resetTransaction();
    const keywords = [...this.opts.extensions];
    if (this.advertisesStarttls() && !keywords.some((k) => k.toUpperCase() === 'STARTTLS')) keywords.push('STARTTLS');
    const lines = [this.opts.hostname, ...keywords];
    this.write(lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}\r\n`).join(''));
  }

  private mail(arg: string): void {
    if (!this.greeted) return this.write('503 5.5.1 Error: send HELO/EHLO first\r\n');
    if (this.from !== undefined) return this.write('503 5.5.1 Error: nested MAIL command\r\n');
    const path = parsePath(arg, 'FROM');
    if (!path) return this.write('501 5.5.4 Syntax: MAIL FROM:<address>\r\n');
    const limit = sizeLimit(this.opts.extensions);
    const sizeParam = path.params.find((p) => /^SIZE=\d+$/i.test(p));
    if (limit !== undefined && sizeParam !== undefined && Number(sizeParam.slice(5)) > limit) {
      return this.write('552 5.3.4 Message size exceeds fixed limit\r\n');
    }
    const action = this.opts.act?.('mail', path.address, this.record);
    const reply = action ? Session.textOf(action) : (this.opts.mailReply?.(path.address) ?? '250 2.1.0 Ok');
    if (isPositive(reply)) this.from = path.address;
    if (action) this.perform(action);
    else this.scripted(reply);
  }

  private rcpt(arg: string): void {
    if (this.from === undefined) return this.write('503 5.5.1 Error: need MAIL command\r\n');
    const path = parsePath(arg, 'TO');
    if (!path || path.address === '') return this.write('501 5.5.4 Syntax: RCPT TO:<address>\r\n');
    const action = this.opts.act?.('rcpt', path.address, this.record);
    const reply = action ? Session.textOf(action) : (this.opts.rcptReply?.(path.address) ?? '250 2.1.5 Ok');
    if (isPositive(reply)) this.to.push(path.address);
    if (action) this.perform(action);
    else this.scripted(reply);
  }

  private starttls(): void {
    const behaviour = this.opts.starttls;
    if (this.record.tls) return this.write('503 5.5.1 Error: TLS already active\r\n');
    if (behaviour === 'none') return this.write('502 5.5.1 Error: command not implemented\r\n');
    if (behaviour === 'refuse') return this.write('454 4.7.0 TLS not available\r\n');

    this.mode = 'tls-pending';
    // Whatever the client sent after STARTTLS before seeing our 220 must never be executed
    // (RFC 3207 §6); note its presence so tests can assert a client did not do that.
    if (this.buf.length > 0) this.record.commands.push('<PRE-TLS-BYTES>');
    this.buf = Buffer.alloc(0);

    switch (behaviour) {
      case 'handshake-close':
        this.write('220 2.0.0 Ready to start TLS\r\n');
        return this.endSession();
      case 'handshake-garbage':
        this.write('220 2.0.0 Ready to start TLS\r\n');
        setTimeout(() => {
          if (this.mode === 'closed') return;
          this.write(GARBAGE);
          this.endSession();
        }, GARBAGE_DELAY_MS);
        return;
      case 'inject':
        // One write, so both lines land in the client's plaintext buffer together.
        this.write('220 Ready\r\n250 injected\r\n');
        return this.upgrade();
      case 'ok':
        this.write('220 2.0.0 Ready to start TLS\r\n');
        return this.upgrade();
    }
  }

  private upgrade(): void {
    if (!this.secureContext) throw new Error('smtp-peer: starttls ok/inject needs opts.cert');
    const plain = this.socket;
    plain.removeListener('data', this.onPlainData);
    const secure = new tls.TLSSocket(plain, {
      isServer: true,
      secureContext: this.secureContext,
      requestCert: this.opts.requestClientCert === true,
      rejectUnauthorized: false,
    });
    this.socket = secure;
    this.watch(secure);
    secure.on('secure', () => {
      if (this.mode === 'closed') return;
      this.record.tls = true;
      if (secure.servername) this.record.sni = secure.servername;
      const presented = secure.getPeerCertificate();
      if (presented && presented.fingerprint256) this.record.clientCertFingerprint = presented.fingerprint256;
      this.protocol = secure.getProtocol() ?? undefined;
      this.cipher = secure.getCipher()?.name;
      this.record.commands.push('<TLS>');
      // RFC 3207: the SMTP state is discarded; the client must EHLO again.
      this.greeted = false;
      this.resetTransaction();
      this.mode = 'command';
    });
    secure.on('data', (chunk: Buffer) => this.onData(chunk));
  }
}

interface PeerState {
  sessionOpened(session: Session): void;
  /** Called once per session, when QUIT arrives or the socket ends, whichever comes first. */
  sessionInactive(session: Session): void;
  /** Called once per session, on whichever socket (plain or TLS) closes first. */
  sessionClosed(session: Session): void;
  messageCompleted(msg: ReceivedMessage): void;
  messageAccepted(msg: ReceivedMessage): void;
}

export async function startSmtpPeer(opts: SmtpPeerOptions): Promise<SmtpPeer> {
  const host = opts.host ?? '127.0.0.1';
  const starttls = opts.starttls ?? 'none';
  if ((starttls === 'ok' || starttls === 'inject') && !opts.cert) {
    throw new Error(`smtp-peer: starttls '${starttls}' needs opts.cert`);
  }
  const resolved = {
    ...opts,
    hostname: opts.hostname ?? 'mx.test',
    starttls,
    ehlo: opts.ehlo ?? true,
    extensions: opts.extensions ?? [...DEFAULT_EXTENSIONS],
  };
  const secureContext = opts.cert ? tls.createSecureContext({ key: opts.cert.keyPem, cert: opts.cert.certPem }) : undefined;

  const messages: ReceivedMessage[] = [];
  const completed: ReceivedMessage[] = [];
  const sessions: PeerSession[] = [];
  const live = new Set<Session>();
  const active = new Set<Session>();
  let maxActive = 0;
  let closedSessions = 0;
  let waiters: Waiter[] = [];
  const poke = (): void => {
    waiters = waiters.filter((w) => {
      if (!w.ready()) return true;
      w.resolve();
      return false;
    });
  };
  const state: PeerState = {
    sessionOpened: (session) => {
      active.add(session);
      maxActive = Math.max(maxActive, active.size);
    },
    sessionInactive: (session) => {
      active.delete(session);
    },
    messageCompleted: (msg) => {
      completed.push(msg);
    },
    sessionClosed: (session) => {
      live.delete(session);
      closedSessions++;
      poke();
    },
    messageAccepted: (msg) => {
      messages.push(msg);
      poke();
    },
  };

  let nextId = 1;
  let maxConcurrent = 0;
  const server = net.createServer({ noDelay: true }, (socket) => {
    const session = new Session(nextId++, socket, resolved, secureContext, state);
    sessions.push(session.record);
    live.add(session);
    maxConcurrent = Math.max(maxConcurrent, live.size);
  });
  server.on('error', () => undefined);

  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolveListen();
    });
  });
  const addr = server.address() as net.AddressInfo;

  const wait = (what: string, ready: () => boolean, count: () => number, n: number, timeoutMs: number): Promise<void> => {
    if (ready()) return Promise.resolve();
    return new Promise<void>((resolveWait, reject) => {
      const waiter: Waiter = {
        ready,
        resolve: () => {
          clearTimeout(timer);
          resolveWait();
        },
      };
      const timer = setTimeout(() => {
        waiters = waiters.filter((w) => w !== waiter);
        reject(new Error(`smtp-peer: timed out after ${within(timeoutMs)} ms waiting for ${n} ${what} (have ${count()})`));
      }, within(timeoutMs));
      waiters.push(waiter);
    });
  };

  let closing: Promise<void> | undefined;
  return {
    host,
    port: addr.port,
    messages,
    completed,
    get activeSessions() {
      return active.size;
    },
    get maxActiveSessions() {
      return maxActive;
    },
    sessions,
    get maxConcurrent() {
      return maxConcurrent;
    },
    waitForMessages: (n, timeoutMs = DEFAULT_WAIT_MS) =>
      wait('messages', () => messages.length >= n, () => messages.length, n, timeoutMs),
    waitForSessions: (n, timeoutMs = DEFAULT_WAIT_MS) =>
      wait('closed sessions', () => closedSessions >= n, () => closedSessions, n, timeoutMs),
    close: () => {
      closing ??= new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        for (const s of live) s.destroy();
      });
      return closing;
    },
  };
}
