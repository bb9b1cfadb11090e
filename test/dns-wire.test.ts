/**
 * The DNSSEC-aware wire client (src/dns/wire.ts) against the in-process authoritative test
 * server on loopback, plus a scripted UDP responder for answers no honest server sends: what
 * goes on the wire (RD, EDNS(0) 1232, DO), each result kind and typed record, the AD bit believed
 * only from a trusted server, TC -> TCP, timeouts and SERVFAIL moving to the next server, forged
 * and malformed answers, CNAME chains, positive and negative caching on an injected clock, the
 * cache bound, coalesced concurrent queries, and bad input.
 *
 * Addresses 127.0.87.x, ports 2623-2624 only.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet } from 'dns-packet';
import type { AddressLookup, MxLookup } from '../src/dns/resolver.js';
import { isNullMx } from '../src/dns/select.js';
import { DnsNameError, WireDnsClient, checkQueryName, parseServer, reverseName, type DnsResult, type WireDnsOptions } from '../src/dns/wire.js';
import { within } from './deadline.js';
import { startDnsServer, type DnsServer, type Zone } from './peers/dns-server.js';

const HOST_A = '127.0.87.1';
const HOST_B = '127.0.87.2';
/** Nothing listens here: UDP gets ICMP port unreachable. */
const HOST_DEAD = '127.0.87.9';
const HOST_SCRIPTED = '127.0.87.5';
const PORT = 2623;
const PORT_SCRIPTED = 2624;
const A = `${HOST_A}:${PORT}`;
const B = `${HOST_B}:${PORT}`;
/** Long enough for a loaded machine to answer on loopback; only drop tests wait it out. */
const ANSWER_MS = within(1000);
/** For tests that must wait out a silent server: short, but still scaled for a busy machine. */
const SHORT_MS = within(150);

const tlsaData = (n: number): Buffer => Buffer.alloc(64, n); // SHA2-512 sized
const BIG_TLSA = Array.from({ length: 12 }, (_, i) => ({ usage: 3, selector: 1, matchingType: 2, data: tlsaData(i + 1) }));
const LONG_TXT = `v=long; ${'x'.repeat(600)}`; // three character-strings on the wire

function zoneFor(server: 'a' | 'b'): Zone {
  return {
    // Every kind of record.
    'kinds.test': {
      A: ['192.0.2.1'],
      AAAA: ['2001:DB8::1'],
      MX: [
        { preference: 20, exchange: 'MX2.Kinds.Test' },
        { preference: 10, exchange: 'mx1.kinds.test' },
      ],
      TXT: ['v=spf1 -all', LONG_TXT, 'caf\u00e9'],
      SOA: { mname: 'ns1.kinds.test', rname: 'hostmaster.kinds.test', serial: 2024010101, refresh: 3600, retry: 600, expire: 86400, minimum: 300 },
    },
    '_25._tcp.mx1.kinds.test': { TLSA: [{ usage: 3, selector: 1, matchingType: 1, data: Buffer.from('00ff'.repeat(16), 'hex') }] },
    '_25._tcp.big.test': { TLSA: BIG_TLSA },
    'small-tc.test': { TXT: ['small'], truncate: true },
    'nullmx.test': { MX: [{ preference: 0, exchange: '.' }] },
    '5.87.0.127.in-addr.arpa': { PTR: ['Host5.Example.TEST'] },
    'alias1.test': { CNAME: 'Alias2.test' },
    'alias2.test': { CNAME: 'target.test', ttl: 30 },
    'target.test': { A: ['192.0.2.7', '192.0.2.8'], ttl: 45 },
    // DNSSEC: both servers set AD; only one of them is trusted by the clients below.
    'signed.test': { MX: [{ preference: 10, exchange: 'mx.signed.test' }], SOA: { mname: 'ns.signed.test', rname: 'h.signed.test', minimum: 60 }, ad: true },
    '_25._tcp.mx.signed.test': { TLSA: [{ usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(32, 7) }] },
    'unsigned.test': { MX: [{ preference: 10, exchange: 'mx.unsigned.test' }] },
    // Failover: server a misbehaves, server b answers.
    'drop.test': server === 'a' ? { drop: true } : { A: ['192.0.2.20'] },
    'servfail.test': server === 'a' ? { rcode: 'SERVFAIL' } : { A: ['192.0.2.21'] },
    'refused.test': server === 'a' ? { rcode: 'REFUSED' } : { A: ['192.0.2.22'] },
    'malformed.test': server === 'a' ? { malformed: true } : { A: ['192.0.2.23'] },
    'bogus.test': { rcode: 'SERVFAIL' },
    'silent.test': { drop: true },
    // Forged answers sent before the real one.
    'spoof-id.test': { A: ['192.0.2.30'], spoof: { mode: 'wrong-id', node: { A: ['192.0.2.66'] } } },
    'spoof-q.test': { A: ['192.0.2.31'], spoof: { mode: 'wrong-question', node: { A: ['192.0.2.67'] } } },
    // Caching.
    'ttl.test': { A: ['192.0.2.40'], ttl: 30, ad: true },
    'zero-ttl.test': { A: ['192.0.2.41'], ttl: 0 },
    'neg.test': { A: ['192.0.2.42'], SOA: { mname: 'ns.neg.test', rname: 'h.neg.test', minimum: 120, ttl: 600 } },
    'capped.test': { A: ['192.0.2.43'], SOA: { mname: 'ns.capped.test', rname: 'h.capped.test', minimum: 7200, ttl: 9000 } },
    'nosoa.test': { A: ['192.0.2.44'] },
    'lru-1.test': { A: ['192.0.2.51'] },
    'lru-2.test': { A: ['192.0.2.52'] },
    'lru-3.test': { A: ['192.0.2.53'] },
    'shared.test': { A: ['192.0.2.60'] },
  };
}

