/**
 * Proves the destination-controls table of SPEC §1 (src/controls/{names,table,validate,types}.ts):
 *   - destination names are normalised (case, trailing dot, IDN U-label → A-label, `.suffix`
 *     form) and malformed names are rejected with a message naming the value;
 *   - the most-specific lookup, as a golden table of recipient domain → matched entry: exact
 *     beats suffix, the longest suffix wins, `.example.com` never matches `example.com` itself,
 *     an unlisted domain gets (Default); resolution fills Default values and lists `inherited`;
 *   - every range of §1 at each boundary, with the error naming field, value and range;
 *   - a table of 100,000 entries still answers correctly (speed belongs to the benchmarks).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { displayName, parseDestinationName } from '../src/controls/names.js';
import { DestinationTable, resolveEntry } from '../src/controls/table.js';
import { DEFAULT_ENTRY_NAME, INITIAL_DEFAULTS, type Entry, type PartialSettings, type SettingName, type Settings } from '../src/controls/types.js';
import {
  checkDefaults,
  checkRecipientLimit,
  checkSettings,
  parseIntegerIn,
  parseIpPreference,
  parseTlsMode,
  ValidationError,
} from '../src/controls/validate.js';

const ALL_SETTINGS = Object.keys(INITIAL_DEFAULTS) as SettingName[];

/** Asserts that `fn` throws a ValidationError whose message names the field, the value and the range. */
function assertRejected(fn: () => unknown, field: string, value: string, ...allowedParts: string[]): ValidationError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ValidationError, `expected a ValidationError for ${field} ${value}, got ${String(caught)}`);
  assert.equal(caught.field, field);
  assert.ok(caught.message.includes(field), `message names the field: ${caught.message}`);
  assert.ok(caught.message.includes(value), `message names the value ${value}: ${caught.message}`);
  for (const part of allowedParts) assert.ok(caught.message.includes(part), `message names the range (${part}): ${caught.message}`);
  return caught;
}

describe('destination names', () => {
  // input → stored form
  const GOOD: [string, string][] = [
    ['example.com', 'example.com'],
    ['Example.COM', 'example.com'],
    ['example.com.', 'example.com'],
    ['  example.com  ', 'example.com'],
    ['.example.com', '.example.com'],
    ['.EXAMPLE.com.', '.example.com'],
    ['mx-1.sub.example.com', 'mx-1.sub.example.com'],
    ['bücher.test', 'xn--bcher-kva.test'],
    ['Bücher.TEST', 'xn--bcher-kva.test'], // ASCII case is never significant
    ['xn--bcher-kva.test', 'xn--bcher-kva.test'],
    ['.bücher.test', '.xn--bcher-kva.test'],
    ['例え.jp', 'xn--r8jz45g.jp'],
    ['localhost', 'localhost'],
  ];
  for (const [input, stored] of GOOD) {
    test(`${JSON.stringify(input)} → ${stored}`, () => {
      assert.equal(parseDestinationName(input), stored);
    });
  }

  const BAD = ['BÜCHER.test' /* IDNA2008: no upper-case U-labels, nothing mapped */, 'ｅｘａｍｐｌｅ.com', 'example\u3002com', 'ex%61mple.com', '', '   ', '.', '..example.com', 'example..com', 'example.com..', '*.example.com', 'exa mple.com', 'under_score.com', '-lead.com', 'trail-.com', '1.2.3.4', '(Default)', 'a'.repeat(64) + '.com'];
  for (const input of BAD) {
    test(`rejects ${JSON.stringify(input)} naming the value`, () => {
      const e = assertRejected(() => parseDestinationName(input), 'destination', JSON.stringify(input));
      assert.equal(e.value, input);
    });
  }

  test('display shows both forms of an IDN, and ASCII names unchanged', () => {
    assert.equal(displayName('xn--bcher-kva.test'), 'xn--bcher-kva.test (bücher.test)');
    assert.equal(displayName('.xn--bcher-kva.test'), '.xn--bcher-kva.test (.bücher.test)');
    assert.equal(displayName('example.com'), 'example.com');
    assert.equal(displayName('.example.com'), '.example.com');
  });
});

