/**
 * The listeners (SPEC §6), on smtp-server; both answer 250 after DATA only once the message is
 * committed to the durable queue.
 * - private (relay): accepts mail for any destination from the allowed client networks, refuses
 *   relaying to everyone else.
 * - public (`inbound` set): accepts mail only for the organisation's local domains, from anyone,
 *   checks bounce-verification tags (bounce/inbound.ts decides), delivers a recipient without its
 *   tag, and has its own limits (connections per client address, size, recipients), read at each
 *   use so that a change applies without a restart.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import { onRefusal } from './smtp-server-patches.js';
import type { EventSink } from '../observe/maillog.js';
import { escapeText } from '../observe/text.js';
import { RECIPIENTS_PER_LINE } from '../observe/events.js';
import type { NewMessage, QueueStore } from '../queue/store.js';
import { normaliseDomain } from '../tls/names.js';
import type { NetworkList } from './networks.js';
import { QUEUE_STORAGE, type Conditions } from '../observe/conditions.js';
import { tlsRequiredOf } from './tls-required.js';
import { decideRecipient, type InboundPolicy } from '../bounce/inbound.js';

/**
 * The id a message's Received: header gives (6 random bytes in hex). The bytes come from a pool
 * filled 3 KB at a time: one call into OpenSSL per 512 messages instead of one each (one each
 * was 2.8 % of the listener thread's time in the queue-1m bench's profile).
 */
const RECEIVED_ID_BYTES = 6;
let idPool = Buffer.alloc(0);
let idAt = 0;
function receivedId(): string {
  if (idAt + RECEIVED_ID_BYTES > idPool.length) {
    idPool = randomBytes(RECEIVED_ID_BYTES * 512);
    idAt = 0;
  }
  idAt += RECEIVED_ID_BYTES;
  return idPool.toString('hex', idAt - RECEIVED_ID_BYTES, idAt);
}

export interface ListenerOptions {
  host: string;
  port: number;
  hostname: string;
  allowed: NetworkList;
  queue: QueueStore;
  log: EventSink;
  maxMessageSize: number;
  maxRecipients: number;
  /** Called once the message is stored (the engine logs what it deferred on arrival and looks at the queue). */
  onAccepted: (mid: number, msg: NewMessage) => void;
  /** Called before the message is stored: recipients of a suspended destination are marked deferred. */
  beforeAccept?: (msg: NewMessage) => void;
  /** Seconds from the end of DATA to the 250 (for /metrics). */
  acceptTime?: (seconds: number) => void;
  nextIcid: () => number;
  tlsKey?: string;
  tlsCert?: string;
  /** How long client sessions still open at close() get before they are cut (ms). */
  closeTimeoutMs: number;
  /** Where a queue that cannot be written is reported (once, not per message). */
  conditions?: Pick<Conditions, 'raise' | 'clear'>;
  /** A client that sends nothing for this long is disconnected (421), ms. */
  idleTimeoutMs: number;
  /** Makes this the public listener: its rules and limits, read at each use. */
  inbound?: () => InboundSettings;
}

export interface InboundSettings extends InboundPolicy {
  connectionsPerClient: number;
  maxMessageSize: number;
  maxRecipients: number;
  /** `Name: value`, added to an invalid bounce that is accepted. */
  header: string;
}

/** What the public listener remembers of a transaction: where each recipient goes. */
interface Transaction {
  deliverTo: Map<string, string>;
  invalidBounce: boolean;
}

class SmtpReplyError extends Error {
  constructor(
    readonly responseCode: number,
    message: string,
  ) {
    super(message);
  }
}

const CONTROL = /[\x00-\x1f\x7f]/;



/**
 * What is wrong with an envelope address, or null. The domain goes through the same strict name
 * rule as every other name (tls/names.ts): nothing is decoded or mapped, so `ex%61mple.com` or
 * full-width letters are refused rather than taken for another domain. An address literal
 * (`user@[192.0.2.1]`) is accepted as a sender only: destination controls are kept per domain,
 * so a recipient must name one.
 */
export function addressProblem(address: string, role: 'sender' | 'recipient'): string | null {
  if (CONTROL.test(address)) return 'control character in the address';
  const at = address.lastIndexOf('@');
  if (at <= 0) return 'the address must be local-part@domain';
  const domain = address.slice(at + 1);
  if (domain.startsWith('[') && domain.endsWith(']')) {
    if (role === 'recipient') return 'address literals are not accepted as recipients (destination controls apply to domain names)';
    const inner = domain.slice(1, -1);
    const ip = inner.toLowerCase().startsWith('ipv6:') ? inner.slice(5) : inner;
    return isIP(ip) === (ip === inner ? 4 : 6) ? null : 'not a valid address literal';
  }
  return normaliseDomain(domain) === null ? 'the domain is not a valid host name (letters, digits, hyphens; IDNA2008 U-labels or A-labels)' : null;
}

