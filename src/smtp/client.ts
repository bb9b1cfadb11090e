/**
 * A small SMTP client session over one TCP connection (RFC 5321, 3207, 2920, 1870, 6152, 6531,
 * 3461). It gives delivery step-by-step control of the STARTTLS upgrade that the six TLS
 * settings need: it reports, and never decides, what happened before and after the 220.
 *
 * Contract:
 * - `SmtpSession.open` connects and reads the greeting; failures are thrown as SmtpFailure
 *   values (a typed union naming the step, the reply and the time waited), never strings.
 * - `ehlo` sends EHLO, falls back to HELO on a 5xx, and replaces the known extensions.
 * - `starttls` never sends a command after STARTTLS before the handshake; any byte the server
 *   sent after its 220 and before the handshake makes it drop the connection ('injected');
 *   after the handshake the extensions are forgotten until the next `ehlo`.
 * - `send` runs one transaction (MAIL, RCPT…, DATA), pipelined when offered, and returns
 *   the reply to every recipient.
 */
import net from 'node:net';
import tls from 'node:tls';
import { enhancedOf, parseEhlo, parseReplyLine, replyText, type Reply } from './reply.js';

/** Per-step timeouts in ms; the RFC 5321 §4.5.3.2 values by default. */
export interface SmtpTimeouts {
  connect: number;
  greeting: number;
  ehlo: number;
  starttls: number;
  tlsHandshake: number;
  mail: number;
  rcpt: number;
  dataInit: number;
  dataBlock: number;
  dataTerm: number;
  quit: number;
}

export const RFC5321_TIMEOUTS: SmtpTimeouts = {
  connect: 30_000,
  greeting: 300_000,
  ehlo: 300_000,
  starttls: 120_000,
  tlsHandshake: 60_000,
  mail: 300_000,
  rcpt: 300_000,
  dataInit: 120_000,
  dataBlock: 180_000,
  dataTerm: 600_000,
  quit: 10_000,
};

export type SmtpFailure =
  | { kind: 'connect'; address: string; port: number; detail: string }
  | { kind: 'timeout'; step: string; waitedMs: number }
  | { kind: 'closed'; step: string; detail: string }
  | { kind: 'protocol'; step: string; detail: string };

export class SmtpFailureError extends Error {
  constructor(readonly failure: SmtpFailure) {
    super(describeFailure(failure));
    this.name = 'SmtpFailureError';
  }
}

export function describeFailure(f: SmtpFailure): string {
  switch (f.kind) {
    case 'connect':
      return `connection to ${f.address} port ${f.port} failed: ${f.detail}`;
    case 'timeout':
      return `timed out after ${Math.round(f.waitedMs / 1000)} s waiting for the reply to ${f.step}`;
    case 'closed':
      return `connection closed by the server during ${f.step}${f.detail ? ` (${f.detail})` : ''}`;
    case 'protocol':
      return `protocol error during ${f.step}: ${f.detail}`;
  }
}

export interface TlsUp {
  kind: 'ok';
  protocol: string;
  cipher: string;
  /** The whole chain the server sent, as Node's objects (DANE, tlsverify's trace). */
  certificate: tls.DetailedPeerCertificate | null;
  /** The server's own certificate as DER only: what a name check needs, several times cheaper to get. */
  leaf: { raw: Buffer } | null;
  /** Whether the chain ends at a trusted authority and is within its validity period. */
  chainTrusted: boolean;
  chainError?: string;
}

export type StartTlsResult =
  | { kind: 'rejected'; reply: Reply }
  | { kind: 'injected'; bytes: number }
  | { kind: 'failed'; detail: string }
  | TlsUp;

export interface StartTlsOptions {
  /** SNI; omitted when the host is only known by address. */
  servername?: string;
  secureContext: tls.SecureContext;
}

export interface EnvelopeRecipient {
  address: string;
  /** DSN NOTIFY and ORCPT values (RFC 3461), passed through when the server offers DSN. */
  notify?: string;
  orcpt?: string;
}

