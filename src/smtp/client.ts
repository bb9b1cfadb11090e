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
  certificate: tls.DetailedPeerCertificate | null;
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
  private lines: string[] = [];
  private waiter: Waiter | null = null;
  private dead: SmtpFailureError | null = null;
  /** Set while waiting for the STARTTLS reply: stop reading once it is complete. */
  private holdAfterReply = false;
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
    const reply = await this.command('STARTTLS', 'STARTTLS', this.timeouts.starttls);
    this.holdAfterReply = false;
    if (reply.code !== 220) {
      this.socket.resume();
      return { kind: 'rejected', reply };
    }
    // RFC 3207 §5: whatever came after the 220 was not protected by TLS: drop the connection.
    const extra = this.held + this.pending.length + this.lines.reduce((n, l) => n + l.length + 2, 0);
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
      const timer = setTimeout(() => {
        t.destroy();
        resolve(`handshake timed out after ${this.timeouts.tlsHandshake} ms`);
      }, this.timeouts.tlsHandshake);
      t.once('secureConnect', () => {
        clearTimeout(timer);
        t.removeAllListeners('error');
        resolve(t);
      });
      t.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        t.destroy();
        resolve(e.code ? `${e.code}: ${e.message}` : e.message);
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
    return {
      kind: 'ok',
      protocol: secure.getProtocol() ?? 'unknown',
      cipher: secure.getCipher()?.name ?? 'unknown',
      certificate: secure.getPeerCertificate(true) ?? null,
      chainTrusted: secure.authorized,
      chainError: authError === null ? undefined : String(authError instanceof Error ? authError.message : authError),
    };
  }

  /** One mail transaction. Refuses locally (without sending) what the server said it cannot take. */
  async send(env: Envelope, body: Buffer): Promise<TransactionResult> {
    const sizeLimit = Number(this.extensions.get('SIZE') ?? '0');
    if (sizeLimit > 0 && env.size > sizeLimit) {
      return { kind: 'message-refused', step: 'SIZE', reply: local(552, '5.3.4', `message size ${env.size} exceeds the server's limit of ${sizeLimit}`) };
    }
    if (env.smtputf8 && !this.extensions.has('SMTPUTF8')) {
      return { kind: 'message-refused', step: 'SMTPUTF8', reply: local(553, '5.6.7', 'the server does not support SMTPUTF8 addresses') };
    }
    const dsn = this.extensions.has('DSN');
    const mailParams: string[] = [];
    if (this.extensions.has('SIZE')) mailParams.push(`SIZE=${env.size}`);
    if (env.eightBit && this.extensions.has('8BITMIME')) mailParams.push('BODY=8BITMIME');
    if (env.smtputf8) mailParams.push('SMTPUTF8');
    if (dsn && env.ret) mailParams.push(`RET=${env.ret}`);
    if (dsn && env.envid) mailParams.push(`ENVID=${env.envid}`);
    const mail = `MAIL FROM:<${env.from}>${mailParams.length ? ' ' + mailParams.join(' ') : ''}`;
    const rcpts = env.recipients.map((r) => {
      const p: string[] = [];
      if (dsn && r.notify) p.push(`NOTIFY=${r.notify}`);
      if (dsn && r.orcpt) p.push(`ORCPT=${r.orcpt}`);
      return `RCPT TO:<${r.address}>${p.length ? ' ' + p.join(' ') : ''}`;
    });

    let mailReply: Reply;
    const rcptReplies: Reply[] = [];
    let dataReply: Reply;
    if (this.extensions.has('PIPELINING')) {
      this.write([mail, ...rcpts, 'DATA'].map((c) => c + '\r\n').join(''));
      mailReply = await this.read('MAIL FROM', this.timeouts.mail);
      for (let i = 0; i < rcpts.length; i++) rcptReplies.push(await this.read('RCPT TO', this.timeouts.rcpt));
      dataReply = await this.read('DATA', this.timeouts.dataInit);
      if (mailReply.code >= 300 || !rcptReplies.some((r) => r.code < 300)) {
        // RFC 2920 §3.1: a DATA accepted anyway gets an empty message ended at once.
        if (dataReply.code === 354) await this.command('.', 'end of data', this.timeouts.dataTerm);
        await this.rset();
        return mailReply.code >= 300 ? { kind: 'message-refused', step: 'MAIL FROM', reply: mailReply } : { kind: 'done', recipients: rcptReplies };
      }
    } else {
      mailReply = await this.command(mail, 'MAIL FROM', this.timeouts.mail);
      if (mailReply.code >= 300) {
        await this.rset();
        return { kind: 'message-refused', step: 'MAIL FROM', reply: mailReply };
      }
      for (const r of rcpts) rcptReplies.push(await this.command(r, 'RCPT TO', this.timeouts.rcpt));
      if (!rcptReplies.some((r) => r.code < 300)) {
        await this.rset();
        return { kind: 'done', recipients: rcptReplies };
      }
      dataReply = await this.command('DATA', 'DATA', this.timeouts.dataInit);
    }
    if (dataReply.code !== 354) {
      await this.rset();
      return { kind: 'done', recipients: rcptReplies.map((r) => (r.code < 300 ? dataReply : r)) };
    }
    await this.writeBody(dotStuff(body));
    const final = await this.read('end of data', this.timeouts.dataTerm);
    return { kind: 'done', recipients: rcptReplies, data: final };
  }

  async rset(): Promise<void> {
    if (this.dead) return;
    await this.command('RSET', 'RSET', this.timeouts.mail);
  }

  /** QUIT politely; never throws (the server may already be gone). */
  async quit(): Promise<void> {
    if (!this.dead) {
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
    return this.dead === null;
  }

  // ---- reading and writing ----------------------------------------------------------

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
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      clearTimeout(w.timer);
      w.reject(err);
    }
  }

  private feed(chunk: Buffer): void {
    if (this.holdAfterReply && this.waiter === null) {
      this.held += chunk.length;
      return;
    }
    this.pending += chunk.toString('utf8');
    let nl: number;
    while ((nl = this.pending.indexOf('\n')) !== -1) {
      const line = this.pending.slice(0, nl).replace(/\r$/, '');
      this.pending = this.pending.slice(nl + 1);
      this.lines.push(line);
      if (this.tryComplete() && this.holdAfterReply) {
        // Stop at the STARTTLS reply: whatever follows must not be read as SMTP.
        this.socket.pause();
        return;
      }
    }
    if (this.pending.length > MAX_LINE) this.protocolError(`reply line longer than ${MAX_LINE} bytes`);
  }

  /** Completes the waiting read if a whole reply is buffered. */
  private tryComplete(): boolean {
    if (!this.waiter) return false;
    const out: string[] = [];
    let code = 0;
    for (let i = 0; i < this.lines.length; i++) {
      const p = parseReplyLine(this.lines[i]!);
      if (p.kind === 'bad') {
        this.protocolError(`malformed reply line ${JSON.stringify(p.line.slice(0, 80))}`);
        return false;
      }
      if (i > 0 && p.code !== code) {
        this.protocolError(`reply code changed from ${code} to ${p.code} inside a multi-line reply`);
        return false;
      }
      code = p.code;
      out.push(p.text);
      if (i >= MAX_LINES) {
        this.protocolError(`reply of more than ${MAX_LINES} lines`);
        return false;
      }
      if (p.last) {
        this.lines.splice(0, i + 1);
        const w = this.waiter;
        this.waiter = null;
        clearTimeout(w.timer);
        w.resolve({ code, lines: out, enhanced: enhancedOf(out[out.length - 1] ?? '') });
        return true;
      }
    }
    return false;
  }

  private protocolError(detail: string): void {
    const step = this.waiter?.step ?? 'session';
    const err = new SmtpFailureError({ kind: 'protocol', step, detail });
    this.dead ??= err;
    this.socket.destroy();
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      clearTimeout(w.timer);
      w.reject(err);
    }
  }

  private read(step: string, timeoutMs: number): Promise<Reply> {
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
      if (this.tryComplete()) return;
      if (this.dead && this.waiter) {
        this.waiter = null;
        clearTimeout(timer);
        reject(new SmtpFailureError({ ...this.dead.failure, step } as SmtpFailure));
      }
    });
  }

  private write(text: string): void {
    if (this.dead) throw this.dead;
    this.socket.write(text);
  }

  private async command(line: string, step: string, timeoutMs: number): Promise<Reply> {
    this.write(line + '\r\n');
    return this.read(step, timeoutMs);
  }

  private async writeBody(data: Buffer): Promise<void> {
    if (this.dead) throw this.dead;
    const CHUNK = 64 * 1024;
    for (let off = 0; off < data.length; off += CHUNK) {
      if (!this.socket.write(data.subarray(off, off + CHUNK))) {
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
}

function local(code: number, enhanced: string, text: string): Reply {
  return { code, enhanced, lines: [`${enhanced} ${text}`] };
}

/**
 * The message body as sent after DATA: CRLF line ends (a bare LF becomes CRLF), a dot doubled at
 * the start of each line (RFC 5321 §4.5.2), and the terminating `.` line.
 */
export function dotStuff(body: Buffer): Buffer {
  if (body.length === 0) return END;
  const parts: Buffer[] = [];
  let start = 0;
  let atLineStart = true;
  const extra: number[] = [];
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (atLineStart && c === 0x2e) extra.push(i);
    if (c === 0x0a && (i === 0 || body[i - 1] !== 0x0d)) extra.push(-(i + 1)); // bare LF at i
    atLineStart = c === 0x0a;
  }
  for (const mark of extra) {
    const at = mark >= 0 ? mark : -mark - 1;
    parts.push(body.subarray(start, at));
    parts.push(mark >= 0 ? DOT : CR);
    start = at;
  }
  parts.push(body.subarray(start));
  const endsWithCrlf = body.length >= 2 && body[body.length - 2] === 0x0d && body[body.length - 1] === 0x0a;
  const endsWithLf = body.length >= 1 && body[body.length - 1] === 0x0a;
  parts.push(endsWithCrlf || endsWithLf ? END : CRLF_END);
  return Buffer.concat(parts);
}

const DOT = Buffer.from('.');
const CR = Buffer.from('\r');
const END = Buffer.from('.\r\n');
const CRLF_END = Buffer.from('\r\n.\r\n');

export { replyText };
