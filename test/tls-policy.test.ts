/**
 * Proves that src/tls/policy.ts encodes SPEC §2's contract as data: a golden table of
 * decide(mode, observation) for all six TLS settings × five observations (every cell written
 * out), shouldStartTls with and without the remembered-broken-TLS memory (Preferred settings
 * skip STARTTLS on a remembered host, Required settings never do, `no` never starts TLS), and
 * which identity algorithm (Verify, Hosted, none) each setting uses.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TLS_MODES, type TlsMode } from '../src/controls/types.js';
import { decide, identityAlgorithm, isPreferred, isRequired, shouldStartTls, verifies, type TlsAction, type TlsObservation } from '../src/tls/policy.js';

const OBSERVATIONS: TlsObservation[] = ['not-offered', 'rejected', 'handshake-failed', 'unverified', 'verified'];

// SPEC §2, row by row. Columns follow OBSERVATIONS:
//   not-offered / rejected = "before 220"; handshake-failed = "after 220";
//   unverified = TLS up, chain or identity not verified; verified = TLS up and verified.
const GOLDEN: Record<TlsMode, TlsAction[]> = {
  //                          not-offered  rejected   handshake-failed  unverified              verified
  no: /*                   */ ['clear', 'clear', 'clear', 'clear', 'clear'],
  preferred: /*            */ ['clear', 'clear', 'drop', 'encrypted', 'encrypted'],
  required: /*             */ ['refuse', 'refuse', 'drop', 'encrypted', 'encrypted'],
  'preferred-verify': /*   */ ['clear', 'clear', 'drop', 'encrypted-unverified', 'encrypted'],
  'required-verify': /*    */ ['refuse', 'refuse', 'drop', 'refuse', 'encrypted'],
  'required-verify-hosted': ['refuse', 'refuse', 'drop', 'refuse', 'encrypted'],
};

describe('decide(mode, observation): SPEC §2 golden table', () => {
  test('the table covers exactly the six settings', () => {
    assert.deepEqual(Object.keys(GOLDEN).sort(), [...TLS_MODES].sort());
  });
  for (const mode of TLS_MODES) {
    OBSERVATIONS.forEach((seen, i) => {
      const expected = GOLDEN[mode][i]!;
      test(`${mode} × ${seen} → ${expected}`, () => {
        assert.equal(decide(mode, seen), expected);
      });
    });
  }

  test('after 220 no setting ever falls back to clear text on the same connection', () => {
    for (const mode of TLS_MODES) {
      if (mode === 'no') continue;
      assert.notEqual(decide(mode, 'handshake-failed'), 'clear', mode);
    }
  });

  test('no Required setting ever delivers in clear text', () => {
    for (const mode of TLS_MODES.filter(isRequired)) {
      for (const seen of OBSERVATIONS) assert.notEqual(decide(mode, seen), 'clear', `${mode} × ${seen}`);
    }
  });
});

describe('shouldStartTls(mode, rememberedBroken)', () => {
  // mode → [without memory, with the host remembered as broken]
  const START: Record<TlsMode, [boolean, boolean]> = {
    no: [false, false],
    preferred: [true, false],
    required: [true, true],
    'preferred-verify': [true, false],
    'required-verify': [true, true],
    'required-verify-hosted': [true, true],
  };
  for (const mode of TLS_MODES) {
    const [fresh, remembered] = START[mode];
    test(`${mode}: ${fresh ? 'STARTTLS' : 'no STARTTLS'}; remembered broken: ${remembered ? 'STARTTLS' : 'no STARTTLS'}`, () => {
      assert.equal(shouldStartTls(mode, false), fresh);
      assert.equal(shouldStartTls(mode, true), remembered);
    });
  }
});

describe('mode classes and identity algorithm', () => {
  // mode → [isPreferred, isRequired, verifies, identityAlgorithm]
  const CLASSES: Record<TlsMode, [boolean, boolean, boolean, 'verify' | 'hosted' | null]> = {
    no: [false, false, false, null],
    preferred: [true, false, false, null],
    required: [false, true, false, null],
    'preferred-verify': [true, false, true, 'verify'],
    'required-verify': [false, true, true, 'verify'],
    'required-verify-hosted': [false, true, true, 'hosted'],
  };
  for (const mode of TLS_MODES) {
    const [pref, req, ver, algo] = CLASSES[mode];
    test(`${mode}: preferred=${pref} required=${req} verifies=${ver} identity=${String(algo)}`, () => {
      assert.equal(isPreferred(mode), pref);
      assert.equal(isRequired(mode), req);
      assert.equal(verifies(mode), ver);
      assert.equal(identityAlgorithm(mode), algo);
    });
  }
});
