// Authoritative loopback DNS server for tests (UDP + TCP on one port, built on dns-packet):
// serves a mutable in-memory zone with NXDOMAIN/NODATA/SERVFAIL/timeout and TC->TCP behaviour.
//
// Node's resolver (c-ares) as observed against this server, Node 20:
// - Null MX (RFC 7505), zone `MX: [{ preference: 0, exchange: '.' }]`, is sent as the root
//   name and `Resolver.resolveMx` returns `[{ priority: 0, exchange: '' }]` (empty string, not '.').
// - NXDOMAIN -> ENOTFOUND, NODATA -> ENODATA, SERVFAIL -> ESERVFAIL, no answer -> ETIMEOUT.
// - A UDP answer with TC set makes c-ares repeat the query over TCP.
// EDNS(0) OPT records in queries are ignored and never echoed, so the UDP limit is always
// the classic 512 bytes and truncation is deterministic whatever the client advertises.
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet, Question } from 'dns-packet';

export interface ZoneNode {
  MX?: { preference: number; exchange: string }[];
  A?: string[];
  AAAA?: string[];
  PTR?: string[];
  CNAME?: string;
  /** One TXT record per entry (each a single character-string; split at 255 bytes). */
  TXT?: string[];
  /** Answer every query for this name with this rcode. */
  rcode?: 'SERVFAIL';
  /** Never answer: client times out. */
  drop?: boolean;
}

/** Keys lower-case, no trailing dot. */
export type Zone = Record<string, ZoneNode>;

export interface DnsServer {
  host: string;
  port: number;
  /** "127.0.0.1:5353" form for Resolver.setServers (IPv6 hosts are bracketed). */
  address: string;
  /** Mutable, read on every query. */
  zone: Zone;
  /** Every question received (UDP and TCP), name lower-cased without trailing dot. */
  queries: { name: string; type: string }[];
  close(): Promise<void>;
}

export interface StartDnsServerOptions {
  zone: Zone;
  host?: string;
  port?: number;
}

const TTL = 60;
const UDP_LIMIT = 512;
const MAX_CNAME_CHAIN = 8;
const RCODE_FORMERR = 1;
const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;

function normaliseName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/** Looks a name up case-insensitively, tolerating zone keys a test wrote with odd case or a dot. */
function findNode(zone: Zone, name: string): ZoneNode | undefined {
  const key = normaliseName(name);
  if (Object.prototype.hasOwnProperty.call(zone, key)) return zone[key];
  for (const [k, node] of Object.entries(zone)) {
    if (normaliseName(k) === key) return node;
  }
  return undefined;
}

function splitTxt(s: string): Buffer[] {
  const b = Buffer.from(s, 'utf8');
  const parts: Buffer[] = [];
  for (let i = 0; i < b.length; i += 255) parts.push(b.subarray(i, i + 255));
  return parts.length > 0 ? parts : [Buffer.alloc(0)];
}

function recordsOfType(node: ZoneNode, owner: string, type: string): Answer[] {
  const base = { name: owner, ttl: TTL, class: 'IN' as const };
  switch (type) {
    case 'A':
      return (node.A ?? []).map((data): Answer => ({ ...base, type: 'A', data }));
    case 'AAAA':
      return (node.AAAA ?? []).map((data): Answer => ({ ...base, type: 'AAAA', data }));
    case 'PTR':
      return (node.PTR ?? []).map((data): Answer => ({ ...base, type: 'PTR', data }));
    case 'MX':
      // dns-packet strips the trailing dot, so exchange '.' goes out as the root name.
      return (node.MX ?? []).map((mx): Answer => ({ ...base, type: 'MX', data: { preference: mx.preference, exchange: mx.exchange } }));
    case 'TXT':
      return (node.TXT ?? []).map((t): Answer => ({ ...base, type: 'TXT', data: splitTxt(t) }));
    case 'CNAME':
      return node.CNAME !== undefined ? [{ ...base, type: 'CNAME', data: node.CNAME }] : [];
    default:
      return [];
  }
}

type Resolution = { kind: 'drop' } | { kind: 'answer'; rcode: number; answers: Answer[] };

function resolve(zone: Zone, q: Question): Resolution {
  const answers: Answer[] = [];
  let owner = q.name; // echo the asker's spelling in the first owner name
  for (let hop = 0; hop <= MAX_CNAME_CHAIN; hop++) {
    const node = findNode(zone, owner);
    if (!node) return { kind: 'answer', rcode: RCODE_NXDOMAIN, answers };
    if (node.drop) return { kind: 'drop' };
    if (node.rcode === 'SERVFAIL') return { kind: 'answer', rcode: RCODE_SERVFAIL, answers };
    if (node.CNAME !== undefined && q.type !== 'CNAME') {
      answers.push(...recordsOfType(node, owner, 'CNAME'));
      owner = node.CNAME;
      continue;
    }
    answers.push(...recordsOfType(node, owner, q.type));
    return { kind: 'answer', rcode: 0, answers };
  }
  // CNAME loop: what a real server reports when it cannot finish the chain.
  return { kind: 'answer', rcode: RCODE_SERVFAIL, answers: [] };
}

