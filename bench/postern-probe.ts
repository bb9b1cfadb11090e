/**
 * A probe loaded into a Postern the bench starts, for diagnosis (not part of any figure):
 *   POSTERN_BENCH_NODE_ARGS="--import ./dist/bench/postern-probe.js" POSTERN_PROBE_FILE=/tmp/probe.txt npm run bench -- ...
 * Every second it appends one line: resident memory, V8 heap (total and used), external memory,
 * open handles, event-loop delay (p50 / p99 / max over that second) and the fsyncs and
 * fdatasyncs of that second (count, mean and longest, in ms). It wraps `fs.fsync` (the queue's
 * durable accept) and `fs.fdatasync`; a sync's time runs from the call to its callback, so it
 * includes any wait for the event loop after the disk is done. Since the listener thread, the
 * accepts' fsyncs are made there, so the main thread's line counts none. Each other thread
 * (listener, checkpointer) appends its own line to FILE.thread: its heap, external memory and
 * event-loop delay.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';

if (isMainThread) {
  const file = process.env.POSTERN_PROBE_FILE ?? `/tmp/postern-probe-${process.pid}.txt`;
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
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
  const mb = (n: number): string => (n / 1048576).toFixed(0);
  const ms = (ns: number): string => (ns / 1e6).toFixed(1);
  setInterval(() => {
    const m = process.memoryUsage();
    const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
    fs.appendFileSync(
      file,
      `${Date.now()} rss ${mb(m.rss)} heapTotal ${mb(m.heapTotal)} heapUsed ${mb(m.heapUsed)} external ${mb(m.external)} handles ${handles} ` +
        `lag50 ${ms(loop.percentile(50))} lag99 ${ms(loop.percentile(99))} lagMax ${ms(loop.max)} fsyncs ${syncs} fsyncMean ${(syncMs / Math.max(1, syncs)).toFixed(1)} fsyncMax ${syncMax.toFixed(1)}\n`,
    );
    loop.reset();
    syncs = syncMs = syncMax = 0;
  }, 1000).unref();
}
else {
  // Another thread of Postern (the listener thread): its own heap and event-loop delay.
  const file = `${process.env.POSTERN_PROBE_FILE ?? `/tmp/postern-probe-${process.pid}.txt`}.thread`;
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const mb = (n: number): string => (n / 1048576).toFixed(0);
  const ms = (ns: number): string => (ns / 1e6).toFixed(1);
  setInterval(() => {
    const m = process.memoryUsage();
    fs.appendFileSync(file, `${Date.now()} heapTotal ${mb(m.heapTotal)} heapUsed ${mb(m.heapUsed)} external ${mb(m.external)} arrayBuffers ${mb(m.arrayBuffers)} lag50 ${ms(loop.percentile(50))} lag99 ${ms(loop.percentile(99))} lagMax ${ms(loop.max)}\n`);
    loop.reset();
  }, 1000).unref();
}