describe('most-specific lookup (golden)', () => {
  const entries: Entry[] = [
    { name: 'example.com', settings: { tls: 'required' } },
    { name: '.example.com', settings: { tls: 'preferred', concurrency: 10 } },
    { name: '.deep.example.com', settings: { tls: 'required-verify' } },
    { name: 'exact.deep.example.com', settings: { concurrency: 3 } },
    { name: '.other.test', settings: { ipPreference: 'ipv4-required' } },
    { name: 'xn--bcher-kva.test', settings: { bounceVerification: true } },
    { name: '.org', settings: { messagesPerConnection: 7 } },
  ].map((e) => ({ name: parseDestinationName(e.name), settings: e.settings as PartialSettings }));
  const table = new DestinationTable(INITIAL_DEFAULTS, entries);

  // recipient domain → name of the entry that governs it
  const GOLDEN: [string, string][] = [
    ['example.com', 'example.com'], //                 exact, even though .example.com exists
    ['EXAMPLE.COM.', 'example.com'], //                case and trailing dot do not matter
    ['mail.example.com', '.example.com'], //           suffix
    ['a.b.c.example.com', '.example.com'], //          suffix matches any depth
    ['deep.example.com', '.example.com'], //           .deep.example.com does not match deep.example.com itself
    ['x.deep.example.com', '.deep.example.com'], //    longest suffix wins
    ['y.x.deep.example.com', '.deep.example.com'],
    ['exact.deep.example.com', 'exact.deep.example.com'], // exact beats a longer-matching suffix
    ['sub.exact.deep.example.com', '.deep.example.com'], //  an exact entry does not cover subdomains
    ['notexample.com', DEFAULT_ENTRY_NAME], //         label boundary: no partial-label match
    ['example.com.evil.test', DEFAULT_ENTRY_NAME],
    ['other.test', DEFAULT_ENTRY_NAME], //             .other.test does not match other.test itself
    ['a.other.test', '.other.test'],
    ['bücher.test', 'xn--bcher-kva.test'], //          U-label looked up as its A-label
    ['XN--BCHER-KVA.test', 'xn--bcher-kva.test'],
    ['www.bücher.test', DEFAULT_ENTRY_NAME],
    ['org', DEFAULT_ENTRY_NAME], //                    .org does not match org itself
    ['wikipedia.org', '.org'],
    ['unlisted.test', DEFAULT_ENTRY_NAME],
    ['com', DEFAULT_ENTRY_NAME],
    ['not a domain', DEFAULT_ENTRY_NAME],
  ];
  for (const [domain, matched] of GOLDEN) {
    test(`${domain} → ${matched}`, () => {
      assert.equal(table.match(domain)?.name ?? DEFAULT_ENTRY_NAME, matched);
      assert.equal(table.resolve(domain).matched, matched);
    });
  }

  test('resolution fills Default values and lists what was inherited', () => {
    const r = table.resolve('mail.example.com');
    assert.deepEqual(r, {
      matched: '.example.com',
      settings: { ...INITIAL_DEFAULTS, tls: 'preferred', concurrency: 10 },
      inherited: ALL_SETTINGS.filter((k) => k !== 'tls' && k !== 'concurrency'),
    });
  });

  test('an unlisted domain gets every (Default) value, all inherited', () => {
    const r = table.resolve('unlisted.test');
    assert.deepEqual(r, { matched: DEFAULT_ENTRY_NAME, settings: INITIAL_DEFAULTS, inherited: ALL_SETTINGS });
  });

  test('Default is read at the time of use: changed defaults show through inherited settings only', () => {
    const defaults: Settings = { ...INITIAL_DEFAULTS, tls: 'required-verify', concurrency: 42, recipientLimit: { recipients: 100, minutes: 5 } };
    const r = resolveEntry({ name: 'x.test', settings: { concurrency: 7, recipientLimit: null } }, defaults);
    assert.equal(r.settings.tls, 'required-verify');
    assert.equal(r.settings.concurrency, 7);
    // An explicit "No Limit" in the entry is a value, not Default.
    assert.equal(r.settings.recipientLimit, null);
    assert.deepEqual(r.inherited, ALL_SETTINGS.filter((k) => k !== 'concurrency' && k !== 'recipientLimit'));
  });

  test('a resolved copy does not alias the (Default) settings', () => {
    const defaults: Settings = { ...INITIAL_DEFAULTS };
    const t = new DestinationTable(defaults);
    t.resolve('a.test').settings.concurrency = 1;
    assert.equal(defaults.concurrency, 500);
  });

  test('list() is sorted with .suffix beside its domain', () => {
    const names = table.list().map((e) => e.name);
    assert.deepEqual([...names].sort(), entries.map((e) => e.name).sort());
    assert.equal(names.indexOf('.example.com'), names.indexOf('example.com') + 1);
  });
});

