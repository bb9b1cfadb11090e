/**
 * TLS sessions counted for reporting (src/observe/tlsrpt.ts): sessions of one kind add up in one
 * row of a real report.db per UTC day; a write that fails keeps what was counted for the next
 * one, and says so once and when it ends.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TlsRptCounter, TlsRptStore, utcDay, type SessionRow, type TlsSession } from '../src/observe/tlsrpt.js';
import { tempDir } from './harness.js';

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