function buildResponse(query: DecodedPacket, rcode: number, answers: Answer[], truncated: boolean): Packet {
  const rd = query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0;
  const tc = truncated ? dnsPacket.TRUNCATED_RESPONSE : 0;
  return {
    type: 'response',
    id: query.id ?? 0,
    flags: dnsPacket.AUTHORITATIVE_ANSWER | rd | tc | rcode,
    questions: query.questions ?? [],
    answers,
  };
}

/**
 * Returns the encoded reply, or undefined when the query must go unanswered.
 * With `udp`, an oversized reply keeps only the answers that fit and sets TC.
 */
function answerQuery(server: DnsServer, query: DecodedPacket, udp: boolean): Buffer | undefined {
  if (query.type !== 'query') return undefined; // never answer responses: no reflection loops
  const questions = query.questions ?? [];
  for (const q of questions) server.queries.push({ name: normaliseName(q.name), type: String(q.type) });
  const q = questions[0];
  if (!q || questions.length !== 1) return dnsPacket.encode(buildResponse(query, RCODE_FORMERR, [], false));
  const res = resolve(server.zone, q);
  if (res.kind === 'drop') return undefined;
  let full: Buffer;
  try {
    full = dnsPacket.encode(buildResponse(query, res.rcode, res.answers, false));
  } catch (err) {
    // A malformed zone entry (e.g. a bad address) is a test bug: say so, answer SERVFAIL.
    console.error(`dns-server: cannot encode answer for ${q.type} ${q.name}:`, err);
    return dnsPacket.encode(buildResponse(query, RCODE_SERVFAIL, [], false));
  }
  if (!udp || full.length <= UDP_LIMIT) return full;
  const kept = [...res.answers];
  let out: Buffer;
  do {
    kept.pop();
    out = dnsPacket.encode(buildResponse(query, res.rcode, kept, true));
  } while (out.length > UDP_LIMIT && kept.length > 0);
  return out;
}

function tryDecode(buf: Buffer): DecodedPacket | undefined {
  try {
    return dnsPacket.decode(buf);
  } catch {
    return undefined; // garbage from a test is not worth crashing over
  }
}

function bindUdp(host: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolveBind, reject) => {
    const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    const onError = (err: Error): void => {
      sock.close();
      reject(err);
    };
    sock.once('error', onError);
    sock.bind(port, host, () => {
      sock.off('error', onError);
      resolveBind(sock);
    });
  });
}

function listenTcp(server: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolveListen, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolveListen();
    });
  });
}

export async function startDnsServer(opts: StartDnsServerOptions): Promise<DnsServer> {
  const host = opts.host ?? '127.0.0.1';
  const requestedPort = opts.port ?? 0;
  const tcpSockets = new Set<net.Socket>();
  // Declared before the sockets exist so handlers can reach zone/queries through it.
  const state: DnsServer = {
    host,
    port: 0,
    address: '',
    zone: opts.zone,
    queries: [],
    close: async () => undefined,
  };

  const handleTcpSocket = (sock: net.Socket): void => {
    tcpSockets.add(sock);
    let buf = Buffer.alloc(0);
    sock.on('error', () => undefined); // resets from clients are routine
    sock.on('close', () => tcpSockets.delete(sock));
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        const query = tryDecode(msg);
        if (!query) continue;
        const reply = answerQuery(state, query, false);
        if (!reply || sock.destroyed) continue;
        const frame = Buffer.alloc(2 + reply.length);
        frame.writeUInt16BE(reply.length, 0);
        reply.copy(frame, 2);
        sock.write(frame);
      }
    });
  };

  // UDP first on any free port, then TCP on the same number; another process can grab the
  // TCP side in between, so retry with a fresh UDP port a few times.
  const attempts = requestedPort === 0 ? 5 : 1;
  let udp: dgram.Socket | undefined;
  let tcp: net.Server | undefined;
  let lastError: unknown;
  for (let i = 0; i < attempts && !tcp; i++) {
    const u = await bindUdp(host, requestedPort);
    const t = net.createServer(handleTcpSocket);
    try {
      await listenTcp(t, host, u.address().port);
      udp = u;
      tcp = t;
    } catch (err) {
      lastError = err;
      u.close();
    }
  }
  if (!udp || !tcp) throw lastError instanceof Error ? lastError : new Error('could not bind DNS server');

  const udpSock = udp;
  const tcpServer = tcp;
  udpSock.on('error', () => undefined);
  udpSock.on('message', (msg, rinfo) => {
    const query = tryDecode(msg);
    if (!query) return;
    const reply = answerQuery(state, query, true);
    if (reply) udpSock.send(reply, rinfo.port, rinfo.address);
  });

  state.port = udpSock.address().port;
  state.address = net.isIPv6(host) ? `[${host}]:${state.port}` : `${host}:${state.port}`;
  let closing: Promise<void> | undefined;
  state.close = () => {
    closing ??= new Promise<void>((resolveClose) => {
      for (const s of tcpSockets) s.destroy();
      let pending = 2;
      const done = (): void => {
        if (--pending === 0) resolveClose();
      };
      udpSock.close(done);
      tcpServer.close(() => done());
    });
    return closing;
  };
  return state;
}
