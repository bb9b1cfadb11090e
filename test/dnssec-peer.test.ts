/**
 * The DNSSEC test peer (test/peers/dnssec.ts): a real validating unbound over zones signed at
 * start. Secure zones answer with AD (TLSA, MX, A, and NXDOMAIN with its NSEC proof); a bogus
 * zone (DS matching no key) is SERVFAIL, its data there with CD; an insecure delegation answers
 * without AD; a tampered RRSIG makes just that RRset bogus; names outside the parent are
 * REFUSED; big answers come over TCP; update() re-signs and the next query sees it; the peer
 * starts within 3 s and close() leaves no process, no socket and no directory.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { within } from './deadline.js';
import { dnssecAvailable, startDnssec, type DnssecPeer, type DnssecQueryResult, type SignedZoneSpec } from './peers/dnssec.js';

const inCI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';
// Addresses 127.0.88.x and ports 2626-2628 are this file's own.
const MAIN = { host: '127.0.88.1', port: 2626 };
const OTHER = { host: '127.0.88.2', port: 2627 };

const hex = (s: string) => createHash('sha256').update(s).digest('hex');
const TLSA1 = hex('mx1 certificate');

const ZONES: SignedZoneSpec[] = [
  {
    name: 'secure.dane.test',
    kind: 'secure',
    records: ['@ MX 10 mx1', 'mx1 A 127.0.88.10', `_25._tcp.mx1 TLSA 3 1 1 ${TLSA1}`, '_mta-sts TXT "v=STSv1; id=1"', 'mta-sts A 127.0.88.10'],
  },
  { name: 'bogus.dane.test', kind: 'bogus', records: ['@ MX 10 mx1', 'mx1 A 127.0.88.11', `_25._tcp.mx1 TLSA 3 1 1 ${TLSA1}`] },
  { name: 'insecure.dane.test', kind: 'insecure', records: ['@ MX 10 mx1', 'mx1 A 127.0.88.12', `_25._tcp.mx1 TLSA 3 1 1 ${TLSA1}`] },
  {
    // A secure MX whose TLSA signature is broken (RFC 7672 §2.2: such a lookup must not be trusted).
    name: 'badtlsa.dane.test',
    kind: 'secure',
    records: ['@ MX 10 mx1', 'mx1 A 127.0.88.13', `_25._tcp.mx1 TLSA 3 1 1 ${TLSA1}`],
    tamper: ['_25._tcp.mx1 TLSA'],
  },
  {
    // 30 TLSA records: more than a 1232-byte UDP answer holds.
    name: 'big.dane.test',
    kind: 'secure',
    records: ['@ MX 10 mx1', 'mx1 A 127.0.88.14', ...Array.from({ length: 30 }, (_, i) => `_25._tcp.mx1 TLSA 3 1 1 ${hex(`cert ${i}`)}`)],
  },
];

function dig(server: { host: string; port: number }, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('/usr/bin/dig', ['-p', String(server.port), `@${server.host}`, '+dnssec', '+tries=1', '+time=2', ...args], (err, out) =>
      err ? reject(err) : resolve(out),
    ),
  );
}

/** The RDATA of the answers of one type (dns-packet's decoded form). */
const rdata = (r: DnssecQueryResult, type: string) => r.answers.filter((a) => a.type === type).map((a) => (a as { data: unknown }).data);
const txt = (r: DnssecQueryResult) => rdata(r, 'TXT').map((d) => Buffer.concat(d as Buffer[]).toString());

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('DNSSEC peer (unbound over signed zones)', { skip: !dnssecAvailable() && !inCI ? 'unbound or bind9-utils (dnssec-signzone) not installed' : false, timeout: within(60_000) }, () => {
  let dns: DnssecPeer;
  let startMs = 0;

  before(async () => {
    const t0 = performance.now();
    dns = await startDnssec({ ...MAIN, zones: ZONES });
    startMs = performance.now() - t0;
  });
  after(async () => {
    await dns?.close();
  });

  test('starts within 3 s, with the parent key as trust anchor', () => {
    assert.ok(startMs < within(1_000), `start took ${Math.round(startMs)} ms`);
    assert.equal(dns.address, '127.0.88.1:2626');
    assert.match(dns.trustAnchor, /^test\.\s+IN\s+DNSKEY\s+257 3 13 /);
    assert.match(dns.trustAnchorDs, /^test\.\s+IN\s+DS\s+\d+ 13 2 [0-9A-F]{64}$/);
  });

  test('secure zone: TLSA, MX, A, TXT answered with AD', async () => {
    const tlsa = await dns.query('_25._tcp.mx1.secure.dane.test', 'TLSA');
    assert.equal(tlsa.rcode, 'NOERROR');
    assert.equal(tlsa.ad, true);
    const rr = tlsa.answers.find((a) => a.type === 'TLSA');
    assert.ok(rr && rr.type === 'TLSA');
    assert.deepEqual({ usage: rr.data.usage, selector: rr.data.selector, matchingType: rr.data.matchingType }, { usage: 3, selector: 1, matchingType: 1 });
    assert.equal(Buffer.from(rr.data.certificate).toString('hex'), TLSA1);
    assert.ok(tlsa.answers.some((a) => a.type === 'RRSIG'), 'RRSIG returned with DO');

    const mx = await dns.query('secure.dane.test', 'MX');
    assert.equal(mx.ad, true);
    assert.deepEqual(rdata(mx, 'MX'), [{ preference: 10, exchange: 'mx1.secure.dane.test' }]);
    const a = await dns.query('mx1.secure.dane.test', 'A');
    assert.equal(a.ad, true);
    assert.deepEqual(rdata(a, 'A'), ['127.0.88.10']);
    const sts = await dns.query('_mta-sts.secure.dane.test', 'TXT');
    assert.equal(sts.ad, true);
    assert.deepEqual(txt(sts), ['v=STSv1; id=1']);
  });

  test('secure zone: NXDOMAIN and NODATA carry AD (NSEC proofs validated)', async () => {
    const nx = await dns.query('_25._tcp.nope.secure.dane.test', 'TLSA');
    assert.equal(nx.rcode, 'NXDOMAIN');
    assert.equal(nx.ad, true);
    assert.ok(nx.authorities.some((x) => x.type === 'NSEC'));
    const nodata = await dns.query('mx1.secure.dane.test', 'TLSA');
    assert.equal(nodata.rcode, 'NOERROR');
    assert.equal(nodata.answers.length, 0);
    assert.equal(nodata.ad, true);
  });

  test('bogus zone: SERVFAIL, the data there with CD, the reason in the log', async () => {
    for (const [name, type] of [['_25._tcp.mx1.bogus.dane.test', 'TLSA'], ['bogus.dane.test', 'MX'], ['mx1.bogus.dane.test', 'A']] as const) {
      const r = await dns.query(name, type);
      assert.equal(r.rcode, 'SERVFAIL', `${name} ${type}`);
      assert.equal(r.ad, false);
    }
    const cd = await dns.query('bogus.dane.test', 'MX', { cd: true });
    assert.equal(cd.rcode, 'NOERROR');
    assert.equal(cd.ad, false);
    assert.deepEqual(rdata(cd, 'MX'), [{ preference: 10, exchange: 'mx1.bogus.dane.test' }]);
    assert.match(dns.log(), /validation failure <bogus\.dane\.test\. .*DS hash mismatches key/);
  });

  test('insecure zone: NOERROR without AD, NXDOMAIN without AD', async () => {
    const mx = await dns.query('insecure.dane.test', 'MX');
    assert.equal(mx.rcode, 'NOERROR');
    assert.equal(mx.ad, false);
    assert.deepEqual(rdata(mx, 'MX'), [{ preference: 10, exchange: 'mx1.insecure.dane.test' }]);
    const tlsa = await dns.query('_25._tcp.mx1.insecure.dane.test', 'TLSA');
    assert.equal(tlsa.rcode, 'NOERROR');
    assert.equal(tlsa.ad, false);
    assert.equal(tlsa.answers.filter((a) => a.type === 'TLSA').length, 1);
    assert.ok(!tlsa.answers.some((a) => a.type === 'RRSIG'));
    const nx = await dns.query('nope.insecure.dane.test', 'A');
    assert.equal(nx.rcode, 'NXDOMAIN');
    assert.equal(nx.ad, false);
  });

  test('tampered RRSIG: that TLSA is bogus, the rest of the zone secure', async () => {
    const tlsa = await dns.query('_25._tcp.mx1.badtlsa.dane.test', 'TLSA');
    assert.equal(tlsa.rcode, 'SERVFAIL');
    assert.equal((await dns.query('_25._tcp.mx1.badtlsa.dane.test', 'TLSA', { cd: true })).answers.filter((a) => a.type === 'TLSA').length, 1);
    const mx = await dns.query('badtlsa.dane.test', 'MX');
    assert.equal(mx.rcode, 'NOERROR');
    assert.equal(mx.ad, true);
    const a = await dns.query('mx1.badtlsa.dane.test', 'A');
    assert.equal(a.ad, true);
  });

  test('names outside the parent are REFUSED, unbound sends no query anywhere', async () => {
    const r = await dns.query('example.com', 'A');
    assert.equal(r.rcode, 'REFUSED');
    // The parent itself validates (it is the trust anchor); a missing child is NXDOMAIN with AD.
    const nx = await dns.query('nothing.test', 'A');
    assert.equal(nx.rcode, 'NXDOMAIN');
    assert.equal(nx.ad, true);
  });

  test('a large TLSA RRset is truncated over UDP and arrives over TCP, validated', async () => {
    const r = await dns.query('_25._tcp.mx1.big.dane.test', 'TLSA');
    assert.equal(r.tcp, true);
    assert.equal(r.rcode, 'NOERROR');
    assert.equal(r.ad, true);
    assert.equal(r.answers.filter((a) => a.type === 'TLSA').length, 30);
  });

  test('dig agrees: ad for secure, SERVFAIL for bogus, no ad for insecure', { skip: !existsSync('/usr/bin/dig') && !inCI ? 'dig (bind9-dnsutils) not installed' : false }, async () => {
    const flags = (out: string) => /;; flags: ([a-z ]+);/.exec(out)?.[1]!.split(' ') ?? [];
    const status = (out: string) => /status: ([A-Z]+)/.exec(out)?.[1];
    const secure = await dig(MAIN, 'TLSA', '_25._tcp.mx1.secure.dane.test');
    assert.equal(status(secure), 'NOERROR');
    assert.ok(flags(secure).includes('ad'), secure);
    const bogus = await dig(MAIN, 'MX', 'bogus.dane.test');
    assert.equal(status(bogus), 'SERVFAIL');
    const bogusCd = await dig(MAIN, '+cd', 'MX', 'bogus.dane.test');
    assert.equal(status(bogusCd), 'NOERROR');
    assert.match(bogusCd, /bogus\.dane\.test\.\s+\d+\s+IN\s+MX\s+10 mx1\.bogus\.dane\.test\./);
    const insecure = await dig(MAIN, 'MX', 'insecure.dane.test');
    assert.equal(status(insecure), 'NOERROR');
    assert.ok(!flags(insecure).includes('ad'), insecure);
  });

  test('update() re-signs a zone and the next query sees the change; a kind change re-signs the parent', async () => {
    const before = await dns.query('_mta-sts.secure.dane.test', 'TXT');
    assert.deepEqual(txt(before), ['v=STSv1; id=1']);
    // Cached negative answer first: the update must flush it.
    assert.equal((await dns.query('new.secure.dane.test', 'A')).rcode, 'NXDOMAIN');
    const records = ZONES[0]!.records.map((r) => (r.startsWith('_mta-sts') ? '_mta-sts TXT "v=STSv1; id=2"' : r)).concat('new A 127.0.88.20');
    await dns.update({ name: 'secure.dane.test', kind: 'secure', records });
    const after = await dns.query('_mta-sts.secure.dane.test', 'TXT');
    assert.equal(after.ad, true);
    assert.deepEqual(txt(after), ['v=STSv1; id=2']);
    const added = await dns.query('new.secure.dane.test', 'A');
    assert.equal(added.rcode, 'NOERROR');
    assert.equal(added.ad, true);

    // insecure -> secure and back: the parent gains and loses the DS.
    const spec = ZONES[2]!;
    await dns.update({ ...spec, kind: 'secure' });
    assert.equal((await dns.query('insecure.dane.test', 'MX')).ad, true);
    await dns.update({ ...spec, kind: 'bogus' });
    assert.equal((await dns.query('insecure.dane.test', 'MX')).rcode, 'SERVFAIL');
    await dns.update(spec);
    const back = await dns.query('insecure.dane.test', 'MX');
    assert.equal(back.rcode, 'NOERROR');
    assert.equal(back.ad, false);
  });
});

