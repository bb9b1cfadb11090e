/**
 * Golden tests for the certificate identity checks (SPEC §3, stage two): src/tls/names.ts and
 * src/tls/identity.ts. Each table row carries its input and the exact expected outcome; the
 * comparisons a check made are written as "SOURCE:presented ~ role:reference = result" so a row
 * shows both what matched and the order in which names were tried. The last tests run real
 * certificates made by openssl through X509Certificate and through a TLS handshake.
 */

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';

import { normaliseDomain, toUnicode } from '../src/tls/names.js';
import {
  checkHosted,
  checkVerify,
  matchName,
  presentedFrom,
  presentedFromX509,
  type Comparison,
  type HostedReferences,
  type IdentityVerdict,
  type MatchKind,
  type PresentedIdentity,
  type VerifyReferences,
} from '../src/tls/identity.js';

// ---- helpers --------------------------------------------------------------------------------

function show(c: Comparison): string {
  const source = c.presentedSource === 'dNSName' ? 'DNS' : 'CN';
  return `${source}:${c.presented} ~ ${c.referenceRole}:${c.reference} = ${c.result}`;
}

type Expected =
  | { ok: true; matched: string; compared: string[] }
  | { ok: false; reason: string; compared: string[] };

function summarise(v: IdentityVerdict): Expected {
  return v.ok
    ? { ok: true, matched: show(v.matched), compared: v.compared.map(show) }
    : { ok: false, reason: v.reason, compared: v.compared.map(show) };
}

/** A tls.PeerCertificate-shaped input: the SAN string as Node prints it, and subject CN. */
interface CertInput {
  san?: string;
  cn?: string | string[];
}

function peer(c: CertInput): { subjectaltname?: string; subject?: { CN?: string | string[] } } {
  const out: { subjectaltname?: string; subject?: { CN?: string | string[] } } = {};
  if (c.san !== undefined) out.subjectaltname = c.san;
  out.subject = c.cn === undefined ? {} : { CN: c.cn };
  return out;
}

// ---- names.ts -------------------------------------------------------------------------------

describe('normaliseDomain', () => {
  const rows: Array<[input: string, expected: string | null]> = [
    ['example.com', 'example.com'],
    ['EXAMPLE.Com', 'example.com'],
    ['example.com.', 'example.com'],
    ['EXAMPLE.COM.', 'example.com'],
    ['example.com..', null], // only one trailing dot is an absolute-name marker
    ['bücher.test', 'xn--bcher-kva.test'],
    ['BÜCHER.TEST.', null], // upper-case non-ASCII: IDNA2008 has no such U-label (no mapping)
    ['Bücher.TEST.', 'xn--bcher-kva.test'], // ASCII case is never significant
    ['XN--BCHER-KVA.test', 'xn--bcher-kva.test'],
    ['xn--zz.test', null], // A-label that does not decode
    ['ＥＸＡＭＰＬＥ.com', null], // full-width letters are not mapped onto ASCII
    ['localhost', 'localhost'],
    ['', null],
    ['.', null],
    ['a..b.test', null],
    ['-a.test', null],
    ['a-.test', null],
    ['a_b.test', null],
    ['a b.test', null],
    ['a,b.test', null],
    ['*.example.com', null], // wildcards are the matcher's business
    ['127.0.0.2', null], // addresses are not DNS names
    ['0x7f.1', null], // ...even when spelled oddly
    ['[::1]', null],
    ['test.123', null],
    ['a'.repeat(63) + '.test', 'a'.repeat(63) + '.test'],
    ['a'.repeat(64) + '.test', null],
    [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`, `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`],
    [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}`, null], // 254 chars
  ];
  for (const [input, expected] of rows) {
    test(JSON.stringify(input).slice(0, 60), () => assert.equal(normaliseDomain(input), expected));
  }
  test('toUnicode for display', () => {
    assert.equal(toUnicode('xn--bcher-kva.test'), 'bücher.test');
    assert.equal(toUnicode('example.com'), 'example.com');
    assert.equal(toUnicode('xn--zz.test'), 'xn--zz.test'); // unconvertible: shown as given
  });
});

// ---- matchName: the single-name rule ---------------------------------------------------------

describe('matchName', () => {
  const rows: Array<[presented: string, reference: string, expected: MatchKind | null]> = [
    ['mx.example.com', 'mx.example.com', 'exact'],
    ['mx.example.com', 'mx2.example.com', null],
    ['*.example.com', 'a.example.com', 'wildcard'],
    ['*.example.com', 'example.com', null], // not the bare parent
    ['*.example.com', 'a.b.example.com', null], // exactly one label
    ['*.example.com', 'a.example.org', null],
    ['*.example.com', 'aexample.com', null],
    ['f*.example.com', 'foo.example.com', null], // partial-label wildcards never match
    ['*x.example.com', 'ax.example.com', null],
    ['f*o.example.com', 'foo.example.com', null],
    ['a.*.example.com', 'a.b.example.com', null], // only the left-most label
    ['*.*.example.com', 'a.b.example.com', null],
    ['mx.example.*', 'mx.example.com', null],
    ['*', 'com', null],
    ['*.', 'com', null],
    ['*.com', 'example.com', null], // fewer than two labels after the wildcard
    ['*.com.', 'example.com', null],
    ['*.co.uk', 'example.co.uk', null], // a public suffix (PSL, ICANN section)
    ['*.example.co.uk', 'mx.example.co.uk', 'wildcard'],
    ['*.example.com', '*.example.com', null], // a reference is never a pattern
    ['mx.example.com', '*.example.com', null],
    ['example.com.', 'example.com', 'exact'], // trailing dot either side
    ['example.com', 'example.com.', 'exact'],
    ['*.example.com.', 'a.example.com', 'wildcard'],
    ['*.example.com', 'a.example.com.', 'wildcard'],
    ['MX.EXAMPLE.COM', 'mx.example.com', 'exact'], // case either side
    ['mx.example.com', 'Mx.Example.COM', 'exact'],
    ['*.EXAMPLE.COM', 'a.example.com', 'wildcard'],
    ['xn--bcher-kva.test', 'bücher.test', 'exact'], // IDN: A-label vs U-label
    ['bücher.test', 'xn--bcher-kva.test', 'exact'],
    ['*.xn--bcher-kva.test', 'mx.bücher.test', 'wildcard'],
    ['*.bücher.test', 'mx.xn--bcher-kva.test', 'wildcard'],
    ['*.example.com', 'bücher.example.com', 'wildcard'],
    ['xn--zz.test', 'xn--zz.test', null], // fails conversion: never matches, even itself
    ['192.0.2.1', '192.0.2.1', null], // addresses are not DNS names
    ['*.0.2.1', '192.0.2.1', null],
    ['a,b.example.com', 'a,b.example.com', null],
    ['', '', null],
    ['mx.example.com', '', null],
  ];
  for (const [presented, reference, expected] of rows) {
    test(`${presented} vs ${reference}`, () => assert.equal(matchName(presented, reference), expected));
  }
});

