/**
 * Text forms of the destination table for the console. Pure.
 *
 * listRows(table) / formatTable(header, rows) / LIST_HEADER: LIST's columns as in the appliance
 *   (Domain, Rate Limiting, TLS, Bounce Verification, Bounce Profile, IP Version Preference).
 * detailLines(name, entry, defaults): DETAIL's lines for one entry (`entry` undefined = the
 *   (Default) entry, shown from `defaults`): the destination, then every setting in the
 *   appliance's words, an inherited one as "Default (value)". Shared by `destconfig detail` and
 *   the interactive dialogue so that both print the same text.
 */
import { escapeText } from '../observe/text.js';
import { displayName } from '../controls/names.js';
import type { DestinationTable } from '../controls/table.js';
import {
  DANE_MODE_LABELS,
  DEFAULT_ENTRY_NAME,
  IP_PREFERENCE_LABELS,
  TLS_MODE_LABELS,
  type Entry,
  type EnforcePer,
  type LimitPer,
  type PartialSettings,
  type RecipientLimit,
  type Settings,
} from '../controls/types.js';

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

export function formatTable(header: string[], rawRows: string[][]): string {
  // A cell is one value on one line: a CR or LF from a peer's reply must not break the table.
  const rows = rawRows.map((r) => r.map(escapeText));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export const LIST_HEADER = ['Domain', 'Rate Limiting', 'TLS', 'Bounce Verification', 'Bounce Profile', 'IP Version Preference'];

const LIMIT_PER_LABELS: Record<LimitPer, string> = {
  domain: 'Entire domain',
  'mx-ip': 'Each mail exchanger (MX) IP address',
};

const ENFORCE_LABELS: Record<EnforcePer, string> = {
  system: 'System Wide',
  'virtual-gateway': 'Per Virtual Gateway',
};

const count = (n: number): string => n.toLocaleString('en-US');

function recipientsText(r: RecipientLimit | null): string {
  if (r === null) return 'No Limit';
  return `${count(r.recipients)} per ${count(r.minutes)} ${r.minutes === 1 ? 'minute' : 'minutes'}`;
}

/** The per-entry override of `destconfig setup --required-tls-alert`, as DETAIL and the page name it. */
export const TLS_ALERT_LABEL = 'Alert When Required TLS Fails';

/**
 * Each setting's DETAIL label and value text, in the order the appliance's page shows them;
 * Postern's DANE and MTA-STS follow the TLS line they raise.
 */
const DETAIL_FIELDS: { key: keyof Settings; label: string; text: (s: Settings) => string }[] = [
  { key: 'ipPreference', label: 'IP Address Preference', text: (s) => IP_PREFERENCE_LABELS[s.ipPreference] },
  { key: 'concurrency', label: 'Maximum Concurrent Connections', text: (s) => count(s.concurrency) },
  { key: 'messagesPerConnection', label: 'Maximum Messages Per Connection', text: (s) => count(s.messagesPerConnection) },
  { key: 'recipientLimit', label: 'Recipients', text: (s) => recipientsText(s.recipientLimit) },
  { key: 'limitPer', label: 'Apply limits per', text: (s) => LIMIT_PER_LABELS[s.limitPer] },
  { key: 'enforce', label: 'Enforce limits', text: (s) => ENFORCE_LABELS[s.enforce] },
  { key: 'tls', label: 'TLS Support', text: (s) => TLS_MODE_LABELS[s.tls] },
  { key: 'dane', label: 'DANE', text: (s) => DANE_MODE_LABELS[s.dane] },
  { key: 'mtaSts', label: 'MTA-STS', text: (s) => (s.mtaSts ? 'On' : 'Off') },
  { key: 'bounceVerification', label: 'Bounce Verification Address Tagging', text: (s) => (s.bounceVerification ? 'On' : 'Off') },
  { key: 'bounceProfile', label: 'Bounce Profile', text: (s) => s.bounceProfile },
];

export function detailLines(name: string, entry: Entry | undefined, defaults: Settings): string[] {
  const shown = entry === undefined || name === DEFAULT_ENTRY_NAME ? DEFAULT_ENTRY_NAME : displayName(name);
  const lines = [`Destination: ${shown}`];
  const own: PartialSettings = entry?.settings ?? {};
  // The value each setting has for this entry: its own where set, else (Default)'s.
  const resolved: Settings = { ...defaults };
  for (const f of DETAIL_FIELDS) {
    const v = own[f.key];
    if (v !== undefined) Object.assign(resolved, { [f.key]: v });
  }
  for (const f of DETAIL_FIELDS) {
    const inherited = entry !== undefined && own[f.key] === undefined;
    lines.push(`${f.label}: ${inherited ? `Default (${f.text(resolved)})` : f.text(resolved)}`);
  }
  // Beyond the appliance, so shown only where an entry overrides the global switch.
  if (own.tlsAlert !== undefined) lines.push(`${TLS_ALERT_LABEL}: ${own.tlsAlert ? 'On' : 'Off'}`);
  return lines;
}

/** A time to the second, `2026-12-01T21:37:20Z`; `-` for none (a key not retired). */
export function isoSeconds(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The appliance's count line, singular when only the (Default) entry exists. */
export function entriesConfigured(n: number): string {
  return n === 1 ? 'There is currently 1 entry configured.' : `There are currently ${n} entries configured.`;
}

/** `1 recipient`, `2 recipients`; `1 entry`, `2 entries` with the plural given. */
export function plural(n: number, word: string, words = `${word}s`): string {
  return `${n} ${n === 1 ? word : words}`;
}

/** Said when a setting is turned on whose effect depends on more than the setting. */
export const SETTING_NOTES = {
  bounceVerification: 'Note: envelope senders are tagged only while a tagging key exists (postern bvconfig key add), and only on mail from the private listener.',
} as const;

/** Said when the required-TLS alert is turned on: where the alerts go. */
export const REQUIRED_TLS_ALERT_NOTE = 'Note: required-TLS failure alerts go to the alert recipients of class tls (postern alertconfig new ADDRESS --classes tls).';
