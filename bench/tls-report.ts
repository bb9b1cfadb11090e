/**
 * `npm run bench:report`: the TLS Connections report over a year of counts for many domains
 * (default 10,000, every domain active every day): how large report.db is (each domain's
 * running totals per day, hourly rows for the last 8 days) and how long `report tls` queries
 * take for a year, 30 days and a day. Figures in docs/performance.md.
 *
 *   npm run bench:report -- [--domains N] [--days D]
 */
import { statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseWindow, reportLines } from '../src/manage/tls-report.js';
import { DAILY_DAYS, TlsReportStore } from '../src/observe/tls-report.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const DOMAINS = arg('domains', 10_000);
const DAYS = arg('days', 365);
const HOUR = 3_600_000;

const dir = await mkdtemp(path.join(os.tmpdir(), 'postern-bench-report-'));
try {
  const store = TlsReportStore.open(dir);
  const now = Date.now();
  const t0 = performance.now();
  // What a year of traffic leaves: each domain's running totals for every day, and hourly rows
  // for the last 8 days (written directly: the bench measures the store, not a year of waiting).
  const cols = ['attempted', 'required_ok', 'required_failed', 'preferred_ok', 'preferred_failed', 'clear', 'verified', 'unverified', 'encrypted_messages', 'clear_messages'];
  const perDay = (i: number): number[] => {
    const n = 240 + (i % 7) * 24;
    const kind = i % 3;
    return [n, kind === 0 ? n : 0, 0, kind === 1 ? n - 24 : 0, kind === 1 ? 24 : 0, kind === 2 ? n : kind === 1 ? 24 : 0, 0, 0, kind === 2 ? 0 : n, kind === 2 ? n : 0];
  };
  const running = store.db.prepare(`INSERT INTO tls_running (domain, day, ${cols.join(', ')}) VALUES (?, ?, ${cols.map(() => '?').join(', ')})`);
  const hourly = store.db.prepare(`INSERT INTO tls_hourly (start, domain, ${cols.join(', ')}) VALUES (?, ?, ${cols.map(() => '?').join(', ')})`);
  const domain = store.db.prepare('INSERT INTO tls_domains (domain) VALUES (?)');
  const today = Math.floor(now / 86_400_000) * 86_400_000;
  store.db.transaction(() => {
    for (let i = 0; i < DOMAINS; i++) {
      const name = `d${i}.example`;
      domain.run(name);
      const v = perDay(i);
      for (let d = DAYS; d >= 0; d--) {
        const day = today - d * 86_400_000;
        // As the hourly maintenance leaves them: every day for 92 days, month ends before that.
        const monthEnd = new Date(day + 86_400_000).getUTCDate() === 1;
        if (d <= DAILY_DAYS || monthEnd) running.run(name, day, ...v.map((x) => x * (DAYS - d + 1)));
      }
      for (let h = 0; h < 8 * 24; h++) hourly.run(today - h * HOUR, name, ...v.map((x) => Math.round(x / 24)));
    }
  })();
  const tSeed = performance.now() - t0;
  const t1 = performance.now();
  store.maintain(now);
  const tMaintain = performance.now() - t1;
  const rows = (store.db.prepare('SELECT (SELECT count(*) FROM tls_running) + (SELECT count(*) FROM tls_hourly) AS n').get() as { n: number }).n;
  store.db.pragma('wal_checkpoint(TRUNCATE)');
  store.db.exec('VACUUM');
  const size = statSync(path.join(dir, 'report.db')).size;
  const timeQuery = (last: string): { ms: number; domains: number } => {
    const w = parseWindow({ last }, Date.now());
    const runs: number[] = [];
    let n = 0;
    for (let k = 0; k < 3; k++) {
      const t = performance.now();
      n = reportLines(store.query(w.from, w.to)).rows.length;
      runs.push(performance.now() - t);
    }
    return { ms: runs.sort((a, b) => a - b)[1]!, domains: n };
  };
  const year = timeQuery('1y');
  const month = timeQuery('30d');
  const day = timeQuery('1d');
  const one = (() => {
    const w = parseWindow({ last: '1y' }, Date.now());
    const t = performance.now();
    store.query(w.from, w.to, 'd42.example');
    return performance.now() - t;
  })();
  store.close();
  const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
  process.stdout.write(
    [
      `TLS report: ${DOMAINS.toLocaleString('en-US')} domains, ${DAYS} days, every domain active every day`,
      `  written in ${(tSeed / 1000).toFixed(1)} s; an hourly maintenance pass ${tMaintain.toFixed(0)} ms; ${rows.toLocaleString('en-US')} rows; report.db ${mb(size)} MB`,
      `  report tls --last 1y : ${year.ms.toFixed(0)} ms (${year.domains.toLocaleString('en-US')} domains, median of 3)`,
      `  report tls --last 30d: ${month.ms.toFixed(0)} ms`,
      `  report tls --last 1d : ${day.ms.toFixed(0)} ms`,
      `  report tls --last 1y --domain d42.example: ${one.toFixed(1)} ms`,
    ].join('\n') + '\n',
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
