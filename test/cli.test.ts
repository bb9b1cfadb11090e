/**
 * Proves the `postern` command line (src/cli/*) end to end, by spawning the real CLI
 * (`node bin/postern.js …`) against a temporary data directory:
 *   - destconfig new/edit/default/delete/list (text and --json), every setting flag, and
 *     `default` putting a setting back to Default;
 *   - rejected values exit non-zero with a message naming the field and the value, and change
 *     nothing (list --json compared before and after); `new` of an existing entry and `delete`
 *     of (Default) fail;
 *   - LIST's text: the appliance's columns, the (Default) row, "There are currently N entries
 *     configured.";
 *   - smtproutes new/list/delete; certconfig authority add/list/remove with PEM files made by
 *     openssl and by the test CA, bad files rejected; destconfig setup --broken-tls-memory 0;
 *   - hot reload: a running `postern start` logs "Configuration reloaded" within one second of a
 *     CLI change, and stops with exit code 0 on SIGTERM.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ProfileStore } from '../src/config/profiles.js';
import { ConfigStore } from '../src/config/store.js';
import { INITIAL_DEFAULTS, type PartialSettings, type Settings } from '../src/controls/types.js';
import { TestCA } from './peers/ca.js';
import { tempDir } from './harness.js';
import { runCli, type CliResult } from './process.js';
import { within } from './deadline.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

type Result = CliResult;

interface ListJson {
  default: Settings;
  entries: { name: string; display: string; settings: PartialSettings }[];
}

function fresh(): string {
  const d = tempDir('postern-cli-');
  // Destination entries may only name bounce profiles that exist: create the ones used here.
  const s = ConfigStore.open(d);
  try {
    const profiles = new ProfileStore(s);
    for (const name of ['Slow_Retry', 'Fast', 'Other', 'Slow']) profiles.create(name);
  } finally {
    s.close();
  }
  return d;
}

/** Runs the real CLI with `--data-dir dataDir` appended. */
const cli = (dataDir: string, ...args: string[]): Promise<Result> => runCli([...args, '--data-dir', dataDir]);

/** Runs a command that must succeed; returns its stdout. */
async function ok(dataDir: string, ...args: string[]): Promise<string> {
  const r = await cli(dataDir, ...args);
  assert.equal(r.code, 0, `postern ${args.join(' ')} failed (${String(r.code)}): ${r.stderr}`);
  return r.stdout;
}

async function listJson(dataDir: string): Promise<ListJson> {
  return JSON.parse(await ok(dataDir, 'destconfig', 'list', '--json')) as ListJson;
}

async function entry(dataDir: string, name: string): Promise<PartialSettings | undefined> {
  return (await listJson(dataDir)).entries.find((e) => e.name === name)?.settings;
}

/** Prepares a data directory in-process (faster than one CLI run per step). */
function seed(dataDir: string, fn: (s: ConfigStore) => void): void {
  const s = ConfigStore.open(dataDir);
  try {
    fn(s);
  } finally {
    s.close();
  }
}

/**
 * Everything a command could change, to prove a rejected command changed nothing: the table as
 * `list --json` prints it, and the routes, authorities and global settings as stored.
 */
async function state(dataDir: string): Promise<string> {
  const list = await ok(dataDir, 'destconfig', 'list', '--json');
  const s = ConfigStore.open(dataDir);
  try {
    return JSON.stringify({ list, routes: [...s.routes()], authorities: s.authorities(), globals: s.globals() });
  } finally {
    s.close();
  }
}

/**
 * Runs a command that must be rejected: non-zero exit, message naming every `mentions`, nothing
 * changed (`before`: the state before the command, when already known).
 */
async function rejected(dataDir: string, args: string[], mentions: string[], before?: string): Promise<Result> {
  before ??= await state(dataDir);
  const r = await cli(dataDir, ...args);
  assert.notEqual(r.code, 0, `postern ${args.join(' ')} should fail; stdout: ${r.stdout}`);
  assert.notEqual(r.code, null, 'the command must exit, not be killed');
  for (const m of mentions) assert.ok(r.stderr.includes(m), `stderr of "postern ${args.join(' ')}" should mention ${m}: ${r.stderr}`);
  assert.equal(await state(dataDir), before, `postern ${args.join(' ')} changed the configuration`);
  return r;
}

// Tests of one describe use their own data directories, so they may run side by side.
const PARALLEL = { concurrency: 6 };

