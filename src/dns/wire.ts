/**
 * A DNS stub client on the wire (dns-packet over UDP, TCP when truncated) that can see DNSSEC:
 * it asks with EDNS(0) and the DO bit, and reports the AD bit of the answer, but only from a
 * server it was told to trust (the stub does not validate; the resolver does, and the AD bit is
 * worth no more than the path to it). node:dns cannot do this: c-ares hides the header.
 *
 * Every DNS outcome is a value, never an exception: an answer, NODATA, NXDOMAIN, or a temporary
 * failure. A validating resolver answers SERVFAIL for bogus data, so SERVFAIL (and anything
 * else that is not a usable answer) is temporary, never "no records": only a real NODATA or
 * NXDOMAIN may change where mail goes. Exceptions are kept for bad input (a malformed name or
 * option), which is a caller's bug.
 */
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket } from 'dns-packet';
import { ValidationError } from '../controls/validate.js';
import { parseHostPort } from '../config/host-port.js';
import { TtlLruCache } from './cache.js';
import type { MxRecord } from './select.js';

export const QUERY_TYPES = ['A', 'AAAA', 'MX', 'TXT', 'TLSA', 'PTR', 'CNAME', 'SOA'] as const;
export type QueryType = (typeof QUERY_TYPES)[number];

export interface MxData {
  preference: number;
  /** Lower-case, no trailing dot; '' for the root (a Null MX, RFC 7505). */
  exchange: string;
}

export interface TlsaRecord {
  usage: number;
  selector: number;
  matchingType: number;
  /** The certificate association data (a copy, not a view of the packet). */
  data: Buffer;
}

export interface SoaRecord {
  mname: string;
  rname: string;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  minimum: number;
}

/** The typed record each query type yields. Names are lower-case without a trailing dot. */
export interface RecordOf {
  A: string;
  AAAA: string;
  MX: MxData;
  /** One string per record: its character-strings concatenated, decoded as UTF-8. */
  TXT: string;
  TLSA: TlsaRecord;
  PTR: string;
  CNAME: string;
  SOA: SoaRecord;
}

/**
 * The outcome of one query. `ttl` is in seconds: for a fresh answer the time it may be cached,
 * for a cached one what is left of it; 0 for a negative answer that carried no SOA.
 */
export type DnsResult<R> =
  | { kind: 'answer'; records: R[]; authenticated: boolean; ttl: number }
  | { kind: 'nodata'; authenticated: boolean; ttl: number }
  | { kind: 'nxdomain'; authenticated: boolean; ttl: number }
  | { kind: 'temporary'; reason: string };

/** Same shape as resolver.ts's MxLookup, plus whether the answer was authenticated. */
export type WireMxLookup =
  | { kind: 'mx'; records: MxRecord[]; authenticated: boolean }
  | { kind: 'no-mx'; authenticated: boolean }
  | { kind: 'nxdomain'; authenticated: boolean }
  | { kind: 'temporary'; reason: string };

/** Same shape as resolver.ts's AddressLookup, plus whether the answer was authenticated. */
export type WireAddressLookup =
  | { kind: 'ok'; addresses: string[]; authenticated: boolean }
  | { kind: 'none'; authenticated: boolean }
  | { kind: 'temporary'; reason: string };

export interface DnsServerAddress {
  host: string;
  port: number;
}

export interface WireDnsServer extends DnsServerAddress {
  /** Whether this server's AD bit is believed. */
  trusted: boolean;
}

