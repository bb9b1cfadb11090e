/**
 * One destination's settings as a person or a script enters them (the page's form, the API's
 * JSON body), checked field by field with the same functions and messages as every other
 * interface (controls/validate.ts through checkSettings), so that each rejected value can be
 * shown beside its own field. Pure.
 *
 * A value of `default` puts a setting back to Default (inherit from the (Default) entry); the
 * (Default) entry itself cannot inherit.
 */
import { DANE_MODES, DEFAULT_ENTRY_NAME, type EntrySettingName, type PartialSettings } from '../controls/types.js';
import { checkSettings, DEFAULT_TLS_ALERT, ValidationError } from '../controls/validate.js';
import { DEFAULT_PROFILE_NAME } from '../bounce/profile.js';

export type InputValue = string | number | boolean;

export interface DestinationInput {
  ipPreference?: string;
  concurrency?: InputValue;
  messagesPerConnection?: InputValue;
  /** `{recipients, minutes}`, `none` (No Limit) or `default`. */
  recipientLimit?: { recipients: InputValue; minutes: InputValue } | 'none' | 'default' | null;
  limitPer?: string;
  enforce?: string;
  tls?: string;
  /** DANE: off, opportunistic or required (or `default`). */
  dane?: string;
  /** MTA-STS: on or off (or `default`). */
  mtaSts?: InputValue;
  bounceVerification?: InputValue;
  bounceProfile?: string;
  /** The required-TLS alert override: on, off, or `default` (follow the global switch). */
  tlsAlert?: InputValue;
}

/** Where a value is entered: a setting, or a part of one (the recipient limit has two). */
export type InputField = EntrySettingName | 'domain' | 'recipients' | 'minutes';

export interface FieldError {
  field: InputField;
  message: string;
}

export interface CheckedInput {
  settings: PartialSettings;
  reset: EntrySettingName[];
  errors: FieldError[];
}

const KEYS: EntrySettingName[] = ['ipPreference', 'concurrency', 'messagesPerConnection', 'recipientLimit', 'limitPer', 'enforce', 'tls', 'tlsAlert', 'dane', 'mtaSts', 'bounceVerification', 'bounceProfile'];

/** The words each setting takes besides its own values (the import file's, SPEC §11). */
const LIMIT_PER_WORDS: Record<string, 'domain' | 'mx-ip'> = { domain: 'domain', host: 'domain', '0': 'domain', 'mx-ip': 'mx-ip', mxip: 'mx-ip', '1': 'mx-ip' };
const ENFORCE_WORDS: Record<string, 'system' | 'virtual-gateway'> = { system: 'system', '0': 'system', 'virtual-gateway': 'virtual-gateway', vg: 'virtual-gateway', '1': 'virtual-gateway' };
const YES_NO: Record<string, boolean> = { on: true, yes: true, '1': true, true: true, off: false, no: false, '0': false, false: false };
/** What each word list allows, as help and error messages say it. */
export const LIMIT_PER_HELP = 'domain (or host, 0), mx-ip (or mxip, 1), default';
export const ENFORCE_HELP = 'system (or 0), virtual-gateway (or vg, 1), default';
export const BOUNCE_VERIFICATION_HELP = 'on (or yes, 1), off (or no, 0), default';
export const TLS_ALERT_HELP = 'on (or yes, 1), off (or no, 0), default (the global switch)';
export const DANE_HELP = `${DANE_MODES.join(', ')}, default`;
export const MTA_STS_HELP = 'on (or yes, 1), off (or no, 0), default';

/** The words controls/ and config/ use for each field in their messages. */
const SERVICE_NAMES: Record<InputField, string> = {
  domain: 'destination',
  ipPreference: 'IP address preference',
  concurrency: 'concurrent connections',
  messagesPerConnection: 'maximum messages per connection',
  recipientLimit: 'recipients',
  recipients: 'recipients',
  minutes: 'recipient minutes',
  limitPer: 'apply limits per',
  enforce: 'enforce limits',
  tls: 'TLS support',
  dane: 'DANE',
  mtaSts: 'MTA-STS',
  bounceVerification: 'bounce verification',
  tlsAlert: 'required TLS alert',
  bounceProfile: 'bounce profile',
};

