/**
 * Test helper: runs the real `postern` CLI (bin/postern.js, i.e. the compiled dist/) as child
 * processes, as a user would. Proves nothing itself; its own failures say what the process
 * printed so that a test failure explains itself.
 *
 * API (all a test needs):
 *
 *   startPostern({ dataDir, listen?, dnsServer?, smtpPort?, hostname?, config?, args? })
 *     -> Promise<PosternProcess>
 *     Spawns `postern start --data-dir DIR ...` and resolves once it printed
 *     "Postern listening on HOST:PORT" (rejects with its output if it exits first or does not
 *     get there within `readyTimeoutMs`, default 15 s). `config` is an object written as the
 *     JSON `--config` file DATA_DIR/test-config.json (e.g. { timeouts: { connect: 3 } }).
 *
 *   PosternProcess
 *     pid, host, port          the process and its listener as printed
 *     output()                 everything it wrote to stdout and stderr so far
 *     exited                   resolves with { code, signal } when the process has exited
 *     stop(timeoutMs = 10 s)   SIGTERM, wait for exit (SIGKILL after the timeout); resolves with
 *                              the exit status
 *     kill(signal = SIGKILL)   sends the signal and waits for exit
 *
 *   runCli(args, { timeoutMs }?) -> Promise<{ code, stdout, stderr }>
 *     One-shot command, e.g. runCli(['queue', 'list', '--json', '--data-dir', dir]). Never
 *     rejects on a non-zero exit; rejects only if the process cannot be spawned or times out.
 *
 *   runCliOk(args) -> Promise<string>      runCli, asserting exit 0; resolves with stdout.
 *
 *   logFile(dataDir, 'mail.log' | 'mail.jsonl') -> string   path of a mail log file.
 *
 * Processes still running when the test process exits are killed (SIGKILL), so a failed test
 * does not leave gateways behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { within } from './deadline.js';

/** Absolute path of bin/postern.js (this file runs from dist/test/). */
export const POSTERN_BIN = fileURLToPath(new URL('../../bin/postern.js', import.meta.url));

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartOptions {
  dataDir: string;
  /** HOST:PORT of the relay listener (default 127.0.0.1:0, i.e. any free port). */
  listen?: string;
  /** HOST:PORT of the DNS server delivery uses. */
  dnsServer?: string;
  smtpPort?: number;
  hostname?: string;
  /** Written as JSON to DATA_DIR/test-config.json and passed as --config. */
  config?: Record<string, unknown>;
  /** Further arguments after the ones above. */
  args?: string[];
  readyTimeoutMs?: number;
}

export interface PosternProcess {
  pid: number;
  host: string;
  port: number;
  output(): string;
  exited: Promise<ExitStatus>;
  stop(timeoutMs?: number): Promise<ExitStatus>;
  kill(signal?: NodeJS.Signals): Promise<ExitStatus>;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const live = new Set<ChildProcess>();
let exitHook = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}

function exitStatus(child: ChildProcess): Promise<ExitStatus> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

export async function startPostern(o: StartOptions): Promise<PosternProcess> {
  const args = [POSTERN_BIN, 'start', '--data-dir', o.dataDir, '--listen', o.listen ?? '127.0.0.1:0'];
  if (o.dnsServer !== undefined) args.push('--dns-server', o.dnsServer);
  if (o.smtpPort !== undefined) args.push('--smtp-port', String(o.smtpPort));
  if (o.hostname !== undefined) args.push('--hostname', o.hostname);
  if (o.config !== undefined) {
    mkdirSync(o.dataDir, { recursive: true });
    const file = join(o.dataDir, 'test-config.json');
    writeFileSync(file, JSON.stringify(o.config));
    args.push('--config', file);
  }
  args.push(...(o.args ?? []));
  // The administration page is for the tests that ask for it: others would share its port.
  if (!args.includes('--admin') && o.config?.admin === undefined) args.push('--admin', 'off');

  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = exitStatus(child);
  const readyMs = within(o.readyTimeoutMs ?? 15_000);

  const listening = await new Promise<{ host: string; port: number }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`postern start: not listening after ${readyMs} ms\n--- output ---\n${out}`));
    }, readyMs);
    const check = (): void => {
      const m = /Postern listening on (\S+):(\d+),/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      child.stdout.off('data', check);
      resolve({ host: m[1]!, port: Number(m[2]) });
    };
    child.stdout.on('data', check);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    void exited.then((s) => {
      clearTimeout(timer);
      reject(new Error(`postern start exited (code ${s.code}, signal ${s.signal}) before listening\n--- output ---\n${out}`));
    });
  });

  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<ExitStatus> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  return {
    pid: child.pid!,
    host: listening.host,
    port: listening.port,
    output: () => out,
    exited,
    kill,
    async stop(timeoutMs = 10_000): Promise<ExitStatus> {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), within(timeoutMs));
      const s = await exited;
      clearTimeout(timer);
      return s;
    },
  };
}

/** Runs the real CLI; `input` is its standard input (a pipe that ends after it, or at once). */
export function runCli(args: string[], o: { timeoutMs?: number; input?: string } = {}): Promise<CliResult> {
  const timeoutMs = within(o.timeoutMs ?? 30_000);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [POSTERN_BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin.end(o.input ?? '');
    track(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`postern ${args.join(' ')}: no exit after ${timeoutMs} ms\n${stdout}${stderr}`));
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** runCli that insists on exit status 0; resolves with stdout. */
export async function runCliOk(args: string[]): Promise<string> {
  const r = await runCli(args);
  if (r.code !== 0) {
    throw new Error(`postern ${args.join(' ')} exited ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`);
  }
  return r.stdout;
}

/** Path of a file in the data directory's log folder. */
export function logFile(dataDir: string, name: 'mail.log' | 'mail.jsonl'): string {
  return join(dataDir, 'logs', name);
}