export interface WireDnsOptions {
  /** `IPV4[:PORT]`, `IPV6` or `[IPV6][:PORT]` (port 53 by default); empty: /etc/resolv.conf. */
  servers?: string[];
  /**
   * Which servers' AD bit to believe: a predicate, or a list in the `servers` syntax. Default:
   * loopback servers only, plus every resolv.conf server when it says `options trust-ad` (as
   * glibc does), since an AD bit that crossed a network unprotected proves nothing.
   */
  trusted?: ((server: DnsServerAddress) => boolean) | string[];
  /** Per try and server (default 3000). */
  timeoutMs?: number;
  /** Rounds over all servers (default 2). */
  tries?: number;
  /** Cache bound (default 10000; 0 disables the cache). */
  cacheEntries?: number;
  /** Millisecond clock for the cache (tests step it over a TTL). */
  now?: () => number;
  /** Where to read servers when none are given (default /etc/resolv.conf). */
  resolvConf?: string;
  /** Told how long each mx()/addresses() call took, as resolver.ts's DnsClient does (for /metrics). */
  observe?: (type: 'mx' | 'a' | 'aaaa', seconds: number) => void;
}

/** A query name that can never be sent. Extends ValidationError so callers can catch both alike. */
export class DnsNameError extends ValidationError {
  constructor(
    readonly input: string,
    readonly problem: string,
  ) {
    super('DNS name', input, NAME_RULE);
    this.message = `invalid DNS name ${JSON.stringify(input)}: ${problem} (allowed: ${NAME_RULE})`;
    this.name = 'DnsNameError';
  }
}

const NAME_RULE = 'at most 253 octets of printable ASCII, labels of 1 to 63 octets';
/** RFC 8085/DNS flag day 2020: big enough for most DNSSEC answers, small enough not to fragment. */
const UDP_PAYLOAD_SIZE = 1232;
const DEFAULT_TIMEOUT_MS = 3000;
const DEFAULT_TRIES = 2;
const DEFAULT_CACHE_ENTRIES = 10_000;
const MAX_POSITIVE_TTL = 86_400;
/** RFC 2308 §5 suggests one to three hours; the shorter bound lets a fixed zone heal sooner. */
const MAX_NEGATIVE_TTL = 3_600;
/** Longer chains are broken or hostile; real resolvers give up around here too. */
const MAX_CNAME_HOPS = 16;
const RCODE_NOERROR = 0;
const RCODE_NXDOMAIN = 3;
const RCODE_NAMES: Record<number, string> = { 1: 'FORMERR', 2: 'SERVFAIL', 4: 'NOTIMP', 5: 'REFUSED', 16: 'BADVERS' };
const TYPE_NUMBERS = { A: 1, AAAA: 28, TLSA: 52 } as const;

// ---------------------------------------------------------------------------------------------
// Names and servers

/** DNS compares names ASCII-case-insensitively only (RFC 4343), so only A-Z are folded. */
function lowerAscii(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/** Lower-case, no trailing dot; the root is ''. */
function canonicalName(name: string): string {
  const lower = lowerAscii(name);
  return lower === '.' ? '' : lower.replace(/\.$/, '');
}

/** `name` as shown in messages. */
function display(name: string): string {
  return name === '' ? '.' : name;
}

/**
 * Checks a name before it is sent and returns it lower-case without a trailing dot ('' for
 * the root, written '.'). Throws DnsNameError naming the input and what is wrong with it.
 */
export function checkQueryName(name: string): string {
  if (typeof name !== 'string') throw new DnsNameError(String(name), 'not a string');
  if (name === '.') return '';
  const bare = name.endsWith('.') ? name.slice(0, -1) : name;
  if (bare === '') throw new DnsNameError(name, 'empty');
  // dns-packet writes labels as UTF-8 and knows no escapes: a U-label or a control character
  // would go out as bytes nobody meant, so only the A-label form of an IDN is taken.
  if (!/^[\x21-\x7e]+$/.test(bare)) throw new DnsNameError(name, 'has a character outside printable ASCII (write an IDN as its xn-- A-labels)');
  if (bare.length > 253) throw new DnsNameError(name, `is ${bare.length} octets long (at most 253)`);
  const labels = bare.split('.');
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!;
    if (label === '') throw new DnsNameError(name, `label ${i + 1} is empty`);
    if (label.length > 63) throw new DnsNameError(name, `label ${i + 1} is ${label.length} octets long (at most 63)`);
  }
  return lowerAscii(bare);
}