describe('destconfig: every setting flag', () => {
  // flags → the stored settings of the entry
  const GOLDEN: [string[], PartialSettings][] = [
    [['--tls', 'no'], { tls: 'no' }],
    [['--tls', 'preferred'], { tls: 'preferred' }],
    [['--tls', 'required'], { tls: 'required' }],
    [['--tls', 'Preferred-Verify'], { tls: 'preferred-verify' }],
    [['--tls', 'required-verify'], { tls: 'required-verify' }],
    [['--tls', 'required-verify-hosted'], { tls: 'required-verify-hosted' }],
    [['--concurrency', '1'], { concurrency: 1 }],
    [['--concurrency', '1,000'], { concurrency: 1000 }],
    [['--messages-per-connection', '1000'], { messagesPerConnection: 1000 }],
    [['--messages-per-connection', '1'], { messagesPerConnection: 1 }],
    [['--recipients', '1000/60'], { recipientLimit: { recipients: 1000, minutes: 60 } }],
    [['--recipients', '0/1'], { recipientLimit: { recipients: 0, minutes: 1 } }],
    [['--recipients', '1000000000/60'], { recipientLimit: { recipients: 1_000_000_000, minutes: 60 } }],
    [['--recipients', 'none'], { recipientLimit: null }],
    [['--limit-per', 'mx-ip'], { limitPer: 'mx-ip' }],
    [['--limit-per', 'domain'], { limitPer: 'domain' }],
    [['--enforce', 'virtual-gateway'], { enforce: 'virtual-gateway' }],
    [['--enforce', 'system'], { enforce: 'system' }],
    [['--bounce-verification', 'on'], { bounceVerification: true }],
    [['--bounce-verification', 'off'], { bounceVerification: false }],
    [['--bounce-profile', 'Slow_Retry'], { bounceProfile: 'Slow_Retry' }],
    [['--ip-preference', 'ipv4-required'], { ipPreference: 'ipv4-required' }],
    [['--ip-preference', 'IPv6-Required'], { ipPreference: 'ipv6-required' }],
    [['--ip-preference', 'ipv4-preferred'], { ipPreference: 'ipv4-preferred' }],
    [['--ip-preference', 'ipv6-preferred'], { ipPreference: 'ipv6-preferred' }],
    [['--dane', 'off'], { dane: 'off' }],
    [['--dane', 'Opportunistic'], { dane: 'opportunistic' }],
    [['--dane', 'required'], { dane: 'required' }],
    [['--mta-sts', 'on'], { mtaSts: true }],
    [['--mta-sts', 'off'], { mtaSts: false }],
  ];
  // All rows go into one data directory side by side; the table is then read back once.
  const dir = fresh();
  seed(dir, () => undefined);
  describe('new with one flag', PARALLEL, () => {
    GOLDEN.forEach(([flags, settings], i) => {
      test(`new d${i}.test ${flags.join(' ')} → ${JSON.stringify(settings)}`, async () => {
        assert.match(await ok(dir, 'destconfig', 'new', `d${i}.test`, ...flags), new RegExp(`^Created d${i}\\.test\\.$`, 'm'));
      });
    });
  });
  test('every entry is stored with exactly the setting its flag gave', async () => {
    const stored = new Map((await listJson(dir)).entries.map((e) => [e.name, e.settings]));
    GOLDEN.forEach(([flags, settings], i) => assert.deepEqual(stored.get(`d${i}.test`), settings, flags.join(' ')));
    assert.equal(stored.size, GOLDEN.length);
  });

  test('edit with every flag at once, then `default` puts chosen settings back to Default', async () => {
    const d = fresh();
    await ok(d, 'destconfig', 'new', 'x.test');
    assert.deepEqual(await entry(d, 'x.test'), {});
    const all: Settings = {
      tls: 'required-verify',
      dane: 'required',
      mtaSts: false,
      concurrency: 20,
      messagesPerConnection: 5,
      recipientLimit: { recipients: 1000, minutes: 60 },
      limitPer: 'mx-ip',
      enforce: 'virtual-gateway',
      bounceVerification: true,
      bounceProfile: 'Fast',
      ipPreference: 'ipv4-preferred',
    };
    const out = await ok(d, 'destconfig', 'edit', 'X.TEST.', '--tls', 'required-verify', '--concurrency', '20', '--messages-per-connection', '5', '--recipients', '1000/60', '--limit-per', 'mx-ip', '--enforce', 'virtual-gateway', '--bounce-verification', 'on', '--bounce-profile', 'Fast', '--ip-preference', 'ipv4-preferred', '--dane', 'required', '--mta-sts', 'off');
    assert.match(out, /Changed x\.test\./);
    assert.deepEqual(await entry(d, 'x.test'), all);
    // DETAIL shows both right after the TLS line.
    assert.match(await ok(d, 'destconfig', 'detail', 'x.test'), /^TLS Support: Required - Verify\nDANE: Required\nMTA-STS: Off\nBounce Verification Address Tagging: On$/m);

    await ok(d, 'destconfig', 'edit', 'x.test', '--tls', 'default', '--concurrency', 'default', '--recipients', 'default', '--bounce-verification', 'DEFAULT', '--dane', 'default', '--mta-sts', 'Default');
    assert.deepEqual(await entry(d, 'x.test'), {
      messagesPerConnection: 5,
      limitPer: 'mx-ip',
      enforce: 'virtual-gateway',
      bounceProfile: 'Fast',
      ipPreference: 'ipv4-preferred',
    });
    assert.match(await ok(d, 'destconfig', 'detail', 'x.test'), /^DANE: Default \(Opportunistic\)\nMTA-STS: Default \(On\)$/m);
    await ok(d, 'destconfig', 'edit', 'x.test', '--messages-per-connection', 'default', '--limit-per', 'default', '--enforce', 'default', '--bounce-profile', 'default', '--ip-preference', 'default');
    assert.deepEqual(await entry(d, 'x.test'), {});
  });

  test('`--recipients none` in an entry is an explicit No Limit, distinct from Default', async () => {
    const d = fresh();
    await ok(d, 'destconfig', 'default', '--recipients', '100/5');
    await ok(d, 'destconfig', 'new', 'x.test', '--recipients', 'none');
    assert.deepEqual(await entry(d, 'x.test'), { recipientLimit: null });
    await ok(d, 'destconfig', 'edit', 'x.test', '--recipients', 'default');
    assert.deepEqual(await entry(d, 'x.test'), {});
  });
});

