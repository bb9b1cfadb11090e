/**
 * The destination controls as a service: every interface (the CLI's batch commands and its
 * dialogue now, the page and the API next) changes the table through these functions, so the
 * validation (in ConfigStore and controls/), the messages and the audit record are the same
 * whichever way a change comes in.
 *
 * Each change runs in one write transaction that also reads what was there before, and is then
 * written to the audit log with what changed from what (`Default` where a setting inherits).
 */
import type { ConfigStore, GlobalSettings } from '../config/store.js';
import { parseDestinationName } from '../controls/names.js';
import { DEFAULT_ENTRY_NAME, type Entry, type EntrySettingName, type PartialSettings, type Settings } from '../controls/types.js';
import { parseIntegerIn, ValidationError } from '../controls/validate.js';
import type { Recorder } from './audit.js';

/** The global settings (SETUP) as entered; each interface names its own fields in messages. */
export interface GlobalsInput {
  brokenTlsMemoryHours?: string | number;
  requiredTlsAlert?: string | boolean;
  reportRetentionDays?: string | number;
}

/** Checks SETUP's values: hours from 0 to 8760 (decimals allowed), the alert on or off. */
export function checkGlobalsInput(
  input: GlobalsInput,
  names = { brokenTlsMemoryHours: 'remembered broken TLS hours', requiredTlsAlert: 'required TLS alert', reportRetentionDays: 'TLS report retention days' },
): Partial<GlobalSettings> {
  const changes: Partial<GlobalSettings> = {};
  const h = input.brokenTlsMemoryHours;
  if (h !== undefined) {
    const text = String(h).trim();
    const n = Number(text);
    if (!/^\d+(\.\d+)?$/.test(text) || n > 8760) throw new ValidationError(names.brokenTlsMemoryHours, h, 'a number of hours from 0 to 8760');
    changes.brokenTlsMemoryHours = n;
  }
  const a = input.requiredTlsAlert;
  if (a !== undefined) {
    const on = typeof a === 'boolean' ? a : a === 'on' ? true : a === 'off' ? false : undefined;
    if (on === undefined) throw new ValidationError(names.requiredTlsAlert, a, 'on, off');
    changes.requiredTlsAlert = on;
  }
  const d = input.reportRetentionDays;
  if (d !== undefined) changes.reportRetentionDays = parseIntegerIn(names.reportRetentionDays, typeof d === 'string' ? d.trim() : d, 1, 3660);
  return changes;
}

type Change = Record<string, { from: unknown; to: unknown }>;

/** What differs between two settings objects; an absent setting shows as `Default`. */
export function settingsDiff(before: object | undefined, after: object | undefined): Change {
  const b = (before ?? {}) as Record<string, unknown>;
  const a = (after ?? {}) as Record<string, unknown>;
  const out: Change = {};
  for (const k of new Set([...Object.keys(b), ...Object.keys(a)])) {
    if (JSON.stringify(b[k]) !== JSON.stringify(a[k])) out[k] = { from: k in b ? b[k] : 'Default', to: k in a ? a[k] : 'Default' };
  }
  return out;
}

/**
 * Changes global settings and records, under `action`, what changed in the part of them `view`
 * shows (each service audits its own settings). Returns every global setting after the change.
 */
export function changeGlobals(
  config: ConfigStore,
  record: Recorder,
  audit: { action: string; target: string; view?: (g: GlobalSettings) => object },
  changes: Partial<GlobalSettings>,
): GlobalSettings {
  const view = audit.view ?? ((g: GlobalSettings) => g);
  const before = view(config.globals());
  const after = config.setGlobals(changes);
  record(audit.action, audit.target, settingsDiff(before, view(after)));
  return after;
}

export class DestinationService {
  constructor(
    private readonly store: ConfigStore,
    private readonly record: Recorder,
  ) {}

  /** Runs `fn` in one write transaction and returns its result with the entry before and after. */
  private around<T>(name: string, fn: () => T): { result: T; before?: PartialSettings; after?: PartialSettings } {
    const tx = this.store.db.transaction(() => {
      const before = this.store.entrySettings(name);
      const result = fn();
      return { result, before, after: this.store.entrySettings(name) };
    });
    return tx.immediate();
  }

  newEntry(domain: string, settings: PartialSettings): string {
    const n = parseDestinationName(domain);
    const r = this.around(n, () => this.store.newEntry(n, settings));
    this.record('destination.new', n, settingsDiff(undefined, r.after));
    return r.result;
  }

  editEntry(domain: string, settings: PartialSettings, reset: EntrySettingName[] = []): string {
    const n = parseDestinationName(domain);
    const r = this.around(n, () => this.store.editEntry(n, settings, reset));
    this.record('destination.edit', n, settingsDiff(r.before, r.after));
    return r.result;
  }

  editDefaults(settings: PartialSettings): Settings {
    const r = this.around(DEFAULT_ENTRY_NAME, () => this.store.editDefaults(settings));
    this.record('destination.default', DEFAULT_ENTRY_NAME, settingsDiff(r.before, r.after));
    return r.result;
  }

  deleteEntry(domain: string): string {
    const n = domain.trim() === DEFAULT_ENTRY_NAME ? DEFAULT_ENTRY_NAME : parseDestinationName(domain);
    const r = this.around(n, () => this.store.deleteEntry(n));
    this.record('destination.delete', n, settingsDiff(r.before, undefined));
    return r.result;
  }

  clearEntries(): number {
    const n = this.store.clearEntries();
    this.record('destination.clear', 'all entries', { removed: n });
    return n;
  }

  importTable(defaults: Settings, entries: Entry[], source: string): void {
    this.store.replaceTable(defaults, entries);
    this.record('destination.import', source, { entries: entries.length + 1 });
  }

  setGlobals(changes: Partial<GlobalSettings>): GlobalSettings {
    return changeGlobals(this.store, this.record, { action: 'destination.setup', target: 'global settings' }, changes);
  }
}
