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
// `received` logs each query with its transport, ID, flags and EDNS(0) OPT (for the DNSSEC
// client's tests); `queries` keeps its original { name, type } shape for the older tests.
//
// Optional per-node behaviour, none of which changes a zone that does not use it:
// - `SOA` is answered for SOA queries and put in the authority section of NXDOMAIN/NODATA
//   answers at or below that node (RFC 2308), so a client can compute the negative TTL.
// - `ad` sets the AD bit in NOERROR/NXDOMAIN answers for that name and the names below it
//   (the nearest node that says `ad` wins), as a validating resolver would.
// - `ttl` is the TTL of the node's records (default 60); `truncate` answers UDP with TC and no
//   records whatever the size; `spoof` sends a forged UDP answer first; `malformed` answers
//   with the query's ID followed by junk.
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet, Question } from 'dns-packet';

export interface TlsaZoneRecord {
  usage: number;
  selector: number;
  matchingType: number;
  data: Buffer;
}

export interface SoaZoneRecord {
  mname: string;
  rname: string;
  serial?: number;
  refresh?: number;
  retry?: number;
  expire?: number;
  /** The SOA MINIMUM field: the negative-caching TTL of RFC 2308. */
  minimum: number;
  /** TTL of the SOA record itself; the node's `ttl` (or 60) when absent. */
  ttl?: number;
}

export interface ZoneNode {
  MX?: { preference: number; exchange: string }[];
  A?: string[];
  AAAA?: string[];
  PTR?: string[];
  CNAME?: string;
  /** One TXT record per entry (each a single character-string; split at 255 bytes). */
  TXT?: string[];
  TLSA?: TlsaZoneRecord[];
  /** The zone apex: answered for SOA, and the authority of negative answers at or below it. */
  SOA?: SoaZoneRecord;
  /** Answer every query for this name with this rcode. */
  rcode?: 'SERVFAIL' | 'REFUSED' | 'FORMERR';
  /** Never answer: client times out. */
  drop?: boolean;
  /** Set the AD bit in answers for this name and names below it (nearest node saying `ad` wins). */
  ad?: boolean;
  /** TTL of this node's records (default 60). */
  ttl?: number;
  /** Over UDP, answer with TC set and no records, whatever the size. */
  truncate?: boolean;
  /**
   * Over UDP, first send a forged answer built from `node` (as if it were this name's node),
   * with the ID off by one (`wrong-id`) or the question's name changed (`wrong-question`);
   * the real answer follows.
   */
  spoof?: { mode: 'wrong-id' | 'wrong-question'; node: ZoneNode };
  /** Answer with the query's ID and a header promising records that never come. */
  malformed?: boolean;
}

/** Keys lower-case, no trailing dot. */
export type Zone = Record<string, ZoneNode>;

/** One query as received, for tests that check what the client sent and how. */
export interface ReceivedQuery {
  transport: 'udp' | 'tcp';
  id: number;
  /** Lower-cased, no trailing dot. */
  name: string;
  type: string;
  class: string;
  rd: boolean;
  cd: boolean;
  /** The query's EDNS(0) OPT record, or null when it had none. */
  edns: { udpPayloadSize: number; version: number; flags: number; do: boolean } | null;
}