// ---- presentedFrom / presentedFromX509 parsing -------------------------------------------------

describe('presentedFrom (tls.PeerCertificate)', () => {
  const rows: Array<[name: string, input: CertInput | null, expected: PresentedIdentity]> = [
    ['no SAN, no CN', {}, { dnsNames: [], commonNames: [] }],
    ['no subject at all', null, { dnsNames: [], commonNames: [] }],
    ['empty SAN string', { san: '' }, { dnsNames: [], commonNames: [] }],
    [
      'plain DNS and IP entries',
      { san: 'DNS:a.test, DNS:*.b.test, IP Address:127.0.0.2', cn: 'mx.test' },
      { dnsNames: ['a.test', '*.b.test'], commonNames: ['mx.test'] },
    ],
    [
      'IPv6 IP entry and other types ignored',
      { san: 'IP Address:0:0:0:0:0:0:0:1, email:x@y.test, URI:http://x.test/, DNS:c.test, Registered ID:1.2.3' },
      { dnsNames: ['c.test'], commonNames: [] },
    ],
    [
      'quoted entry with an escaped comma (as Node prints "a,b")',
      { san: 'DNS:a.test, DNS:"a\\u002cb", DNS:c.test' },
      { dnsNames: ['a.test', 'a,b', 'c.test'], commonNames: [] },
    ],
    [
      'quoted entry with escaped quote and backslash',
      { san: 'DNS:"q\\"x\\\\y", DNS:c.test' },
      { dnsNames: ['q"x\\y', 'c.test'], commonNames: [] },
    ],
    [
      'quoted URI hiding ", DNS:" does not yield a DNS name',
      { san: 'URI:"http://x.test/a, DNS:evil.test", DNS:c.test' },
      { dnsNames: ['c.test'], commonNames: [] },
    ],
    [
      'quoted URI as Node really prints it',
      { san: 'URI:"http://x.test/a\\u002c DNS:evil.test", DNS:c.test' },
      { dnsNames: ['c.test'], commonNames: [] },
    ],
    [
      'unterminated quote is dropped',
      { san: 'DNS:c.test, DNS:"bad' },
      { dnsNames: ['c.test'], commonNames: [] },
    ],
    [
      'several CNs',
      { cn: ['a.test', 'b.test'] },
      { dnsNames: [], commonNames: ['a.test', 'b.test'] },
    ],
  ];
  for (const [name, input, expected] of rows) {
    test(name, () => assert.deepEqual(presentedFrom(input === null ? {} : peer(input)), expected));
  }
});

// ---- the Verify algorithm ---------------------------------------------------------------------

interface Row<R> {
  name: string;
  cert: CertInput;
  refs: R;
  expected: Expected;
}

