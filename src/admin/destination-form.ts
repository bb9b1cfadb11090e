/**
 * The Add/Edit Destination form (the seed's GUI form), as data. Pure.
 *
 * formFromEntry(settings): the form's values for an entry as stored (or empty for Add).
 * inputFromForm(form): the posted form as a DestinationInput for manage/destination-input.ts,
 *   which checks it with the CLI's functions. The radio "Use Default" / "Maximum of" becomes
 *   `default` or the typed value; nothing is checked here.
 * defaultTexts(defaults): the "Default (…)" texts, showing the (Default) entry's current values.
 */
import type { DestinationInput } from '../manage/destination-input.js';
import { DANE_MODE_LABELS, IP_PREFERENCE_LABELS, TLS_MODE_LABELS, type PartialSettings, type Settings } from '../controls/types.js';

/** The posted form: every value a string, as the browser sends it. */
export interface DestinationForm {
  domain: string;
  ipPreference: string;
  concurrencyMode: string;
  concurrency: string;
  messagesMode: string;
  messagesPerConnection: string;
  recipientsMode: string;
  recipients: string;
  minutes: string;
  limitPer: string;
  enforce: string;
  tls: string;
  /** default (the global switch), yes or no; empty on the (Default) entry's form, which has none. */
  tlsAlert: string;
  /** default, off, opportunistic or required. */
  dane: string;
  /** default, on or off. */
  mtaSts: string;
  bounceVerification: string;
  bounceProfile: string;
}

const FIELDS: (keyof DestinationForm)[] = [
  'domain', 'ipPreference', 'concurrencyMode', 'concurrency', 'messagesMode', 'messagesPerConnection',
  'recipientsMode', 'recipients', 'minutes', 'limitPer', 'enforce', 'tls', 'tlsAlert', 'dane', 'mtaSts', 'bounceVerification', 'bounceProfile',
];

/** The form's fields from a parsed body; anything missing or not a string is empty. */
export function readForm(body: unknown): DestinationForm {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const f = {} as DestinationForm;
  for (const k of FIELDS) f[k] = typeof b[k] === 'string' ? (b[k] as string) : '';
  return f;
}

/** `isDefault`: the form edits the (Default) entry, which has no "Use Default" choices. */
export function formFromEntry(s: PartialSettings, name: string, isDefault: boolean): DestinationForm {
  const d = isDefault ? 'max' : 'default';
  return {
    domain: name,
    ipPreference: s.ipPreference ?? 'default',
    concurrencyMode: s.concurrency === undefined ? d : 'max',
    concurrency: s.concurrency === undefined ? '' : String(s.concurrency),
    messagesMode: s.messagesPerConnection === undefined ? d : 'max',
    messagesPerConnection: s.messagesPerConnection === undefined ? '' : String(s.messagesPerConnection),
    recipientsMode: s.recipientLimit === undefined ? 'default' : s.recipientLimit === null ? 'none' : 'max',
    recipients: s.recipientLimit ? String(s.recipientLimit.recipients) : '',
    minutes: s.recipientLimit ? String(s.recipientLimit.minutes) : '',
    limitPer: s.limitPer ?? 'default',
    enforce: s.enforce ?? 'default',
    tls: s.tls ?? 'default',
    tlsAlert: isDefault ? '' : s.tlsAlert === undefined ? 'default' : s.tlsAlert ? 'yes' : 'no',
    dane: s.dane ?? 'default',
    mtaSts: s.mtaSts === undefined ? 'default' : s.mtaSts ? 'on' : 'off',
    bounceVerification: s.bounceVerification === undefined ? 'default' : s.bounceVerification ? 'yes' : 'no',
    bounceProfile: s.bounceProfile ?? 'default',
  };
}

/** A radio pair "Use Default" / "Maximum of [ ]": anything but `max` is the default choice. */
function limit(mode: string, value: string): string {
  return mode === 'max' ? value : 'default';
}

export function inputFromForm(f: DestinationForm): DestinationInput {
  return {
    ipPreference: f.ipPreference,
    concurrency: limit(f.concurrencyMode, f.concurrency),
    messagesPerConnection: limit(f.messagesMode, f.messagesPerConnection),
    recipientLimit: f.recipientsMode === 'max' ? { recipients: f.recipients, minutes: f.minutes } : f.recipientsMode === 'none' ? 'none' : 'default',
    limitPer: f.limitPer,
    enforce: f.enforce,
    tls: f.tls,
    ...(f.tlsAlert === '' ? {} : { tlsAlert: f.tlsAlert }),
    dane: f.dane,
    mtaSts: f.mtaSts,
    bounceVerification: f.bounceVerification,
    bounceProfile: f.bounceProfile,
  };
}

const count = (n: number): string => n.toLocaleString('en-US');

/**
 * The (Default) entry's values in the words of the form's "Default (…)" choices; the TLS alert's
 * default is the global switch.
 */
export function defaultTexts(d: Settings, tlsAlertSwitch: boolean): Record<string, string> {
  return {
    tlsAlert: tlsAlertSwitch ? 'Yes' : 'No',
    ipPreference: IP_PREFERENCE_LABELS[d.ipPreference],
    concurrency: count(d.concurrency),
    messagesPerConnection: count(d.messagesPerConnection),
    recipientLimit: d.recipientLimit === null ? 'No Limit' : `${count(d.recipientLimit.recipients)} per ${count(d.recipientLimit.minutes)} min`,
    limitPer: d.limitPer === 'domain' ? 'Entire Domain' : 'Each MX IP Address',
    enforce: d.enforce === 'system' ? 'System Wide' : 'Each Virtual Gateway',
    tls: TLS_MODE_LABELS[d.tls],
    dane: DANE_MODE_LABELS[d.dane],
    mtaSts: d.mtaSts ? 'On' : 'Off',
    bounceVerification: d.bounceVerification ? 'Yes' : 'No',
    bounceProfile: d.bounceProfile,
  };
}
