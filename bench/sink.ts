/**
 * The receiving MTA of the benchmark: a small, fast SMTP sink that accepts every message and
 * counts it, in clear text or with STARTTLS (so that a relay can verify its certificate against
 * the bench's test authority). Runs as its own process (forked by the bench, IPC for control),
 * optionally as a cluster of worker processes sharing the listening sockets.
 *
 * Contract:
 * - argv[2] is a JSON SinkConfig. The process sends {ready: true} once every address listens.
 * - IPC requests: {cmd: 'stats'} → SinkStats (summed over workers); {cmd: 'reset'} → zeroes.
 * - A message counts when its DATA is complete and 250 has been written (what a relay
 *   records as "delivered"). Times are epoch milliseconds with sub-millisecond precision.
 * - `silent`: accept TCP and never say anything (a destination that is down, with the
 *   connection hanging until the client's greeting timeout).
 * - EHLO offers PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES and (with TLS) STARTTLS.
 */
import cluster from 'node:cluster';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';

export interface SinkConfig {
  addresses: string[];
  port: number;
  hostname: string;
  /** PEM key and chain; absent: no STARTTLS offered. */
  tls?: { key: string; cert: string };
  workers: number;
  silent?: boolean;
}

export interface SinkStats {
  messages: number;
  bytes: number;
  sessions: number;
  tlsSessions: number;
  firstAt: number;
  lastAt: number;
  /** SNI names the clients sent, with counts. */
  sni: Record<string, number>;
  protocols: Record<string, number>;
}

const now = (): number => performance.timeOrigin + performance.now();

function emptyStats(): SinkStats {
  return { messages: 0, bytes: 0, sessions: 0, tlsSessions: 0, firstAt: 0, lastAt: 0, sni: {}, protocols: {} };
}

function merge(into: SinkStats, s: SinkStats): void {
  into.messages += s.messages;
  into.bytes += s.bytes;
  into.sessions += s.sessions;
  into.tlsSessions += s.tlsSessions;
  if (s.firstAt && (!into.firstAt || s.firstAt < into.firstAt)) into.firstAt = s.firstAt;
  if (s.lastAt > into.lastAt) into.lastAt = s.lastAt;
  for (const [k, v] of Object.entries(s.sni)) into.sni[k] = (into.sni[k] ?? 0) + v;
  for (const [k, v] of Object.entries(s.protocols)) into.protocols[k] = (into.protocols[k] ?? 0) + v;
}

let stats = emptyStats();
const TERMINATOR = Buffer.from('\r\n.\r\n');

class Session {
  private sock: net.Socket | tls.TLSSocket;
  private buf = '';
  /** In DATA: the last 4 bytes seen, to find a terminator split across chunks. */
  private tail: Buffer = Buffer.from('\r\n');
  private inData = false;
  private dataBytes = 0;
  private secure = false;
  private readonly onData = (d: Buffer): void => this.feed(d);

  constructor(
    raw: net.Socket,
    private readonly cfg: SinkConfig,
    private readonly ctx: tls.SecureContext | undefined,
  ) {
    this.sock = raw;
    stats.sessions++;
    raw.setNoDelay(true);
    raw.on('error', () => undefined);
    raw.on('data', this.onData);
    this.reply(`220 ${cfg.hostname} ESMTP bench sink`);
  }

  private reply(line: string): void {
    this.sock.write(line + '\r\n');
  }