const verifyRows: Array<Row<VerifyReferences>> = [
  {
    name: 'SAN exact on the recipient domain',
    cert: { san: 'DNS:mx.example.com, DNS:example.com' },
    refs: { recipientDomain: 'example.com', connectedHosts: ['mx1.example.com'] },
    expected: {
      ok: true,
      matched: 'DNS:example.com ~ recipient-domain:example.com = exact',
      compared: [
        'DNS:mx.example.com ~ recipient-domain:example.com = no-match',
        'DNS:example.com ~ recipient-domain:example.com = exact',
      ],
    },
  },
  {
    name: 'SAN wildcard on the recipient domain',
    cert: { san: 'DNS:*.example.com' },
    refs: { recipientDomain: 'mail.example.com', connectedHosts: [] },
    expected: {
      ok: true,
      matched: 'DNS:*.example.com ~ recipient-domain:mail.example.com = wildcard',
      compared: ['DNS:*.example.com ~ recipient-domain:mail.example.com = wildcard'],
    },
  },
  {
    name: 'exact preferred to an earlier wildcard',
    cert: { san: 'DNS:*.example.com, DNS:mail.example.com' },
    refs: { recipientDomain: 'mail.example.com', connectedHosts: [] },
    expected: {
      ok: true,
      matched: 'DNS:mail.example.com ~ recipient-domain:mail.example.com = exact',
      compared: [
        'DNS:*.example.com ~ recipient-domain:mail.example.com = wildcard',
        'DNS:mail.example.com ~ recipient-domain:mail.example.com = exact',
      ],
    },
  },
  {
    name: 'wildcard does not match two labels',
    cert: { san: 'DNS:*.example.com' },
    refs: { recipientDomain: 'a.b.example.com', connectedHosts: [] },
    expected: {
      ok: false,
      reason: 'name mismatch: certificate names [DNS:*.example.com] do not match a.b.example.com',
      compared: ['DNS:*.example.com ~ recipient-domain:a.b.example.com = no-match'],
    },
  },
  {
    name: 'wildcard does not match the bare parent',
    cert: { san: 'DNS:*.example.com' },
    refs: { recipientDomain: 'example.com', connectedHosts: [] },
    expected: {
      ok: false,
      reason: 'name mismatch: certificate names [DNS:*.example.com] do not match example.com',
      compared: ['DNS:*.example.com ~ recipient-domain:example.com = no-match'],
    },
  },
  {
    name: 'partial-label wildcards refused (SAN and CN)',
    cert: { san: 'DNS:f*.example.com, DNS:*o.example.com', cn: 'fo*.example.com' },
    refs: { recipientDomain: 'foo.example.com', connectedHosts: [] },
    expected: {
      ok: false,
      reason:
        'name mismatch: certificate names [DNS:f*.example.com, DNS:*o.example.com, CN:fo*.example.com] do not match foo.example.com',
      compared: [
        'DNS:f*.example.com ~ recipient-domain:foo.example.com = no-match',
        'DNS:*o.example.com ~ recipient-domain:foo.example.com = no-match',
        'CN:fo*.example.com ~ recipient-domain:foo.example.com = no-match',
      ],
    },
  },
  {
    name: '*.com refused (SAN and CN, also against the MX host)',
    cert: { san: 'DNS:*.com', cn: '*.com' },
    refs: { recipientDomain: 'example.com', connectedHosts: ['mx.com'] },
    expected: {
      ok: false,
      reason: 'name mismatch: certificate names [DNS:*.com, CN:*.com] do not match example.com, mx.com',
      compared: [
        'DNS:*.com ~ recipient-domain:example.com = no-match',
        'CN:*.com ~ recipient-domain:example.com = no-match',
        'CN:*.com ~ connected-host:mx.com = no-match',
      ],
    },
  },
  {
    name: 'CN-only certificate matching the recipient domain',
    cert: { cn: 'example.com' },
    refs: { recipientDomain: 'example.com', connectedHosts: ['mx1.example.com'] },
    expected: {
      ok: true,
      matched: 'CN:example.com ~ recipient-domain:example.com = exact',
      compared: ['CN:example.com ~ recipient-domain:example.com = exact'],
    },
  },
  {
    name: 'CN matches although SANs do not (Verify is lax)',
    cert: { san: 'DNS:mx.other.test', cn: 'example.com' },
    refs: { recipientDomain: 'example.com', connectedHosts: ['mx1.example.com'] },
    expected: {
      ok: true,
      matched: 'CN:example.com ~ recipient-domain:example.com = exact',
      compared: [
        'DNS:mx.other.test ~ recipient-domain:example.com = no-match',
        'CN:example.com ~ recipient-domain:example.com = exact',
      ],
    },
  },
  {
    name: 'CN equals the MX host name',
    cert: { san: 'DNS:mx.other.test', cn: 'mx1.example.com' },
    refs: { recipientDomain: 'example.com', connectedHosts: ['mx1.example.com'] },
    expected: {
      ok: true,
      matched: 'CN:mx1.example.com ~ connected-host:mx1.example.com = exact',
      compared: [
        'DNS:mx.other.test ~ recipient-domain:example.com = no-match',
        'CN:mx1.example.com ~ recipient-domain:example.com = no-match',
        'CN:mx1.example.com ~ connected-host:mx1.example.com = exact',
      ],
    },
  },
  {
    name: 'CN wildcard matching the MX host name',
    cert: { cn: '*.example.com' },
    refs: { recipientDomain: 'example.com', connectedHosts: ['mx1.example.com'] },
    expected: {
      ok: true,
      matched: 'CN:*.example.com ~ connected-host:mx1.example.com = wildcard',
      compared: [
        'CN:*.example.com ~ recipient-domain:example.com = no-match',
        'CN:*.example.com ~ connected-host:mx1.example.com = wildcard',
      ],
    },
  },
  {
    name: 'CN equals the PTR name (second connected host)',
    cert: { cn: 'host-192-0-2-1.isp.test' },
    refs: { recipientDomain: 'example.com', connectedHosts: ['mx1.example.com', 'host-192-0-2-1.isp.test'] },
    expected: {
      ok: true,
      matched: 'CN:host-192-0-2-1.isp.test ~ connected-host:host-192-0-2-1.isp.test = exact',
      compared: [
        'CN:host-192-0-2-1.isp.test ~ recipient-domain:example.com = no-match',
        'CN:host-192-0-2-1.isp.test ~ connected-host:mx1.example.com = no-match',
        'CN:host-192-0-2-1.isp.test ~ connected-host:host-192-0-2-1.isp.test = exact',
      ],
    },
  },
  {
    name: 'SAN equal to the MX host does not count (SANs answer only for the domain)',
    cert: { san: 'DNS:mx1.example.com' },
    refs: { recipientDomain: 'example.com', connectedHosts: ['mx1.example.com'] },
    expected: {
      ok: false,
      reason: 'name mismatch: certificate names [DNS:mx1.example.com] do not match example.com, mx1.example.com',
      compared: ['DNS:mx1.example.com ~ recipient-domain:example.com = no-match'],
    },
  },
  {
    name: 'mismatch names every certificate name and every reference',
    cert: { san: 'DNS:mx.other.test', cn: 'mx.other.test' },
    refs: { recipientDomain: 'example.com', connectedHosts: ['mx1.example.com'] },
    expected: {
      ok: false,
      reason: 'name mismatch: certificate names [DNS:mx.other.test, CN:mx.other.test] do not match example.com, mx1.example.com',
      compared: [
        'DNS:mx.other.test ~ recipient-domain:example.com = no-match',
        'CN:mx.other.test ~ recipient-domain:example.com = no-match',
        'CN:mx.other.test ~ connected-host:mx1.example.com = no-match',
      ],
    },
  },
  {
    name: 'trailing dot on the presented name',
    cert: { san: 'DNS:example.com.' },
    refs: { recipientDomain: 'example.com', connectedHosts: [] },
    expected: {
      ok: true,
      matched: 'DNS:example.com. ~ recipient-domain:example.com = exact',
      compared: ['DNS:example.com. ~ recipient-domain:example.com = exact'],
    },
  },
  {
    name: 'trailing dot on the references (reference shown normalised)',
    cert: { cn: 'mx1.example.com' },
    refs: { recipientDomain: 'example.com.', connectedHosts: ['mx1.example.com.'] },
    expected: {
      ok: true,
      matched: 'CN:mx1.example.com ~ connected-host:mx1.example.com = exact',
      compared: [
        'CN:mx1.example.com ~ recipient-domain:example.com = no-match',
        'CN:mx1.example.com ~ connected-host:mx1.example.com = exact',
      ],
    },
  },
  {
    name: 'uppercase on the presented side',
    cert: { san: 'DNS:EXAMPLE.COM' },
    refs: { recipientDomain: 'example.com', connectedHosts: [] },
    expected: {
      ok: true,
      matched: 'DNS:EXAMPLE.COM ~ recipient-domain:example.com = exact',
      compared: ['DNS:EXAMPLE.COM ~ recipient-domain:example.com = exact'],
    },
  },
  {
    name: 'uppercase on the reference side',
    cert: { cn: 'mx1.example.com' },
    refs: { recipientDomain: 'Example.COM', connectedHosts: ['MX1.Example.Com'] },
    expected: {
      ok: true,
      matched: 'CN:mx1.example.com ~ connected-host:mx1.example.com = exact',
      compared: [
        'CN:mx1.example.com ~ recipient-domain:example.com = no-match',
        'CN:mx1.example.com ~ connected-host:mx1.example.com = exact',
      ],
    },
  },
  {
    name: 'IDN: A-label SAN, U-label recipient domain',
    cert: { san: 'DNS:xn--bcher-kva.test' },
    refs: { recipientDomain: 'bücher.test', connectedHosts: [] },
    expected: {
      ok: true,
      matched: 'DNS:xn--bcher-kva.test ~ recipient-domain:xn--bcher-kva.test = exact',
      compared: ['DNS:xn--bcher-kva.test ~ recipient-domain:xn--bcher-kva.test = exact'],
    },
  },
  {
    name: 'IDN: U-label CN, A-label MX host',
    cert: { cn: 'mx.bücher.test' },
    refs: { recipientDomain: 'xn--bcher-kva.test', connectedHosts: ['mx.xn--bcher-kva.test'] },
    expected: {
      ok: true,
      matched: 'CN:mx.bücher.test ~ connected-host:mx.xn--bcher-kva.test = exact',
      compared: [
        'CN:mx.bücher.test ~ recipient-domain:xn--bcher-kva.test = no-match',
        'CN:mx.bücher.test ~ connected-host:mx.xn--bcher-kva.test = exact',
      ],
    },
  },
  {
    name: 'IP SAN ignored (only entry)',
    cert: { san: 'IP Address:192.0.2.1' },
    refs: { recipientDomain: 'example.com', connectedHosts: ['192.0.2.1'] },
    expected: {
      ok: false,
      reason:
        'no certificate names: the certificate has neither a subjectAltName dNSName nor a subject CN to compare with example.com, 192.0.2.1',
      compared: [],
    },
  },
  {
    name: 'IP SAN ignored beside a DNS SAN',
    cert: { san: 'IP Address:192.0.2.1, DNS:example.com' },
    refs: { recipientDomain: 'example.com', connectedHosts: [] },
    expected: {
      ok: true,
      matched: 'DNS:example.com ~ recipient-domain:example.com = exact',
      compared: ['DNS:example.com ~ recipient-domain:example.com = exact'],
    },
  },
  {
    name: 'empty certificate',
    cert: {},
    refs: { recipientDomain: 'example.com', connectedHosts: ['mx1.example.com'] },
    expected: {
      ok: false,
      reason:
        'no certificate names: the certificate has neither a subjectAltName dNSName nor a subject CN to compare with example.com, mx1.example.com',
      compared: [],
    },
  },
  {
    name: 'quoted SAN entry is parsed, does not match, the next one does',
    cert: { san: 'DNS:"example.com\\u002cevil.test", DNS:example.com' },
    refs: { recipientDomain: 'example.com', connectedHosts: [] },
    expected: {
      ok: true,
      matched: 'DNS:example.com ~ recipient-domain:example.com = exact',
      compared: [
        'DNS:example.com,evil.test ~ recipient-domain:example.com = no-match',
        'DNS:example.com ~ recipient-domain:example.com = exact',
      ],
    },
  },
  {
    name: 'duplicate references are tried once',
    cert: { cn: 'mx.other.test' },
    refs: { recipientDomain: 'example.com', connectedHosts: ['EXAMPLE.com.', 'mx1.example.com', 'mx1.example.com.'] },
    expected: {
      ok: false,
      reason: 'name mismatch: certificate names [CN:mx.other.test] do not match example.com, mx1.example.com',
      compared: [
        'CN:mx.other.test ~ recipient-domain:example.com = no-match',
        'CN:mx.other.test ~ connected-host:mx1.example.com = no-match',
      ],
    },
  },
  {
    name: 'invalid reference is named in the reason',
    cert: { san: 'DNS:example.com' },
    refs: { recipientDomain: 'exa mple.com', connectedHosts: [] },
    expected: {
      ok: false,
      reason:
        'name mismatch: certificate names [DNS:example.com] do not match exa mple.com; not a valid domain name: "exa mple.com"',
      compared: ['DNS:example.com ~ recipient-domain:exa mple.com = no-match'],
    },
  },
];