export interface DnsServer {
  host: string;
  port: number;
  /** "127.0.0.1:5353" form for Resolver.setServers (IPv6 hosts are bracketed). */
  address: string;
  /** Mutable, read on every query. */
  zone: Zone;
  /** Every question received (UDP and TCP), name lower-cased without trailing dot. */
  queries: { name: string; type: string }[];
  /** Every query received, with transport, ID, flags and EDNS(0) details. */
  received: ReceivedQuery[];
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
const RCODE_REFUSED = 5;
const RCODES = { SERVFAIL: RCODE_SERVFAIL, REFUSED: RCODE_REFUSED, FORMERR: RCODE_FORMERR } as const;

function normaliseName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/**
 * The zone's own keys by their normalised spelling (the first key of each), rebuilt when names
 * are added or removed. Every negative answer walks up the name's ancestors, most of which are
 * not in the zone: scanning all keys for each (10,000 domains in the internet bench) made the
 * server answer seconds late under load.
 */
const spellings = new WeakMap<Zone, { size: number; keys: Map<string, string> }>();

/** Looks a name up case-insensitively, tolerating zone keys a test wrote with odd case or a dot. */
function findNode(zone: Zone, name: string): ZoneNode | undefined {
  const key = normaliseName(name);
  if (Object.prototype.hasOwnProperty.call(zone, key)) return zone[key];
  const names = Object.keys(zone);
  let index = spellings.get(zone);
  if (!index || index.size !== names.length) {
    const keys = new Map<string, string>();
    for (const k of names) if (!keys.has(normaliseName(k))) keys.set(normaliseName(k), k);
    spellings.set(zone, (index = { size: names.length, keys }));
  }
  const own = index.keys.get(key);
  return own !== undefined && Object.prototype.hasOwnProperty.call(zone, own) ? zone[own] : undefined;
}

function splitTxt(s: string): Buffer[] {
  const b = Buffer.from(s, 'utf8');
  const parts: Buffer[] = [];
  for (let i = 0; i < b.length; i += 255) parts.push(b.subarray(i, i + 255));
  return parts.length > 0 ? parts : [Buffer.alloc(0)];
}

/** What `pick` says of the node of `name` or, failing that, of its nearest ancestor, and where. */
function nearest<T>(zone: Zone, name: string, pick: (node: ZoneNode) => T | undefined): { owner: string; value: T } | undefined {
  const labels = normaliseName(name).split('.');
  for (let i = 0; i < labels.length; i++) {
    const owner = labels.slice(i).join('.');
    const node = findNode(zone, owner);
    const value = node ? pick(node) : undefined;
    if (value !== undefined) return { owner, value };
  }
  return undefined;
}

/** The SOA record of the zone enclosing `name`, for the authority section of negative answers. */
function authorityFor(zone: Zone, name: string): Answer[] {
  const apex = nearest(zone, name, (node) => (node.SOA ? node : undefined));
  return apex ? soaRecords(apex.value, apex.owner) : [];
}

function soaRecords(node: ZoneNode, owner: string): Answer[] {
  const soa = node.SOA;
  if (!soa) return [];
  const { ttl, ...fields } = soa;
  return [{ name: owner, ttl: ttl ?? node.ttl ?? TTL, class: 'IN', type: 'SOA', data: fields }];
}

function recordsOfType(node: ZoneNode, owner: string, type: string): Answer[] {
  const base = { name: owner, ttl: node.ttl ?? TTL, class: 'IN' as const };
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
    case 'TLSA':
      return (node.TLSA ?? []).map(
        (t): Answer => ({ ...base, type: 'TLSA', data: { usage: t.usage, selector: t.selector, matchingType: t.matchingType, certificate: t.data } }),
      );
    case 'SOA':
      return soaRecords(node, owner);
    default:
      return [];
  }
}

type Resolution = { kind: 'drop' } | { kind: 'answer'; rcode: number; answers: Answer[]; authorities: Answer[] };

/** `replace` stands in for the question name's own node (used to build a forged answer). */
function resolve(zone: Zone, q: Question, replace?: ZoneNode): Resolution {
  const answers: Answer[] = [];
  let owner = q.name; // echo the asker's spelling in the first owner name
  for (let hop = 0; hop <= MAX_CNAME_CHAIN; hop++) {
    const node = hop === 0 && replace ? replace : findNode(zone, owner);
    if (!node) return { kind: 'answer', rcode: RCODE_NXDOMAIN, answers, authorities: authorityFor(zone, owner) };
    if (node.drop) return { kind: 'drop' };
    if (node.rcode !== undefined) return { kind: 'answer', rcode: RCODES[node.rcode], answers, authorities: [] };
    if (node.CNAME !== undefined && q.type !== 'CNAME') {
      answers.push(...recordsOfType(node, owner, 'CNAME'));
      owner = node.CNAME;
      continue;
    }
    const own = recordsOfType(node, owner, q.type);
    answers.push(...own);
    return { kind: 'answer', rcode: 0, answers, authorities: own.length === 0 ? authorityFor(zone, owner) : [] };
  }
  // CNAME loop: what a real server reports when it cannot finish the chain.
  return { kind: 'answer', rcode: RCODE_SERVFAIL, answers: [], authorities: [] };
}

interface ResponseParts {
  rcode: number;
  answers: Answer[];
  authorities?: Answer[];
  truncated?: boolean;
  ad?: boolean;
}

function buildResponse(query: DecodedPacket, parts: ResponseParts): Packet {
  const rd = query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0;
  const tc = parts.truncated ? dnsPacket.TRUNCATED_RESPONSE : 0;
  const ad = parts.ad ? dnsPacket.AUTHENTIC_DATA : 0;
  return {
    type: 'response',
    id: query.id ?? 0,
    flags: dnsPacket.AUTHORITATIVE_ANSWER | rd | tc | ad | parts.rcode,
    questions: query.questions ?? [],
    answers: parts.answers,
    authorities: parts.authorities ?? [],
  };
}