describe('destconfig: new, edit, default, delete, list', PARALLEL, () => {
  test('names are normalised; an IDN is stored as A-label and shown in both forms', async () => {
    const d = fresh();
    assert.match(await ok(d, 'destconfig', 'new', 'Bücher.TEST.', '--tls', 'preferred'), /Created xn--bcher-kva\.test \(bücher\.test\)\./);
    await ok(d, 'destconfig', 'new', '.Example.COM');
    assert.deepEqual(
      (await listJson(d)).entries.map((e) => [e.name, e.display]),
      [
        ['.example.com', '.example.com'],
        ['xn--bcher-kva.test', 'xn--bcher-kva.test (bücher.test)'],
      ],
    );
  });

  test('a config.db written before dane and mtaSts existed reads them as their initial values, and entries inherit them', async () => {
    const d = fresh();
    seed(d, (s) => {
      const { dane: _dane, mtaSts: _mtaSts, ...older } = INITIAL_DEFAULTS;
      s.db.prepare('UPDATE destinations SET settings = ? WHERE name = ?').run(JSON.stringify({ ...older, tls: 'preferred' }), '(Default)');
      s.db.prepare('INSERT INTO destinations (name, settings) VALUES (?, ?)').run('old.test', JSON.stringify({ tls: 'required' }));
    });
    assert.deepEqual((await listJson(d)).default, { ...INITIAL_DEFAULTS, tls: 'preferred' });
    assert.match(await ok(d, 'destconfig', 'detail', 'old.test'), /^TLS Support: Required\nDANE: Default \(Opportunistic\)\nMTA-STS: Default \(On\)$/m);
    await ok(d, 'destconfig', 'default', '--dane', 'off');
    await ok(d, 'destconfig', 'edit', 'old.test', '--mta-sts', 'off');
    assert.equal((await listJson(d)).default.dane, 'off');
    assert.deepEqual(await entry(d, 'old.test'), { tls: 'required', mtaSts: false });
    assert.match(await ok(d, 'destconfig', 'detail', 'old.test'), /^DANE: Default \(Off\)\nMTA-STS: Off$/m);
  });

  test('new of an existing entry fails, in any spelling, and changes nothing', async () => {
    const d = fresh();
    await ok(d, 'destconfig', 'new', 'bücher.test', '--tls', 'required');
    await rejected(d, ['destconfig', 'new', 'xn--bcher-kva.test', '--tls', 'no'], ['xn--bcher-kva.test', 'already exists']);
    await rejected(d, ['destconfig', 'new', 'Bücher.TEST.', '--concurrency', '3'], ['xn--bcher-kva.test', 'already exists']);
    assert.deepEqual(await entry(d, 'xn--bcher-kva.test'), { tls: 'required' });
  });

  test('edit and delete of a missing entry fail naming it', async () => {
    const d = fresh();
    await rejected(d, ['destconfig', 'edit', 'missing.test', '--tls', 'required'], ['missing.test']);
    await rejected(d, ['destconfig', 'delete', 'missing.test'], ['missing.test']);
  });

  test('delete removes an entry; (Default) cannot be deleted', async () => {
    const d = fresh();
    await ok(d, 'destconfig', 'new', 'x.test');
    await ok(d, 'destconfig', 'new', '.x.test');
    assert.match(await ok(d, 'destconfig', 'delete', 'X.test.'), /Deleted x\.test\./);
    assert.deepEqual(
      (await listJson(d)).entries.map((e) => e.name),
      ['.x.test'],
    );
    await rejected(d, ['destconfig', 'delete', '(Default)'], ['(Default)']);
    assert.match(await ok(d, 'destconfig', 'delete', '.x.test'), /Deleted \.x\.test\./);
    assert.deepEqual((await listJson(d)).entries, []);
  });

  test('default changes the (Default) entry; `default` is not a value for it', async () => {
    const d = fresh();
    assert.deepEqual((await listJson(d)).default, INITIAL_DEFAULTS);
    assert.match(
      await ok(d, 'destconfig', 'default', '--tls', 'preferred', '--concurrency', '100', '--recipients', '500/10', '--ip-preference', 'ipv4-preferred'),
      /Changed \(Default\)\./,
    );
    assert.deepEqual((await listJson(d)).default, {
      ...INITIAL_DEFAULTS,
      tls: 'preferred',
      concurrency: 100,
      recipientLimit: { recipients: 500, minutes: 10 },
      ipPreference: 'ipv4-preferred',
    });
    assert.match(await ok(d, 'destconfig', 'detail', '(Default)'), /^TLS Support: Preferred\nDANE: Opportunistic\nMTA-STS: On$/m);
    await ok(d, 'destconfig', 'default', '--recipients', 'none', '--bounce-verification', 'on', '--limit-per', 'mx-ip', '--enforce', 'virtual-gateway', '--messages-per-connection', '9', '--bounce-profile', 'Other', '--dane', 'required', '--mta-sts', 'off');
    assert.deepEqual((await listJson(d)).default, {
      ipPreference: 'ipv4-preferred',
      concurrency: 100,
      messagesPerConnection: 9,
      recipientLimit: null,
      limitPer: 'mx-ip',
      enforce: 'virtual-gateway',
      tls: 'preferred',
      dane: 'required',
      mtaSts: false,
      bounceVerification: true,
      bounceProfile: 'Other',
    });
    assert.match(await ok(d, 'destconfig', 'detail', '(Default)'), /^TLS Support: Preferred\nDANE: Required\nMTA-STS: Off$/m);
    await rejected(d, ['destconfig', 'default', '--tls', 'default'], ['--tls', '"default"']);
    await rejected(d, ['destconfig', 'default', '--dane', 'default'], ['--dane', '"default"']);
    await rejected(d, ['destconfig', 'default', '--mta-sts', 'default'], ['--mta-sts', '"default"']);
    await rejected(d, ['destconfig', 'default', '--concurrency', 'default'], ['--concurrency', '"default"']);
  });

  test('LIST text: the appliance columns, every entry, the (Default) row and the count', async () => {
    const d = fresh();
    let out = await ok(d, 'destconfig', 'list');
    assert.match(out, /^There is currently 1 entry configured\.$/m);
    await ok(d, 'destconfig', 'new', 'example.com', '--tls', 'required-verify-hosted', '--concurrency', '10');
    await ok(d, 'destconfig', 'new', 'bücher.test', '--bounce-verification', 'on', '--bounce-profile', 'Slow', '--ip-preference', 'ipv4-required');
    out = await ok(d, 'destconfig', 'list');
    assert.match(out, /^There are currently 3 entries configured\.$/m);
    const lines = out.split('\n');
    const header = lines.find((l) => l.startsWith('Domain'));
    assert.ok(header, out);
    assert.deepEqual(header.split(/\s{2,}/), ['Domain', 'Rate Limiting', 'TLS', 'Bounce Verification', 'Bounce Profile', 'IP Version Preference']);
    const row = (first: string) => {
      const l = lines.find((x) => x.startsWith(first + ' ') || x === first);
      assert.ok(l, `a row for ${first} in:\n${out}`);
      return l.split(/\s{2,}/);
    };
    assert.deepEqual(row('example.com'), ['example.com', 'On', 'Required - Verify Hosted Domains', 'Default', 'Default', 'Default']);
    assert.deepEqual(row('xn--bcher-kva.test'), ['xn--bcher-kva.test (bücher.test)', 'Default', 'Default', 'On', 'Slow', 'IPv4 Required']);
    assert.deepEqual(row('(Default)'), ['(Default)', 'On', 'No', 'Off', 'Default', 'IPv6 Preferred']);
    // (Default) is the last row.
    assert.ok(lines.filter((l) => l.trim() !== '').at(-1)!.startsWith('(Default)'));
  });
});