export class RelayListener {
  private readonly server: SMTPServer;
  private readonly icids = new Map<string, number>();
  /** Public listener: open connections per client address, and the sessions counted. */
  private readonly perClient = new Map<string, number>();
  private readonly counted = new Set<string>();
  private readonly transactions = new Map<string, Transaction>();

  constructor(private readonly o: ListenerOptions) {
    this.server = new SMTPServer({
      name: o.hostname,
      banner: 'Postern', // the library writes "220 NAME ESMTP Postern"
      hideENHANCEDSTATUSCODES: false,
      socketTimeout: o.idleTimeoutMs,
      size: o.maxMessageSize,
      authOptional: true,
      disabledCommands: ['AUTH'],
      // RFC 8689: advertised after STARTTLS only (the library shows it on TLS sessions and refuses
      // the MAIL FROM parameter in clear text).
      hideREQUIRETLS: false,
      // Address checks are Postern's own (addressProblem below): the domain must be a host name
      // as written. The library's strict mode would refuse some of the same names with a reply
      // of its own wording; lenient mode still refuses controls and malformed paths.
      lenientAddressParsing: true,
      key: o.tlsKey,
      cert: o.tlsCert,
      logger: false,
      // At stop, client sessions still open get this long, then are disconnected.
      closeTimeout: o.closeTimeoutMs,
      onConnect: (session, cb) => this.onConnect(session, cb),
      onRcptTo: (addr, session, cb) => this.onRcptTo(addr.address, session, cb),
      onMailFrom: (addr, session, cb) => {
        const problem = addr.address.length === 0 ? null : addressProblem(addr.address, 'sender');
        if (problem === null) this.transactions.set(session.id, { deliverTo: new Map(), invalidBounce: false });
        cb(problem === null ? undefined : new SmtpReplyError(553, `5.1.7 Bad sender address syntax: ${problem}`));
      },
      onData: (stream, session, cb) => this.onData(stream, session, cb),
      onClose: (session) => {
        const icid = this.icids.get(session.id);
        if (icid !== undefined) this.o.log.write({ event: 'incoming-close', icid });
        this.icids.delete(session.id);
        this.transactions.delete(session.id);
        if (this.counted.delete(session.id)) {
          const n = (this.perClient.get(session.remoteAddress) ?? 1) - 1;
          if (n > 0) this.perClient.set(session.remoteAddress, n);
          else this.perClient.delete(session.remoteAddress);
        }
      },
    });
    // Every refusal the client sees (Postern's own and the library's: bad command, size, idle
    // timeout) is logged once, with the reply, by the reply hook in smtp-server-patches.ts.
    onRefusal(this.server, (session, reply) => {
      this.o.log.write({ event: 'incoming-refused', icid: this.icids.get(session.id) ?? 0, address: session.remoteAddress, reason: reply });
    });
    this.server.on('error', () => {
      /* per-connection errors are answered to the client; the listener keeps running */
    });
  }

