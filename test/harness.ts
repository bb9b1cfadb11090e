/**
 * Test harness: a Postern gateway running in the test process against real peers on loopback
 * (a DNS server, SMTP servers), with a fresh data directory, and helpers to hand it mail and
 * wait for the outcome of each recipient as the queue records it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildOptions, type ConfigFile, type GatewayOptions } from '../src/config/options.js';
import { ConfigStore } from '../src/config/store.js';
import { Gateway } from '../src/gateway.js';
import type { MailEvent } from '../src/observe/events.js';
import { SmtpSession, RFC5321_TIMEOUTS } from '../src/smtp/client.js';
import { startDnsServer, type DnsServer, type Zone } from './peers/dns-server.js';
import { within } from './deadline.js';

export interface TestGateway {
  gw: Gateway;
  dns: DnsServer;
  dataDir: string;
  events: MailEvent[];
  /** Changes the configuration as the CLI would, and makes the gateway see it at once. */
  configure(fn: (s: ConfigStore) => void): void;
  close(): Promise<void>;
}

/** A new temporary directory, removed when the test process exits. */
export function tempDir(prefix = 'postern-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function startTestGateway(o: { zone: Zone; smtpPort: number; options?: ConfigFile; setup?: (s: ConfigStore) => void; tweak?: (o: GatewayOptions) => void }): Promise<TestGateway> {
  const dns = await startDnsServer({ zone: o.zone });
  const dataDir = tempDir();
  const store = ConfigStore.open(dataDir);
  o.setup?.(store);
  store.close();
  const options = buildOptions(
    {},
    {
      dataDir,
      listen: '127.0.0.1:0',
      dnsServers: [dns.address],
      smtpPort: o.smtpPort,
      hostname: 'postern.test',
      timeouts: { connect: 3, greeting: 5, ehlo: 5, starttls: 5, tlsHandshake: 5, mail: 5, rcpt: 5, dataInit: 5, dataBlock: 5, dataTerm: 5, quit: 2 },
      ...o.options,
    },
  );
  options.pollMs = 100;
  o.tweak?.(options);
  const gw = new Gateway(options);
  const events: MailEvent[] = [];
  gw.log.subscribe((e) => events.push(e));
  try {
    await gw.start();
  } catch (e) {
    await dns.close();
    throw e;
  }
  return {
    gw,
    dns,
    dataDir,
    events,
    configure(fn) {
      const s = ConfigStore.open(dataDir);
      try {
        fn(s);
      } finally {
        s.close();
      }
      gw.reloadIfChanged();
    },
    async close() {
      await gw.stop();
      await dns.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Hands a message to a listener over SMTP; resolves with the reply to the final dot. */
export function sendMail(
  port: number,
  from: string,
  to: string[],
  body = 'Subject: test\r\n\r\nHello.\r\n',
  host = '127.0.0.1',
): Promise<{ code: number; text: string }> {
  return submit(port, host, { from, to, body, requireTls: false });
}

/** Hands a message over STARTTLS with MAIL FROM … REQUIRETLS (RFC 8689); resolves with the reply to the final dot. */
export function sendMailRequireTls(port: number, from: string, to: string[], body: string, host = '127.0.0.1'): Promise<{ code: number; text: string }> {
  return submit(port, host, { from, to, body, requireTls: true });
}

/** One transaction on a new session (over STARTTLS for REQUIRETLS): the reply to the final dot, or the refusal. */
async function submit(port: number, host: string, m: { from: string; to: string[]; body: string; requireTls: boolean }): Promise<{ code: number; text: string }> {
  const s = await clientSession(port, host, m.requireTls);
  try {
    const r = await s.send({ from: m.from, recipients: m.to.map((address) => ({ address })), size: Buffer.byteLength(m.body), ...(m.requireTls ? { requireTls: true } : {}) }, Buffer.from(m.body));
    if (r.kind === 'message-refused') return { code: r.reply.code, text: r.reply.lines.join(' ') };
    const final = r.data ?? r.recipients.find((x) => x.code >= 300)!;
    return { code: final.code, text: final.lines.join(' ') };
  } finally {
    await s.quit();
  }
}

/**
 * A client session on a listener, upgraded with STARTTLS when asked (the listener's certificate
 * is not checked: it is the demo certificate).
 */
export async function clientSession(port: number, host: string, withTls: boolean): Promise<SmtpSession> {
  const s = await SmtpSession.open({ address: host, port, timeouts: RFC5321_TIMEOUTS });
  await s.ehlo('client.test');
  if (withTls) {
    const r = await s.starttls({ secureContext: tls.createSecureContext() });
    if (r.kind !== 'ok') throw new Error(`STARTTLS to ${host}:${port}: ${r.kind}`);
    await s.ehlo('client.test');
  }
  return s;
}

/** Waits until `check` returns a value (polling), or fails with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | undefined | null | false, timeoutMs = 15_000): Promise<T> {
  const until = Date.now() + within(timeoutMs);
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${within(timeoutMs)} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** waitFor for an async check: polls every 200 ms until it resolves with a value. */
export async function waitForAsync<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + within(timeoutMs);
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out after ${within(timeoutMs)} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export type RecipientFate = { kind: 'delivered' } | { kind: 'deferred'; reply: string } | { kind: 'bounced'; reply: string };

/** The fate of the first recipient for `address` as the queue and the log record it. */
export function fateOf(t: TestGateway, address: string): RecipientFate | undefined {
  for (const e of t.events) {
    if (e.event === 'bounced' && e.to === address) return { kind: 'bounced', reply: `${e.enhanced} ${e.reason}` };
    if (e.event === 'delayed' && e.to === address) return { kind: 'deferred', reply: `${e.enhanced} ${e.reason}` };
  }
  const accepted = t.events.find((e) => (e.event === 'message-accepted' || e.event === 'message-recipients') && e.recipients.includes(address));
  if (accepted && (accepted.event === 'message-accepted' || accepted.event === 'message-recipients')) {
    const mid = accepted.mid;
    if (t.events.some((e) => e.event === 'message-done' && e.mid === mid)) return { kind: 'delivered' };
  }
  return undefined;
}

/**
 * A plain-text SMTP client that sends exactly the bytes given (UTF-8) and returns each reply (its
 * lines joined by "\n"); `closed` resolves with the replies nobody asked for (a 421 at an idle
 * timeout) and any unread text when the server closes the connection.
 */
export async function rawSession(port: number, host = '127.0.0.1', localAddress?: string): Promise<{ greeting: string; cmd: (line: string) => Promise<string>; closed: Promise<string>; close: () => void }> {
  const socket = net.connect({ port, host, localAddress });
  let buffer = '';
  const waiting: Array<(reply: string) => void> = [];
  const unsolicited: string[] = [];
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    buffer += d;
    // A reply ends with a line "NNN text" (no hyphen after the code).
    for (let m = /^(?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\r?\n/.exec(buffer); m; m = /^(?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\r?\n/.exec(buffer)) {
      buffer = buffer.slice(m[0].length);
      const reply = m[0].trim().replace(/\r\n/g, '\n');
      const w = waiting.shift();
      if (w) w(reply);
      else unsolicited.push(reply);
    }
  });
  const next = () => new Promise<string>((resolve) => waiting.push(resolve));
  const greeting = next();
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const closed = new Promise<string>((resolve) => socket.once('close', () => resolve([...unsolicited, buffer].join('\n'))));
  return {
    greeting: await greeting,
    closed,
    cmd: (line) => {
      const r = next();
      socket.write(line + '\r\n');
      return r;
    },
    close: () => socket.destroy(),
  };
}
