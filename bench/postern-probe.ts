/**
 * A probe loaded into a Postern the bench starts, for diagnosis (not part of any figure):
 *   POSTERN_BENCH_NODE_ARGS="--import ./dist/bench/postern-probe.js" POSTERN_PROBE_FILE=/tmp/probe.txt npm run bench -- ...
 * Every second each thread appends one line: the main thread to FILE (resident memory, V8
 * heap total and used, external memory, open handles), the others (listener, checkpointer) to
 * FILE.thread (thread id, heap, external memory); and each its event-loop delay (p50 / p99 / max
 * over that second), its fsyncs and fdatasyncs (count, mean and longest, in ms; the listener
 * thread makes the accepts') and the queue's write lock (how often it waited for the lock and
 * held it, mean and longest, in ms). It wraps `fs.fsync` and `fs.fdatasync` (a sync's time runs
 * from the call to its callback, so it includes any wait for the event loop after the disk is
 * done) and WriteLock's `run` and `acquire`. Each thread also appends to FILE.holds every hold
 * of the write lock over 30 ms (where from; time on a CPU and on the run queue, from
 * /proc/thread-self/schedstat; the end on CLOCK_MONOTONIC, to match against `perf record -k
 * CLOCK_MONOTONIC`), its GC pauses of 10 ms or more, and for a slow `recordMany` what it held and
 * which statements took its time.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { isMainThread, threadId } from 'node:worker_threads';
import { WriteLock } from '../src/queue/write-lock.js';
import { QueueStore } from '../src/queue/store.js';

const FILE = process.env.POSTERN_PROBE_FILE ?? `/tmp/postern-probe-${process.pid}.txt`;
const mb = (n: number): string => (n / 1048576).toFixed(0);
const ms = (ns: number): string => (ns / 1e6).toFixed(1);

// The queue's write lock, per thread: how long this thread waited for it and held it.
const lock = { waits: 0, waitMs: 0, waitMax: 0, holds: 0, holdMs: 0, holdMax: 0, lastWait: 0 };
{
  type Patched = { run<T>(fn: () => T): T; acquire(): void; depth: number };
  const proto = WriteLock.prototype as unknown as Patched;
  const acquire = proto.acquire;
  proto.acquire = function (this: Patched) {
    const t = performance.now();
    acquire.call(this);
    const d = performance.now() - t;
    lock.lastWait = d;
    lock.waits++;
    lock.waitMs += d;
    lock.waitMax = Math.max(lock.waitMax, d);
  };
  const run = proto.run;
  proto.run = function <T>(this: Patched, fn: () => T): T {
    if (this.depth > 0) return run.call(this, fn) as T;
    const t = performance.now();
    const before = schedstat();
    const site = new Error().stack ?? '';
    lock.lastWait = 0;
    try {
      return run.call(this, fn) as T;
    } finally {
      const end = performance.now();
      const held = end - t - lock.lastWait;
      lock.holds++;
      lock.holdMs += held;
      lock.holdMax = Math.max(lock.holdMax, held);
      if (held > LONG_HOLD_MS) {
        const after = schedstat();
        longHolds.push(
          `${threadId} hold ${held.toFixed(1)} wait ${lock.lastWait.toFixed(1)} from ${(t + lock.lastWait).toFixed(1)} to ${end.toFixed(1)} monoEnd ${(Number(process.hrtime.bigint()) / 1e9).toFixed(4)} ` +
            `oncpu ${((after[0] - before[0]) / 1e6).toFixed(1)} runqueue ${((after[1] - before[1]) / 1e6).toFixed(1)} slices ${after[2] - before[2]} ` +
            `at ${site.split('\n').slice(2, 9).map((l) => l.trim().replace(/^at /, '').replace(/\(.*\/(dist\/[^)]*)\)/, '$1')).join(' < ')}`,
        );
      }
    }
  };
}
/** A hold longer than this is written out whole (POSTERN_PROBE_FILE.holds) with where it came from. */
const LONG_HOLD_MS = 30;
const longHolds: string[] = [];
const gcs: string[] = [];
/** This thread's time on a CPU and waiting on a run queue (ns), and its time slices. */
function schedstat(): number[] {
  try {
    return fs.readFileSync('/proc/thread-self/schedstat', 'utf8').trim().split(' ').map(Number);
  } catch {
    return [0, 0, 0];
  }
}
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    if (e.duration >= 10) gcs.push(`${threadId} gc ${e.duration.toFixed(1)} from ${e.startTime.toFixed(1)} kind ${(e as unknown as { detail?: { kind?: number } }).detail?.kind ?? '?'}`);
  }
}).observe({ entryTypes: ['gc'] });
/** Writes out and forgets this thread's long holds and long GC pauses. */
function flushEvents(): void {
  if (longHolds.length + gcs.length === 0) return;
  fs.appendFileSync(`${FILE}.holds`, [...longHolds, ...gcs].map((l) => `${l}\n`).join(''));
  longHolds.length = 0;
  gcs.length = 0;
}