describe('destconfig: rejected values name field and value, and change nothing', PARALLEL, () => {
  /** A table with one entry and a changed (Default), so that "nothing changed" has something to keep. */
  const prepared = (): string => {
    const d = fresh();
    seed(d, (s) => {
      s.newEntry('x.test', { tls: 'preferred', concurrency: 7 });
      s.editDefaults({ messagesPerConnection: 11 });
      s.putRoute('x.test', [{ host: 'mx.x.test' }]);
      s.setGlobals({ brokenTlsMemoryHours: 3 });
    });
    return d;
  };
  // [args, mentions…]
  const BAD: [string[], ...string[]][] = [
    [['destconfig', 'new', 'a.test', '--concurrency', '0'], '--concurrency', '"0"', '1 to 1,000'],
    [['destconfig', 'new', 'a.test', '--concurrency', '1001'], '--concurrency', '"1001"', '1 to 1,000'],
    [['destconfig', 'new', 'a.test', '--concurrency', 'many'], '--concurrency', '"many"'],
    [['destconfig', 'new', 'a.test', '--messages-per-connection', '0'], '--messages-per-connection', '"0"', '1 to 1,000'],
    [['destconfig', 'new', 'a.test', '--messages-per-connection', '1001'], '--messages-per-connection', '"1001"', '1 to 1,000'],
    [['destconfig', 'new', 'a.test', '--recipients', '1000000001/60'], '--recipients', '"1000000001"', '0 to 1,000,000,000'],
    [['destconfig', 'new', 'a.test', '--recipients', '10/0'], '--recipients', '"0"', '1 to 60'],
    [['destconfig', 'new', 'a.test', '--recipients', '10/61'], '--recipients', '"61"', '1 to 60'],
    [['destconfig', 'new', 'a.test', '--recipients', 'lots'], '--recipients', '"lots"'],
    [['destconfig', 'new', 'a.test', '--recipients', '10'], '--recipients', '"10"'],
    [['destconfig', 'new', 'a.test', '--tls', 'sometimes'], '--tls', '"sometimes"', 'required-verify-hosted'],
    [['destconfig', 'new', 'a.test', '--limit-per', 'entire'], '--limit-per', '"entire"', 'mx-ip'],
    [['destconfig', 'new', 'a.test', '--enforce', 'cluster'], '--enforce', '"cluster"', 'virtual-gateway'],
    [['destconfig', 'new', 'a.test', '--bounce-verification', 'maybe'], '--bounce-verification', '"maybe"'],
    [['destconfig', 'new', 'a.test', '--bounce-profile', 'has space'], 'bounce profile', '"has space"'],
    [['destconfig', 'new', 'a.test', '--ip-preference', 'ipv5-preferred'], '--ip-preference', '"ipv5-preferred"'],
    [['destconfig', 'new', 'a.test', '--dane', 'always'], '--dane', '"always"', 'allowed off, opportunistic, required'],
    [['destconfig', 'new', 'a.test', '--mta-sts', 'enforce'], '--mta-sts', '"enforce"', 'allowed on (or yes, 1), off (or no, 0), default'],
    [['destconfig', 'edit', 'x.test', '--tls', 'required', '--dane', 'mandatory'], '--dane', '"mandatory"', 'off, opportunistic, required'],
    [['destconfig', 'default', '--mta-sts', 'testing'], '--mta-sts', '"testing"', 'on (or yes, 1), off (or no, 0)'],
    [['destconfig', 'new', 'bad_name.test'], 'destination', '"bad_name.test"'],
    [['destconfig', 'new', '*.wild.test'], 'destination', '"*.wild.test"'],
    // A rejected edit changes none of its settings, not even the valid ones.
    [['destconfig', 'edit', 'x.test', '--tls', 'required', '--concurrency', '0'], '--concurrency', '"0"'],
    [['destconfig', 'edit', 'x.test', '--tls', 'required', '--bounce-profile', 'bad/name'], 'bounce profile', '"bad/name"'],
    [['destconfig', 'default', '--concurrency', '1001'], '--concurrency', '"1001"'],
    [['destconfig', 'default', '--tls', 'required', '--recipients', '5/99'], '--recipients', '"99"'],
    [['destconfig', 'default', '--tls', 'required', '--bounce-profile', 'a b'], 'bounce profile', '"a b"'],
    [['destconfig', 'new', 'a.test', '--tls', 'required', '--tls-alert', 'loud'], '--tls-alert', '"loud"', 'default (the global switch)'],
    // (Default) has no override of its own: the global switch is its value, and the message says where.
    [['destconfig', 'default', '--tls', 'required', '--tls-alert', 'on'], '--tls-alert', '"on"', 'destconfig setup --required-tls-alert'],
    [['destconfig', 'setup', '--broken-tls-memory', 'forever'], '--broken-tls-memory', '"forever"'],
    [['destconfig', 'setup', '--broken-tls-memory', '9000'], '--broken-tls-memory', '"9000"'],
    [['destconfig', 'setup', '--broken-tls-memory', '0', '--required-tls-alert', 'maybe'], '--required-tls-alert', '"maybe"'],
  ];
  // What every prepared directory looks like, read once; each rejected command must leave it so.
  let reference = '';
  before(async () => {
    reference = await state(prepared());
  });
  for (const [args, ...mentions] of BAD) {
    test(`postern ${args.join(' ')}`, async () => {
      await rejected(prepared(), args, mentions, reference);
    });
  }
});