describe('checkVerify', () => {
  for (const row of verifyRows) {
    test(row.name, () => {
      const verdict = checkVerify(presentedFrom(peer(row.cert)), row.refs);
      assert.equal(verdict.algorithm, 'verify');
      assert.deepEqual(summarise(verdict), row.expected);
    });
  }
});

// ---- the Hosted algorithm ---------------------------------------------------------------------

const hostedRows: Array<Row<HostedReferences>> = [
  {
    name: 'SAN exact on the recipient domain',
    cert: { san: 'DNS:mx.example.com, DNS:example.com' },
    refs: { recipientDomain: 'example.com', mxHost: 'mx1.example.com' },
    expected: {
      ok: true,
      matched: 'DNS:example.com ~ recipient-domain:example.com = exact',
      compared: [
        'DNS:mx.example.com ~ recipient-domain:example.com = no-match',
        'DNS:example.com ~ recipient-domain:example.com = exact',
      ],
    },
  },
  {
    name: 'SAN wildcard on the recipient domain',
    cert: { san: 'DNS:*.example.com' },
    refs: { recipientDomain: 'mail.example.com' },
    expected: {
      ok: true,
      matched: 'DNS:*.example.com ~ recipient-domain:mail.example.com = wildcard',
      compared: ['DNS:*.example.com ~ recipient-domain:mail.example.com = wildcard'],
    },
  },
  {
    name: 'wildcard does not match two labels',
    cert: { san: 'DNS:*.example.com' },
    refs: { recipientDomain: 'a.b.example.com' },
    expected: {
      ok: false,
      reason: 'name mismatch: certificate names [DNS:*.example.com] do not match a.b.example.com',
      compared: ['DNS:*.example.com ~ recipient-domain:a.b.example.com = no-match'],
    },
  },
  {
    name: 'wildcard does not match the bare parent, but does match the MX host',
    cert: { san: 'DNS:*.example.com' },
    refs: { recipientDomain: 'example.com', mxHost: 'mx1.example.com' },
    expected: {
      ok: true,
      matched: 'DNS:*.example.com ~ mx-host:mx1.example.com = wildcard',
      compared: [
        'DNS:*.example.com ~ recipient-domain:example.com = no-match',
        'DNS:*.example.com ~ mx-host:mx1.example.com = wildcard',
      ],
    },
  },
  {
    name: 'wildcard does not match the bare parent',
    cert: { san: 'DNS:*.example.com' },
    refs: { recipientDomain: 'example.com' },
    expected: {
      ok: false,
      reason: 'name mismatch: certificate names [DNS:*.example.com] do not match example.com',
      compared: ['DNS:*.example.com ~ recipient-domain:example.com = no-match'],
    },
  },
  {
    name: 'partial-label wildcards refused',
    cert: { san: 'DNS:f*.example.com, DNS:*o.example.com' },
    refs: { recipientDomain: 'foo.example.com', mxHost: 'foo.example.com' },
    expected: {
      ok: false,
      reason: 'name mismatch: certificate names [DNS:f*.example.com, DNS:*o.example.com] do not match foo.example.com',
      compared: [
        'DNS:f*.example.com ~ recipient-domain:foo.example.com = no-match',
        'DNS:*o.example.com ~ recipient-domain:foo.example.com = no-match',
      ],
    },
  },
  {
    name: '*.com refused',
    cert: { san: 'DNS:*.com' },
    refs: { recipientDomain: 'example.com', routeHost: 'relay.com', mxHost: 'mx.com' },
    expected: {
      ok: false,
      reason: 'name mismatch: certificate names [DNS:*.com] do not match example.com, relay.com, mx.com',
      compared: [
        'DNS:*.com ~ recipient-domain:example.com = no-match',
        'DNS:*.com ~ route-host:relay.com = no-match',
        'DNS:*.com ~ mx-host:mx.com = no-match',
      ],
    },
  },
  {
    name: 'CN-only certificate matching the recipient domain',
    cert: { cn: 'example.com' },
    refs: { recipientDomain: 'example.com', mxHost: 'mx1.example.com' },
    expected: {
      ok: true,
      matched: 'CN:example.com ~ recipient-domain:example.com = exact',
      compared: ['CN:example.com ~ recipient-domain:example.com = exact'],
    },
  },
  {
    name: 'CN-only certificate matching the MX host',
    cert: { cn: 'mx1.example.com' },
    refs: { recipientDomain: 'example.com', mxHost: 'mx1.example.com' },
    expected: {
      ok: true,
      matched: 'CN:mx1.example.com ~ mx-host:mx1.example.com = exact',
      compared: [
        'CN:mx1.example.com ~ recipient-domain:example.com = no-match',
        'CN:mx1.example.com ~ mx-host:mx1.example.com = exact',
      ],
    },
  },
  {
    name: 'CN matches but SANs do not: fails (CN ignored when dNSNames exist)',
    cert: { san: 'DNS:mx.other.test', cn: 'example.com' },
    refs: { recipientDomain: 'example.com', mxHost: 'mx1.example.com' },
    expected: {
      ok: false,
      reason:
        'name mismatch: certificate names [DNS:mx.other.test] do not match example.com, mx1.example.com (CN:example.com not considered: the certificate has dNSName entries)',
      compared: [
        'DNS:mx.other.test ~ recipient-domain:example.com = no-match',
        'DNS:mx.other.test ~ mx-host:mx1.example.com = no-match',
      ],
    },
  },
  {
    name: 'an IP-only SAN is no dNSName: the CN is used',
    cert: { san: 'IP Address:192.0.2.1', cn: 'example.com' },
    refs: { recipientDomain: 'example.com' },
    expected: {
      ok: true,
      matched: 'CN:example.com ~ recipient-domain:example.com = exact',
      compared: ['CN:example.com ~ recipient-domain:example.com = exact'],
    },
  },
  {
    name: 'IP SAN ignored beside a DNS SAN',
    cert: { san: 'IP Address:192.0.2.1, DNS:mx1.example.com' },
    refs: { recipientDomain: 'example.com', mxHost: 'mx1.example.com' },
    expected: {
      ok: true,
      matched: 'DNS:mx1.example.com ~ mx-host:mx1.example.com = exact',
      compared: [
        'DNS:mx1.example.com ~ recipient-domain:example.com = no-match',
        'DNS:mx1.example.com ~ mx-host:mx1.example.com = exact',
      ],
    },
  },
  {
    name: 'SAN equal to the MX host name',
    cert: { san: 'DNS:mx1.example.com' },
    refs: { recipientDomain: 'example.com', mxHost: 'mx1.example.com' },
    expected: {
      ok: true,
      matched: 'DNS:mx1.example.com ~ mx-host:mx1.example.com = exact',
      compared: [
        'DNS:mx1.example.com ~ recipient-domain:example.com = no-match',
        'DNS:mx1.example.com ~ mx-host:mx1.example.com = exact',
      ],
    },
  },
  {
    name: 'SAN equal to the SMTP-route host; MX host not tried',
    cert: { san: 'DNS:relay.example.net' },
    refs: { recipientDomain: 'example.com', routeHost: 'relay.example.net', mxHost: 'mx1.example.com' },
    expected: {
      ok: true,
      matched: 'DNS:relay.example.net ~ route-host:relay.example.net = exact',
      compared: [
        'DNS:relay.example.net ~ recipient-domain:example.com = no-match',
        'DNS:relay.example.net ~ route-host:relay.example.net = exact',
      ],
    },
  },
  {
    name: 'order: recipient domain first, even when other names appear earlier in the certificate',
    cert: { san: 'DNS:relay.example.net, DNS:mx1.example.com, DNS:example.com' },
    refs: { recipientDomain: 'example.com', routeHost: 'relay.example.net', mxHost: 'mx1.example.com' },
    expected: {
      ok: true,
      matched: 'DNS:example.com ~ recipient-domain:example.com = exact',
      compared: [
        'DNS:relay.example.net ~ recipient-domain:example.com = no-match',
        'DNS:mx1.example.com ~ recipient-domain:example.com = no-match',
        'DNS:example.com ~ recipient-domain:example.com = exact',
      ],
    },
  },
  {
    name: 'order: route host before MX host',
    cert: { san: 'DNS:mx1.example.com, DNS:relay.example.net' },
    refs: { recipientDomain: 'example.com', routeHost: 'relay.example.net', mxHost: 'mx1.example.com' },
    expected: {
      ok: true,
      matched: 'DNS:relay.example.net ~ route-host:relay.example.net = exact',
      compared: [
        'DNS:mx1.example.com ~ recipient-domain:example.com = no-match',
        'DNS:relay.example.net ~ recipient-domain:example.com = no-match',
        'DNS:mx1.example.com ~ route-host:relay.example.net = no-match',
        'DNS:relay.example.net ~ route-host:relay.example.net = exact',
      ],
    },
  },
  {
    name: 'order: a wildcard match on an earlier reference beats an exact match on a later one',
    cert: { san: 'DNS:*.example.com, DNS:mx1.example.net' },
    refs: { recipientDomain: 'mail.example.com', mxHost: 'mx1.example.net' },
    expected: {
      ok: true,
      matched: 'DNS:*.example.com ~ recipient-domain:mail.example.com = wildcard',
      compared: [
        'DNS:*.example.com ~ recipient-domain:mail.example.com = wildcard',
        'DNS:mx1.example.net ~ recipient-domain:mail.example.com = no-match',
      ],
    },
  },
  {
    name: 'order: exact before wildcard for the same reference',
    cert: { san: 'DNS:*.example.com, DNS:relay.example.com' },
    refs: { recipientDomain: 'example.com', routeHost: 'relay.example.com', mxHost: 'mx1.example.com' },
    expected: {
      ok: true,
      matched: 'DNS:relay.example.com ~ route-host:relay.example.com = exact',
      compared: [
        'DNS:*.example.com ~ recipient-domain:example.com = no-match',
        'DNS:relay.example.com ~ recipient-domain:example.com = no-match',
        'DNS:*.example.com ~ route-host:relay.example.com = wildcard',
        'DNS:relay.example.com ~ route-host:relay.example.com = exact',
      ],
    },
  },
  {
    name: 'trailing dots on both sides',
    cert: { san: 'DNS:mx1.example.com.' },
    refs: { recipientDomain: 'example.com.', mxHost: 'mx1.example.com.' },
    expected: {
      ok: true,
      matched: 'DNS:mx1.example.com. ~ mx-host:mx1.example.com = exact',
      compared: [
        'DNS:mx1.example.com. ~ recipient-domain:example.com = no-match',
        'DNS:mx1.example.com. ~ mx-host:mx1.example.com = exact',
      ],
    },
  },
  {
    name: 'uppercase on both sides',
    cert: { san: 'DNS:*.EXAMPLE.com' },
    refs: { recipientDomain: 'EXAMPLE.COM', routeHost: 'Relay.Example.Com' },
    expected: {
      ok: true,
      matched: 'DNS:*.EXAMPLE.com ~ route-host:relay.example.com = wildcard',
      compared: [
        'DNS:*.EXAMPLE.com ~ recipient-domain:example.com = no-match',
        'DNS:*.EXAMPLE.com ~ route-host:relay.example.com = wildcard',
      ],
    },
  },
  {
    name: 'IDN: A-label SAN, U-label recipient domain',
    cert: { san: 'DNS:xn--bcher-kva.test' },
    refs: { recipientDomain: 'bücher.test' },
    expected: {
      ok: true,
      matched: 'DNS:xn--bcher-kva.test ~ recipient-domain:xn--bcher-kva.test = exact',
      compared: ['DNS:xn--bcher-kva.test ~ recipient-domain:xn--bcher-kva.test = exact'],
    },
  },
  {
    name: 'IDN: A-label wildcard SAN, U-label MX host',
    cert: { san: 'DNS:*.xn--bcher-kva.test' },
    refs: { recipientDomain: 'bücher.test', mxHost: 'mx.bücher.test' },
    expected: {
      ok: true,
      matched: 'DNS:*.xn--bcher-kva.test ~ mx-host:mx.xn--bcher-kva.test = wildcard',
      compared: [
        'DNS:*.xn--bcher-kva.test ~ recipient-domain:xn--bcher-kva.test = no-match',
        'DNS:*.xn--bcher-kva.test ~ mx-host:mx.xn--bcher-kva.test = wildcard',
      ],
    },
  },
  {
    name: 'empty certificate',
    cert: {},
    refs: { recipientDomain: 'example.com', routeHost: 'relay.example.net', mxHost: 'mx1.example.com' },
    expected: {
      ok: false,
      reason:
        'no certificate names: the certificate has neither a subjectAltName dNSName nor a subject CN to compare with example.com, relay.example.net, mx1.example.com',
      compared: [],
    },
  },
  {
    name: 'empty optional references are not tried; duplicates once',
    cert: { san: 'DNS:mx.other.test' },
    refs: { recipientDomain: 'example.com', routeHost: '', mxHost: 'Example.com.' },
    expected: {
      ok: false,
      reason: 'name mismatch: certificate names [DNS:mx.other.test] do not match example.com',
      compared: ['DNS:mx.other.test ~ recipient-domain:example.com = no-match'],
    },
  },
  {
    name: 'invalid route host is named in the reason',
    cert: { san: 'DNS:mx.other.test' },
    refs: { recipientDomain: 'example.com', routeHost: '[192.0.2.7]' },
    expected: {
      ok: false,
      reason:
        'name mismatch: certificate names [DNS:mx.other.test] do not match example.com, [192.0.2.7]; not a valid domain name: "[192.0.2.7]"',
      compared: [
        'DNS:mx.other.test ~ recipient-domain:example.com = no-match',
        'DNS:mx.other.test ~ route-host:[192.0.2.7] = no-match',
      ],
    },
  },
];