  private feed(d: Buffer): void {
    let chunk: Buffer | undefined = d;
    while (chunk && chunk.length > 0) {
      if (this.inData) {
        const joined = Buffer.concat([this.tail, chunk]);
        const at = joined.indexOf(TERMINATOR);
        if (at === -1) {
          this.dataBytes += chunk.length;
          this.tail = joined.subarray(Math.max(0, joined.length - 4));
          return;
        }
        const end = at + TERMINATOR.length; // offset in joined just after the terminator
        this.dataBytes += end - this.tail.length;
        this.inData = false;
        const t = now();
        stats.messages++;
        stats.bytes += this.dataBytes;
        if (!stats.firstAt) stats.firstAt = t;
        stats.lastAt = t;
        this.reply(`250 2.0.0 Ok: queued as ${stats.messages.toString(36)}`);
        chunk = joined.subarray(end);
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
          this.reply('354 End data with <CR><LF>.<CR><LF>');
          this.inData = true;
          this.dataBytes = 0;
          this.tail = Buffer.from('\r\n');
          const rest = Buffer.from(this.buf, 'latin1');
          this.buf = '';
          chunk = rest;
          break;
        }
        if (!this.command(verb, line)) return;
      }
    }
  }

  /** Handles one command line; false when the session ended or changed sockets. */
  private command(verb: string, line: string): boolean {
    switch (verb) {
      case 'EHLO': {
        const ext = ['PIPELINING', 'SIZE 104857600', '8BITMIME', 'ENHANCEDSTATUSCODES'];
        if (this.ctx && !this.secure) ext.push('STARTTLS');
        this.sock.write([`250-${this.cfg.hostname}`, ...ext.map((e, i) => (i === ext.length - 1 ? `250 ${e}` : `250-${e}`))].join('\r\n') + '\r\n');
        return true;
      }
      case 'HELO':
        this.reply(`250 ${this.cfg.hostname}`);
        return true;
      case 'MAIL':
      case 'RCPT':
      case 'RSET':
      case 'NOOP':
        this.reply('250 2.0.0 Ok');
        return true;
      case 'QUIT':
        this.reply('221 2.0.0 Bye');
        this.sock.end();
        return false;
      case 'STAR':
        if (line.toUpperCase() === 'STARTTLS' && this.ctx && !this.secure) {
          this.reply('220 2.0.0 Ready to start TLS');
          this.upgrade();
          return false;
        }
        this.reply('502 5.5.1 Not implemented');
        return true;
      default:
        this.reply('502 5.5.2 Command not recognized');
        return true;
    }
  }

  private upgrade(): void {
    const raw = this.sock as net.Socket;
    raw.off('data', this.onData);
    this.buf = ''; // anything pipelined after STARTTLS is discarded (RFC 3207)
    const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: this.ctx });
    secure.on('error', () => undefined);
    secure.once('secure', () => {
      stats.tlsSessions++;
      const name = (secure as tls.TLSSocket & { servername?: string | false }).servername || '(none)';
      stats.sni[name] = (stats.sni[name] ?? 0) + 1;
      const proto = secure.getProtocol() ?? '?';
      stats.protocols[proto] = (stats.protocols[proto] ?? 0) + 1;
    });
    this.secure = true;
    this.sock = secure;
    secure.on('data', this.onData);
  }
}

async function serve(cfg: SinkConfig): Promise<void> {
  const ctx = cfg.tls ? tls.createSecureContext({ key: cfg.tls.key, cert: cfg.tls.cert }) : undefined;
  const silentSockets = new Set<net.Socket>();
  await Promise.all(
    cfg.addresses.map(
      (address) =>
        new Promise<void>((resolve, reject) => {
          const server = net.createServer((s) => {
            if (cfg.silent) {
              stats.sessions++;
              silentSockets.add(s);
              s.on('error', () => undefined);
              s.on('close', () => silentSockets.delete(s));
              s.resume();
              return;
            }
            new Session(s, cfg, ctx);
          });
          server.once('error', reject);
          server.listen({ host: address, port: cfg.port, backlog: 4096 }, () => resolve());
        }),
    ),
  );
}

function handle(m: { cmd?: string }): SinkStats | true {
  if (m.cmd === 'stats') return stats;
  if (m.cmd === 'reset') {
    stats = emptyStats();
    return true;
  }
  throw new Error(`unknown command ${m.cmd}`);
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? process.env.BENCH_SINK_CONFIG ?? '{}') as SinkConfig;
  if (cfg.workers > 1 && cluster.isPrimary) {
    const workers = Array.from({ length: cfg.workers }, () => cluster.fork({ BENCH_SINK_CONFIG: JSON.stringify(cfg) }));
    await Promise.all(workers.map((w) => new Promise<void>((r) => w.on('message', (m: { ready?: boolean }) => m.ready && r()))));
    let seq = 0;
    const ask = (w: (typeof workers)[number], cmd: string): Promise<SinkStats | true> =>
      new Promise((resolve) => {
        const id = ++seq;
        const on = (m: { id?: number; result?: SinkStats | true }): void => {
          if (m.id !== id) return;
          w.off('message', on);
          resolve(m.result!);
        };
        w.on('message', on);
        w.send({ cmd, id });
      });
    process.on('message', (m: { cmd: string; id: number }) => {
      void Promise.all(workers.map((w) => ask(w, m.cmd))).then((rs) => {
        if (m.cmd === 'stats') {
          const total = emptyStats();
          for (const r of rs) merge(total, r as SinkStats);
          process.send?.({ id: m.id, result: total });
        } else process.send?.({ id: m.id, result: true });
      });
    });
    const stopAll = (): void => {
      for (const w of workers) w.process.kill('SIGKILL');
      process.exit(0);
    };
    process.on('SIGTERM', stopAll);
    process.on('disconnect', stopAll);
    process.send?.({ ready: true });
    return;
  }
  await serve(cfg);
  process.on('message', (m: { cmd: string; id: number }) => {
    try {
      process.send?.({ id: m.id, result: handle(m) });
    } catch (e) {
      process.send?.({ id: m.id, error: (e as Error).message });
    }
  });
  process.on('disconnect', () => process.exit(0));
  process.send?.({ ready: true });
}

// Only when run as a process (forked by the bench, or a cluster worker).
if (process.send) void main().catch((e: Error) => {
  process.stderr.write(`sink: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