export interface Envelope {
  from: string;
  recipients: EnvelopeRecipient[];
  size: number;
  eightBit?: boolean;
  smtputf8?: boolean;
  ret?: string;
  envid?: string;
  /** RFC 8689: sent with the REQUIRETLS parameter, and only in a TLS session to a server that offers it. */
  requireTls?: boolean;
}

export type TransactionResult =
  /** MAIL FROM refused, or the message cannot go to this server at all (size, SMTPUTF8). */
  | { kind: 'message-refused'; reply: Reply; step: string }
  /** Per recipient reply, and the reply after the final dot (absent when no recipient was accepted). */
  | { kind: 'done'; recipients: Reply[]; data?: Reply };

const MAX_LINE = 4096;
const MAX_LINES = 1000;

interface Waiter {
  step: string;
  resolve: (r: Reply) => void;
  reject: (e: SmtpFailureError) => void;
  timer: NodeJS.Timeout;
  started: number;
}

export interface OpenOptions {
  address: string;
  port: number;
  localAddress?: string;
  timeouts: SmtpTimeouts;
}

export class SmtpSession {
  private socket: net.Socket;
  private pending = '';
  /** Lines of the reply being read, and its code. */
  private lines: string[] = [];
  private lineCode = 0;
  /** Complete replies not yet read, and how many more the commands written are owed (the greeting: 1). */
  private readonly replies: Reply[] = [];
  private expected = 1;
  private waiter: Waiter | null = null;
  private dead: SmtpFailureError | null = null;
  /** A 421: the server is closing the session (RFC 5321 §3.8); no further command is sent. */
  private closing: Reply | null = null;
  /** Set while waiting for the STARTTLS reply: stop reading once it is complete. */
  private holdAfterReply = false;
  private stopped = false;
  private held = 0;
  private readonly onData = (chunk: Buffer) => this.feed(chunk);
  extensions = new Map<string, string>();
  secure = false;
  greeting!: Reply;

  private constructor(
    socket: net.Socket,
    readonly address: string,
    readonly port: number,
    readonly timeouts: SmtpTimeouts,
  ) {
    this.socket = socket;
    this.attach(socket);
  }

