/**
 * The gateway's side of the listener thread (smtp/listener-worker.ts). Taking mail in on a
 * thread of its own keeps the accept latency independent of delivery's load on the gateway's
 * event loop: a message is parsed, committed and fsynced there, and the 250 sent from there.
 *
 * - start(): starts the thread; resolves with the bound addresses, or rejects with the
 *   listener's own error (an address in use).
 * - send(): the suspensions for deferral on arrival, the public listener's settings.
 * - close(): the listeners stop (open sessions get the close grace), the thread's queue
 *   connection is closed, and the thread ends.
 * - A thread that ends on its own (a crash) is started again after RESTART_MS, with a
 *   `Condition started` in the mail log until it listens again.
 */
import { Worker } from 'node:worker_threads';
import type { Conditions } from '../observe/conditions.js';
import type { EventSink } from '../observe/maillog.js';
import type { BoundAddress, FromListener, ListenerReport, ListenerThreadConfig, ToListener } from './listener-messages.js';

const RESTART_MS = 1000;
/** The thread's young generation (three semi-spaces of 2 MB, as `npm start` gives the main thread). */
const YOUNG_GENERATION_MB = 6;
/** The condition raised while the listener thread is down. */
export const LISTENER_THREAD = 'SMTP listener';

export interface ListenerHooks {
  log: EventSink;
  conditions: Pick<Conditions, 'raise' | 'clear'>;
  accepted: (mid: number, recipients: Extract<ListenerReport, { kind: 'accepted' }>['recipients']) => void;
  acceptTime: (seconds: number) => void;
  /** The thread ended: the queue's write lock, if it held it, is free again. */
  releaseWriteLock: (threadId: number) => void;
}

export interface Bound {
  relay: BoundAddress;
  public?: BoundAddress;
}

export class ListenerThread {
  private worker: Worker | null = null;
  private closing = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private bound: Bound | null = null;
  private closed: (() => void) | null = null;

  /** `config` is read at each (re)start, so a restarted thread has the settings of then. */
  constructor(
    private readonly config: () => ListenerThreadConfig,
    private readonly hooks: ListenerHooks,
  ) {}

  start(): Promise<Bound> {
    const cfg = this.config();
    // A restart binds where the first start did (a port 0 in the options was given a number then).
    if (this.bound) {
      cfg.relay = { host: cfg.relay.host, port: this.bound.relay.port };
      if (cfg.public && this.bound.public) cfg.public = { ...cfg.public, port: this.bound.public.port };
    }
    // A small young generation: what a session allocates is short-lived, and a large one is
    // resident memory that only holds garbage (docs/performance.md).
    const worker = new Worker(new URL('./listener-worker.js', import.meta.url), { workerData: cfg, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } });
    this.worker = worker;
    return new Promise((resolve, reject) => {
      let listening = false;
      worker.on('message', (m: FromListener) => {
        if (m.type === 'reports') this.take(m.reports);
        else if (m.type === 'listening') {
          listening = true;
          this.bound = { relay: m.relay, ...(m.public ? { public: m.public } : {}) };
          resolve(this.bound);
        } else if (m.type === 'failed') reject(Object.assign(new Error(m.message), m.code ? { code: m.code } : {}));
        else if (m.type === 'closed') this.closed?.();
      });
      let failure: Error | null = null;
      worker.on('error', (e) => (failure = e));
      const threadId = worker.threadId;
      worker.on('exit', (code) => {
        if (this.worker === worker) this.worker = null;
        // Terminated in the middle of a write: the lock is given back (SQLite rolled it back).
        this.hooks.releaseWriteLock(threadId);
        if (!listening) {
          reject(failure ?? new Error(`the SMTP listener thread ended before it listened (exit code ${code})`));
          return;
        }
        if (this.closing) return;
        this.hooks.conditions.raise(LISTENER_THREAD, `the listener thread stopped (${failure ? failure.message : `exit code ${code}`}); mail is not taken in until it is started again`);
        this.scheduleRestart();
      });
    });
  }

  private scheduleRestart(): void {
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.closing) return;
      this.start().then(
        () => this.hooks.conditions.clear(LISTENER_THREAD),
        (e: Error) => {
          this.hooks.conditions.raise(LISTENER_THREAD, `the listener thread cannot start: ${e.message}`);
          if (!this.closing) this.scheduleRestart();
        },
      );
    }, RESTART_MS);
  }

  /** Reports from the thread, in the order it made them. */
  private take(reports: ListenerReport[]): void {
    for (const r of reports) {
      if (r.kind === 'log') this.hooks.log.write(r.event);
      else if (r.kind === 'accepted') this.hooks.accepted(r.mid, r.recipients);
      else if (r.kind === 'acceptTime') this.hooks.acceptTime(r.seconds);
      else if (r.kind === 'raise') this.hooks.conditions.raise(r.name, r.detail);
      else this.hooks.conditions.clear(r.name);
    }
  }

  send(m: Exclude<ToListener, { type: 'close' }>): void {
    this.worker?.postMessage(m);
  }

  /** Ends the thread: `graceMs` after the listeners' own close grace, it is terminated. */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const worker = this.worker;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    const done = new Promise<void>((resolve) => (this.closed = resolve));
    worker.postMessage({ type: 'close' } satisfies ToListener);
    const timer = setTimeout(() => void worker.terminate(), graceMs);
    await Promise.race([done, exited]);
    clearTimeout(timer);
    // Everything is flushed and closed once it said so: the thread need not wind down alone.
    await worker.terminate();
  }

  /** For tests: the thread ends as if it had crashed. */
  async crashForTest(): Promise<void> {
    await this.worker?.terminate();
  }
}
