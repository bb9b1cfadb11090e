/**
 * The JSON API (/api/v1/) against the real `postern start`, over HTTPS with bearer tokens made
 * by `postern apitoken`. Proves that
 * - a token created by the CLI reads, creates, updates and deletes a destination, and the CLI
 *   sees each change (one store, one service);
 * - a body with a bad value, an unknown field or a wrong type gets 400 JSON naming the field,
 *   and nothing changes; a broken import file gets every error with its line;
 * - no token or a revoked token gets 401; a read-only token gets 403 on a change;
 * - the OpenAPI document is generated from the route schemas (the same that validate);
 * - changes are audited with the token's name.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { request, type APIRequestContext } from 'playwright-core';
import { startWithAdmin, type AdminPostern } from './peers/browser.js';
import { runCliOk } from './process.js';

// Ports 2686-2687 are this file's own.
const LISTEN = '127.0.0.1:2686';
const ADMIN = '127.0.0.1:2687';

describe('the JSON API with bearer tokens', () => {
  let tmp = '';
  let dataDir = '';
  let gw: AdminPostern | undefined;
  let api: APIRequestContext;
  let readOnly: APIRequestContext;
  let anonymous: APIRequestContext;
  let adminToken = '';

  const cli = (...args: string[]) => runCliOk([...args, '--data-dir', dataDir]);
  const token = async (name: string, role: string): Promise<string> => {
    const out = await cli('apitoken', 'create', name, '--role', role);
    const m = /^(pst_\S+)$/m.exec(out);
    assert.ok(m, out);
    return m[1]!;
  };
  const client = (t?: string) => request.newContext({ baseURL: gw!.base, ignoreHTTPSErrors: true, extraHTTPHeaders: t ? { authorization: `Bearer ${t}` } : {} });

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'postern-api-'));
    dataDir = path.join(tmp, 'data');
    gw = await startWithAdmin({ dataDir, listen: LISTEN, admin: ADMIN });
    adminToken = await token('deploy', 'administrator');
    api = await client(adminToken);
    readOnly = await client(await token('monitor', 'read-only'));
    anonymous = await client();
  });

  after(async () => {
    await Promise.allSettled([api?.dispose(), readOnly?.dispose(), anonymous?.dispose()]);
    await gw?.proc.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('tokens are listed without their secret and stored only as a hash', async () => {
    const list = JSON.parse(await cli('apitoken', 'list', '--json')) as { name: string; role: string }[];
    assert.deepEqual(list.map((t) => [t.name, t.role]), [['deploy', 'administrator'], ['monitor', 'read-only']]);
    assert.doesNotMatch(JSON.stringify(list), /pst_/);
    const db = await readFile(path.join(dataDir, 'config.db'));
    assert.equal(db.includes(Buffer.from(adminToken)), false, 'the token itself is in config.db');
  });

  test('create, read, update and delete a destination; the CLI sees each change', async () => {
    const created = await api.post('/api/v1/destinations', { data: { name: 'Example.COM', tls: 'required', concurrency: 10, recipientLimit: { recipients: 100, minutes: 5 }, dane: 'required', mtaSts: false } });
    assert.equal(created.status(), 201, await created.text());
    const body = (await created.json()) as { name: string; settings: Record<string, unknown>; resolved: Record<string, unknown> };
    assert.equal(body.name, 'example.com');
    assert.deepEqual(body.settings, { tls: 'required', concurrency: 10, recipientLimit: { recipients: 100, minutes: 5 }, dane: 'required', mtaSts: false });
    assert.equal(body.resolved.messagesPerConnection, 50);
    assert.match(await cli('destconfig', 'detail', 'example.com'), /^TLS Support: Required\nDANE: Required\nMTA-STS: Off$/m);

    // DANE and MTA-STS: a value, then `default` puts each back to the (Default) entry's.
    const dane = await api.put('/api/v1/destinations/example.com', { data: { dane: 'off' } });
    assert.equal(dane.status(), 200, await dane.text());
    assert.deepEqual(((await dane.json()) as { settings: unknown }).settings, { tls: 'required', concurrency: 10, recipientLimit: { recipients: 100, minutes: 5 }, dane: 'off', mtaSts: false });
    const inherit = await api.put('/api/v1/destinations/example.com', { data: { dane: 'default', mtaSts: 'default' } });
    assert.equal(inherit.status(), 200, await inherit.text());
    const inherited = (await inherit.json()) as { settings: Record<string, unknown>; resolved: Record<string, unknown> };
    assert.deepEqual(inherited.settings, { tls: 'required', concurrency: 10, recipientLimit: { recipients: 100, minutes: 5 } });
    assert.equal(inherited.resolved.dane, 'opportunistic');
    assert.equal(inherited.resolved.mtaSts, true);
    assert.match(await cli('destconfig', 'detail', 'example.com'), /^DANE: Default \(Opportunistic\)\nMTA-STS: Default \(On\)$/m);

    const read = await api.get('/api/v1/destinations/example.com');
    assert.equal(read.status(), 200);
    assert.equal(((await read.json()) as { settings: { tls: string } }).settings.tls, 'required');

    const alerting = await api.put('/api/v1/destinations/example.com', { data: { tlsAlert: false } });
    assert.equal(alerting.status(), 200, await alerting.text());
    assert.equal(((await alerting.json()) as { settings: { tlsAlert?: boolean } }).settings.tlsAlert, false);
    assert.match(await cli('destconfig', 'detail', 'example.com'), /^Alert When Required TLS Fails: Off$/m);
    const effective = (await (await api.get('/api/v1/destinations/example.com/effective')).json()) as { tls: { alert: unknown } };
    assert.deepEqual(effective.tls.alert, { on: false, from: 'entry', applies: true });

    const updated = await api.put('/api/v1/destinations/example.com', { data: { tls: 'preferred-verify', concurrency: 'default', tlsAlert: 'default' } });
    assert.equal(updated.status(), 200, await updated.text());
    assert.deepEqual(((await updated.json()) as { settings: unknown }).settings, { tls: 'preferred-verify', recipientLimit: { recipients: 100, minutes: 5 } });
    const detail = await cli('destconfig', 'detail', 'example.com');
    assert.match(detail, /^TLS Support: Preferred - Verify$/m);
    assert.match(detail, /^Maximum Concurrent Connections: Default \(500\)$/m);

    const table = (await (await api.get('/api/v1/destinations')).json()) as { default: { tls: string; dane: string; mtaSts: boolean }; entries: { name: string }[] };
    assert.equal(table.default.tls, 'no');
    assert.equal(table.default.dane, 'opportunistic');
    assert.equal(table.default.mtaSts, true);

    // The (Default) entry holds both too.
    const def = await api.put('/api/v1/default', { data: { dane: 'required', mtaSts: false } });
    assert.equal(def.status(), 200, await def.text());
    const defBody = (await def.json()) as { tls: string; dane: string; mtaSts: boolean };
    assert.deepEqual([defBody.tls, defBody.dane, defBody.mtaSts], ['no', 'required', false]);
    assert.match(await cli('destconfig', 'detail', '(Default)'), /^DANE: Required\nMTA-STS: Off$/m);
    assert.equal((await api.put('/api/v1/default', { data: { dane: 'opportunistic', mtaSts: true } })).status(), 200);
    assert.deepEqual(table.entries.map((e) => e.name), ['example.com']);

    const deleted = await api.delete('/api/v1/destinations/example.com');
    assert.equal(deleted.status(), 200);
    assert.equal((await api.get('/api/v1/destinations/example.com')).status(), 404);
    assert.doesNotMatch(await cli('destconfig', 'list'), /example\.com/);

    const audit = await readFile(path.join(dataDir, 'logs', 'audit.log'), 'utf8');
    assert.match(audit, /actor=token:deploy client=\S+ action=destination\.new target="example\.com"/);
    assert.match(audit, /actor=token:deploy client=\S+ action=destination\.edit target="example\.com" changed=\{"concurrency":\{"from":10,"to":"Default"\},"tls":\{"from":"required","to":"preferred-verify"\},"tlsAlert":\{"from":false,"to":"Default"\}\}/);
    assert.match(audit, /actor=token:deploy client=\S+ action=destination\.delete target="example\.com"/);
  });

  // [body, the field the error must name]
  const BAD: [Record<string, unknown>, string][] = [
    [{ name: 'a.test', concurrency: 0 }, 'concurrency'],
    [{ name: 'a.test', concurrency: 1001 }, 'concurrency'],
    [{ name: 'a.test', concurrency: '10' }, 'concurrency'],
    [{ name: 'a.test', messagesPerConnection: 2.5 }, 'messagesPerConnection'],
    [{ name: 'a.test', recipientLimit: { recipients: 5, minutes: 61 } }, 'recipientLimit'],
    [{ name: 'a.test', recipientLimit: { recipients: -1, minutes: 5 } }, 'recipientLimit'],
    [{ name: 'a.test', tls: 'sometimes' }, 'tls'],
    [{ name: 'a.test', ipPreference: 'ipv5' }, 'ipPreference'],
    [{ name: 'a.test', bounceVerification: 'yes' }, 'bounceVerification'],
    [{ name: 'a.test', tlsAlert: 'yes' }, 'tlsAlert'],
    [{ name: 'a.test', dane: 'always' }, 'dane'],
    [{ name: 'a.test', dane: true }, 'dane'],
    [{ name: 'a.test', mtaSts: 'enforce' }, 'mtaSts'],
    [{ name: 'a.test', mtaSts: 1 }, 'mtaSts'],
    [{ name: 'a.test', tlss: 'required' }, 'tlss'],
    [{ tls: 'required' }, 'name'],
    [{ name: 'bad_name.test', tls: 'no' }, 'destination'],
    [{ name: 'a.test', bounceProfile: 'NoSuch' }, 'bounce profile'],
  ];

  test('a bad body gets 400 JSON naming the field, and nothing changes', async () => {
    for (const [body, field] of BAD) {
      const r = await api.post('/api/v1/destinations', { data: body });
      assert.equal(r.status(), 400, JSON.stringify(body));
      const e = (await r.json()) as { error: string; field: string; message: string };
      assert.equal(e.error, 'invalid');
      assert.ok(e.field === field || e.field.startsWith(`${field}.`), `${JSON.stringify(body)}: field ${e.field}, want ${field}`);
      assert.ok(e.message.includes(field), `${JSON.stringify(body)}: ${e.message}`);
    }
    const notJson = await api.post('/api/v1/destinations', { headers: { 'content-type': 'application/json' }, data: '{"name": "a.test", ' });
    assert.equal(notJson.status(), 400);
    assert.equal((await api.put('/api/v1/default', { data: { tls: 'default' } })).status(), 400);
    const daneDefault = await api.put('/api/v1/default', { data: { dane: 'default' } });
    assert.equal(daneDefault.status(), 400);
    assert.equal(((await daneDefault.json()) as { field: string }).field, 'dane');
    assert.equal((await api.put('/api/v1/default', { data: { mtaSts: 'off' } })).status(), 400);
    // The (Default) entry has no alert override: the global switch stands there, and the error says so.
    const onDefault = await api.put('/api/v1/default', { data: { tlsAlert: true } });
    assert.equal(onDefault.status(), 400);
    const e = (await onDefault.json()) as { field: string; message: string };
    assert.equal(e.field, 'tlsAlert');
    assert.match(e.message, /destconfig setup --required-tls-alert/);
    assert.deepEqual(((await (await api.get('/api/v1/destinations')).json()) as { entries: unknown[] }).entries, []);
  });

  test('import through the API: every error with its line, nothing changed; export is the CLI file', async () => {
    const broken = '[DEFAULT]\ntls = sometimes\n[a.test]\nmax_host_concurrency = 0\n';
    const r = await api.put('/api/v1/destinations-file', { headers: { 'content-type': 'text/plain' }, data: broken });
    assert.equal(r.status(), 400);
    const e = (await r.json()) as { errors: { line: number; message: string }[] };
    assert.ok(e.errors.some((x) => x.line === 2));
    assert.ok(e.errors.some((x) => x.line === 4));
    const exported = await (await api.get('/api/v1/destinations-file')).text();
    const file = path.join(tmp, 'cli.txt');
    await cli('destconfig', 'export', file);
    assert.equal(exported, await readFile(file, 'utf8'));
  });

  test('no token or a revoked token: 401; a read-only token reads but changes nothing (403)', async () => {
    assert.equal((await anonymous.get('/api/v1/destinations')).status(), 401);
    const bogus = await client('pst_not-a-token');
    assert.equal((await bogus.get('/api/v1/destinations')).status(), 401);
    await bogus.dispose();
    assert.equal((await readOnly.get('/api/v1/destinations')).status(), 200);
    const refused = await readOnly.post('/api/v1/destinations', { data: { name: 'ro.test', tls: 'no' } });
    assert.equal(refused.status(), 403);
    assert.match(((await refused.json()) as { message: string }).message, /read-only/);
    assert.equal((await readOnly.post('/api/v1/queue/delivernow', { data: {} })).status(), 403);

    const temp = await token('temporary', 'administrator');
    const c = await client(temp);
    assert.equal((await c.get('/api/v1/users')).status(), 200);
    await cli('apitoken', 'revoke', 'temporary');
    assert.equal((await c.get('/api/v1/users')).status(), 401);
    await c.dispose();
  });

  test('the OpenAPI document is generated from the route schemas', async () => {
    const r = await anonymous.get('/api/v1/openapi.json');
    assert.equal(r.status(), 200);
    const doc = (await r.json()) as { openapi: string; paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties?: Record<string, unknown> } }> } }>> };
    assert.match(doc.openapi, /^3\./);
    for (const p of ['/api/v1/destinations', '/api/v1/destinations/{name}', '/api/v1/default', '/api/v1/routes', '/api/v1/profiles', '/api/v1/certificates', '/api/v1/gateways', '/api/v1/queue', '/api/v1/users']) {
      assert.ok(doc.paths[p], `${p} is not in the OpenAPI document`);
    }
    const props = doc.paths['/api/v1/destinations']!.post!.requestBody!.content['application/json']!.schema.properties!;
    assert.deepEqual(Object.keys(props).sort(), ['bounceProfile', 'bounceVerification', 'concurrency', 'dane', 'enforce', 'ipPreference', 'limitPer', 'messagesPerConnection', 'mtaSts', 'name', 'recipientLimit', 'tls', 'tlsAlert']);
  });

  test('routes, profiles, users and the queue through the API', async () => {
    const route = await api.put('/api/v1/routes/relay.test', { data: { hosts: ['mx1.relay.test:2525', '[::1]:25'] } });
    assert.equal(route.status(), 200, await route.text());
    assert.match(await cli('smtproutes', 'list'), /relay\.test/);
    assert.equal((await api.put('/api/v1/routes/relay.test', { data: { hosts: ['not a host'] } })).status(), 400);
    // What delivery would do (destconfig explain), through the API: a route to an address needs no DNS.
    assert.equal((await api.put('/api/v1/routes/ip.test', { data: { hosts: ['127.0.0.1:2599'] } })).status(), 200);
    const eff = await api.get('/api/v1/destinations/ip.test/effective');
    assert.equal(eff.status(), 200, await eff.text());
    const e = (await eff.json()) as { matched: { how: string }; route: { key: string }; hosts: { name: string; port: number; addresses: { address: string }[] }[] };
    assert.equal(e.matched.how, 'default');
    assert.equal(e.route.key, 'ip.test');
    assert.deepEqual(e.hosts.map((h) => [h.name, h.port, h.addresses.map((a) => a.address)]), [['127.0.0.1', 2599, ['127.0.0.1']]]);
    assert.equal((await api.get('/api/v1/destinations/bad_name.test/effective')).status(), 400);
    const profile = await api.post('/api/v1/profiles', { data: { name: 'Fast', maxRetries: 3 } });
    assert.equal(profile.status(), 201, await profile.text());
    const badProfile = await api.post('/api/v1/profiles', { data: { name: 'Slow', maxRetries: 10_001 } });
    assert.equal(badProfile.status(), 400);
    assert.equal(((await badProfile.json()) as { field: string }).field, 'maxRetries');
    const user = await api.post('/api/v1/users', { data: { name: 'ops', role: 'operator', password: 'operator password 1' } });
    assert.equal(user.status(), 201, await user.text());
    assert.doesNotMatch(await user.text(), /password 1|scrypt/);
    assert.equal((await api.put('/api/v1/users/ops', { data: { role: 'read-only' } })).status(), 200);
    assert.match(await cli('adminuser', 'list'), /^ops\s+read-only/m);
    const queue = await api.get('/api/v1/queue?state=pending');
    assert.equal(queue.status(), 200);
    assert.deepEqual(await queue.json(), []);
    assert.equal((await api.get('/api/v1/queue?state=lost')).status(), 400);
    const none = await api.post('/api/v1/queue/bounce', { data: { mid: 999 } });
    assert.ok([404, 409].includes(none.status()), await none.text());
  });

  test('bounce verification and local domains through the API; a key text only in the answer that adds it', async () => {
    const added = await api.post('/api/v1/bounce-verification/keys', { data: {} });
    assert.equal(added.status(), 201, await added.text());
    const k = (await added.json()) as { number: number; text: string; retired: null };
    assert.equal(k.number, 0);
    assert.ok(k.text.length >= 16);
    const state = await (await api.get('/api/v1/bounce-verification')).text();
    assert.ok(!state.includes(k.text), 'the key text is not in the state');
    assert.deepEqual((JSON.parse(state) as { settings: unknown }).settings, { invalidAction: 'reject', header: 'X-Postern-Invalid-Bounce: the bounce address tag did not verify', untaggedValid: false });
    assert.equal((await api.post('/api/v1/bounce-verification/keys', { data: { key: 'short' } })).status(), 400);
    const retired = await api.post('/api/v1/bounce-verification/keys/0/retire');
    assert.equal(retired.status(), 200, await retired.text());
    assert.notEqual(((await retired.json()) as { retired: string | null }).retired, null);
    assert.equal((await api.post('/api/v1/bounce-verification/keys/0/retire')).status(), 409);
    const set = await api.put('/api/v1/bounce-verification/settings', { data: { invalidAction: 'add-header', untaggedValid: true } });
    assert.equal(set.status(), 200, await set.text());
    assert.match(await cli('bvconfig', 'setup'), /^Untagged bounces: valid$/m);
    const badHeader = await api.put('/api/v1/bounce-verification/settings', { data: { header: 'nocolon' } });
    assert.equal(badHeader.status(), 400);
    assert.equal((await api.put('/api/v1/bounce-verification/settings', { data: { invalidAction: 'drop' } })).status(), 400);
    assert.equal((await readOnly.post('/api/v1/bounce-verification/keys', { data: {} })).status(), 403);
    assert.equal((await api.post('/api/v1/local-domains', { data: { name: 'Org.Example' } })).status(), 201);
    assert.deepEqual(await (await api.get('/api/v1/local-domains')).json(), ['org.example']);
    assert.equal((await api.post('/api/v1/local-domains', { data: { name: 'org.example' } })).status(), 409);
    assert.equal((await api.delete('/api/v1/local-domains/org.example')).status(), 200);
    const audit = await readFile(path.join(dataDir, 'logs', 'audit.log'), 'utf8');
    assert.match(audit, /actor=token:deploy client=\S+ action=bv\.key\.add target="key 0"/);
    assert.ok(!audit.includes(k.text), 'the key text is not in the audit log');
  });

  test('alerts through the API: recipients and settings, bad bodies refused with the field', async () => {
    const made = await api.post('/api/v1/alerts', { data: { address: 'Ops@Example.ORG', classes: ['tls', 'queue'] } });
    assert.equal(made.status(), 201, await made.text());
    assert.deepEqual(await made.json(), { address: 'Ops@example.org', classes: ['tls', 'queue'], severities: ['critical', 'warning', 'info'] });
    assert.match(await cli('alertconfig', 'list'), /^Ops@example\.org\s+tls,queue\s+critical,warning,info$/m);
    assert.equal((await api.put('/api/v1/alerts/Ops@example.org', { data: { severities: ['critical'] } })).status(), 200);
    const bad = await api.post('/api/v1/alerts', { data: { address: 'x@example.org', classes: ['spam'] } });
    assert.equal(bad.status(), 400);
    assert.match(((await bad.json()) as { field: string }).field, /^classes/);
    const settings = await api.put('/api/v1/alert-settings', { data: { waitMinutes: 30, intervalSeconds: 600 } });
    assert.equal(settings.status(), 200, await settings.text());
    assert.deepEqual(((await settings.json()) as { settings: { waitMinutes: number; intervalSeconds: number } }).settings.waitMinutes, 30);
    assert.equal((await api.put('/api/v1/alert-settings', { data: { waitMinutes: 0 } })).status(), 400);
    assert.equal((await readOnly.post('/api/v1/alerts', { data: { address: 'ro@example.org' } })).status(), 403);
    assert.equal((await api.delete('/api/v1/alerts/Ops@example.org')).status(), 200);
    assert.deepEqual(((await (await api.get('/api/v1/alerts')).json()) as { recipients: unknown[] }).recipients, []);
  });

  test('the page offers the certificate chosen with certconfig use-admin from the next start', async () => {
    assert.ok(gw);
    const presented = (port: number) =>
      new Promise<tls.PeerCertificate>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
          resolve(s.getPeerCertificate());
          s.end();
        });
        s.once('error', reject);
      });
    const port = Number(ADMIN.split(':')[1]);
    assert.match(String((await presented(port)).subject.CN), /Postern Demo Certificate/);
    await cli('certconfig', 'create', 'page', '--cn', 'admin.example.net', '--dns', 'admin.example.net');
    await cli('certconfig', 'use-admin', 'page');
    await api.dispose();
    await readOnly.dispose();
    await anonymous.dispose();
    await gw.proc.stop();
    gw = await startWithAdmin({ dataDir, listen: LISTEN, admin: ADMIN });
    assert.equal((await presented(port)).subject.CN, 'admin.example.net');
    assert.doesNotMatch(gw.proc.output(), /administration page uses the demo certificate/);
    assert.equal(gw.initialPassword, undefined, 'a second start must not create another administrator');
  });
});
