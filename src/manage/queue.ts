/**
 * The operator's queue actions as a service (see manage/destinations.ts for the shape): deliver
 * now, bounce, delete — the work is queue/control.ts's, and each action is also written to the
 * audit log with what it selected and how many recipients it touched (the mail log has the
 * per-recipient lines).
 */
import type { ConfigSnapshot } from '../config/store.js';
import type { EventSink } from '../observe/maillog.js';
import { bounceQueued, deleteQueued, deliverNow, type ActionResult, type Selection } from '../queue/control.js';
import type { QueueStore } from '../queue/store.js';
import type { Recorder } from './audit.js';

function selected(sel: Selection): string {
  return 'mid' in sel ? `MID ${sel.mid}` : 'domain' in sel ? `domain ${sel.domain}` : 'all';
}

export class QueueService {
  constructor(
    private readonly queue: QueueStore,
    private readonly log: EventSink,
    private readonly record: Recorder,
  ) {}

  deliverNow(domain?: string): { recipients: number; messages: number } {
    const r = deliverNow(this.queue, this.log, domain);
    this.record('queue.delivernow', domain === undefined ? 'all' : `domain ${domain}`, { recipients: r.recipients, messages: r.messages });
    return r;
  }

  bounce(snapshot: ConfigSnapshot, sel: Selection, o: { hostname: string }): ActionResult {
    const r = bounceQueued(this.queue, this.log, snapshot, sel, o);
    this.record('queue.bounce', selected(sel), { recipients: r.recipients, messages: r.messages.map((m) => m.mid) });
    return r;
  }

  delete(sel: Selection): ActionResult {
    const r = deleteQueued(this.queue, this.log, sel);
    this.record('queue.delete', selected(sel), { recipients: r.recipients, messages: r.messages.map((m) => m.mid) });
    return r;
  }
}
