/**
 * Certificate names and hostile text, by class (issue T2 1/9): certificates made with the test
 * CA that a careless or hostile server can present (undecodable or empty extensions, empty or
 * odd subjects, NUL and non-UTF-8 octets, thousands of entries, over-long labels), names that
 * only look like the reference after percent-decoding or UTS #46 mapping, homographs, and
 * wildcards over public suffixes from both sections of the Public Suffix List. Each row gives
 * the certificate, the references and the exact verdict.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { checkHosted, checkVerify, presentedFrom, type IdentityVerdict } from '../src/tls/identity.js';
import { isPublicSuffix, normaliseDnsName, normaliseDomain } from '../src/tls/names.js';
import { isULabel } from '../src/tls/idna.js';
import { TestCA, SAN_TAG, STRING_TAG, ascii, rawName, rawSan, tlv, type CertOptions } from './peers/ca.js';

const utf8 = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'utf8'));
const bmp = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'utf16le').swap16());
const dns = (s: string): [number, Uint8Array] => [SAN_TAG.dns, ascii(s)];
const cn = (s: string): [number, Uint8Array] => [STRING_TAG.utf8, utf8(s)];

interface Row {
  name: string;
  cert: CertOptions;
  recipient: string;
  mxHost?: string;
  /** The verdict of Verify and of Hosted: true = pass, or the exact reason / a pattern. */
  verify: true | string | RegExp;
  hosted: true | string | RegExp;
}

const UNDECODABLE = 'subjectAltName present but undecodable';

