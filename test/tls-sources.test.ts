/**
 * The one decision per MX host (src/tls/sources.ts): table setting, DANE and MTA-STS composed,
 * as a table of cases — which source governs, what the connection runs under, and when a host
 * is not used.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TlsMode } from '../src/controls/types.js';
import type { TlsaRecord } from '../src/tls/dane.js';
import { planHost, stsMxMatches, type DaneMode, type StsFinding, type TlsaFinding } from '../src/tls/sources.js';

const ee: TlsaRecord = { usage: 3, selector: 1, matchingType: 1, data: new Uint8Array(32) };
const usable: TlsaFinding = { kind: 'records', usable: [ee], unusable: 0 };
const unusableOnly: TlsaFinding = { kind: 'records', usable: [], unusable: 2 };
const none: TlsaFinding = { kind: 'none' };
const insecure: TlsaFinding = { kind: 'not-secure' };
const failed: TlsaFinding = { kind: 'failed', reason: 'SERVFAIL' };
const enforce: StsFinding = { mode: 'enforce', mx: ['*.example.net', 'mx.example.com'] };
const testing: StsFinding = { mode: 'testing', mx: ['other.example.com'] };
const host = { name: 'mx1.example.net' };

type Row = [tls: TlsMode, dane: DaneMode, mtaSts: boolean, tlsa: TlsaFinding, sts: StsFinding, expect: string];
// expect: "use <mode> <source> [dane] [pkix] [testing]" or "skip <source> <reason pattern>"
const rows: Row[] = [
  // DANE with usable records wins, raises to Required, and authenticates by TLSA.
  ['no', 'opportunistic', true, usable, null, 'use required dane dane'],
  ['preferred', 'opportunistic', true, usable, enforce, 'use required dane dane'],
  ['preferred-verify', 'opportunistic', true, usable, null, 'use required-verify dane dane'],
  ['required-verify-hosted', 'required', false, usable, null, 'use required-verify-hosted dane dane'],
  // Only unusable records: mandatory TLS, the entry's own verification.
  ['no', 'opportunistic', true, unusableOnly, null, 'use required dane'],
  ['preferred-verify', 'opportunistic', true, unusableOnly, null, 'use required-verify dane'],
  ['required-verify', 'opportunistic', true, unusableOnly, enforce, 'use required-verify dane'],
  ['preferred', 'required', true, unusableOnly, null, 'skip dane only unusable'],
  // Bogus or failed: never used, whatever the table says.
  ['no', 'opportunistic', true, failed, null, 'skip dane cannot be known'],
  ['preferred', 'required', true, failed, null, 'skip dane cannot be known'],
  // Securely none, or not secure: the table, then MTA-STS.
  ['preferred', 'opportunistic', true, none, null, 'use preferred table'],
  ['preferred', 'opportunistic', true, insecure, null, 'use preferred table'],
  ['preferred', 'opportunistic', true, none, enforce, 'use required mta-sts pkix'],
  ['required-verify', 'opportunistic', true, insecure, enforce, 'use required-verify mta-sts pkix'],
  ['preferred', 'required', true, none, enforce, 'skip dane publishes no TLSA'],
  ['preferred', 'required', true, insecure, null, 'skip dane not reached through DNSSEC'],
  // DANE off: TLSA never looked at.
  ['preferred', 'off', true, usable, null, 'use preferred table'],
  ['preferred', 'off', true, failed, null, 'use preferred table'],
  ['no', 'off', true, usable, enforce, 'use required mta-sts pkix'],
  // MTA-STS: a host outside the patterns is not used under enforce; testing and off change nothing.
  ['preferred', 'opportunistic', true, none, { mode: 'enforce', mx: ['mx.example.com'] }, 'skip mta-sts mx mx1.example.net not in policy'],
  ['preferred', 'opportunistic', true, none, testing, 'use preferred table testing'],
  ['preferred', 'opportunistic', true, none, { mode: 'none', mx: [] }, 'use preferred table'],
  ['preferred', 'opportunistic', false, none, enforce, 'use preferred table'],
  ['required-verify-hosted', 'off', false, none, enforce, 'use required-verify-hosted table'],
];

describe('policy sources composed per host', () => {
  for (const [tls, dane, mtaSts, tlsa, sts, expect] of rows) {
    test(`${tls}, dane ${dane}, mta-sts ${mtaSts ? 'on' : 'off'}, TLSA ${tlsa.kind}${tlsa.kind === 'records' ? ` (${tlsa.usable.length} usable)` : ''}, STS ${sts?.mode ?? 'none'} → ${expect}`, () => {
      const p = planHost({ tls, dane, mtaSts }, host, tlsa, sts);
      const [verb, ...rest] = expect.split(' ');
      if (verb === 'skip') {
        assert.equal(p.use, false, JSON.stringify(p));
        if (p.use) return;
        assert.equal(p.governedBy, rest[0]);
        assert.ok(p.reason.includes(rest.slice(1).join(' ')), p.reason);
        assert.equal(p.enhanced, '4.7.5', 'deferred, never bounced at once');
        return;
      }
      assert.equal(p.use, true, JSON.stringify(p));
      if (!p.use) return;
      assert.equal(p.mode, rest[0]);
      assert.equal(p.governedBy, rest[1]);
      assert.equal(p.dane !== null, rest.includes('dane', 2), 'DANE records to match');
      assert.equal(p.pkixName, rest.includes('pkix') ? host.name : null);
      assert.equal(p.stsTesting, rest.includes('testing'));
    });
  }

  test('mx patterns: exact, and *. for exactly one label', () => {
    assert.equal(stsMxMatches('mx.example.com', 'MX.example.com.'), true);
    assert.equal(stsMxMatches('*.example.com', 'a.example.com'), true);
    assert.equal(stsMxMatches('*.example.com', 'a.b.example.com'), false);
    assert.equal(stsMxMatches('*.example.com', 'example.com'), false);
    assert.equal(stsMxMatches('*.example.com', 'aexample.com'), false);
    assert.equal(stsMxMatches('mx.example.com', 'mx.example.org'), false);
  });
});
