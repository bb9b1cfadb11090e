/**
 * Conditions that stop normal work for a while — the queue cannot be written (a full disk) —
 * reported once when they start and once when they end, however often the work fails between.
 *
 * raise(name, detail): the first failure logs `Condition started` (mail log and standard
 *   error); later failures are only counted.
 * clear(name): after a raise, the first success logs `Condition ended` with the count and the
 *   duration. Cheap when nothing was raised, so callers call it on every success.
 */
import type { EventSink } from './maillog.js';
import { escapeText } from './text.js';

/** Raised while the queue cannot be read or written (a full disk), by the listener and delivery. */
export const QUEUE_STORAGE = 'queue storage';

interface Active {
  since: number;
  failures: number;
}

export class Conditions {
  private readonly active = new Map<string, Active>();

  constructor(
    private readonly log: EventSink,
    private readonly stderr: (line: string) => void = (l) => process.stderr.write(l + '\n'),
    private readonly now: () => number = Date.now,
  ) {}

  raise(name: string, detail: string): void {
    const a = this.active.get(name);
    if (a) {
      a.failures++;
      return;
    }
    this.active.set(name, { since: this.now(), failures: 1 });
    this.stderr(`postern: ${name}: ${escapeText(detail)}`);
    this.log.write({ event: 'condition-start', condition: name, detail });
  }

  clear(name: string): void {
    if (this.active.size === 0) return;
    const a = this.active.get(name);
    if (!a) return;
    this.active.delete(name);
    const seconds = Math.round((this.now() - a.since) / 1000);
    const detail = `after ${seconds} s and ${a.failures} failed attempt${a.failures === 1 ? '' : 's'}`;
    this.stderr(`postern: ${name}: ended ${detail}`);
    this.log.write({ event: 'condition-end', condition: name, detail });
  }

  isActive(name: string): boolean {
    return this.active.has(name);
  }
}
