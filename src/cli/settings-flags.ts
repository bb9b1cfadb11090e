/**
 * Command-line flags for destination settings (`--tls required-verify`, `--recipients 1000/60`,
 * …) to partial settings, and the value `default` to "put back to Default". Pure.
 */
import type { PartialSettings, SettingName } from '../controls/types.js';
import { parseIntegerIn, parseIpPreference, parseTlsMode, RANGES, ValidationError } from '../controls/validate.js';

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
}

export interface ParsedFlags {
  settings: PartialSettings;
  reset: SettingName[];
}

const FLAG_TO_SETTING: Record<keyof SettingFlags, SettingName> = {
  tls: 'tls',
  concurrency: 'concurrency',
  messagesPerConnection: 'messagesPerConnection',
  recipients: 'recipientLimit',
  limitPer: 'limitPer',
  enforce: 'enforce',
  bounceVerification: 'bounceVerification',
  bounceProfile: 'bounceProfile',
  ipPreference: 'ipPreference',
};

/** `allowDefault`: whether `default` is accepted (not for the (Default) entry itself). */
export function parseSettingFlags(f: SettingFlags, allowDefault: boolean): ParsedFlags {
  const settings: PartialSettings = {};
  const reset: SettingName[] = [];
  for (const [flag, raw] of Object.entries(f) as [keyof SettingFlags, string | undefined][]) {
    if (raw === undefined || !(flag in FLAG_TO_SETTING)) continue;
    const name = FLAG_TO_SETTING[flag];
    const v = raw.trim().toLowerCase();
    if (v === 'default') {
      // The (Default) entry cannot inherit; for it, `default` names the profile called Default.
      if (!allowDefault && flag === 'bounceProfile') {
        settings.bounceProfile = 'Default';
        continue;
      }
      if (!allowDefault) throw new ValidationError(flagName(flag), raw, 'a value (the (Default) entry cannot inherit)');
      reset.push(name);
      continue;
    }
    switch (flag) {
      case 'tls':
        settings.tls = parseTlsMode(v, '--tls');
        break;
      case 'concurrency':
        settings.concurrency = parseIntegerIn('--concurrency', v, RANGES.concurrency.min, RANGES.concurrency.max);
        break;
      case 'messagesPerConnection':
        settings.messagesPerConnection = parseIntegerIn(
          '--messages-per-connection',
          v,
          RANGES.messagesPerConnection.min,
          RANGES.messagesPerConnection.max,
        );
        break;
      case 'recipients': {
        if (v === 'none' || v === 'no-limit' || v === 'unlimited') {
          settings.recipientLimit = null;
          break;
        }
        const m = /^([\d,]+)\/(\d+)$/.exec(v);
        if (!m) throw new ValidationError('--recipients', raw, 'N/M (N recipients per M minutes) or none');
        settings.recipientLimit = {
          recipients: parseIntegerIn('--recipients count', m[1], RANGES.recipients.min, RANGES.recipients.max),
          minutes: parseIntegerIn('--recipients minutes', m[2], RANGES.minutes.min, RANGES.minutes.max),
        };
        break;
      }
      // Each flag also takes the import file's words for the same values (SPEC §11).
      case 'limitPer': {
        const scope = LIMIT_PER_WORDS[v];
        if (scope === undefined) throw new ValidationError('--limit-per', raw, LIMIT_PER_HELP);
        settings.limitPer = scope;
        break;
      }
      case 'enforce': {
        const scope = ENFORCE_WORDS[v];
        if (scope === undefined) throw new ValidationError('--enforce', raw, ENFORCE_HELP);
        settings.enforce = scope;
        break;
      }
      case 'bounceVerification': {
        const on = BOUNCE_VERIFICATION_WORDS[v];
        if (on === undefined) throw new ValidationError('--bounce-verification', raw, BOUNCE_VERIFICATION_HELP);
        settings.bounceVerification = on;
        break;
      }
      case 'bounceProfile':
        settings.bounceProfile = raw.trim();
        break;
      case 'ipPreference':
        settings.ipPreference = parseIpPreference(v, '--ip-preference');
        break;
    }
  }
  return { settings, reset };
}

const LIMIT_PER_WORDS: Record<string, 'domain' | 'mx-ip'> = { domain: 'domain', host: 'domain', '0': 'domain', 'mx-ip': 'mx-ip', mxip: 'mx-ip', '1': 'mx-ip' };
const ENFORCE_WORDS: Record<string, 'system' | 'virtual-gateway'> = { system: 'system', '0': 'system', 'virtual-gateway': 'virtual-gateway', vg: 'virtual-gateway', '1': 'virtual-gateway' };
const BOUNCE_VERIFICATION_WORDS: Record<string, boolean> = { on: true, yes: true, '1': true, off: false, no: false, '0': false };
/** The words each flag takes, as its --help and its error message say them. */
export const LIMIT_PER_HELP = 'domain (or host, 0), mx-ip (or mxip, 1), default';
export const ENFORCE_HELP = 'system (or 0), virtual-gateway (or vg, 1), default';
export const BOUNCE_VERIFICATION_HELP = 'on (or yes, 1), off (or no, 0), default';

function flagName(k: keyof SettingFlags): string {
  return '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}
