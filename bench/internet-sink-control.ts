/**
 * Starts the `internet` scenario's sink (bench/internet-sink.ts) as its own process, the way
 * run.ts starts bench/sink.ts (forkBench: killed at cleanup), and talks to it over IPC.
 *
 * Contract: resolves once every host's address listens; rejects (and stops the process) when
 * it exits first or is not ready within `readyTimeoutMs`. A config whose JSON is over 64 KiB
 * (a thousand hosts, a certificate naming them all) goes over IPC, not as argv[2]: Linux
 * refuses a single argument over 128 KiB (E2BIG).
 */
import type { InternetSinkConfig, InternetSinkGlobal, InternetSinkStats } from './internet-sink.js';
import { forkBench, request } from './util.js';

export interface InternetSink {
  pid: number;
  /** `addresses: false` leaves `delivered` empty (cheap enough to poll every second). */
  stats(opts?: { addresses?: boolean }): Promise<InternetSinkStats>;
  /** The global counters only (messages, recipients, sessions): for polling during a run. */
  global(): Promise<InternetSinkGlobal>;
  reset(): Promise<void>;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** How the config reaches the process; by default argv when small, IPC otherwise. */
  via?: 'argv' | 'ipc';
  readyTimeoutMs?: number;
}

export async function startInternetSink(cfg: InternetSinkConfig, o: StartOptions = {}): Promise<InternetSink> {
  const json = JSON.stringify(cfg);
  const via = o.via ?? (Buffer.byteLength(json) > 64 * 1024 ? 'ipc' : 'argv');
  const { child, stop } = forkBench('internet-sink', via === 'argv' ? [json] : []);
  const readyMs = o.readyTimeoutMs ?? 30_000;
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`internet sink not ready after ${readyMs / 1000} s`)), readyMs);
      child.on('message', (m: { ready?: boolean; wantConfig?: boolean }) => {
        if (m.wantConfig) child.send({ config: cfg });
        if (m.ready) {
          clearTimeout(t);
          resolve();
        }
      });
      child.once('exit', (c) => {
        clearTimeout(t);
        reject(new Error(`internet sink exited (${c}) before it was ready`));
      });
    });
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    pid: child.pid!,
    stats: (opts) => request<InternetSinkStats>(child, { cmd: 'stats', addresses: opts?.addresses ?? true }, 120_000),
    global: () => request<InternetSinkGlobal>(child, { cmd: 'global' }, 120_000),
    reset: async () => {
      await request(child, { cmd: 'reset' }, 30_000);
    },
    stop,
  };
}