  /** Connects and reads the greeting (any code; the caller decides what a non-2xx means). */
  static async open(o: OpenOptions): Promise<SmtpSession> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: o.address, port: o.port, localAddress: o.localAddress });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new SmtpFailureError({ kind: 'connect', address: o.address, port: o.port, detail: `no answer in ${o.timeouts.connect} ms` }));
      }, o.timeouts.connect);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new SmtpFailureError({ kind: 'connect', address: o.address, port: o.port, detail: e.code ?? e.message }));
      });
    });
    socket.setNoDelay(true);
    const session = new SmtpSession(socket, o.address, o.port, o.timeouts);
    session.greeting = await session.read('greeting', o.timeouts.greeting);
    return session;
  }

  get localAddress(): string | undefined {
    return this.socket.localAddress;
  }

  /** EHLO, or HELO when EHLO is refused with 5xx. Returns the reply that counts. */
  async ehlo(name: string): Promise<Reply> {
    const r = await this.command(`EHLO ${name}`, 'EHLO', this.timeouts.ehlo);
    if (r.code === 250) {
      this.extensions = parseEhlo(r);
      return r;
    }
    this.extensions = new Map();
    if (r.code >= 500) return this.command(`HELO ${name}`, 'HELO', this.timeouts.ehlo);
    return r;
  }

  async starttls(o: StartTlsOptions): Promise<StartTlsResult> {
    this.holdAfterReply = true;
    this.stopped = false;
    const reply = await this.command('STARTTLS', 'STARTTLS', this.timeouts.starttls);
    this.holdAfterReply = false;
    this.stopped = false;
    if (reply.code !== 220) {
      this.socket.resume();
      return { kind: 'rejected', reply };
    }
    // RFC 3207 §5: whatever came after the 220 was not protected by TLS: drop the connection.
    const extra =
      this.held +
      this.pending.length +
      this.lines.reduce((n, l) => n + l.length + 2, 0) +
      this.replies.reduce((n, r) => n + r.lines.join('\r\n').length + 6, 0);
    if (extra > 0) {
      this.destroy();
      return { kind: 'injected', bytes: extra };
    }
    const plain = this.socket;
    plain.removeListener('data', this.onData);
    const secure = await new Promise<tls.TLSSocket | string>((resolve) => {
      const t = tls.connect({
        socket: plain,
        servername: o.servername,
        secureContext: o.secureContext,
        rejectUnauthorized: false,
        // Identity is Postern's own check (Verify or Hosted, SPEC §3); `authorized` must say only
        // whether the chain is trusted and within its dates.
        checkServerIdentity: () => undefined,
        minVersion: 'TLSv1.2',
      });
      // Before calling checkServerIdentity (ours ignores its arguments) Node builds the whole peer
      // chain as objects, about a millisecond per handshake: the largest single cost of many short
      // TLS sessions. During the handshake the socket answers that call with nothing; the chain is
      // read afterwards only when a check needs it (the getters below).
      Object.defineProperty(t, 'getPeerCertificate', { configurable: true, value: () => ({}) });
      const timer = setTimeout(() => {
        t.destroy();
        resolve(`handshake timed out after ${this.timeouts.tlsHandshake} ms`);
      }, this.timeouts.tlsHandshake);
      t.once('secureConnect', () => {
        Reflect.deleteProperty(t, 'getPeerCertificate');
        clearTimeout(timer);
        t.removeAllListeners('error');
        resolve(t);
      });
      t.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        t.destroy();
        // OpenSSL's error text can span lines ("...:SSL routines::...\n"); a reason is one line
        // wherever it goes (mail log, the queue's last reply, a DSN, tlsverify).
        const text = e.message.replace(/\s*[\r\n]+\s*/g, ' ').trim();
        resolve(e.code ? `${e.code}: ${text}` : text);
      });
      plain.once('close', () => {
        clearTimeout(timer);
        resolve('connection closed during the handshake');
      });
    });
    if (typeof secure === 'string') {
      this.dead = new SmtpFailureError({ kind: 'closed', step: 'TLS handshake', detail: secure });
      plain.destroy();
      return { kind: 'failed', detail: secure };
    }
    this.socket = secure;
    this.attach(secure);
    this.secure = true;
    this.extensions = new Map(); // RFC 3207 §4.2: forget what the server said before TLS
    const authError = secure.authorizationError as unknown as string | Error | null;
    // Node builds the whole chain as objects on each call (about a millisecond): read it once,
    // and only if asked (the profile of many short TLS sessions showed it as the largest cost).
    let certificate: tls.DetailedPeerCertificate | null | undefined;
    let leaf: { raw: Buffer } | null | undefined;
    return {
      kind: 'ok',
      protocol: secure.getProtocol() ?? 'unknown',
      cipher: secure.getCipher()?.name ?? 'unknown',
      get certificate() {
        return (certificate ??= secure.getPeerCertificate(true) ?? null);
      },
      get leaf() {
        // Once the chain has been read, Node's X509 view of the peer is gone: take the DER from it.
        if (certificate !== undefined) return certificate?.raw ? { raw: certificate.raw } : null;
        return (leaf ??= ((x) => (x ? { raw: x.raw } : null))(secure.getPeerX509Certificate()));
      },
      chainTrusted: secure.authorized,
      chainError: authError === null ? undefined : String(authError instanceof Error ? authError.message : authError),
    };
  }

  /**
   * One mail transaction. Refuses locally (without sending) what the server said it cannot take.
   * Never reports a recipient as accepted without the server's reply to the message data: when
   * the connection breaks after some replies are known, the known ones are returned and the
   * others become a local 4.4.2 (retry); a 421 ends the session at once (RFC 5321 §3.8).
   */
  async send(env: Envelope, body: Buffer): Promise<TransactionResult> {
    const sizeLimit = Number(this.extensions.get('SIZE') ?? '0');
    if (sizeLimit > 0 && env.size > sizeLimit) {
      return { kind: 'message-refused', step: 'SIZE', reply: local(552, '5.3.4', `message size ${env.size} exceeds the server's limit of ${sizeLimit}`) };
    }
    if (env.smtputf8 && !this.extensions.has('SMTPUTF8')) {
      return { kind: 'message-refused', step: 'SMTPUTF8', reply: local(553, '5.6.7', 'the server does not support SMTPUTF8 addresses') };
    }
    if (env.requireTls && !(this.secure && this.extensions.has('REQUIRETLS'))) {
      const why = this.secure ? 'the server does not offer REQUIRETLS after STARTTLS' : 'the session is not encrypted';
      return { kind: 'message-refused', step: 'REQUIRETLS', reply: local(550, '5.7.30', `REQUIRETLS support required: ${why}`) };
    }
    const dsn = this.extensions.has('DSN');
    const mailParams: string[] = [];
    if (this.extensions.has('SIZE')) mailParams.push(`SIZE=${env.size}`);
    if (env.eightBit && this.extensions.has('8BITMIME')) mailParams.push('BODY=8BITMIME');
    if (env.smtputf8) mailParams.push('SMTPUTF8');
    if (dsn && env.ret) mailParams.push(`RET=${env.ret}`);
    if (dsn && env.envid) mailParams.push(`ENVID=${env.envid}`);
    if (env.requireTls) mailParams.push('REQUIRETLS');
    const mail = `MAIL FROM:<${env.from}>${mailParams.length ? ' ' + mailParams.join(' ') : ''}`;
    const rcpts = env.recipients.map((r) => {
      const p: string[] = [];
      if (dsn && r.notify) p.push(`NOTIFY=${r.notify}`);
      if (dsn && r.orcpt) p.push(`ORCPT=${r.orcpt}`);
      return `RCPT TO:<${r.address}>${p.length ? ' ' + p.join(' ') : ''}`;
    });
    const pipelining = this.extensions.has('PIPELINING');
    if (pipelining) this.write([mail, ...rcpts, 'DATA'].map((c) => c + '\r\n').join(''));

    // MAIL FROM
    const mailReply = pipelining ? await this.read('MAIL FROM', this.timeouts.mail) : await this.command(mail, 'MAIL FROM', this.timeouts.mail);
    if (mailReply.code >= 300) {
      if (pipelining && mailReply.code !== 421) await this.drain(rcpts.length + 1, 'RCPT TO');
      await this.afterRefusal(mailReply);
      return { kind: 'message-refused', step: 'MAIL FROM', reply: mailReply };
    }

    // RCPT TO, each
    const replies: Reply[] = [];
    for (const r of rcpts) {
      if (this.closing) break;
      const got = await this.attempt(() => (pipelining ? this.read('RCPT TO', this.timeouts.rcpt) : this.command(r, 'RCPT TO', this.timeouts.rcpt)));
      if (got instanceof SmtpFailureError) return this.broken(replies, rcpts.length, got);
      replies.push(got);
      if (got.code === 421) this.closing = got;
    }
    while (replies.length < rcpts.length) replies.push(this.closing!);
    const accepted = replies.some((r) => r.code < 300);

    // DATA
    let dataReply: Reply | SmtpFailureError;
    if (this.closing) dataReply = this.closing;
    else if (pipelining) dataReply = await this.attempt(() => this.read('DATA', this.timeouts.dataInit));
    else if (!accepted) dataReply = local(554, '5.5.1', 'no valid recipients'); // DATA not sent
    else dataReply = await this.attempt(() => this.command('DATA', 'DATA', this.timeouts.dataInit));
    if (!accepted) {
      // RFC 2920 §3.1: a DATA accepted anyway gets an empty message ended at once.
      if (!(dataReply instanceof SmtpFailureError) && dataReply.code === 354) {
        await this.attempt(() => this.command('.', 'end of data', this.timeouts.dataTerm));
      }
      if (!(dataReply instanceof SmtpFailureError)) await this.afterRefusal(dataReply);
      return { kind: 'done', recipients: replies };
    }
    if (dataReply instanceof SmtpFailureError) return this.broken(replies, replies.length, dataReply);
    if (dataReply.code !== 354) {
      if (dataReply.code < 400) {
        // A server that says 2xx to DATA has not taken the message: never count it delivered.
        const err = new SmtpFailureError({ kind: 'protocol', step: 'DATA', detail: `unexpected reply ${replyText(dataReply)}` });
        this.dead ??= err;
        this.socket.destroy();
        return this.broken(replies, replies.length, err);
      }
      await this.afterRefusal(dataReply);
      return { kind: 'done', recipients: replies.map((r) => (r.code < 300 ? dataReply : r)) };
    }
    const wrote = await this.attempt(async () => {
      this.expected++; // the reply to the final dot
      await this.writeBody(dotStuff(body));
      return local(250, '2.0.0', 'written');
    });
    if (wrote instanceof SmtpFailureError) return this.broken(replies, replies.length, wrote);
    const final = await this.attempt(() => this.read('end of data', this.timeouts.dataTerm));
    if (final instanceof SmtpFailureError) return this.broken(replies, replies.length, final);
    if (final.code === 421) this.closing = final;
    return { kind: 'done', recipients: replies, data: final };
  }

  /** Reads and ignores `n` pipelined replies (after a refused MAIL FROM); never throws. */
  private async drain(n: number, step: string): Promise<void> {
    for (let i = 0; i < n && !this.dead; i++) {
      const r = await this.attempt(() => this.read(step, this.timeouts.rcpt));
      if (r instanceof SmtpFailureError || r.code === 421) return;
    }
  }

  /** After a refusal: RSET, unless the server is closing (421), which ends the session. */
  private async afterRefusal(r: Reply): Promise<void> {
    if (r.code === 421) {
      this.closing = r;
      this.destroy();
      return;
    }
    await this.rset();
  }

  /**
   * The connection broke during a transaction: the replies known so far stand, and every
   * recipient without a final answer (including those accepted, since the message was not
   * confirmed) gets a local 4.4.2 naming what happened.
   */
  private broken(known: Reply[], total: number, e: SmtpFailureError): TransactionResult {
    const lost = local(451, '4.4.2', e.message);
    const recipients = Array.from({ length: total }, (_, i) => {
      const r = known[i];
      return r && r.code >= 300 ? r : lost;
    });
    return { kind: 'done', recipients };
  }

  private async attempt(fn: () => Promise<Reply>): Promise<Reply | SmtpFailureError> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof SmtpFailureError) return e;
      throw e;
    }
  }

  /** RSET; never throws (a server that closed after refusing has said what it had to say). */
  async rset(): Promise<void> {
    if (this.dead || this.closing) return;
    const r = await this.attempt(() => this.command('RSET', 'RSET', this.timeouts.mail));
    if (r instanceof SmtpFailureError || r.code === 421) this.destroy();
  }

  /** QUIT politely; never throws (the server may already be gone). */
  async quit(): Promise<void> {
    if (!this.dead && !this.closing) {
      try {
        await this.command('QUIT', 'QUIT', this.timeouts.quit);
      } catch {
        /* the connection ends either way */
      }
    }
    this.destroy();
  }

  destroy(): void {
    this.socket.destroy();
    this.dead ??= new SmtpFailureError({ kind: 'closed', step: 'session', detail: 'closed by client' });
  }

  get usable(): boolean {
    return this.dead === null && this.closing === null;
  }

  // ---- reading and writing ----------------------------------------------------------
  //
  // Replies are parsed as bytes arrive and queued; each command written expects one reply.
  // A reply nobody asked for (an early talker, a desynchronised server) is a protocol error:
  // taking it as the answer to the next command would shift every later answer by one.

  private attach(s: net.Socket): void {
    s.on('data', this.onData);
    s.on('error', (e: NodeJS.ErrnoException) => this.fail(e.code ?? e.message));
    s.on('close', () => this.fail(''));
  }

  private fail(detail: string): void {
    if (this.dead && !this.waiter) return;
    const step = this.waiter?.step ?? 'session';
    const err = new SmtpFailureError({ kind: 'closed', step, detail });
    this.dead ??= err;
    this.rejectWaiter(err);
  }

  private rejectWaiter(err: SmtpFailureError): void {
    if (!this.waiter) return;
    const w = this.waiter;
    this.waiter = null;
    clearTimeout(w.timer);
    w.reject(err);
  }

  private feed(chunk: Buffer): void {
    if (this.holdAfterReply && this.stopped) {
      this.held += chunk.length;
      return;
    }
    this.pending += chunk.toString('utf8');
    let nl: number;
    while ((nl = this.pending.indexOf('\n')) !== -1) {
      const line = this.pending.slice(0, nl).replace(/\r$/, '');
      this.pending = this.pending.slice(nl + 1);
      if (!this.takeLine(line)) return;
      if (this.holdAfterReply && this.stopped) {
        // Stop at the STARTTLS reply: whatever follows must not be read as SMTP.
        this.socket.pause();
        return;
      }
    }
    if (this.pending.length > MAX_LINE) this.protocolError(`reply line longer than ${MAX_LINE} bytes`);
  }

  /** Adds one line to the reply being read; false when the session is dead. */
  private takeLine(line: string): boolean {
    const p = parseReplyLine(line);
    if (p.kind === 'bad') {
      this.protocolError(`malformed reply line ${JSON.stringify(p.line.slice(0, 80))}`);
      return false;
    }
    if (this.lines.length > 0 && p.code !== this.lineCode) {
      this.protocolError(`reply code changed from ${this.lineCode} to ${p.code} inside a multi-line reply`);
      return false;
    }
    this.lineCode = p.code;
    this.lines.push(p.text);
    if (this.lines.length > MAX_LINES) {
      this.protocolError(`reply of more than ${MAX_LINES} lines`);
      return false;
    }
    if (!p.last) return true;
    const reply: Reply = { code: p.code, lines: this.lines, enhanced: enhancedOf(this.lines[this.lines.length - 1] ?? '') };
    this.lines = [];
    if (this.expected === 0) {
      this.protocolError(`unexpected reply "${replyText(reply).slice(0, 80)}" when no command was waiting for one`);
      return false;
    }
    this.expected--;
    if (this.holdAfterReply) this.stopped = true;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      clearTimeout(w.timer);
      w.resolve(reply);
    } else this.replies.push(reply);
    return true;
  }

  private protocolError(detail: string): void {
    const step = this.waiter?.step ?? 'session';
    const err = new SmtpFailureError({ kind: 'protocol', step, detail });
    this.dead ??= err;
    this.socket.destroy();
    this.rejectWaiter(err);
  }

  private read(step: string, timeoutMs: number): Promise<Reply> {
    const ready = this.replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.dead) return Promise.reject(new SmtpFailureError({ ...this.dead.failure, step } as SmtpFailure));
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.waiter?.timer !== timer) return;
        this.waiter = null;
        const err = new SmtpFailureError({ kind: 'timeout', step, waitedMs: timeoutMs });
        this.dead ??= err;
        this.socket.destroy();
        reject(err);
      }, timeoutMs);
      this.waiter = { step, resolve, reject, timer, started: Date.now() };
    });
  }

  private write(text: string): void {
    if (this.dead) throw this.dead;
    // One reply is owed for every command line (the body's lines are not commands).
    for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) this.expected++;
    this.socket.write(text);
  }

  private async command(line: string, step: string, timeoutMs: number): Promise<Reply> {
    this.write(line + '\r\n');
    return this.read(step, timeoutMs);
  }

  private async writeBody(pieces: Buffer[]): Promise<void> {
    if (this.dead) throw this.dead;
    const chunks = pieces.flatMap(chunksOf);
    // After an unstuffed body the terminator is a piece of its own: it leaves with the body's last chunk.
    const tail = pieces.length > 1 ? chunks.splice(-2) : [];
    for (const chunk of chunks) await this.writeBlock([chunk]);
    if (tail.length > 0) await this.writeBlock(tail);
  }

  /** Writes `bufs` as one write (corked), then waits for the socket to drain if it is full. */
  private async writeBlock(bufs: Buffer[]): Promise<void> {
    this.socket.cork();
    let room = true;
    for (const b of bufs) room = this.socket.write(b);
    this.socket.uncork();
    if (!room) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.socket.destroy();
          reject(new SmtpFailureError({ kind: 'timeout', step: 'data block', waitedMs: this.timeouts.dataBlock }));
        }, this.timeouts.dataBlock);
        this.socket.once('drain', () => {
          clearTimeout(timer);
          resolve();
        });
        this.socket.once('close', () => {
          clearTimeout(timer);
          reject(this.dead ?? new SmtpFailureError({ kind: 'closed', step: 'data block', detail: '' }));
        });
      });
    }
    if (this.dead) throw this.dead;
  }
}