describe('validation ranges (SPEC §1), at every boundary', () => {
  // [setting, value, accepted?]
  type Row = [keyof PartialSettings, number, boolean];
  const ROWS: Row[] = [
    ['concurrency', 0, false],
    ['concurrency', 1, true],
    ['concurrency', 1000, true],
    ['concurrency', 1001, false],
    ['messagesPerConnection', 0, false],
    ['messagesPerConnection', 1, true],
    ['messagesPerConnection', 1000, true],
    ['messagesPerConnection', 1001, false],
  ];
  const FIELD: Record<string, [string, string]> = {
    concurrency: ['concurrent connections', '1 to 1,000'],
    messagesPerConnection: ['maximum messages per connection', '1 to 1,000'],
  };
  for (const [key, value, ok] of ROWS) {
    test(`${key} ${value} → ${ok ? 'accepted' : 'rejected'}`, () => {
      const s: PartialSettings = { [key]: value };
      if (ok) assert.deepEqual(checkSettings(s), s);
      else assertRejected(() => checkSettings(s), FIELD[key]![0], String(value), FIELD[key]![1]);
    });
  }

  const RECIPIENTS: [number, number, boolean, string?][] = [
    [-1, 60, false, 'recipients'],
    [0, 60, true],
    [1, 1, true],
    [1_000_000_000, 60, true],
    [1_000_000_001, 60, false, 'recipients'],
    [100, 0, false, 'recipient minutes'],
    [100, 1, true],
    [100, 60, true],
    [100, 61, false, 'recipient minutes'],
  ];
  for (const [recipients, minutes, ok, field] of RECIPIENTS) {
    test(`recipients ${recipients} per ${minutes} minutes → ${ok ? 'accepted' : 'rejected'}`, () => {
      const limit = { recipients, minutes };
      if (ok) {
        assert.deepEqual(checkSettings({ recipientLimit: limit }), { recipientLimit: limit });
      } else {
        const range = field === 'recipients' ? '0 to 1,000,000,000' : '1 to 60';
        const bad = field === 'recipients' ? recipients : minutes;
        assertRejected(() => checkRecipientLimit(limit), field!, String(bad), range);
        assertRejected(() => checkSettings({ recipientLimit: limit }), field!, String(bad), range);
      }
    });
  }

  test('No Limit (null) is a value', () => {
    assert.deepEqual(checkSettings({ recipientLimit: null }), { recipientLimit: null });
  });

  test('integers from strings: thousands separators allowed, fractions and junk refused', () => {
    assert.equal(parseIntegerIn('f', '1,000', 1, 1000), 1000);
    assert.equal(parseIntegerIn('f', ' 42 ', 1, 1000), 42);
    assert.equal(parseIntegerIn('f', '1,000,000,000', 0, 1_000_000_000), 1_000_000_000);
    for (const bad of ['', 'abc', '1.5', '-1', '1e3', '0x10', '1,00', '12,34,567']) {
      assertRejected(() => parseIntegerIn('f', bad, 1, 1000), 'f', JSON.stringify(bad), '1 to 1,000');
    }
    for (const bad of [1.5, -0.5, -1]) {
      assertRejected(() => parseIntegerIn('f', bad, 0, 1000), 'f', String(bad), '0 to 1,000');
    }
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
      assert.throws(() => parseIntegerIn('f', bad, 0, 1000), ValidationError);
    }
  });

  test('TLS mode and IP preference: any case accepted, unknown values rejected with the list', () => {
    assert.equal(parseTlsMode('Required-Verify-Hosted'), 'required-verify-hosted');
    assert.equal(parseIpPreference('IPv4-Required'), 'ipv4-required');
    assertRejected(() => parseTlsMode('maybe'), 'TLS support', '"maybe"', 'required-verify-hosted');
    assertRejected(() => parseIpPreference('ipv5-preferred'), 'IP address preference', '"ipv5-preferred"', 'ipv4-required');
  });

  test('enumerated settings reject values outside their lists', () => {
    const bad = (s: Record<string, unknown>) => () => checkSettings(s as PartialSettings);
    assertRejected(bad({ limitPer: 'host' }), 'apply limits per', '"host"', 'mx-ip');
    assertRejected(bad({ enforce: 'cluster' }), 'enforce limits', '"cluster"', 'virtual-gateway');
    assertRejected(bad({ bounceVerification: 'yes' }), 'bounce verification', '"yes"', 'on, off');
    assertRejected(bad({ bounceProfile: 'has space' }), 'bounce profile', '"has space"');
    assertRejected(bad({ bounceProfile: '' }), 'bounce profile', '""');
    assertRejected(bad({ bounceProfile: 'x'.repeat(65) }), 'bounce profile', 'x'.repeat(65));
    assert.deepEqual(checkSettings({ bounceProfile: 'x'.repeat(64) }), { bounceProfile: 'x'.repeat(64) });
  });

  test('checkDefaults keeps every setting of the (Default) entry', () => {
    assert.deepEqual(checkDefaults(INITIAL_DEFAULTS), INITIAL_DEFAULTS);
    assertRejected(() => checkDefaults({ ...INITIAL_DEFAULTS, concurrency: 0 }), 'concurrent connections', '0', '1 to 1,000');
  });
});

