/**
 * The destination table in memory and its most-specific lookup (SPEC §1). Pure.
 *
 * Lookup walks the labels of the recipient domain (exact name, then `.parent` suffixes from the
 * longest to the shortest), so its cost depends on the number of labels, never on the number of
 * entries: two hash-map probes per label.
 */
import { normaliseDomain } from '../tls/names.js';
import { mostSpecificName } from './names.js';
import { DEFAULT_ENTRY_NAME, type DefaultSettingName, type Entry, type ResolvedEntry, type Settings } from './types.js';

export class DestinationTable {
  private readonly entries = new Map<string, Entry>();

  constructor(
    readonly defaults: Settings,
    entries: Iterable<Entry> = [],
  ) {
    for (const e of entries) this.entries.set(e.name, e);
  }

  get size(): number {
    return this.entries.size;
  }

  get(name: string): Entry | undefined {
    return this.entries.get(name);
  }

  /** Entries sorted by name, for LIST and export. */
  list(): Entry[] {
    return [...this.entries.values()].sort((a, b) => sortKey(a.name).localeCompare(sortKey(b.name)));
  }

  /** The entry that governs `domain`, or undefined for (Default). `domain` may be in any case/form. */
  match(domain: string): Entry | undefined {
    const d = normaliseDomain(domain);
    if (d === null) return undefined;
    const name = mostSpecificName(d, (n) => this.entries.has(n));
    return name === undefined ? undefined : this.entries.get(name);
  }

  resolve(domain: string): ResolvedEntry {
    const entry = this.match(domain);
    if (!entry) return { matched: DEFAULT_ENTRY_NAME, settings: { ...this.defaults }, inherited: Object.keys(this.defaults) as DefaultSettingName[] };
    return resolveEntry(entry, this.defaults);
  }
}

export function resolveEntry(entry: Entry, defaults: Settings): ResolvedEntry {
  const inherited: DefaultSettingName[] = [];
  const settings = { ...defaults };
  for (const key of Object.keys(defaults) as DefaultSettingName[]) {
    if (entry.settings[key] === undefined) inherited.push(key);
  }
  const { tlsAlert, ...own } = entry.settings;
  Object.assign(settings, stripUndefined(own));
  return tlsAlert === undefined ? { matched: entry.name, settings, inherited } : { matched: entry.name, settings, inherited, tlsAlert };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** `.example.com` sorts beside `example.com`. */
function sortKey(name: string): string {
  return name.startsWith('.') ? `${name.slice(1)} ` : name;
}