function count(server: DnsServer, name: string, transport?: 'udp' | 'tcp'): number {
  return server.received.filter((q) => q.name === name && (transport === undefined || q.transport === transport)).length;
}

/** A clock the tests move by hand. */
function manualClock(start = 1_700_000_000_000): { now: () => number; advance: (seconds: number) => void } {
  let t = start;
  return { now: () => t, advance: (s) => void (t += s * 1000) };
}

function assertKind<K extends DnsResult<unknown>['kind']>(r: DnsResult<unknown>, kind: K): asserts r is Extract<DnsResult<unknown>, { kind: K }> {
  assert.equal(r.kind, kind, `expected ${kind}, got ${JSON.stringify(r)}`);
}

/**
 * A UDP responder that answers from a script, for answers an honest server never sends.
 * `raw` keeps every query as received, bytes and all.
 */
async function startScripted(script: (q: DecodedPacket, qname: string) => (Buffer | Packet)[]): Promise<{ raw: Buffer[]; close: () => Promise<void> }> {
  const sock = dgram.createSocket('udp4');
  const raw: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(PORT_SCRIPTED, HOST_SCRIPTED, () => resolve());
  });
  sock.on('message', (msg, rinfo) => {
    raw.push(msg);
    let q: DecodedPacket;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const qname = (q.questions?.[0]?.name ?? '').toLowerCase();
    for (const r of script(q, qname)) sock.send(Buffer.isBuffer(r) ? r : dnsPacket.encode(r), rinfo.port, rinfo.address);
  });
  return { raw, close: () => new Promise((resolve) => sock.close(() => resolve())) };
}

/** A response to `q` with the given parts. */
function reply(q: DecodedPacket, parts: { rcode?: number; answers?: Answer[]; authorities?: Answer[]; additionals?: Answer[]; flags?: number }): Packet {
  return {
    type: 'response',
    id: q.id ?? 0,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (parts.flags ?? 0) | (parts.rcode ?? 0),
    questions: q.questions ?? [],
    answers: parts.answers ?? [],
    authorities: parts.authorities ?? [],
    additionals: parts.additionals ?? [],
  };
}