function logQuery(server: DnsServer, query: DecodedPacket, transport: 'udp' | 'tcp'): void {
  const opt = (query.additionals ?? []).find((a) => a.type === 'OPT');
  const edns =
    opt && opt.type === 'OPT' ? { udpPayloadSize: opt.udpPayloadSize, version: opt.ednsVersion, flags: opt.flags, do: (opt.flags & dnsPacket.DNSSEC_OK) !== 0 } : null;
  for (const q of query.questions ?? []) {
    server.received.push({
      transport,
      id: query.id ?? 0,
      name: normaliseName(q.name),
      type: String(q.type),
      class: String(q.class),
      rd: query.flag_rd,
      cd: query.flag_cd,
      edns,
    });
  }
}

/** A header with the query's ID that promises an answer record the message does not hold. */
function malformedReply(query: DecodedPacket): Buffer {
  const b = Buffer.alloc(15);
  b.writeUInt16BE(query.id ?? 0, 0);
  b.writeUInt16BE(0x8000 | dnsPacket.AUTHORITATIVE_ANSWER, 2);
  b.writeUInt16BE(0, 4); // no question
  b.writeUInt16BE(1, 6); // one answer...
  b.write('\x05ab', 12, 'latin1'); // ...whose name runs off the end
  return b;
}

/** A forged UDP answer to send before the real one, or undefined when the node asks for none. */
function forgedReply(zone: Zone, query: DecodedPacket, q: Question, node: ZoneNode | undefined): Buffer | undefined {
  const spoof = node?.spoof;
  if (!spoof) return undefined;
  const res = resolve(zone, q, spoof.node);
  if (res.kind === 'drop') return undefined;
  const packet = buildResponse(query, { rcode: res.rcode, answers: res.answers, authorities: res.authorities });
  if (spoof.mode === 'wrong-id') packet.id = ((query.id ?? 0) + 1) & 0xffff;
  else packet.questions = [{ ...q, name: `spoofed.${normaliseName(q.name)}` }];
  return dnsPacket.encode(packet);
}

/**
 * Returns the encoded replies in the order to send them (empty when the query must go
 * unanswered). With `udp`, an oversized reply keeps only the answers that fit and sets TC.
 */
function answerQuery(server: DnsServer, query: DecodedPacket, udp: boolean): Buffer[] {
  if (query.type !== 'query') return []; // never answer responses: no reflection loops
  const questions = query.questions ?? [];
  for (const q of questions) server.queries.push({ name: normaliseName(q.name), type: String(q.type) });
  logQuery(server, query, udp ? 'udp' : 'tcp');
  const q = questions[0];
  if (!q || questions.length !== 1) return [dnsPacket.encode(buildResponse(query, { rcode: RCODE_FORMERR, answers: [] }))];
  const node = findNode(server.zone, q.name);
  if (node?.malformed) return [malformedReply(query)];
  const res = resolve(server.zone, q);
  if (res.kind === 'drop') return [];
  const ad = (res.rcode === 0 || res.rcode === RCODE_NXDOMAIN) && nearest(server.zone, q.name, (n) => n.ad)?.value === true;
  const before: Buffer[] = [];
  let full: Buffer;
  try {
    if (udp) {
      const forged = forgedReply(server.zone, query, q, node);
      if (forged) before.push(forged);
    }
    full = dnsPacket.encode(buildResponse(query, { ...res, ad }));
  } catch (err) {
    // A malformed zone entry (e.g. a bad address) is a test bug: say so, answer SERVFAIL.
    console.error(`dns-server: cannot encode answer for ${q.type} ${q.name}:`, err);
    return [dnsPacket.encode(buildResponse(query, { rcode: RCODE_SERVFAIL, answers: [] }))];
  }
  if (udp && node?.truncate) return [...before, dnsPacket.encode(buildResponse(query, { rcode: res.rcode, answers: [], truncated: true, ad }))];
  if (!udp || full.length <= UDP_LIMIT) return [...before, full];
  const kept = [...res.answers];
  let out: Buffer;
  do {
    kept.pop();
    out = dnsPacket.encode(buildResponse(query, { rcode: res.rcode, answers: kept, authorities: res.authorities, truncated: true, ad }));
  } while (out.length > UDP_LIMIT && kept.length > 0);
  return [...before, out];
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
    received: [],
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
        for (const reply of answerQuery(state, query, false)) {
          if (sock.destroyed) break;
          const frame = Buffer.alloc(2 + reply.length);
          frame.writeUInt16BE(reply.length, 0);
          reply.copy(frame, 2);
          sock.write(frame);
        }
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
    for (const reply of answerQuery(state, query, true)) udpSock.send(reply, rinfo.port, rinfo.address);
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
