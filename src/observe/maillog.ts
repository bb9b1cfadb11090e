/**
 * The mail log writer: `<data-dir>/logs/mail.log` (text, one event per line) and
 * `<data-dir>/logs/mail.jsonl` (the same events as JSON lines). Subscribers (tests, the TLS
 * report) can listen to events as they are written.
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { formatEvent, levelOf, logTimestamp, type MailEvent } from './events.js';
import { escapeText, jsonLine } from './text.js';

export type Listener = (e: MailEvent, at: Date) => void;

/** Where delivery writes its events: the mail log, or a command that prints them. */
export interface EventSink {
  write(e: MailEvent): void;
}

export class MailLog implements EventSink {
  private readonly text: WriteStream;
  private readonly json: WriteStream;
  private readonly listeners: Listener[] = [];

  constructor(
    dataDir: string,
    private readonly now: () => Date = () => new Date(),
  ) {
    const dir = join(dataDir, 'logs');
    mkdirSync(dir, { recursive: true });
    this.text = createWriteStream(join(dir, 'mail.log'), { flags: 'a' });
    this.json = createWriteStream(join(dir, 'mail.jsonl'), { flags: 'a' });
  }

  write(e: MailEvent): void {
    const at = this.now();
    // Events carry peers' text (replies, certificate names, EHLO names): one line each, always.
    this.text.write(`${logTimestamp(at)} ${levelOf(e)}: ${escapeText(formatEvent(e))}\n`);
    this.json.write(jsonLine({ time: at.toISOString(), ...e }) + '\n');
    for (const l of this.listeners) l(e, at);
  }

  subscribe(l: Listener): void {
    this.listeners.push(l);
  }

  async close(): Promise<void> {
    await Promise.all([
      new Promise<void>((r) => this.text.end(() => r())),
      new Promise<void>((r) => this.json.end(() => r())),
    ]);
  }
}