describe('WireDnsClient', () => {
  let a: DnsServer;
  let b: DnsServer;
  const client = (o: WireDnsOptions = {}): WireDnsClient => new WireDnsClient({ servers: [A], trusted: [A], timeoutMs: ANSWER_MS, tries: 1, ...o });

  before(async () => {
    a = await startDnsServer({ host: HOST_A, port: PORT, zone: zoneFor('a') });
    b = await startDnsServer({ host: HOST_B, port: PORT, zone: zoneFor('b') });
  });
  after(async () => {
    await a?.close();
    await b?.close();
  });

  describe('the query on the wire', () => {
    it('sets RD and carries an EDNS(0) OPT: version 0, payload 1232, DO bit (checked in the raw bytes)', async () => {
      const s = await startScripted((q) => [reply(q, { answers: [{ name: 'wire.test', type: 'A', class: 'IN', ttl: 60, data: '192.0.2.9' }] })]);
      try {
        const r = await client({ servers: [`${HOST_SCRIPTED}:${PORT_SCRIPTED}`] }).query('wire.test', 'A');
        assertKind(r, 'answer');
        assert.equal(s.raw.length, 1);
        const msg = s.raw[0]!;
        assert.equal(msg[2]! & 0x81, 0x01, 'QR clear, RD set'); // RD is the low bit of byte 2
        assert.equal(msg.readUInt16BE(4), 1, 'one question');
        assert.equal(msg.readUInt16BE(10), 1, 'one additional record');
        // The OPT record closes the message: root name, TYPE 41, CLASS = payload size,
        // TTL = extended rcode 0, version 0, flags with DO (0x8000), RDLENGTH 0.
        assert.deepEqual([...msg.subarray(-11)], [0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00]);
      } finally {
        await s.close();
      }
    });

    it('is seen by the test server as RD + EDNS(0) + DO over UDP', async () => {
      await client().query('kinds.test', 'A');
      const q = a.received.filter((r) => r.name === 'kinds.test' && r.type === 'A').at(-1);
      assert.ok(q);
      assert.equal(q.transport, 'udp');
      assert.equal(q.rd, true);
      assert.equal(q.class, 'IN');
      assert.deepEqual(q.edns, { udpPayloadSize: 1232, version: 0, flags: 0x8000, do: true });
    });
  });

  describe('results and typed records', () => {
    it('answers A, AAAA, MX, TXT, TLSA, SOA and CNAME with typed records', async () => {
      const c = client();
      const a4 = await c.query('Kinds.TEST.', 'A');
      assert.deepEqual(a4, { kind: 'answer', records: ['192.0.2.1'], authenticated: false, ttl: 60 });

      const a6 = await c.query('kinds.test', 'AAAA');
      assertKind(a6, 'answer');
      assert.deepEqual(a6.records, ['2001:db8::1']);

      const mx = await c.query('kinds.test', 'MX');
      assertKind(mx, 'answer');
      assert.deepEqual(mx.records, [
        { preference: 20, exchange: 'mx2.kinds.test' },
        { preference: 10, exchange: 'mx1.kinds.test' },
      ]);

      const txt = await c.query('kinds.test', 'TXT');
      assertKind(txt, 'answer');
      assert.deepEqual(txt.records, ['v=spf1 -all', LONG_TXT, 'caf\u00e9']);

      const tlsa = await c.tlsa('_25._tcp.mx1.kinds.test');
      assertKind(tlsa, 'answer');
      assert.equal(tlsa.records.length, 1);
      assert.deepEqual({ ...tlsa.records[0]!, data: tlsa.records[0]!.data.toString('hex') }, { usage: 3, selector: 1, matchingType: 1, data: '00ff'.repeat(16) });

      const soa = await c.query('kinds.test', 'SOA');
      assertKind(soa, 'answer');
      assert.deepEqual(soa.records, [{ mname: 'ns1.kinds.test', rname: 'hostmaster.kinds.test', serial: 2024010101, refresh: 3600, retry: 600, expire: 86400, minimum: 300 }]);

      const cname = await c.query('alias1.test', 'CNAME');
      assertKind(cname, 'answer');
      assert.deepEqual(cname.records, ['alias2.test'], 'a CNAME query returns the alias, not its target');
    });

    it('returns PTR names lower-case without the dot, through ptr()', async () => {
      assert.deepEqual(await client().ptr('127.0.87.5'), ['host5.example.test']);
      assert.deepEqual(await client().ptr('127.0.87.6'), [], 'NXDOMAIN is an empty list');
      assert.deepEqual(await client().ptr('not an address'), []);
    });

    it('tells NODATA from NXDOMAIN, with the negative TTL from the SOA', async () => {
      const c = client();
      assert.deepEqual(await c.query('kinds.test', 'TLSA'), { kind: 'nodata', authenticated: false, ttl: 60 });
      assert.deepEqual(await c.query('nowhere.kinds.test', 'A'), { kind: 'nxdomain', authenticated: false, ttl: 60 });
      // No SOA anywhere above: nothing to cache it by.
      assert.deepEqual(await c.query('nowhere.test', 'A'), { kind: 'nxdomain', authenticated: false, ttl: 0 });
    });

    it('reports SERVFAIL (what a validating resolver says of bogus data) as temporary, never as no records', async () => {
      const r = await client().query('bogus.test', 'TLSA');
      assertKind(r, 'temporary');
      assert.match(r.reason, /SERVFAIL/);
      assert.match(r.reason, /127\.0\.87\.1:2623/);
    });

    it('follows a CNAME chain inside the answer; the TTL is the lowest along it', async () => {
      const r = await client().query('ALIAS1.test', 'A');
      assertKind(r, 'answer');
      assert.deepEqual([...r.records].sort(), ['192.0.2.7', '192.0.2.8']);
      assert.equal(r.ttl, 30, 'alias2 has TTL 30, target 45, alias1 60');
    });

    it('returns a Null MX as exchange "" (mx() and query())', async () => {
      const c = client();
      const q = await c.query('nullmx.test', 'MX');
      assertKind(q, 'answer');
      assert.deepEqual(q.records, [{ preference: 0, exchange: '' }]);
      const m = await c.mx('nullmx.test');
      assert.equal(m.kind, 'mx');
      assert.ok(m.kind === 'mx' && isNullMx(m.records));
    });
  });

  describe('DNSSEC: the AD bit', () => {
    it('is believed from a trusted server and ignored from an untrusted one with the same answer', async () => {
      const trusted = await new WireDnsClient({ servers: [A], trusted: [A], timeoutMs: ANSWER_MS }).query('signed.test', 'MX');
      const untrusted = await new WireDnsClient({ servers: [B], trusted: [A], timeoutMs: ANSWER_MS }).query('signed.test', 'MX');
      assertKind(trusted, 'answer');
      assertKind(untrusted, 'answer');
      assert.deepEqual(untrusted.records, trusted.records);
      assert.equal(trusted.authenticated, true);
      assert.equal(untrusted.authenticated, false);
    });

    it('is false from a trusted server that did not set it', async () => {
      const r = await client().query('unsigned.test', 'MX');
      assertKind(r, 'answer');
      assert.equal(r.authenticated, false);
    });

    it('covers negative answers and the convenience methods', async () => {
      const c = client();
      assert.deepEqual(await c.query('none.signed.test', 'A'), { kind: 'nxdomain', authenticated: true, ttl: 60 });
      assert.deepEqual(await c.mx('signed.test'), { kind: 'mx', records: [{ exchange: 'mx.signed.test', priority: 10 }], authenticated: true });
      const t = await c.tlsa('_25._tcp.mx.signed.test');
      assertKind(t, 'answer');
      assert.equal(t.authenticated, true);
      assert.deepEqual(await c.addresses('mx.signed.test', 4), { kind: 'none', authenticated: true });
    });

    it('takes trust as a predicate, and by default trusts loopback servers only', () => {
      const p = new WireDnsClient({ servers: [A, B], trusted: (s) => s.host === HOST_B });
      assert.deepEqual(p.servers, [
        { host: HOST_A, port: PORT, trusted: false },
        { host: HOST_B, port: PORT, trusted: true },
      ]);
      const d = new WireDnsClient({ servers: ['192.0.2.53', '[::1]:5353', '127.0.0.53'] });
      assert.deepEqual(
        d.servers.map((s) => s.trusted),
        [false, true, true],
      );
    });
  });

  describe('transport and failover', () => {
    it('repeats a truncated UDP answer over TCP (a large TLSA RRset)', async () => {
      const before = { udp: count(a, '_25._tcp.big.test', 'udp'), tcp: count(a, '_25._tcp.big.test', 'tcp') };
      const r = await client().tlsa('_25._tcp.big.test');
      assertKind(r, 'answer');
      assert.equal(r.records.length, BIG_TLSA.length, 'the whole RRset, not what fitted in 512 bytes');
      assert.deepEqual(
        r.records.map((t) => t.data),
        BIG_TLSA.map((t) => t.data),
      );
      assert.equal(count(a, '_25._tcp.big.test', 'udp') - before.udp, 1);
      assert.equal(count(a, '_25._tcp.big.test', 'tcp') - before.tcp, 1);
    });

    it('goes to TCP on TC even when the UDP answer would have fitted', async () => {
      const r = await client().txt('small-tc.test');
      assert.deepEqual(r, { kind: 'answer', records: ['small'], authenticated: false, ttl: 60 });
      assert.equal(count(a, 'small-tc.test', 'tcp'), 1);
    });

    it('moves to the next server after a timeout', async () => {
      const r = await client({ servers: [A, B], timeoutMs: SHORT_MS }).query('drop.test', 'A');
      assert.deepEqual(r, { kind: 'answer', records: ['192.0.2.20'], authenticated: false, ttl: 60 });
      assert.equal(count(a, 'drop.test'), 1);
      assert.equal(count(b, 'drop.test'), 1);
    });

    it('moves to the next server after a network error (nothing listening)', async () => {
      const r = await client({ servers: [`${HOST_DEAD}:${PORT}`, B], timeoutMs: ANSWER_MS }).query('refused.test', 'A');
      assert.deepEqual(r, { kind: 'answer', records: ['192.0.2.22'], authenticated: false, ttl: 60 });
    });

    it('moves to the next server after SERVFAIL, REFUSED or a malformed answer', async () => {
      const c = client({ servers: [A, B] });
      for (const [name, address] of [
        ['servfail.test', '192.0.2.21'],
        ['refused.test', '192.0.2.22'],
        ['malformed.test', '192.0.2.23'],
      ] as const) {
        const before = count(a, name);
        const r = await c.query(name, 'A');
        assert.deepEqual(r, { kind: 'answer', records: [address], authenticated: false, ttl: 60 }, name);
        assert.equal(count(a, name) - before, 1, `${name}: the first server was asked`);
      }
    });

    it('is temporary when every server fails, after `tries` rounds over all of them', async () => {
      const before = { a: count(a, 'silent.test'), b: count(b, 'silent.test') };
      const r = await client({ servers: [A, B], timeoutMs: SHORT_MS, tries: 2 }).query('silent.test', 'A');
      assertKind(r, 'temporary');
      assert.match(r.reason, /no answer within/);
      assert.equal(count(a, 'silent.test') - before.a, 2);
      assert.equal(count(b, 'silent.test') - before.b, 2);

      const m = await client({ servers: [A] }).query('malformed.test', 'A');
      assertKind(m, 'temporary');
      assert.match(m.reason, /127\.0\.87\.1:2623: malformed answer \(Cannot decode name/);
    });

    it('ignores a forged answer with the wrong ID or the wrong question and takes the real one', async () => {
      assert.deepEqual(await client().query('spoof-id.test', 'A'), { kind: 'answer', records: ['192.0.2.30'], authenticated: false, ttl: 60 });
      assert.deepEqual(await client().query('spoof-q.test', 'A'), { kind: 'answer', records: ['192.0.2.31'], authenticated: false, ttl: 60 });
    });
  });

  describe('answers no honest server sends (scripted)', () => {
    let s: Awaited<ReturnType<typeof startScripted>>;
    const scripted = (): WireDnsClient => new WireDnsClient({ servers: [`${HOST_SCRIPTED}:${PORT_SCRIPTED}`], trusted: [`${HOST_SCRIPTED}:${PORT_SCRIPTED}`], timeoutMs: SHORT_MS, tries: 1 });
    const rr = (name: string, type: 'A' | 'CNAME' | 'NS', data: string, ttl = 60): Answer => ({ name, type, class: 'IN', ttl, data });
    before(async () => {
      s = await startScripted((q, qname) => {
        switch (qname) {
          case 'loop.test':
            return [reply(q, { answers: [rr('loop.test', 'CNAME', 'loop2.test'), rr('loop2.test', 'CNAME', 'loop.test')] })];
          case 'referral.test':
            return [reply(q, { authorities: [rr('referral.test', 'NS', 'ns.elsewhere.test')] })];
          case 'badvers.test':
            return [reply(q, { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 1, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] })];
          case 'foreign-soa.test':
            return [reply(q, { rcode: 3, authorities: [{ name: 'other.test', type: 'SOA', class: 'IN', ttl: 600, data: { mname: 'ns.other.test', rname: 'h.other.test', minimum: 600 } }] })];
          case 'stray.test':
            // An A record for a name the question did not ask about, then nothing for the name.
            return [reply(q, { answers: [rr('victim.test', 'A', '192.0.2.99')] })];
          case 'echo.test': {
            // First the query itself bounced back (QR clear, same ID), then the answer.
            const echo = dnsPacket.encode({ ...q, type: 'query' });
            return [echo, reply(q, { answers: [rr('echo.test', 'A', '192.0.2.77')] })];
          }
          case 'rdlength.test': {
            // An A record whose RDLENGTH says 5: dns-packet alone would read 4 bytes and accept it.
            const good = Buffer.from(dnsPacket.encode(reply(q, { answers: [rr('rdlength.test', 'A', '192.0.2.88')] })));
            good.writeUInt16BE(5, good.length - 6);
            return [Buffer.concat([good, Buffer.from([0])])];
          }
          case 'rdlength-mx.test': {
            // An MX record whose RDLENGTH claims one octet more than its data: the framing holds,
            // but dns-packet stops after the name, so its reading and the length disagree.
            const good = Buffer.from(dnsPacket.encode(reply(q, { answers: [{ name: 'rdlength-mx.test', type: 'MX', class: 'IN', ttl: 60, data: { preference: 10, exchange: 'mx.test' } }] })));
            const rdlengthAt = good.length - (2 + 2 + 'mx.test'.length + 2);
            good.writeUInt16BE(good.readUInt16BE(rdlengthAt) + 1, rdlengthAt);
            return [Buffer.concat([good, Buffer.from([0])])];
          }
          default:
            return [reply(q, { rcode: 3 })];
        }
      });
    });
    after(async () => {
      await s?.close();
    });

    it('fails a CNAME loop, a referral and an extended rcode (BADVERS) as temporary', async () => {
      const loop = await scripted().query('loop.test', 'A');
      assertKind(loop, 'temporary');
      assert.match(loop.reason, /CNAME loop/);
      const referral = await scripted().query('referral.test', 'A');
      assertKind(referral, 'temporary');
      assert.match(referral.reason, /referral/);
      const badvers = await scripted().query('badvers.test', 'A');
      assertKind(badvers, 'temporary');
      assert.match(badvers.reason, /BADVERS/);
    });

    it('takes a negative TTL only from the SOA of an enclosing zone', async () => {
      assert.deepEqual(await scripted().query('foreign-soa.test', 'A'), { kind: 'nxdomain', authenticated: false, ttl: 0 });
    });

    it('uses no record whose owner is off the chain', async () => {
      assert.deepEqual(await scripted().query('stray.test', 'A'), { kind: 'nodata', authenticated: false, ttl: 0 });
    });

    it('ignores a packet that is not a response', async () => {
      assert.deepEqual(await scripted().query('echo.test', 'A'), { kind: 'answer', records: ['192.0.2.77'], authenticated: false, ttl: 60 });
    });

    it('fails a record whose data disagrees with its length', async () => {
      const r = await scripted().query('rdlength.test', 'A');
      assertKind(r, 'temporary');
      assert.match(r.reason, /malformed answer \(A record of 5 octets\)/);
      const mx = await scripted().query('rdlength-mx.test', 'MX');
      assertKind(mx, 'temporary');
      assert.match(mx.reason, /malformed answer \(record data disagrees with its length\)/);
    });
  });

  describe('cache', () => {
    it('keeps a positive answer for its TTL, with the TTL left and the AD flag', async () => {
      const clock = manualClock();
      const c = client({ now: clock.now });
      assert.deepEqual(await c.query('ttl.test', 'A'), { kind: 'answer', records: ['192.0.2.40'], authenticated: true, ttl: 30 });
      assert.equal(count(a, 'ttl.test'), 1);
      clock.advance(20);
      assert.deepEqual(await c.query('TTL.test.', 'A'), { kind: 'answer', records: ['192.0.2.40'], authenticated: true, ttl: 10 });
      clock.advance(9);
      assert.deepEqual(await c.query('ttl.test', 'A'), { kind: 'answer', records: ['192.0.2.40'], authenticated: true, ttl: 1 });
      assert.equal(count(a, 'ttl.test'), 1, 'still cached');
      clock.advance(1);
      assert.deepEqual(await c.query('ttl.test', 'A'), { kind: 'answer', records: ['192.0.2.40'], authenticated: true, ttl: 30 });
      assert.equal(count(a, 'ttl.test'), 2, 'expired: asked again');
    });

    it('does not cache a TTL of 0 or a temporary failure', async () => {
      const c = client();
      await c.query('zero-ttl.test', 'A');
      await c.query('zero-ttl.test', 'A');
      assert.equal(count(a, 'zero-ttl.test'), 2);
      const before = count(a, 'bogus.test');
      await c.query('bogus.test', 'A');
      await c.query('bogus.test', 'A');
      assert.equal(count(a, 'bogus.test') - before, 2);
    });

    it('keeps NXDOMAIN and NODATA for min(SOA TTL, SOA minimum), at most an hour; never without a SOA', async () => {
      const clock = manualClock();
      const c = client({ now: clock.now });
      assert.deepEqual(await c.query('gone.neg.test', 'A'), { kind: 'nxdomain', authenticated: false, ttl: 120 });
      assert.deepEqual(await c.query('neg.test', 'MX'), { kind: 'nodata', authenticated: false, ttl: 120 });
      clock.advance(119);
      assert.deepEqual(await c.query('gone.neg.test', 'A'), { kind: 'nxdomain', authenticated: false, ttl: 1 });
      assert.deepEqual(await c.query('neg.test', 'MX'), { kind: 'nodata', authenticated: false, ttl: 1 });
      assert.equal(count(a, 'gone.neg.test'), 1);
      assert.equal(count(a, 'neg.test'), 1);
      clock.advance(1);
      await c.query('gone.neg.test', 'A');
      assert.equal(count(a, 'gone.neg.test'), 2);

      assert.deepEqual(await c.query('capped.test', 'MX'), { kind: 'nodata', authenticated: false, ttl: 3600 });

      await c.query('nosoa.test', 'MX');
      await c.query('nosoa.test', 'MX');
      assert.equal(count(a, 'nosoa.test'), 2);
    });

    it('holds at most cacheEntries, dropping the least recently used', async () => {
      const c = client({ cacheEntries: 2 });
      await c.query('lru-1.test', 'A');
      await c.query('lru-2.test', 'A');
      await c.query('lru-1.test', 'A'); // a hit, and now the most recently used
      assert.equal(count(a, 'lru-1.test'), 1);
      await c.query('lru-3.test', 'A'); // evicts lru-2
      await c.query('lru-1.test', 'A');
      assert.equal(count(a, 'lru-1.test'), 1, 'lru-1 was kept');
      await c.query('lru-2.test', 'A');
      assert.equal(count(a, 'lru-2.test'), 2, 'lru-2 was dropped');
    });

    it('shares one request among concurrent identical queries (names compared case-insensitively)', async () => {
      const c = client({ cacheEntries: 0 });
      const results = await Promise.all([c.query('shared.test', 'A'), c.query('SHARED.test', 'A'), c.query('shared.test.', 'A'), c.addresses('shared.test', 4)]);
      assert.equal(count(a, 'shared.test'), 1);
      for (const r of results.slice(0, 3)) assert.deepEqual(r, { kind: 'answer', records: ['192.0.2.60'], authenticated: false, ttl: 60 });
      assert.deepEqual(results[3], { kind: 'ok', addresses: ['192.0.2.60'], authenticated: false });
      // Each caller has its own copy.
      assert.notEqual(results[0], results[1]);
      // Done: the next query goes out again (no cache here).
      await c.query('shared.test', 'A');
      assert.equal(count(a, 'shared.test'), 2);
    });
  });

  describe('DnsClient shapes', () => {
    it('mx() and addresses() return what resolver.ts returns, plus authenticated', async () => {
      const c = client();
      const mx: MxLookup = await c.mx('kinds.test');
      assert.deepEqual(mx, {
        kind: 'mx',
        records: [
          { exchange: 'mx2.kinds.test', priority: 20 },
          { exchange: 'mx1.kinds.test', priority: 10 },
        ],
        authenticated: false,
      });
      assert.deepEqual(await c.mx('mx1.kinds.test'), { kind: 'nxdomain', authenticated: false });
      assert.deepEqual(await c.mx('target.test'), { kind: 'no-mx', authenticated: false });
      const t: MxLookup = await c.mx('bogus.test');
      assert.equal(t.kind, 'temporary');

      const four: AddressLookup = await c.addresses('kinds.test', 4);
      assert.deepEqual(four, { kind: 'ok', addresses: ['192.0.2.1'], authenticated: false });
      assert.deepEqual(await c.addresses('target.test', 6), { kind: 'none', authenticated: false });
      assert.deepEqual(await c.addresses('192.0.2.5', 4), { kind: 'ok', addresses: ['192.0.2.5'], authenticated: false });
      assert.deepEqual(await c.addresses('192.0.2.5', 6), { kind: 'none', authenticated: false });
      assert.equal((await c.addresses('bogus.test', 4)).kind, 'temporary');
    });

    it('tells observe() how long mx() and addresses() took', async () => {
      const seen: string[] = [];
      const c = client({ observe: (type, seconds) => void (seconds >= 0 && seen.push(type)) });
      await c.mx('kinds.test');
      await c.addresses('kinds.test', 6);
      assert.deepEqual(seen, ['mx', 'aaaa']);
    });
  });

  describe('input', () => {
    it('rejects bad names with an error naming the input, before anything is sent', async () => {
      const c = client();
      const long = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(59)}.test`;
      assert.equal(long.length, 256);
      const cases: [string, RegExp][] = [
        [long, /is 256 octets long \(at most 253\)/],
        [`${'x'.repeat(64)}.test`, /label 1 is 64 octets long \(at most 63\)/],
        ['a..test', /label 2 is empty/],
        ['.test', /label 1 is empty/],
        ['', /empty/],
        ['b\u00fccher.test', /printable ASCII/],
        ['with space.test', /printable ASCII/],
      ];
      const before = a.received.length;
      for (const [name, problem] of cases) {
        await assert.rejects(c.query(name, 'A'), (e: unknown) => {
          assert.ok(e instanceof DnsNameError, `${name}: ${String(e)}`);
          assert.ok(e.message.includes(JSON.stringify(name)), e.message);
          assert.match(e.message, problem);
          return true;
        });
      }
      await assert.rejects(c.mx('a..test'), DnsNameError);
      assert.equal(a.received.length, before, 'nothing was sent');
      // The limits themselves are fine.
      assert.equal(checkQueryName(`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`), `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`);
      assert.equal(checkQueryName('_25._tcp.MX.Example.'), '_25._tcp.mx.example');
      await assert.rejects(c.query('kinds.test', 'NS' as 'A'), /invalid DNS query type "NS"/);
    });

    it('parses servers and names the bad ones', () => {
      assert.deepEqual(parseServer('192.0.2.1'), { host: '192.0.2.1', port: 53 });
      assert.deepEqual(parseServer(' 192.0.2.1:5353 '), { host: '192.0.2.1', port: 5353 });
      assert.deepEqual(parseServer('[2001:DB8::1]:53'), { host: '2001:db8::1', port: 53 });
      assert.deepEqual(parseServer('[::1]'), { host: '::1', port: 53 });
      assert.deepEqual(parseServer('2001:db8:0:0::53'), { host: '2001:db8::53', port: 53 });
      for (const bad of ['dns.example:53', '192.0.2.1:0', '192.0.2.1:65536', '[192.0.2.1]:53', '192.0.2.1:', '[::1]:x', '', '300.1.1.1']) {
        assert.throws(
          () => parseServer(bad),
          (e: unknown) => e instanceof Error && e.message.includes(`DNS server ${JSON.stringify(bad)}`),
          bad,
        );
      }
      assert.throws(() => new WireDnsClient({ servers: ['nope'] }), /DNS server "nope"/);
      assert.throws(() => new WireDnsClient({ servers: [A], timeoutMs: 0 }), /DNS timeout/);
      assert.throws(() => new WireDnsClient({ servers: [A], tries: 1.5 }), /DNS tries/);
    });

    it('reads nameserver lines (and trust-ad) from resolv.conf, else uses 127.0.0.1:53', () => {
      const dir = mkdtempSync(join(tmpdir(), 'postern-dns-wire-'));
      try {
        const conf = join(dir, 'resolv.conf');
        writeFileSync(conf, '# generated\nsearch example.test\nnameserver 192.0.2.53\n; nameserver 192.0.2.99\nnameserver 2001:db8::53 # v6\nnameserver bogus\nnameserver 127.0.0.53\n');
        assert.deepEqual(new WireDnsClient({ resolvConf: conf }).servers, [
          { host: '192.0.2.53', port: 53, trusted: false },
          { host: '2001:db8::53', port: 53, trusted: false },
          { host: '127.0.0.53', port: 53, trusted: true },
        ]);
        writeFileSync(conf, 'nameserver 192.0.2.53\noptions edns0 trust-ad\n');
        assert.deepEqual(new WireDnsClient({ resolvConf: conf }).servers, [{ host: '192.0.2.53', port: 53, trusted: true }]);
        writeFileSync(conf, 'search example.test\n');
        assert.deepEqual(new WireDnsClient({ resolvConf: conf }).servers, [{ host: '127.0.0.1', port: 53, trusted: true }]);
        assert.deepEqual(new WireDnsClient({ resolvConf: join(dir, 'missing') }).servers, [{ host: '127.0.0.1', port: 53, trusted: true }]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('builds reverse names for IPv4 and IPv6', () => {
      assert.equal(reverseName('192.0.2.1'), '1.2.0.192.in-addr.arpa');
      assert.equal(reverseName('2001:db8::1'), `1.0.0.0.${'0.0.0.0.'.repeat(5)}8.b.d.0.1.0.0.2.ip6.arpa`);
      assert.equal(reverseName('::ffff:192.0.2.1'), `1.0.2.0.0.0.0.c.f.f.f.f.${'0.0.0.0.'.repeat(5)}ip6.arpa`);
      assert.equal(reverseName('x'), undefined);
    });
  });
});

describe("delivery's DNS client: whose AD bit is believed", () => {
  it('a --dnssec-resolver always; otherwise a resolver on loopback only', async () => {
    const { deliveryDns } = await import('../src/dns/client.js');
    const trust = (o: Parameters<typeof deliveryDns>[0]) => deliveryDns(o).servers.map((s) => `${s.host}:${s.port} ${s.trusted}`);
    assert.deepEqual(trust({ dnsServers: ['127.0.0.53:5353', '192.0.2.53:53'] }), ['127.0.0.53:5353 true', '192.0.2.53:53 false']);
    assert.deepEqual(trust({ dnsServers: ['127.0.0.53:5353'], dnssecResolvers: ['192.0.2.53:53'] }), ['192.0.2.53:53 true'], 'the declared resolver is the only one asked');
  });
});
