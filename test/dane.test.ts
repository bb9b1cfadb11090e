/**
 * DANE matching (RFC 7672, RFC 7671): which TLSA records are usable, DANE-EE against the leaf
 * (names and dates ignored), DANE-TA against a certificate the server sent (signature path,
 * dates and names checked), with certificates from a test CA.
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { isUsable, verifyDane, type TlsaRecord } from '../src/tls/dane.js';
import { TestCA, type IssuedCert } from './peers/ca.js';

const DAY = 86_400_000;
const NOW = Date.now();
const der = (pem: string) => new X509Certificate(pem).raw;
const spki = (pem: string) => new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest();
const sha512 = (b: Uint8Array) => createHash('sha512').update(b).digest();
const rec = (usage: number, selector: number, matchingType: number, data: Uint8Array): TlsaRecord => ({ usage, selector, matchingType, data });
const names = ['mx1.secure.test', 'secure.test'];

describe('DANE TLSA matching', () => {
  let ca: TestCA;
  let other: TestCA;
  let leaf: IssuedCert;
  let expired: IssuedCert;
  let elsewhere: IssuedCert;
  let wildcard: IssuedCert;
  let foreign: IssuedCert;

  before(async () => {
    ca = await TestCA.create('DANE TA');
    other = await TestCA.create('Other CA');
    leaf = await ca.issue({ cn: 'mx1.secure.test', dnsNames: ['mx1.secure.test'] });
    expired = await ca.issue({ cn: 'mx1.secure.test', dnsNames: ['mx1.secure.test'], notBefore: new Date(NOW - 30 * DAY), notAfter: new Date(NOW - DAY) });
    elsewhere = await ca.issue({ cn: 'mail.elsewhere.test', dnsNames: ['mail.elsewhere.test'] });
    wildcard = await ca.issue({ cn: 'x', dnsNames: ['*.secure.test'] });
    foreign = await other.issue({ cn: 'mx1.secure.test', dnsNames: ['mx1.secure.test'] });
  });

  const chain = (c: IssuedCert, anchor = ca) => [c.der, der(anchor.certPem)];

  test('usable records: DANE-TA and DANE-EE with known selectors and digests of the right length', () => {
    const d32 = new Uint8Array(32);
    assert.equal(isUsable(rec(3, 1, 1, d32)), true);
    assert.equal(isUsable(rec(2, 0, 1, d32)), true);
    assert.equal(isUsable(rec(3, 0, 2, new Uint8Array(64))), true);
    assert.equal(isUsable(rec(3, 0, 0, new Uint8Array(300))), true);
    assert.equal(isUsable(rec(0, 0, 1, d32)), false, 'PKIX-TA is unusable for SMTP');
    assert.equal(isUsable(rec(1, 1, 1, d32)), false, 'PKIX-EE is unusable for SMTP');
    assert.equal(isUsable(rec(3, 2, 1, d32)), false, 'unknown selector');
    assert.equal(isUsable(rec(3, 1, 3, d32)), false, 'unknown matching type');
    assert.equal(isUsable(rec(3, 1, 1, new Uint8Array(20))), false, 'SHA-256 digest of the wrong length');
    assert.equal(isUsable(rec(3, 1, 2, d32)), false, 'SHA-512 digest of the wrong length');
    assert.equal(isUsable(rec(3, 0, 0, new Uint8Array(0))), false);
  });

  test('DANE-EE matches the leaf by certificate or key, exact or digest', () => {
    for (const r of [rec(3, 1, 1, sha256(spki(leaf.certPem))), rec(3, 0, 1, sha256(leaf.der)), rec(3, 1, 2, sha512(spki(leaf.certPem))), rec(3, 0, 0, leaf.der), rec(3, 1, 0, spki(leaf.certPem))]) {
      const v = verifyDane(chain(leaf), [r], { names, now: NOW });
      assert.deepEqual(v.ok && v.depth, 0, JSON.stringify(v));
    }
  });

  test('DANE-EE ignores names and dates', () => {
    for (const c of [expired, elsewhere]) assert.equal(verifyDane([c.der], [rec(3, 1, 1, sha256(spki(c.certPem)))], { names, now: NOW }).ok, true);
  });

  test('DANE-EE that matches nothing fails, naming the records', () => {
    const v = verifyDane(chain(leaf), [rec(3, 1, 1, sha256(spki(elsewhere.certPem)))], { names, now: NOW });
    assert.equal(v.ok, false);
    assert.match(!v.ok ? v.reason : '', /^no TLSA record matches the presented chain \(3 1 1 [0-9a-f]{16}…\)$/);
  });

  test('DANE-TA: the leaf chains to the anchor the server sent and carries a reference name', () => {
    const ta = [rec(2, 0, 1, sha256(der(ca.certPem)))];
    const ok = verifyDane(chain(leaf), ta, { names, now: NOW });
    assert.deepEqual(ok, { ok: true, record: ok.ok ? ok.record : '', depth: 1 });
    assert.equal(verifyDane(chain(wildcard), ta, { names, now: NOW }).ok, true, 'a wildcard for the left-most label');
    assert.equal(verifyDane(chain(leaf), [rec(2, 1, 1, sha256(spki(ca.certPem)))], { names, now: NOW }).ok, true, 'by the anchor key');
    const wrongName = verifyDane(chain(elsewhere), ta, { names, now: NOW });
    assert.match(!wrongName.ok ? wrongName.reason : '', /matched the certificate at depth 1, but the certificate names none of mx1\.secure\.test, secure\.test \(it names mail\.elsewhere\.test\)/);
    const old = verifyDane(chain(expired), ta, { names, now: NOW });
    assert.match(!old.ok ? old.reason : '', /outside its validity dates/);
    const notSigned = verifyDane([foreign.der, der(ca.certPem)], ta, { names, now: NOW });
    assert.match(!notSigned.ok ? notSigned.reason : '', /the certificate at depth 0 is not signed by the one above it/);
  });

  test('DANE-TA never matches the leaf itself, nor an anchor the server did not send', () => {
    assert.equal(verifyDane([leaf.der], [rec(2, 0, 1, sha256(der(ca.certPem)))], { names, now: NOW }).ok, false);
    assert.equal(verifyDane(chain(leaf), [rec(2, 0, 1, sha256(leaf.der))], { names, now: NOW }).ok, false);
    assert.equal(verifyDane(chain(leaf), [rec(2, 0, 1, sha256(der(other.certPem)))], { names, now: NOW }).ok, false);
  });

  test('only unusable records, or no certificate: never authenticated', () => {
    assert.deepEqual(verifyDane(chain(leaf), [rec(1, 1, 1, sha256(spki(leaf.certPem)))], { names, now: NOW }), { ok: false, reason: 'no usable TLSA record' });
    assert.deepEqual(verifyDane([], [rec(3, 1, 1, sha256(spki(leaf.certPem)))], { names, now: NOW }), { ok: false, reason: 'the server presented no certificate' });
  });
});