function canonicalHost(host: string): string {
  if (!net.isIPv6(host)) return host;
  try {
    // The WHATWG URL serialiser writes an IPv6 address in its one canonical (RFC 5952) form.
    return new URL(`http://[${host}]/`).hostname.slice(1, -1);
  } catch {
    return host.toLowerCase(); // a zone index (fe80::1%eth0) is not URL syntax
  }
}

/**
 * Parses `IPV4[:PORT]`, a bare `IPV6`, or `[IPV6][:PORT]` (port 53 by default). A resolver must
 * be an address: finding it by name would need a resolver. Throws a ValidationError naming the
 * input.
 */
export function parseServer(text: string): DnsServerAddress {
  const fail = (): never => {
    throw new ValidationError('DNS server', text, 'IPV4[:PORT], IPV6 or [IPV6][:PORT], with a port from 1 to 65535');
  };
  if (typeof text !== 'string') return fail();
  let hp: { host: string; port: number };
  try {
    hp = parseHostPort('DNS server', text.trim(), 53);
  } catch {
    return fail();
  }
  // A resolver is an address: finding it by name would need a resolver.
  if (!net.isIP(hp.host)) return fail();
  return { host: canonicalHost(hp.host), port: hp.port };
}

function serverLabel(s: DnsServerAddress): string {
  return net.isIPv6(s.host) ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
}

export function isLoopback(host: string): boolean {
  if (net.isIPv4(host)) return host.startsWith('127.');
  const c = canonicalHost(host);
  return c === '::1' || /^::ffff:7f[0-9a-f]{2}:/.test(c);
}

/** `nameserver` lines (port 53) and whether `options trust-ad` is present, as glibc reads them. */
function readResolvConf(path: string): { servers: DnsServerAddress[]; trustAd: boolean } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return { servers: [], trustAd: false };
  }
  const servers: DnsServerAddress[] = [];
  let trustAd = false;
  for (const line of text.split('\n')) {
    const words = line.replace(/[#;].*$/, '').trim().split(/\s+/);
    if (words[0] === 'nameserver' && words[1] !== undefined) {
      // Only a bare address belongs here (no port); a line we cannot read is skipped, as glibc does.
      if (net.isIP(words[1])) servers.push({ host: canonicalHost(words[1]), port: 53 });
    } else if (words[0] === 'options' && words.includes('trust-ad')) {
      trustAd = true;
    }
  }
  return { servers, trustAd };
}

function positiveInteger(field: string, value: number | undefined, def: number, min: number): number {
  if (value === undefined) return def;
  if (!Number.isInteger(value) || value < min) throw new ValidationError(field, value, `a whole number from ${min}`);
  return value;
}

// ---------------------------------------------------------------------------------------------
// Packets

type Exchange = { ok: true; packet: DecodedPacket } | { ok: false; reason: string };
type Check = { verdict: 'ignore' } | { verdict: 'fail'; reason: string } | { verdict: 'ok'; packet: DecodedPacket };

function buildQuery(id: number, qname: string, type: QueryType): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name: qname === '' ? '.' : qname, type, class: 'IN' }],
    // dns-packet writes `flags` into the low 16 bits of the OPT TTL, where DO is the top bit
    // (RFC 3225); DNSSEC_OK is 1 << 15.
    additionals: [
      { type: 'OPT', name: '.', udpPayloadSize: UDP_PAYLOAD_SIZE, extendedRcode: 0, ednsVersion: 0, flags: dnsPacket.DNSSEC_OK, flag_do: true, options: [] },
    ],
  });
}

/**
 * Walks the message by the lengths it declares and returns where its last record ends, or a
 * complaint. dns-packet decodes each record by its own reading of the data, not by RDLENGTH,
 * so a record whose data disagrees with its length would silently shift every later one;
 * comparing the two end offsets catches that.
 */
