/**
 * TLS sessions counted for reporting (src/observe/tlsrpt.ts): sessions of one kind add up in one
 * row of a real report.db per UTC day; a write that fails keeps what was counted for the next
 * one, and says so once and when it ends.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TlsRptCounter, TlsRptStore, utcDay, type SessionRow, type TlsSession } from '../src/observe/tlsrpt.js';
import { tempDir } from './harness.js';
import { buildTlsRptReport, type TlsRptReport } from '../src/manage/tlsrpt-report.js';
import { runCli, runCliOk } from './process.js';
import { COUNT_FLUSH_MS } from '../src/observe/flush.js';

const session = (over: Partial<TlsSession> = {}): TlsSession => ({
  policyDomain: 'example.com',
  policyType: 'sts',
  policyStrings: ['version: STSv1', 'mode: enforce', 'mx: mx.example.com', 'max_age: 86400'],
  mxHosts: ['mx.example.com'],
  result: 'success',
  sendingIp: '192.0.2.1',
  receivingMx: 'mx.example.com',
  receivingIp: '198.51.100.7',
  ...over,
});

describe('TLS sessions for reporting', () => {
  test('sessions of one kind add up in one row per day; other results, days and domains apart', () => {
    const store = TlsRptStore.open(tempDir('postern-tlsrpt-'));
    try {
      let now = Date.UTC(2026, 11, 1, 23, 59, 0);
      const counter = new TlsRptCounter(store, () => now);
      counter.record(session());
      counter.record(session());
      counter.record(session({ result: 'certificate-host-mismatch' }));
      counter.record(session({ policyDomain: 'other.example', policyType: 'no-policy-found', policyStrings: [], mxHosts: [] }));
      counter.flush();
      now += 120_000; // the next UTC day
      counter.record(session());
      counter.flush();
      counter.record(session());
      counter.flush();
      const day1 = store.sessions('2026-12-01', 'example.com');
      assert.deepEqual(day1.map((r) => [r.result, r.count]), [['certificate-host-mismatch', 1], ['success', 2]]);
      assert.deepEqual(day1[1]!.policyStrings, session().policyStrings);
      assert.deepEqual(store.sessions('2026-12-02', 'example.com').map((r) => r.count), [2]);
      assert.equal(store.sessions('2026-12-01').length, 3);
      assert.equal(utcDay(now), '2026-12-02');
    } finally {
      store.close();
    }
  });

  test('sessions of several event-loop turns are written together, once, within COUNT_FLUSH_MS', async () => {
    const written: SessionRow[][] = [];
    const counter = new TlsRptCounter({ add: (rows) => written.push(rows.map((r) => ({ ...r }))) }, () => Date.UTC(2026, 11, 1));
    counter.record(session());
    await new Promise((r) => setImmediate(r));
    counter.record(session());
    assert.equal(written.length, 0, 'nothing written at the end of the turn');
    await new Promise((r) => setTimeout(r, COUNT_FLUSH_MS));
    assert.deepEqual(written.map((rows) => rows.map((r) => r.count)), [[2]]);
  });

  test('a write that fails keeps the counts for the next one, and says so', () => {
    const written: SessionRow[][] = [];
    let failing = true;
    const troubles: (string | null)[] = [];
    const counter = new TlsRptCounter(
      {
        add: (rows) => {
          if (failing) throw new Error('database is locked');
          written.push(rows.map((r) => ({ ...r })));
        },
      },
      () => Date.UTC(2026, 11, 1),
      (r) => troubles.push(r),
    );
    counter.record(session());
    counter.flush();
    counter.record(session());
    counter.record(session({ result: 'starttls-not-supported' }));
    counter.flush();
    failing = false;
    counter.flush();
    assert.deepEqual(troubles, ['database is locked', 'database is locked', null]);
    assert.deepEqual(written[0]!.map((r) => [r.result, r.count]).sort(), [['starttls-not-supported', 1], ['success', 2]]);
  });
});

describe('the RFC 8460 report of a day', () => {
  const rows: SessionRow[] = [
    { ...session(), day: '2026-12-01', count: 7 },
    { ...session({ result: 'certificate-host-mismatch', receivingMx: 'mx2.example.com', receivingIp: '198.51.100.8' }), day: '2026-12-01', count: 2 },
    { ...session({ result: 'certificate-host-mismatch', receivingMx: 'mx2.example.com', receivingIp: '198.51.100.8' }), day: '2026-12-02', count: 5 },
    { ...session({ policyType: 'tlsa', policyStrings: ['3 1 1 ab'], mxHosts: [], result: 'tlsa-invalid' }), day: '2026-12-01', count: 1 },
    { ...session({ policyDomain: 'other.example' }), day: '2026-12-01', count: 3 },
  ];

  test("one policies element per policy, its summary and failures, that day's and that domain's only", () => {
    const r = buildTlsRptReport(rows, { domain: 'example.com', day: '2026-12-01', organization: 'Example Org', contact: 'tls@example.org', reportId: 'id-1' })!;
    assert.deepEqual(r, {
      'organization-name': 'Example Org',
      'date-range': { 'start-datetime': '2026-12-01T00:00:00Z', 'end-datetime': '2026-12-01T23:59:59Z' },
      'contact-info': 'tls@example.org',
      'report-id': 'id-1',
      policies: [
        {
          policy: { 'policy-type': 'sts', 'policy-domain': 'example.com', 'policy-string': session().policyStrings, 'mx-host': ['mx.example.com'] },
          summary: { 'total-successful-session-count': 7, 'total-failure-session-count': 2 },
          'failure-details': [{ 'result-type': 'certificate-host-mismatch', 'sending-mta-ip': '192.0.2.1', 'receiving-mx-hostname': 'mx2.example.com', 'receiving-ip': '198.51.100.8', 'failed-session-count': 2 }],
        },
        {
          policy: { 'policy-type': 'tlsa', 'policy-domain': 'example.com', 'policy-string': ['3 1 1 ab'] },
          summary: { 'total-successful-session-count': 0, 'total-failure-session-count': 1 },
          'failure-details': [{ 'result-type': 'tlsa-invalid', 'sending-mta-ip': '192.0.2.1', 'receiving-mx-hostname': 'mx.example.com', 'receiving-ip': '198.51.100.7', 'failed-session-count': 1 }],
        },
      ],
    });
    assert.equal(buildTlsRptReport(rows, { domain: 'nothing.example', day: '2026-12-01', organization: 'o', contact: 'c', reportId: 'i' }), null);
  });

  test('postern report tlsrpt shows it, and --json is the report', async () => {
    const dir = tempDir('postern-tlsrpt-cli-');
    const store = TlsRptStore.open(dir);
    store.add(rows);
    store.close();
    const text = await runCliOk(['report', 'tlsrpt', '--domain', 'example.com', '--day', '2026-12-01', '--data-dir', dir]);
    assert.match(text, /^Policy sts: version: STSv1; mode: enforce; mx: mx\.example\.com; max_age: 86400$/m);
    assert.match(text, /^  successful sessions: 7, failed: 2$/m);
    assert.match(text, /^  2 × certificate-host-mismatch: mx2\.example\.com \[198\.51\.100\.8\] from 192\.0\.2\.1$/m);
    const json = JSON.parse(await runCliOk(['report', 'tlsrpt', '--domain', 'example.com', '--day', '2026-12-02', '--json', '--organization', 'Org', '--contact', 'c@example.org', '--data-dir', dir])) as TlsRptReport;
    assert.equal(json['organization-name'], 'Org');
    assert.equal(json.policies[0]!.summary['total-failure-session-count'], 5);
    const bad = await runCli(['report', 'tlsrpt', '--domain', 'example.com', '--day', '2026-13-01', '--data-dir', dir]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /invalid --day "2026-13-01"/);
  });
});
