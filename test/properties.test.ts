/**
 * Property-based tests (fast-check) for the code that reads what peers send: the identity
 * checks, the certificate name reader, the SMTP reply parser and the mail log writer. Each
 * property throws random and mutated input at the code and checks, with an oracle that does
 * not use the code under test:
 * - nothing throws;
 * - an identity check passes only for a presented name equal to the reference octet for octet
 *   (ASCII case aside, one trailing dot aside), or for `*.` + a parent that is not a public
 *   suffix with the reference exactly one label longer;
 * - every event is one line in mail.log and one valid JSON line holding the same value.
 * The seed is printed by fast-check on failure; FC_SEED reproduces a run.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import fc from 'fast-check';
import { MailLog } from '../src/observe/maillog.js';
import type { MailEvent } from '../src/observe/events.js';
import { escapeText, jsonLine } from '../src/observe/text.js';
import { enhancedOf, parseEhlo, parseReplyLine, replyText, type Reply } from '../src/smtp/reply.js';
import { checkHosted, checkVerify, presentedFrom, type IdentityVerdict } from '../src/tls/identity.js';
import { isPublicSuffix } from '../src/tls/names.js';
import { verifyCertificate } from '../src/tls/verify.js';
import { TestCA, SAN_TAG, STRING_TAG, ascii, rawName, rawSan } from './peers/ca.js';
import { tempDir } from './harness.js';

const seed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const params = (numRuns: number): fc.Parameters<unknown> => ({ numRuns, ...(seed === undefined ? {} : { seed }) });

// Names close to the references, with every kind of lookalike and hostile character mixed in.
const PIECES = [
  'example', 'com', 'mx', 'test', 'co', 'uk', 'github', 'io', '.', '.', '*', '*.', '-', 'xn--', 'bcher-kva', 'EXAMPLE', 'Mx',
  '%61', '%2e', 'ｅ', '\u3002', '\uff0e', '\u00ad', '\u00aa', '\u200b', '\u212a', 'ü', 'а', ' ', '\0', '\r\n', '\x1b[2J', '\x07',
  '\u2028', '\u202e', '\udc00', 'a'.repeat(64),
];
const hostileName = fc.array(fc.constantFrom(...PIECES), { minLength: 1, maxLength: 8 }).map((p) => p.join(''));
const anyName = fc.oneof(hostileName, fc.string({ unit: 'binary', maxLength: 40 }), fc.constantFrom('example.com', '*.example.com', 'mx.example.com', 'EXAMPLE.COM.', '*.com', '*.co.uk'));
const REFERENCES = ['example.com', 'mx.example.com', 'a.example.co.uk', 'x.github.io', 'bcher-kva.test', 'com'];

/** The oracle: may `presented` identify `reference` (an ASCII name in lower case)? */
function mayMatch(presented: string, reference: string): boolean {
  const p = presented.replace(/[A-Z]/g, (c) => c.toLowerCase()).replace(/\.$/, '');
  if (p === reference) return true;
  if (!p.startsWith('*.')) return false;
  const parent = p.slice(2);
  return reference.endsWith(`.${parent}`) && !reference.slice(0, -parent.length - 1).includes('.') && !isPublicSuffix(parent);
}

function checkVerdict(v: IdentityVerdict): void {
  if (!v.ok) return;
  const m = v.matched;
  assert.ok(mayMatch(m.presented, m.reference), `passed ${JSON.stringify(m.presented)} for ${JSON.stringify(m.reference)}`);
}

describe('properties: identity checks', () => {
  test('random presented names never throw and pass only for equal names or valid wildcards', () => {
    fc.assert(
      fc.property(fc.array(anyName, { maxLength: 6 }), fc.array(anyName, { maxLength: 3 }), fc.constantFrom(...REFERENCES), fc.constantFrom(...REFERENCES), (dnsNames, commonNames, recipient, mx) => {
        const presented = { dnsNames, commonNames };
        checkVerdict(checkVerify(presented, { recipientDomain: recipient, connectedHosts: [mx] }));
        checkVerdict(checkHosted(presented, { recipientDomain: recipient, mxHost: mx }));
      }),
      params(3000),
    );
  });

  test('random objects in place of a peer certificate never throw and never pass without a match', () => {
    const certLike = fc.record(
      {
        subjectaltname: fc.oneof(fc.constant(null), fc.constant(undefined), fc.string({ unit: 'binary' }), anyName.map((n) => `DNS:${n}`), fc.anything()),
        subject: fc.oneof(fc.constant(null), fc.record({ CN: fc.oneof(anyName, fc.array(anyName), fc.anything()) }), fc.anything()),
        raw: fc.oneof(fc.constant(undefined), fc.uint8Array({ maxLength: 200 })),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(certLike, fc.anything()), fc.constantFrom(...REFERENCES), fc.boolean(), fc.boolean(), (cert, recipient, hosted, chainTrusted) => {
        const p = presentedFrom(cert);
        assert.ok(Array.isArray(p.dnsNames) && Array.isArray(p.commonNames));
        const r = verifyCertificate({
          algorithm: hosted ? 'hosted' : 'verify',
          chainTrusted,
          certificate: cert as never,
          recipientDomain: recipient,
          mxHost: 'mx.example.com',
        });
        if (r.ok) checkVerdict(r.identity);
        if (p.unreadable !== undefined) assert.equal(r.ok, false, 'an unreadable certificate never passes');
      }),
      params(3000),
    );
  });

  describe('mutated DER of real certificates', () => {
    const ders: Buffer[] = [];
    before(async () => {
      const ca = await TestCA.create();
      ders.push((await ca.issue({ cn: 'example.com', dnsNames: ['example.com', '*.example.com', 'mx.example.com'] })).der);
      ders.push((await ca.issue({ rawSubject: rawName([[STRING_TAG.utf8, ascii('example.com')], [STRING_TAG.bmp, [0, 0x61]]]), rawSan: rawSan([[SAN_TAG.dns, ascii('example.com')], [SAN_TAG.ip, [127, 0, 0, 1]]]) })).der);
    });
    test('flipped, inserted and cut bytes: a verdict every time, and a pass only for a matching name', () => {
      const mutation = fc.record({
        which: fc.nat(),
        flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        cutAt: fc.option(fc.nat()),
        insert: fc.option(fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 }))),
      });
      fc.assert(
        fc.property(mutation, fc.constantFrom(...REFERENCES), fc.boolean(), (m, recipient, hosted) => {
          let der = Buffer.from(ders[m.which % ders.length]!);
          for (const [at, b] of m.flips) der[at % der.length] = b;
          if (m.insert) {
            const at = m.insert[0] % der.length;
            der = Buffer.concat([der.subarray(0, at), m.insert[1], der.subarray(at)]);
          }
          if (m.cutAt !== null) der = der.subarray(0, m.cutAt % (der.length + 1));
          const p = presentedFrom({ raw: der });
          for (const n of [...p.dnsNames, ...p.commonNames]) assert.equal(typeof n, 'string');
          const v = hosted ? checkHosted(p, { recipientDomain: recipient, mxHost: 'mx.example.com' }) : checkVerify(p, { recipientDomain: recipient, connectedHosts: ['mx.example.com'] });
          checkVerdict(v);
        }),
        params(3000),
      );
    });
  });
});