function framingEnd(buf: Buffer): number | string {
  const skipName = (at: number): number => {
    for (let off = at, steps = 0; steps < 128; steps++) {
      if (off >= buf.length) return -1;
      const len = buf[off]!;
      if (len === 0) return off + 1;
      if ((len & 0xc0) === 0xc0) return off + 2 <= buf.length ? off + 2 : -1;
      if ((len & 0xc0) !== 0) return -1;
      off += 1 + len;
    }
    return -1;
  };
  if (buf.length < 12) return 'shorter than a header';
  const qd = buf.readUInt16BE(4);
  const rrs = buf.readUInt16BE(6) + buf.readUInt16BE(8) + buf.readUInt16BE(10);
  let off = 12;
  for (let i = 0; i < qd; i++) {
    off = skipName(off);
    if (off < 0 || off + 4 > buf.length) return 'question runs past the end';
    off += 4;
  }
  for (let i = 0; i < rrs; i++) {
    off = skipName(off);
    if (off < 0 || off + 10 > buf.length) return 'record runs past the end';
    const type = buf.readUInt16BE(off);
    const rdlength = buf.readUInt16BE(off + 8);
    off += 10;
    if (off + rdlength > buf.length) return 'record data runs past the end';
    if (type === TYPE_NUMBERS.A && rdlength !== 4) return `A record of ${rdlength} octets`;
    if (type === TYPE_NUMBERS.AAAA && rdlength !== 16) return `AAAA record of ${rdlength} octets`;
    if (type === TYPE_NUMBERS.TLSA && rdlength < 3) return `TLSA record of ${rdlength} octets`;
    off += rdlength;
  }
  return off;
}

/**
 * Whether `msg` answers our question: an answer with another ID, or to another question, is
 * ignored (it may be forged or late), as is anything that is not a response.
 */
function checkResponse(msg: Buffer, id: number, qname: string, type: QueryType): Check {
  if (msg.length < 12 || msg.readUInt16BE(0) !== id || (msg[2]! & 0x80) === 0) return { verdict: 'ignore' };
  let packet: DecodedPacket;
  try {
    packet = dnsPacket.decode(msg);
  } catch (e) {
    return { verdict: 'fail', reason: `malformed answer (${(e as Error).message})` };
  }
  const end = framingEnd(msg);
  if (typeof end === 'string') return { verdict: 'fail', reason: `malformed answer (${end})` };
  if (end !== dnsPacket.decode.bytes) return { verdict: 'fail', reason: 'malformed answer (record data disagrees with its length)' };
  const qs = packet.questions ?? [];
  const q = qs[0];
  if (qs.length !== 1 || !q || canonicalName(q.name) !== qname || q.type !== type || q.class !== 'IN') return { verdict: 'ignore' };
  if ((((packet.flags ?? 0) >> 11) & 0xf) !== 0) return { verdict: 'ignore' }; // opcode other than QUERY
  return { verdict: 'ok', packet };
}

function errorText(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
}

function randomId(): number {
  return randomInt(0, 0x10000);
}

// ---------------------------------------------------------------------------------------------
// Records

class MalformedRecord extends Error {}

/** RFC 2181 §8: a TTL with the top bit set is treated as zero. */
function ttlOf(a: Answer): number {
  const ttl = 'ttl' in a ? (a.ttl ?? 0) : 0;
  return ttl > 0x7fffffff ? 0 : ttl;
}

function txtString(data: string | Buffer | (string | Buffer)[]): string {
  const parts = Array.isArray(data) ? data : [data];
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p))).toString('utf8');
}