describe('destconfig setup', () => {
  test('--broken-tls-memory 0 switches the memory off, and is kept', async () => {
    const d = fresh();
    assert.match(await ok(d, 'destconfig', 'setup'), /^Remembered broken TLS: 24 hours$/m);
    assert.match(await ok(d, 'destconfig', 'setup', '--broken-tls-memory', '0'), /^Remembered broken TLS: off$/m);
    assert.match(await ok(d, 'destconfig', 'setup'), /^Remembered broken TLS: off$/m);
    assert.match(
      await ok(d, 'destconfig', 'setup', '--broken-tls-memory', '6', '--required-tls-alert', 'on'),
      /^Remembered broken TLS: 6 hours\nAlert when a required TLS connection fails: on$/m,
    );
  });
});

describe('smtproutes', PARALLEL, () => {
  test('new, list (text and --json), edit, delete', async () => {
    const d = fresh();
    assert.match(await ok(d, 'smtproutes', 'list'), /No SMTP routes configured\./);
    const out = await ok(d, 'smtproutes', 'new', 'Example.COM', 'MX1.test:2525,[::1]:26,10.0.0.1');
    assert.match(out, /Route for example\.com: mx1\.test:2525, ::1:26, 10\.0\.0\.1/);
    await ok(d, 'smtproutes', 'new', 'other.test', 'relay.test');
    assert.deepEqual(JSON.parse(await ok(d, 'smtproutes', 'list', '--json')), {
      'example.com': [{ host: 'mx1.test', port: 2525 }, { host: '::1', port: 26 }, { host: '10.0.0.1' }],
      'other.test': [{ host: 'relay.test' }],
    });
    const text = await ok(d, 'smtproutes', 'list');
    assert.match(text, /^Domain\s+Destination hosts$/m);
    assert.match(text, /^example\.com\s+mx1\.test:2525, ::1:26, 10\.0\.0\.1$/m);
    assert.match(text, /^other\.test\s+relay\.test$/m);
    await rejected(d, ['smtproutes', 'new', 'other.test', 'relay2.test:587'], ['other.test', 'already exists', 'smtproutes edit']);
    await ok(d, 'smtproutes', 'edit', 'other.test', 'relay2.test:587');
    assert.deepEqual((JSON.parse(await ok(d, 'smtproutes', 'list', '--json')) as Record<string, unknown>)['other.test'], [{ host: 'relay2.test', port: 587 }]);
    assert.match(await ok(d, 'smtproutes', 'delete', 'EXAMPLE.com'), /Deleted the route for example\.com\./);
    assert.deepEqual(Object.keys(JSON.parse(await ok(d, 'smtproutes', 'list', '--json')) as object), ['other.test']);
    await rejected(d, ['smtproutes', 'delete', 'example.com'], ['example.com']);
  });

  test('bad hosts and domains are rejected and change nothing', async () => {
    const d = fresh();
    seed(d, (s) => s.putRoute('example.com', [{ host: 'mx.test' }]));
    await rejected(d, ['smtproutes', 'new', 'example.com', 'bad_host'], ['route host', '"bad_host"']);
    await rejected(d, ['smtproutes', 'new', 'example.com', 'mx.test:0'], ['route host', '"mx.test:0"']);
    await rejected(d, ['smtproutes', 'new', 'example.com', 'good.test,mx.test:99999'], ['route host', '"mx.test:99999"']);
    await rejected(d, ['smtproutes', 'new', 'bad_domain', 'mx.test'], ['route domain', '"bad_domain"']);
  });
});

