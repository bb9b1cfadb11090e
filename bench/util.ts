/**
 * Shared pieces of the benchmark: a cleanup registry that runs on normal exit, on an error and
 * on Ctrl-C (every process and temporary directory the bench made is registered here), readers
 * of /proc for memory and CPU, and small statistics helpers.
 *
 * Contract: `cleanup.add(fn)` returns a function that runs fn once and unregisters it;
 * `cleanup.runAll()` runs every registered action, newest first, each at most once, and never
 * throws. SIGINT/SIGTERM run it and exit 130/143.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

type Action = () => Promise<void> | void;

class Cleanup {
  private readonly actions = new Map<number, { what: string; fn: Action }>();
  private seq = 0;
  private running: Promise<void> | undefined;

  add(what: string, fn: Action): () => Promise<void> {
    const id = ++this.seq;
    this.actions.set(id, { what, fn });
    return async () => {
      const a = this.actions.get(id);
      if (!a) return;
      this.actions.delete(id);
      await a.fn();
    };
  }

  runAll(): Promise<void> {
    this.running ??= (async () => {
      const ids = [...this.actions.keys()].sort((a, b) => b - a);
      for (const id of ids) {
        const a = this.actions.get(id);
        if (!a) continue;
        this.actions.delete(id);
        try {
          await Promise.race([a.fn(), sleep(15_000)]);
        } catch (e) {
          process.stderr.write(`cleanup (${a.what}): ${(e as Error).message}\n`);
        }
      }
    })();
    return this.running;
  }

  /** Synchronous last resort for process 'exit': SIGKILL children, remove directories. */
  readonly lastResort = new Set<() => void>();
}

export const cleanup = new Cleanup();

let handlersInstalled = false;
export function installSignalHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    process.on(sig, () => {
      process.stderr.write(`\n${sig}: stopping every process the bench started and removing its files...\n`);
      void cleanup.runAll().finally(() => process.exit(code));
    });
  }
  process.on('exit', () => {
    for (const f of cleanup.lastResort) {
      try {
        f();
      } catch {
        // best effort
      }
    }
  });
}

/** A temporary directory (mode 0755, Postfix's users must traverse it), removed at cleanup. */
export async function tempDir(prefix: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  const { chmod } = await import('node:fs/promises');
  await chmod(dir, 0o755);
  const sync = (): void => rmSync(dir, { recursive: true, force: true });
  cleanup.lastResort.add(sync);
  const remove = cleanup.add(`rm -r ${dir}`, () => {
    cleanup.lastResort.delete(sync);
    sync();
  });
  return { dir, remove };
}

/** Forks a compiled bench module (dist/bench/NAME.js) with IPC; killed at cleanup. */
export function forkBench(name: string, args: string[] = [], execArgv: string[] = []): { child: ChildProcess; stop: () => Promise<void> } {
  const file = new URL(`./${name}.js`, import.meta.url);
  const child = fork(file, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  cleanup.lastResort.add(kill);
  const stop = cleanup.add(`${name} pid ${child.pid}`, async () => {
    cleanup.lastResort.delete(kill);
    await stopChild(child);
  });
  return { child, stop };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

/** Sends a request over IPC and waits for the reply with the same id. */
let ipcSeq = 0;
export function request<T>(child: ChildProcess, msg: Record<string, unknown>, timeoutMs = 600_000): Promise<T> {
  const id = ++ipcSeq;
  return new Promise<T>((resolve, reject) => {
    const onMessage = (m: unknown): void => {
      const r = m as { id?: number; error?: string; result?: T };
      if (r.id !== id) return;
      cleanupListeners();
      if (r.error !== undefined) reject(new Error(r.error));
      else resolve(r.result as T);
    };
    const onExit = (code: number | null, sig: string | null): void => {
      cleanupListeners();
      reject(new Error(`child exited (code ${code}, signal ${sig}) before answering ${String(msg.cmd)}`));
    };
    const timer = setTimeout(() => {
      cleanupListeners();
      reject(new Error(`no answer to ${String(msg.cmd)} within ${timeoutMs} ms`));
    }, timeoutMs);
    const cleanupListeners = (): void => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.send({ ...msg, id });
  });
}

/** Serves IPC requests in a child: handler(msg) → result, errors sent back as text. */
export function serveRequests(handler: (msg: Record<string, unknown>) => Promise<unknown> | unknown): void {
  process.on('message', (m: unknown) => {
    const msg = m as Record<string, unknown> & { id: number };
    Promise.resolve()
      .then(() => handler(msg))
      .then(
        (result) => process.send?.({ id: msg.id, result }),
        (e: Error) => process.send?.({ id: msg.id, error: e.stack ?? e.message }),
      );
  });
  process.on('disconnect', () => process.exit(0));
}

// ---- /proc -----------------------------------------------------------------------------

export function statusKb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Proportional set size (shared pages divided among their users), kB. */
export function pssKb(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

const CLK_TCK = 100;

interface Stat {
  state: string;
  pgrp: number;
  utime: number;
  stime: number;
  cutime: number;
  cstime: number;
}

function readStat(pid: number): Stat | undefined {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    // fields after comm: state(0) ppid(1) pgrp(2) session(3) tty(4) tpgid(5) flags(6) minflt(7)
    // cminflt(8) majflt(9) cmajflt(10) utime(11) stime(12) cutime(13) cstime(14)
    return { state: f[0]!, pgrp: Number(f[2]), utime: Number(f[11]), stime: Number(f[12]), cutime: Number(f[13]), cstime: Number(f[14]) };
  } catch {
    return undefined;
  }
}

/** CPU seconds used by pid and by its children that it has reaped. */
export function cpuSeconds(pid: number, withReapedChildren = false): number {
  const s = readStat(pid);
  if (!s) return 0;
  return (s.utime + s.stime + (withReapedChildren ? s.cutime + s.cstime : 0)) / CLK_TCK;
}

/** Live (non-zombie) processes of process group pgid. */
export function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s && s.state !== 'Z' && s.pgrp === pgid) out.push(Number(name));
  }
  return out;
}