/** One converter per type, so that `CONVERT[type]` has the record type of that query type. */
const CONVERT: { [K in QueryType]: (a: Answer) => RecordOf[K] } = {
  A: (a) => {
    if (a.type !== 'A' || !net.isIPv4(a.data)) throw new MalformedRecord('bad A record');
    return a.data;
  },
  AAAA: (a) => {
    if (a.type !== 'AAAA' || !net.isIPv6(a.data)) throw new MalformedRecord('bad AAAA record');
    return a.data.toLowerCase();
  },
  MX: (a) => {
    if (a.type !== 'MX') throw new MalformedRecord('bad MX record');
    return { preference: a.data.preference ?? 0, exchange: canonicalName(a.data.exchange) };
  },
  TXT: (a) => {
    if (a.type !== 'TXT') throw new MalformedRecord('bad TXT record');
    return txtString(a.data);
  },
  TLSA: (a) => {
    if (a.type !== 'TLSA' || !Buffer.isBuffer(a.data.certificate)) throw new MalformedRecord('bad TLSA record');
    const d = a.data;
    // Copied: the decoder's slice would keep the whole packet alive in the cache.
    return { usage: d.usage, selector: d.selector, matchingType: d.matchingType, data: Buffer.from(d.certificate) };
  },
  PTR: (a) => {
    if (a.type !== 'PTR') throw new MalformedRecord('bad PTR record');
    return canonicalName(a.data);
  },
  CNAME: (a) => {
    if (a.type !== 'CNAME') throw new MalformedRecord('bad CNAME record');
    return canonicalName(a.data);
  },
  SOA: (a) => {
    if (a.type !== 'SOA') throw new MalformedRecord('bad SOA record');
    const d = a.data;
    return {
      mname: canonicalName(d.mname),
      rname: canonicalName(d.rname),
      serial: d.serial ?? 0,
      refresh: d.refresh ?? 0,
      retry: d.retry ?? 0,
      expire: d.expire ?? 0,
      minimum: d.minimum ?? 0,
    };
  },
};

function isAtOrBelow(name: string, zone: string): boolean {
  return zone === '' || name === zone || name.endsWith(`.${zone}`);
}

type Final<R> = Exclude<DnsResult<R>, { kind: 'temporary' }>;
type Attempt<R> = { ok: true; result: Final<R> } | { ok: false; reason: string };

/**
 * Turns a response that matched our question into a result: follows the CNAME chain from the
 * question name through the answer section, and takes the records of the asked type at its
 * end; without any, the negative TTL comes from the SOA in the authority section (RFC 2308).
 */
function interpret<T extends QueryType>(packet: DecodedPacket, qname: string, type: T, trusted: boolean): Attempt<RecordOf[T]> {
  const opt = (packet.additionals ?? []).find((a) => a.type === 'OPT');
  // The OPT record holds the upper 8 bits of a 12-bit rcode (RFC 6891), e.g. BADVERS.
  const rcode = ((opt && opt.type === 'OPT' ? opt.extendedRcode : 0) << 4) | ((packet.flags ?? 0) & 0xf);
  if (rcode !== RCODE_NOERROR && rcode !== RCODE_NXDOMAIN) return { ok: false, reason: RCODE_NAMES[rcode] ?? `rcode ${rcode}` };
  const authenticated = packet.flag_ad && trusted;
  const answers = (packet.answers ?? []).filter((a) => a.type !== 'OPT' && a.class === 'IN');
  let owner = qname;
  let chainTtl = Infinity;
  const seen = new Set([qname]);
  try {
    for (let hop = 0; ; hop++) {
      const here = answers.filter((a) => canonicalName(a.name) === owner);
      const rrset = here.filter((a) => a.type === type);
      if (rrset.length > 0) {
        if (rcode === RCODE_NXDOMAIN) return { ok: false, reason: `NXDOMAIN with ${type} records` };
        const records = rrset.map((a) => CONVERT[type](a));
        const ttl = Math.min(chainTtl, MAX_POSITIVE_TTL, ...rrset.map(ttlOf));
        return { ok: true, result: { kind: 'answer', records, authenticated, ttl } };
      }
      if (type === 'CNAME') break; // a CNAME query asks for the alias itself, not its target
      const cname = here.find((a) => a.type === 'CNAME');
      if (!cname) break;
      if (hop >= MAX_CNAME_HOPS) return { ok: false, reason: `CNAME chain longer than ${MAX_CNAME_HOPS}` };
      chainTtl = Math.min(chainTtl, ttlOf(cname));
      owner = CONVERT.CNAME(cname);
      if (seen.has(owner)) return { ok: false, reason: `CNAME loop at ${display(owner)}` };
      seen.add(owner);
    }
  } catch (e) {
    if (e instanceof MalformedRecord) return { ok: false, reason: `malformed answer (${e.message})` };
    throw e;
  }
  const authority = (packet.authorities ?? []).filter((a) => a.type !== 'OPT' && a.class === 'IN');
  // Only the SOA of a zone enclosing the name may set its negative TTL.
  const soa = authority.find((a) => a.type === 'SOA' && isAtOrBelow(owner, canonicalName(a.name)));
  if (!soa && rcode === RCODE_NOERROR && authority.some((a) => a.type === 'NS')) {
    // RFC 2308 §2.2: NS without SOA is a referral, not NODATA: the server did not recurse.
    return { ok: false, reason: 'referral instead of an answer (is the server a recursive resolver?)' };
  }
  const minimum = soa && soa.type === 'SOA' ? (soa.data.minimum ?? 0) : 0;
  const ttl = soa ? Math.min(chainTtl, ttlOf(soa), minimum, MAX_NEGATIVE_TTL) : 0;
  return { ok: true, result: { kind: rcode === RCODE_NXDOMAIN ? 'nxdomain' : 'nodata', authenticated, ttl } };
}