describe('a table of 100,000 entries', () => {
  test('answers correct results (exact, suffix, longest suffix, default)', () => {
    const N = 100_000;
    const entries: Entry[] = [];
    for (let i = 0; i < N / 2; i++) {
      entries.push({ name: `d${i}.example`, settings: { concurrency: (i % 1000) + 1 } });
      entries.push({ name: `.s${i}.example`, settings: { messagesPerConnection: (i % 1000) + 1 } });
    }
    entries.push({ name: '.deep.s7.example', settings: { tls: 'required' } });
    const t = new DestinationTable(INITIAL_DEFAULTS, entries);
    assert.equal(t.size, N + 1);
    for (const i of [0, 1, 7, 4242, 49_999]) {
      assert.equal(t.match(`d${i}.example`)?.name, `d${i}.example`);
      assert.equal(t.resolve(`D${i}.Example.`).settings.concurrency, (i % 1000) + 1);
      assert.equal(t.match(`mx.s${i}.example`)?.name, `.s${i}.example`);
      assert.equal(t.resolve(`a.b.s${i}.example`).settings.messagesPerConnection, (i % 1000) + 1);
      assert.equal(t.match(`s${i}.example`), undefined);
      assert.equal(t.match(`x.d${i}.example`), undefined);
    }
    assert.equal(t.match('x.deep.s7.example')?.name, '.deep.s7.example');
    assert.equal(t.match('deep.s7.example')?.name, '.s7.example');
    assert.equal(t.resolve('d100000.example').matched, DEFAULT_ENTRY_NAME);
    assert.equal(t.resolve('s50000.example').matched, DEFAULT_ENTRY_NAME);
  });
});