/** What a sampler keeps about a system under test (one process, or a group summed). */
export interface MemSample {
  /** Peak of the sampled resident size, kB (for a group: the peak of the sum). */
  peakRssKb: number;
  peakPssKb: number;
}

/**
 * Samples memory of `pids()` every `everyMs`: the peak of Σ VmRSS and of Σ Pss. For a single
 * process the kernel's own VmHWM is exact and is read separately.
 */
export function startMemSampler(pids: () => number[], everyMs = 250): { stop: () => MemSample; sample: () => void } {
  const peak: MemSample = { peakRssKb: 0, peakPssKb: 0 };
  const sample = (): void => {
    let rss = 0;
    let pss = 0;
    for (const p of pids()) {
      rss += statusKb(p, 'VmRSS');
      pss += pssKb(p);
    }
    peak.peakRssKb = Math.max(peak.peakRssKb, rss);
    peak.peakPssKb = Math.max(peak.peakPssKb, pss);
  };
  sample();
  const t = setInterval(sample, everyMs);
  return {
    sample,
    stop: () => {
      clearInterval(t);
      sample();
      return peak;
    },
  };
}

// ---- statistics --------------------------------------------------------------------------

export function median(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** Nearest-rank percentile of a sorted array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `NAME=value` pairs separated by white space (systemd's `Environment=`, POSTERN_BENCH_ENV). */
export function environmentPairs(text: string): Record<string, string> {
  return Object.fromEntries(text.split(/\s+/).filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
}

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function log(line: string): void {
  const t = new Date().toISOString().slice(11, 19);
  process.stderr.write(`[bench ${t}] ${line}\n`);
}

/** The machine's CPU counters from /proc/stat: busy and total jiffies over every CPU. */
function cpuJiffies(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
  const busy = user! + nice! + system! + irq! + softirq! + steal!;
  return { busy, total: busy + idle! + iowait! };
}

/**
 * Waits until the machine is quiet before a measured run: the CPUs at most `maxBusy` busy over
 * two consecutive seconds (what the previous run left behind — a relay's exiting processes, its
 * log writer, the page cache's write-back — is over), or `limitMs` at most. Returns the wait
 * and the busy share of the last second, for the report.
 */
export async function waitForQuiet(maxBusy = 0.15, limitMs = 30_000): Promise<{ waitedMs: number; busy: number }> {
  const start = Date.now();
  let quiet = 0;
  let busy = 1;
  let before = cpuJiffies();
  while (Date.now() - start < limitMs) {
    await sleep(1000);
    const now = cpuJiffies();
    busy = (now.busy - before.busy) / Math.max(1, now.total - before.total);
    before = now;
    quiet = busy <= maxBusy ? quiet + 1 : 0;
    if (quiet >= 2) break;
  }
  return { waitedMs: Date.now() - start, busy };
}
