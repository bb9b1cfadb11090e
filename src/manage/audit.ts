/**
 * The audit log, `<data-dir>/logs/audit.log`: one line per change made through any interface
 * (CLI, page, API), with the time, who made it, from where, what it was and what changed. Lines
 * are appended whole (O_APPEND) and peers' or users' text in them is escaped (observe/text.ts),
 * so no value can forge an entry.
 *
 * audit(dataDir, entry): appends one line; `changed` is written as JSON.
 * recorder(dataDir, by): the same, bound to one data directory and one actor — what each
 *   service in manage/ records its changes with.
 * cliBy(): the actor of a command-line change (the OS user, client `cli`).
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { escapeText, jsonLine } from '../observe/text.js';

export interface AuditEntry {
  /** Who: an administrator's name, or `cli:<os user>` for the command line. */
  actor: string;
  /** From where: a client address, or `cli`. */
  client: string;
  /** What, e.g. `adminuser.add`, `destination.edit`. */
  action: string;
  /** The object, e.g. a user or domain name. */
  target: string;
  /** What changed: field → { from, to } or a short description. */
  changed?: unknown;
}

/** Who asks for a change, and from where. */
export type Actor = Pick<AuditEntry, 'actor' | 'client'>;

/** Records one change: what, on what, and what changed. */
export type Recorder = (action: string, target: string, changed?: unknown) => void;

function cliActor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return `cli:uid ${process.getuid?.() ?? '?'}`;
  }
}

export function audit(dataDir: string, e: AuditEntry, now: Date = new Date()): void {
  const dir = join(dataDir, 'logs');
  mkdirSync(dir, { recursive: true });
  const line = `${now.toISOString()} actor=${escapeText(e.actor)} client=${escapeText(e.client)} action=${escapeText(e.action)} target=${escapeText(
    JSON.stringify(e.target),
  )}${e.changed === undefined ? '' : ` changed=${jsonLine(e.changed)}`}\n`;
  appendFileSync(join(dir, 'audit.log'), line, { mode: 0o640 });
}

export function cliBy(): Actor {
  return { actor: cliActor(), client: 'cli' };
}

export function recorder(dataDir: string, by: Actor): Recorder {
  return (action, target, changed) => audit(dataDir, { ...by, action, target, changed });
}
