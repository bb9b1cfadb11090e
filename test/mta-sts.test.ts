/**
 * MTA-STS (RFC 8461): the TXT record and policy parsers (pure), then discovery, fetching and the
 * durable cache against real peers on loopback — the test DNS server for the TXT and A records
 * and an HTTPS server (node:https) presenting test-CA certificates for `mta-sts.<domain>`, chosen
 * by SNI — and `postern mtasts refresh` / `show` as a user runs them.
 *
 * Addresses 127.0.89.x, ports 2629 (HTTPS) and 2631 (DNS) only.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { WireDnsClient } from '../src/dns/wire.js';
import { addressResolver, fetchStsPolicy, MAX_POLICY_BYTES, StsFetchError } from '../src/mtasts/fetch.js';
import { isStsRecord, MAX_AGE_LIMIT, parseStsPolicy, parseStsRecord, selectStsRecord } from '../src/mtasts/policy.js';
import { MtaStsResolver, type MtaStsResolverOptions } from '../src/mtasts/resolver.js';
import { MtaStsStore } from '../src/mtasts/store.js';
import { secureContextFor } from '../src/tls/trust.js';
import { within } from './deadline.js';
import { tempDir } from './harness.js';
import { TestCA } from './peers/ca.js';
import { startDnsServer, type DnsServer } from './peers/dns-server.js';
import { runCli } from './process.js';

const HTTPS_PORT = 2629;
const DNS_PORT = 2631;
const A = (n: number) => `127.0.89.${n}`;

/** A finding's mode and mx patterns (its max_age is checked where it matters). */
const core = (f: { mode: string; mx: string[] } | null) => f && { mode: f.mode, mx: f.mx };

const policyText = (mode: string, mx: string[], maxAge: number | string, eol = '\n') =>
  ['version: STSv1', `mode: ${mode}`, ...mx.map((m) => `mx: ${m}`), `max_age: ${maxAge}`].join(eol) + eol;

// -------------------------------------------------------------------------------------------
// Pure parsing

describe('MTA-STS TXT record (RFC 8461 §3.1)', () => {
  it('reads the id of a valid record, with or without blanks and a final separator', () => {
    assert.deepEqual(parseStsRecord('v=STSv1; id=20160831085700Z;'), { ok: true, id: '20160831085700Z', extensions: {} });
    assert.deepEqual(parseStsRecord('v=STSv1;id=abc'), { ok: true, id: 'abc', extensions: {} });
    assert.deepEqual(parseStsRecord('v=STSv1 ;\tid=abc ; '), { ok: true, id: 'abc', extensions: {} });
    assert.deepEqual(parseStsRecord('v=STSv1; id=abc; foo=bar'), { ok: true, id: 'abc', extensions: { foo: 'bar' } });
    assert.deepEqual(parseStsRecord(`v=STSv1; id=${'a'.repeat(32)}`), { ok: true, id: 'a'.repeat(32), extensions: {} });
  });

  it('refuses a record with a bad, missing or repeated id or a malformed field', () => {
    for (const [txt, why] of [
      [`v=STSv1; id=${'a'.repeat(33)}`, /1 to 32 letters and digits/],
      ['v=STSv1; id=ab-c', /1 to 32 letters and digits/],
      ['v=STSv1; id=', /1 to 32 letters and digits/],
      ['v=STSv1;', /no id/],
      ['v=STSv1', /no id/],
      ['v=STSv1; foo=bar', /no id/],
      ['v=STSv1; id=a; id=b', /more than one id/],
      ['v=STSv1; id=a; junk', /not name=value/],
      ['v=STSv1; id=a; x=', /empty value/],
    ] as const) {
      const r = parseStsRecord(txt);
      assert.equal(r.ok, false, txt);
      if (!r.ok) assert.match(r.reason, why, txt);
    }
  });

  it('knows MTA-STS records by their v=STSv1 beginning (case-sensitive)', () => {
    assert.equal(isStsRecord('v=STSv1; id=1'), true);
    assert.equal(isStsRecord('v=STSv1 ; id=1'), true);
    assert.equal(isStsRecord('v=stsv1; id=1'), false);
    assert.equal(isStsRecord('v=STSv10; id=1'), false);
    assert.equal(isStsRecord(' v=STSv1; id=1'), false);
    assert.equal(isStsRecord('v=spf1 -all'), false);
  });

  it('ignores other records, and takes several MTA-STS records as no policy', () => {
    assert.deepEqual(selectStsRecord([]), { kind: 'none' });
    assert.deepEqual(selectStsRecord(['v=spf1 -all', 'google-site-verification=x']), { kind: 'none' });
    assert.deepEqual(selectStsRecord(['v=spf1 -all', 'v=STSv1; id=7']), { kind: 'record', id: '7' });
    const several = selectStsRecord(['v=STSv1; id=1', 'v=STSv1; id=2']);
    assert.equal(several.kind, 'invalid');
    assert.match(several.kind === 'invalid' ? several.reason : '', /2 TXT records begin with v=STSv1/);
    const bad = selectStsRecord(['v=STSv1; id=no-good', 'other']);
    assert.equal(bad.kind, 'invalid');
  });
});