describe('DNSSEC peer: other parent, errors, clean close', { skip: !dnssecAvailable() && !inCI ? 'unbound or bind9-utils (dnssec-signzone) not installed' : false, timeout: within(60_000) }, () => {
  test('another parent zone works the same; close() leaves no process, socket or directory', async () => {
    const t0 = performance.now();
    const dns = await startDnssec({ ...OTHER, parent: 'example', zones: [{ name: 'mail.example', kind: 'secure', records: ['@ MX 0 .'] }] });
    const ms = performance.now() - t0;
    assert.ok(ms < within(1_000), `start took ${Math.round(ms)} ms`);
    let closed = false;
    try {
      assert.match(dns.trustAnchor, /^example\.\s+IN\s+DNSKEY\s+257 /);
      const r = await dns.query('mail.example', 'MX');
      assert.equal(r.ad, true);
      // Names outside this parent are refused; test. (a name unbound blocks by default) is NXDOMAIN.
      assert.equal((await dns.query('secure.dane.org', 'MX')).rcode, 'REFUSED');
      assert.equal((await dns.query('secure.dane.test', 'MX')).rcode, 'NXDOMAIN');
      // A second resolver on the same address does not start (no SO_REUSEPORT sharing).
      const second = await startDnssec({ ...OTHER, parent: 'example', zones: [] }).catch((e: Error) => e);
      if (!(second instanceof Error)) {
        await second.close();
        assert.fail('a second resolver started on a taken address');
      }
      assert.match(second.message, /unbound exited .*Address already in use/s);
      assert.ok(alive(dns.pid));
      await dns.close();
      closed = true;
      assert.equal(alive(dns.pid), false, 'unbound still running after close()');
      assert.equal(existsSync(dns.dir), false, 'directory left behind');
      // The UDP port is free again.
      const s = dgram.createSocket('udp4');
      await new Promise<void>((resolve, reject) => (s.once('error', reject), s.bind(OTHER.port, OTHER.host, () => resolve())));
      s.close();
    } finally {
      if (!closed) await dns.close();
    }
  });

  test('bad input is refused before unbound starts, with the reason', async () => {
    await assert.rejects(startDnssec({ ...OTHER, zones: [{ name: 'elsewhere.example', kind: 'secure', records: [] }] }), /not below the parent zone test/);
    await assert.rejects(startDnssec({ ...OTHER, zones: [{ name: 'a.test', kind: 'secure', records: [] }, { name: 'b.a.test', kind: 'secure', records: [] }] }), /nested/);
    await assert.rejects(startDnssec({ ...OTHER, zones: [{ name: 'x.test', kind: 'secure', records: ['mx1 A not-an-address'] }] }), /dnssec-signzone/);
    await assert.rejects(startDnssec({ ...OTHER, zones: [{ name: 'x.test', kind: 'insecure', records: ['mx1 A not-an-address'] }] }), /named-checkzone/);
    await assert.rejects(startDnssec({ ...OTHER, zones: [{ name: 'x.test', kind: 'secure', records: ['mx1 A 127.0.88.9'], tamper: ['mx2 A'] }] }), /tamper: no signed A RRset at mx2\.x\.test\./);
  });
});