/** The body is written in blocks of this size, each waiting for room in the socket. */
const BODY_CHUNK = 64 * 1024;

function chunksOf(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < b.length; off += BODY_CHUNK) out.push(b.subarray(off, off + BODY_CHUNK));
  return out;
}

function local(code: number, enhanced: string, text: string): Reply {
  return { code, enhanced, lines: [`${enhanced} ${text}`] };
}

/**
 * The message body as sent after DATA: CRLF line ends (a bare LF becomes CRLF), a dot doubled at
 * the start of each line (RFC 5321 §4.5.2), and the terminating `.` line — as the pieces to
 * write in order. A body that needs no change (the usual case: the listener stores CRLF lines)
 * is sent as it is, followed by the terminator, not copied: a copy per message in flight is
 * 2–100 KB more for each of hundreds of connections.
 */
export function dotStuff(body: Buffer): Buffer[] {
  const end = terminator(body);
  if (body.length === 0) return [end];
  if (body[0] !== 0x2e && !needsStuffing(body)) return [body, end];
  return [Buffer.concat([...stuffedParts(body), end])];
}

/** Whether some line starts with a dot or ends with a bare LF (each line end found natively). */
function needsStuffing(body: Buffer): boolean {
  for (let i = body.indexOf(0x0a); i !== -1; i = body.indexOf(0x0a, i + 1)) {
    if (i === 0 || body[i - 1] !== 0x0d || body[i + 1] === 0x2e) return true;
  }
  return false;
}