function toMxLookup(r: DnsResult<MxData>): WireMxLookup {
  switch (r.kind) {
    case 'answer':
      return { kind: 'mx', records: r.records.map((m) => ({ exchange: m.exchange, priority: m.preference })), authenticated: r.authenticated };
    case 'nodata':
      return { kind: 'no-mx', authenticated: r.authenticated };
    case 'nxdomain':
      return { kind: 'nxdomain', authenticated: r.authenticated };
    case 'temporary':
      return r;
  }
}

function toAddressLookup(r: DnsResult<string>): WireAddressLookup {
  switch (r.kind) {
    case 'answer':
      return { kind: 'ok', addresses: r.records, authenticated: r.authenticated };
    case 'nodata':
    case 'nxdomain':
      return { kind: 'none', authenticated: r.authenticated };
    case 'temporary':
      return r;
  }
}

/** A fresh object (and records array) per caller, so that no caller can alter the cached one. */
function copyResult<R>(r: DnsResult<R>): DnsResult<R> {
  return r.kind === 'answer' ? { ...r, records: [...r.records] } : { ...r };
}

/** The in-addr.arpa or ip6.arpa name of an address, or undefined when it is not an address. */
export function reverseName(address: string): string | undefined {
  if (net.isIPv4(address)) return `${address.split('.').reverse().join('.')}.in-addr.arpa`;
  if (!net.isIPv6(address)) return undefined;
  let a = address.split('%')[0]!;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (v4) {
    const [b0, b1, b2, b3] = v4.slice(1).map(Number) as [number, number, number, number];
    a = `${a.slice(0, v4.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const [head, tail] = a.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const nibbles = groups.map((g) => g.padStart(4, '0')).join('');
  return `${[...nibbles.toLowerCase()].reverse().join('.')}.ip6.arpa`;
}

// ---------------------------------------------------------------------------------------------
// The client

export class WireDnsClient {
  /** The servers asked, in order, each with whether its AD bit is believed. */
  readonly servers: readonly WireDnsServer[];

  private readonly timeoutMs: number;

  private readonly tries: number;

  private readonly cache: TtlLruCache<Final<unknown>>;

  /** Queries on the wire, by cache key: identical concurrent queries share one. */
  private readonly inflight = new Map<string, Promise<DnsResult<unknown>>>();

  private readonly observe: WireDnsOptions['observe'];

  constructor(o: WireDnsOptions = {}) {
    this.timeoutMs = positiveInteger('DNS timeout (ms)', o.timeoutMs, DEFAULT_TIMEOUT_MS, 1);
    this.tries = positiveInteger('DNS tries', o.tries, DEFAULT_TRIES, 1);
    this.cache = new TtlLruCache(positiveInteger('DNS cache entries', o.cacheEntries, DEFAULT_CACHE_ENTRIES, 0), o.now ?? Date.now);
    this.observe = o.observe;

    let addresses: DnsServerAddress[];
    let fromFileTrusted = false;
    if (o.servers && o.servers.length > 0) {
      addresses = o.servers.map(parseServer);
    } else {
      const conf = readResolvConf(o.resolvConf ?? '/etc/resolv.conf');
      addresses = conf.servers.length > 0 ? conf.servers : [{ host: '127.0.0.1', port: 53 }];
      fromFileTrusted = conf.trustAd && conf.servers.length > 0;
    }
    let trusted: (s: DnsServerAddress) => boolean;
    if (typeof o.trusted === 'function') {
      trusted = o.trusted;
    } else if (Array.isArray(o.trusted)) {
      const list = new Set(o.trusted.map((t) => serverLabel(parseServer(t))));
      trusted = (s) => list.has(serverLabel(s));
    } else {
      trusted = (s) => fromFileTrusted || isLoopback(s.host);
    }
    this.servers = addresses.map((a) => ({ host: a.host, port: a.port, trusted: trusted({ host: a.host, port: a.port }) }));
  }

  /**
   * Asks for `type` records of `name`. Resolves to a DnsResult for every DNS outcome; rejects
   * only for a bad name or type (DnsNameError / ValidationError).
   */
  async query<T extends QueryType>(name: string, type: T): Promise<DnsResult<RecordOf[T]>> {
    if (!(QUERY_TYPES as readonly string[]).includes(type)) throw new ValidationError('DNS query type', type, QUERY_TYPES.join(', '));
    const qname = checkQueryName(name);
    const key = `${type} ${qname}`;
    const hit = this.cache.get(key);
    if (hit) return copyResult({ ...hit.value, ttl: Math.ceil(hit.remainingMs / 1000) }) as DnsResult<RecordOf[T]>;
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.lookup(qname, type).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return copyResult(await pending) as DnsResult<RecordOf[T]>;
  }

  private async lookup<T extends QueryType>(qname: string, type: T): Promise<DnsResult<RecordOf[T]>> {
    const failures: string[] = [];
    for (let round = 0; round < this.tries; round++) {
      for (const server of this.servers) {
        const attempt = await this.ask(server, qname, type);
        if (attempt.ok) {
          // A TTL of 0 (or a negative answer without SOA) is not cached: the set is a no-op.
          this.cache.set(`${type} ${qname}`, attempt.result, attempt.result.ttl * 1000);
          return attempt.result;
        }
        failures.push(`${serverLabel(server)}: ${attempt.reason}`);
      }
    }
    return { kind: 'temporary', reason: `${type} ${display(qname)}: no usable answer (${[...new Set(failures)].join('; ')})` };
  }

  /** One server: UDP, then TCP when the UDP answer was truncated. */
  private async ask<T extends QueryType>(server: WireDnsServer, qname: string, type: T): Promise<Attempt<RecordOf[T]>> {
    const udp = await this.udpExchange(server, qname, type);
    if (!udp.ok) return udp;
    let packet = udp.packet;
    if (packet.flag_tc) {
      const tcp = await this.tcpExchange(server, qname, type);
      if (!tcp.ok) return { ok: false, reason: `truncated over UDP; over TCP: ${tcp.reason}` };
      packet = tcp.packet;
    }
    return interpret(packet, qname, type, server.trusted);
  }

  private udpExchange(server: WireDnsServer, qname: string, type: QueryType): Promise<Exchange> {
    const id = randomId();
    const query = buildQuery(id, qname, type);
    return new Promise((resolve) => {
      // A socket per query: a fresh random source port as well as a random ID (RFC 5452).
      const sock = dgram.createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4');
      let done = false;
      const finish = (r: Exchange): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        try {
          sock.close();
        } catch {
          // already closed after an error
        }
        resolve(r);
      };
      const timer = setTimeout(() => finish({ ok: false, reason: `no answer within ${this.timeoutMs} ms` }), this.timeoutMs);
      sock.on('error', (e) => finish({ ok: false, reason: `UDP: ${errorText(e)}` }));
      sock.on('message', (msg) => {
        const c = checkResponse(msg, id, qname, type);
        if (c.verdict === 'ignore') return; // keep waiting for the real answer until the timeout
        finish(c.verdict === 'ok' ? { ok: true, packet: c.packet } : { ok: false, reason: c.reason });
      });
      // Connected, so the kernel drops datagrams from any other address or port. Node hands a
      // connect error to this callback (not to 'error'), though @types/node declares none.
      const onConnect = (e?: Error): void => {
        if (e) return finish({ ok: false, reason: `UDP: ${errorText(e)}` });
        sock.send(query, (err) => {
          if (err) finish({ ok: false, reason: `UDP: ${errorText(err)}` });
        });
      };
      sock.connect(server.port, server.host, onConnect);
    });
  }

  private tcpExchange(server: WireDnsServer, qname: string, type: QueryType): Promise<Exchange> {
    const id = randomId();
    const query = buildQuery(id, qname, type);
    return new Promise((resolve) => {
      const sock = net.connect({ host: server.host, port: server.port });
      let buf = Buffer.alloc(0);
      let done = false;
      const finish = (r: Exchange): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        sock.destroy();
        resolve(r);
      };
      const timer = setTimeout(() => finish({ ok: false, reason: `no answer over TCP within ${this.timeoutMs} ms` }), this.timeoutMs);
      sock.on('error', (e) => finish({ ok: false, reason: `TCP: ${errorText(e)}` }));
      sock.on('close', () => finish({ ok: false, reason: 'TCP connection closed before an answer' }));
      sock.on('connect', () => {
        const frame = Buffer.alloc(2 + query.length);
        frame.writeUInt16BE(query.length, 0); // RFC 1035 §4.2.2 length prefix
        query.copy(frame, 2);
        sock.write(frame);
      });
      sock.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
        const c = checkResponse(buf.subarray(2, 2 + buf.readUInt16BE(0)), id, qname, type);
        // One query per connection: anything but our answer means the connection is no good.
        if (c.verdict === 'ignore') finish({ ok: false, reason: 'TCP answer does not match the query' });
        else if (c.verdict === 'fail') finish({ ok: false, reason: c.reason });
        else if (c.packet.flag_tc) finish({ ok: false, reason: 'truncated over TCP' });
        else finish({ ok: true, packet: c.packet });
      });
    });
  }

  // -------------------------------------------------------------------------------------------
  // Convenience methods in resolver.ts's DnsClient shapes

  async mx(domain: string): Promise<WireMxLookup> {
    const t = performance.now();
    try {
      return toMxLookup(await this.query(domain, 'MX'));
    } finally {
      this.observe?.('mx', (performance.now() - t) / 1000);
    }
  }

  /**
   * Addresses of `host` in one family. An address literal is its own answer (or none in the
   * other family), with `authenticated: false`: no DNS answer vouches for it.
   */
  async addresses(host: string, family: 4 | 6): Promise<WireAddressLookup> {
    const literal = net.isIP(host);
    if (literal) return literal === family ? { kind: 'ok', addresses: [host], authenticated: false } : { kind: 'none', authenticated: false };
    const t = performance.now();
    try {
      return toAddressLookup(await this.query(host, family === 4 ? 'A' : 'AAAA'));
    } finally {
      this.observe?.(family === 4 ? 'a' : 'aaaa', (performance.now() - t) / 1000);
    }
  }

  /** PTR names of an address; empty on any failure or for a non-address (as DnsClient.ptr). */
  async ptr(address: string): Promise<string[]> {
    const name = reverseName(address);
    if (name === undefined) return [];
    const r = await this.query(name, 'PTR');
    return r.kind === 'answer' ? r.records : [];
  }

  /** TLSA records at `name` (e.g. `_25._tcp.mx.example.com`, RFC 7672). */
  tlsa(name: string): Promise<DnsResult<TlsaRecord>> {
    return this.query(name, 'TLSA');
  }

  txt(name: string): Promise<DnsResult<string>> {
    return this.query(name, 'TXT');
  }
}
