/**
 * The interactive `postern destconfig` dialogue, driven through a pipe as an administrator's
 * here-document would drive it, compared as whole transcripts with golden files:
 * test/golden/dialogue/NAME.in is the input, NAME.out the exact expected output. After each
 * dialogue the stored table is checked through the batch commands, so a transcript that looks
 * right but stores the wrong thing still fails. `UPDATE_GOLDEN=1` rewrites the .out files (read
 * the diff before keeping it).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { tempDir } from './harness.js';
import { POSTERN_BIN, runCliOk } from './process.js';

const GOLDEN = fileURLToPath(new URL('../../test/golden/dialogue/', import.meta.url));

function dialogue(dataDir: string, input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [POSTERN_BIN, 'destconfig', '--data-dir', dataDir], { cwd: dataDir, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

async function transcript(name: string, dataDir: string): Promise<string> {
  const input = readFileSync(join(GOLDEN, `${name}.in`), 'utf8');
  const r = await dialogue(dataDir, input);
  assert.equal(r.code, 0, `dialogue exits 0 at end of input: ${r.stderr}`);
  const outFile = join(GOLDEN, `${name}.out`);
  if (process.env.UPDATE_GOLDEN || !existsSync(outFile)) writeFileSync(outFile, r.stdout);
  assert.equal(r.stdout, readFileSync(outFile, 'utf8'), `transcript ${name}`);
  return r.stdout;
}

const list = async (dataDir: string) =>
  JSON.parse(await runCliOk(['destconfig', 'list', '--json', '--data-dir', dataDir])) as {
    default: Record<string, unknown>;
    entries: { name: string; settings: Record<string, unknown> }[];
  };

describe('destconfig dialogue transcripts', () => {
  it('NEW with every setting, invalid answers asked again, then LIST and DETAIL', async () => {
    const d = tempDir();
    await transcript('new-all-settings', d);
    const t = await list(d);
    assert.deepEqual(t.entries, [
      {
        name: 'example.com',
        display: 'example.com',
        settings: {
          concurrency: 250,
          messagesPerConnection: 20,
          recipientLimit: { recipients: 5000, minutes: 30 },
          limitPer: 'mx-ip',
          enforce: 'virtual-gateway',
          tls: 'required-verify',
          tlsAlert: false,
          dane: 'required',
          mtaSts: false,
          bounceVerification: true,
          bounceProfile: 'Default',
          ipPreference: 'ipv4-preferred',
        },
      },
    ]);
  });

  it('EDIT shows current values as defaults; N puts a setting back to Default', async () => {
    const d = tempDir();
    await runCliOk(['destconfig', 'new', 'edit.test', '--concurrency', '10', '--tls', 'preferred', '--dane', 'required', '--mta-sts', 'off', '--data-dir', d]);
    const out = await transcript('edit', d);
    // The entry's own DANE and MTA-STS are the answers offered; Enter keeps MTA-STS off.
    assert.match(out, /^Do you wish to apply a specific DANE setting for this domain\? \[Y\]> N$/m);
    assert.match(out, /^Do you wish to apply a specific MTA-STS setting for this domain\? \[Y\]> \nApply the MTA-STS policy the recipient domain publishes\? \[N\]> $/m);
    const t = await list(d);
    assert.deepEqual(t.entries.find((e) => e.name === 'edit.test')?.settings, { tls: 'required-verify-hosted', mtaSts: false });
  });

  it('DEFAULT edits the (Default) entry, reached by a unique prefix', async () => {
    const d = tempDir();
    await transcript('default', d);
    const t = await list(d);
    assert.deepEqual(t.default, {
      ipPreference: 'ipv4-required',
      concurrency: 100,
      messagesPerConnection: 10,
      recipientLimit: { recipients: 1000, minutes: 5 },
      limitPer: 'mx-ip',
      enforce: 'system',
      tls: 'preferred',
      dane: 'off',
      mtaSts: false,
      bounceVerification: true,
      bounceProfile: 'Default',
    });
  });

  it('DELETE and CLEAR confirm before they change anything', async () => {
    const d = tempDir();
    await runCliOk(['destconfig', 'new', 'one.test', '--data-dir', d]);
    await runCliOk(['destconfig', 'new', 'two.test', '--tls', 'required', '--data-dir', d]);
    await transcript('delete-clear', d);
    assert.deepEqual((await list(d)).entries, []);
  });

  it('SETUP: the required-TLS alert, the outbound client certificate, the broken-TLS memory', async () => {
    const d = tempDir();
    await runCliOk(['certconfig', 'create', 'client1', '--cn', 'client.test', '--data-dir', d]);
    const out = await transcript('setup', d);
    assert.match(out, /Select the certificate:\n1\. client1\n/);
    const g = await runCliOk(['destconfig', 'setup', '--data-dir', d]);
    assert.match(g, /Remembered broken TLS: off/);
    assert.match(g, /Alert when a required TLS connection fails: off/);
  });

  it('IMPORT lists every error with its line and changes nothing; a good file replaces the table; EXPORT writes it back', async () => {
    const d = tempDir();
    await runCliOk(['destconfig', 'new', 'keep.test', '--tls', 'required', '--data-dir', d]);
    writeFileSync(
      join(d, 'bad.ini'),
      ['[DEFAULT]', 'ip_sort_pref = PREFER_V6', 'max_host_concurrency = 5000', 'max_messages_per_connection = 50', 'limit_type = host', 'limit_apply = system', 'tls = sometimes', 'bounce_validation = off', '[bad..name]', 'tls = 1', ''].join('\n'),
    );
    writeFileSync(
      join(d, 'good.ini'),
      ['[DEFAULT]', 'ip_sort_pref = PREFER_V4', 'max_host_concurrency = 100', 'max_messages_per_connection = 10', 'limit_type = 0', 'limit_apply = 0', 'tls = 1', 'bounce_validation = 0', '', '[imported.test]', 'tls = 4', '', '[.sub.test]', 'max_host_concurrency = 5', 'limit_type = 1', 'limit_apply = 0', ''].join('\n'),
    );
    await transcript('import-export', d);
    const t = await list(d);
    assert.deepEqual(t.entries.map((e) => e.name).sort(), ['.sub.test', 'imported.test']);
    const exported = readFileSync(join(d, 'exported.ini'), 'utf8');
    const fresh = tempDir();
    writeFileSync(join(fresh, 'in.ini'), exported);
    await runCliOk(['destconfig', 'import', join(fresh, 'in.ini'), '--data-dir', fresh]);
    assert.deepEqual(await list(fresh), t, 'the exported file imports back to the identical table');
  });

  it('operation names: case-insensitive, unique prefixes, unknown and ambiguous names explained', async () => {
    const d = tempDir();
    await transcript('operations', d);
    assert.deepEqual((await list(d)).entries, []);
  });

  it('end of input in the middle of an operation ends cleanly and changes nothing', async () => {
    const d = tempDir();
    await transcript('eof-midway', d);
    assert.deepEqual((await list(d)).entries, []);
  });
});
