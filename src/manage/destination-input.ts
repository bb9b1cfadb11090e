/**
 * One destination's settings as a person or a script enters them (the page's form, the API's
 * JSON body), checked field by field with the same functions and messages as every other
 * interface (controls/validate.ts through checkSettings), so that each rejected value can be
 * shown beside its own field. Pure.
 *
 * A value of `default` puts a setting back to Default (inherit from the (Default) entry); the
 * (Default) entry itself cannot inherit.
 */
import { DEFAULT_ENTRY_NAME, type PartialSettings, type SettingName } from '../controls/types.js';
import { checkSettings, ValidationError } from '../controls/validate.js';

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
  bounceVerification?: InputValue;
  bounceProfile?: string;
}

/** Where a value is entered: a setting, or a part of one (the recipient limit has two). */
export type InputField = SettingName | 'domain' | 'recipients' | 'minutes';

export interface FieldError {
  field: InputField;
  message: string;
}

export interface CheckedInput {
  settings: PartialSettings;
  reset: SettingName[];
  errors: FieldError[];
}

const KEYS: SettingName[] = ['ipPreference', 'concurrency', 'messagesPerConnection', 'recipientLimit', 'limitPer', 'enforce', 'tls', 'bounceVerification', 'bounceProfile'];

const YES_NO: Record<string, boolean> = { yes: true, on: true, true: true, '1': true, no: false, off: false, false: false, '0': false };

/** The field a service's ValidationError is about (the names controls/ and config/ use). */
export function fieldOf(e: ValidationError): InputField {
  const map: Record<string, InputField> = {
    destination: 'domain',
    'IP address preference': 'ipPreference',
    'concurrent connections': 'concurrency',
    'maximum messages per connection': 'messagesPerConnection',
    recipients: 'recipients',
    'recipient minutes': 'minutes',
    'apply limits per': 'limitPer',
    'enforce limits': 'enforce',
    'TLS support': 'tls',
    'bounce verification': 'bounceVerification',
    'bounce profile': 'bounceProfile',
  };
  return map[e.field] ?? 'domain';
}

function toSetting(key: SettingName, v: unknown): unknown {
  if (key === 'bounceVerification' && typeof v === 'string') return YES_NO[v.trim().toLowerCase()] ?? v;
  if (key === 'recipientLimit') return v === 'none' ? null : v;
  if (typeof v === 'string' && key !== 'bounceProfile') return v.trim();
  return v;
}

/** `entry`: the name of the entry being changed; for `(Default)` nothing may be `default`. */
export function checkDestinationInput(input: DestinationInput, entry: string): CheckedInput {
  const settings: PartialSettings = {};
  const reset: SettingName[] = [];
  const errors: FieldError[] = [];
  const isDefault = entry === DEFAULT_ENTRY_NAME;
  for (const key of KEYS) {
    const raw: unknown = input[key];
    if (raw === undefined) continue;
    if (typeof raw === 'string' && raw.trim().toLowerCase() === 'default') {
      if (isDefault) errors.push({ field: key, message: new ValidationError(key, raw, 'a value (the (Default) entry cannot inherit)').message });
      else reset.push(key);
      continue;
    }
    try {
      Object.assign(settings, checkSettings({ [key]: toSetting(key, raw) } as PartialSettings));
    } catch (e) {
      if (!(e instanceof ValidationError)) throw e;
      errors.push({ field: key === 'recipientLimit' ? fieldOf(e) : key, message: e.message });
    }
  }
  return { settings, reset, errors };
}
