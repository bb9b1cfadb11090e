/**
 * Administrator accounts (issue T2 3/9, first part): `postern adminuser add|list|delete|passwd`
 * over manage/users.ts — names, roles and passwords validated, passwords stored as scrypt
 * hashes, the last administrator protected, every change in logs/audit.log.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { ConfigStore } from '../src/config/store.js';
import { hashPassword, verifyPassword } from '../src/manage/passwords.js';
import { INITIAL_PASSWORD_FILE, UserStore } from '../src/manage/users.js';
import { tempDir } from './harness.js';
import { runCli } from './process.js';

const BY = { actor: 'test', client: 'test' };

describe('adminuser', () => {
  it('add, list, passwd, delete from the command line; passwords hashed with scrypt; every change audited', async () => {
    const d = tempDir();
    const cli = (input: string | undefined, ...args: string[]) => runCli(['adminuser', ...args, '--data-dir', d], input === undefined ? {} : { input });
    assert.equal((await cli('first password 1\n', 'add', 'alice', '--role', 'administrator', '--password-stdin')).code, 0);
    assert.equal((await cli('second password 2\n', 'add', 'olga', '--role', 'operator', '--password-stdin')).code, 0);
    assert.equal((await cli('third password 3\n', 'add', 'rita', '--role', 'READ-ONLY', '--password-stdin')).code, 0);
    const list = JSON.parse((await cli(undefined, 'list', '--json')).stdout) as Array<{ name: string; role: string }>;
    assert.deepEqual(list.map((u) => [u.name, u.role]), [['alice', 'administrator'], ['olga', 'operator'], ['rita', 'read-only']]);

    const db = new Database(join(d, 'config.db'), { readonly: true });
    const rows = db.prepare('SELECT name, hash FROM admin_users').all() as Array<{ name: string; hash: string }>;
    db.close();
    for (const r of rows) {
      assert.match(r.hash, /^scrypt\$32768\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
      assert.ok(!r.hash.includes('password'), 'the password itself is not stored');
    }

    const dup = await cli('fourth password 4\n', 'add', 'alice', '--role', 'operator', '--password-stdin');
    assert.notEqual(dup.code, 0);
    assert.match(dup.stderr, /a user named alice already exists/);
    for (const [args, pattern] of [
      [['add', 'x y', '--role', 'operator'], /invalid user name "x y"/],
      [['add', 'zed', '--role', 'root'], /invalid role "root": allowed administrator, operator, read-only/],
    ] as const) {
      const r = await cli('long enough password\n', ...args, '--password-stdin');
      assert.equal(r.code, 2);
      assert.match(r.stderr, pattern);
    }
    const short = await cli('short\n', 'add', 'zed', '--role', 'operator', '--password-stdin');
    assert.equal(short.code, 2);
    assert.match(short.stderr, /at least 10 characters/);
    const noInput = await cli(undefined, 'add', 'zed', '--role', 'operator');
    assert.equal(noInput.code, 2);
    assert.match(noInput.stderr, /--password-stdin/);

    const last = await cli(undefined, 'delete', 'alice');
    assert.notEqual(last.code, 0);
    assert.match(last.stderr, /alice is the last administrator and cannot be deleted/);
    assert.equal((await cli('a new password 5\n', 'passwd', 'olga', '--password-stdin')).code, 0);
    assert.equal((await cli(undefined, 'delete', 'rita')).code, 0);

    const audit = readFileSync(join(d, 'logs', 'audit.log'), 'utf8').trim().split('\n');
    assert.deepEqual(
      audit.map((l) => /action=(\S+) target="([^"]+)"/.exec(l)!.slice(1).join(' ')),
      ['adminuser.add alice', 'adminuser.add olga', 'adminuser.add rita', 'adminuser.passwd olga', 'adminuser.delete rita'],
    );
    for (const l of audit) assert.match(l, /^\d{4}-\d\d-\d\dT\S+Z actor=cli:\S+ client=cli /);
    assert.ok(!audit.join('\n').includes('password 5'), 'no password in the audit log');
  });

  it('verify answers the same for a wrong password and an unknown user; passwd clears the initial password file', async () => {
    const d = tempDir();
    const config = ConfigStore.open(d);
    try {
      const users = new UserStore(config, d);
      await users.add('admin', 'administrator', 'initial password', BY, { mustChange: true });
      writeFileSync(join(d, INITIAL_PASSWORD_FILE), 'initial password\n', { mode: 0o600 });
      assert.equal((await users.verify('admin', 'initial password'))?.mustChange, true);
      assert.equal(await users.verify('admin', 'wrong password'), null);
      assert.equal(await users.verify('nobody', 'initial password'), null);
      await assert.rejects(users.setPassword('admin', 'initial password', BY), /a password other than the current one/);
      await users.setPassword('admin', 'a better password', BY);
      assert.equal((await users.verify('admin', 'a better password'))?.mustChange, false);
      assert.ok(!existsSync(join(d, INITIAL_PASSWORD_FILE)), 'the initial password file is gone once the password changed');
    } finally {
      config.close();
    }
  });

  it('a stored hash that cannot be read never verifies', async () => {
    const h = await hashPassword('some password');
    assert.equal(await verifyPassword('some password', h), true);
    for (const bad of ['', 'plain', 'scrypt$x$8$1$AA==$AA==', h.replace('scrypt', 'bcrypt'), `${h}$extra`]) {
      assert.equal(await verifyPassword('some password', bad), false, bad);
    }
  });
});

describe('audit of destination changes (one service for the CLI, the dialogue and the page)', () => {
  it('each change is one line saying who, from where, what and what changed from what', async () => {
    const d = tempDir();
    const cli = (...args: string[]) => runCli([...args, '--data-dir', d]);
    assert.equal((await cli('destconfig', 'new', 'a.test', '--tls', 'required')).code, 0);
    assert.equal((await cli('destconfig', 'edit', 'a.test', '--tls', 'preferred', '--concurrency', '5')).code, 0);
    assert.equal((await cli('destconfig', 'edit', 'a.test', '--concurrency', 'default')).code, 0);
    assert.equal((await cli('destconfig', 'default', '--tls', 'preferred')).code, 0);
    assert.equal((await cli('destconfig', 'setup', '--broken-tls-memory', '2')).code, 0);
    assert.equal((await cli('destconfig', 'delete', 'a.test')).code, 0);
    const rejected = await cli('destconfig', 'edit', 'b.test', '--tls', 'no');
    assert.notEqual(rejected.code, 0, 'a refused change is not audited');
    const lines = readFileSync(join(d, 'logs', 'audit.log'), 'utf8').trim().split('\n');
    const parsed = lines.map((l) => {
      const m = /^\S+ actor=(\S+) client=(\S+) action=(\S+) target=("[^"]*") changed=(.*)$/.exec(l);
      assert.ok(m, l);
      return { actor: m[1]!, client: m[2]!, action: m[3]!, target: JSON.parse(m[4]!) as string, changed: JSON.parse(m[5]!) as unknown };
    });
    assert.deepEqual(
      parsed.map(({ action, target, changed }) => ({ action, target, changed })),
      [
        { action: 'destination.new', target: 'a.test', changed: { tls: { from: 'Default', to: 'required' } } },
        { action: 'destination.edit', target: 'a.test', changed: { tls: { from: 'required', to: 'preferred' }, concurrency: { from: 'Default', to: 5 } } },
        { action: 'destination.edit', target: 'a.test', changed: { concurrency: { from: 5, to: 'Default' } } },
        { action: 'destination.default', target: '(Default)', changed: { tls: { from: 'no', to: 'preferred' } } },
        { action: 'destination.setup', target: 'global settings', changed: { brokenTlsMemoryHours: { from: 24, to: 2 } } },
        { action: 'destination.delete', target: 'a.test', changed: { tls: { from: 'preferred', to: 'Default' } } },
      ],
    );
    for (const p of parsed) {
      assert.match(p.actor, /^cli:/);
      assert.equal(p.client, 'cli');
    }
  });
});

describe('audit of routes and virtual gateways', () => {
  it('route and gateway changes are audited through their services', async () => {
    const d = tempDir();
    const cli = (...args: string[]) => runCli([...args, '--data-dir', d]);
    for (const args of [
      ['smtproutes', 'new', 'ALL', 'smarthost.test:587'],
      ['smtproutes', 'edit', 'ALL', 'other.test'],
      ['smtproutes', 'delete', 'ALL'],
      ['vgconfig', 'new', 'g1', '127.0.72.9'],
      ['vgconfig', 'assign', 'client.test', 'g1'],
      ['vgconfig', 'unassign', 'client.test'],
      ['vgconfig', 'delete', 'g1'],
    ]) {
      const r = await cli(...args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    const lines = readFileSync(join(d, 'logs', 'audit.log'), 'utf8').trim().split('\n');
    assert.deepEqual(
      lines.map((l) => /action=(\S+) target="([^"]+)"/.exec(l)!.slice(1).join(' ')),
      ['route.new ALL', 'route.edit ALL', 'route.delete ALL', 'gateway.new g1', 'gateway.assign client.test', 'gateway.unassign client.test', 'gateway.delete g1'],
    );
    assert.match(lines[1]!, /changed=\{"hosts":\{"from":"smarthost\.test:587","to":"other\.test"\}\}/);
  });
});

describe('audit of bounce profiles', () => {
  it('new, edit and delete of a profile are audited with what changed', async () => {
    const d = tempDir();
    const cli = (...args: string[]) => runCli(['bounceconfig', ...args, '--data-dir', d]);
    assert.equal((await cli('new', 'fast', '--max-retries', '5')).code, 0);
    assert.equal((await cli('edit', 'fast', '--max-retries', '7')).code, 0);
    assert.equal((await cli('delete', 'fast')).code, 0);
    const lines = readFileSync(join(d, 'logs', 'audit.log'), 'utf8').trim().split('\n');
    assert.deepEqual(lines.map((l) => /action=(\S+) target="([^"]+)"/.exec(l)!.slice(1).join(' ')), ['profile.new fast', 'profile.edit fast', 'profile.delete fast']);
    assert.match(lines[1]!, /changed=\{"maxRetries":\{"from":5,"to":7\}\}/);
  });
});

describe('audit of certificates and authorities', () => {
  it('create, use, export with the key, delete and authority changes are audited, never with a key', async () => {
    const d = tempDir();
    const cli = (...args: string[]) => runCli(['certconfig', ...args, '--data-dir', d]);
    for (const args of [
      ['create', 'one', '--cn', 'mail.example.test'],
      ['create', 'two', '--cn', 'relay.example.test'],
      ['use-client', 'one'],
      ['export', 'two', '--with-key', '--out', join(d, 'two.pem')],
      ['delete', 'two'],
      ['authority', 'system', 'off'],
    ]) {
      const r = await cli(...args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    const text = readFileSync(join(d, 'logs', 'audit.log'), 'utf8');
    const lines = text.trim().split('\n');
    assert.deepEqual(
      lines.map((l) => /action=(\S+) target="([^"]+)"/.exec(l)!.slice(1).join(' ')),
      ['certificate.create one', 'certificate.create two', 'certificate.use-client one', 'certificate.export-key two', 'certificate.delete two', 'authority.system system root store'],
    );
    assert.doesNotMatch(text, /PRIVATE KEY|BEGIN/);
    assert.match(lines[0]!, /"fingerprint":"[0-9A-F:]+"/);
  });
});

describe('audit of queue actions', () => {
  it('deliver now, bounce and delete are audited with what they selected and how much they touched', async () => {
    const d = tempDir();
    const { QueueStore } = await import('../src/queue/store.js');
    const q = QueueStore.open(d);
    const mids: number[] = [];
    try {
      for (const to of ['a@one.test', 'b@two.test']) {
        mids.push(await q.accept({ sender: 's@client.test', body: Buffer.from('Subject: x\r\n\r\nhi\r\n'), receivedAt: Date.now(), recipients: [{ address: to, domain: to.split('@')[1]! }] }));
      }
    } finally {
      q.close();
    }
    const cli = (...args: string[]) => runCli(['queue', ...args, '--data-dir', d]);
    for (const args of [['delivernow', 'one.test'], ['bounce', String(mids[0]), '--hostname', 'postern.test'], ['delete', '--domain', 'two.test']]) {
      const r = await cli(...args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    const lines = readFileSync(join(d, 'logs', 'audit.log'), 'utf8').trim().split('\n');
    assert.deepEqual(lines.map((l) => /action=(\S+) target="([^"]+)"/.exec(l)!.slice(1).join(' ')), [
      'queue.delivernow domain one.test',
      `queue.bounce MID ${mids[0]}`,
      'queue.delete domain two.test',
    ]);
    assert.match(lines[2]!, new RegExp(`changed=\\{"recipients":1,"messages":\\[${mids[1]}\\]\\}`));
  });
});