describe('checkHosted', () => {
  for (const row of hostedRows) {
    test(row.name, () => {
      const verdict = checkHosted(presentedFrom(peer(row.cert)), row.refs);
      assert.equal(verdict.algorithm, 'hosted');
      assert.deepEqual(summarise(verdict), row.expected);
    });
  }
});

// ---- real certificates ------------------------------------------------------------------------

interface Generated {
  pem: string;
  key: string;
}

/** A self-signed certificate made by openssl from a config file (so SAN entries can hold commas). */
function generate(dir: string, name: string, config: string): Generated {
  const cnf = join(dir, `${name}.cnf`);
  const certPath = join(dir, `${name}.pem`);
  const keyPath = join(dir, `${name}.key`);
  writeFileSync(cnf, config);
  execFileSync(
    'openssl',
    ['req', '-x509', '-utf8', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', keyPath, '-out', certPath, '-days', '1', '-config', cnf],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return { pem: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
}

const SAN_CONFIG = `[req]
distinguished_name = dn
prompt = no
x509_extensions = ext
[dn]
CN = mx.example.com
O = Foo\\, Inc
[ext]
subjectAltName = @alt
[alt]
DNS.1 = mx1.example.com
DNS.2 = *.example.net
IP.1 = 192.0.2.1
IP.2 = ::1
DNS.3 = a,b.example.com
email.1 = postmaster@example.com
DNS.4 = xn--bcher-kva.test
`;

const CN_ONLY_CONFIG = `[req]
distinguished_name = dn
prompt = no
x509_extensions = ext
[dn]
CN = mx.bücher.test
[ext]
basicConstraints = CA:FALSE
`;

const SAN_EXPECTED: PresentedIdentity = {
  dnsNames: ['mx1.example.com', '*.example.net', 'a,b.example.com', 'xn--bcher-kva.test'],
  commonNames: ['mx.example.com'],
};
const CN_ONLY_EXPECTED: PresentedIdentity = { dnsNames: [], commonNames: ['mx.bücher.test'] };

/** The certificate as a TLS client sees it: a real handshake against a loopback server. */
async function peerCertificateOf(g: Generated): Promise<tls.PeerCertificate> {
  const server = tls.createServer({ key: g.key, cert: g.pem }, (socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise<tls.PeerCertificate>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
        const cert = socket.getPeerCertificate();
        socket.destroy();
        resolve(cert);
      });
      socket.on('error', reject);
    });
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe('real certificates from openssl', () => {
  let dir = '';
  let withSan: Generated;
  let cnOnly: Generated;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'postern-identity-'));
    withSan = generate(dir, 'san', SAN_CONFIG);
    cnOnly = generate(dir, 'cn', CN_ONLY_CONFIG);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('X509Certificate strings are in the format the parser expects', () => {
    const x = new X509Certificate(withSan.pem);
    assert.equal(
      x.subjectAltName,
      'DNS:mx1.example.com, DNS:*.example.net, IP Address:192.0.2.1, IP Address:0:0:0:0:0:0:0:1, ' +
        'DNS:"a\\u002cb.example.com", email:postmaster@example.com, DNS:xn--bcher-kva.test',
    );
    assert.equal(x.subject, 'CN=mx.example.com\nO=Foo\\, Inc');
  });

  test('presentedFromX509: SAN certificate', () => {
    assert.deepEqual(presentedFromX509(new X509Certificate(withSan.pem)), SAN_EXPECTED);
  });

  test('presentedFromX509: CN-only certificate with a UTF-8 CN', () => {
    assert.deepEqual(presentedFromX509(new X509Certificate(cnOnly.pem)), CN_ONLY_EXPECTED);
  });

  test('presentedFrom: tls.PeerCertificate from a handshake agrees with the X509 adapter', async () => {
    assert.deepEqual(presentedFrom(await peerCertificateOf(withSan)), SAN_EXPECTED);
    assert.deepEqual(presentedFrom(await peerCertificateOf(cnOnly)), CN_ONLY_EXPECTED);
  });

  const verdicts: Array<{
    name: string;
    cert: 'san' | 'cn';
    check: (p: PresentedIdentity) => IdentityVerdict;
    expected: Expected;
  }> = [
    {
      name: 'Verify: CN equals the MX host (SAN certificate)',
      cert: 'san',
      check: (p) => checkVerify(p, { recipientDomain: 'example.com', connectedHosts: ['mx.example.com'] }),
      expected: {
        ok: true,
        matched: 'CN:mx.example.com ~ connected-host:mx.example.com = exact',
        compared: [
          'DNS:mx1.example.com ~ recipient-domain:example.com = no-match',
          'DNS:*.example.net ~ recipient-domain:example.com = no-match',
          'DNS:a,b.example.com ~ recipient-domain:example.com = no-match',
          'DNS:xn--bcher-kva.test ~ recipient-domain:example.com = no-match',
          'CN:mx.example.com ~ recipient-domain:example.com = no-match',
          'CN:mx.example.com ~ connected-host:mx.example.com = exact',
        ],
      },
    },
    {
      name: 'Hosted: the same certificate and host fail (CN ignored)',
      cert: 'san',
      check: (p) => checkHosted(p, { recipientDomain: 'example.com', mxHost: 'mx.example.com' }),
      expected: {
        ok: false,
        reason:
          'name mismatch: certificate names [DNS:mx1.example.com, DNS:*.example.net, DNS:a,b.example.com, DNS:xn--bcher-kva.test] do not match example.com, mx.example.com (CN:mx.example.com not considered: the certificate has dNSName entries)',
        compared: [
          'DNS:mx1.example.com ~ recipient-domain:example.com = no-match',
          'DNS:*.example.net ~ recipient-domain:example.com = no-match',
          'DNS:a,b.example.com ~ recipient-domain:example.com = no-match',
          'DNS:xn--bcher-kva.test ~ recipient-domain:example.com = no-match',
          'DNS:mx1.example.com ~ mx-host:mx.example.com = no-match',
          'DNS:*.example.net ~ mx-host:mx.example.com = no-match',
          'DNS:a,b.example.com ~ mx-host:mx.example.com = no-match',
          'DNS:xn--bcher-kva.test ~ mx-host:mx.example.com = no-match',
        ],
      },
    },
    {
      name: 'Hosted: wildcard SAN on the route host, MX host not tried',
      cert: 'san',
      check: (p) =>
        checkHosted(p, { recipientDomain: 'example.com', routeHost: 'relay.example.net', mxHost: 'mx1.example.com' }),
      expected: {
        ok: true,
        matched: 'DNS:*.example.net ~ route-host:relay.example.net = wildcard',
        compared: [
          'DNS:mx1.example.com ~ recipient-domain:example.com = no-match',
          'DNS:*.example.net ~ recipient-domain:example.com = no-match',
          'DNS:a,b.example.com ~ recipient-domain:example.com = no-match',
          'DNS:xn--bcher-kva.test ~ recipient-domain:example.com = no-match',
          'DNS:mx1.example.com ~ route-host:relay.example.net = no-match',
          'DNS:*.example.net ~ route-host:relay.example.net = wildcard',
          'DNS:a,b.example.com ~ route-host:relay.example.net = no-match',
          'DNS:xn--bcher-kva.test ~ route-host:relay.example.net = no-match',
        ],
      },
    },
    {
      name: 'Hosted: U-label recipient domain against an A-label SAN',
      cert: 'san',
      check: (p) => checkHosted(p, { recipientDomain: 'bücher.test', mxHost: 'mx1.example.com' }),
      expected: {
        ok: true,
        matched: 'DNS:xn--bcher-kva.test ~ recipient-domain:xn--bcher-kva.test = exact',
        compared: [
          'DNS:mx1.example.com ~ recipient-domain:xn--bcher-kva.test = no-match',
          'DNS:*.example.net ~ recipient-domain:xn--bcher-kva.test = no-match',
          'DNS:a,b.example.com ~ recipient-domain:xn--bcher-kva.test = no-match',
          'DNS:xn--bcher-kva.test ~ recipient-domain:xn--bcher-kva.test = exact',
        ],
      },
    },
    {
      name: 'Hosted: CN-only certificate, U-label CN against A-label MX host',
      cert: 'cn',
      check: (p) => checkHosted(p, { recipientDomain: 'xn--bcher-kva.test', mxHost: 'mx.xn--bcher-kva.test' }),
      expected: {
        ok: true,
        matched: 'CN:mx.bücher.test ~ mx-host:mx.xn--bcher-kva.test = exact',
        compared: [
          'CN:mx.bücher.test ~ recipient-domain:xn--bcher-kva.test = no-match',
          'CN:mx.bücher.test ~ mx-host:mx.xn--bcher-kva.test = exact',
        ],
      },
    },
    {
      name: 'Verify: CN-only certificate, U-label CN against A-label MX host',
      cert: 'cn',
      check: (p) => checkVerify(p, { recipientDomain: 'xn--bcher-kva.test', connectedHosts: ['mx.xn--bcher-kva.test'] }),
      expected: {
        ok: true,
        matched: 'CN:mx.bücher.test ~ connected-host:mx.xn--bcher-kva.test = exact',
        compared: [
          'CN:mx.bücher.test ~ recipient-domain:xn--bcher-kva.test = no-match',
          'CN:mx.bücher.test ~ connected-host:mx.xn--bcher-kva.test = exact',
        ],
      },
    },
  ];
  for (const row of verdicts) {
    test(row.name, () => {
      const pem = row.cert === 'san' ? withSan.pem : cnOnly.pem;
      assert.deepEqual(summarise(row.check(presentedFromX509(new X509Certificate(pem)))), row.expected);
    });
  }
});