describe('certconfig authority', PARALLEL, () => {
  test('add (openssl and TestCA PEM), list, remove by id and by fingerprint; re-adding adds nothing', async () => {
    const d = fresh();
    const files = fresh();
    const opensslPem = join(files, 'openssl-ca.pem');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(files, 'k.pem'), '-out', opensslPem, '-subj', '/CN=Postern CLI OpenSSL CA', '-days', '30'],
      { stdio: 'ignore' },
    );
    const ca = await TestCA.create('Postern CLI TestCA');
    const testCaPem = join(files, 'testca.pem');
    writeFileSync(testCaPem, ca.certPem);

    assert.match(await ok(d, 'certconfig', 'authority', 'list'), /No custom authorities\./);
    assert.match(await ok(d, 'certconfig', 'authority', 'add', opensslPem), /^Added 1: CN=Postern CLI OpenSSL CA \(SHA-256 [0-9a-f]{16}…\)$/m);
    assert.match(await ok(d, 'certconfig', 'authority', 'add', testCaPem), /^Added 2: CN=Postern CLI TestCA /m);
    assert.match(await ok(d, 'certconfig', 'authority', 'add', testCaPem), /Already trusted; nothing added\./);

    const list = await ok(d, 'certconfig', 'authority', 'list');
    assert.match(list, /^System authorities: trusted$/m);
    assert.match(list, /^ID\s+Subject\s+Valid until\s+SHA-256$/m);
    assert.match(list, /^1\s+CN=Postern CLI OpenSSL CA\s+.+\s+[0-9a-f]{16}$/m);
    const testCaRow = /^2\s+CN=Postern CLI TestCA\s+.+\s+([0-9a-f]{16})$/m.exec(list);
    assert.ok(testCaRow, list);

    assert.match(await ok(d, 'certconfig', 'authority', 'remove', '1'), /^Removed 1: CN=Postern CLI OpenSSL CA$/m);
    assert.match(await ok(d, 'certconfig', 'authority', 'remove', testCaRow[1]!.slice(0, 10)), /^Removed 2: CN=Postern CLI TestCA$/m);
    assert.match(await ok(d, 'certconfig', 'authority', 'list'), /No custom authorities\./);
    await rejected(d, ['certconfig', 'authority', 'remove', '1'], ['no authority 1']);
  });

  test('a bundle adds every certificate in it', async () => {
    const d = fresh();
    const f = join(fresh(), 'bundle.pem');
    const [a, b] = await Promise.all([TestCA.create('Bundle CA One'), TestCA.create('Bundle CA Two')]);
    writeFileSync(f, a.certPem + b.certPem);
    const out = await ok(d, 'certconfig', 'authority', 'add', f);
    assert.match(out, /Added 1: CN=Bundle CA One/);
    assert.match(out, /Added 2: CN=Bundle CA Two/);
  });

  test('bad files are rejected and change nothing', async () => {
    const d = fresh();
    const files = fresh();
    const ca = await TestCA.create('Kept CA');
    seed(d, (s) => s.addAuthorities(ca.certPem));

    writeFileSync(join(files, 'text.pem'), 'this is not a certificate\n');
    await rejected(d, ['certconfig', 'authority', 'add', join(files, 'text.pem')], ['authority file']);

    const garbage = '-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n';
    writeFileSync(join(files, 'garbage.pem'), garbage);
    await rejected(d, ['certconfig', 'authority', 'add', join(files, 'garbage.pem')], ['authority certificate #1']);

    // One good and one broken certificate: nothing of the bundle is added.
    const other = await TestCA.create('Other CA');
    writeFileSync(join(files, 'mixed.pem'), other.certPem + garbage);
    await rejected(d, ['certconfig', 'authority', 'add', join(files, 'mixed.pem')], ['authority certificate #2']);

    await rejected(d, ['certconfig', 'authority', 'add', join(files, 'missing.pem')], ['missing.pem']);
    const list = await ok(d, 'certconfig', 'authority', 'list');
    assert.match(list, /Kept CA/);
    assert.doesNotMatch(list, /Other CA/);
  });
});