  listen(): Promise<{ address: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.o.port, this.o.host, () => {
        this.server.removeListener('error', reject);
        const a = this.server.server.address();
        resolve(typeof a === 'object' && a ? { address: a.address, port: a.port } : { address: this.o.host, port: this.o.port });
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private onConnect(session: SMTPServerSession, cb: (err?: Error) => void): void {
    const icid = this.o.nextIcid();
    this.icids.set(session.id, icid);
    this.o.log.write({
      event: 'incoming-connection',
      icid,
      interface: session.localAddress,
      address: session.remoteAddress,
      port: session.remotePort,
    });
    if (this.o.inbound) {
      const limits = this.o.inbound();
      // smtp-server reads its size option at each use: the public limit applies from now on.
      this.server.options.size = limits.maxMessageSize;
      const open = this.perClient.get(session.remoteAddress) ?? 0;
      if (open >= limits.connectionsPerClient) {
        cb(new SmtpReplyError(421, `4.7.0 Too many connections from ${session.remoteAddress} (at most ${limits.connectionsPerClient}); try again later`));
        return;
      }
      this.perClient.set(session.remoteAddress, open + 1);
      this.counted.add(session.id);
    }
    cb();
  }

  private get maxMessageSize(): number {
    return this.o.inbound ? this.o.inbound().maxMessageSize : this.o.maxMessageSize;
  }

  private onRcptTo(address: string, session: SMTPServerSession, cb: (err?: Error) => void): void {
    if (!this.o.inbound && !this.o.allowed.allows(session.remoteAddress)) {
      cb(new SmtpReplyError(554, `5.7.1 <${address}>: Relay access denied`));
      return;
    }
    const problem = addressProblem(address, 'recipient');
    if (problem !== null) {
      cb(new SmtpReplyError(501, `5.1.3 Bad recipient address syntax: ${problem}`));
      return;
    }
    const inbound = this.o.inbound?.();
    if (session.envelope.rcptTo.length >= (inbound ? inbound.maxRecipients : this.o.maxRecipients)) {
      cb(new SmtpReplyError(452, '4.5.3 Too many recipients'));
      return;
    }
    if (inbound) {
      const sender = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
      const d = decideRecipient(sender, address, inbound, Date.now());
      if (d.verdict) {
        const icid = this.icids.get(session.id) ?? 0;
        this.o.log.write({ event: 'bounce-verification', icid, to: address, deliverTo: d.accept ? d.deliverTo : address, ...d.verdict });
      }
      if (!d.accept) {
        cb(new SmtpReplyError(d.code, d.reply));
        return;
      }
      const t = this.transactions.get(session.id);
      if (t) {
        t.deliverTo.set(address, d.deliverTo);
        if (d.addHeader) t.invalidBounce = true;
      }
    }
    cb();
  }

  private onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void): void {
    const chunks: Buffer[] = [];
    const queueId = receivedId();
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      if (stream.sizeExceeded) {
        cb(new SmtpReplyError(552, `5.3.4 Message exceeds the size limit of ${this.maxMessageSize} bytes`));
        return;
      }
      const env = session.envelope;
      const t = this.o.inbound ? this.transactions.get(session.id) : undefined;
      // An invalid bounce accepted under add-header carries the configured header above the rest.
      const marked = t?.invalidBounce ? Buffer.from(`${this.o.inbound!().header}\r\n`) : Buffer.alloc(0);
      const from = env.mailFrom ? env.mailFrom.address : '';
      const received = Buffer.from(
        `Received: from ${escapeText(session.hostNameAppearsAs || 'unknown')} (${escapeText(session.clientHostname)} [${session.remoteAddress}])\r\n` +
          `\tby ${this.o.hostname} (Postern) with ${session.secure ? 'ESMTPS' : 'ESMTP'} id ${queueId};\r\n` +
          `\t${new Date().toUTCString().replace('GMT', '+0000')}\r\n`,
      );
      const body = Buffer.concat([marked, received, ...chunks]);
      const extra = env as unknown as { bodyType?: string; smtpUtf8?: boolean; requireTLS?: boolean; dsn?: { ret?: string; envid?: string } };
      const msg: NewMessage = {
        sender: from,
        body,
        receivedAt: Date.now(),
        eightBit: extra.bodyType === '8bitmime',
        smtputf8: extra.smtpUtf8 === true,
        ret: extra.dsn?.ret,
        envid: extra.dsn?.envid,
        client: session.remoteAddress,
        inbound: this.o.inbound !== undefined,
        // The library sets requireTLS only for a TLS session; the check is repeated here.
        tlsRequired: tlsRequiredOf(extra.requireTLS === true && session.secure, body),
        recipients: env.rcptTo.map((r) => {
          // The public listener delivers a tagged recipient to the address without its tag.
          const address = t?.deliverTo.get(r.address) ?? r.address;
          const at = address.lastIndexOf('@');
          const dsn = (r as unknown as { dsn?: { notify?: string[]; orcpt?: string } }).dsn;
          return {
            address,
            domain: normaliseDomain(address.slice(at + 1)) ?? address.slice(at + 1).toLowerCase(),
            notify: dsn?.notify?.length ? dsn.notify.join(',') : undefined,
            orcpt: dsn?.orcpt,
          };
        }),
      };
      const acceptStart = performance.now();
      this.o.beforeAccept?.(msg);
      this.o.queue.accept(msg).then(
        (mid) => {
          this.o.acceptTime?.((performance.now() - acceptStart) / 1000);
          this.o.conditions?.clear(QUEUE_STORAGE);
          const icid = this.icids.get(session.id) ?? 0;
          const all = msg.recipients.map((r) => r.address);
          // Bounded lines: the first recipients on the Start line, the rest RECIPIENTS_PER_LINE a line.
          this.o.log.write({ event: 'message-accepted', icid, mid, from, recipients: all.slice(0, RECIPIENTS_PER_LINE), size: body.length, receivedId: queueId, total: all.length, ...(msg.tlsRequired ? { tlsRequired: msg.tlsRequired } : {}) });
          for (let i = RECIPIENTS_PER_LINE; i < all.length; i += RECIPIENTS_PER_LINE) {
            this.o.log.write({ event: 'message-recipients', icid, mid, recipients: all.slice(i, i + RECIPIENTS_PER_LINE), first: i + 1, total: all.length });
          }
          cb(null, `2.0.0 Ok: queued as MID ${mid}`);
          this.o.onAccepted(mid, msg);
        },
        (e: Error) => {
          this.o.conditions?.raise(QUEUE_STORAGE, `messages cannot be stored, clients are answered 451 4.3.0: ${e.message}`);
          cb(new SmtpReplyError(451, `4.3.0 Could not store the message: ${e.message}`));
        },
      );
    });
  }
}