/** The `.` line, after a CRLF unless the body ends with one (a bare LF becomes CRLF). */
function terminator(body: Buffer): Buffer {
  if (body.length === 0) return END;
  const endsWithCrlf = body.length >= 2 && body[body.length - 2] === 0x0d && body[body.length - 1] === 0x0a;
  const endsWithLf = body[body.length - 1] === 0x0a;
  return endsWithCrlf || endsWithLf ? END : CRLF_END;
}

function stuffedParts(body: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  let start = 0;
  const insert = (at: number, what: Buffer): void => {
    parts.push(body.subarray(start, at), what);
    start = at;
  };
  // From line end to line end with the native search, not byte by byte (bodies are large).
  if (body[0] === 0x2e) insert(0, DOT);
  for (let i = body.indexOf(0x0a); i !== -1; i = body.indexOf(0x0a, i + 1)) {
    if (i === 0 || body[i - 1] !== 0x0d) insert(i, CR); // a bare LF becomes CRLF
    if (body[i + 1] === 0x2e) insert(i + 1, DOT);
  }
  parts.push(body.subarray(start));
  return parts;
}

const DOT = Buffer.from('.');
const CR = Buffer.from('\r');
const END = Buffer.from('.\r\n');
const CRLF_END = Buffer.from('\r\n.\r\n');

export { replyText };