/** This second's lock figures (then reset): count, mean and longest wait and hold, in ms. */
function lockLine(): string {
  const l = lock;
  const line = `lockWaits ${l.waits} waitMean ${(l.waitMs / Math.max(1, l.waits)).toFixed(1)} waitMax ${l.waitMax.toFixed(1)} holds ${l.holds} holdMean ${(l.holdMs / Math.max(1, l.holds)).toFixed(1)} holdMax ${l.holdMax.toFixed(1)}`;
  Object.assign(lock, { waits: 0, waitMs: 0, waitMax: 0, holds: 0, holdMs: 0, holdMax: 0 });
  return line;
}

// Each thread's syncs (the listener thread makes the accepts' fsyncs).
let syncs = 0;
let syncMs = 0;
let syncMax = 0;
type Sync = (fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => void;
const timed =
  (sync: Sync): Sync =>
  (fd, cb) => {
    const t = performance.now();
    sync(fd, (e) => {
      const d = performance.now() - t;
      syncs++;
      syncMs += d;
      syncMax = Math.max(syncMax, d);
      cb(e);
    });
  };
const writable = fs as { fsync: Sync; fdatasync: Sync };
writable.fsync = timed(fs.fsync);
writable.fdatasync = timed(fs.fdatasync);
syncBuiltinESMExports(); // ES module importers of node:fs see the wrapper too
/** This second's syncs (then reset): count, mean and longest, in ms. */
function syncLine(): string {
  const line = `fsyncs ${syncs} fsyncMean ${(syncMs / Math.max(1, syncs)).toFixed(1)} fsyncMax ${syncMax.toFixed(1)}`;
  syncs = syncMs = syncMax = 0;
  return line;
}

if (isMainThread) {
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  setInterval(() => {
    const m = process.memoryUsage();
    const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
    fs.appendFileSync(
      FILE,
      `${Date.now()} rss ${mb(m.rss)} heapTotal ${mb(m.heapTotal)} heapUsed ${mb(m.heapUsed)} external ${mb(m.external)} handles ${handles} ` +
        `lag50 ${ms(loop.percentile(50))} lag99 ${ms(loop.percentile(99))} lagMax ${ms(loop.max)} ${syncLine()} ${lockLine()}\n`,
    );
    loop.reset();
    flushEvents();
  }, 1000).unref();
}
else {
  // Another thread of Postern (the listener thread): its own heap and event-loop delay.
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  setInterval(() => {
    const m = process.memoryUsage();
    fs.appendFileSync(`${FILE}.thread`, `${Date.now()} thread ${threadId} heapTotal ${mb(m.heapTotal)} heapUsed ${mb(m.heapUsed)} external ${mb(m.external)} arrayBuffers ${mb(m.arrayBuffers)} lag50 ${ms(loop.percentile(50))} lag99 ${ms(loop.percentile(99))} lagMax ${ms(loop.max)} ${syncLine()} ${lockLine()}\n`);
    loop.reset();
    flushEvents();
  }, 1000).unref();
}

// What a slow recordMany spent its time on: the records' sizes and each statement's share.
{
  type Store = { st(sql: string): StatementLike; recordMany(list: unknown[]): unknown };
  type StatementLike = Record<'run' | 'get' | 'all', (...a: unknown[]) => unknown>;
  const proto = QueueStore.prototype as unknown as Store;
  const perSql = new Map<string, { n: number; ms: number }>();
  // Per store: the main thread may hold more than one (the admin page opens its own).
  const wrappedBy = new WeakMap<Store, Map<string, StatementLike>>();
  const st = proto.st;
  proto.st = function (this: Store, sql: string) {
    let wrapped = wrappedBy.get(this);
    if (!wrapped) wrappedBy.set(this, (wrapped = new Map()));
    let w = wrapped.get(sql);
    if (!w) {
      const s = st.call(this, sql);
      const key = sql.replace(/\s+/g, ' ').slice(0, 60);
      const time =
        (f: (...a: unknown[]) => unknown) =>
        (...a: unknown[]) => {
          const t = performance.now();
          try {
            return f.apply(s, a);
          } finally {
            const e = perSql.get(key) ?? { n: 0, ms: 0 };
            e.n++;
            e.ms += performance.now() - t;
            perSql.set(key, e);
          }
        };
      w = { run: time(s.run), get: time(s.get), all: time(s.all) };
      wrapped.set(sql, w);
    }
    return w;
  };
  const recordMany = proto.recordMany;
  proto.recordMany = function (this: Store, list: unknown[]) {
    perSql.clear();
    const t = performance.now();
    try {
      return recordMany.call(this, list);
    } finally {
      const d = performance.now() - t;
      if (d > LONG_HOLD_MS) {
        type R = { delivered?: { ids: number[] }; failed?: unknown[]; deferred?: { ids: number[] }[]; newMessages?: unknown[] };
        const recs = list as R[];
        const count = (f: (r: R) => number) => recs.reduce((a, r) => a + f(r), 0);
        const parts = [...perSql.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 5).map(([k, v]) => `[${v.n}× ${v.ms.toFixed(1)} ms: ${k}]`);
        longHolds.push(
          `${threadId} recordMany ${d.toFixed(1)} records ${recs.length} delivered ${count((r) => r.delivered?.ids.length ?? 0)} failed ${count((r) => r.failed?.length ?? 0)} ` +
            `deferred ${count((r) => (r.deferred ?? []).reduce((a, x) => a + x.ids.length, 0))} made ${count((r) => r.newMessages?.length ?? 0)} ${parts.join(' ')}`,
        );
      }
    }
  };
}