describe('MTA-STS policy file (RFC 8461 §3.2)', () => {
  it('parses enforce, testing and none policies, with LF or CRLF lines', () => {
    assert.deepEqual(parseStsPolicy(policyText('enforce', ['mail.example.com', '*.Example.NET'], 86400)), {
      ok: true,
      policy: { mode: 'enforce', maxAge: 86400, mx: ['mail.example.com', '*.example.net'] },
    });
    assert.deepEqual(parseStsPolicy(policyText('testing', ['mx.example.com'], 604800, '\r\n')), {
      ok: true,
      policy: { mode: 'testing', maxAge: 604800, mx: ['mx.example.com'] },
    });
    // No final line end, mixed ends, blanks after the colon and the value, a blank line.
    assert.deepEqual(parseStsPolicy('version:STSv1\r\nmode:   none  \n\nmax_age: 0'), { ok: true, policy: { mode: 'none', maxAge: 0, mx: [] } });
  });

  it('ignores unknown keys and uses the first of a repeated field, every mx', () => {
    const r = parseStsPolicy('version: STSv1\nmode: testing\nmode: enforce\nfoo_bar: anything at all\nmx: a.example\nmx: b.example\nmax_age: 10\nmax_age: junk\n');
    assert.deepEqual(r, { ok: true, policy: { mode: 'testing', maxAge: 10, mx: ['a.example', 'b.example'] } });
  });

  it('accepts max_age from 0 to 31557600 only', () => {
    assert.equal(MAX_AGE_LIMIT, 31557600);
    for (const good of [0, 1, 31557600]) assert.equal(parseStsPolicy(policyText('enforce', ['mx.example'], good)).ok, true, String(good));
    for (const [bad, why] of [
      ['31557601', /more than 31557600/],
      ['99999999999', /not a whole number/],
      ['-1', /not a whole number/],
      ['1.5', /not a whole number/],
      ['abc', /not a whole number/],
      ['', /max_age has no value/],
    ] as const) {
      const r = parseStsPolicy(policyText('enforce', ['mx.example'], bad));
      assert.equal(r.ok, false, bad);
      if (!r.ok) {
        assert.match(r.reason, why, bad);
        assert.match(r.reason, /^line 4: /, bad);
        assert.equal(r.line, 4);
      }
    }
  });

  it('refuses missing fields, a bad mode or version, and malformed lines, naming the line', () => {
    const cases: [string, RegExp][] = [
      ['mode: enforce\nmx: mx.example\nmax_age: 1\n', /^no version field/],
      ['version: STSv1\nmx: mx.example\nmax_age: 1\n', /^no mode field/],
      ['version: STSv1\nmode: enforce\nmx: mx.example\n', /^no max_age field/],
      ['version: STSv1\nmode: enforce\nmax_age: 1\n', /^no mx field \(mode enforce/],
      ['version: STSv1\nmode: testing\nmax_age: 1\n', /^no mx field \(mode testing/],
      ['version: STSv1\nmode: Enforce\nmx: mx.example\nmax_age: 1\n', /^line 2: mode "Enforce" is not enforce, testing or none/],
      ['version: STSv1\nmode: strict\nmx: mx.example\nmax_age: 1\n', /^line 2: mode "strict"/],
      ['version: STSv2\nmode: enforce\nmx: mx.example\nmax_age: 1\n', /^line 1: version "STSv2" is not STSv1/],
      ['version: STSv1\nmode: enforce\nthis line has no colon\nmx: mx.example\nmax_age: 1\n', /^line 3: "this line has no colon" is not "key: value"/],
      ['version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n', /^line 3: mx "\*\.\*\.example"/],
      ['version: STSv1\nmode: enforce\nmx: bad name.example\nmax_age: 1\n', /^line 3: mx "bad name\.example"/],
      ['version: STSv1\nmode: enforce\n mx: mx.example\nmax_age: 1\n', /^line 3: " mx" is not a field name/],
      ['version: STSv1\rmode: enforce\nmx: mx.example\nmax_age: 1\n', /^line 1: a carriage return/],
      ['', /^no version field/],
    ];
    for (const [text, why] of cases) {
      const r = parseStsPolicy(text);
      assert.equal(r.ok, false, text);
      if (!r.ok) assert.match(r.reason, why, text);
    }
  });
});

// -------------------------------------------------------------------------------------------
// Against peers

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface Site {
  /** Requests received for this host (by the Host header). */
  requests: number;
  paths: string[];
  handle: Handler;
}

describe('MTA-STS discovery, fetching and cache against loopback peers', { timeout: within(60_000) }, () => {
  let dns: DnsServer;
  let server: https.Server;
  let ca: TestCA;
  let trust: tls.SecureContext;
  const sites = new Map<string, Site>();
  const contexts = new Map<string, tls.SecureContext>();
  const stores: MtaStsStore[] = [];

  const serve =
    (text: string, type = 'text/plain'): Handler =>
    (_req, res) => {
      res.writeHead(200, { 'Content-Type': type });
      res.end(text);
    };

  /** Publishes `_mta-sts.<domain>` and `mta-sts.<domain>`, and serves the policy host. */
  async function addSite(domain: string, o: { id?: string; txt?: string[]; handle?: Handler; policy?: string; certFor?: string; issuer?: TestCA; address?: string } = {}): Promise<Site> {
    const host = `mta-sts.${domain}`;
    dns.zone[`_mta-sts.${domain}`] = { TXT: o.txt ?? [`v=STSv1; id=${o.id ?? '1'}`] };
    dns.zone[host] = { A: [o.address ?? A(1)] };
    const certName = o.certFor ?? host;
    const cert = await (o.issuer ?? ca).issue({ cn: certName, dnsNames: [certName] });
    contexts.set(host, tls.createSecureContext({ key: cert.keyPem, cert: cert.chainPem }));
    const site: Site = { requests: 0, paths: [], handle: o.handle ?? serve(o.policy ?? policyText('enforce', [`mx.${domain}`], 86400)) };
    sites.set(host, site);
    return site;
  }

  function resolverFor(dataDir: string, o: Partial<MtaStsResolverOptions> = {}): MtaStsResolver {
    const store = MtaStsStore.open(dataDir);
    stores.push(store);
    return new MtaStsResolver({
      dns: new WireDnsClient({ servers: [dns.address], cacheEntries: 0, timeoutMs: 1000 }),
      store,
      secureContext: () => trust,
      port: HTTPS_PORT,
      fetchTimeoutMs: within(3000),
      ...o,
    });
  }

  before(async () => {
    ca = await TestCA.create('MTA-STS Test CA');
    trust = secureContextFor({ useSystem: false, custom: [ca.certPem] });
    dns = await startDnsServer({ zone: {}, host: A(1), port: DNS_PORT });
    const fallback = await ca.issue({ cn: 'unknown.invalid', dnsNames: ['unknown.invalid'] });
    server = https.createServer(
      {
        key: fallback.keyPem,
        cert: fallback.chainPem,
        SNICallback: (name, cb) => cb(null, contexts.get(name.toLowerCase()) ?? tls.createSecureContext({ key: fallback.keyPem, cert: fallback.chainPem })),
      },
      (req, res) => {
        const site = sites.get((req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase());
        if (!site) {
          res.writeHead(421, { 'Content-Type': 'text/plain' });
          res.end('no such site\n');
          return;
        }
        site.requests++;
        site.paths.push(req.url ?? '');
        site.handle(req, res);
      },
    );
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(HTTPS_PORT, A(1), () => resolve());
    });
  });

  after(async () => {
    for (const s of stores) s.close();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await dns?.close();
  });

  it('fetches an enforce policy through its own DNS, caches it, and does not fetch again for the same id', async () => {
    const site = await addSite('enforce.test', {
      id: 'v1',
      handle: serve(policyText('enforce', ['mx1.enforce.test', '*.mx.enforce.test'], 86400, '\r\n'), 'Text/Plain; charset=utf-8'),
    });
    const clock = { now: 1_800_000_000_000 };
    const dataDir = tempDir();
    const r = resolverFor(dataDir, { now: () => clock.now });
    const first = await r.policyFor('Enforce.Test.');
    assert.equal(first.source, 'fetched', JSON.stringify(first));
    assert.deepEqual(core(first.finding), { mode: 'enforce', mx: ['mx1.enforce.test', '*.mx.enforce.test'] });
    assert.equal(first.error, undefined);
    assert.deepEqual(first.txt, { kind: 'record', id: 'v1' });
    assert.equal(site.requests, 1);
    assert.deepEqual(site.paths, ['/.well-known/mta-sts.txt']);
    // The host's address came from the test DNS server (no system resolver knows .test names).
    assert.ok(dns.queries.some((q) => q.name === 'mta-sts.enforce.test' && q.type === 'A'));

    const shown = r.show('enforce.test');
    assert.ok(shown?.policy);
    assert.equal(shown.policy.id, 'v1');
    assert.equal(shown.policy.maxAge, 86400);
    assert.equal(shown.policy.fetchedAt, clock.now);
    assert.equal(shown.policy.expiresAt, clock.now + 86_400_000);
    assert.equal(shown.policy.expired, false);
    assert.match(shown.policy.text, /^version: STSv1\r\nmode: enforce\r\n/);

    clock.now += 3_600_000;
    const second = await r.policyFor('enforce.test');
    assert.equal(second.source, 'cache');
    assert.deepEqual(second.finding, first.finding);
    assert.equal(site.requests, 1, 'same id, unexpired: no new fetch');

    // Expired: fetched again even though the id is the same.
    clock.now += 86_400_000;
    const third = await r.policyFor('enforce.test');
    assert.equal(third.source, 'fetched');
    assert.equal(site.requests, 2);
  });

  it('fetches again when the published id changes, and the new policy replaces the old', async () => {
    const site = await addSite('idchange.test', { id: 'one', policy: policyText('testing', ['old.idchange.test'], 3600) });
    const r = resolverFor(tempDir());
    assert.deepEqual(core((await r.policyFor('idchange.test')).finding), { mode: 'testing', mx: ['old.idchange.test'] });
    assert.equal(site.requests, 1);
    dns.zone['_mta-sts.idchange.test'] = { TXT: ['v=STSv1; id=two'] };
    site.handle = serve(policyText('enforce', ['new.idchange.test'], 7200));
    const after = await r.policyFor('idchange.test');
    assert.equal(after.source, 'fetched');
    assert.deepEqual(core(after.finding), { mode: 'enforce', mx: ['new.idchange.test'] });
    assert.equal(site.requests, 2);
    assert.equal(r.show('idchange.test')?.policy?.id, 'two');
    assert.equal(r.show('idchange.test')?.policy?.maxAge, 7200);
  });

  it('gives a finding of mode none for a none policy', async () => {
    await addSite('nonemode.test', { policy: 'version: STSv1\nmode: none\nmax_age: 86400\n' });
    const r = await resolverFor(tempDir()).policyFor('nonemode.test');
    assert.equal(r.source, 'fetched');
    assert.deepEqual(core(r.finding), { mode: 'none', mx: [] });
  });

  it('does not follow a redirect: the target is never asked', async () => {
    const target = await addSite('target.test');
    await addSite('redirect.test', {
      handle: (_req, res) => {
        res.writeHead(301, { Location: `https://mta-sts.target.test:${HTTPS_PORT}/.well-known/mta-sts.txt`, 'Content-Type': 'text/plain' });
        res.end();
      },
    });
    const r = await resolverFor(tempDir()).policyFor('redirect.test');
    assert.equal(r.finding, null);
    assert.equal(r.source, 'none');
    assert.equal(r.error?.category, 'sts-policy-fetch-error');
    assert.match(r.error?.reason ?? '', /HTTP 301 redirect to https:\/\/mta-sts\.target\.test:2629\/\.well-known\/mta-sts\.txt refused/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(target.requests, 0);
  });

  it('refuses a certificate for another name, or from an unknown authority, before sending the request (webpki-invalid)', async () => {
    const wrongName = await addSite('wrongname.test', { certFor: 'mta-sts.elsewhere.test' });
    const stranger = await TestCA.create('Unknown CA');
    const unknownCa = await addSite('unknownca.test', { issuer: stranger });
    const r = resolverFor(tempDir());

    const a = await r.policyFor('wrongname.test');
    assert.equal(a.finding, null);
    assert.equal(a.error?.category, 'sts-webpki-invalid', JSON.stringify(a));
    assert.match(a.error?.reason ?? '', /not valid for mta-sts\.wrongname\.test/);

    const b = await r.policyFor('unknownca.test');
    assert.equal(b.finding, null);
    assert.equal(b.error?.category, 'sts-webpki-invalid', JSON.stringify(b));
    assert.match(b.error?.reason ?? '', /unknown certificate authority|untrusted/);

    assert.equal(wrongName.requests, 0);
    assert.equal(unknownCa.requests, 0);
    // Both errors are kept for show and for rate limiting.
    assert.equal(r.show('unknownca.test')?.lastError?.category, 'sts-webpki-invalid');
  });

  it('refuses a wrong content type, a status other than 200, and an invalid policy', async () => {
    await addSite('html.test', { handle: serve(policyText('enforce', ['mx.html.test'], 60), 'text/html') });
    await addSite('notfound.test', {
      handle: (_req, res) => {
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end('not here\n');
      },
    });
    await addSite('badpolicy.test', { policy: 'version: STSv1\nmode: sometimes\nmx: mx.badpolicy.test\nmax_age: 60\n' });
    const r = resolverFor(tempDir());

    const html = await r.policyFor('html.test');
    assert.equal(html.error?.category, 'sts-policy-fetch-error');
    assert.match(html.error?.reason ?? '', /Content-Type "text\/html" \(must be text\/plain\)/);
    assert.equal(html.finding, null);

    const nf = await r.policyFor('notfound.test');
    assert.equal(nf.error?.category, 'sts-policy-fetch-error');
    assert.match(nf.error?.reason ?? '', /HTTP 404/);

    const bad = await r.policyFor('badpolicy.test');
    assert.equal(bad.error?.category, 'sts-policy-invalid');
    assert.match(bad.error?.reason ?? '', /line 2: mode "sometimes"/);
    assert.equal(bad.finding, null);
  });

  it('aborts a body over 64 KiB, declared or streamed', async () => {
    const big = policyText('enforce', ['mx.big.test'], 60) + `x-padding: ${'a'.repeat(MAX_POLICY_BYTES)}\n`;
    await addSite('declared.test', { policy: big });
    let streamedBytes = 0;
    await addSite('streamed.test', {
      handle: (_req, res) => {
        res.writeHead(200, { 'Content-Type': 'text/plain' }); // chunked: no length announced
        const chunk = `x-padding: ${'b'.repeat(8180)}\n`;
        const timer = setInterval(() => {
          if (res.destroyed || streamedBytes > 4 * MAX_POLICY_BYTES) {
            clearInterval(timer);
            res.end();
            return;
          }
          streamedBytes += chunk.length;
          res.write(chunk);
        }, 2);
      },
    });
    const r = resolverFor(tempDir());
    const declared = await r.policyFor('declared.test');
    assert.equal(declared.error?.category, 'sts-policy-fetch-error');
    assert.match(declared.error?.reason ?? '', /larger than 65536 bytes/);
    const streamed = await r.policyFor('streamed.test');
    assert.equal(streamed.error?.category, 'sts-policy-fetch-error');
    assert.match(streamed.error?.reason ?? '', /larger than 65536 bytes/);
    assert.ok(streamedBytes < 4 * MAX_POLICY_BYTES, `the fetch stopped reading (${streamedBytes} bytes sent)`);
  });

  it('gives up after the timeout, and reports a host that refuses connections', async () => {
    await addSite('slow.test', { handle: () => undefined }); // never answers
    await addSite('refused.test', { address: A(2) }); // nothing listens there
    const r = resolverFor(tempDir(), { fetchTimeoutMs: 500 });
    const started = Date.now();
    const slow = await r.policyFor('slow.test');
    assert.equal(slow.error?.category, 'sts-policy-fetch-error');
    assert.match(slow.error?.reason ?? '', /no complete answer within 0\.5 s/);
    assert.ok(Date.now() - started < within(3000));
    const refused = await r.policyFor('refused.test');
    assert.equal(refused.error?.category, 'sts-policy-fetch-error');
    assert.match(refused.error?.reason ?? '', /ECONNREFUSED/);
    // A policy host without an address is a fetch error too.
    dns.zone['_mta-sts.noaddress.test'] = { TXT: ['v=STSv1; id=1'] };
    const noAddress = await r.policyFor('noaddress.test');
    assert.equal(noAddress.error?.category, 'sts-policy-fetch-error');
    assert.match(noAddress.error?.reason ?? '', /mta-sts\.noaddress\.test has no address/);
  });

  it('keeps an unexpired cached policy in force when a new fetch fails', async () => {
    const site = await addSite('keep.test', { id: 'a', policy: policyText('enforce', ['mx.keep.test'], 86400) });
    const clock = { now: 1_800_000_000_000 };
    const r = resolverFor(tempDir(), { now: () => clock.now });
    assert.equal((await r.policyFor('keep.test')).source, 'fetched');
    dns.zone['_mta-sts.keep.test'] = { TXT: ['v=STSv1; id=b'] };
    site.handle = (_req, res) => {
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end('broken\n');
    };
    clock.now += 60_000;
    const r2 = await r.policyFor('keep.test');
    assert.equal(r2.source, 'cache');
    assert.deepEqual(core(r2.finding), { mode: 'enforce', mx: ['mx.keep.test'] });
    assert.equal(r2.error?.category, 'sts-policy-fetch-error');
    assert.match(r2.error?.reason ?? '', /HTTP 500/);
    assert.equal(site.requests, 2);
    const shown = r.show('keep.test');
    assert.equal(shown?.policy?.id, 'a');
    assert.equal(shown?.lastError?.at, clock.now);
  });

  it('keeps using an unexpired cached policy when the TXT record is removed or cannot be looked up, and not after it expires', async () => {
    const site = await addSite('removed.test', { id: 'x', policy: policyText('enforce', ['mx.removed.test'], 3600) });
    const clock = { now: 1_800_000_000_000 };
    const r = resolverFor(tempDir(), { now: () => clock.now });
    assert.equal((await r.policyFor('removed.test')).source, 'fetched');
    delete dns.zone['_mta-sts.removed.test'];
    clock.now += 1_800_000;
    const gone = await r.policyFor('removed.test');
    assert.equal(gone.source, 'cache');
    assert.deepEqual(core(gone.finding), { mode: 'enforce', mx: ['mx.removed.test'] });
    assert.deepEqual(gone.txt, { kind: 'none' });
    dns.zone['_mta-sts.removed.test'] = { rcode: 'SERVFAIL' };
    const failing = await r.policyFor('removed.test');
    assert.equal(failing.source, 'cache');
    assert.equal(failing.txt.kind, 'temporary');
    assert.equal(site.requests, 1, 'no fetch without a record');
    delete dns.zone['_mta-sts.removed.test'];
    clock.now += 1_800_000; // now exactly at expiry
    const expired = await r.policyFor('removed.test');
    assert.equal(expired.finding, null);
    assert.equal(expired.source, 'none');
    assert.equal(site.requests, 1);
  });

  it('gives no policy when the cache expired and the fetch fails, with the error', async () => {
    const site = await addSite('expired.test', { id: 'e', policy: policyText('enforce', ['mx.expired.test'], 60) });
    const clock = { now: 1_800_000_000_000 };
    const r = resolverFor(tempDir(), { now: () => clock.now });
    assert.equal((await r.policyFor('expired.test')).source, 'fetched');
    site.handle = serve('not a policy\n');
    clock.now += 61_000;
    const res = await r.policyFor('expired.test');
    assert.equal(res.finding, null);
    assert.equal(res.source, 'none');
    assert.equal(res.error?.category, 'sts-policy-invalid');
    assert.match(res.error?.reason ?? '', /line 1: "not a policy" is not "key: value"/);
    assert.equal(site.requests, 2);
  });

  it('does not fetch again within retryAfterMs of a failure, even after a restart', async () => {
    const site = await addSite('ratelimit.test', {
      handle: (_req, res) => {
        res.writeHead(503, { 'Content-Type': 'text/plain' });
        res.end();
      },
    });
    const clock = { now: 1_800_000_000_000 };
    const dataDir = tempDir();
    const r = resolverFor(dataDir, { now: () => clock.now, retryAfterMs: 60_000 });
    const first = await r.policyFor('ratelimit.test');
    assert.equal(first.error?.category, 'sts-policy-fetch-error');
    assert.equal(site.requests, 1);
    clock.now += 59_000;
    const second = await r.policyFor('ratelimit.test');
    assert.equal(site.requests, 1, 'held back');
    assert.equal(second.finding, null);
    assert.deepEqual(second.error, first.error);
    const restarted = resolverFor(dataDir, { now: () => clock.now, retryAfterMs: 60_000 });
    await restarted.policyFor('ratelimit.test');
    assert.equal(site.requests, 1, 'held back across a restart');
    // refresh is an administrator's request: not held back.
    const refreshed = await restarted.refresh('ratelimit.test');
    assert.equal(refreshed.fetched, false);
    assert.equal(site.requests, 2);
    clock.now += 60_001;
    site.handle = serve(policyText('testing', ['mx.ratelimit.test'], 600));
    const later = await restarted.policyFor('ratelimit.test');
    assert.equal(site.requests, 3);
    assert.equal(later.source, 'fetched');
    assert.equal(later.error, undefined);
    assert.equal(restarted.show('ratelimit.test')?.lastError, null, 'a success forgets the last error');
  });

  it('shares one fetch among concurrent calls for a domain', async () => {
    const site = await addSite('concurrent.test', {
      handle: (_req, res) =>
        void setTimeout(() => {
          res.writeHead(200, { 'Content-Type': 'text/plain' });
          res.end(policyText('enforce', ['mx.concurrent.test'], 600));
        }, 300),
    });
    const r = resolverFor(tempDir());
    const results = await Promise.all(Array.from({ length: 6 }, () => r.policyFor('concurrent.test')));
    assert.equal(site.requests, 1);
    for (const res of results) {
      assert.equal(res.source, 'fetched');
      assert.deepEqual(core(res.finding), { mode: 'enforce', mx: ['mx.concurrent.test'] });
    }
  });

  it('takes several MTA-STS TXT records, or a malformed one, as no policy and fetches nothing', async () => {
    const several = await addSite('several.test', { txt: ['v=STSv1; id=1', 'v=STSv1; id=2'] });
    const malformed = await addSite('malformed.test', { txt: ['v=STSv1; id=not-valid!'] });
    const r = resolverFor(tempDir());
    const a = await r.policyFor('several.test');
    assert.equal(a.finding, null);
    assert.equal(a.txt.kind, 'invalid');
    const b = await r.policyFor('malformed.test');
    assert.equal(b.finding, null);
    assert.equal(b.txt.kind, 'invalid');
    assert.equal(several.requests + malformed.requests, 0);
  });

  it('keeps policies in mtasts.db: a new resolver on the same data directory uses them', async () => {
    const site = await addSite('durable.test', { id: 'd1', policy: policyText('enforce', ['mx.durable.test'], 86400) });
    const dataDir = tempDir();
    const store = MtaStsStore.open(dataDir);
    const first = new MtaStsResolver({ dns: new WireDnsClient({ servers: [dns.address], cacheEntries: 0 }), store, secureContext: () => trust, port: HTTPS_PORT });
    assert.equal((await first.policyFor('durable.test')).source, 'fetched');
    store.close();
    const again = resolverFor(dataDir);
    const res = await again.policyFor('durable.test');
    assert.equal(res.source, 'cache');
    assert.deepEqual(core(res.finding), { mode: 'enforce', mx: ['mx.durable.test'] });
    assert.equal(site.requests, 1);
    // One row per recipient domain, never per MX host.
    const rows = MtaStsStore.open(dataDir);
    stores.push(rows);
    assert.deepEqual(rows.list().map((e) => e.domain), ['durable.test']);
  });

  it('fetchStsPolicy alone: verifies against the given trust store only', async () => {
    await addSite('direct.test', { policy: policyText('testing', ['mx.direct.test'], 120) });
    const resolve = addressResolver(new WireDnsClient({ servers: [dns.address], cacheEntries: 0 }));
    const ok = await fetchStsPolicy('direct.test', { secureContext: trust, resolve, port: HTTPS_PORT });
    assert.deepEqual(ok.policy, { mode: 'testing', maxAge: 120, mx: ['mx.direct.test'] });
    // The system roots alone do not know the test CA.
    const system = secureContextFor({ useSystem: true, custom: [] });
    await assert.rejects(fetchStsPolicy('direct.test', { secureContext: system, resolve, port: HTTPS_PORT }), (e: unknown) => e instanceof StsFetchError && e.category === 'sts-webpki-invalid');
  });

  describe('postern mtasts', () => {
    const dataDir = tempDir();
    before(async () => {
      await addSite('cli.test', { id: 'cli1', policy: policyText('enforce', ['mx1.cli.test', '*.pool.cli.test'], 604800) });
      await addSite('clibad.test', { certFor: 'mta-sts.other.test' });
      const caFile = join(dataDir, 'ca.pem');
      writeFileSync(caFile, ca.certPem);
      assert.equal((await runCli(['certconfig', 'authority', 'add', caFile, '--data-dir', dataDir])).code, 0);
      assert.equal((await runCli(['certconfig', 'authority', 'system', 'off', '--data-dir', dataDir])).code, 0);
    });
    const cli = (...args: string[]) => runCli(['mtasts', ...args, '--data-dir', dataDir]);
    const net = ['--dns-server', `${A(1)}:${DNS_PORT}`, '--https-port', String(HTTPS_PORT)];

    it('show says nothing is cached before a refresh', async () => {
      const r = await cli('show', 'cli.test');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /No MTA-STS policy cached for cli\.test\./);
    });

    it('refresh fetches the policy, then show --json prints it', async () => {
      const r = await cli('refresh', 'CLI.test', ...net);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /Fetched the MTA-STS policy of cli\.test \(id cli1\)/);
      assert.match(r.stdout, /Mode: +enforce/);
      assert.match(r.stdout, /MX patterns: +mx1\.cli\.test, \*\.pool\.cli\.test/);
      assert.match(r.stdout, /max_age: +604800 \(7 days\)/);
      assert.equal(sites.get('mta-sts.cli.test')?.requests, 1);

      const s = await cli('show', 'cli.test', '--json');
      assert.equal(s.code, 0, s.stderr);
      const j = JSON.parse(s.stdout) as { domain: string; policy: { id: string; mode: string; mx: string[]; maxAge: number; fetchedAt: string; expiresAt: string; expired: boolean; text: string }; lastError: unknown };
      assert.equal(j.domain, 'cli.test');
      assert.equal(j.policy.id, 'cli1');
      assert.equal(j.policy.mode, 'enforce');
      assert.deepEqual(j.policy.mx, ['mx1.cli.test', '*.pool.cli.test']);
      assert.equal(j.policy.maxAge, 604800);
      assert.equal(j.policy.expired, false);
      assert.equal(Date.parse(j.policy.expiresAt) - Date.parse(j.policy.fetchedAt), 604_800_000);
      assert.ok(Math.abs(Date.parse(j.policy.fetchedAt) - Date.now()) < 60_000);
      assert.equal(j.policy.text, policyText('enforce', ['mx1.cli.test', '*.pool.cli.test'], 604800));
      assert.equal(j.lastError, null);

      dns.zone['_mta-sts.cli.test'] = { TXT: ['v=STSv1; id=cli2'] };
      const p = await cli('show', 'cli.test', '--dns-server', `${A(1)}:${DNS_PORT}`);
      assert.match(p.stdout, /Published id: +cli2 \(not the cached policy's cli1/);
    });

    it('refresh reports a failure with its category and exit status 1', async () => {
      const r = await cli('refresh', 'clibad.test', ...net);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stdout, /failed: sts-webpki-invalid: .*not valid for mta-sts\.clibad\.test/);
      const s = await cli('show', 'clibad.test', '--json');
      const j = JSON.parse(s.stdout) as { policy: unknown; lastError: { category: string; reason: string } };
      assert.equal(j.policy, null);
      assert.equal(j.lastError.category, 'sts-webpki-invalid');
      const none = await cli('refresh', 'nothing.test', ...net);
      assert.equal(none.code, 1);
      assert.match(none.stdout, /Nothing fetched: no MTA-STS TXT record at _mta-sts\.nothing\.test/);
      const bad = await cli('refresh', 'not a domain', ...net);
      assert.equal(bad.code, 2);
    });
  });
});
