/**
 * report.db on a real SQLite file, with counts added at chosen times: a window within the
 * hourly rows is exact to the hour; a longer one is the difference of running totals (exact
 * to the day); counts added late to an earlier day move every later running total; the
 * monthly thinning keeps month ends and the answers over them; the retention keeps a base; the
 * graph's daily series is the day-by-day difference. And the counter's classification.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TlsCounter, TlsReportStore, zeroCounts, type Counts } from '../src/observe/tls-report.js';
import { tempDir } from './harness.js';
import { COUNT_FLUSH_MS } from '../src/observe/flush.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = Date.UTC(2026, 11, 1, 12, 30); // 2026-12-01 12:30 UTC

function add(store: TlsReportStore, at: number, domain: string, c: Partial<Counts>): void {
  const hour = Math.floor(at / HOUR) * HOUR;
  store.add(new Map([[`${hour}|${domain}`, { hour, domain, counts: { ...zeroCounts(), ...c } }]]));
}

describe('TLS report store', () => {
  test('hourly windows are exact to the hour; long windows are running-total differences', () => {
    const store = TlsReportStore.open(tempDir('postern-report-store-'));
    try {
      add(store, NOW - 30 * 60_000, 'a.test', { attempted: 1, requiredOk: 1 }); // 12:00 hour
      add(store, NOW - 3 * HOUR, 'a.test', { attempted: 2, clear: 2 }); // 09:00 hour
      add(store, NOW - 40 * DAY, 'a.test', { attempted: 4, preferredOk: 4 });
      add(store, NOW - 200 * DAY, 'b.test', { attempted: 8, requiredFailed: 8 });
      const hourly = store.query(NOW - 2 * HOUR, NOW + 1, undefined, NOW);
      assert.deepEqual(hourly.map((r) => [r.domain, r.attempted]), [['a.test', 1]]);
      const day = store.query(NOW - DAY, NOW + 1, undefined, NOW);
      assert.deepEqual(day.map((r) => [r.domain, r.attempted, r.clear]), [['a.test', 3, 2]]);
      const month = store.query(NOW - 60 * DAY, NOW + 1, undefined, NOW);
      assert.deepEqual(month.map((r) => [r.domain, r.attempted, r.preferredOk]), [['a.test', 7, 4]]);
      const year = store.query(NOW - 365 * DAY, NOW + 1, undefined, NOW).sort((x, y) => x.domain.localeCompare(y.domain));
      assert.deepEqual(year.map((r) => [r.domain, r.attempted]), [['a.test', 7], ['b.test', 8]]);
      assert.deepEqual(store.query(NOW - 365 * DAY, NOW + 1, 'b.test', NOW).map((r) => r.requiredFailed), [8]);
      // A window that ended before b.test's day leaves it out.
      assert.deepEqual(store.query(NOW - 150 * DAY, NOW - 100 * DAY, undefined, NOW), []);

      // Counts for an earlier day (late) move every running total after it.
      add(store, NOW - 100 * DAY, 'b.test', { attempted: 1 });
      assert.equal(store.query(NOW - 365 * DAY, NOW + 1, 'b.test', NOW)[0]!.attempted, 9);
      assert.equal(store.query(NOW - 150 * DAY, NOW - 50 * DAY, 'b.test', NOW)[0]!.attempted, 1);

      // The graph's daily series: one point per day with traffic, differences of running totals.
      const series = store.series(NOW - 60 * DAY, NOW + 1, DAY);
      assert.deepEqual(series.map((p) => [Math.floor((NOW - p.start) / DAY), p.tls, p.clear]), [[40, 4, 0], [0, 1, 2]]);
    } finally {
      store.close();
    }
  });

  test('maintenance: hourly rows go after 8 days, running totals thin to month ends, retention keeps a base', () => {
    const store = TlsReportStore.open(tempDir('postern-report-store-'));
    try {
      // One connection a day for 200 days.
      for (let d = 200; d >= 0; d--) add(store, NOW - d * DAY, 'c.test', { attempted: 1, requiredOk: 1 });
      const count = (t: string) => (store.db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n;
      const before = store.query(NOW - 365 * DAY, NOW + 1, 'c.test', NOW)[0]!.attempted;
      assert.equal(before, 201);
      // Maintenance as each day passes (thinning runs once a day on its band).
      for (let d = 200; d >= 0; d--) store.maintain(NOW - d * DAY, 150);
      assert.ok(count('tls_hourly') <= 9, `hourly rows: ${count('tls_hourly')}`);
      const days = store.db.prepare("SELECT day FROM tls_running WHERE domain = 'c.test' ORDER BY day").all() as { day: number }[];
      // (the day just before the daily rows begins is thinned the next day)
      const old = days.filter((r) => r.day < NOW - 94 * DAY);
      // Older than 92 days: month ends only (and the base before the retention).
      for (const r of old.slice(1)) assert.equal(new Date(r.day + DAY).getUTCDate(), 1, new Date(r.day).toISOString());
      assert.ok(days.length < 92 + 8, `running rows: ${days.length}`);
      // Within the retention, a window from a month end still answers exactly.
      const lastOld = old[old.length - 1]!.day;
      assert.equal(store.query(lastOld + DAY, NOW + 1, 'c.test', NOW)[0]!.attempted, Math.round((Math.floor(NOW / DAY) * DAY - lastOld) / DAY));
      // The retention (150 days) keeps one base row before its cutoff.
      assert.equal(old.filter((r) => r.day < NOW - 150 * DAY).length, 1);
    } finally {
      store.close();
    }
  });

  test('counts of several event-loop turns are written together, once, within COUNT_FLUSH_MS', async () => {
    const added: Counts[][] = [];
    const counter = new TlsCounter({ add: (b) => added.push([...b.values()].map((v) => ({ ...v.counts }))) }, () => NOW);
    counter.write({ event: 'connection-failed', domain: 'd.test', host: 'mx', address: '192.0.2.2', port: 25, reason: 'refused', tls: 'required' });
    await new Promise((r) => setImmediate(r));
    counter.write({ event: 'connection-failed', domain: 'd.test', host: 'mx', address: '192.0.2.2', port: 25, reason: 'refused', tls: 'required' });
    assert.equal(added.length, 0, 'nothing written at the end of the turn');
    await new Promise((r) => setTimeout(r, COUNT_FLUSH_MS));
    assert.deepEqual(added.map((b) => b.map((c) => c.attempted)), [[2]]);
  });

  test('the counter classifies connections by the TLS setting and counts messages by their connection', () => {
    const added: Counts[] = [];
    const counter = new TlsCounter({ add: (b) => { for (const v of b.values()) added.push(v.counts); } }, () => NOW);
    const conn = (dcid: number, tls: 'no' | 'preferred' | 'required' | 'preferred-verify') => counter.write({ event: 'connection', dcid, interface: '', address: '192.0.2.1', port: 25, host: 'mx', domain: 'd.test', tls });
    conn(1, 'required');
    counter.write({ event: 'tls-success', dcid: 1, domain: 'd.test', protocol: 'TLSv1.3', cipher: 'x', verified: 'not-attempted' });
    counter.write({ event: 'message-done', dcid: 1, mid: 1, rids: [0], reply: '250' });
    conn(2, 'preferred');
    counter.write({ event: 'tls-failed', dcid: 2, domain: 'd.test', reason: 'not offered', outcome: 'clear-text' });
    counter.write({ event: 'message-done', dcid: 2, mid: 2, rids: [0], reply: '250' });
    conn(3, 'preferred-verify');
    counter.write({ event: 'tls-success', dcid: 3, domain: 'd.test', protocol: 'TLSv1.3', cipher: 'x', verified: 'no' });
    conn(4, 'required');
    counter.write({ event: 'tls-failed', dcid: 4, domain: 'd.test', reason: 'not offered', outcome: 'refused' });
    conn(5, 'no');
    conn(6, 'preferred');
    counter.write({ event: 'tls-skipped', dcid: 6, domain: 'd.test', reason: 'remembered' });
    counter.write({ event: 'connection-failed', domain: 'd.test', host: 'mx', address: '192.0.2.2', port: 25, reason: 'refused', tls: 'required' });
    counter.flush();
    const total = added.reduce((a, c) => {
      for (const k of Object.keys(c) as (keyof Counts)[]) a[k] += c[k];
      return a;
    }, zeroCounts());
    assert.deepEqual(total, { attempted: 7, requiredOk: 1, requiredFailed: 1, preferredOk: 1, preferredFailed: 2, clear: 3, verified: 0, unverified: 1, encryptedMessages: 1, clearMessages: 1 });
  });
});
