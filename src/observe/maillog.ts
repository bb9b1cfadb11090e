/**
 * The mail log writer: `<data-dir>/logs/mail.log` (text, one event per line) and
 * `<data-dir>/logs/mail.jsonl` (the same events as JSON lines). Subscribers (tests, the TLS
 * report) can listen to events as they are written.
 *
 * - Lines are appended with one write per file per turn of the event loop (O_APPEND, so the CLI
 *   and the gateway can write the same file), and every line is whole: peers' text is escaped
 *   (observe/text.ts), so no event can span or forge lines.
 * - reopen() (SIGHUP) closes the files and opens them again by name, so `logrotate` can move
 *   them away: lines of the current turn go to the old file, later ones to the new.
 * - A write that fails (a full disk, an I/O error) never throws into the caller: the lines wait
 *   in memory (at most MAX_BACKLOG_BYTES; beyond that the oldest are dropped and counted), the
 *   failure is reported once through `onTrouble`, writing is retried every second, and when it
 *   succeeds the waiting lines are written, a line says how many were lost, and `onTrouble`
 *   hears that the trouble ended.
 * - `text` may go elsewhere than mail.log: standard output, or a syslog sink (LogTarget).
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { formatEvent, levelOf, logTimestamp, type MailEvent } from './events.js';
import { escapeText, jsonLine } from './text.js';

export type Listener = (e: MailEvent, at: Date) => void;

/** Where delivery writes its events: the mail log, or a command that prints them. */
export interface EventSink {
  write(e: MailEvent): void;
  /** Writes what is waiting now, where a sink buffers (the mail log's files). */
  flush?(): void;
}

/** A place text lines go: a file by name, or a stream that is always there. */
export interface LineSink {
  append(line: string, level: 'Info' | 'Warning'): void;
  flush(): void;
  reopen(): void;
  close(): void;
}

export type Trouble = { file: string; state: 'failing'; reason: string } | { file: string; state: 'recovered'; lost: number; seconds: number };

const MAX_BACKLOG_BYTES = 16 * 1024 * 1024;
const RETRY_MS = 1000;

/** One log file, appended by name, surviving failed writes (see the header). */
export class LogFile implements LineSink {
  private fd: number | null = null;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private lost = 0;
  private failingSince: number | null = null;
  private retry: NodeJS.Timeout | null = null;
  private scheduled = false;

  constructor(
    readonly path: string,
    private readonly onTrouble: (t: Trouble) => void,
  ) {}

  append(line: string): void {
    const b = Buffer.from(line + '\n');
    this.pending.push(b);
    this.pendingBytes += b.length;
    while (this.pendingBytes > MAX_BACKLOG_BYTES && this.pending.length > 1) {
      this.pendingBytes -= this.pending.shift()!.length;
      this.lost++;
    }
    if (!this.scheduled && this.failingSince === null) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.flush();
      });
    }
  }

  flush(): void {
    if (this.pending.length === 0) return;
    let data = Buffer.concat(this.pending);
    try {
      if (this.fd === null) this.fd = openSync(this.path, 'a', 0o640);
      while (data.length > 0) data = data.subarray(writeSync(this.fd, data));
      this.pending = [];
      this.pendingBytes = 0;
      if (this.failingSince !== null) this.recovered();
    } catch (e) {
      // What was written stays written; the rest waits for the next try.
      this.pending = data.length > 0 ? [data] : [];
      this.pendingBytes = data.length;
      this.closeFd();
      if (this.failingSince === null) {
        this.failingSince = Date.now();
        this.onTrouble({ file: this.path, state: 'failing', reason: (e as Error).message });
      }
      if (this.retry === null) {
        this.retry = setTimeout(() => {
          this.retry = null;
          this.flush();
        }, RETRY_MS);
        this.retry.unref();
      }
    }
  }

  private recovered(): void {
    const seconds = Math.round((Date.now() - (this.failingSince ?? Date.now())) / 1000);
    const lost = this.lost;
    this.failingSince = null;
    this.lost = 0;
    this.onTrouble({ file: this.path, state: 'recovered', lost, seconds });
  }

  reopen(): void {
    this.flush();
    this.closeFd();
  }

  close(): void {
    this.flush();
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    this.closeFd();
  }

  private closeFd(): void {
    if (this.fd === null) return;
    try {
      closeSync(this.fd);
    } catch {
      // Nothing more can be done with a descriptor that will not close.
    }
    this.fd = null;
  }
}

/** Text lines to standard output (for `--log-to stdout`, e.g. under systemd's journal). */
export class StdoutSink implements LineSink {
  append(line: string): void {
    process.stdout.write(line + '\n');
  }
  flush(): void {}
  reopen(): void {}
  close(): void {}
}

export interface MailLogOptions {
  now?: () => Date;
  /** Where the text lines go instead of mail.log (mail.jsonl is always written). */
  text?: LineSink;
  /** Hears when writing a log file starts failing and when it works again. */
  onTrouble?: (t: Trouble) => void;
}

export class MailLog implements EventSink {
  private readonly text: LineSink;
  private readonly json: LogFile;
  private readonly listeners: Listener[] = [];
  private readonly now: () => Date;
  private readonly onTrouble: (t: Trouble) => void;
  readonly dir: string;

  constructor(dataDir: string, o: MailLogOptions = {}) {
    this.dir = join(dataDir, 'logs');
    mkdirSync(this.dir, { recursive: true });
    this.now = o.now ?? (() => new Date());
    this.onTrouble = o.onTrouble ?? defaultTrouble;
    const trouble = (t: Trouble): void => this.trouble(t);
    this.text = o.text ?? new LogFile(join(this.dir, 'mail.log'), trouble);
    this.json = new LogFile(join(this.dir, 'mail.jsonl'), trouble);
  }

  write(e: MailEvent): void {
    const at = this.now();
    const level = levelOf(e);
    // Events carry peers' text (replies, certificate names, EHLO names): one line each, always.
    this.text.append(`${logTimestamp(at)} ${level}: ${escapeText(formatEvent(e))}`, level);
    this.json.append(jsonLine({ time: at.toISOString(), ...e }));
    for (const l of this.listeners) l(e, at);
  }

  subscribe(l: Listener): void {
    this.listeners.push(l);
  }

  /** Opens the files again by name (SIGHUP, after logrotate moved them). */
  reopen(): void {
    this.text.reopen();
    this.json.reopen();
  }

  /** Writes what is waiting now (the gateway calls it before it exits). */
  flush(): void {
    this.text.flush();
    this.json.flush();
  }

  /** Writes what waits and closes both files. */
  async close(): Promise<void> {
    this.text.close();
    this.json.close();
  }

  private trouble(t: Trouble): void {
    this.onTrouble(t);
    if (t.state === 'recovered') {
      // Said in the log itself once it can be written again.
      this.write({ event: 'log-recovered', file: t.file, lost: t.lost, seconds: t.seconds });
    }
  }
}

function defaultTrouble(t: Trouble): void {
  process.stderr.write(
    t.state === 'failing'
      ? `postern: cannot write ${t.file}: ${escapeText(t.reason)}; log lines are kept in memory until it can be written\n`
      : `postern: ${t.file} can be written again after ${t.seconds} s${t.lost > 0 ? `; ${t.lost} lines were lost` : ''}\n`,
  );
}
