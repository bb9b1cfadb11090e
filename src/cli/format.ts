/**
 * Text forms of the destination table for the console: LIST's columns as in the appliance
 * (Domain, Rate Limiting, TLS, Bounce Verification, Bounce Profile, IP Version Preference). Pure.
 */
import { displayName } from '../controls/names.js';
import type { DestinationTable } from '../controls/table.js';
import { DEFAULT_ENTRY_NAME, IP_PREFERENCE_LABELS, TLS_MODE_LABELS, type PartialSettings, type Settings } from '../controls/types.js';

function rateLimiting(s: PartialSettings, isDefault: boolean): string {
  const keys: (keyof Settings)[] = ['concurrency', 'messagesPerConnection', 'recipientLimit', 'limitPer', 'enforce'];
  if (!isDefault && keys.every((k) => s[k] === undefined)) return 'Default';
  return 'On';
}

export function listRows(table: DestinationTable): string[][] {
  const rows: string[][] = [];
  for (const e of table.list()) {
    const s = e.settings;
    rows.push([
      displayName(e.name),
      rateLimiting(s, false),
      s.tls === undefined ? 'Default' : TLS_MODE_LABELS[s.tls],
      s.bounceVerification === undefined ? 'Default' : s.bounceVerification ? 'On' : 'Off',
      s.bounceProfile ?? 'Default',
      s.ipPreference === undefined ? 'Default' : IP_PREFERENCE_LABELS[s.ipPreference],
    ]);
  }
  const d = table.defaults;
  rows.push([
    DEFAULT_ENTRY_NAME,
    rateLimiting(d, true),
    TLS_MODE_LABELS[d.tls],
    d.bounceVerification ? 'On' : 'Off',
    d.bounceProfile,
    IP_PREFERENCE_LABELS[d.ipPreference],
  ]);
  return rows;
}

export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export const LIST_HEADER = ['Domain', 'Rate Limiting', 'TLS', 'Bounce Verification', 'Bounce Profile', 'IP Version Preference'];
