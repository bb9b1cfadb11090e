/**
 * Micro-benchmark of the destination lookup (SPEC §1: "lookup cost must not grow with the
 * table's size"): DestinationTable.match and .resolve from the compiled src/, in tables of
 * 1,000, 10,000 and 100,000 entries (half exact names, half `.suffix` entries), with a fixed
 * mix of recipient domains: a third exact hits, a third suffix hits three labels deep, a third
 * misses that fall through to (Default).
 *
 * Contract: lookupBench(sizes, lookups) → one row per size with ns per lookup (the median of
 * 5 timed rounds after a warm-up), run in this process.
 */
import { DestinationTable } from '../src/controls/table.js';
import { INITIAL_DEFAULTS, type Entry } from '../src/controls/types.js';
import { normaliseDomain } from '../src/tls/names.js';
import { median } from './util.js';

export interface LookupRow {
  entries: number;
  matchNs: number;
  resolveNs: number;
  /** normaliseDomain alone (src/tls/names.ts), which match() calls first. */
  normaliseNs: number;
  /** match() over 30 distinct domains only: the same work with the entries in the CPU caches. */
  matchHotNs: number;
  /** Sanity: hits found per lookup mix (must be 2/3). */
  hitShare: number;
}

function buildTable(n: number): DestinationTable {
  const entries: Entry[] = [];
  for (let i = 0; i < n; i++) {
    const name = i % 2 === 0 ? `dom${i}.example${i % 97}.test` : `.sub${i}.example${i % 89}.test`;
    entries.push({ name, settings: i % 3 === 0 ? { tls: 'required-verify', concurrency: 10 } : { tls: 'preferred' } });
  }
  return new DestinationTable({ ...INITIAL_DEFAULTS }, entries);
}

function queries(n: number, count: number): string[] {
  const out: string[] = [];
  let x = 12345;
  const rnd = (): number => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let q = 0; q < count; q++) {
    let i = Math.floor(rnd() * n);
    switch (q % 3) {
      case 0:
        i -= i % 2;
        out.push(`dom${i}.example${i % 97}.test`);
        break;
      case 1:
        i |= 1;
        if (i >= n) i -= 2;
        out.push(`mx.a.sub${i}.example${i % 89}.test`);
        break;
      default:
        out.push(`unlisted${q}.nowhere${q % 50}.test`);
    }
  }
  return out;
}

function timeNs(fn: () => void, count: number): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / count;
}

export function lookupBench(sizes: number[] = [1000, 10_000, 100_000], lookups = 300_000): LookupRow[] {
  const rows: LookupRow[] = [];
  for (const n of sizes) {
    const table = buildTable(n);
    const qs = queries(n, 3000);
    let hits = 0;
    for (const q of qs) if (table.match(q)) hits++;
    let sink = 0;
    const runMatch = (): void => {
      for (let k = 0; k < lookups; k++) if (table.match(qs[k % qs.length]!)) sink++;
    };
    const runResolve = (): void => {
      for (let k = 0; k < lookups; k++) sink += table.resolve(qs[k % qs.length]!).settings.concurrency;
    };
    const hot = qs.slice(0, 30);
    const runHot = (): void => {
      for (let k = 0; k < lookups; k++) if (table.match(hot[k % hot.length]!)) sink++;
    };
    const runNormalise = (): void => {
      for (let k = 0; k < lookups; k++) sink += normaliseDomain(qs[k % qs.length]!)?.length ?? 0;
    };
    runMatch();
    runResolve(); // warm-up
    runNormalise();
    const m: number[] = [];
    const r: number[] = [];
    const nz: number[] = [];
    const h: number[] = [];
    for (let round = 0; round < 5; round++) {
      m.push(timeNs(runMatch, lookups));
      r.push(timeNs(runResolve, lookups));
      nz.push(timeNs(runNormalise, lookups));
      h.push(timeNs(runHot, lookups));
    }
    if (sink === -1) console.log('unreachable');
    rows.push({ entries: n, matchNs: median(m), resolveNs: median(r), normaliseNs: median(nz), matchHotNs: median(h), hitShare: hits / qs.length });
  }
  return rows;
}