describe('properties: SMTP replies', () => {
  test('the reply parser takes any line without throwing, and a parsed code is 200–599', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 120 }), fc.tuple(fc.integer({ min: 0, max: 999 }), fc.constantFrom('', ' ', '-', 'x'), fc.string({ unit: 'binary' })).map(([c, s, t]) => `${c}${s}${t}`)), (line) => {
        const p = parseReplyLine(line);
        if (p.kind === 'line') assert.ok(p.code >= 200 && p.code <= 599);
        const e = enhancedOf(line);
        if (e !== undefined) assert.match(e, /^[245]\.\d{1,3}\.\d{1,3}$/);
      }),
      params(5000),
    );
  });
  test('EHLO responses of any shape parse to upper-case keywords without throwing', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'binary', maxLength: 60 }), { maxLength: 12 }), (lines) => {
        const reply: Reply = { code: 250, lines: ['mx.example.com', ...lines] };
        for (const k of parseEhlo(reply).keys()) assert.equal(k, k.toUpperCase());
        assert.equal(typeof replyText(reply), 'string');
      }),
      params(3000),
    );
  });
});

describe('properties: the mail log', () => {
  const CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
  const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 80 }), hostileName);
  const event: fc.Arbitrary<MailEvent> = fc.oneof(
    fc.record({ event: fc.constant('tls-failed' as const), dcid: fc.nat(), domain: text, reason: text, outcome: fc.constantFrom('clear-text' as const, 'refused' as const, 'dropped' as const) }),
    fc.record({ event: fc.constant('verify-failed' as const), dcid: fc.nat(), domain: text, reason: text }),
    fc.record({ event: fc.constant('delayed' as const), mid: fc.nat(), rid: fc.nat(), to: text, enhanced: text, reason: text, nextAttempt: text }),
    fc.record({ event: fc.constant('bounced' as const), mid: fc.nat(), rid: fc.nat(), to: text, enhanced: text, reason: text }),
    fc.record({ event: fc.constant('message-done' as const), dcid: fc.nat(), mid: fc.nat(), rids: fc.array(fc.nat(), { maxLength: 3 }), reply: text }),
    fc.record({ event: fc.constant('connection' as const), dcid: fc.nat(), interface: text, address: text, port: fc.nat(), host: text, domain: text }),
  );

  test('escapeText leaves no control and is idempotent; jsonLine round-trips the value', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
        const e = escapeText(s);
        assert.doesNotMatch(e, CONTROL);
        assert.equal(escapeText(e), e);
        const j = jsonLine({ s });
        assert.doesNotMatch(j, CONTROL);
        assert.deepEqual(JSON.parse(j), { s: JSON.parse(JSON.stringify(s)) as string });
      }),
      params(5000),
    );
  });

  test('every event written is exactly one line in mail.log and one JSON line in mail.jsonl', async () => {
    const events = fc.sample(fc.array(event, { minLength: 1, maxLength: 40 }), { numRuns: 10, ...(seed === undefined ? {} : { seed }) }).flat();
    const dir = tempDir();
    const log = new MailLog(dir);
    for (const e of events) log.write(e);
    await log.close();
    const lines = readFileSync(join(dir, 'logs', 'mail.log'), 'utf8').split('\n');
    assert.equal(lines.pop(), '', 'the file ends with a newline');
    assert.equal(lines.length, events.length);
    for (const l of lines) assert.doesNotMatch(l, CONTROL);
    const json = readFileSync(join(dir, 'logs', 'mail.jsonl'), 'utf8').split('\n');
    json.pop();
    assert.equal(json.length, events.length);
    json.forEach((l, i) => {
      const { time, ...rest } = JSON.parse(l) as Record<string, unknown>;
      assert.equal(typeof time, 'string');
      assert.deepEqual(rest, JSON.parse(JSON.stringify(events[i])) as unknown);
    });
  });
});
