/**
 * Proves the import/export file of SPEC §11 (src/controls/ini.ts), DETAIL's text
 * (detailLines in src/cli/format.ts) and the batch commands `destconfig import|export|detail|clear`:
 *   - golden files: each test/golden/import/NAME.ini beside NAME.expected, the exact parse
 *     result (the table, or every error with its line and message). They cover every key, every
 *     range at and past both ends, numeric and keyword forms in any case, IDN section names,
 *     the recipient pair, the limit_type/limit_apply rule, and each error kind (unknown key, bad
 *     value, duplicate section, duplicate key, key outside a section, missing [DEFAULT], missing
 *     key, malformed line, invalid destination name). `UPDATE_GOLDEN=1` rewrites the .expected
 *     files from the code: review the diff before keeping it;
 *   - each value error names the key and the value written on its line, and what is allowed;
 *   - round trip: export → import gives back the identical table, over 300 random varied tables;
 *     export of a fixed table is exactly the expected text;
 *   - CLI: a bad file exits 2, lists every error as FILE:LINE: message and leaves `list --json`
 *     byte-identical; a good file replaces the whole table; export → import into a fresh data
 *     directory gives a byte-identical `list --json`; export refuses to overwrite without
 *     --force; `detail` prints every setting with "Default (value)" for inherited ones; `clear`
 *     refuses without --yes and removes every entry but (Default) with it.
 */
import assert from 'node:assert/strict';
import { mulberry32 } from './tools/prng.js';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { detailLines } from '../src/cli/format.js';
import { ProfileStore } from '../src/config/profiles.js';
import { ConfigStore } from '../src/config/store.js';
import { exportFile, IMPORT_KEYS, parseImport, type ImportError } from '../src/controls/ini.js';
import { parseDestinationName } from '../src/controls/names.js';
import { DestinationTable } from '../src/controls/table.js';
import {
  DANE_MODES,
  IP_PREFERENCES,
  INITIAL_DEFAULTS,
  TLS_MODES,
  type Entry,
  type PartialSettings,
  type RecipientLimit,
  type Settings,
} from '../src/controls/types.js';
import { tempDir } from './harness.js';
import { runCli, type CliResult } from './process.js';

const GOLDEN_DIR = fileURLToPath(new URL('../../test/golden/import/', import.meta.url));

function fresh(): string {
  const d = tempDir('postern-ini-');
  // Destination entries may only name bounce profiles that exist: create the ones used here.
  const s = ConfigStore.open(d);
  try {
    const profiles = new ProfileStore(s);
    for (const name of ['Main', 'Bulk']) profiles.create(name);
  } finally {
    s.close();
  }
  return d;
}

// ---- golden files -------------------------------------------------------------------------

const goldenNames = readdirSync(GOLDEN_DIR)
  .filter((f) => f.endsWith('.ini'))
  .map((f) => f.slice(0, -'.ini'.length))
  .sort();