/** The field a service's ValidationError is about. */
export function fieldOf(e: ValidationError): InputField {
  const hit = (Object.entries(SERVICE_NAMES) as [InputField, string][]).find(([k, v]) => v === e.field && k !== 'recipientLimit');
  return hit ? hit[0] : 'domain';
}

/** A word from a list, or a ValidationError naming the list's help. */
function word<T>(words: Record<string, T>, raw: unknown, field: string, help: string): T {
  const v = typeof raw === 'string' ? words[raw.trim().toLowerCase()] : typeof raw === 'boolean' ? (words[String(raw)] as T | undefined) : undefined;
  if (v === undefined) throw new ValidationError(field, raw, help);
  return v;
}

function toSetting(key: EntrySettingName, v: unknown, field: string): unknown {
  if (key === 'limitPer') return word(LIMIT_PER_WORDS, v, field, LIMIT_PER_HELP);
  if (key === 'enforce') return word(ENFORCE_WORDS, v, field, ENFORCE_HELP);
  if (key === 'bounceVerification') return typeof v === 'boolean' ? v : word(YES_NO, v, field, BOUNCE_VERIFICATION_HELP);
  if (key === 'tlsAlert') return typeof v === 'boolean' ? v : word(YES_NO, v, field, TLS_ALERT_HELP);
  if (key === 'mtaSts') return typeof v === 'boolean' ? v : word(YES_NO, v, field, MTA_STS_HELP);
  if (key === 'recipientLimit') return v === 'none' ? null : v;
  if (typeof v === 'string') return v.trim();
  return v;
}

/** How each interface names its fields in messages (the CLI: its flags); unnamed fields keep the service's words. */
export type FieldNames = Partial<Record<InputField, string>>;

/** The service's error, said with this interface's name for the field. */
function renamed(e: ValidationError, field: InputField, names: FieldNames): ValidationError {
  const n = names[field];
  return n === undefined ? e : new ValidationError(n, e.value, e.allowed);
}

/**
 * `entry`: the name of the entry being changed; for `(Default)` nothing may be `default` (but a
 * bounce profile of `default` is the profile called Default).
 */
export function checkDestinationInput(input: DestinationInput, entry: string, names: FieldNames = {}): CheckedInput {
  const settings: PartialSettings = {};
  const reset: EntrySettingName[] = [];
  const errors: FieldError[] = [];
  const isDefault = entry === DEFAULT_ENTRY_NAME;
  for (const key of KEYS) {
    const raw: unknown = input[key];
    if (raw === undefined) continue;
    if (isDefault && key === 'tlsAlert') {
      errors.push({ field: key, message: new ValidationError(names[key] ?? SERVICE_NAMES[key], raw, DEFAULT_TLS_ALERT).message });
      continue;
    }
    if (typeof raw === 'string' && raw.trim().toLowerCase() === 'default') {
      if (isDefault && key === 'bounceProfile') settings.bounceProfile = DEFAULT_PROFILE_NAME;
      else if (isDefault) errors.push({ field: key, message: new ValidationError(names[key] ?? SERVICE_NAMES[key], raw, 'a value (the (Default) entry cannot inherit)').message });
      else reset.push(key);
      continue;
    }
    try {
      Object.assign(settings, checkSettings({ [key]: toSetting(key, raw, names[key] ?? SERVICE_NAMES[key]) } as PartialSettings));
    } catch (e) {
      if (!(e instanceof ValidationError)) throw e;
      const field = key === 'recipientLimit' ? fieldOf(e) : key;
      errors.push({ field, message: renamed(e, field, names).message });
    }
  }
  return { settings, reset, errors };
}

/** The first rejected value as the ValidationError to throw (batch interfaces stop at the first). */
export function firstError(c: CheckedInput): ValidationError | null {
  const e = c.errors[0];
  if (!e) return null;
  const err = new ValidationError(e.field, '', '');
  err.message = e.message;
  return err;
}