const rows: Row[] = [
  // ---- class 1: certificates whose names cannot be read fail closed, with the reason -------
  {
    name: 'SAN that does not decode (length past its end), CN naming the domain: no CN fallback',
    cert: { cn: 'example.com', rawSan: Uint8Array.from([0x30, 0x03, 0x82, 0x05, 0x61]) },
    recipient: 'example.com',
    verify: UNDECODABLE,
    hosted: UNDECODABLE,
  },
  {
    name: 'SAN that is not a SEQUENCE',
    cert: { cn: 'example.com', rawSan: tlv(0x04, ascii('example.com')) },
    recipient: 'example.com',
    verify: UNDECODABLE,
    hosted: UNDECODABLE,
  },
  {
    name: 'SAN with trailing garbage after the SEQUENCE',
    cert: { cn: 'example.com', rawSan: Uint8Array.from([...rawSan([dns('example.com')]), 0x00]) },
    recipient: 'example.com',
    verify: UNDECODABLE,
    hosted: UNDECODABLE,
  },
  {
    name: 'SAN holding a universal-class element instead of a GeneralName',
    cert: { cn: 'example.com', rawSan: tlv(0x30, tlv(0x16, ascii('example.com'))) },
    recipient: 'example.com',
    verify: UNDECODABLE,
    hosted: UNDECODABLE,
  },
  {
    name: 'empty SAN (no entries)',
    cert: { cn: 'example.com', rawSan: rawSan([]) },
    recipient: 'example.com',
    verify: 'subjectAltName present but empty',
    hosted: 'subjectAltName present but empty',
  },
  {
    name: 'empty subject and no SAN',
    cert: { rawSubject: rawName([]) },
    recipient: 'example.com',
    verify: /^no certificate names: /,
    hosted: /^no certificate names: /,
  },
  {
    name: 'empty subject, SAN naming the domain',
    cert: { rawSubject: rawName([]), rawSan: rawSan([dns('example.com')]) },
    recipient: 'example.com',
    verify: true,
    hosted: true,
  },
  {
    name: 'SAN with only IP and URI entries, CN naming the domain (no dNSName: Hosted uses the CN)',
    cert: { cn: 'example.com', rawSan: rawSan([[SAN_TAG.ip, [192, 0, 2, 1]], [SAN_TAG.uri, ascii('https://example.com/')]]) },
    recipient: 'example.com',
    verify: true,
    hosted: true,
  },
  {
    name: 'SAN with only IP and URI entries, no CN',
    cert: { rawSubject: rawName([]), rawSan: rawSan([[SAN_TAG.ip, [192, 0, 2, 1]], [SAN_TAG.uri, ascii('https://example.com/')]]) },
    recipient: 'example.com',
    verify: /^no certificate names: /,
    hosted: /^no certificate names: /,
  },
  {
    name: 'an IP-address SAN is never a reference identity (recipient spelled as that address)',
    cert: { cn: 'x.invalid', rawSan: rawSan([[SAN_TAG.ip, [192, 0, 2, 1]]]) },
    recipient: '192.0.2.1',
    verify: /^name mismatch: /,
    hosted: /^name mismatch: /,
  },
  {
    name: 'several CNs: Verify and Hosted (no dNSName) consider each',
    cert: { rawSubject: rawName([cn('other.invalid'), cn('example.com')]) },
    recipient: 'example.com',
    verify: true,
    hosted: true,
  },
  {
    name: 'BMPString CN decodes to the domain',
    cert: { rawSubject: rawName([[STRING_TAG.bmp, bmp('example.com')]]) },
    recipient: 'example.com',
    verify: true,
    hosted: true,
  },
  {
    name: 'BMPString CN with an odd length never matches',
    cert: { rawSubject: rawName([[STRING_TAG.bmp, [...bmp('example.com'), 0x00]]]) },
    recipient: 'example.com',
    // asn1js refuses the element outright: the whole certificate is unreadable (fail closed).
    verify: 'the certificate could not be decoded',
    hosted: 'the certificate could not be decoded',
  },
  {
    name: 'BMPString CN with a lone surrogate never matches',
    cert: { rawSubject: rawName([[STRING_TAG.bmp, [0xd8, 0x00, ...bmp('example.com')]]]) },
    recipient: 'example.com',
    verify: /^name mismatch: /,
    hosted: /^name mismatch: /,
  },
  {
    name: 'thousands of dNSNames, the last one matches',
    cert: { rawSan: rawSan([...Array.from({ length: 3000 }, (_, i) => dns(`h${i}.other.test`)), dns('example.com')]) },
    recipient: 'example.com',
    verify: true,
    hosted: true,
  },
  {
    name: 'thousands of dNSNames, none matches: the reason lists ten and counts the rest',
    cert: { rawSan: rawSan(Array.from({ length: 3000 }, (_, i) => dns(`h${i}.other.test`))) },
    recipient: 'example.com',
    verify: /^name mismatch: certificate names \[DNS:h0\.other\.test, .*DNS:h9\.other\.test, … and 2991 more\] do not match example\.com$/,
    hosted: /… and 2990 more\] do not match example\.com \(/,
  },
  // ---- NUL, non-UTF-8, controls, over-long labels: the name matches nothing ----------------
  {
    name: 'NUL inside a dNSName (example.com\\0.evil.test)',
    cert: { cn: 'x.invalid', rawSan: rawSan([[SAN_TAG.dns, [...ascii('example.com'), 0, ...ascii('.evil.test')]]]) },
    recipient: 'example.com',
    verify: /^name mismatch: /,
    hosted: /^name mismatch: /,
  },
  {
    name: 'NUL at the end of a dNSName',
    cert: { cn: 'x.invalid', rawSan: rawSan([[SAN_TAG.dns, [...ascii('example.com'), 0]]]) },
    recipient: 'example.com',
    verify: /^name mismatch: /,
    hosted: /^name mismatch: /,
  },
  {
    name: 'NUL inside a CN',
    cert: { rawSubject: rawName([[STRING_TAG.utf8, [...ascii('example.com'), 0, ...ascii('.evil.test')]]]) },
    recipient: 'example.com',
    verify: /^name mismatch: /,
    hosted: /^name mismatch: /,
  },
  {
    name: 'non-UTF-8 octets in a UTF8String CN (0xe9 is not "é")',
    cert: { rawSubject: rawName([[STRING_TAG.utf8, [0x62, 0xfc, ...ascii('cher.test')]]]) },
    recipient: 'xn--bcher-kva.test',
    verify: /^name mismatch: certificate names \[CN:\\x62\\xfc/,
    hosted: /^name mismatch: certificate names \[CN:\\x62\\xfc/,
  },
  {
    name: 'octets over 0x7f in a dNSName (UTF-8 of bücher) never match the A-label',
    cert: { cn: 'x.invalid', rawSan: rawSan([[SAN_TAG.dns, utf8('bücher.test')]]) },
    recipient: 'xn--bcher-kva.test',
    verify: /^name mismatch: /,
    hosted: /^name mismatch: /,
  },
  {
    name: 'Teletex CN with octets over 0x7f never matches',
    cert: { rawSubject: rawName([[STRING_TAG.teletex, [0x62, 0xfc, ...ascii('cher.test')]]]) },
    recipient: 'xn--bcher-kva.test',
    verify: /^name mismatch: /,
    hosted: /^name mismatch: /,
  },
  {
    name: 'CR LF and ESC in a dNSName',
    cert: { cn: 'x.invalid', rawSan: rawSan([[SAN_TAG.dns, ascii('example.com\r\nX: \x1b[2J')]]) },
    recipient: 'example.com',
    verify: /^name mismatch: /,
    hosted: /^name mismatch: /,
  },
  {
    name: 'a 64-octet label in a dNSName',
    cert: { cn: 'x.invalid', rawSan: rawSan([dns(`${'a'.repeat(64)}.example.com`)]) },
    recipient: `${'a'.repeat(64)}.example.com`,
    verify: /^name mismatch: .*not a valid domain name/,
    hosted: /^name mismatch: .*not a valid domain name/,
  },
  {
    name: 'a wildcard over a 64-octet label',
    cert: { cn: 'x.invalid', rawSan: rawSan([dns(`*.${'b'.repeat(64)}.example.com`)]) },
    recipient: `a.${'b'.repeat(64)}.example.com`,
    verify: /^name mismatch: /,
    hosted: /^name mismatch: /,
  },
  // ---- class 2: a presented name is compared as it is, never mapped -------------------------
  ...[
    ['percent-encoded letter', 'ex%61mple.com'],
    ['percent-encoded dot', 'example%2ecom'],
    ['full-width letters', 'ｅｘａｍｐｌｅ.com'],
    ['ideographic full stop U+3002', 'example\u3002com'],
    ['full-width full stop U+FF0E', 'example\uff0ecom'],
    ['soft hyphen U+00AD', 'exam\u00adple.com'],
    ['feminine ordinal U+00AA for "a"', 'ex\u00aample.com'],
    ['zero-width space', 'exa\u200bmple.com'],
    ['upper-case non-ASCII (Kelvin sign for k)', 'e\u212aample.com'],
    ['space', 'example .com'],
  ].flatMap(([what, name]): Row[] => [
    {
      name: `dNSName with ${what}`,
      cert: { cn: 'x.invalid', rawSan: rawSan([[SAN_TAG.dns, utf8(name!)]]) },
      recipient: 'example.com',
      verify: /^name mismatch: /,
      hosted: /^name mismatch: /,
    },
    {
      name: `CN with ${what}`,
      cert: { rawSubject: rawName([cn(name!)]) },
      recipient: 'example.com',
      verify: /^name mismatch: /,
      hosted: /^name mismatch: /,
    },
  ]),
  {
    name: 'homograph: Cyrillic "а" in the CN is another name',
    cert: { rawSubject: rawName([cn('ex\u0430mple.com')]) },
    recipient: 'example.com',
    verify: /^name mismatch: /,
    hosted: /^name mismatch: /,
  },
  {
    name: 'homograph: its own A-label matches only itself',
    cert: { rawSubject: rawName([cn('ex\u0430mple.com')]) },
    recipient: normaliseDomain('ex\u0430mple.com')!,
    verify: true,
    hosted: true,
  },
  {
    name: 'a valid U-label CN (IDNA2008) matches its A-label',
    cert: { rawSubject: rawName([cn('mx.bücher.test')]) },
    recipient: 'other.test',
    mxHost: 'mx.xn--bcher-kva.test',
    verify: true,
    hosted: true,
  },
  {
    name: 'an A-label dNSName that does not decode matches nothing, not even itself',
    cert: { cn: 'x.invalid', rawSan: rawSan([dns('xn--zz.test')]) },
    recipient: 'xn--zz.test',
    verify: /^name mismatch: /,
    hosted: /^name mismatch: /,
  },
  {
    name: 'an A-label of a mapped name (xn-- of upper-case "Bücher") matches nothing',
    cert: { cn: 'x.invalid', rawSan: rawSan([dns('xn--bcher-zxa.test')]) },
    recipient: 'xn--bcher-kva.test',
    verify: /^name mismatch: /,
    hosted: /^name mismatch: /,
  },
  // ---- class 4: wildcards over public suffixes, both sections of the list -------------------
  ...[
    ['*.com', 'example.com'],
    ['*.co.uk', 'example.co.uk'],
    ['*.s3.amazonaws.com', 'bucket.s3.amazonaws.com'],
    ['*.github.io', 'someone.github.io'],
    ['*.blogspot.com', 'someone.blogspot.com'],
    ['*.xn--p1ai', 'xn--e1afmkfd.xn--p1ai'],
    ['*.test', 'example.test'],
  ].map(([pattern, ref]): Row => ({
    name: `wildcard over the public suffix ${pattern!.slice(2)} never matches ${ref}`,
    cert: { cn: 'x.invalid', rawSan: rawSan([dns(pattern!)]) },
    recipient: ref!,
    verify: /^name mismatch: /,
    hosted: /^name mismatch: /,
  })),
  ...[
    ['*.example.co.uk', 'mx.example.co.uk'],
    ['*.someone.github.io', 'mx.someone.github.io'],
    ['*.example.com', 'mx.example.com'],
  ].map(([pattern, ref]): Row => ({
    name: `wildcard one label under a registrable domain: ${pattern} matches ${ref}`,
    cert: { cn: 'x.invalid', rawSan: rawSan([dns(pattern!)]) },
    recipient: ref!,
    verify: true,
    hosted: true,
  })),
];

function expectVerdict(v: IdentityVerdict, want: true | string | RegExp, what: string): void {
  if (want === true) {
    assert.equal(v.ok, true, `${what}: expected a pass, got ${v.ok ? '' : v.reason}`);
    return;
  }
  assert.equal(v.ok, false, `${what}: expected a failure`);
  if (v.ok) return;
  if (typeof want === 'string') assert.equal(v.reason, want, what);
  else assert.match(v.reason, want, what);
}

describe('identity checks on certificates made to break them', () => {
  let ca: TestCA;
  before(async () => {
    ca = await TestCA.create();
  });
  for (const row of rows) {
    test(row.name, async () => {
      const cert = await ca.issue(row.cert);
      // From the DER as issued: some of these (invalid UTF8String, odd BMPString) OpenSSL itself
      // refuses to parse, so only Postern's own reader can be asked about them.
      const presented = presentedFrom({ raw: cert.der });
      const verify = checkVerify(presented, { recipientDomain: row.recipient, connectedHosts: row.mxHost ? [row.mxHost] : [] });
      const hosted = checkHosted(presented, { recipientDomain: row.recipient, mxHost: row.mxHost });
      expectVerdict(verify, row.verify, 'Verify');
      expectVerdict(hosted, row.hosted, 'Hosted');
    });
  }
});

describe('the name rule on its own', () => {
  const refused = [
    'ex%61mple.com', 'example%2ecom', 'ｅｘａｍｐｌｅ.com', 'example\u3002com', 'exam\u00adple.com', 'ex\u00aample.com',
    'e\u212aample.com', 'example .com', 'example.com\0', 'exa\x1bmple.com', 'BÜCHER.test', 'bu\u0308cher.test' /* not NFC */,
    'xn--zz.test', 'xn--bcher-zxa.test', 'a\u200db.test' /* ZWJ */, '\u0301a.test' /* leading combining mark */,
    '☃.test' /* a symbol: UTS #46 valid, IDNA2008 disallowed */, 'l\u00b7x.test' /* middle dot not between l */,
    '\u05d0a.test' /* Hebrew with a Latin letter: Bidi rule */, '\u0661\u06f1.test' /* mixed Arabic-Indic digits */,
    'ab--c\u00e9.test' /* hyphens in positions 3-4 of a U-label */, `${'é'.repeat(60)}.test` /* A-label over 63 */,
  ];
  for (const name of refused) test(`refused: ${JSON.stringify(name)}`, () => assert.equal(normaliseDomain(name), null));
  const accepted: Array<[string, string]> = [
    ['bücher.test', 'xn--bcher-kva.test'],
    ['Bücher.TEST', 'xn--bcher-kva.test'],
    ['XN--BCHER-KVA.test', 'xn--bcher-kva.test'],
    ['straße.test', 'xn--strae-oqa.test'], // ß is PVALID in IDNA2008 (not mapped to ss)
    ['col\u00b7lecció.test', 'xn--collecci-ioa91d.test'], // Catalan middle dot between two l (CONTEXTO)
    ['\u05e9\u05dc\u05d5\u05dd.test', 'xn--9dbne9b.test'],
    ['r3---sn-abc.example.com', 'r3---sn-abc.example.com'], // R-LDH labels exist in the DNS
  ];
  for (const [name, want] of accepted) test(`accepted: ${name}`, () => assert.equal(normaliseDomain(name), want));
  test('a dNSName must be ASCII; a CN may be a U-label', () => {
    assert.equal(normaliseDnsName('bücher.test'), null);
    assert.equal(normaliseDomain('bücher.test'), 'xn--bcher-kva.test');
  });
  test('isULabel needs non-ASCII and IDNA2008 form', () => {
    assert.equal(isULabel('abc'), false);
    assert.equal(isULabel('bücher'), true);
    assert.equal(isULabel('Bücher'), false);
  });
  test('public suffixes come from the list, both sections', () => {
    for (const s of ['com', 'co.uk', 's3.amazonaws.com', 'github.io', 'xn--p1ai', 'test', 'localhost']) assert.equal(isPublicSuffix(s), true, s);
    for (const s of ['example.com', 'example.co.uk', 'someone.github.io']) assert.equal(isPublicSuffix(s), false, s);
  });
});
