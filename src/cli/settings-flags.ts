/**
 * Command-line flags for destination settings (`--tls required-verify`, `--recipients 1000/60`,
 * …) to partial settings, and the value `default` to "put back to Default". Pure.
 *
 * Only the flags' own syntax is read here (`N/M` for --recipients); every value is then checked
 * by manage/destination-input.ts, the checker the web page and the API use too, with the flags'
 * names in its messages.
 */
import { DEFAULT_ENTRY_NAME, type EntrySettingName, type PartialSettings } from '../controls/types.js';
import { ValidationError } from '../controls/validate.js';
import { checkDestinationInput, firstError, type DestinationInput, type FieldNames } from '../manage/destination-input.js';

export { BOUNCE_VERIFICATION_HELP, DANE_HELP, ENFORCE_HELP, LIMIT_PER_HELP, MTA_STS_HELP, TLS_ALERT_HELP } from '../manage/destination-input.js';

export interface SettingFlags {
  tls?: string;
  concurrency?: string;
  messagesPerConnection?: string;
  recipients?: string;
  limitPer?: string;
  enforce?: string;
  bounceVerification?: string;
  bounceProfile?: string;
  ipPreference?: string;
  tlsAlert?: string;
  dane?: string;
  mtaSts?: string;
}

export interface ParsedFlags {
  settings: PartialSettings;
  reset: EntrySettingName[];
}

/** Each setting's flag, as messages name it. */
const FLAG_NAMES: FieldNames = {
  tls: '--tls',
  concurrency: '--concurrency',
  messagesPerConnection: '--messages-per-connection',
  recipients: '--recipients count',
  minutes: '--recipients minutes',
  limitPer: '--limit-per',
  enforce: '--enforce',
  bounceVerification: '--bounce-verification',
  tlsAlert: '--tls-alert',
  dane: '--dane',
  mtaSts: '--mta-sts',
  ipPreference: '--ip-preference',
};

/** --recipients: `N/M`, `none` (or no-limit, unlimited) or `default`. */
function recipientLimit(raw: string): DestinationInput['recipientLimit'] {
  const v = raw.trim().toLowerCase();
  if (v === 'none' || v === 'no-limit' || v === 'unlimited') return 'none';
  if (v === 'default') return 'default';
  const m = /^([\d,]+)\/(\d+)$/.exec(v);
  if (!m) throw new ValidationError('--recipients', raw, 'N/M (N recipients per M minutes) or none');
  return { recipients: m[1]!, minutes: m[2]! };
}

/** `allowDefault`: whether `default` is accepted (not for the (Default) entry itself). */
export function parseSettingFlags(f: SettingFlags, allowDefault: boolean): ParsedFlags {
  const input: DestinationInput = {
    tls: f.tls,
    concurrency: f.concurrency,
    messagesPerConnection: f.messagesPerConnection,
    recipientLimit: f.recipients === undefined ? undefined : recipientLimit(f.recipients),
    limitPer: f.limitPer,
    enforce: f.enforce,
    bounceVerification: f.bounceVerification,
    bounceProfile: f.bounceProfile,
    ipPreference: f.ipPreference,
    tlsAlert: f.tlsAlert,
    dane: f.dane,
    mtaSts: f.mtaSts,
  };
  const c = checkDestinationInput(input, allowDefault ? 'an entry' : DEFAULT_ENTRY_NAME, FLAG_NAMES);
  const e = firstError(c);
  if (e) throw e;
  return { settings: c.settings, reset: c.reset };
}