describe('import file: golden cases', () => {
  test('every .ini has its .expected and the other way round', () => {
    const expected = readdirSync(GOLDEN_DIR)
      .filter((f) => f.endsWith('.expected'))
      .map((f) => f.slice(0, -'.expected'.length))
      .sort();
    assert.deepEqual(expected, goldenNames);
    assert.ok(goldenNames.length >= 14, `golden set present (${goldenNames.length})`);
  });

  for (const name of goldenNames) {
    test(name, () => {
      const text = readFileSync(join(GOLDEN_DIR, `${name}.ini`), 'utf8');
      const actual = parseImport(text);
      const file = join(GOLDEN_DIR, `${name}.expected`);
      if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(file, JSON.stringify(actual, null, 2) + '\n');
      assert.deepEqual(actual, JSON.parse(readFileSync(file, 'utf8')));
    });
  }

  test('the golden set covers every error kind', () => {
    const messages = goldenNames.flatMap((n) => {
      const r = parseImport(readFileSync(join(GOLDEN_DIR, `${n}.ini`), 'utf8'));
      return r.ok ? [] : r.errors.map((e) => e.message);
    });
    const kinds: [string, RegExp][] = [
      ['unknown key', /^unknown key "/],
      ['bad value', /^invalid \w+ ".*": allowed /],
      ['duplicate section', /^duplicate section \[/],
      ['duplicate key', /^duplicate key /],
      ['key outside a section', / outside a section/],
      ['missing [DEFAULT]', /^missing \[DEFAULT\] section/],
      ['missing key in [DEFAULT]', /^\[DEFAULT\] must set /],
      ['malformed line', /^malformed line /],
      ['invalid domain name', /^invalid destination name \[/],
      ['recipient pair', / given without /],
      ['limit_type/limit_apply rule', / needs limit_type and limit_apply /],
    ];
    for (const [kind, re] of kinds) assert.ok(messages.some((m) => re.test(m)), `no golden case for ${kind}`);
  });

  test('each value error names the key and the value written on its line, and what is allowed', () => {
    let checked = 0;
    for (const n of goldenNames) {
      const lines = readFileSync(join(GOLDEN_DIR, `${n}.ini`), 'utf8').split('\n');
      const r = parseImport(lines.join('\n'));
      if (r.ok) continue;
      for (const e of r.errors) {
        const m = /^invalid (\w+) "(.*)": allowed (.+)$/.exec(e.message);
        if (!m) continue;
        const written = /^\s*([^=]+?)\s*=\s*(.*?)\s*$/.exec(lines[e.line - 1] ?? '');
        assert.ok(written, `${n}:${e.line} is a key line`);
        assert.equal(m[1], written[1]!.toLowerCase(), `${n}:${e.line} names the key`);
        assert.equal(m[2], written[2], `${n}:${e.line} names the value`);
        assert.ok(m[3]!.length > 3, `${n}:${e.line} names what is allowed`);
        checked++;
      }
    }
    assert.ok(checked >= 20, `value errors checked: ${checked}`);
  });

  test('ranges are named in the messages', () => {
    const r = parseImport(
      '[DEFAULT]\nip_sort_pref=x\nmax_host_concurrency=0\nmax_messages_per_connection=0\nrecipient_limit=x\nrecipient_minutes=0\n' +
        'limit_type=x\nlimit_apply=x\ntls=x\nbounce_validation=x\ndane=x\nmta_sts=x\n',
    );
    assert.equal(r.ok, false);
    const byLine = new Map((r.ok ? [] : r.errors).map((e) => [e.line, e.message]));
    assert.match(byLine.get(2)!, /ip_sort_pref "x".*PREFER_V6, REQUIRE_V6, PREFER_V4, REQUIRE_V4/);
    assert.match(byLine.get(3)!, /max_host_concurrency "0".*from 1 to 1,000/);
    assert.match(byLine.get(4)!, /max_messages_per_connection "0".*from 1 to 1,000/);
    assert.match(byLine.get(5)!, /recipient_limit "x".*from 0 to 1,000,000,000/);
    assert.match(byLine.get(6)!, /recipient_minutes "0".*from 1 to 60/);
    assert.match(byLine.get(7)!, /limit_type "x".*0\/host, 1\/MXIP/);
    assert.match(byLine.get(8)!, /limit_apply "x".*0\/system, 1\/VG/);
    assert.match(byLine.get(9)!, /tls "x".*0\/no, 1\/preferred, 2\/required, 3\/preferred_verify, 4\/required_verify, 5\/required_verify_hosted/);
    assert.match(byLine.get(10)!, /bounce_validation "x".*0\/off, 1\/on/);
    assert.match(byLine.get(11)!, /dane "x": allowed off, opportunistic, required$/);
    assert.match(byLine.get(12)!, /mta_sts "x": allowed 0\/off, 1\/on$/);
  });
});

describe('import file: text details', () => {
  const DEFAULT_SECTION = [
    '[DEFAULT]',
    'ip_sort_pref = PREFER_V6',
    'max_host_concurrency = 500',
    'max_messages_per_connection = 50',
    'limit_type = host',
    'limit_apply = system',
    'tls = no',
    'bounce_validation = off',
  ];

  test('CRLF line endings, a byte-order mark and indentation are accepted', () => {
    const text = '\uFEFF' + [...DEFAULT_SECTION, '', '  [example.com]  ', '   tls = required   '].join('\r\n') + '\r\n';
    const r = parseImport(text);
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(r.defaults, INITIAL_DEFAULTS);
    assert.deepEqual(r.entries, [{ name: 'example.com', settings: { tls: 'required' } }]);
  });

  test('line numbers count CRLF lines too, and errors come sorted by line', () => {
    const text = ['[example.com]', 'tls = 9', 'tls = 8', 'nonsense', '[DEFAULT]'].join('\r\n');
    const r = parseImport(text);
    assert.equal(r.ok, false);
    const errors: ImportError[] = r.ok ? [] : r.errors;
    assert.deepEqual(
      errors.map((e) => e.line),
      [2, 3, 4, 5, 5, 5, 5, 5, 5, 5],
    );
  });

  test('an empty file reports the missing [DEFAULT] at line 1', () => {
    const r = parseImport('');
    assert.deepEqual(r, { ok: false, errors: [{ line: 1, message: r.ok ? '' : r.errors[0]!.message }] });
    assert.match(r.ok ? '' : r.errors[0]!.message, /^missing \[DEFAULT\] section/);
  });

  test('a section with no keys is an entry with every setting Default', () => {
    const r = parseImport([...DEFAULT_SECTION, '[.example.com]'].join('\n'));
    assert.ok(r.ok);
    assert.deepEqual(r.entries, [{ name: '.example.com', settings: {} }]);
  });
});

// ---- export and round trip ------------------------------------------------------------------

describe('export', () => {
  test('a fixed table is written exactly so', () => {
    const defaults: Settings = { ...INITIAL_DEFAULTS, recipientLimit: { recipients: 1000, minutes: 60 }, tls: 'preferred' };
    const entries: Entry[] = [
      { name: 'xn--bcher-kva.test', settings: { concurrency: 10, tls: 'required-verify' } },
      { name: 'example.com', settings: { recipientLimit: null, bounceVerification: true, limitPer: 'mx-ip', enforce: 'virtual-gateway', dane: 'required', mtaSts: false } },
      { name: '.example.com', settings: { ipPreference: 'ipv4-required', bounceProfile: 'Slow' } },
      { name: 'default', settings: {} },
    ];
    const text = exportFile(defaults, entries);
    const lines = text.split('\n');
    const body = lines.slice(lines.findIndex((l) => !l.startsWith('#')));
    assert.ok(lines[0]!.startsWith('# '), 'a header comment describes the format');
    assert.ok(text.includes('recipient_limit'), 'the header names the keys');
    assert.equal(
      body.join('\n'),
      `
[DEFAULT]
ip_sort_pref = PREFER_V6
max_host_concurrency = 500
max_messages_per_connection = 50
recipient_limit = 1000
recipient_minutes = 60
limit_type = host
limit_apply = system
tls = preferred
dane = opportunistic
mta_sts = on
bounce_validation = off
bounce_profile = Default

[default.]

[example.com]
recipient_limit = none
limit_type = MXIP
limit_apply = VG
dane = required
mta_sts = off
bounce_validation = on

[.example.com]
ip_sort_pref = REQUIRE_V4
bounce_profile = Slow

# bücher.test
[xn--bcher-kva.test]
max_host_concurrency = 10
limit_type = default
limit_apply = default
tls = required_verify
`,
    );
  });

  test('(Default) with No Limit writes recipient_limit = none and reads back', () => {
    const text = exportFile(INITIAL_DEFAULTS, []);
    assert.match(text, /^recipient_limit = none$/m);
    assert.doesNotMatch(text, /^recipient_minutes/m);
    const r = parseImport(text);
    assert.ok(r.ok);
    assert.deepEqual(r.defaults, INITIAL_DEFAULTS);
  });

  // A small deterministic generator, so a failure names a seed that reproduces it.
  const rng = mulberry32;

  const NAME_POOL = [
    'example.com', 'Example.ORG.', 'mail.example.net', 'bücher.test', 'münchen.example', '例え.テスト', 'default', 'xn--fiqs8s.test',
    'a.b.c.d.e.test', 'x1.test', 'long-name-with-hyphens.example.co.uk', 'default.test', 'host',
  ];
  const PROFILES = ['Default', 'default', 'Slow', 'fast_retry', 'a.b-c', 'X'.repeat(64)];

  function randomTable(r: () => number): { defaults: Settings; entries: Entry[] } {
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
    const int = (min: number, max: number): number => pick([min, max, min + Math.floor(r() * (max - min + 1))]);
    const limit = (): RecipientLimit => ({ recipients: int(0, 1_000_000_000), minutes: int(1, 60) });
    const full = (): Settings => ({
      ipPreference: pick(IP_PREFERENCES),
      concurrency: int(1, 1000),
      messagesPerConnection: int(1, 1000),
      recipientLimit: r() < 0.5 ? null : limit(),
      limitPer: pick(['domain', 'mx-ip'] as const),
      enforce: pick(['system', 'virtual-gateway'] as const),
      tls: pick(TLS_MODES),
      dane: pick(DANE_MODES),
      mtaSts: r() < 0.5,
      bounceVerification: r() < 0.5,
      bounceProfile: pick(PROFILES),
    });
    const defaults = full();
    const names = new Set<string>();
    const n = Math.floor(r() * 12);
    for (let i = 0; i < n; i++) {
      const base = pick(NAME_POOL);
      names.add(parseDestinationName(r() < 0.3 ? `.${base}` : base));
    }
    const entries = [...names].map((name): Entry => {
      const all = full();
      const settings: PartialSettings = {};
      for (const k of Object.keys(all) as (keyof Settings)[]) if (r() < 0.4) Object.assign(settings, { [k]: all[k] });
      // The entry-only override sits after tls, where the file and the store put it.
      if (r() < 0.4) settings.tlsAlert = r() < 0.5;
      return { name, settings };
    });
    return { defaults, entries };
  }

  test('round trip: export → import gives back the identical table (300 random tables)', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const { defaults, entries } = randomTable(rng(seed));
      const text = exportFile(defaults, entries);
      const r = parseImport(text);
      assert.ok(r.ok, `seed ${seed}: ${JSON.stringify(r.ok ? null : r.errors)}\n${text}`);
      assert.deepEqual(r.defaults, defaults, `seed ${seed}: defaults`);
      assert.deepEqual(r.entries, new DestinationTable(defaults, entries).list(), `seed ${seed}: entries\n${text}`);
      // And the text itself is a fixed point: exporting what was imported writes the same file.
      assert.equal(exportFile(r.defaults, r.entries), text, `seed ${seed}: export is stable`);
    }
  });
});

// ---- DETAIL text -----------------------------------------------------------------------------

describe('detailLines', () => {
  const defaults: Settings = { ...INITIAL_DEFAULTS, concurrency: 1000, ipPreference: 'ipv4-preferred' };

  test('an entry with inherited and set values', () => {
    const e: Entry = { name: 'example.com', settings: { tls: 'required-verify', recipientLimit: { recipients: 1000, minutes: 60 }, limitPer: 'mx-ip', bounceProfile: 'Default' } };
    assert.deepEqual(detailLines(e.name, e, defaults), [
      'Destination: example.com',
      'IP Address Preference: Default (IPv4 Preferred)',
      'Maximum Concurrent Connections: Default (1,000)',
      'Maximum Messages Per Connection: Default (50)',
      'Recipients: 1,000 per 60 minutes',
      'Apply limits per: Each mail exchanger (MX) IP address',
      'Enforce limits: Default (System Wide)',
      'TLS Support: Required - Verify',
      'DANE: Default (Opportunistic)',
      'MTA-STS: Default (On)',
      'Bounce Verification Address Tagging: Default (Off)',
      'Bounce Profile: Default',
    ]);
  });

  test('every setting set, an IDN name in both forms, No Limit set on the entry', () => {
    const e: Entry = {
      name: '.xn--bcher-kva.test',
      settings: {
        ipPreference: 'ipv6-required',
        concurrency: 1,
        messagesPerConnection: 1000,
        recipientLimit: null,
        limitPer: 'domain',
        enforce: 'virtual-gateway',
        tls: 'required-verify-hosted',
        dane: 'off',
        mtaSts: false,
        bounceVerification: true,
        bounceProfile: 'Slow',
      },
    };
    assert.deepEqual(detailLines(e.name, e, { ...defaults, recipientLimit: { recipients: 5, minutes: 1 } }), [
      'Destination: .xn--bcher-kva.test (.bücher.test)',
      'IP Address Preference: IPv6 Required',
      'Maximum Concurrent Connections: 1',
      'Maximum Messages Per Connection: 1,000',
      'Recipients: No Limit',
      'Apply limits per: Entire domain',
      'Enforce limits: Per Virtual Gateway',
      'TLS Support: Required - Verify Hosted Domains',
      'DANE: Off',
      'MTA-STS: Off',
      'Bounce Verification Address Tagging: On',
      'Bounce Profile: Slow',
    ]);
  });

  test('(Default) shows values, never "Default (…)"', () => {
    const lines = detailLines('(Default)', undefined, { ...INITIAL_DEFAULTS, recipientLimit: { recipients: 1, minutes: 1 }, tls: 'preferred-verify', dane: 'required' });
    assert.deepEqual(lines, [
      'Destination: (Default)',
      'IP Address Preference: IPv6 Preferred',
      'Maximum Concurrent Connections: 500',
      'Maximum Messages Per Connection: 50',
      'Recipients: 1 per 1 minute',
      'Apply limits per: Entire domain',
      'Enforce limits: System Wide',
      'TLS Support: Preferred - Verify',
      'DANE: Required',
      'MTA-STS: On',
      'Bounce Verification Address Tagging: Off',
      'Bounce Profile: Default',
    ]);
  });

  test('an entry with nothing set inherits everything, including No Limit', () => {
    const lines = detailLines('x.test', { name: 'x.test', settings: {} }, INITIAL_DEFAULTS);
    assert.equal(lines.length, 12);
    for (const l of lines.slice(1)) assert.match(l, /: Default \(.+\)$/);
    assert.ok(lines.includes('Recipients: Default (No Limit)'));
  });
});

// ---- the CLI ----------------------------------------------------------------------------------

/** The real CLI with `--data-dir dir` appended. */
function cli(dir: string, ...args: string[]): Promise<CliResult> {
  return runCli([...args, '--data-dir', dir]);
}
async function ok(dir: string, ...args: string[]): Promise<string> {
  const r = await cli(dir, ...args);
  assert.equal(r.code, 0, `postern ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}
const list = (dir: string): Promise<string> => ok(dir, 'destconfig', 'list', '--json');

/**
 * A varied table, stored in-process through ConfigStore (the functions the batch commands call,
 * without a process start per entry).
 */
function buildTable(dir: string): void {
  const s = ConfigStore.open(dir);
  try {
    s.editDefaults({ concurrency: 200, tls: 'preferred', recipientLimit: { recipients: 5000, minutes: 10 }, bounceProfile: 'Main', dane: 'off', mtaSts: false });
    s.newEntry('example.com', { tls: 'required-verify', concurrency: 5, dane: 'required' });
    s.newEntry('.example.com', { recipientLimit: null, ipPreference: 'ipv4-required', mtaSts: true });
    s.newEntry('bücher.test', { recipientLimit: { recipients: 0, minutes: 1 }, limitPer: 'mx-ip', enforce: 'virtual-gateway', bounceVerification: true });
    s.newEntry('plain.test', {});
    s.newEntry('profile.test', { bounceProfile: 'Default', messagesPerConnection: 1000, tls: 'required-verify-hosted' });
  } finally {
    s.close();
  }
}

const PARALLEL = { concurrency: 6 };

describe('destconfig import / export / detail / clear', PARALLEL, () => {
  test('a bad file: exit 2, every error as FILE:LINE: message, list --json byte-identical', async () => {
    const dir = fresh();
    buildTable(dir);
    const before = await list(dir);
    const file = join(dir, 'bad.ini');
    writeFileSync(
      file,
      [
        '# three errors, far apart', //   1
        '[DEFAULT]', //                   2
        'ip_sort_pref = PREFER_V6', //    3
        'max_host_concurrency = 1001', // 4  bad value
        'max_messages_per_connection = 50',
        'limit_type = host',
        'limit_apply = system',
        'tls = no',
        'bounce_validation = off',
        '[example.com]', //               10
        'tls = required',
        'tls = no', //                    12 duplicate key
        '[a..b]', //                      13 invalid name
        'wat', //                         14 malformed
      ].join('\n'),
    );
    const r = await cli(dir, 'destconfig', 'import', file);
    assert.equal(r.code, 2, r.stderr);
    const errorLines = r.stderr.split('\n').filter((l) => l.startsWith(`${file}:`));
    assert.deepEqual(
      errorLines.map((l) => Number(l.slice(file.length + 1).split(':')[0])),
      [4, 12, 13, 14],
    );
    assert.match(errorLines[0]!, /: invalid max_host_concurrency "1001": allowed an integer from 1 to 1,000$/);
    assert.match(errorLines[1]!, /: duplicate key tls in \[example\.com\] \(first at line 11\)$/);
    assert.match(errorLines[2]!, /: invalid destination name \[a\.\.b\]/);
    assert.match(errorLines[3]!, /: malformed line "wat"/);
    assert.match(r.stderr, /4 errors .* not changed/);
    assert.equal(await list(dir), before, 'a rejected import changed the table');

    const missing = await cli(dir, 'destconfig', 'import', join(dir, 'no-such-file.ini'));
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /cannot read .*no-such-file\.ini/);
    assert.equal(await list(dir), before);
  });

  test('a good file replaces the whole table', async () => {
    const dir = fresh();
    buildTable(dir);
    const file = join(dir, 'good.ini');
    writeFileSync(
      file,
      [
        '[DEFAULT]',
        'ip_sort_pref = require_v6',
        'max_host_concurrency = 7',
        'max_messages_per_connection = 8',
        'limit_type = 1',
        'limit_apply = 0',
        'tls = 0',
        'bounce_validation = 0',
        '[new.test]',
        'tls = 2',
        '[Bücher.test]',
        'bounce_validation = on',
      ].join('\n'),
    );
    const out = await ok(dir, 'destconfig', 'import', file);
    assert.match(out, /There are currently 3 entries configured\./);
    const after = JSON.parse(await list(dir)) as { default: Settings; entries: { name: string; settings: PartialSettings }[] };
    // dane and mta_sts left out of [DEFAULT] (an appliance's file) are their initial values again.
    assert.deepEqual(after.default, {
      ...INITIAL_DEFAULTS,
      ipPreference: 'ipv6-required',
      concurrency: 7,
      messagesPerConnection: 8,
      limitPer: 'mx-ip',
    });
    assert.deepEqual(
      after.entries.map((e) => [e.name, e.settings]),
      [
        ['new.test', { tls: 'required' }],
        ['xn--bcher-kva.test', { bounceVerification: true }],
      ],
    );
  });

  test('export → import into a fresh data directory gives a byte-identical list --json', async () => {
    const a = fresh();
    buildTable(a);
    const file = join(a, 'table.ini');
    assert.match(await ok(a, 'destconfig', 'export', file), /Exported \(Default\) and 5 entries/);
    const b = fresh();
    await ok(b, 'destconfig', 'new', 'to-be-replaced.test');
    await ok(b, 'destconfig', 'import', file);
    assert.equal(await list(b), await list(a));
    assert.match(readFileSync(file, 'utf8'), /^\[DEFAULT\]\n(?:.+\n)*dane = off\nmta_sts = off\n/m);
    assert.match(readFileSync(file, 'utf8'), /^\[example\.com\]\n(?:.+\n)*dane = required\n/m);
    const again = join(b, 'again.ini');
    await ok(b, 'destconfig', 'export', again);
    assert.equal(readFileSync(again, 'utf8'), readFileSync(file, 'utf8'), 'exporting the imported table writes the same file');
  });

  test('export refuses to overwrite an existing file unless --force', async () => {
    const dir = fresh();
    const file = join(dir, 'out.ini');
    writeFileSync(file, 'keep me\n');
    const r = await cli(dir, 'destconfig', 'export', file);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /exists; add --force/);
    assert.equal(readFileSync(file, 'utf8'), 'keep me\n');
    await ok(dir, 'destconfig', 'export', file, '--force');
    assert.match(readFileSync(file, 'utf8'), /^\[DEFAULT\]$/m);
  });

  test('detail: one entry, (Default), all, --json, and an unknown entry', async () => {
    const dir = fresh();
    await ok(dir, 'destconfig', 'default', '--concurrency', '1000', '--ip-preference', 'ipv4-preferred');
    await ok(dir, 'destconfig', 'new', 'example.com', '--tls', 'required-verify', '--recipients', '1000/60', '--limit-per', 'mx-ip', '--bounce-profile', 'Bulk');
    await ok(dir, 'destconfig', 'new', 'bücher.test');
    const one = await ok(dir, 'destconfig', 'detail', 'EXAMPLE.com');
    assert.equal(
      one,
      [
        'Destination: example.com',
        'IP Address Preference: Default (IPv4 Preferred)',
        'Maximum Concurrent Connections: Default (1,000)',
        'Maximum Messages Per Connection: Default (50)',
        'Recipients: 1,000 per 60 minutes',
        'Apply limits per: Each mail exchanger (MX) IP address',
        'Enforce limits: Default (System Wide)',
        'TLS Support: Required - Verify',
        'DANE: Default (Opportunistic)',
        'MTA-STS: Default (On)',
        'Bounce Verification Address Tagging: Default (Off)',
        'Bounce Profile: Bulk',
        '',
      ].join('\n'),
    );
    const def = await ok(dir, 'destconfig', 'detail', '(Default)');
    assert.match(def, /^Destination: \(Default\)$/m);
    assert.match(def, /^Maximum Concurrent Connections: 1,000$/m);
    assert.doesNotMatch(def, /Default \(/);

    const all = await ok(dir, 'destconfig', 'detail');
    assert.match(all, /^There are currently 3 entries configured\.\n\n/);
    const blocks = all.split('\n\n').slice(1);
    assert.deepEqual(
      blocks.map((b) => b.split('\n')[0]),
      ['Destination: example.com', 'Destination: xn--bcher-kva.test (bücher.test)', 'Destination: (Default)'],
    );
    assert.equal(blocks[0], one.trimEnd());

    const json = JSON.parse(await ok(dir, 'destconfig', 'detail', 'example.com', '--json')) as {
      name: string;
      settings: Settings;
      inherited: string[];
    };
    assert.equal(json.name, 'example.com');
    assert.equal(json.settings.concurrency, 1000);
    assert.equal(json.settings.tls, 'required-verify');
    assert.deepEqual(json.inherited, ['ipPreference', 'concurrency', 'messagesPerConnection', 'enforce', 'dane', 'mtaSts', 'bounceVerification']);
    assert.equal(json.settings.bounceProfile, 'Bulk');
    const allJson = JSON.parse(await ok(dir, 'destconfig', 'detail', '--json')) as { name: string }[];
    assert.deepEqual(
      allJson.map((e) => e.name),
      ['example.com', 'xn--bcher-kva.test', '(Default)'],
    );

    const unknown = await cli(dir, 'destconfig', 'detail', 'nowhere.test');
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /no entry for nowhere\.test/);
  });

  test('clear: refuses without --yes, removes every entry but (Default) with it', async () => {
    const dir = fresh();
    buildTable(dir);
    const before = await list(dir);
    const refused = await cli(dir, 'destconfig', 'clear');
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /add --yes/);
    assert.equal(await list(dir), before, 'clear without --yes changed the table');

    assert.match(await ok(dir, 'destconfig', 'clear', '--yes'), /Removed 5 entries/);
    const after = JSON.parse(await list(dir)) as { default: Settings; entries: unknown[] };
    assert.deepEqual(after.entries, []);
    assert.deepEqual(after.default, (JSON.parse(before) as { default: Settings }).default, '(Default) keeps its settings');
    assert.match(await ok(dir, 'destconfig', 'list'), /There is currently 1 entry configured\./);
  });
});

// The keys the file knows, as the spec lists them with Postern's own tls_alert, dane and
// mta_sts; a key added to the code without a golden case would slip through the coverage check above.
test('the file knows exactly the keys of SPEC §11', () => {
  assert.deepEqual(
    [...IMPORT_KEYS].sort(),
    [
      'bounce_profile',
      'bounce_validation',
      'dane',
      'ip_sort_pref',
      'limit_apply',
      'limit_type',
      'max_host_concurrency',
      'max_messages_per_connection',
      'mta_sts',
      'recipient_limit',
      'recipient_minutes',
      'tls',
      'tls_alert',
    ],
  );
});