describe('two CLI processes writing at once', () => {
  // Two scripts may run `postern destconfig …` at the same moment (or the web page and a
  // script). Each command must either wait for the other or be serialised after it: never fail
  // with "database is locked", never lose the other's change. The interleaving is made
  // deterministic by letting a second store commit exactly between the first store's read and
  // its write (the `prepare` of the write statement).
  type Prepare = (sql: string) => unknown;
  function interleave(store: ConfigStore, writePrefix: string, other: () => void): void {
    const db = (store as unknown as { db: { prepare: Prepare } }).db;
    const original = db.prepare.bind(db) as Prepare;
    let fired = false;
    db.prepare = (sql: string) => {
      if (!fired && sql.startsWith(writePrefix)) {
        fired = true;
        other();
      }
      return original(sql);
    };
  }
  /** The other process: tries once without waiting long; refused means "serialised after". */
  function otherWriter(dataDir: string, change: (s: ConfigStore) => void): { run: () => void; refused: () => boolean } {
    const s = ConfigStore.open(dataDir);
    (s as unknown as { db: { pragma: (p: string) => unknown } }).db.pragma('busy_timeout = 50');
    let refused = false;
    return {
      run: () => {
        try {
          change(s);
        } catch {
          refused = true;
        }
      },
      refused: () => refused,
    };
  }

  test('new: a commit by another process between the check and the insert does not fail the command', () => {
    const d = fresh();
    seed(d, () => undefined);
    const other = otherWriter(d, (s) => s.newEntry('other.test', { tls: 'required' }));
    const mine = ConfigStore.open(d);
    try {
      interleave(mine, 'INSERT INTO destinations', other.run);
      assert.doesNotThrow(() => mine.newEntry('x.test', { concurrency: 3 }));
      if (other.refused()) other.run();
      assert.deepEqual(
        mine.table().list().map((e) => e.name),
        ['other.test', 'x.test'],
      );
    } finally {
      mine.close();
    }
  });

  test('default: two changes of the (Default) entry at once both stay (no lost update)', () => {
    const d = fresh();
    seed(d, () => undefined);
    const other = otherWriter(d, (s) => s.editDefaults({ concurrency: 7 }));
    const mine = ConfigStore.open(d);
    try {
      interleave(mine, 'UPDATE destinations', other.run);
      mine.editDefaults({ tls: 'required' });
      if (other.refused()) other.run();
      const defaults = mine.defaults();
      assert.equal(defaults.tls, 'required');
      assert.equal(defaults.concurrency, 7, 'the other process\'s change was overwritten');
    } finally {
      mine.close();
    }
  });
});

describe('hot reload of a running gateway', () => {
  let child: ChildProcess | null = null;
  after(() => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  test('start prints the real port; a CLI change is logged as "Configuration reloaded" within 1 s; SIGTERM exits 0', async () => {
    const d = fresh();
    const proc = spawn(process.execPath, ['bin/postern.js', 'start', '--data-dir', d, '--listen', '127.0.0.1:0', '--hostname', 't.test', '--admin', 'off'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let stdout = '';
    let stderr = '';
    proc.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    proc.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      proc.on('exit', (code, signal) => resolve({ code, signal })),
    );

    // The "listening" line carries the port the kernel chose for port 0.
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no listening line in ${within(10_000) / 1000} s; stdout: ${stdout} stderr: ${stderr}`)), within(10_000));
      const check = () => {
        const m = /Postern listening on 127\.0\.0\.1:(\d+)/.exec(stdout);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      };
      proc.stdout!.on('data', check);
      void exited.then(({ code }) => reject(new Error(`exited early (${String(code)}): ${stderr}`)));
      check();
    });
    assert.ok(port > 0 && port <= 65535, `port ${port}`);

    // That port really is the listener: it greets with 220.
    const greeting = await new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      s.setEncoding('utf8');
      s.once('data', (line: string) => {
        s.destroy();
        resolve(line);
      });
      s.once('error', reject);
    });
    assert.match(greeting, /^220 /);

    const logFile = join(d, 'logs', 'mail.log');
    const readLog = () => {
      try {
        return readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    };
    assert.doesNotMatch(readLog(), /Configuration reloaded/, 'no reload before any change');

    await ok(d, 'destconfig', 'new', 'x.test', '--tls', 'required');
    const changedAt = Date.now();
    // The reload that sees the new entry; an earlier reload may have caught the CLI's own
    // set-up commits (opening the store) before the entry was written.
    const reloaded = /Configuration reloaded: 1 entries, 0 routes/;
    let seen = false;
    while (Date.now() - changedAt <= 1000) {
      if (reloaded.test(readLog())) {
        seen = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(seen, `"Configuration reloaded: 1 entries" not logged within 1 s of the change; mail.log:\n${readLog()}`);

    proc.kill('SIGTERM');
    const result = await Promise.race([
      exited,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`did not stop within ${within(10_000) / 1000} s of SIGTERM`)), within(10_000))),
    ]);
    assert.deepEqual(result, { code: 0, signal: null }, `stderr: ${stderr}`);
    assert.match(stdout, /SIGTERM: stopping/);
  });
});

describe('consistency of words and messages', PARALLEL, () => {
  test('--limit-per, --enforce and --bounce-verification take the import file\'s words too, as their help says', async () => {
    const d = fresh();
    const r = await cli(d, 'destconfig', 'new', 'a.test', '--limit-per', 'mxip', '--enforce', 'vg', '--bounce-verification', '1');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await entry(d, 'a.test'), { limitPer: 'mx-ip', enforce: 'virtual-gateway', bounceVerification: true });
    assert.match(r.stderr, /envelope senders are tagged only while a tagging key exists \(postern bvconfig key add\)/);
    await ok(d, 'destconfig', 'new', 'b.test', '--limit-per', 'host', '--enforce', '0', '--bounce-verification', 'no');
    assert.deepEqual(await entry(d, 'b.test'), { limitPer: 'domain', enforce: 'system', bounceVerification: false });
    await rejected(d, ['destconfig', 'new', 'c.test', '--bounce-verification', 'maybe'], ['--bounce-verification', '"maybe"', 'on (or yes, 1), off (or no, 0), default']);
    const help = (await cli(d, 'destconfig', 'new', '--help')).stdout.replace(/\s+/g, ' '); // commander wraps lines
    assert.match(help, /on \(or yes, 1\), off \(or no, 0\), default/);
    assert.match(help, /domain \(or host, 0\), mx-ip \(or mxip, 1\), default/);
  });

  test('turning on a setting whose effect depends on more says so', async () => {
    const d = fresh();
    const r = await cli(d, 'destconfig', 'setup', '--required-tls-alert', 'on');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /required-TLS failure alerts go to the alert recipients of class tls/);
  });

  test('counts read as English: one entry, one recipient', async () => {
    const d = fresh();
    assert.match(await ok(d, 'destconfig', 'list'), /^There is currently 1 entry configured\.$/m);
    assert.match(await ok(d, 'queue', 'list'), /^0 recipients pending$/m);
  });
});
